"""CPU of one cache miss, in-process (a developer tool, not a benchmark).

Owns: driving the worker's miss path without sockets: the engine with the
tools/bench config (its modules: hints, stats, policy and the defaults), the
client query parsed as the server does, the resolution driven synchronously
against a fake authoritative server for `perf.` that answers as knotd does
(AA, the A record compressed against the question, OPT echoed), and the answer
rendered as the server does. It prints the µs per miss with the fake server's
own time taken out, then (with --profile) a cProfile of the same loop.
Must not: be used as the referee (tools/bench/run is); the upstream socket
I/O and asyncio are not in this figure (tools/missprof_live.py has them).

    .venv/bin/python tools/missprof.py [-n 3000] [--profile] [--sort tottime]
"""
from __future__ import annotations

import argparse
import cProfile
import os
import pstats
import struct
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

import dns.message  # noqa: E402
import dns.name  # noqa: E402
import dns.rrset  # noqa: E402

from kresd.engine import Engine, FakeScheduler  # noqa: E402
from workers.server import Action, parse_client_query, render_answer  # noqa: E402
from workers.settings import Settings  # noqa: E402
from workers.transport import drive_sync  # noqa: E402

ROOT_ADDR, ZONE_ADDR = "127.0.30.2", "127.0.30.3"
CONFIG = f"""
net.ipv6 = false
option('ALLOW_LOCAL', true)
modules.load('hints > iterate')
hints.root({{ ['a.root-servers.net.'] = '{ROOT_ADDR}' }})
trust_anchors.remove('.')
modules.load('stats')
cache.size = 100 * MB
"""


class FakeNet:
    """root: referral to perf. (dnspython); perf.: knotd's minimal A answer, from
    the query bytes (ID and QNAME case echoed). Counts its own time."""

    def __init__(self) -> None:
        self.spent = 0.0
        self.queries = 0

    def __call__(self, send):
        t0 = time.perf_counter()
        try:
            self.queries += 1
            if send.addr == ROOT_ADDR:
                return self._root(send.wire)
            return self._zone(send.wire)
        finally:
            self.spent += time.perf_counter() - t0

    @staticmethod
    def _root(wire: bytes) -> bytes:
        q = dns.message.from_wire(wire)
        r = dns.message.make_response(q)
        r.authority.append(dns.rrset.from_text("perf.", 86400, "IN", "NS", "ns.perf."))
        r.additional.append(dns.rrset.from_text("ns.perf.", 86400, "IN", "A", ZONE_ADDR))
        return r.to_wire()

    @staticmethod
    def _zone(wire: bytes) -> bytes:
        qid, flags, qd, an, ns, ar = struct.unpack_from("!6H", wire)
        end = 12
        while wire[end]:
            end += wire[end] + 1
        question = wire[12:end + 5]
        i = int(wire[14:12 + 1 + wire[12]])  # a<i>.perf. has the address 10.x.y.z of i, as in tools/bench
        rr = b"\xc0\x0c\x00\x01\x00\x01\x00\x01\x51\x80\x00\x04\x0a" + (i & 0xFFFFFF).to_bytes(3, "big")
        opt = b"\x00\x00\x29\x04\xd0\x00\x00\x00\x00\x00\x00" if ar else b""
        head = struct.pack("!6H", qid, 0x8400 | (flags & 0x0100), 1, 1, 0, 1 if ar else 0)
        return head + question + rr + opt


def client_wire(i: int) -> bytes:
    return dns.message.make_query(f"a{i}.perf.", "A", id=i & 0xFFFF).to_wire()


def one_miss(engine, net: FakeNet, wire: bytes) -> bytes:
    msg, action = parse_client_query(wire)
    assert action is Action.RESOLVE
    answer = drive_sync(engine.resolver.resolve(msg, client=("127.0.0.1", 5353), tcp=False), net)
    out, _ = render_answer(answer, msg, engine.settings, False)
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("-n", type=int, default=3000)
    ap.add_argument("--profile", action="store_true")
    ap.add_argument("--sort", default="tottime")
    ap.add_argument("--top", type=int, default=45)
    a = ap.parse_args()
    rundir = tempfile.mkdtemp(prefix="missprof-")
    engine = Engine(Settings(), rundir=rundir, scheduler=FakeScheduler())
    engine.load_config_text(CONFIG)
    engine.post_config()
    net = FakeNet()
    base = 100_000
    for i in range(200):  # warm: the delegation of perf. and the first misses
        one_miss(engine, net, client_wire(base + i))
    check = dns.message.from_wire(one_miss(engine, net, client_wire(base + 500)))
    assert check.answer and check.answer[0][0].address == "10.1.136.148", check  # 100500 = 0x018894
    wires = [client_wire(base + 1000 + i) for i in range(2 * a.n)]
    chunk = max(1, a.n // 5)
    per = []
    net.queries = 0
    for c in range(0, a.n - chunk + 1, chunk):  # 5 chunks: the best and the median (shared machine)
        net.spent = 0.0
        t0 = time.process_time()
        for w in wires[c:c + chunk]:
            one_miss(engine, net, w)
        per.append((time.process_time() - t0 - net.spent) / chunk * 1e6)
    per.sort()
    print(f"per miss: {per[0]:.0f} us best, {per[len(per) // 2]:.0f} us median of {len(per)} chunks "
          f"(CPU time, fake server excluded; "
          f"{net.queries / (chunk * len(per)):.2f} upstream queries per miss)")
    if a.profile:
        pr = cProfile.Profile()
        pr.enable()
        for w in wires[a.n:]:
            one_miss(engine, net, w)
        pr.disable()
        pstats.Stats(pr).sort_stats(a.sort).print_stats(a.top)


if __name__ == "__main__":
    main()
