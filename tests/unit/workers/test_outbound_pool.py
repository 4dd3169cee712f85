"""workers/outbound.py's pool of upstream UDP sockets, against the scripted
servers of test_outbound.py: reuse towards one server and retirement (by use
count and age), several queries in flight on one socket, the same ID twice,
late and duplicate replies, ICMP errors and cancellation.
"""
from __future__ import annotations

import asyncio
import socket
import struct

import dns.message
import pytest

from workers import outbound
from workers.transport import Send

from .test_outbound import T, UDPAuth, make_query, reply_for, run


def _qid(wire: bytes) -> int:
    return struct.unpack("!H", wire[:2])[0]


def test_udp_socket_reused_towards_one_server_then_replaced(test_addr, monkeypatch):
    monkeypatch.setattr(outbound, "UDP_REUSE", 3)

    async def main():
        auth = UDPAuth(test_addr, lambda w: [reply_for(w)]).start()
        other = UDPAuth(test_addr, lambda w: [reply_for(w)]).start()
        try:
            for _ in range(7):
                assert await outbound.query(Send(test_addr, auth.port, make_query().to_wire(), timeout=T))
            assert await outbound.query(Send(test_addr, other.port, make_query().to_wire(), timeout=T))
            ports = [src[1] for _, src in auth.seen]
            # 3 queries per socket (per random port), then a fresh one
            assert ports[0] == ports[1] == ports[2] != ports[3] == ports[4] == ports[5] != ports[6]
            assert len(set(ports)) == 3
            # another server: another socket (a port is only reused towards its server)
            assert other.seen[0][1][1] not in ports
            st = outbound._state()
            assert st.counters["udp_sockets"] == 4
            # retired sockets are closed once idle; the last one waits for more queries
            assert st.udp.sockets() == 2
        finally:
            auth.close()
            other.close()

    run(main())


def test_udp_socket_retired_by_age_and_closed_when_idle(test_addr, monkeypatch):
    monkeypatch.setattr(outbound, "UDP_MAX_AGE", 0.2)
    monkeypatch.setattr(outbound, "UDP_IDLE", 0.1)

    async def main():
        auth = UDPAuth(test_addr, lambda w: [reply_for(w)]).start()
        try:
            assert await outbound.query(Send(test_addr, auth.port, make_query().to_wire(), timeout=T))
            st = outbound._state()
            assert st.udp.sockets() == 1
            await asyncio.sleep(0.3)  # idle: closed
            assert st.udp.sockets() == 0
            assert await outbound.query(Send(test_addr, auth.port, make_query().to_wire(), timeout=T))
            await asyncio.sleep(0.25)
            assert await outbound.query(Send(test_addr, auth.port, make_query().to_wire(), timeout=T))
            ports = [src[1] for _, src in auth.seen]
            assert len(set(ports)) == 3  # too old for the third query: a fresh port
        finally:
            auth.close()

    run(main())


def test_udp_queries_in_flight_on_one_socket_answered_out_of_order(test_addr):
    async def main():
        held: list[bytes] = []

        def script(w):
            held.append(w)
            if len(held) < 3:
                return []
            return [reply_for(q) for q in reversed(held)]  # all three, last first

        auth = UDPAuth(test_addr, script).start()
        try:
            wires = [make_query(f"n{i}.example.").to_wire() for i in range(3)]
            got = await asyncio.gather(*(outbound.query(Send(test_addr, auth.port, w, timeout=T))
                                         for w in wires))
            for w, r in zip(wires, got):
                assert r is not None and _qid(r) == _qid(w)
                assert dns.message.from_wire(r).question[0].name == dns.message.from_wire(w).question[0].name
            assert len({src[1] for _, src in auth.seen}) == 1  # one socket carried them
        finally:
            auth.close()

    run(main())


def test_udp_same_id_twice_in_flight_takes_another_socket(test_addr):
    async def main():
        auth = UDPAuth(test_addr, lambda w: [reply_for(w)]).start()
        try:
            a = make_query("a.example.")
            b = make_query("b.example.")
            b.id = a.id
            got = await asyncio.gather(outbound.query(Send(test_addr, auth.port, a.to_wire(), timeout=T)),
                                       outbound.query(Send(test_addr, auth.port, b.to_wire(), timeout=T)))
            names = [dns.message.from_wire(r).question[0].name.to_text() for r in got]
            assert names == ["a.example.", "b.example."]
            assert len({src[1] for _, src in auth.seen}) == 2
        finally:
            auth.close()

    run(main())


def test_udp_late_and_duplicate_replies_do_not_reach_the_next_query(test_addr):
    async def main():
        first: list[bytes] = []

        def script(w):
            if not first:
                first.append(w)
                return [reply_for(w), reply_for(w)]  # answered twice
            # the next query: first a copy of the old answer (same socket, old ID), then its own
            return [reply_for(first[0]), reply_for(w)]

        auth = UDPAuth(test_addr, script).start()
        try:
            q1, q2 = make_query("one.example."), make_query("two.example.")
            q2.id = (q1.id + 1) % 65536
            r1 = await outbound.query(Send(test_addr, auth.port, q1.to_wire(), timeout=T))
            r2 = await outbound.query(Send(test_addr, auth.port, q2.to_wire(), timeout=T))
            assert _qid(r1) == q1.id and _qid(r2) == q2.id
            assert dns.message.from_wire(r2).question[0].name.to_text() == "two.example."
            assert auth.seen[0][1] == auth.seen[1][1]  # the same socket
        finally:
            auth.close()

    run(main())


def test_udp_icmp_refused_ends_every_query_on_the_socket(test_addr):
    async def main():
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.bind((test_addr, 0))
        port = s.getsockname()[1]
        s.close()
        loop = asyncio.get_running_loop()
        t0 = loop.time()
        got = await asyncio.gather(*(outbound.query(Send(test_addr, port, make_query(f"x{i}.example.").to_wire(),
                                                        timeout=T)) for i in range(3)))
        assert got == [None, None, None] and loop.time() - t0 < T / 2
        assert outbound._state().udp.sockets() == 0  # the failed socket is gone

    run(main())


def test_udp_cancelled_query_leaves_no_waiter(test_addr):
    async def main():
        auth = UDPAuth(test_addr, lambda w: []).start()
        try:
            task = asyncio.ensure_future(outbound.query(Send(test_addr, auth.port, make_query().to_wire(), timeout=T)))
            for _ in range(100):
                if auth.seen:
                    break
                await asyncio.sleep(0.01)
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
            await asyncio.sleep(0)
            conns = [c for lst in outbound._state().udp.conns.values() for c in lst]
            assert all(not c.pending for c in conns)
        finally:
            auth.close()

    run(main())
