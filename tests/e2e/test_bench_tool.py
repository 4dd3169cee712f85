"""tools/bench/run, the operator's benchmark, end to end: one tiny run (hit workload, 2 s).

It starts its own knotd hierarchy and resolvers on three addresses of the test
pool (not its default 127.0.30.x), our installed kresd and Debian's kresd 5.6,
and must leave a Markdown table, an SVG chart and one measurement per server.
No assertion on speed: only that answers came back and were counted.
"""
from __future__ import annotations

import json
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from tests.conftest import alloc_test_addr, free_port

pytestmark = [pytest.mark.e2e, pytest.mark.root]

ROOT = Path(__file__).resolve().parents[2]


def test_bench_tool_hit_smoke(kresd_bin, tmp_path):
    addr, root_addr, zone_addr = alloc_test_addr(), alloc_test_addr(), alloc_test_addr()
    out = tmp_path / "out"
    cmd = [sys.executable, "-m", "tools.bench", "--duration", "2", "--workloads", "hit",
           "--configs", "ours-1,kresd-1", "--names", "3000", "--timeout", "1",
           "--addr", addr, "--port", str(free_port(addr)), "--root-addr", root_addr,
           "--zone-addr", zone_addr, "--state", str(tmp_path / "state"), "--outdir", str(out),
           "--kresd", str(kresd_bin)]
    p = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=90)
    assert p.returncode == 0, p.stderr[-3000:]
    assert "kresd-py -f 1" in p.stdout and "kresd 5.6, 1 process" in p.stdout

    rows = [json.loads(line) for line in (out / "results.jsonl").read_text().splitlines()]
    assert sorted(r["config"] for r in rows) == ["kresd-1", "ours-1"]
    for r in rows:
        assert r["workload"] == "hit"
        assert r["sanity"] == {"a": True, "cname": True, "nxdomain": True}, r
        assert r["qps"] > 0 and r["completed"] > 0
        assert r["cpu_us"] > 0 and r["server_cpu_s"] > 0
        assert 0 < r["p50_us"] <= r["p99_us"]
        assert 0 <= r["loss_pct"] < 100
        assert r["rss_mib"] > 0 and r["last_of_start"]  # read from /proc after the (only) workload

    md = (out / "summary.md").read_text()
    assert "| workload | server | QPS | CPU/answer |" in md
    ours = next(line for line in md.splitlines() if line.startswith("| hit | kresd-py -f 1 |"))
    ratio = ours.split(" | ")[7]
    assert float(ratio) > 0  # our QPS over kresd's, measured side by side
    assert "cores" in md and "Linux" in md  # the machine the figures were taken on
    assert "Worker RSS after the benchmark" in md and "Worker RSS after the benchmark" in p.stdout

    svg = ET.fromstring((out / "chart.svg").read_text())
    bars = [r for r in svg.iter("{http://www.w3.org/2000/svg}rect") if r.get("fill") != "white"]
    assert len(bars) == 2 and all(float(b.get("width")) > 0 for b in bars)
    assert json.loads((out / "meta.json").read_text())["machine"]["cores"] >= 1
