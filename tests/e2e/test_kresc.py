"""`kresc` (tools/kresc.py) against a real `kresd -f 2`, and `kresd --check-config`.

kresc: one command per call (to a socket or to the rundir's leader, map()
included, a failing command exits 1, an unreachable socket 2), and the
interactive console driven through a pseudo-terminal as a person would use
it (prompt, answers, history file written at the end).
--check-config: a good config exits 0 and writes nothing; a bad one exits 3
with file:line; neither binds the address the config names.
"""
from __future__ import annotations

import os
import pty
import select
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import alloc_test_addr, free_port

from .test_kresd_forks import LOCAL_CONFIG, Group

pytestmark = pytest.mark.e2e
KRESC = Path(sys.executable).parent / "kresc"


def kresc(*args, env=None):
    return subprocess.run([str(KRESC), *map(str, args)], capture_output=True, text=True, timeout=30, env=env)


@pytest.fixture
def group(kresd_bin, tmp_path):
    addr = alloc_test_addr()
    port = free_port(addr)
    g = Group(kresd_bin, tmp_path / "run", ["-a", f"{addr}@{port}", "-f", "2"],
              config=LOCAL_CONFIG + "answer_me = 42\n")
    g.start(2)
    try:
        yield g
    finally:
        g.stop()


def test_one_command(group):
    leader = group.proc.pid
    fork = next(p for p in group.pids() if p != leader)
    r = kresc(group.rundir, "worker.id")
    assert (r.returncode, r.stdout.strip()) == (0, "0"), r
    r = kresc(group.tty_dir / str(fork), "worker.id")
    assert (r.returncode, r.stdout.strip()) == (0, "1"), r
    r = kresc(group.rundir, "answer_me", "+", "1")  # words are joined
    assert r.stdout.strip() == "43", r
    r = kresc(group.rundir, "map 'worker.id'")
    assert r.returncode == 0 and "0" in r.stdout and "1" in r.stdout, r
    r = kresc(group.rundir, "nosuchfunction()")
    assert r.returncode == 1 and r.stdout.startswith("error: "), r


def test_unreachable(tmp_path):
    r = kresc(tmp_path / "nothing-here")
    assert r.returncode == 2 and "kresc:" in r.stderr, r
    (tmp_path / "tty").mkdir()
    stale = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    stale.bind(str(tmp_path / "tty" / "999999"))
    stale.close()  # a socket file nobody listens on
    r = kresc(tmp_path, "worker.id")
    assert r.returncode == 2 and "no live control socket" in r.stderr, r


class PtyReader:
    """Reads the pty until a marker; what came after the marker is kept for the next wait."""

    def __init__(self, fd: int):
        self.fd, self.buf = fd, b""

    def until(self, needle: bytes, timeout: float = 15.0) -> bytes:
        end = time.monotonic() + timeout
        while needle not in self.buf:
            left = end - time.monotonic()
            if left <= 0:
                raise AssertionError(f"no {needle!r} in {self.buf!r}")
            r, _, _ = select.select([self.fd], [], [], left)
            if r:
                try:
                    chunk = os.read(self.fd, 4096)
                except OSError:
                    break
                if not chunk:
                    break
                self.buf += chunk
        head, sep, self.buf = self.buf.partition(needle)
        if not sep:
            raise AssertionError(f"no {needle!r} in {head!r}")
        return head + sep


def _exit_code(pid: int, timeout: float) -> int | None:
    """The child's exit code; SIGKILL and None when it is still running after timeout."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            return os.waitstatus_to_exitcode(status)
        time.sleep(0.05)
    os.kill(pid, 9)
    os.waitpid(pid, 0)
    return None


def test_interactive_console_on_a_pty(group, tmp_path):
    env = dict(os.environ, XDG_STATE_HOME=str(tmp_path / "state"))
    pid, fd = pty.fork()
    if pid == 0:  # the child: kresc on the pty as its terminal
        os.execve(str(KRESC), [str(KRESC), str(group.rundir)], env)
    try:
        tty = PtyReader(fd)
        tty.until(b"> ")
        os.write(fd, b"answer_me * 2\n")
        assert b"84" in tty.until(b"84")
        tty.until(b"> ")
        os.write(fd, b"map 'worker.id'\n")
        assert b"[2] = 1" in tty.until(b"[2] = 1")
        tty.until(b"> ")
        os.write(fd, b"exit\n")
        assert _exit_code(pid, 15) == 0
    finally:
        os.close(fd)
    history = (tmp_path / "state" / "kresc" / "history").read_text()
    assert "answer_me * 2" in history and "map 'worker.id'" in history


def _listening(addr: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        try:
            s.bind((addr, port))
        except OSError:
            return True
    return False


def test_check_config(kresd_bin, tmp_path):
    addr = alloc_test_addr()
    port = free_port(addr)
    rundir = tmp_path / "rundir"
    rundir.mkdir()
    (rundir / "good.conf").write_text(f"net.listen('{addr}', {port})\ncache.size = 50 * MB\n"
                                      "cache.max_ttl(600)\nmodules.load('stats')\n")
    (rundir / "bad.conf").write_text(f"net.listen('{addr}', {port})\n\nmodules.load('nosuchmodule')\n")
    before = sorted(os.listdir(rundir))
    r = subprocess.run([str(kresd_bin), "--check-config", "-c", "good.conf", str(rundir)],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0 and "configuration OK" in r.stdout, r
    r = subprocess.run([str(kresd_bin), "--check-config", "-c", "bad.conf", str(rundir)],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 3 and "bad.conf:3:" in r.stderr and "nosuchmodule" in r.stderr, r
    assert sorted(os.listdir(rundir)) == before  # no cache, no tty, nothing written
    assert not _listening(addr, port)
    r = subprocess.run([str(kresd_bin), "--check-config", str(tmp_path / "missing")],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 3 and "no such directory" in r.stderr, r
