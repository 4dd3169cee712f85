"""tools/startup_time.py, the start-up and restart-silence measure, end to end.

One start per mode with our installed kresd (Debian's kresd skipped), on an
address of the test pool: each mode must get an answer from the started (or
restarted) process and print one figure. No assertion on speed.
"""
from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import alloc_test_addr

pytestmark = [pytest.mark.e2e, pytest.mark.root]

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("mode", [[], ["--restart"], ["--supervisor"], ["--supervisor", "--signal", "TERM"]])
def test_startup_time_tool_measures_each_mode(kresd_bin, mode):
    cmd = [sys.executable, "-m", "tools.startup_time", "-n", "1", "--addr", alloc_test_addr(),
           "--ours", str(kresd_bin), "--kresd", "", *mode]
    p = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stderr[-3000:]
    lines = p.stdout.splitlines()
    assert len(lines) == 2, p.stdout
    assert re.match(r"kresd-py +median +\d+\.\d ms .*\(n=1\)$", lines[1]), p.stdout
