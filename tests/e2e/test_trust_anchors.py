"""Trust anchors through the real binary: RFC 5011 rewrites a writable key file,
and a missing key file stops the start with a message naming it.

A knotd of its own (a fresh pool address, port 53) serves a root zone signed
here with dnspython: two KSKs and a ZSK. The resolver's writable key file holds
only the DS of the first KSK. One validated query later, the file holds that
KSK as a Valid DNSKEY and the second one in AddPend (RFC 5011 add hold-down),
in kresd's key-file format.
"""
from __future__ import annotations

import os
import signal
import subprocess
import time

import dns.dnssec
import dns.flags
import dns.message
import dns.name
import dns.query
import dns.zone
import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from tests.conftest import alloc_test_addr, need_root

from .hierarchy import KNOT_CONF, query
from .resolver import Resolver

pytestmark = need_root

EXIT_CONFIG = 3  # kresd.errors.EXIT_CONFIG (the e2e tests see only the binary)


def _key(flags):
    priv = ec.generate_private_key(ec.SECP256R1())
    return priv, dns.dnssec.make_dnskey(priv.public_key(), 13, flags=flags)


def _signed_root(addr: str, keys) -> str:
    zone = dns.zone.from_text(
        f"@ 3600 SOA a.root-servers.net. nobody.invalid. 1 3600 600 86400 300\n"
        f"@ 3600 NS a.root-servers.net.\n"
        f"a.root-servers.net. 3600 A {addr}\n"
        f"hello. 3600 TXT \"signed\"\n", origin=dns.name.root, relativize=False)
    now = int(time.time())
    dns.dnssec.sign_zone(zone, keys=keys, inception=now - 3600, lifetime=30 * 86400, dnskey_ttl=3600)
    return zone.to_text(relativize=False)


@pytest.fixture
def signed_root(tmp_path):
    addr = alloc_test_addr()
    ksk1, ksk2, zsk = _key(257), _key(257), _key(256)
    d = tmp_path / "knot-root"
    (d / "db").mkdir(parents=True)
    zfile = d / "root.zone"
    zfile.write_text(_signed_root(addr, [ksk1, ksk2, zsk]))
    conf = KNOT_CONF.format(dir=d, addr=addr) + f'zone:\n  - domain: "."\n    file: "{zfile}"\n'
    (d / "knot.conf").write_text(conf)
    log = open(d / "knotd.log", "ab")
    proc = subprocess.Popen(["knotd", "-c", str(d / "knot.conf")], stdin=subprocess.DEVNULL, stdout=log,
                            stderr=subprocess.STDOUT, start_new_session=True)
    log.close()
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                if query(addr, ".", "SOA", timeout=0.3, rd=False).answer:
                    break
            except Exception:
                if time.monotonic() > deadline or proc.poll() is not None:
                    raise RuntimeError((d / "knotd.log").read_text()[-2000:]) from None
                time.sleep(0.1)
        yield addr, ksk1[1], ksk2[1]
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(5)


def test_writable_key_file_is_rewritten_by_rfc5011(kresd_bin, tmp_path, signed_root):
    root_addr, ksk1, ksk2 = signed_root
    ds = dns.dnssec.make_ds(dns.name.root, ksk1, "SHA256")
    keyfile = tmp_path / "root.key"
    keyfile.write_text(f". 3600 IN DS {ds.key_tag} {ds.algorithm} 2 {ds.digest.hex().upper()}\n")
    config = ("modules.load('hints > iterate')\n"
              f"trust_anchors.add_file('{keyfile}')\n"
              "option('ALLOW_LOCAL', true)\n"
              f"hints.root({{['a.root-servers.net.'] = '{root_addr}'}})\n")
    addr = alloc_test_addr()
    r = Resolver(kresd_bin, addr, tmp_path / "rundir", config=config).start(probe=("hello.", "TXT"))
    try:
        q = dns.message.make_query("hello.", "TXT", want_dnssec=True)
        reply = dns.query.udp(q, addr, timeout=3)
        assert reply.flags & dns.flags.AD, r.log_tail()
        deadline = time.monotonic() + 5
        while "DNSKEY" not in keyfile.read_text() and time.monotonic() < deadline:
            time.sleep(0.1)
        text = keyfile.read_text()
        tag1, tag2 = dns.dnssec.key_id(ksk1), dns.dnssec.key_id(ksk2)
        lines = {line.rsplit("KeyTag:", 1)[-1]: line for line in text.splitlines()}
        assert "DNSKEY" in lines[str(tag1)] and " ; Valid: ; " in lines[str(tag1)], text
        assert lines[str(tag2)].startswith("; ") and " ; AddPend:" in lines[str(tag2)], text
        assert [p for p in os.listdir(tmp_path) if ".lock" in p] == []
    finally:
        r.stop()


def test_missing_key_file_stops_the_start(kresd_bin, tmp_path):
    missing = tmp_path / "nowhere" / "root.key"
    conf = tmp_path / "config"
    conf.write_text(f"trust_anchors.add_file('{missing}', true)\n")
    p = subprocess.run([str(kresd_bin), "-n", "-a", f"{alloc_test_addr()}@53", "-c", str(conf),
                        str(tmp_path / "rd")], capture_output=True, text=True, timeout=30)
    assert p.returncode == EXIT_CONFIG
    assert f"{conf}:1:" in p.stderr and str(missing) in p.stderr and "root.key" in p.stderr
    p = subprocess.run([str(kresd_bin), "-n", "-k", str(missing), "-a", f"{alloc_test_addr()}@53",
                        str(tmp_path / "rd")], capture_output=True, text=True, timeout=30)
    assert p.returncode == EXIT_CONFIG and str(missing) in p.stderr
