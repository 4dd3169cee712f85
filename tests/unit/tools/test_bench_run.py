"""tools/bench/run.py: the command line and the dnsperf command of each workload (no network)."""
from __future__ import annotations

from pathlib import Path

import pytest

from tools.bench import run


def test_defaults_are_short_runs_of_every_server_on_our_own_addresses():
    a = run.parse_args([])
    assert a.configs == ["ours-1", "ours-2", "kresd-1", "kresd-2"]
    assert a.workloads == ["hit", "hitlat", "miss"]
    assert (a.duration, a.reps) == (10, 1)
    assert a.addr.startswith("127.0.30.") and a.root_addr.startswith("127.0.30.")
    assert a.kresd == run.ROOT / ".venv" / "bin" / "kresd" and a.kresd.is_absolute()
    assert a.ref_kresd == Path("/usr/sbin/kresd")
    assert str(a.outdir).startswith("/tmp/kresd-bench/")


def test_signed_adds_validated_misses_and_vmiss_needs_signed(capsys):
    assert run.parse_args(["--signed", "--workloads", "hit"]).workloads == ["hit", "vmiss"]
    with pytest.raises(SystemExit):
        run.parse_args(["--workloads", "vmiss"])
    with pytest.raises(SystemExit):
        run.parse_args(["--configs", "ours-3"])
    assert "unknown config" in capsys.readouterr().err


def test_dnsperf_commands():
    a = run.parse_args(["--duration", "3", "--state", "/st", "--rate", "5000"])
    hit = run.dnsperf_cmd("hit", a)
    assert hit[:3] == ["taskset", "-c", str(a.loadgen_cpu)] and hit[3] == "dnsperf"
    assert ["-s", a.addr] == hit[4:6] and "-v" in hit and ["-l", "3"] == hit[8:10]
    assert "/st/queries/hit.txt" in hit and "-q" in hit and "-Q" not in hit
    lat = run.dnsperf_cmd("hitlat", a)
    assert lat[lat.index("-Q") + 1] == "5000" and "-q" not in lat
    miss = run.dnsperf_cmd("miss", a)
    assert "/st/queries/miss.txt" in miss and miss[miss.index("-n") + 1] == "1"
    assert "/st/queries/vmiss.txt" in run.dnsperf_cmd("vmiss", a)


def test_kresd_config_listens_on_the_bench_address_and_validates_only_when_asked():
    conf = run.KRESD_CONF.format(addr="127.0.30.1", port=5300, root_addr="127.0.30.2",
                                 validation="")
    assert "net.listen('127.0.30.1', 5300, { kind = 'dns' })" in conf
    assert "['a.root-servers.net.'] = '127.0.30.2'" in conf
    assert "trust_anchors.remove('.')" in conf and "add_file" not in conf


def test_machine_names_cpu_cores_and_kernel():
    m = run.machine()
    assert m["cores"] >= 1 and m["kernel"] and m["cpu"]
