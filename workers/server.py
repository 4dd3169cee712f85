"""Client-facing DNS listeners of one worker: UDP and TCP (plain DNS).

Owns: binding/adopting listening sockets (SO_REUSEPORT everywhere, IPV6_V6ONLY
on v6), the UDP reader callback (a batch of recvfrom per readable event, one
asyncio Task per valid query, answers with sendto), the TCP listeners and what
their connections (workers/tcp.py: framing, pipelining, idle timer, write-buffer
bound) ask of the server: the connection limit (settings.tcp_max_clients) and
the handling of one framed message, client-side checks (drop / FORMERR), answer
rendering (UDP size limit from the client's EDNS, truncation with TC=1, OPT
only if the query had one, QR+RA), and per-worker counters (`ServerStats`).
Must not: resolve anything (the injected `resolve` coroutine does), block the
loop (no time.sleep, no blocking socket calls), or let any exception escape a
loop callback (each catches everything and logs one debug line).

UDP answer size, as kresd 5.6 `kr_request_ensure_answer`: without OPT in the
query 512 bytes; with OPT max(512, min(client's EDNS payload, net.bufsize
downstream = settings.edns_bufsize)); over TCP 65535. An answer that does not
fit is replaced by the header + question (+ OPT) with TC=1.

Malformed input (a deliberate, documented policy): fewer than 12 bytes, or a
message with QR=1 (a response sent to a server socket, as kresd) -> dropped;
a readable header with a malformed rest, or QDCOUNT != 1 -> FORMERR echoing
ID, opcode and RD (QR set, the question if it parses, no OPT). kresd 5.6
itself silently drops most unparseable queries; answering FORMERR lets
clients fail fast and is what the project chose.
"""
from __future__ import annotations

import asyncio
import collections
import enum
import functools
import socket
import struct
import time
from dataclasses import dataclass, field
from typing import Awaitable, Callable, Optional

import dns.exception
import dns.flags
import dns.message
import dns.rcode

import native
from kresd import log
from kresd.errors import EXIT_BIND, BootError
from workers.settings import Endpoint, Settings
from workers.tcp import Outcome, TCPConnection
from workers.wire import query_from_parsed, render

G = log.Group.NETWORK
UDP_BATCH = 64  # datagrams drained per readable event (without the fast path)
UDP_BATCHES = 4  # fast-path batches (of native.BATCH_MAX datagrams) per readable event
UDP_RECV_MAX = 65535
DNS_HEADER = 12
MIN_UDP = 512
MAX_TCP = 65535
TCP_BACKLOG = 128  # kresd TCP_BACKLOG_DEFAULT
ACCEPT_SETTLE_ITERATIONS = 5  # loop turns for asyncio to attach connections accepted before a drain

ResolveFn = Callable[[dns.message.Message, tuple, bool], Awaitable[dns.message.Message]]


class Action(enum.Enum):
    """What the server does with a client datagram / TCP message."""

    RESOLVE = "resolve"
    FORMERR = "formerr"
    DROP = "drop"


@dataclass
class ServerStats:
    """Per-worker counters (read by the stats module later)."""

    queries: int = 0  # valid queries handed to the resolver
    udp: int = 0
    tcp: int = 0
    dropped: int = 0  # short/response/unsendable datagrams
    formerr: int = 0  # FORMERR answered by the server itself
    truncated: int = 0  # answers sent with TC=1 because they did not fit
    resolver_errors: int = 0  # exceptions from the resolve coroutine (-> SERVFAIL)
    tcp_connections: int = 0  # currently open client connections
    tcp_rejected: int = 0  # connections closed at accept (over tcp_max_clients)
    tcp_idle_closed: int = 0  # closed after net.tcp_in_idle without a query
    tcp_write_aborted: int = 0  # aborted: answers not read (write-buffer cap or drain timeout)
    answers: collections.Counter = field(default_factory=collections.Counter)  # rcode -> n

    def count_answer(self, rcode: int) -> None:
        self.answers[rcode] += 1


# --- client query parsing -----------------------------------------------------


def _load_native():
    try:
        import native  # the helper's bounded C parser (pure-Python twin if not built)

        return native.parse_query, native.ParseError, native.Code.ESHORT
    except Exception:  # noqa: BLE001 - missing or broken: dnspython alone
        return None, None, None


_native_parse, _NativeError, _ESHORT = _load_native()


def parse_client_query(wire: bytes) -> tuple[Optional[dns.message.Message], Action]:
    """Classify one client message: (message, RESOLVE) | (None, FORMERR) | (None, DROP).

    `native.parse_query` (bounded, C) rejects hostile input first when it is
    importable; dnspython then builds the Message the core needs (and alone
    decides when native is missing). Never raises.
    """
    if len(wire) < DNS_HEADER:
        return None, Action.DROP
    if wire[2] & 0x80:  # QR set: not a query (kresd drops these too)
        return None, Action.DROP
    if _native_parse is not None:
        try:
            msg = query_from_parsed(wire, _native_parse(wire))  # the usual shape, without dnspython's parse
        except _NativeError as e:  # malformed, no/several questions, trailing bytes, bad OPT
            return None, (Action.DROP if e.code == _ESHORT else Action.FORMERR)
        except Exception:  # noqa: BLE001 - let dnspython decide
            msg = None
        if msg is not None:
            return msg, Action.RESOLVE
    try:
        msg = dns.message.from_wire(wire)
    except Exception:  # noqa: BLE001 - any parse failure on hostile input
        return None, Action.FORMERR
    if len(msg.question) != 1:
        return None, Action.FORMERR
    return msg, Action.RESOLVE


def formerr_wire(wire: bytes) -> bytes:
    """FORMERR for a message whose 12-byte header is readable.

    Echoes ID, opcode and RD; sets QR and RA; carries the question if it
    parses, no OPT.
    """
    qid, flags = struct.unpack_from("!HH", wire, 0)
    flags = (flags & 0x7900) | 0x8000 | dns.flags.RA | dns.rcode.FORMERR
    question, qdcount = b"", 0
    try:
        qmsg = dns.message.from_wire(wire, question_only=True)
        if len(qmsg.question) == 1:
            r = dns.message.Message(id=qid)
            r.question = list(qmsg.question)
            question, qdcount = r.to_wire()[DNS_HEADER:], 1
    except Exception:  # noqa: BLE001 - the question is optional
        pass
    return struct.pack("!HHHHHH", qid, flags, qdcount, 0, 0, 0) + question


# --- answer rendering -----------------------------------------------------------


def udp_limit(has_opt: bool, payload: int, bufsize: int) -> int:
    """kresd's answer_max for UDP (see module docstring), from the query's EDNS."""
    return max(MIN_UDP, min(payload, bufsize)) if has_opt else MIN_UDP


def udp_size_limit(query: dns.message.Message, settings: Settings) -> int:
    return udp_limit(query.edns >= 0, query.payload, settings.edns_bufsize)


def _fix_answer(answer: dns.message.Message, query: dns.message.Message, settings: Settings) -> None:
    """Double-check what the core should have set: ID, QR, RA, OPT presence."""
    answer.id = query.id
    answer.flags = dns.flags.Flag(int(answer.flags) | 0x8080)  # |= QR | RA
    if query.edns >= 0:
        if answer.edns < 0:
            answer.use_edns(0, 0, settings.edns_bufsize)
        elif answer.payload != settings.edns_bufsize:
            answer.use_edns(answer.edns, answer.ednsflags, settings.edns_bufsize, options=list(answer.options))
    elif answer.edns >= 0:
        rcode = answer.rcode()
        answer.use_edns(False)
        answer.set_rcode(rcode & 0xF)


def _truncated(answer: dns.message.Message, max_size: int) -> bytes:
    """Header + question (+ OPT) with TC=1, as kresd sends when an answer does not fit."""
    tc = dns.message.Message(id=answer.id)
    tc.flags = answer.flags | dns.flags.TC
    tc.question = list(answer.question)
    if answer.edns >= 0:
        tc.use_edns(answer.edns, answer.ednsflags, answer.payload, options=list(answer.options))
    try:
        return tc.to_wire(max_size=max_size)
    except dns.exception.TooBig:  # long EDNS options (EDE text): drop them
        if answer.edns >= 0:
            tc.use_edns(answer.edns, answer.ednsflags, answer.payload)
        return tc.to_wire(max_size=max_size)


def render_answer(
    answer: dns.message.Message, query: dns.message.Message, settings: Settings, tcp: bool
) -> tuple[bytes, bool]:
    """Wire of the answer for this client and transport; (wire, truncated)."""
    _fix_answer(answer, query, settings)
    max_size = MAX_TCP if tcp else udp_size_limit(query, settings)
    try:
        return render(answer, max_size, settings.reorder_rr), False  # = answer.to_wire(), faster
    except dns.exception.TooBig:
        return _truncated(answer, max_size), True


def servfail_for(query: dns.message.Message) -> dns.message.Message:
    r = dns.message.make_response(query, recursion_available=True)
    r.set_rcode(dns.rcode.SERVFAIL)
    return r


# --- sockets ----------------------------------------------------------------------


def _family(addr: str) -> int:
    return socket.AF_INET6 if ":" in addr else socket.AF_INET


UDP_RCVBUF = 4 * 1024 * 1024  # a burst of queries waits in the kernel, not dropped


def _grow_rcvbuf(sock: socket.socket) -> None:
    """Enlarge a UDP socket's receive buffer: past net.core.rmem_max when we may
    (SO_RCVBUFFORCE needs CAP_NET_ADMIN), else up to it."""
    for opt in (getattr(socket, "SO_RCVBUFFORCE", 33), socket.SO_RCVBUF):
        try:
            sock.setsockopt(socket.SOL_SOCKET, opt, UDP_RCVBUF)
            return
        except OSError:
            continue


def bind_socket(addr: str, port: int, stype: int) -> socket.socket:
    """One non-blocking listening socket with SO_REUSEPORT (and V6ONLY on v6)."""
    fam = _family(addr)
    sock = socket.socket(fam, stype)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        if fam == socket.AF_INET6:
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        sock.bind((addr, port))
        if stype == socket.SOCK_STREAM:
            sock.listen(TCP_BACKLOG)
        else:
            _grow_rcvbuf(sock)
        sock.setblocking(False)
    except BaseException:
        sock.close()
        raise
    return sock


def bind_endpoints(endpoints: list[Endpoint]) -> list[socket.socket]:
    """Bind (or adopt, when ep.fd is set) every endpoint; BootError(EXIT_BIND) on failure."""
    socks: list[socket.socket] = []
    try:
        for ep in endpoints:
            if ep.fd is not None:
                s = socket.socket(fileno=ep.fd)
                s.setblocking(False)
                socks.append(s)
                continue
            types = {"dns": (socket.SOCK_DGRAM, socket.SOCK_STREAM), "dns-udp": (socket.SOCK_DGRAM,),
                     "dns-tcp": (socket.SOCK_STREAM,)}.get(ep.kind)
            if types is None:
                raise BootError(f"bind to '{ep.addr}@{ep.port}': unsupported kind '{ep.kind}'", EXIT_BIND)
            for stype in types:
                try:
                    socks.append(bind_socket(ep.addr, ep.port, stype))
                except OSError as e:
                    proto = "UDP" if stype == socket.SOCK_DGRAM else "TCP"
                    raise BootError(f"bind to '{ep.addr}@{ep.port}' ({proto}): {e.strerror or e}", EXIT_BIND) from e
    except BaseException:
        for s in socks:
            s.close()
        raise
    return socks


# --- the server -------------------------------------------------------------------


class Server:
    """All listeners of one worker, sharing one resolve coroutine and one stats object."""

    def __init__(self, settings: Settings, resolve: ResolveFn, stats: ServerStats | None = None,
                 fast: Optional[Callable[[bytes], Optional[bytes]]] = None):
        self.settings = settings
        self.resolve = resolve
        self.stats = stats or ServerStats()
        self.fast = fast  # workers/fastpath.FastPath: datagram -> answer wire or None
        if hasattr(fast, "attach"):
            fast.attach(self.stats, self)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._udp: list[socket.socket] = []
        self._tcp_servers: list[asyncio.base_events.Server] = []
        self._tasks: set[asyncio.Task] = set()
        self._conns: set[TCPConnection] = set()

    async def start(self, sockets: list[socket.socket]) -> None:
        """Serve on already bound sockets (UDP: loop reader; TCP: asyncio server)."""
        self._loop = asyncio.get_running_loop()
        for sock in sockets:
            sock.setblocking(False)
            if sock.type == socket.SOCK_DGRAM:
                batched = getattr(self.fast, "batch", None) is not None
                reader = self._on_udp_batch_readable if batched else self._on_udp_readable
                self._loop.add_reader(sock.fileno(), reader, sock)
                self._udp.append(sock)
            else:
                srv = await self._loop.create_server(lambda: TCPConnection(self), sock=sock)
                self._tcp_servers.append(srv)

    async def close(self, grace: float = 0.0) -> None:
        """Stop listening; with `grace` > 0, wait (up to `grace` s) until no query is
        in flight (Tasks and fast misses) and no client connection is open, so a restart drops nothing
        already received (queries not read yet stay in inherited sockets for the
        next process); then close connections (flushing what was written) and
        cancel what is left. Once nothing is read any more, nothing new can start,
        so an idle server closes at once: a restart's silence is not lengthened
        by fixed waits."""
        loop = self._loop
        for sock in self._udp:
            try:
                loop.remove_reader(sock.fileno())
            except Exception:  # noqa: BLE001
                pass
        if grace > 0 and loop is not None:
            # Stop accepting first and let connections accepted already get their
            # transports: asyncio attaches them in a task, which fails (and resets
            # the client) once the asyncio Server is closed.
            for srv in self._tcp_servers:
                for s in srv.sockets:
                    try:
                        loop.remove_reader(s.fileno())
                    except Exception:  # noqa: BLE001
                        pass
            # A connection accepted already is attached by asyncio's accept task
            # within a few loop iterations (transport, then connection_made).
            for _ in range(ACCEPT_SETTLE_ITERATIONS):
                await asyncio.sleep(0)
        for srv in self._tcp_servers:
            srv.close()
        if grace > 0 and loop is not None:
            end = loop.time() + grace
            # an open connection counts: its client may not have sent its query
            # yet; persistent idle connections are closed when `grace` runs out
            while (self._tasks or self._conns or self._fast_misses()) and loop.time() < end:
                await asyncio.sleep(0.01)
        for conn in list(self._conns):
            if grace > 0:
                conn.close()
            else:
                conn.abort()
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
        for srv in self._tcp_servers:
            try:
                await asyncio.wait_for(srv.wait_closed(), 1.0)
            except Exception:  # noqa: BLE001
                pass
        for sock in self._udp:
            sock.close()
        self._udp.clear()
        self._tcp_servers.clear()
        miss = getattr(self.fast, "miss", None)
        if miss is not None:
            miss.flush()  # what the fast miss answered goes to the cache before the exit

    def _fast_misses(self) -> int:
        """UDP queries the cache-miss fast path is asking upstream (no Task:
        a graceful close waits for them as for the Tasks)."""
        miss = getattr(self.fast, "miss", None)
        return len(miss.inflight) if miss is not None else 0

    def concurrent(self) -> int:
        """Requests being resolved now (kresd's worker.stats().concurrent): the
        Tasks, and the clients waiting on the cache-miss fast path."""
        miss = getattr(self.fast, "miss", None)
        waiting = sum(len(m.clients) for m in miss.inflight.values()) if miss is not None else 0
        return len(self._tasks) + waiting

    def spawn(self, coro) -> asyncio.Task:
        task = self._loop.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    async def answer(self, query: dns.message.Message, client: tuple, tcp: bool) -> Optional[bytes]:
        """Resolve one valid query and render it; never raises (SERVFAIL instead).
        None: send nothing (policy.DROP / NO_ANSWER)."""
        try:
            answer = await self.resolve(query, client, tcp)
        except asyncio.CancelledError:
            raise
        except Exception as e:  # noqa: BLE001 - request boundary
            answer = e
        return self.finish_answer(query, answer, tcp)

    def finish_answer(self, query: dns.message.Message, answer, tcp: bool) -> Optional[bytes]:
        """Render what the resolution gave (a Message, None = no answer, or the
        exception it raised -> SERVFAIL)."""
        if answer is None:
            self.stats.dropped += 1
            return None
        if not isinstance(answer, dns.message.Message):
            self.stats.resolver_errors += 1
            log.debug(G, "resolution of %s failed: %r", query.question[0].name, answer)
            answer = servfail_for(query)
        try:
            wire, truncated = render_answer(answer, query, self.settings, tcp)
        except Exception as e:  # noqa: BLE001
            log.debug(G, "rendering answer for %s failed: %r", query.question[0].name, e)
            answer = servfail_for(query)
            wire, truncated = render_answer(answer, query, self.settings, tcp)
        if truncated:
            self.stats.truncated += 1
        self.stats.count_answer(answer.rcode())
        return wire

    # UDP ------------------------------------------------------------------------

    def _on_udp_batch_readable(self, sock: socket.socket) -> None:
        """The reader of a UDP socket with the fast path. The first batch is
        run here without _on_udp_batch's loop: at low load a wakeup brings one
        datagram, and this is the Python every cache hit costs."""
        fast = self.fast
        try:
            n, misses = fast.run(sock)
        except Exception:  # noqa: BLE001 - OSError or a fast-path bug: the general reader decides
            if not self._on_udp_batch(sock):
                self._on_udp_recvfrom(sock)
            return
        if misses:
            self._udp_misses(sock, misses)
        if n >= fast.BATCH_MAX and not self._on_udp_batch(sock):  # more may be waiting
            self._on_udp_recvfrom(sock)

    def _udp_misses(self, sock: socket.socket, misses) -> None:
        for data, addr in misses:  # read already: one failing must not lose the others
            try:
                self._udp_datagram(sock, data, addr)
            except Exception as e:  # noqa: BLE001 - never kill the listener
                log.debug(G, "udp datagram from %s: %r", addr and addr[0], e)

    def _on_udp_readable(self, sock: socket.socket) -> None:
        if getattr(self.fast, "batch", None) is not None and self._on_udp_batch(sock):
            return
        self._on_udp_recvfrom(sock)

    def _on_udp_recvfrom(self, sock: socket.socket) -> None:
        try:
            for _ in range(UDP_BATCH):
                try:
                    data, addr = sock.recvfrom(UDP_RECV_MAX)
                except (BlockingIOError, InterruptedError):
                    return
                except OSError as e:  # e.g. a queued ICMP error
                    log.debug(G, "udp recvfrom: %s", e)
                    continue
                limiter = getattr(getattr(self.fast, "batch", None), "limiter", None)
                if limiter is not None and native.limit_datagram(  # (as the batch does in C)
                        limiter, sock, data, addr, int(time.monotonic() * 1000) & 0xFFFFFFFF)[0]:
                    continue
                self._udp_datagram(sock, data, addr)
        except Exception as e:  # noqa: BLE001 - never kill the listener
            log.debug(G, "udp reader error: %r", e)

    def _on_udp_batch(self, sock: socket.socket) -> bool:
        """Readable UDP socket with the fast path: batches of up to 64
        datagrams, the packet-cache hits answered in C (workers/fastpath.py),
        the misses one by one below; at most UDP_BATCHES batches per event so
        other sockets and timers get their turn. False if the fast path
        failed before reading anything (the caller drains the socket)."""
        fast = self.fast
        try:
            for _ in range(UDP_BATCHES):
                try:
                    n, misses = fast.run(sock)
                except OSError as e:  # e.g. a queued ICMP error
                    log.debug(G, "udp batch: %s", e)
                    continue
                except Exception as e:  # noqa: BLE001 - a fast-path bug must not stop reading
                    log.debug(G, "udp fast path failed: %r", e)
                    return False
                if misses:
                    self._udp_misses(sock, misses)
                if n < fast.BATCH_MAX:
                    break
        except Exception as e:  # noqa: BLE001 - never kill the listener
            log.debug(G, "udp reader error: %r", e)
        return True

    def _udp_datagram(self, sock: socket.socket, data: bytes, addr: tuple) -> None:
        fast = self.fast
        clock = getattr(fast, "clock", None)
        now = int(clock.time()) if clock is not None else 0
        if fast is not None:  # fresh cache hit: answered from the cache bytes
            try:
                wire = fast(data, addr)
            except Exception as e:  # noqa: BLE001 - the normal path decides
                log.debug(G, "fast path failed: %r", e)
                wire = None
            if wire is not None:
                self.stats.queries += 1
                self.stats.udp += 1
                self.stats.count_answer(dns.rcode.NOERROR)
                self._sendto(sock, wire, addr)
                if clock is not None:
                    self._remember(data, wire, addr, now)
                return
            pq = getattr(fast, "miss_pq", None)
            if pq is not None:  # nothing cached: perhaps a plain upstream answer (workers/fastmiss.py)
                fast.miss_pq = None
                try:
                    taken = fast.miss.start(sock, data, addr, pq)
                except Exception as e:  # noqa: BLE001 - the normal path decides
                    log.debug(G, "fast miss failed: %r", e)
                    taken = False
                if taken:
                    self.stats.queries += 1
                    self.stats.udp += 1
                    return
        msg, action = parse_client_query(data)
        if action is Action.RESOLVE:
            self.stats.queries += 1
            self.stats.udp += 1
            self._udp_resolve(sock, data, msg, addr, now if clock is not None else None)
        elif action is Action.FORMERR:
            self.stats.formerr += 1
            self.stats.count_answer(dns.rcode.FORMERR)
            self._sendto(sock, formerr_wire(data), addr)
        else:
            self.stats.dropped += 1

    def _udp_resolve(self, sock: socket.socket, data: bytes, msg: dns.message.Message, addr: tuple,
                     now: int | None, preset=None) -> None:
        """Resolve one UDP query (counted already); `now`: the unix second the
        answer may enter the packet cache for (None: it may not)."""
        start = getattr(self.resolve, "start", None)
        if start is None:
            self.spawn(self._serve_udp(sock, msg, addr))
            return
        try:  # answered without an upstream query (cache, local data): no Task
            done, result = (start(msg, addr[:2], False) if preset is None
                            else start(msg, addr[:2], False, preset))
        except Exception as e:  # noqa: BLE001 - request boundary
            done, result = True, e
        if not done:
            self.spawn(self._serve_udp(sock, msg, addr, result))
            return
        wire = self.finish_answer(msg, result, False)
        if wire is not None:
            self._sendto(sock, wire, addr)
            if now is not None:
                self._remember(data, wire, addr, now)

    def udp_full(self, sock: socket.socket, data: bytes, addr: tuple, preset=None) -> None:
        """The full path for a query the fast miss took (counted already) and
        hands back, with the reply it got (Request.preset) if any."""
        try:
            msg, action = parse_client_query(data)
            if action is Action.RESOLVE:
                self._udp_resolve(sock, data, msg, addr, None, preset)
        except Exception as e:  # noqa: BLE001 - never kill the caller
            log.debug(G, "udp datagram from %s: %r", addr and addr[0], e)

    def _remember(self, data: bytes, wire: bytes, addr: tuple, now: int) -> None:
        """Offer an answer made from the cache alone to the packet cache."""
        try:
            self.fast.remember(data, wire, addr, now)
        except Exception as e:  # noqa: BLE001 - a cache of answers is never worth a query
            log.debug(G, "packet cache insert failed: %r", e)

    async def _serve_udp(self, sock: socket.socket, query: dns.message.Message, addr: tuple,
                         pending=None) -> None:
        try:
            if pending is None:
                wire = await self.answer(query, addr[:2], False)
            else:
                try:
                    result = await pending
                except asyncio.CancelledError:
                    raise
                except Exception as e:  # noqa: BLE001 - request boundary
                    result = e
                wire = self.finish_answer(query, result, False)
            if wire is not None:
                self._sendto(sock, wire, addr)
        except asyncio.CancelledError:
            raise
        except Exception as e:  # noqa: BLE001
            log.debug(G, "udp answer to %s failed: %r", addr[0], e)

    def _sendto(self, sock: socket.socket, wire: bytes, addr: tuple) -> None:
        try:
            sock.sendto(wire, addr)
        except OSError as e:  # full buffer, closed socket, unreachable: drop
            self.stats.dropped += 1
            log.debug(G, "udp sendto %s: %s", addr[0], e)

    # TCP (workers/tcp.py TCPConnection calls these) ------------------------------

    def tcp_open(self, conn: TCPConnection) -> bool:
        """Admit a new connection; False (refuse it) at settings.tcp_max_clients."""
        if len(self._conns) >= self.settings.tcp_max_clients:
            self.stats.tcp_rejected += 1
            return False
        self._conns.add(conn)
        self.stats.tcp_connections = len(self._conns)
        return True

    def tcp_closed(self, conn: TCPConnection) -> None:
        self._conns.discard(conn)
        self.stats.tcp_connections = len(self._conns)

    def tcp_message(self, wire: bytes, peer: tuple) -> Outcome:
        """One framed client message: None (dropped), FORMERR bytes, or the
        resolution of a valid query (a coroutine function of the answer bytes)."""
        msg, action = parse_client_query(wire)
        if action is Action.RESOLVE:
            self.stats.queries += 1
            self.stats.tcp += 1
            return functools.partial(self.answer, msg, peer, True)
        if action is Action.FORMERR:
            self.stats.formerr += 1
            self.stats.count_answer(dns.rcode.FORMERR)
            return formerr_wire(wire)
        self.stats.dropped += 1
        return None
