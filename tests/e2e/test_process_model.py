"""Process model end to end, without the kresd CLI wiring: tools/supervisor.py and activation.

The "kresd" here is tests/unit/kresd/procmodel_helper.py (`worker`: a UDP+TCP
echo on the `-S` fds that stops gracefully on SIGTERM and sends READY=1), so
these tests check the supervisor's socket hand-over, not DNS. Addresses come
from the 127.0.11.x pool (listen_addr), ports are free ones.
"""
from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
HELPER = ROOT / "tests" / "unit" / "kresd" / "procmodel_helper.py"
FAKE_KRESD = f"{sys.executable} {HELPER}"


def env():
    return dict(os.environ, PYTHONPATH=str(ROOT), PYTHONUNBUFFERED="1")


def udp(addr, payload=b"q", timeout=5.0) -> bytes:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.settimeout(timeout)
        s.sendto(payload, addr)
        return s.recv(200)


def tcp(addr, payload=b"q\n", timeout=5.0) -> bytes:
    with socket.create_connection(addr, timeout=timeout) as s:
        s.sendall(payload)
        buf = b""
        while not buf.endswith(b"\n"):
            chunk = s.recv(200)
            if not chunk:
                raise ConnectionError("closed before the answer")
            buf += chunk
        return buf


def pid_of(answer: bytes) -> int:
    return int(answer.split(b" ", 2)[1])


def wait_serving(addr, deadline=10.0) -> int:
    end = time.monotonic() + deadline
    while time.monotonic() < end:
        try:
            return pid_of(udp(addr, timeout=0.3))
        except OSError:
            time.sleep(0.05)
    raise AssertionError(f"nothing answers on {addr}")


class Load:
    """Continuous UDP and TCP queries from two threads; counts answers, failures, pids."""

    def __init__(self, addr):
        self.addr = addr
        self.stop = threading.Event()
        self.ok = 0
        self.failures: list[str] = []
        self.pids: set[int] = set()
        self.threads = [threading.Thread(target=self._run, args=(f,)) for f in (udp, tcp)]

    def _run(self, fn):
        n = 0
        while not self.stop.is_set():
            n += 1
            payload = f"{fn.__name__}{n}\n".encode()
            try:
                answer = fn(self.addr, payload)
                if not answer.endswith(payload):
                    raise AssertionError(f"wrong answer {answer!r}")
                self.pids.add(pid_of(answer))
                self.ok += 1
            except Exception as e:  # noqa: BLE001 - counted
                self.failures.append(f"{fn.__name__} #{n}: {e!r}")

    def __enter__(self):
        for t in self.threads:
            t.start()
        return self

    def __exit__(self, *exc):
        self.stop.set()
        for t in self.threads:
            t.join(15)


def start_supervisor(addr, *extra) -> subprocess.Popen:
    cmd = [sys.executable, "-m", "tools.supervisor", "-a", f"{addr[0]}@{addr[1]}", "--kresd", FAKE_KRESD,
           "--ready-timeout", "5", *extra, "--", "worker"]
    return subprocess.Popen(cmd, env=env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)


def finish(p: subprocess.Popen) -> tuple[int, str]:
    if p.poll() is None:
        p.send_signal(signal.SIGTERM)
    try:
        code = p.wait(20)
    finally:
        try:
            os.killpg(p.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    _, err = p.communicate()
    return code, err


def test_supervisor_graceful_restarts_under_load_lose_nothing(listen_addr):
    p = start_supervisor(listen_addr)
    try:
        first = wait_serving(listen_addr)
        served = [first]
        with Load(listen_addr) as load:
            for _ in range(3):
                os.kill(p.pid, signal.SIGHUP)
                end = time.monotonic() + 10
                while time.monotonic() < end:  # until the new kresd answers
                    pid = pid_of(udp(listen_addr))
                    if pid not in served:
                        served.append(pid)
                        break
                    time.sleep(0.02)
                else:
                    raise AssertionError("restart did not happen")
            time.sleep(0.2)
        assert load.failures == [], load.failures[:5]
        assert load.ok > 50 and len(served) == 4
    finally:
        code, err = finish(p)
    assert code == 0, err
    assert err.count("kresd restarted") == 3


def test_supervisor_restarts_a_killed_kresd(listen_addr):
    p = start_supervisor(listen_addr)
    try:
        first = wait_serving(listen_addr)
        os.kill(first, signal.SIGKILL)
        end = time.monotonic() + 10
        while time.monotonic() < end:
            try:
                if pid_of(udp(listen_addr, timeout=0.5)) != first:
                    break
            except OSError:
                pass
        else:
            raise AssertionError("no new kresd")
        assert tcp(listen_addr).endswith(b"q\n")
    finally:
        code, err = finish(p)
    assert code == 0 and "killed by signal SIGKILL" in err


def test_supervisor_halts_on_boot_error(listen_addr):
    cmd = [sys.executable, "-m", "tools.supervisor", "-a", f"{listen_addr[0]}@{listen_addr[1]}",
           "--kresd", FAKE_KRESD, "--", "worker", "--crash", "0", "--crash-code", "4"]
    r = subprocess.run(cmd, env=env(), capture_output=True, text=True, timeout=30)
    assert r.returncode == 4 and "not restarting" in r.stderr


@pytest.mark.skipif(shutil.which("systemd-socket-activate") is None, reason="systemd-socket-activate missing")
def test_supervisor_under_socket_activation(listen_addr):
    """systemd-socket-activate passes a TCP socket to the supervisor, which hands it to kresd."""
    addr, port = listen_addr
    cmd = ["systemd-socket-activate", "-l", f"{addr}:{port}", "--fdname=dns", "-E", f"PYTHONPATH={ROOT}",
           sys.executable, "-m", "tools.supervisor", "--kresd", FAKE_KRESD, "--", "worker"]
    p = subprocess.Popen(cmd, env=env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                         start_new_session=True)
    try:
        end = time.monotonic() + 10
        answer = None
        while answer is None and time.monotonic() < end:
            try:
                answer = tcp(listen_addr, timeout=1)
            except OSError:
                time.sleep(0.05)
        assert answer is not None and answer.endswith(b"q\n")
    finally:
        code, err = finish(p)
    assert "-S 3" in err, err
