"""workers/server.py: UDP/TCP listeners against a fake resolve coroutine.

Real sockets on the test loopback pool (conftest `test_addr`); every wait is
bounded (asyncio.wait_for / socket timeouts), nothing sleeps to synchronise.
"""
from __future__ import annotations

import asyncio
import socket
import struct

import dns.flags
import dns.message
import dns.rcode
import dns.rrset
import pytest

from workers import server as srv
from workers.server import Action, Server, bind_socket, parse_client_query, render_answer
from workers.settings import Endpoint, Settings

T = 5.0  # upper bound of any wait in these tests


def answer_a(query: dns.message.Message, count: int = 1) -> dns.message.Message:
    r = dns.message.make_response(query)
    qname = query.question[0].name
    r.answer.append(dns.rrset.from_text_list(qname, 300, "IN", "A",
                                             [f"10.{i // 65536 % 256}.{i // 256 % 256}.{i % 256}"
                                              for i in range(count)]))
    return r


class FakeResolver:
    """resolve(query, client, tcp): names starting with 'slow' wait for release()."""

    def __init__(self, count: int = 1):
        self.count = count
        self.calls: list[tuple] = []
        self.gates: dict[str, asyncio.Event] = {}

    def gate(self, label: str) -> asyncio.Event:
        return self.gates.setdefault(label, asyncio.Event())

    async def __call__(self, query, client, tcp):
        self.calls.append((query.question[0].name.to_text(), client, tcp))
        label = query.question[0].name.labels[0].decode()
        if label.startswith("boom"):
            raise RuntimeError("resolver exploded")
        if label.startswith("slow"):
            await self.gate(label).wait()
        return answer_a(query, self.count)


class Harness:
    """A Server on UDP+TCP sockets of one test address."""

    def __init__(self, addr: str, settings: Settings | None = None, resolver=None):
        self.addr = addr
        self.settings = settings or Settings()
        self.resolver = resolver or FakeResolver()
        self.server = Server(self.settings, self.resolver)
        self.udp_sock = bind_socket(addr, 0, socket.SOCK_DGRAM)
        self.tcp_sock = bind_socket(addr, 0, socket.SOCK_STREAM)
        self.udp_port = self.udp_sock.getsockname()[1]
        self.tcp_port = self.tcp_sock.getsockname()[1]

    async def __aenter__(self):
        await self.server.start([self.udp_sock, self.tcp_sock])
        return self

    async def __aexit__(self, *exc):
        await self.server.close()

    async def udp(self, wire: bytes, expect: bool = True, timeout: float = T) -> bytes | None:
        loop = asyncio.get_running_loop()
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as c:
            c.setblocking(False)
            c.connect((self.addr, self.udp_port))
            c.send(wire)
            try:
                return await asyncio.wait_for(loop.sock_recv(c, 65535), timeout if expect else 0.3)
            except asyncio.TimeoutError:
                if expect:
                    raise
                return None

    async def tcp_connect(self):
        return await asyncio.wait_for(asyncio.open_connection(self.addr, self.tcp_port), T)


async def tcp_send(writer, wire: bytes) -> None:
    writer.write(struct.pack("!H", len(wire)) + wire)
    await writer.drain()


async def tcp_recv(reader, timeout: float = T) -> dns.message.Message:
    hdr = await asyncio.wait_for(reader.readexactly(2), timeout)
    return dns.message.from_wire(await asyncio.wait_for(reader.readexactly(struct.unpack("!H", hdr)[0]), timeout))


def q(name: str, **kw) -> dns.message.Message:
    return dns.message.make_query(name, "A", **kw)


def run(coro):
    return asyncio.run(asyncio.wait_for(coro, 30))


# --- parsing and rendering (no sockets) --------------------------------------------


def test_parse_classifies():
    wire = q("example.com.").to_wire()
    msg, action = parse_client_query(wire)
    assert action is Action.RESOLVE and msg.question[0].name.to_text() == "example.com."
    assert parse_client_query(wire[:11]) == (None, Action.DROP)
    assert parse_client_query(wire + b"junk")[1] is Action.FORMERR
    assert parse_client_query(wire[:12] + b"\xc0\xff\xff")[1] is Action.FORMERR
    response = dns.message.make_response(q("x.")).to_wire()
    assert parse_client_query(response)[1] is Action.DROP  # QR=1
    noq = dns.message.Message(id=7).to_wire()
    assert parse_client_query(noq)[1] is Action.FORMERR


def test_formerr_wire_echoes_header_and_question():
    query = q("Example.COM.")
    query.flags |= dns.flags.CD
    wire = query.to_wire() + b"\x00"
    r = dns.message.from_wire(srv.formerr_wire(wire))
    assert r.id == query.id and r.rcode() == dns.rcode.FORMERR
    assert r.flags & dns.flags.QR and r.flags & dns.flags.RD and not r.flags & dns.flags.CD
    assert r.question[0].name == query.question[0].name and r.edns < 0
    r2 = dns.message.from_wire(srv.formerr_wire(wire[:12] + b"\xff\xff"))
    assert r2.id == query.id and not r2.question


def test_udp_size_limit_as_kresd():
    s = Settings(edns_bufsize=1232)
    assert srv.udp_size_limit(q("a."), s) == 512
    assert srv.udp_size_limit(q("a.", use_edns=0, payload=4096), s) == 1232
    assert srv.udp_size_limit(q("a.", use_edns=0, payload=1000), s) == 1000
    assert srv.udp_size_limit(q("a.", use_edns=0, payload=100), s) == 512


def test_render_truncates_and_keeps_question_and_opt():
    s = Settings()
    query = q("big.example.", use_edns=0, payload=600)
    answer = answer_a(query, 100)  # 100 A records: ~1.6 kB
    wire, truncated = render_answer(answer, query, s, tcp=False)
    r = dns.message.from_wire(wire)
    assert truncated and len(wire) <= 600 and r.flags & dns.flags.TC
    assert r.question == query.question and not r.answer and r.edns == 0 and r.payload == 1232
    wire, truncated = render_answer(answer_a(query, 100), query, s, tcp=True)
    assert not truncated and len(dns.message.from_wire(wire).answer[0]) == 100


def test_render_edns_only_if_query_had_it_and_sets_ra():
    s = Settings(edns_bufsize=1400)
    plain = q("a.")
    answer = answer_a(plain)
    answer.use_edns(0, payload=4096)
    answer.flags &= ~dns.flags.RA
    r = dns.message.from_wire(render_answer(answer, plain, s, tcp=False)[0])
    assert r.edns < 0 and r.flags & dns.flags.RA and r.flags & dns.flags.QR
    with_opt = q("a.", use_edns=0, payload=4096)
    bare = dns.message.make_response(with_opt)
    bare.use_edns(False)
    r = dns.message.from_wire(render_answer(bare, with_opt, s, tcp=False)[0])
    assert r.edns == 0 and r.payload == 1400


# --- UDP -----------------------------------------------------------------------------


def test_udp_answer(test_addr):
    async def main():
        async with Harness(test_addr) as h:
            query = q("www.example.", use_edns=0, payload=1232)
            r = dns.message.from_wire(await h.udp(query.to_wire()))
            assert r.id == query.id and r.answer and r.edns == 0
            (name, client, tcp), = h.resolver.calls
            assert name == "www.example." and not tcp and isinstance(client[1], int)
            assert h.server.stats.udp == 1 and h.server.stats.answers[dns.rcode.NOERROR] == 1

    run(main())


def test_udp_truncation_small_client_buffer(test_addr):
    async def main():
        async with Harness(test_addr, resolver=FakeResolver(count=60)) as h:
            r = dns.message.from_wire(await h.udp(q("big.example.").to_wire()))  # no EDNS: 512
            assert r.flags & dns.flags.TC and not r.answer and r.question
            r = dns.message.from_wire(await h.udp(q("big.example.", use_edns=0, payload=4096).to_wire()))
            assert not r.flags & dns.flags.TC and len(r.answer[0]) == 60
            assert h.server.stats.truncated == 1

    run(main())


def test_udp_drop_short_and_formerr_garbage(test_addr):
    async def main():
        async with Harness(test_addr) as h:
            assert await h.udp(b"\x12\x34\x01", expect=False) is None
            r = dns.message.from_wire(await h.udp(b"\x12\x34\x01\x00\x00\x01\x00\x00\x00\x00\x00\x00\xff\xfe"))
            assert r.id == 0x1234 and r.rcode() == dns.rcode.FORMERR and r.flags & dns.flags.RD
            # still serving
            assert dns.message.from_wire(await h.udp(q("ok.").to_wire())).answer
            st = h.server.stats
            assert st.dropped == 1 and st.formerr == 1 and not h.resolver.calls[1:]

    run(main())


def test_listener_survives_resolver_exception(test_addr):
    async def main():
        async with Harness(test_addr) as h:
            r = dns.message.from_wire(await h.udp(q("boom.example.").to_wire()))
            assert r.rcode() == dns.rcode.SERVFAIL and r.flags & dns.flags.RA
            assert dns.message.from_wire(await h.udp(q("fine.example.").to_wire())).answer
            reader, writer = await h.tcp_connect()
            await tcp_send(writer, q("boom.").to_wire())
            assert (await tcp_recv(reader)).rcode() == dns.rcode.SERVFAIL
            writer.close()
            assert h.server.stats.resolver_errors == 2

    run(main())


# --- TCP -----------------------------------------------------------------------------


def test_tcp_answer_and_pipelining_out_of_order(test_addr):
    async def main():
        async with Harness(test_addr) as h:
            reader, writer = await h.tcp_connect()
            slow, fast = q("slow1.example."), q("fast.example.")
            # both messages in one write: framing must split them
            writer.write(b"".join(struct.pack("!H", len(w)) + w for w in (slow.to_wire(), fast.to_wire())))
            first = await tcp_recv(reader)
            assert first.id == fast.id
            h.resolver.gate("slow1").set()
            second = await tcp_recv(reader)
            assert second.id == slow.id and second.answer
            assert all(tcp for _, _, tcp in h.resolver.calls)
            writer.close()

    run(main())


def test_tcp_partial_frames(test_addr):
    async def main():
        async with Harness(test_addr) as h:
            reader, writer = await h.tcp_connect()
            wire = q("split.example.").to_wire()
            framed = struct.pack("!H", len(wire)) + wire
            for i in range(0, len(framed), 5):
                writer.write(framed[i:i + 5])
                await writer.drain()
            assert (await tcp_recv(reader)).answer
            writer.close()

    run(main())


def test_tcp_idle_timeout_closes(test_addr):
    async def main():
        async with Harness(test_addr, Settings(tcp_idle_timeout=0.2)) as h:
            reader, writer = await h.tcp_connect()
            assert await asyncio.wait_for(reader.read(1), T) == b""  # EOF from the server
            assert h.server.stats.tcp_idle_closed == 1

    run(main())


def test_tcp_idle_timer_waits_for_inflight(test_addr):
    async def main():
        async with Harness(test_addr, Settings(tcp_idle_timeout=0.1)) as h:
            reader, writer = await h.tcp_connect()
            await tcp_send(writer, q("slow2.").to_wire())
            await asyncio.sleep(0.3)  # idle timer fires while the query is in flight
            h.resolver.gate("slow2").set()
            assert (await tcp_recv(reader)).answer
            assert await asyncio.wait_for(reader.read(1), T) == b""

    run(main())


def test_tcp_connection_limit(test_addr):
    async def main():
        async with Harness(test_addr, Settings(tcp_max_clients=2)) as h:
            conns = [await h.tcp_connect() for _ in range(2)]
            r3, w3 = await h.tcp_connect()
            assert await asyncio.wait_for(r3.read(1), T) == b""  # closed at once
            for r, w in conns:  # the first two still work
                await tcp_send(w, q("x.").to_wire())
                assert (await tcp_recv(r)).answer
            assert h.server.stats.tcp_rejected == 1

    run(main())


def test_tcp_pipeline_limit(test_addr):
    async def main():
        async with Harness(test_addr, Settings(tcp_pipeline=2)) as h:
            reader, writer = await h.tcp_connect()
            names = ["slowa.", "slowb.", "fast."]
            for n in names:
                await tcp_send(writer, q(n).to_wire())
            for _ in range(50):  # let the server read everything it is willing to
                await asyncio.sleep(0)
            await asyncio.sleep(0.05)
            assert len(h.resolver.calls) == 2  # third waits for a free slot
            h.resolver.gate("slowa").set()
            got = {(await tcp_recv(reader)).question[0].name.to_text() for _ in range(2)}
            assert got == {"slowa.", "fast."}
            h.resolver.gate("slowb").set()
            assert (await tcp_recv(reader)).question[0].name.to_text() == "slowb."

    run(main())


def test_tcp_garbage_formerr_and_short_dropped(test_addr):
    async def main():
        async with Harness(test_addr) as h:
            reader, writer = await h.tcp_connect()
            await tcp_send(writer, b"\x00\x01\x02")  # < 12 bytes: dropped
            await tcp_send(writer, b"\xab\xcd\x01\x00\x00\x01\x00\x00\x00\x00\x00\x00\x05")
            r = await tcp_recv(reader)
            assert r.id == 0xABCD and r.rcode() == dns.rcode.FORMERR
            await tcp_send(writer, q("after.").to_wire())
            assert (await tcp_recv(reader)).answer
            writer.close()

    run(main())


# --- sockets ----------------------------------------------------------------------------


def test_bind_sets_reuseport_and_v6only(test_addr):
    socks = srv.bind_endpoints([Endpoint(test_addr, 0, "dns-udp"), Endpoint(test_addr, 0, "dns-tcp")])
    try:
        for s in socks:
            assert s.getsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT) == 1
        # a second socket can bind the same address (kresd -f N)
        port = socks[0].getsockname()[1]
        again = srv.bind_socket(test_addr, port, socket.SOCK_DGRAM)
        again.close()
    finally:
        for s in socks:
            s.close()
    try:
        s6 = srv.bind_socket("::1", 0, socket.SOCK_DGRAM)
    except OSError:
        pytest.skip("no IPv6 loopback")
    with s6:
        assert s6.getsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY) == 1


def test_bind_failure_is_boot_error(test_addr):
    from kresd.errors import EXIT_BIND, BootError

    with pytest.raises(BootError) as e:
        srv.bind_endpoints([Endpoint("192.0.2.77", 5353, "dns")])  # not a local address
    assert e.value.exit_code == EXIT_BIND and "192.0.2.77" in str(e.value)


# --- workers/main.py: the worker's lifecycle with fake cache and core -----------------


class FakeCache:
    def __init__(self, path, size, *, min_ttl, max_ttl, clock):
        self.path, self.state = path, "new"

    def open(self):
        self.state = "open"

    def close(self):
        self.state = "closed"


class FakeCore:
    def __init__(self, settings, cache, clock):
        assert cache.state == "open"  # opened before the core is built

    def resolve(self, query, client=None, tcp=False):
        return answer_a(query)
        yield  # a generator that needs no network


def test_run_worker_serves_and_stops_on_sigterm(test_addr, tmp_path):
    import os
    import signal
    import threading

    from workers.main import run_worker

    caches = []

    def cache_factory(*a, **kw):
        caches.append(FakeCache(*a, **kw))
        return caches[-1]

    sock = bind_socket(test_addr, 0, socket.SOCK_DGRAM)
    port = sock.getsockname()[1]
    replies = []

    def ready(server):
        def client():  # a real client, outside the loop
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as c:
                c.settimeout(T)
                c.sendto(q("life.example.").to_wire(), (test_addr, port))
                replies.append(dns.message.from_wire(c.recv(65535)))
            os.kill(os.getpid(), signal.SIGTERM)

        threading.Thread(target=client, daemon=True).start()

    rc = run_worker(Settings(), str(tmp_path), sockets=[sock], cache_factory=cache_factory,
                    resolver_factory=FakeCore, ready=ready)
    assert rc == 0 and replies and replies[0].answer
    assert caches[0].state == "closed" and caches[0].path == str(tmp_path)
    assert sock.fileno() == -1  # closed


def test_close_with_grace_answers_in_flight_queries(test_addr):
    async def main():
        h = Harness(test_addr)
        await h.server.start([h.udp_sock, h.tcp_sock])
        reader, writer = await h.tcp_connect()
        await tcp_send(writer, q("slow-tcp.example.").to_wire())
        udp = asyncio.ensure_future(h.udp(q("slow-udp.example.").to_wire()))
        for _ in range(200):  # both queries reached the resolver
            if len(h.resolver.calls) == 2:
                break
            await asyncio.sleep(0.01)
        closing = asyncio.ensure_future(h.server.close(grace=1.0))
        await asyncio.sleep(0.05)
        h.resolver.gate("slow-tcp").set()
        h.resolver.gate("slow-udp").set()
        await closing
        assert (await tcp_recv(reader)).answer
        assert dns.message.from_wire(await udp).answer
        writer.close()
    run(main())


def test_fallback_reader_applies_the_rate_limit(test_addr):
    """When the fast-path batch fails, the plain reader takes the socket: the
    rate limit the batch would have applied in C still holds there."""
    import types

    import native

    class BrokenFast:
        BATCH_MAX = 64

        def __init__(self):
            self.batch = types.SimpleNamespace(limiter=native.RateLimit(bytearray(8 * 1025), 1024, 0, 2, 1))

        def run(self, sock):
            raise RuntimeError("a fast-path bug")

        def remember(self, *args):
            return False

    async def main():
        h = Harness(test_addr)
        fast = BrokenFast()
        h.server = Server(h.settings, h.resolver, fast=fast)
        async with h:
            got = [dns.message.from_wire(await h.udp(q(f"n{i}.example.").to_wire())) for i in range(4)]
        assert [bool(r.answer) for r in got] == [True, True, False, False]
        assert all(r.flags & dns.flags.TC for r in got[2:])
        assert fast.batch.limiter.counts() == (2, 2, 0) and len(h.resolver.calls) == 2
    run(main())


def test_concurrent_counts_the_requests_being_resolved(test_addr):
    """Server.concurrent() (worker.stats().concurrent): UDP and TCP requests in
    resolution, plus clients waiting on the cache-miss fast path; 0 when all are answered."""
    async def main():
        async with Harness(test_addr) as h:
            assert h.server.concurrent() == 0
            pending = [asyncio.ensure_future(h.udp(q(f"slowu{i}.").to_wire())) for i in range(3)]
            reader, writer = await h.tcp_connect()
            await tcp_send(writer, q("slowt.").to_wire())
            for _ in range(100):
                if h.server.concurrent() == 4:
                    break
                await asyncio.sleep(0.01)
            assert h.server.concurrent() == 4

            class Miss:  # the fast miss's in-flight questions, each with its waiting clients
                inflight = {("a",): type("M", (), {"clients": [1, 2]})()}

            h.server.fast = type("F", (), {"miss": Miss()})()
            assert h.server.concurrent() == 6
            h.server.fast = None
            for name in ("slowu0", "slowu1", "slowu2", "slowt"):
                h.resolver.gate(name).set()
            await asyncio.gather(*pending)
            await tcp_recv(reader)
            for _ in range(100):
                if h.server.concurrent() == 0:
                    break
                await asyncio.sleep(0.01)
            assert h.server.concurrent() == 0
            writer.close()

    run(main())
