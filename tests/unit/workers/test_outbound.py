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
            # a fresh socket per query, on some non-zero ephemeral port
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
