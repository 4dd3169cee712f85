"""A SIGTERM at any moment of the boot ends `kresd` cleanly: exit code 0 and no
control socket left behind, on both worker loops (uvloop, the default, and
the stdlib's with KRESD_LOOP=asyncio), for `-n` and for `-f 2`.

The program catches SIGTERM from its first Python line (kresd/__init__.py);
before that the interpreter itself is starting and the default disposition
applies, as for any program. So each start waits until /proc shows SIGTERM
caught, then signals after a random delay that falls anywhere in the rest of
the boot (config, cache, forks, sockets) or just after it.
"""
from __future__ import annotations

import os
import random
import signal
import subprocess
import time
from pathlib import Path

import pytest

from tests.conftest import alloc_test_addr, free_port

pytestmark = pytest.mark.e2e
SIGTERM_BIT = 1 << (signal.SIGTERM - 1)


def caught_sigterm(pid: int) -> bool:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("SigCgt:"):
                return bool(int(line.split()[1], 16) & SIGTERM_BIT)
    except (FileNotFoundError, ProcessLookupError):
        return False
    return False


@pytest.mark.parametrize("loop", ["uvloop", "asyncio"])
@pytest.mark.parametrize("forks", [1, 2])
def test_sigterm_during_boot_is_a_clean_stop(kresd_bin, tmp_path, loop, forks):
    addr = alloc_test_addr()
    port = free_port(addr)
    conf = tmp_path / "kresd.conf"
    conf.write_text(f"net.listen('{addr}', {port})\nmodules.load('stats')\n")
    env = dict(os.environ, KRESD_LOOP=loop)
    rng = random.Random()
    for i in range(6):
        rundir = tmp_path / f"run{i}"
        rundir.mkdir()
        argv = [str(kresd_bin), "-n", "-c", str(conf)] + (["-f", str(forks)] if forks > 1 else [])
        proc = subprocess.Popen(argv + [str(rundir)], stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, start_new_session=True, env=env)
        try:
            deadline = time.monotonic() + 20
            while not caught_sigterm(proc.pid) and proc.poll() is None and time.monotonic() < deadline:
                time.sleep(0.001)
            assert caught_sigterm(proc.pid), "kresd never caught SIGTERM"
            time.sleep(rng.uniform(0, 0.4))  # the boot takes ~0.1-0.3 s here
            proc.send_signal(signal.SIGTERM)
            out, _ = proc.communicate(timeout=20)
        finally:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
        assert proc.returncode == 0, out.decode(errors="replace")[-2000:]
        tty = rundir / "tty"
        left = sorted(tty.iterdir()) if tty.exists() else []
        assert not left, (left, proc.pid, out.decode(errors="replace")[-3000:])
