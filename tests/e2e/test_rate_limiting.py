"""The rate_limiting module on the real `kresd -f 2` (issue 15, scope 5).

A flood from one /24 (sources in 127.0.15.0/24, many source ports, so the
kernel's SO_REUSEPORT hash spreads it over both forks) faster than the limit
is cut: beyond instant_limit + rate_limit x duration in total (the buckets are
shared by the forks through the rundir's table), answers are TC=1 (every
slip-th) or dropped; meanwhile a client in 127.0.16.0/24 at a modest rate gets
every answer, without TC. Over TCP the flooding subnet is not limited.
The answers come from the local policy (no upstream): the limit is checked in
C before the packet cache and the full path alike (tests/property/
test_native_ratelimit.py drives the batch itself).
"""
from __future__ import annotations

import selectors
import socket
import threading
import time

import dns.flags
import dns.message
import dns.query
import pytest

from .test_kresd_forks import LOCAL_CONFIG, group_factory, map_json  # noqa: F401 (fixture)

pytestmark = pytest.mark.e2e
RATE, INSTANT = 50, 20
CONFIG = LOCAL_CONFIG + f"""modules.load('rate_limiting')
rate_limiting.config{{rate_limit = {RATE}, instant_limit = {INSTANT}, slip = {{slip}}, v4_prefix = 24}}
"""


def _flood(server, qps: float, seconds: float, nsocks: int = 64):
    """Queries from 127.0.15.1-64 (one socket each, ephemeral ports) at qps
    for seconds; returns (sent, plain answers, TC answers, duration)."""
    socks = []
    for i in range(nsocks):
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.bind((f"127.0.15.{i + 1}", 0))
        s.setblocking(False)
        socks.append(s)
    got = {"ok": 0, "tc": 0}
    stop = threading.Event()

    def receive():
        sel = selectors.DefaultSelector()
        for s in socks:
            sel.register(s, selectors.EVENT_READ)
        while not stop.is_set():
            for key, _ in sel.select(0.05):
                try:
                    wire = key.fileobj.recv(4096)
                except BlockingIOError:
                    continue
                r = dns.message.from_wire(wire)
                got["tc" if r.flags & dns.flags.TC else "ok"] += 1

    rx = threading.Thread(target=receive)
    rx.start()
    wire = dns.message.make_query("flood.test.", "A").to_wire()
    start = time.monotonic()
    sent = 0
    try:
        while (elapsed := time.monotonic() - start) < seconds:
            while sent < elapsed * qps:
                socks[sent % nsocks].sendto(wire, server)
                sent += 1
            time.sleep(0.002)
        duration = time.monotonic() - start
        time.sleep(1.0)  # the last answers
    finally:
        stop.set()
        rx.join()
        for s in socks:
            s.close()
    return sent, got["ok"], got["tc"], duration


def _modest(server, qps: float, seconds: float, out: dict):
    """One client in 127.0.16.0/24 asking one query at a time at qps."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.16.7", 0))
    try:
        for i in range(int(qps * seconds)):
            q = dns.message.make_query(f"n{i}.test.", "A")
            r = dns.query.udp(q, server[0], port=server[1], timeout=2.0, sock=sock)
            out["ok" if not r.flags & dns.flags.TC else "tc"] += 1
            time.sleep(1 / qps)
    except Exception as e:  # noqa: BLE001 - reported by the test
        out["error"] = repr(e)


@pytest.mark.parametrize("slip", [2, 0])
def test_flood_cut_across_forks_other_subnet_served(group_factory, listen_addr, tmp_path, slip):  # noqa: F811
    g = group_factory(tmp_path / "run", ["-f", "2", "-a", f"{listen_addr[0]}@{listen_addr[1]}"],
                      CONFIG.replace("{slip}", str(slip)), n=2)
    modest = {"ok": 0, "tc": 0}
    t = threading.Thread(target=_modest, args=(listen_addr, 10, 3.0, modest))
    t.start()
    sent, ok, tc, duration = _flood(listen_addr, 1000, 3.0)
    t.join()
    assert "error" not in modest, modest
    assert modest == {"ok": 30, "tc": 0}  # the other subnet lost nothing
    allowed = INSTANT + RATE * duration  # one budget for both forks together
    print(f"slip={slip} sent={sent} ok={ok} tc={tc} allowed={allowed:.0f} duration={duration:.2f}")
    assert 0.7 * allowed <= ok <= 1.25 * allowed + 5, (sent, ok, tc, allowed)
    limited = sent - ok
    if slip:
        assert abs(tc - limited / slip) <= 0.1 * limited + 5, (sent, ok, tc)
    else:
        assert tc == 0
    per_fork = map_json(g.leader_tty, "rate_limiting.stats()")
    assert len(per_fork) == 2 and all(s["limited"] > 0 for s in per_fork), per_fork  # both forks got some
    assert abs(sum(s["limited"] for s in per_fork) - limited) <= 0.02 * limited + 5, (per_fork, limited)
    # TCP is never limited: the flooding subnet still gets its answers there
    with socket.create_connection(listen_addr, source_address=("127.0.15.200", 0), timeout=3) as s:
        for _ in range(5):
            r = dns.query.tcp(dns.message.make_query("flood.test.", "A"), listen_addr[0],
                              port=listen_addr[1], sock=s, timeout=3)
            assert not r.flags & dns.flags.TC
