"""The `graphite` module on a real `kresd -f 2`: a small carbon listener on
loopback (TCP and UDP) receives kresd's metric names, under each worker's
prefix, with numeric values and a timestamp."""
from __future__ import annotations

import re
import socket
import threading
import time

import pytest

from tests.conftest import alloc_test_addr, free_port

from .test_kresd_forks import LOCAL_CONFIG, Group, ask

pytestmark = pytest.mark.e2e
LINE = re.compile(r"^(\S+) (-?[0-9.e+]+) (\d+)$")


class Carbon:
    """Collects carbon plaintext lines on addr:port (TCP and UDP)."""

    def __init__(self, addr: str, port: int):
        self.lines: list[str] = []
        self.tcp = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.tcp.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.tcp.bind((addr, port))
        self.tcp.listen(8)
        self.udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.udp.bind((addr, port))
        self.udp.settimeout(0.2)
        self.tcp.settimeout(0.2)
        self.stop = threading.Event()
        self.threads = [threading.Thread(target=self._accept), threading.Thread(target=self._udp)]
        for t in self.threads:
            t.start()

    def _accept(self):
        while not self.stop.is_set():
            try:
                conn, _ = self.tcp.accept()
            except OSError:
                continue
            threading.Thread(target=self._read, args=(conn,), daemon=True).start()

    def _read(self, conn):
        buf = b""
        conn.settimeout(0.2)
        while not self.stop.is_set():
            try:
                chunk = conn.recv(65536)
            except OSError:
                continue
            if not chunk:
                break
            buf += chunk
            *done, buf = buf.split(b"\n")
            self.lines += [d.decode() for d in done]
        conn.close()

    def _udp(self):
        while not self.stop.is_set():
            try:
                data, _ = self.udp.recvfrom(65536)
            except OSError:
                continue
            self.lines += [d for d in data.decode().split("\n") if d]

    def close(self):
        self.stop.set()
        for t in self.threads:
            t.join(5)
        self.tcp.close()
        self.udp.close()


@pytest.mark.parametrize("tcp", [True, False], ids=["tcp", "udp"])
def test_carbon_receives_kresd_metric_names(kresd_bin, tmp_path, tcp):
    addr = alloc_test_addr()
    dns_port, carbon_port = free_port(addr), free_port(addr)
    carbon = Carbon(addr, carbon_port)
    config = LOCAL_CONFIG + (f"modules.load('graphite')\ngraphite.config({{host = '{addr}', port = {carbon_port}, "
                             f"prefix = 'kp.' .. worker.id, interval = 200, tcp = {str(tcp).lower()}}})\n")
    g = Group(kresd_bin, tmp_path / "run", ["-f", "2", "-a", f"{addr}@{dns_port}"], config=config)
    try:
        g.start(2)
        for i in range(5):
            ask((addr, dns_port), f"g{i}.test.")
        deadline = time.monotonic() + 15
        names = set()
        while time.monotonic() < deadline:
            names = {m.group(1) for m in map(LINE.match, list(carbon.lines)) if m}
            if {"kp.0.request.udp", "kp.1.request.udp", "kp.0.cache.hits", "kp.1.worker.queries"} <= names:
                break
            time.sleep(0.1)
        assert {"kp.0.request.udp", "kp.1.request.udp", "kp.0.answer.nxdomain", "kp.0.cache.hits",
                "kp.1.worker.queries", "kp.0.worker.fastpath.packet_hits"} <= names, sorted(names)[:40]
        bad = [line for line in carbon.lines if not LINE.match(line)]
        assert not bad, bad[:5]
        sent = sum(float(m.group(2)) for m in map(LINE.match, carbon.lines)
                   if m and m.group(1).endswith(".request.udp"))
        assert sent > 0
        assert g.stop() == 0
    finally:
        g.stop()
        carbon.close()
