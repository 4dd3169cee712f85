"""workers/tcp.py: flow control, the write-buffer bound and the input-idle timer.

Two kinds of tests: a fake transport (it buffers every write and calls
pause_writing/resume_writing at its limits as asyncio's does, so the protocol's
reaction is checked step by step), and real loopback sockets with a Server
(conftest `test_addr`) for what a client sees. Every wait is bounded; timers
are short and the bounds around them generous.
"""
from __future__ import annotations

import asyncio
import socket
import struct

import dns.message
import dns.rcode
import dns.rrset

from workers.server import ServerStats
from workers.settings import Settings
from workers.tcp import TCPConnection

from .test_server import T, Harness, q, run, tcp_recv, tcp_send


def frame(wire: bytes) -> bytes:
    return struct.pack("!H", len(wire)) + wire


class FakeTransport:
    """Buffers every write (the client never reads) until drain(); asyncio's flow control."""

    def __init__(self, protocol: TCPConnection):
        self.protocol = protocol
        self.buffered = 0
        self.max_buffered = 0
        self.high, self.low = 64 * 1024, 16 * 1024
        self.write_paused = False
        self.reading = True
        self.aborted = self.closed = False

    def get_extra_info(self, key, default=None):
        return ("192.0.2.1", 53000) if key == "peername" else default

    def set_write_buffer_limits(self, high=None, low=None):
        self.high, self.low = high, low

    def get_write_buffer_size(self) -> int:
        return self.buffered

    def write(self, data: bytes) -> None:
        assert not (self.aborted or self.closed), "write after close"
        self.buffered += len(data)
        self.max_buffered = max(self.max_buffered, self.buffered)
        if self.buffered > self.high and not self.write_paused:
            self.write_paused = True
            self.protocol.pause_writing()

    def drain(self) -> None:
        self.buffered = 0
        if self.write_paused:
            self.write_paused = False
            self.protocol.resume_writing()

    def pause_reading(self) -> None:
        self.reading = False

    def resume_reading(self) -> None:
        self.reading = True

    def is_closing(self) -> bool:
        return self.aborted or self.closed

    def abort(self) -> None:
        if not self.is_closing():
            self.aborted = True
            asyncio.get_running_loop().call_soon(self.protocol.connection_lost, None)

    def close(self) -> None:
        if not self.is_closing():
            self.closed = True
            asyncio.get_running_loop().call_soon(self.protocol.connection_lost, None)


class FakeHost:
    """TCPHost: frames starting with b'Q' are queries answered with `size` bytes
    (by a task, after `gate` when set; or at once, as FORMERR is, with
    `immediate`); anything else is dropped."""

    def __init__(self, settings: Settings, size: int = 600, gate: asyncio.Event | None = None,
                 immediate: bool = False, step: float = 0.0):
        self.settings = settings
        self.stats = ServerStats()
        self.size = size
        self.gate = gate
        self.immediate = immediate
        self.step = step  # the n-th query (from 0) is answered after n * step seconds
        self.handled: list[bytes] = []
        self.open_conns: set = set()
        self.tasks: set = set()

    def tcp_open(self, conn) -> bool:
        self.open_conns.add(conn)
        return True

    def tcp_closed(self, conn) -> None:
        self.open_conns.discard(conn)

    def tcp_message(self, wire: bytes, peer: tuple):
        if wire[:1] != b"Q":
            return None
        self.handled.append(wire)
        n = len(self.handled) - 1
        return b"A" * self.size if self.immediate else (lambda: self._answer(n))

    async def _answer(self, n: int) -> bytes:
        if self.gate is not None:
            await self.gate.wait()
        if self.step:
            await asyncio.sleep(n * self.step)
        return b"A" * self.size

    def spawn(self, coro) -> asyncio.Task:
        task = asyncio.get_running_loop().create_task(coro)
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)
        return task


def connect(settings: Settings, **kw) -> tuple[TCPConnection, FakeTransport, FakeHost]:
    host = FakeHost(settings, **kw)
    conn = TCPConnection(host)
    t = FakeTransport(conn)
    conn.connection_made(t)
    return conn, t, host


async def settle(n: int = 20) -> None:
    """Let spawned answer tasks run (no timers involved)."""
    for _ in range(n):
        await asyncio.sleep(0)


async def wait_until(pred, timeout: float = T) -> float:
    loop = asyncio.get_running_loop()
    start = loop.time()
    while not pred():
        if loop.time() - start > timeout:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.01)
    return loop.time() - start


# --- write-buffer bound (fake transport) ------------------------------------------------


def test_write_limits_set_on_the_transport():
    async def main():
        conn, t, _ = connect(Settings(tcp_write_buffer=8000))
        assert (t.high, t.low) == (8000, 2000)
        conn.abort()

    run(main())


def test_over_high_water_stops_reading_and_dispatch_until_drained():
    async def main():
        conn, t, host = connect(Settings(tcp_write_buffer=1000, tcp_idle_timeout=30), immediate=True)
        conn.data_received(b"".join(frame(b"Q%d" % i) for i in range(10)))
        await settle()
        # two answers of 600 bytes cross 1000: paused, the other frames wait unparsed
        assert t.write_paused and not t.reading and conn.write_paused
        assert len(host.handled) == 2 and t.buffered == 2 * 602
        more = frame(b"Q-late")
        conn.data_received(more)  # data already in flight when reading stopped
        await settle()
        assert len(host.handled) == 2
        t.drain()  # the client read everything: dispatch resumes
        await settle()
        assert len(host.handled) == 4 and t.write_paused and not t.reading
        for _ in range(10):
            t.drain()
            await settle()
        assert len(host.handled) == 11 and t.reading and not t.write_paused and not conn.buf
        assert not t.aborted and host.stats.tcp_write_aborted == 0
        conn.abort()

    run(main())


def test_unsent_answers_over_the_cap_abort_the_connection():
    async def main():
        gate = asyncio.Event()
        s = Settings(tcp_write_buffer=1000, tcp_write_cap=5000, tcp_idle_timeout=30)
        conn, t, host = connect(s, gate=gate)
        conn.data_received(b"".join(frame(b"Q%d" % i) for i in range(20)))
        await settle()
        assert len(host.handled) == 20  # in flight, nothing written yet: reading goes on
        gate.set()  # 20 answers of 602 bytes arrive for a client that reads nothing
        await settle(50)
        assert t.aborted and host.stats.tcp_write_aborted == 1
        assert t.max_buffered <= 5000 + 602  # the answer that crossed the cap, no more
        assert not host.open_conns

    run(main())


def test_undrained_buffer_aborts_after_tcp_in_idle():
    async def main():
        conn, t, host = connect(Settings(tcp_write_buffer=1000, tcp_idle_timeout=0.2))
        conn.data_received(b"".join(frame(b"Q%d" % i) for i in range(5)))
        await settle()
        assert t.write_paused
        waited = await wait_until(lambda: t.aborted)
        assert 0.15 <= waited < T and host.stats.tcp_write_aborted == 1
        assert host.stats.tcp_idle_closed == 0

    run(main())


def test_answers_still_coming_do_not_postpone_the_drain_deadline():
    async def main():
        # 20 answers, one every 0.1 s, for a client that reads none: each answer
        # is activity for the idle timer, so only the drain deadline cuts it early
        s = Settings(tcp_write_buffer=1000, tcp_idle_timeout=0.3)
        conn, t, host = connect(s, step=0.1)
        conn.data_received(b"".join(frame(b"Q%d" % i) for i in range(20)))
        waited = await wait_until(lambda: t.aborted)
        assert conn.inflight > 0 and waited < 1.5, (conn.inflight, waited)
        assert host.stats.tcp_write_aborted == 1

    run(main())


def test_drained_in_time_cancels_the_drain_timer():
    async def main():
        conn, t, host = connect(Settings(tcp_write_buffer=1000, tcp_idle_timeout=30))
        conn.data_received(frame(b"Q1") + frame(b"Q2"))
        await settle()
        assert conn.drain_handle is not None
        t.drain()
        assert conn.drain_handle is None and not conn.write_paused
        conn.abort()

    run(main())


def test_idle_with_unread_answers_aborts_instead_of_waiting_for_a_flush():
    async def main():
        conn, t, host = connect(Settings(tcp_write_buffer=100_000, tcp_idle_timeout=0.2))
        conn.data_received(frame(b"Q1"))
        await settle()
        assert t.buffered and not t.write_paused  # under the high-water mark, never read
        await wait_until(lambda: t.aborted or t.closed)
        assert t.aborted and host.stats.tcp_idle_closed == 1

    run(main())


# --- input-idle timer (slowloris) -----------------------------------------------------


def test_partial_frame_trickle_does_not_keep_the_connection():
    async def main():
        conn, t, host = connect(Settings(tcp_idle_timeout=0.3))
        loop = asyncio.get_running_loop()
        start = loop.time()
        conn.data_received(b"\x02\x00")  # 512 bytes announced
        sent = 0
        while not (t.closed or t.aborted) and loop.time() - start < T:
            conn.data_received(b"x")  # a byte every 50 ms: ~100 s for the frame
            sent += 1
            await asyncio.sleep(0.05)
        waited = loop.time() - start
        assert t.closed and 0.25 <= waited < T and sent < 510
        assert host.stats.tcp_idle_closed == 1 and not host.handled

    run(main())


def test_dropped_frames_are_not_activity():
    async def main():
        conn, t, host = connect(Settings(tcp_idle_timeout=0.3))
        loop = asyncio.get_running_loop()
        start = loop.time()
        while not (t.closed or t.aborted) and loop.time() - start < T:
            conn.data_received(frame(b"x"))  # complete frames the host drops
            await asyncio.sleep(0.05)
        assert t.closed and 0.25 <= loop.time() - start < T

    run(main())


def test_queries_and_answers_are_activity():
    async def main():
        conn, t, host = connect(Settings(tcp_idle_timeout=0.3))
        loop = asyncio.get_running_loop()
        start = loop.time()
        while loop.time() - start < 1.0:  # a query every 50 ms for 1 s: > 3 timeouts
            conn.data_received(frame(b"Q"))
            await asyncio.sleep(0.05)
            assert not (t.closed or t.aborted)
        t.drain()
        waited = await wait_until(lambda: t.closed)  # then idle: closed gracefully
        assert 0.2 <= waited < T and len(host.handled) >= 10

    run(main())


# --- real sockets, a real Server ---------------------------------------------------------


BIG_TXT = dns.rrset.from_text_list("big.", 300, "IN", "TXT", [f'"{c * 250}"' for c in "abcdef"])


async def big_answer(query, client, tcp) -> dns.message.Message:
    """A resolver with ~1.6 kB answers, cheap to build (the kernel buffers megabytes first)."""
    r = dns.message.make_response(query)
    r.answer.append(BIG_TXT)
    return r


def test_client_that_never_reads_is_cut_off_and_others_are_served(test_addr):
    async def main():
        s = Settings(tcp_write_buffer=16 * 1024, tcp_idle_timeout=1.0)
        async with Harness(test_addr, s, resolver=big_answer) as h:
            loop = asyncio.get_running_loop()
            atk = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            atk.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
            atk.setblocking(False)
            await loop.sock_connect(atk, (test_addr, h.tcp_port))
            stream = b"".join(frame(q(f"n{i}.example.").to_wire()) for i in range(20000))
            view, off, cut = memoryview(stream), 0, False
            start = loop.time()
            while loop.time() - start < 20:
                try:
                    off += atk.send(view[off:off + 65536])
                except BlockingIOError:
                    await asyncio.sleep(0.01)
                except OSError:  # reset: cut off
                    cut = True
                    break
                if off >= len(view):
                    await asyncio.sleep(0.01)
                    if atk.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR):
                        cut = True
                        break
            atk.close()
            st = h.server.stats
            assert cut and st.tcp_write_aborted == 1, (off, st)
            assert st.tcp < 20000  # it stopped reading: not every query was parsed
            # everyone else is served
            reader, writer = await h.tcp_connect()
            await tcp_send(writer, q("other.example.").to_wire())
            assert (await tcp_recv(reader)).answer
            writer.close()
            assert dns.message.from_wire(await h.udp(q("udp.example.").to_wire())).rcode() == dns.rcode.NOERROR

    run(main())


def test_full_tcp_max_clients_udp_served_then_new_client_after_idle(test_addr):
    async def main():
        async with Harness(test_addr, Settings(tcp_max_clients=2, tcp_idle_timeout=0.5)) as h:
            held = [await h.tcp_connect() for _ in range(2)]
            r3, w3 = await h.tcp_connect()
            assert await asyncio.wait_for(r3.read(1), T) == b""  # refused while full
            assert dns.message.from_wire(await h.udp(q("udp.example.").to_wire())).answer
            assert h.server.stats.tcp_connections == 2
            for r, _ in held:  # the idle ones time out
                assert await asyncio.wait_for(r.read(1), T) == b""
            reader, writer = await h.tcp_connect()
            await tcp_send(writer, q("new.example.").to_wire())
            assert (await tcp_recv(reader)).answer
            writer.close()
            assert h.server.stats.tcp_idle_closed == 2 and h.server.stats.tcp_rejected == 1

    run(main())
