"""prefill against the knotd hierarchy: the root zone of tests/e2e/hierarchy.py
is written to a file and prefilled into the cache; then the root server
alone is stopped, and names under the TLDs still resolve, because the root's
delegations (test., example., cz. and their glue) come from the prefilled
cache. A resolver without prefill, in the same situation, answers SERVFAIL.

Ours runs with -f 2 (one fork imports into the shared cache; both answer),
reading the file from a file:// URL. kresd 5.6 (Debian's) takes only an
https:// URL and has no way to fetch it here, but it imports the file
`root.zone` of its rundir without downloading when that file is younger
than the refresh interval: that is how it is given the same zone, so the
answers are compared with the reference's.
"""
from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

import dns.message
import dns.query
import dns.rcode
import pytest

from tests.conftest import alloc_test_addr

from .hierarchy import SERVERS, TTL
from .resolver import CONFIG, Resolver

pytestmark = pytest.mark.e2e
KRESD56 = Path("/usr/sbin/kresd")
NAMES = {"www.glue.test.": "192.0.2.1", "www.example.": "192.0.2.80", "www.sub.nic.cz.": "192.0.2.10",
         "www.noglue.test.": "192.0.2.2"}
IMPORT_TIMEOUT = 15.0


class Forked(Resolver):
    """Our binary with -f 2."""

    @property
    def argv(self) -> list[str]:
        argv = super().argv
        return argv[:1] + ["-f", "2"] + argv[1:]


def root_zone_text() -> str:
    _addr, origin, text = SERVERS["root"]
    return f"$ORIGIN {origin}\n$TTL {TTL}\n{text}"


def ask(addr: str, name: str) -> tuple[str, list[str]]:
    r = dns.query.udp(dns.message.make_query(name, "A"), addr, timeout=10)
    return dns.rcode.to_text(r.rcode()), sorted(rd.to_text() for rr in r.answer for rd in rr)


def wait_log(r: Resolver, marker: str) -> None:
    deadline = time.monotonic() + IMPORT_TIMEOUT
    while marker not in r.log.read_text(errors="replace"):
        assert r.alive(), r.log_tail()
        assert time.monotonic() < deadline, f"no '{marker}' in the log\n" + r.log_tail()
        time.sleep(0.1)


def stop_root(hierarchy) -> None:
    p = hierarchy.procs["root"]
    os.killpg(p.pid, signal.SIGTERM)
    p.wait(5)


def test_prefilled_delegations_outlive_the_root(kresd_bin, hierarchy, tmp_path):
    zone = tmp_path / "root.zone"
    zone.write_text(root_zone_text())
    ours_cfg = CONFIG + f"log_level('info')\nmodules.load('prefill')\nprefill.config({{['.'] = {{url = 'file://{zone}'}}}})\n"
    started = []
    try:
        ours = Forked(kresd_bin, alloc_test_addr(), tmp_path / "ours", config=ours_cfg)
        started.append(ours)
        ours.start()
        wait_log(ours, "root zone imported")
        plain = Resolver(kresd_bin, alloc_test_addr(), tmp_path / "plain")
        started.append(plain)
        plain.start()
        ref = None
        if KRESD56.exists():
            ref_dir = tmp_path / "kresd56"
            ref_dir.mkdir()
            (ref_dir / "root.zone").write_text(root_zone_text())  # fresh mtime: no download
            # net.ipv6 = false: the hierarchy has no IPv6; with the root down, kresd 5.6
            # otherwise sometimes asks the root for the AAAA of an NS name and fails
            ref_cfg = CONFIG + ("log_level('info')\nnet.ipv6 = false\nmodules.load('prefill')\n"
                                "prefill.config({['.'] = {url = 'https://127.0.0.1/not-fetched'}})\n")
            ref = Resolver(KRESD56, alloc_test_addr(), ref_dir, config=ref_cfg)
            started.append(ref)
            ref.start()
            wait_log(ref, "validating and caching took")
        stop_root(hierarchy)
        for name, addr in NAMES.items():
            for _ in range(4):  # several source ports: both forks answer
                assert ask(ours.addr, name) == ("NOERROR", [addr]), (name, ours.log_tail())
            if ref is not None:
                assert ask(ref.addr, name) == ("NOERROR", [addr]), (name, ref.log_tail())
        assert ask(plain.addr, "www.glue.test.")[0] == "SERVFAIL"
        log = ours.log.read_text(errors="replace")
        assert log.count("root zone imported") == 1, log  # one fork imports for both
    finally:
        for r in started:
            r.stop()
            print(r.log_tail())
        hierarchy.stop()
        hierarchy.start()


def test_https_url_is_refused_with_a_clear_error(kresd_bin, tmp_path):
    cfg = tmp_path / "bad.conf"
    cfg.write_text("modules.load('prefill')\n"
                   "prefill.config({['.'] = {url = 'https://www.internic.net/domain/root.zone'}})\n")
    p = subprocess.run([str(kresd_bin), "--check-config", "-c", str(cfg), str(tmp_path)],
                       capture_output=True, text=True, timeout=60)
    out = p.stdout + p.stderr
    assert p.returncode == 3, out
    assert "HTTPS is not available in kresd-py" in out and "bad.conf:2" in out, out


def test_kresd56_takes_no_file_url(tmp_path):
    """Why the comparison above goes through kresd's rundir/root.zone: kresd 5.6
    refuses anything but an https:// URL (the message kresd-py keeps for other
    schemes)."""
    if not KRESD56.exists():
        pytest.skip("Debian's kresd 5.6 is not installed")
    cfg = tmp_path / "ref.conf"
    cfg.write_text("modules.load('prefill')\n"
                   f"prefill.config({{['.'] = {{url = 'file://{tmp_path}/root.zone'}}}})\n")
    p = subprocess.run([str(KRESD56), "-n", "-a", f"{alloc_test_addr()}@53", "-c", str(cfg), str(tmp_path)],
                       capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL)
    assert p.returncode != 0
    assert "option url must contain a https:// URL of a zone file" in p.stdout + p.stderr
