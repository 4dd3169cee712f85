"""Upstream I/O of one worker: send one query, get the matching reply or None.

Owns: `query(send)` (the transport function handed to
`workers.transport.drive_async`) and everything between it and the sockets:
- UDP with a fresh socket per query (kernel-chosen random source port,
  optional source address; ICMP errors end the wait early);
- reply matching (`_Sent.match`): source address+port, ID, and the question
  compared on the raw wire: qtype, qclass, and the QNAME byte for byte
  ignoring ASCII case, or exactly when `send.x20` (0x20, below);
- in-flight deduplication (`_Shared`): identical upstream questions to the
  same server share one upstream query (kresd's worker does the same for
  identical subrequests); every caller gets the reply with its own ID and its
  own QNAME case patched in, after the first caller's timeout at the latest;
  a cancelled caller leaves the others waiting (the query is cancelled when
  nobody waits any more);
- TCP (after TC=1, `send.tcp`) through a bounded pool of pipelined upstream
  connections per (addr, port, source) with an idle timeout (`_TcpPool`).
Must not: build queries or choose IDs or the QNAME case (the core does, in
`send.wire`), judge reply contents beyond matching (workers/scrub.py does),
block the loop or sleep (timeouts are loop timers), or raise: every network
failure is None.

0x20 (`send.x20`): the core already randomised the QNAME letter case in
`send.wire` and checks the case of the reply's question itself. On UDP a reply
that matches in everything but the case may be spoofed, so it is not taken at
once: the wait goes on for an exact one until the timeout, and only then is the
first case-mismatching reply returned (the core sees the mismatch and falls
back to TCP without 0x20, as kresd does on KR_SELECTION_MISMATCHED). On TCP the
reply on our own connection cannot be spoofed off-path, so a case mismatch is
returned at once for the core to judge.
Measured with Debian's kresd 5.6 (scripted root and forwarder on loopback,
issue 13): it randomises the QNAME case by default, for iteration and also for
policy.FORWARD and policy.STUB queries; a forwarder that answers with the
QNAME lower-cased is asked again over TCP with the case as the client sent it.

A reply with the right ID but QDCOUNT=0 is accepted only when its RCODE is not
NOERROR (servers answer FORMERR/NOTIMP without a question, and kresd's
iterator treats such a header-only FORMERR as a selection error).
Not yet: a pool of UDP sockets (one socket per query today).
"""
from __future__ import annotations

import asyncio
import enum
import ipaddress
import socket
import struct
import weakref
from typing import Optional

from kresd import log
from workers.transport import Send

G = log.Group.IO
RECV_MAX = 65535
DNS_HEADER = 12

# Upstream TCP pool bounds (kresd keeps upstream TCP sessions for reuse and
# closes them after some seconds without queries).
TCP_IDLE_TIMEOUT = 10.0  # seconds an upstream connection stays open without queries
TCP_PIPELINE = 100  # queries in flight on one connection (kresd's net.tcp_pipeline default)
TCP_PER_SERVER = 4  # connections per (addr, port, source)
TCP_TOTAL = 256  # connections per worker, all servers together


class Match(enum.Enum):
    NO = 0
    CASE = 1  # everything matches but the letter case of the QNAME
    EXACT = 2


def _qname_end(wire: bytes) -> Optional[int]:
    """End offset of the uncompressed question name at DNS_HEADER, or None."""
    pos = DNS_HEADER
    while pos < len(wire) and pos - DNS_HEADER < 255:
        n = wire[pos]
        if n == 0:
            return pos + 1
        if n & 0xC0:
            return None
        pos += n + 1
    return None


class _Sent:
    """The identity of one sent query: ID, raw QNAME (case as sent), qtype+qclass."""

    __slots__ = ("id", "qname", "tail")

    def __init__(self, id_: bytes, qname: bytes, tail: bytes):
        self.id, self.qname, self.tail = id_, qname, tail

    @classmethod
    def parse(cls, wire: bytes) -> Optional["_Sent"]:
        if len(wire) < DNS_HEADER or wire[4:6] != b"\x00\x01":
            return None
        end = _qname_end(wire)
        if end is None or len(wire) < end + 4:
            return None
        return cls(wire[:2], wire[DNS_HEADER:end], wire[end:end + 4])

    def match(self, wire: bytes) -> Match:
        """How well `wire` matches as the reply to this query (source not checked)."""
        if len(wire) < DNS_HEADER or wire[:2] != self.id or not wire[2] & 0x80:
            return Match.NO
        qdcount = wire[4:6]
        if qdcount == b"\x00\x00":
            return Match.EXACT if wire[3] & 0x0F else Match.NO  # header-only error reply
        if qdcount != b"\x00\x01":
            return Match.NO
        end = DNS_HEADER + len(self.qname)
        got = wire[DNS_HEADER:end]
        if wire[end:end + 4] != self.tail:
            return Match.NO
        if got == self.qname:
            return Match.EXACT
        # bytes.lower() folds ASCII A-Z only (DNS case folding); label lengths stay < 64.
        return Match.CASE if got.lower() == self.qname.lower() else Match.NO

    def patched(self, reply: bytes, leader: "_Sent") -> bytes:
        """`reply` (to the query `leader`) as the reply to this query.

        Same length: our ID, and our QNAME case with the reply's own case
        deviations from the leader's kept (so a case mismatch stays visible).
        """
        out = bytearray(reply)
        out[0:2] = self.id
        end = DNS_HEADER + len(self.qname)
        got = reply[DNS_HEADER:end]
        if reply[4:6] == b"\x00\x01" and got.lower() == self.qname.lower() == leader.qname.lower():
            out[DNS_HEADER:end] = bytes(o ^ g ^ ld for o, g, ld in zip(self.qname, got, leader.qname))
        return bytes(out)


def _source_ok(send: Send, src: tuple) -> bool:
    try:
        want = ipaddress.ip_address(send.addr)
        a = ipaddress.ip_address(src[0].split("%", 1)[0])
    except ValueError:
        return False
    if isinstance(a, ipaddress.IPv6Address) and a.ipv4_mapped is not None:
        a = a.ipv4_mapped
    return a == want and src[1] == send.port


def _family(addr: str) -> int:
    return socket.AF_INET6 if ":" in addr else socket.AF_INET


class _Shared:
    """One upstream query in flight and the callers waiting for it."""

    __slots__ = ("task", "leader", "waiters")

    def __init__(self, task: asyncio.Task, leader: _Sent):
        self.task, self.leader, self.waiters = task, leader, 0


class _State:
    """Per event loop: queries in flight, the TCP pool, counters."""

    def __init__(self) -> None:
        self.inflight: dict[tuple, _Shared] = {}
        self.tcp = _TcpPool(self)
        self.counters = {"udp": 0, "tcp": 0, "tcp_connect": 0, "dedup": 0}


_STATES: "weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _State]" = weakref.WeakKeyDictionary()


def _state() -> _State:
    loop = asyncio.get_running_loop()
    st = _STATES.get(loop)
    if st is None:
        st = _STATES[loop] = _State()
    return st


def stats() -> dict[str, int]:
    """Counters of this loop: queries sent over UDP/TCP, TCP connects, deduplicated callers."""
    return dict(_state().counters)


async def query(send: Send) -> Optional[bytes]:
    """Send `send.wire` to send.addr:send.port; the matching reply, or None.

    Identical questions in flight to the same server share one upstream query.
    """
    try:
        sent = _Sent.parse(send.wire)
        if sent is None:
            log.debug(G, "=> %s@%d: unreadable query, not sent", send.addr, send.port)
            return None
        st = _state()
        end = DNS_HEADER + len(sent.qname)
        key = (send.addr, send.port, send.tcp, send.source, send.x20,
               send.wire[2:DNS_HEADER] + sent.qname.lower() + send.wire[end:])
        shared = st.inflight.get(key)
        if shared is None:
            shared = _Shared(asyncio.get_running_loop().create_task(_query_once(st, send, sent)), sent)
            st.inflight[key] = shared
            shared.task.add_done_callback(lambda _t: _forget(st, key, shared))
        else:
            st.counters["dedup"] += 1
        shared.waiters += 1
        try:
            reply = await asyncio.shield(shared.task)
        except asyncio.CancelledError:
            shared.waiters -= 1
            if shared.waiters == 0 and not shared.task.done():
                _forget(st, key, shared)  # nobody waits any more: a new caller starts afresh
                shared.task.cancel()
            raise
        shared.waiters -= 1
        return None if reply is None else sent.patched(reply, shared.leader)
    except asyncio.CancelledError:
        raise
    except Exception as e:  # noqa: BLE001 - network failure of any kind
        log.debug(G, "=> %s@%d failed: %r", send.addr, send.port, e)
        return None


def _forget(st: _State, key: tuple, shared: _Shared) -> None:
    if st.inflight.get(key) is shared:
        del st.inflight[key]


async def _query_once(st: _State, send: Send, sent: _Sent) -> Optional[bytes]:
    try:
        if send.tcp:
            st.counters["tcp"] += 1
            return await st.tcp.query(send, sent)
        st.counters["udp"] += 1
        return await _query_udp(send, sent)
    except asyncio.CancelledError:
        raise
    except Exception as e:  # noqa: BLE001 - network failure of any kind
        log.debug(G, "=> %s@%d failed: %r", send.addr, send.port, e)
        return None


async def _query_udp(send: Send, sent: _Sent) -> Optional[bytes]:
    loop = asyncio.get_running_loop()
    sock = socket.socket(_family(send.addr), socket.SOCK_DGRAM)
    try:
        sock.setblocking(False)
        if send.source:
            sock.bind((send.source, 0))
        # connect(): the kernel picks a random source port, filters other
        # sources and reports ICMP errors (ECONNREFUSED) on this socket.
        sock.connect((send.addr, send.port))
        sock.send(send.wire)
        fut: asyncio.Future = loop.create_future()
        case_only: list[bytes] = []  # x20: replies matching all but the case, first one first

        def on_readable() -> None:
            try:
                _drain_udp(sock, send, sent, fut, case_only)
            except Exception as e:  # noqa: BLE001 - never escape a callback
                if not fut.done():
                    fut.set_result(case_only[0] if case_only else None)
                log.debug(G, "udp reader error: %r", e)

        def on_timeout() -> None:
            if not fut.done():
                fut.set_result(case_only[0] if case_only else None)

        loop.add_reader(sock.fileno(), on_readable)
        timer = loop.call_later(send.timeout, on_timeout)
        try:
            return await fut
        finally:
            timer.cancel()
            loop.remove_reader(sock.fileno())
    except OSError as e:
        log.debug(G, "=> %s@%d udp: %s", send.addr, send.port, e)
        return None
    finally:
        sock.close()


def _drain_udp(sock: socket.socket, send: Send, sent: _Sent, fut: asyncio.Future,
               case_only: list[bytes]) -> None:
    while not fut.done():
        try:
            data, src = sock.recvfrom(RECV_MAX)
        except (BlockingIOError, InterruptedError):
            return
        except OSError as e:  # ICMP unreachable etc.
            log.debug(G, "udp recv error: %s", e)
            fut.set_result(case_only[0] if case_only else None)
            return
        m = sent.match(data) if _source_ok(send, src) else Match.NO
        if m is Match.EXACT or (m is Match.CASE and not send.x20):
            fut.set_result(data)
        elif m is Match.CASE:
            log.debug(G, "=> %s@%d: reply with the wrong QNAME case, waiting for another",
                      send.addr, send.port)
            if not case_only:
                case_only.append(data)
        else:
            log.debug(G, "ignoring mismatching reply from %s", src[0])


class _TcpConn:
    """One upstream TCP connection: pipelined queries matched by ID and question."""

    def __init__(self, pool: "_TcpPool", key: tuple, connect_timeout: float):
        loop = asyncio.get_running_loop()
        self.pool, self.key = pool, key
        self.pending: dict[bytes, tuple[_Sent, asyncio.Future]] = {}  # ID -> waiting query
        self.ready: asyncio.Future = loop.create_future()  # True once connected, False on failure
        self.writer: Optional[asyncio.StreamWriter] = None
        self.idle: Optional[asyncio.TimerHandle] = None
        self.closed = False
        self.task = loop.create_task(self._run(connect_timeout))

    async def _run(self, connect_timeout: float) -> None:
        addr, port, source = self.key
        try:
            reader, self.writer = await asyncio.wait_for(
                asyncio.open_connection(addr, port, local_addr=(source, 0) if source else None),
                connect_timeout)
            self.pool.st.counters["tcp_connect"] += 1
            self.ready.set_result(True)
            while True:
                (n,) = struct.unpack("!H", await reader.readexactly(2))
                self._deliver(await reader.readexactly(n))
        except Exception as e:  # noqa: BLE001 - EOF, reset, timeout, bad address: the connection is gone
            log.debug(G, "=> %s@%d tcp: %r", addr, port, e)
        finally:
            self.close()

    def _deliver(self, data: bytes) -> None:
        waiting = self.pending.get(data[:2])
        if waiting is None or waiting[0].match(data) is Match.NO:
            log.debug(G, "ignoring mismatching tcp reply from %s", self.key[0])
            return
        if not waiting[1].done():
            waiting[1].set_result(data)  # a case mismatch too: no off-path spoofing on TCP

    def usable_for(self, sent: _Sent) -> bool:
        return not self.closed and len(self.pending) < TCP_PIPELINE and sent.id not in self.pending

    def add(self, sent: _Sent) -> asyncio.Future:
        fut = asyncio.get_running_loop().create_future()
        self.pending[sent.id] = (sent, fut)
        if self.idle is not None:
            self.idle.cancel()
            self.idle = None
        return fut

    def remove(self, sent: _Sent) -> None:
        self.pending.pop(sent.id, None)
        if not self.pending and not self.closed and self.idle is None:
            self.idle = asyncio.get_running_loop().call_later(TCP_IDLE_TIMEOUT, self.close)

    def write(self, wire: bytes) -> bool:
        if self.closed or self.writer is None or self.writer.is_closing():
            return False
        self.writer.write(struct.pack("!H", len(wire)) + wire)
        return True

    def close(self) -> None:
        """Drop the connection: its waiting queries get None, the pool forgets it."""
        if self.closed:
            return
        self.closed = True
        self.pool.forget(self)
        if self.idle is not None:
            self.idle.cancel()
        if not self.ready.done():
            self.ready.set_result(False)
        for _sent, fut in self.pending.values():
            if not fut.done():
                fut.set_result(None)
        self.pending.clear()
        if self.writer is not None:
            self.writer.close()
        if self.task is not asyncio.current_task() and not self.task.done():
            self.task.cancel()


class _TcpPool:
    """Upstream TCP connections of one worker, bounded per server and in total."""

    def __init__(self, st: _State):
        self.st = st
        self.conns: dict[tuple, list[_TcpConn]] = {}

    def total(self) -> int:
        return sum(len(c) for c in self.conns.values())

    def forget(self, conn: _TcpConn) -> None:
        lst = self.conns.get(conn.key, [])
        if conn in lst:
            lst.remove(conn)
        if not lst:
            self.conns.pop(conn.key, None)

    def acquire(self, key: tuple, sent: _Sent, connect_timeout: float) -> Optional[_TcpConn]:
        """The least busy open connection to `key` that can take `sent`, or a new one."""
        lst = self.conns.get(key, [])
        usable = [c for c in lst if c.usable_for(sent)]
        if usable:
            return min(usable, key=lambda c: len(c.pending))
        if len(lst) >= TCP_PER_SERVER:
            return None
        if self.total() >= TCP_TOTAL and not self._close_an_idle():
            return None
        conn = _TcpConn(self, key, connect_timeout)
        self.conns.setdefault(key, []).append(conn)
        return conn

    def _close_an_idle(self) -> bool:
        for lst in self.conns.values():
            for c in lst:
                if not c.pending:
                    c.close()
                    return True
        return False

    async def query(self, send: Send, sent: _Sent) -> Optional[bytes]:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + send.timeout
        conn = self.acquire((send.addr, send.port, send.source), sent, send.timeout)
        if conn is None:
            log.debug(G, "=> %s@%d tcp: connection limit reached", send.addr, send.port)
            return None
        fut = conn.add(sent)
        try:
            if not await asyncio.wait_for(asyncio.shield(conn.ready), max(0.0, deadline - loop.time())):
                return None
            if not conn.write(send.wire):
                return None
            # Connected: allow one more timeout for the answer (a TCP answer may be large).
            deadline = max(deadline, loop.time()) + send.timeout
            return await asyncio.wait_for(fut, max(0.0, deadline - loop.time()))
        except asyncio.TimeoutError:
            log.debug(G, "=> %s@%d tcp: timeout", send.addr, send.port)
            return None
        finally:
            conn.remove(sent)
