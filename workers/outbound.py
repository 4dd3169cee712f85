"""Upstream I/O of one worker: send one query, get the matching reply or None.

Owns: `query(send)` (the transport function handed to
`workers.transport.drive_async`) and everything between it and the sockets:
- UDP through a pool of connected sockets per (server, port, source address)
  (`_UdpPool`): each socket gets a kernel-chosen random source port, carries
  at most UDP_REUSE queries to its one server within UDP_MAX_AGE seconds (then
  a fresh socket, a fresh random port), several of them in flight (distinct
  IDs), and is closed once retired and idle (or idle for UDP_IDLE seconds).
  A port is reused only towards the server it is connected to (an attacker
  who learns the port of a query to his own server learns nothing about the
  ports of queries to others), and ICMP errors still end the waits early;
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
"""
from __future__ import annotations

import asyncio
import enum
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

# Upstream UDP sockets (see the module docstring). A socket costs a socket(),
# connect(), a loop reader (epoll_ctl) and a close() (about a tenth of a miss's
# CPU); reused, that is paid once per UDP_REUSE queries.
UDP_REUSE = 16  # queries one socket (one random source port) carries
UDP_MAX_AGE = 2.0  # seconds a socket takes new queries
UDP_IDLE = 1.0  # seconds an idle, not yet retired socket is kept


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


def _family(addr: str) -> int:
    return socket.AF_INET6 if ":" in addr else socket.AF_INET


class _Shared:
    """One upstream query in flight and the callers waiting for it: each has
    a future of its own, resolved with the reply patched to its ID and case
    when the query ends (a caller cancelled leaves the others be)."""

    __slots__ = ("task", "leader", "callers")

    def __init__(self, task: asyncio.Future, leader: _Sent):
        self.task, self.leader = task, leader
        self.callers: list[tuple[asyncio.Future, _Sent]] = []

    def deliver(self, task: asyncio.Future) -> None:
        """The query ended: every caller gets the reply (or None)."""
        reply = None
        if not task.cancelled() and task.exception() is None:
            reply = task.result()
        for fut, sent in self.callers:
            if fut.done():
                continue
            if reply is None or sent is self.leader:
                fut.set_result(reply)  # (the leader's own query: its ID and case already)
            else:
                fut.set_result(sent.patched(reply, self.leader))


class _State:
    """Per event loop: queries in flight, the TCP pool, counters."""

    def __init__(self) -> None:
        self.inflight: dict[tuple, _Shared] = {}
        self.tcp = _TcpPool(self)
        self.udp = _UdpPool(self)
        self.counters = {"udp": 0, "tcp": 0, "ipv4": 0, "ipv6": 0, "timeout": 0, "tcp_connect": 0,
                         "dedup": 0, "udp_sockets": 0}


_STATES: "weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _State]" = weakref.WeakKeyDictionary()


_last: list = [None, None]  # [loop, its _State]: the one a worker runs (no weak-dict lookup per query)


def _state() -> _State:
    loop = asyncio.get_running_loop()
    if _last[0] is loop:
        return _last[1]
    st = _STATES.get(loop)
    if st is None:
        st = _STATES[loop] = _State()
    _last[:] = [loop, st]
    return st


def stats() -> dict[str, int]:
    """Counters of this loop: queries sent over UDP/TCP and over IPv4/IPv6,
    queries that timed out, TCP connects, UDP sockets opened, deduplicated
    callers (the first five are kresd's worker.stats() udp/tcp/ipv4/ipv6/timeout)."""
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
            shared = _Shared(_start(st, send, sent), sent)
            st.inflight[key] = shared
            shared.task.add_done_callback(lambda t: _done(st, key, shared, t))
        else:
            st.counters["dedup"] += 1
        mine = asyncio.get_running_loop().create_future()
        shared.callers.append((mine, sent))
        try:
            return await mine
        except asyncio.CancelledError:
            shared.callers = [c for c in shared.callers if c[0] is not mine]
            if not shared.callers and not shared.task.done():
                _forget(st, key, shared)  # nobody waits any more: a new caller starts afresh
                shared.task.cancel()
            raise
    except asyncio.CancelledError:
        raise
    except Exception as e:  # noqa: BLE001 - network failure of any kind
        log.debug(G, "=> %s@%d failed: %r", send.addr, send.port, e)
        return None


def send_udp(send: Send) -> Optional[asyncio.Future]:
    """One UDP query through the pool, without a Task or the in-flight
    sharing of query() (workers/fastmiss.py shares its own): a future of the
    matching reply (None on timeout or failure), or None when `send.wire`
    is not a query this module can match replies to."""
    sent = _Sent.parse(send.wire)
    if sent is None or send.tcp:
        return None
    st = _state()
    _count(st, send)
    return st.udp.query(send, sent)


def _count(st: _State, send: Send) -> None:
    c = st.counters
    c["tcp" if send.tcp else "udp"] += 1
    c["ipv6" if ":" in send.addr else "ipv4"] += 1


def _forget(st: _State, key: tuple, shared: _Shared) -> None:
    if st.inflight.get(key) is shared:
        del st.inflight[key]


def _done(st: _State, key: tuple, shared: _Shared, task: asyncio.Future) -> None:
    _forget(st, key, shared)
    shared.deliver(task)


def _start(st: _State, send: Send, sent: _Sent) -> asyncio.Future:
    """One upstream query: a future of the reply (None on failure); cancelling
    it cancels the query. UDP needs no Task: the pool's socket reader and a
    timer resolve the future."""
    _count(st, send)
    if send.tcp:
        return asyncio.get_running_loop().create_task(_query_tcp(st, send, sent))
    return st.udp.query(send, sent)


async def _query_tcp(st: _State, send: Send, sent: _Sent) -> Optional[bytes]:
    try:
        return await st.tcp.query(send, sent)
    except asyncio.CancelledError:
        raise
    except Exception as e:  # noqa: BLE001 - network failure of any kind
        log.debug(G, "=> %s@%d failed: %r", send.addr, send.port, e)
        return None


class _UdpWait:
    """One query waiting on a _UdpConn for its reply."""

    __slots__ = ("sent", "x20", "fut", "timer", "case_only")

    def __init__(self, sent: _Sent, x20: bool, fut: asyncio.Future):
        self.sent, self.x20, self.fut = sent, x20, fut
        self.timer: Optional[asyncio.TimerHandle] = None
        self.case_only: Optional[bytes] = None  # x20: the first reply matching all but the case

    def finish(self, reply: Optional[bytes]) -> None:
        if not self.fut.done():
            self.fut.set_result(reply)


class _UdpConn:
    """One connected upstream UDP socket: one server, one random source port,
    queries in flight matched by ID, then the whole question (_Sent.match)."""

    def __init__(self, pool: "_UdpPool", key: tuple):
        addr, port, source = key
        self.pool, self.key = pool, key
        self.loop = asyncio.get_running_loop()
        sock = socket.socket(_family(addr), socket.SOCK_DGRAM)
        try:
            sock.setblocking(False)
            if source:
                sock.bind((source, 0))
            # connect(): the kernel picks a random source port, filters other
            # sources and reports ICMP errors (ECONNREFUSED) on this socket.
            sock.connect((addr, port))
            self.peer = sock.getpeername()
            self.loop.add_reader(sock.fileno(), self._on_readable)
        except BaseException:
            sock.close()
            raise
        self.sock = sock
        self.pending: dict[bytes, _UdpWait] = {}  # ID -> the query waiting with it
        self.uses = 0
        self.born = self.loop.time()
        self.idle: Optional[asyncio.TimerHandle] = None
        self.closed = False

    def takes(self, sent: _Sent, now: float) -> bool:
        """May this socket carry `sent` now (not retired, its ID not in flight here)?"""
        return (not self.closed and self.uses < UDP_REUSE and now - self.born < UDP_MAX_AGE
                and sent.id not in self.pending)

    def query(self, send: Send, sent: _Sent) -> asyncio.Future:
        fut = self.loop.create_future()
        w = _UdpWait(sent, send.x20, fut)
        self.pending[sent.id] = w
        self.uses += 1
        if self.idle is not None:
            self.idle.cancel()
            self.idle = None
        fut.add_done_callback(lambda _f: self._done(w))
        try:
            self.sock.send(send.wire)
        except OSError as e:
            log.debug(G, "=> %s@%d udp: %s", send.addr, send.port, e)
            w.finish(None)
            return fut
        w.timer = self.loop.call_later(send.timeout, self._timeout, w)
        return fut

    def _timeout(self, w: _UdpWait) -> None:
        if w.case_only is None:  # (a reply that differed only in the 0x20 case is taken now)
            self.pool.st.counters["timeout"] += 1
        w.finish(w.case_only)

    def _done(self, w: _UdpWait) -> None:
        """A query ended (reply, timeout, failure or cancellation): forget it."""
        if w.timer is not None:
            w.timer.cancel()
        if self.pending.get(w.sent.id) is w:
            del self.pending[w.sent.id]
        if self.pending or self.closed:
            return
        if self.uses >= UDP_REUSE or self.loop.time() - self.born >= UDP_MAX_AGE:
            self.close()  # retired: its port is not used again
        else:
            self.idle = self.loop.call_later(UDP_IDLE, self.close)

    def _on_readable(self) -> None:
        try:
            self._drain()
        except Exception as e:  # noqa: BLE001 - never escape a callback
            log.debug(G, "udp reader error: %r", e)
            self._fail_all()

    def _drain(self) -> None:
        while not self.closed:
            try:
                data, src = self.sock.recvfrom(RECV_MAX)
            except (BlockingIOError, InterruptedError):
                return
            except OSError as e:  # ICMP unreachable etc.: the server's port, for every query here
                log.debug(G, "udp recv error from %s: %s", self.key[0], e)
                self._fail_all()
                return
            if src[:2] != self.peer[:2]:  # (the kernel filters a connected socket already)
                log.debug(G, "ignoring a reply from %s", src[0])
                continue
            w = self.pending.get(data[:2])
            m = w.sent.match(data) if w is not None else Match.NO
            if m is Match.EXACT or (m is Match.CASE and not w.x20):
                w.finish(data)
                if len(self.pending) == 1:
                    return  # its only query: no read that would only say EAGAIN (the
                    # reader is level-triggered: anything else waiting wakes it again)
            elif m is Match.CASE:
                log.debug(G, "=> %s@%d: reply with the wrong QNAME case, waiting for another",
                          self.key[0], self.key[1])
                if w.case_only is None:
                    w.case_only = data
            else:
                log.debug(G, "ignoring mismatching reply from %s", src[0])

    def _fail_all(self) -> None:
        """The socket failed: every query on it gets what it has (None or its
        case-only reply), and the socket is not used again."""
        self.close()
        for w in list(self.pending.values()):
            w.finish(w.case_only)

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        self.pool.forget(self)
        if self.idle is not None:
            self.idle.cancel()
        try:
            self.loop.remove_reader(self.sock.fileno())
        except Exception:  # noqa: BLE001 - the loop may be closing
            pass
        self.sock.close()


class _UdpPool:
    """The upstream UDP sockets of one worker, by (addr, port, source)."""

    def __init__(self, st: _State):
        self.st = st
        self.conns: dict[tuple, list[_UdpConn]] = {}

    def query(self, send: Send, sent: _Sent) -> asyncio.Future:
        key = (send.addr, send.port, send.source)
        try:
            conn = self._acquire(key, sent)
            return conn.query(send, sent)
        except OSError as e:  # no socket, bad address, unreachable network
            log.debug(G, "=> %s@%d udp: %s", send.addr, send.port, e)
            fut = asyncio.get_running_loop().create_future()
            fut.set_result(None)
            return fut

    def _acquire(self, key: tuple, sent: _Sent) -> _UdpConn:
        lst = self.conns.get(key)
        if lst:
            now = lst[0].loop.time()
            for conn in lst:
                if conn.takes(sent, now):
                    return conn
        conn = _UdpConn(self, key)
        self.st.counters["udp_sockets"] += 1
        self.conns.setdefault(key, []).append(conn)
        return conn

    def forget(self, conn: _UdpConn) -> None:
        lst = self.conns.get(conn.key, [])
        if conn in lst:
            lst.remove(conn)
        if not lst:
            self.conns.pop(conn.key, None)

    def sockets(self) -> int:
        return sum(len(lst) for lst in self.conns.values())


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
            self.st.counters["timeout"] += 1
            return None
        finally:
            conn.remove(sent)
