"""Misses in flight on the cache-miss fast path survive a reload of the real binary.

Two scripted authorities (`Authority`, a thread each, on port 53): the root on
127.0.10.18, which delegates `slow.` to ns.slow. at 127.0.10.19, and that
zone, whose every name has an A record, answered only DELAY seconds after
the question. Once `slow.` is cached,
`kresd -f 1` asks those names on its fast miss path (no Request, no Task);
a `reload()` right after 40 such questions replaces the workers, and the old
one must still answer every one of them before it exits (Server.close waits
for the fast misses in flight as for Tasks).
Must not: import the project packages (the e2e tests only see the binary).
"""
from __future__ import annotations

import heapq
import selectors
import socket
import subprocess
import threading
import time

import dns.flags
import dns.message
import dns.name
import dns.query
import dns.rcode
import dns.rdata
import dns.rdatatype
import dns.rrset
import pytest

from .test_kresd_forks import group_factory, map_json, wait_for  # noqa: F401  (fixture)

pytestmark = pytest.mark.e2e
ADDR = "127.0.10.18"  # the root
SLOW_ADDR = "127.0.10.19"  # slow.
DELAY = 0.6
SLOW = dns.name.from_text("slow.")
CONFIG = f"""modules.load('hints > iterate')
trust_anchors.remove('.')
option('ALLOW_LOCAL', true)
hints.root({{['a.root-servers.net.'] = '{ADDR}'}})
"""


def a_of(name: dns.name.Name) -> str:
    """The A record of a name of slow. (from its letters, any case)."""
    return f"192.0.2.{sum(name.to_text().lower().encode()) % 250 + 1}"


class Authority:
    """The root (role "root": a.root-servers.net. at ADDR, `slow.` delegated to
    ns.slow. at SLOW_ADDR) or `slow.` (role "slow": its names answered DELAY
    seconds late)."""

    def __init__(self, addr: str, role: str) -> None:
        self.addr, self.role = addr, role
        self._stop = threading.Event()
        self._later: list = []
        self._seq = 0

    def start(self) -> "Authority":
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind((self.addr, 53))
        self.sock.setblocking(False)
        self.thread = threading.Thread(target=self._run, name=f"authority-{self.role}", daemon=True)
        self.thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self.thread.join(5)
        self.sock.close()

    def reply(self, q: dns.message.Message) -> tuple[bytes, float]:
        r = dns.message.make_response(q)
        name, rtype = q.question[0].name, q.question[0].rdtype
        r.flags |= dns.flags.AA
        if self.role == "root" and name == dns.name.root and rtype == dns.rdatatype.NS:
            r.answer.append(dns.rrset.from_text(".", 86400, "IN", "NS", "a.root-servers.net."))
            r.additional.append(dns.rrset.from_text("a.root-servers.net.", 86400, "IN", "A", ADDR))
        elif self.role == "root" and name.is_subdomain(SLOW):
            r.flags &= ~dns.flags.AA  # the referral
            r.authority.append(dns.rrset.from_text("slow.", 86400, "IN", "NS", "ns.slow."))
            r.additional.append(dns.rrset.from_text("ns.slow.", 86400, "IN", "A", SLOW_ADDR))
        elif self.role == "slow" and name.is_subdomain(SLOW) and name != SLOW and rtype == dns.rdatatype.A:
            address = SLOW_ADDR if name == dns.name.from_text("ns.slow.") else a_of(name)
            r.answer.append(dns.rrset.from_rdata_list(name, 3600, [dns.rdata.from_text("IN", "A", address)]))
            return r.to_wire(), DELAY
        elif not (self.role == "slow" and name.is_subdomain(SLOW)):
            r.set_rcode(dns.rcode.NXDOMAIN)  # (other types of slow. names: NODATA)
        return r.to_wire(), 0.0

    def _run(self) -> None:
        sel = selectors.DefaultSelector()
        sel.register(self.sock, selectors.EVENT_READ)
        while not self._stop.is_set():
            now = time.monotonic()
            while self._later and self._later[0][0] <= now:
                _t, _n, data, dest = heapq.heappop(self._later)
                try:
                    self.sock.sendto(data, dest)
                except OSError:
                    pass
            wait = min(0.02, max(0.0, self._later[0][0] - now)) if self._later else 0.02
            if not sel.select(wait):
                continue
            while True:
                try:
                    wire, src = self.sock.recvfrom(65535)
                except (BlockingIOError, InterruptedError):
                    break
                try:
                    q = dns.message.from_wire(wire)
                    data, delay = self.reply(q)
                except Exception:  # noqa: BLE001 - not ours to judge
                    continue
                self._seq += 1
                heapq.heappush(self._later, (time.monotonic() + delay, self._seq, data, src))
        sel.close()


@pytest.fixture
def authority():
    servers = [Authority(ADDR, "root").start(), Authority(SLOW_ADDR, "slow").start()]
    yield servers
    for a in servers:
        a.stop()


def test_misses_in_flight_are_answered_across_a_reload(kresd_bin, authority, group_factory, tmp_path,
                                                        listen_addr):
    g = group_factory(tmp_path / "rd", ["-f", "2", "-a", f"{listen_addr[0]}@{listen_addr[1]}"], CONFIG, n=2)
    warm = dns.message.make_query("m0.slow.", "A")
    r = dns.query.udp(warm, listen_addr[0], port=listen_addr[1], timeout=5)
    assert [rr.to_text() for rr in r.answer] and r.answer[0][0].address == a_of(dns.name.from_text("m0.slow."))
    old = sorted(int(p.name) for p in g.tty_dir.iterdir() if p.name.isdigit())
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as c:
        c.settimeout(8)
        sent = {}
        for i in range(1, 41):
            q = dns.message.make_query(f"m{i}.slow.", "A")
            sent[q.id] = q
            c.sendto(q.to_wire(), listen_addr)
        time.sleep(0.15)  # all asked upstream, none answered yet (DELAY)
        inflight = map_json(g.leader_tty, "worker.stats().fastpath.miss.inflight")
        assert sum(inflight) >= 30, inflight  # on the fast miss path (one fork: one client socket)
        reload = subprocess.run([str(kresd_bin.parent / "kresc"), str(g.rundir), "reload()"],
                                capture_output=True, text=True, timeout=60)
        assert reload.returncode == 0, reload
        got = {}
        while len(got) < len(sent):
            m = dns.message.from_wire(c.recv(65535))
            got[m.id] = m
    for qid, q in sent.items():
        name = q.question[0].name
        assert [rd.address for rr in got[qid].answer for rd in rr] == [a_of(name)], got[qid]
    wait_for(lambda: not set(old) & {int(p.name) for p in g.tty_dir.iterdir() if p.name.isdigit()}, 30,
             "the old workers gone")
