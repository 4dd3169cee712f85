"""workers/outbound.py against tiny scripted UDP/TCP servers on the test pool.

The fake authoritative side is a non-blocking socket read from a loop
reader (no threads); each test scripts what it sends back (wrong ID, wrong
question, wrong source, nothing) and checks what `query` returns.
"""
from __future__ import annotations

import asyncio
import socket
import struct

import dns.message
import dns.rcode
import pytest

from workers import outbound
from workers.transport import Send

T = 5.0


def run(coro):
    return asyncio.run(asyncio.wait_for(coro, 30))


def make_query(name: str = "Example.COM.", rdtype: str = "A") -> dns.message.Message:
    return dns.message.make_query(name, rdtype)


def reply_for(wire: bytes, **changes) -> bytes:
    query = dns.message.from_wire(wire)
    r = dns.message.make_response(query)
    if "qname" in changes:
        r.question[0].name = dns.name.from_text(changes["qname"])
    if "qtype" in changes:
        r.question[0].rdtype = changes["qtype"]
    out = bytearray(r.to_wire())
    if "id" in changes:
        out[0:2] = struct.pack("!H", changes["id"])
    return bytes(out)


class UDPAuth:
    """A UDP 'server' whose replies are produced by script(query_wire) -> list[bytes]."""

    def __init__(self, addr: str, script):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind((addr, 0))
        self.sock.setblocking(False)
        self.addr, self.port = self.sock.getsockname()
        self.script = script
        self.seen: list[tuple[bytes, tuple]] = []

    def start(self):
        asyncio.get_running_loop().add_reader(self.sock.fileno(), self._on_read)
        return self

    def _on_read(self):
        data, src = self.sock.recvfrom(65535)
        self.seen.append((data, src))
        for out in self.script(data):
            self.sock.sendto(out, src)

    def close(self):
        asyncio.get_running_loop().remove_reader(self.sock.fileno())
        self.sock.close()


def test_udp_reply_case_insensitive_question(test_addr):
    async def main():
        auth = UDPAuth(test_addr, lambda w: [reply_for(w, qname="example.com.")]).start()
        try:
            wire = make_query().to_wire()
            got = await outbound.query(Send(test_addr, auth.port, wire, timeout=T))
            assert got is not None and dns.message.from_wire(got).id == dns.message.from_wire(wire).id
            # a pooled socket on some non-zero (random) ephemeral port
            assert auth.seen[0][1][1] != 0
        finally:
            auth.close()

    run(main())


def test_udp_mismatched_replies_ignored_then_match(test_addr):
    async def main():
        def script(w):
            qid = struct.unpack("!H", w[:2])[0]
            return [
                reply_for(w, id=(qid + 1) % 65536),  # wrong ID
                reply_for(w, qname="other.example."),  # wrong name
                reply_for(w, qtype=28),  # wrong type
                w,  # the query itself (QR=0)
                b"\x00\x01",  # runt
                reply_for(w),  # the right one
            ]

        auth = UDPAuth(test_addr, script).start()
        try:
            got = await outbound.query(Send(test_addr, auth.port, make_query().to_wire(), timeout=T))
            assert got is not None and dns.message.from_wire(got).question[0].rdtype == 1
            assert dns.message.from_wire(got).question[0].name == dns.name.from_text("example.com.")
        finally:
            auth.close()

    run(main())


def test_udp_only_mismatches_times_out(test_addr):
    async def main():
        auth = UDPAuth(test_addr, lambda w: [reply_for(w, qname="evil.example.")]).start()
        try:
            loop = asyncio.get_running_loop()
            t0 = loop.time()
            got = await outbound.query(Send(test_addr, auth.port, make_query().to_wire(), timeout=0.3))
            assert got is None and 0.25 <= loop.time() - t0 < T
        finally:
            auth.close()

    run(main())


def test_udp_reply_from_wrong_source_ignored(test_addr):
    async def main():
        other = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        other.bind((test_addr, 0))

        def script(w):
            return []

        auth = UDPAuth(test_addr, script).start()
        try:
            task = asyncio.ensure_future(
                outbound.query(Send(test_addr, auth.port, make_query().to_wire(), timeout=0.5)))
            for _ in range(100):
                if auth.seen:
                    break
                await asyncio.sleep(0.01)
            wire, src = auth.seen[0]
            other.sendto(reply_for(wire), src)  # right reply, wrong source port
            assert await task is None
        finally:
            auth.close()
            other.close()

    run(main())


def test_udp_header_only_error_reply_accepted(test_addr):
    async def main():
        def script(w):
            return [w[:2] + b"\x80\x01" + b"\x00" * 8]  # QR, FORMERR, no question

        auth = UDPAuth(test_addr, script).start()
        try:
            got = await outbound.query(Send(test_addr, auth.port, make_query().to_wire(), timeout=T))
            assert got is not None and dns.message.from_wire(got).rcode() == dns.rcode.FORMERR
        finally:
            auth.close()

    run(main())


def test_udp_icmp_refused_returns_none_quickly(test_addr):
    async def main():
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.bind((test_addr, 0))
        port = s.getsockname()[1]
        s.close()  # nobody listens there now: ICMP port unreachable
        loop = asyncio.get_running_loop()
        t0 = loop.time()
        got = await outbound.query(Send(test_addr, port, make_query().to_wire(), timeout=T))
        assert got is None and loop.time() - t0 < T / 2

    run(main())


def test_udp_source_address(test_addr):
    async def main():
        auth = UDPAuth(test_addr, lambda w: [reply_for(w)]).start()
        try:
            got = await outbound.query(Send(test_addr, auth.port, make_query().to_wire(), timeout=T,
                                            source=test_addr))
            assert got is not None and auth.seen[0][1][0] == test_addr
        finally:
            auth.close()

    run(main())


async def tcp_auth(addr: str, script):
    async def handle(reader, writer):
        try:
            n = struct.unpack("!H", await reader.readexactly(2))[0]
            wire = await reader.readexactly(n)
            for out in script(wire):
                writer.write(struct.pack("!H", len(out)) + out)
            await writer.drain()
            await reader.read()  # until the client closes
        except Exception:  # noqa: BLE001
            pass
        finally:
            writer.close()

    server = await asyncio.start_server(handle, addr, 0)
    return server, server.sockets[0].getsockname()[1]


def test_tcp_query_skips_mismatch(test_addr):
    async def main():
        server, port = await tcp_auth(test_addr, lambda w: [reply_for(w, qname="no.example."), reply_for(w)])
        async with server:
            wire = make_query().to_wire()
            got = await outbound.query(Send(test_addr, port, wire, tcp=True, timeout=T))
            assert got is not None and dns.message.from_wire(got).question[0].name.to_text() == "Example.COM."

    run(main())


def test_tcp_no_answer_times_out(test_addr):
    async def main():
        server, port = await tcp_auth(test_addr, lambda w: [])
        async with server:
            got = await outbound.query(Send(test_addr, port, make_query().to_wire(), tcp=True, timeout=0.2))
            assert got is None

    run(main())


def test_tcp_connection_refused(test_addr):
    async def main():
        s = socket.socket()
        s.bind((test_addr, 0))
        port = s.getsockname()[1]
        s.close()
        assert await outbound.query(Send(test_addr, port, make_query().to_wire(), tcp=True, timeout=1)) is None

    run(main())


@pytest.mark.parametrize("bad", ["", "not-an-address"])
def test_bad_destination_is_none(bad):
    assert run(outbound.query(Send(bad, 53, make_query().to_wire(), timeout=0.2))) is None


# --- 0x20: the QNAME case of the reply ---------------------------------------

def with_case(wire: bytes, qname: str) -> bytes:
    """wire with its question name bytes replaced by qname's (same name, other case)."""
    raw = dns.name.from_text(qname).to_wire()
    assert raw.lower() == wire[12:12 + len(raw)].lower()
    return wire[:12] + raw + wire[12 + len(raw):]


def test_x20_exact_case_accepted(test_addr):
    async def main():
        auth = UDPAuth(test_addr, lambda w: [reply_for(w)]).start()
        try:
            wire = make_query("wWw.ExAmple.cOM.").to_wire()
            got = await outbound.query(Send(test_addr, auth.port, wire, timeout=T, x20=True))
            assert got is not None and got[12:12 + 17] == wire[12:12 + 17]
        finally:
            auth.close()

    run(main())


def test_x20_case_mismatch_waits_for_the_exact_reply(test_addr):
    async def main():
        loop = asyncio.get_running_loop()

        def script(w):
            loop.call_later(0.1, lambda: auth.sock.sendto(reply_for(w), auth.seen[0][1]))
            return [reply_for(w, qname="www.example.com.")]  # spoofed: right ID, wrong case

        auth = UDPAuth(test_addr, script).start()
        try:
            wire = make_query("wWw.ExAmple.cOM.").to_wire()
            got = await outbound.query(Send(test_addr, auth.port, wire, timeout=T, x20=True))
            assert got is not None and dns.message.from_wire(got).question[0].name.labels[0] == b"wWw"
        finally:
            auth.close()

    run(main())


def test_x20_only_case_mismatch_returned_at_timeout(test_addr):
    async def main():
        def script(w):
            return [reply_for(w, qname="www.EXAMPLE.com."), reply_for(w, qname="WWW.example.com.")]

        auth = UDPAuth(test_addr, script).start()
        try:
            loop = asyncio.get_running_loop()
            t0 = loop.time()
            wire = make_query("wWw.ExAmple.cOM.").to_wire()
            got = await outbound.query(Send(test_addr, auth.port, wire, timeout=0.3, x20=True))
            assert loop.time() - t0 >= 0.25  # not taken at once
            assert dns.message.from_wire(got).question[0].name.labels[:2] == (b"www", b"EXAMPLE")  # the first
        finally:
            auth.close()

    run(main())


def test_without_x20_case_mismatch_accepted_at_once(test_addr):
    async def main():
        auth = UDPAuth(test_addr, lambda w: [reply_for(w, qname="www.example.com.")]).start()
        try:
            loop = asyncio.get_running_loop()
            t0 = loop.time()
            wire = make_query("wWw.ExAmple.cOM.").to_wire()
            got = await outbound.query(Send(test_addr, auth.port, wire, timeout=T))
            assert got is not None and loop.time() - t0 < T / 2
        finally:
            auth.close()

    run(main())


# --- in-flight deduplication -------------------------------------------------

def delayed_auth(addr: str, delay: float, **changes) -> UDPAuth:
    """A UDPAuth that answers every query after `delay` seconds."""
    def script(w):
        src = auth.seen[-1][1]
        asyncio.get_running_loop().call_later(delay, lambda: auth.sock.sendto(reply_for(w, **changes), src))
        return []

    auth = UDPAuth(addr, script)
    return auth


def randomised(name: str, seed: int) -> str:
    rng = __import__("random").Random(seed)
    return "".join(c.upper() if rng.random() < 0.5 else c.lower() for c in name)


def test_dedup_50_identical_questions_one_upstream_query(test_addr):
    async def main():
        auth = delayed_auth(test_addr, 0.2).start()
        try:
            queries = []
            for i in range(50):
                q = make_query(randomised("www.example.com.", i))
                q.id = 1000 + i
                queries.append(q)
            before = outbound.stats()
            replies = await asyncio.gather(*(
                outbound.query(Send(test_addr, auth.port, q.to_wire(), timeout=T, x20=True)) for q in queries))
            assert len(auth.seen) == 1  # one upstream query for the fifty
            assert outbound.stats()["dedup"] - before["dedup"] == 49
            for q, r in zip(queries, replies):
                m = dns.message.from_wire(r)
                assert m.id == q.id  # its own ID
                assert m.question[0].name.labels == q.question[0].name.labels  # its own case
        finally:
            auth.close()

    run(main())


def test_dedup_keeps_the_case_mismatch_visible_to_every_caller(test_addr):
    async def main():
        # The server lower-cases the QNAME: after the timeout every caller gets a
        # reply whose case differs from its own query where the leader's differed.
        auth = delayed_auth(test_addr, 0.01, qname="www.example.com.").start()
        try:
            queries = [make_query(randomised("www.example.com.", i)) for i in range(5)]
            replies = await asyncio.gather(*(
                outbound.query(Send(test_addr, auth.port, q.to_wire(), timeout=0.3, x20=True)) for q in queries))
            assert len(auth.seen) == 1
            leader = queries[0].question[0].name.to_wire()
            for q, r in zip(queries, replies):
                own = q.question[0].name.to_wire()
                got = r[12:12 + len(own)]
                assert got.lower() == own.lower()
                assert bytes(a ^ b for a, b in zip(got, own)) == bytes(
                    a ^ b for a, b in zip(b"\x03www\x07example\x03com\x00", leader))
                assert got != own
        finally:
            auth.close()

    run(main())


def test_dedup_only_identical_questions_to_the_same_server(test_addr):
    async def main():
        auth = delayed_auth(test_addr, 0.1).start()
        other = delayed_auth(test_addr, 0.1).start()
        try:
            sends = [Send(test_addr, auth.port, make_query("a.example.", "A").to_wire(), timeout=T),
                     Send(test_addr, auth.port, make_query("a.example.", "AAAA").to_wire(), timeout=T),
                     Send(test_addr, auth.port, make_query("b.example.", "A").to_wire(), timeout=T),
                     Send(test_addr, other.port, make_query("a.example.", "A").to_wire(), timeout=T),
                     Send(test_addr, auth.port, dns.message.make_query("a.example.", "A", want_dnssec=True)
                          .to_wire(), timeout=T)]
            replies = await asyncio.gather(*(outbound.query(s) for s in sends))
            assert all(r is not None for r in replies)
            assert (len(auth.seen), len(other.seen)) == (4, 1)
            # once answered, the same question is asked again (no caching here)
            await outbound.query(sends[0])
            assert len(auth.seen) == 5
        finally:
            auth.close()
            other.close()

    run(main())


def test_dedup_cancelled_caller_does_not_break_the_others(test_addr):
    async def main():
        auth = delayed_auth(test_addr, 0.2).start()
        try:
            wires = [make_query().to_wire() for _ in range(3)]
            tasks = [asyncio.ensure_future(outbound.query(Send(test_addr, auth.port, w, timeout=T)))
                     for w in wires]
            await asyncio.sleep(0.05)
            tasks[0].cancel()  # the one that started the upstream query
            done = await asyncio.gather(*tasks, return_exceptions=True)
            assert isinstance(done[0], asyncio.CancelledError)
            assert [r[:2] for r in done[1:]] == [w[:2] for w in wires[1:]]
            assert len(auth.seen) == 1
        finally:
            auth.close()

    run(main())


def test_dedup_all_callers_cancelled_then_new_query(test_addr):
    async def main():
        auth = delayed_auth(test_addr, 0.2).start()
        try:
            send = Send(test_addr, auth.port, make_query().to_wire(), timeout=T)
            task = asyncio.ensure_future(outbound.query(send))
            await asyncio.sleep(0.05)
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
            assert await outbound.query(send) is not None  # not stuck on the abandoned one
            assert len(auth.seen) == 2
        finally:
            auth.close()

    run(main())


# --- upstream TCP pool -------------------------------------------------------

class TCPAuth:
    """A pipelining TCP server: counts connections and queries; answer(wire) -> reply or None.

    delay: seconds before each reply; reverse: answer queries of a batch in reverse order.
    close_after_read: close the connection after reading a query (no answer).
    """

    def __init__(self, addr: str, answer=None, delay: float = 0.0, close_after_read: bool = False):
        self.addr, self.answer = addr, answer or reply_for
        self.delay, self.close_after_read = delay, close_after_read
        self.connections = 0
        self.closed = 0
        self.queries: list[bytes] = []

    async def start(self):
        self.server = await asyncio.start_server(self._handle, self.addr, 0)
        self.port = self.server.sockets[0].getsockname()[1]
        return self

    async def _handle(self, reader, writer):
        self.connections += 1
        try:
            while True:
                n = struct.unpack("!H", await reader.readexactly(2))[0]
                wire = await reader.readexactly(n)
                self.queries.append(wire)
                if self.close_after_read:
                    return
                asyncio.get_running_loop().call_later(self.delay, self._reply, writer, wire)
        except Exception:  # noqa: BLE001 - EOF
            pass
        finally:
            self.closed += 1
            writer.close()

    def _reply(self, writer, wire):
        out = self.answer(wire)
        if out is not None and not writer.is_closing():
            writer.write(struct.pack("!H", len(out)) + out)

    def close(self):
        self.server.close()


def test_tcp_connection_reused_across_queries(test_addr):
    async def main():
        auth = await TCPAuth(test_addr).start()
        try:
            for name in ("a.example.", "b.example.", "c.example."):
                wire = make_query(name).to_wire()
                got = await outbound.query(Send(test_addr, auth.port, wire, tcp=True, timeout=T))
                assert got is not None and got[:2] == wire[:2]
            assert (auth.connections, len(auth.queries)) == (1, 3)
        finally:
            auth.close()

    run(main())


def test_tcp_pipelined_replies_out_of_order(test_addr):
    async def main():
        # the first query is answered last
        auth = await TCPAuth(test_addr).start()
        auth.delay = 0.0
        delays = iter([0.3] + [0.0] * 19)
        orig = auth._reply
        auth._reply = lambda w, q: asyncio.get_running_loop().call_later(next(delays), orig, w, q)
        try:
            queries = [make_query(f"n{i}.example.") for i in range(20)]
            for i, q in enumerate(queries):
                q.id = 1000 + i  # distinct: two random IDs alike (~0.3 % of runs) take a second connection
            replies = await asyncio.gather(*(
                outbound.query(Send(test_addr, auth.port, q.to_wire(), tcp=True, timeout=T)) for q in queries))
            for q, r in zip(queries, replies):
                m = dns.message.from_wire(r)
                assert (m.id, m.question) == (q.id, q.question)
            assert (auth.connections, len(auth.queries)) == (1, 20)
        finally:
            auth.close()

    run(main())


def test_tcp_broken_connection_fails_its_queries_then_reconnects(test_addr, monkeypatch):
    monkeypatch.setattr(outbound, "TCP_PER_SERVER", 1)  # the dropped connection must free its place

    async def main():
        auth = await TCPAuth(test_addr, close_after_read=True).start()
        try:
            got = await asyncio.gather(*(
                outbound.query(Send(test_addr, auth.port, make_query(f"n{i}.example.").to_wire(),
                                    tcp=True, timeout=T)) for i in range(3)))
            assert got == [None, None, None]
            auth.close_after_read = False
            wire = make_query().to_wire()
            assert await outbound.query(Send(test_addr, auth.port, wire, tcp=True, timeout=T)) is not None
            assert auth.connections == 2  # the broken one was dropped from the pool
        finally:
            auth.close()

    run(main())


def test_tcp_idle_connection_closed(test_addr, monkeypatch):
    monkeypatch.setattr(outbound, "TCP_IDLE_TIMEOUT", 0.1)

    async def main():
        auth = await TCPAuth(test_addr).start()
        try:
            assert await outbound.query(Send(test_addr, auth.port, make_query().to_wire(), tcp=True,
                                             timeout=T)) is not None
            for _ in range(100):
                if auth.closed:
                    break
                await asyncio.sleep(0.02)
            assert auth.closed == 1
            assert await outbound.query(Send(test_addr, auth.port, make_query().to_wire(), tcp=True,
                                             timeout=T)) is not None
            assert auth.connections == 2
        finally:
            auth.close()

    run(main())


def test_tcp_pool_bounded_per_server(test_addr, monkeypatch):
    monkeypatch.setattr(outbound, "TCP_PER_SERVER", 2)
    monkeypatch.setattr(outbound, "TCP_PIPELINE", 3)

    async def main():
        auth = await TCPAuth(test_addr, delay=0.2).start()
        try:
            got = await asyncio.gather(*(
                outbound.query(Send(test_addr, auth.port, make_query(f"n{i}.example.").to_wire(),
                                    tcp=True, timeout=T)) for i in range(8)))
            assert sum(r is not None for r in got) == 6  # 2 connections x 3 in flight
            assert auth.connections == 2 and len(auth.queries) == 6
        finally:
            auth.close()

    run(main())


def test_tcp_pool_bounded_in_total_closes_an_idle_one(test_addr, monkeypatch):
    monkeypatch.setattr(outbound, "TCP_TOTAL", 1)

    async def main():
        a = await TCPAuth(test_addr, delay=0.3).start()
        b = await TCPAuth(test_addr).start()
        try:
            slow = asyncio.ensure_future(outbound.query(
                Send(test_addr, a.port, make_query().to_wire(), tcp=True, timeout=T)))
            await asyncio.sleep(0.1)
            # a's connection is busy: no room for b
            assert await outbound.query(Send(test_addr, b.port, make_query().to_wire(), tcp=True,
                                             timeout=T)) is None
            assert await slow is not None
            # a's connection is idle now: it makes room for b
            assert await outbound.query(Send(test_addr, b.port, make_query().to_wire(), tcp=True,
                                             timeout=T)) is not None
            for _ in range(100):
                if a.closed:
                    break
                await asyncio.sleep(0.02)
            assert (a.closed, b.connections) == (1, 1)
        finally:
            a.close()
            b.close()

    run(main())


def test_tcp_case_mismatch_returned_at_once(test_addr):
    async def main():
        auth = await TCPAuth(test_addr, answer=lambda w: reply_for(w, qname="www.example.com.")).start()
        try:
            loop = asyncio.get_running_loop()
            t0 = loop.time()
            got = await outbound.query(Send(test_addr, auth.port, make_query("wWw.ExAmple.cOM.").to_wire(),
                                            tcp=True, timeout=T, x20=True))
            assert got is not None and loop.time() - t0 < T / 2
            assert dns.message.from_wire(got).question[0].name.labels[0] == b"www"
        finally:
            auth.close()

    run(main())


def test_tcp_connect_timeout(test_addr):
    async def main():
        # A listener that never accepts, its backlog full: the kernel drops our SYN.
        lsock = socket.socket()
        lsock.bind((test_addr, 0))
        lsock.listen(0)
        fillers = []
        try:
            for _ in range(3):
                f = socket.socket()
                f.setblocking(False)
                f.connect_ex(lsock.getsockname())
                fillers.append(f)
            await asyncio.sleep(0.05)
            loop = asyncio.get_running_loop()
            t0 = loop.time()
            got = await outbound.query(Send(test_addr, lsock.getsockname()[1], make_query().to_wire(),
                                            tcp=True, timeout=0.3))
            assert got is None and 0.25 <= loop.time() - t0 < T
        finally:
            for f in fillers:
                f.close()
            lsock.close()

    run(main())


# --- counters (kresd's worker.stats() udp/tcp/ipv4/ipv6/timeout) ---------------------------


def test_counters_by_transport_family_and_timeout(test_addr):
    """Each query sent counts once by transport and by address family; one with
    no matching reply before its timeout counts as a timeout (UDP and TCP); a
    0x20 case-only reply taken at the timeout is an answer, not a timeout;
    deduplicated callers share one query."""
    async def main():
        answer = UDPAuth(test_addr, lambda w: [reply_for(w)]).start()
        silent = UDPAuth(test_addr, lambda w: []).start()
        case_only = UDPAuth(test_addr, lambda w: [reply_for(w, qname="WWW.example.com.")]).start()
        server, tcp_port = await tcp_auth(test_addr, lambda w: [])
        try:
            before = outbound.stats()
            wire = make_query().to_wire()
            assert await outbound.query(Send(test_addr, answer.port, wire, timeout=T)) is not None
            got = await asyncio.gather(*(outbound.query(Send(test_addr, silent.port, wire, timeout=0.2))
                                         for _ in range(3)))  # three callers, one query
            assert got == [None] * 3
            x20 = make_query("wWw.ExAmple.cOM.").to_wire()
            assert await outbound.query(Send(test_addr, case_only.port, x20, timeout=0.2, x20=True))
            async with server:
                assert await outbound.query(Send(test_addr, tcp_port, wire, tcp=True, timeout=0.2)) is None
            ok = outbound.send_udp(Send(test_addr, answer.port, make_query("b.example.").to_wire(), timeout=T))
            assert await ok is not None
            after = outbound.stats()
        finally:
            for a in (answer, silent, case_only):
                a.close()
        d = {k: after[k] - before[k] for k in after}
        assert (d["udp"], d["tcp"], d["ipv4"], d["ipv6"], d["timeout"], d["dedup"]) == (4, 1, 5, 0, 2, 2)

    run(main())


def test_counters_ipv6(test_addr):
    async def main():
        sock = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
        try:
            sock.bind(("::1", 0))
        except OSError as e:
            sock.close()
            pytest.skip(f"no IPv6 on lo: {e}")
        sock.setblocking(False)
        port = sock.getsockname()[1]
        loop = asyncio.get_running_loop()

        def on_read():
            data, src = sock.recvfrom(65535)
            sock.sendto(reply_for(data), src)

        loop.add_reader(sock.fileno(), on_read)
        try:
            before = outbound.stats()
            assert await outbound.query(Send("::1", port, make_query().to_wire(), timeout=T)) is not None
            after = outbound.stats()
        finally:
            loop.remove_reader(sock.fileno())
            sock.close()
        assert (after["ipv6"] - before["ipv6"], after["ipv4"] - before["ipv4"], after["udp"] - before["udp"]) \
            == (1, 0, 1)

    run(main())
