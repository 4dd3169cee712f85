"""Upstream I/O of one worker: send one query, get the matching reply or None.

Owns: `query(send)` (the transport function handed to
`workers.transport.drive_async`), UDP with a fresh socket per query (kernel-
chosen random source port, optional source address), TCP after TC=1 (connect
timeout, 2-byte framing), and reply matching (source address+port, ID and
question: qname case-insensitively, qtype, qclass).
Must not: build queries or choose IDs (the core does, in `send.wire`), judge
reply contents beyond matching (workers/scrub.py does), block the loop or
sleep (timeouts are loop timers), or raise: every network failure is None.

A reply with the right ID but QDCOUNT=0 is accepted only when its RCODE is not
NOERROR (servers answer FORMERR/NOTIMP without a question, and kresd's
iterator treats such a header-only FORMERR as a selection error).
Not yet: TCP connection reuse, in-flight dedup, 0x20 (DESIGN.md lists them).
"""
from __future__ import annotations

import asyncio
import ipaddress
import socket
import struct
from typing import Optional

import dns.name

from kresd import log
from workers.transport import Send

G = log.Group.IO
RECV_MAX = 65535
DNS_HEADER = 12


def _question(wire: bytes) -> Optional[tuple[int, dns.name.Name, int, int]]:
    """(qdcount, qname, qtype, qclass) of a message, bounded; None if unreadable.

    For QDCOUNT=0 returns (0, root, 0, 0).
    """
    if len(wire) < DNS_HEADER:
        return None
    (qdcount,) = struct.unpack_from("!H", wire, 4)
    if qdcount == 0:
        return 0, dns.name.root, 0, 0
    try:
        name, used = dns.name.from_wire(wire, DNS_HEADER)
        qtype, qclass = struct.unpack_from("!HH", wire, DNS_HEADER + used)
    except Exception:  # noqa: BLE001 - hostile wire
        return None
    return qdcount, name, qtype, qclass


class _Matcher:
    """Decides whether a datagram/message is the reply to our query."""

    def __init__(self, send: Send):
        self.addr = ipaddress.ip_address(send.addr)
        self.port = send.port
        self.id = send.wire[:2]
        q = _question(send.wire)
        self.question = q[1:] if q else None

    def source_ok(self, src: tuple) -> bool:
        try:
            a = ipaddress.ip_address(src[0].split("%", 1)[0])
        except ValueError:
            return False
        if isinstance(a, ipaddress.IPv6Address) and a.ipv4_mapped is not None:
            a = a.ipv4_mapped
        return a == self.addr and src[1] == self.port

    def reply_ok(self, wire: bytes) -> bool:
        if len(wire) < DNS_HEADER or wire[:2] != self.id or not wire[2] & 0x80:
            return False
        q = _question(wire)
        if q is None:
            return False
        if q[0] == 0:
            return (wire[3] & 0x0F) != 0  # header-only error reply
        return q[0] == 1 and q[1:] == self.question  # Name equality is case-insensitive


def _family(addr: str) -> int:
    return socket.AF_INET6 if ":" in addr else socket.AF_INET


async def query(send: Send) -> Optional[bytes]:
    """Send `send.wire` to send.addr:send.port; the matching reply, or None."""
    try:
        if send.tcp:
            return await _query_tcp(send)
        return await _query_udp(send)
    except asyncio.CancelledError:
        raise
    except Exception as e:  # noqa: BLE001 - network failure of any kind
        log.debug(G, "=> %s@%d failed: %r", send.addr, send.port, e)
        return None


async def _query_udp(send: Send) -> Optional[bytes]:
    loop = asyncio.get_running_loop()
    matcher = _Matcher(send)
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

        def on_readable() -> None:
            try:
                _drain_udp(sock, matcher, fut)
            except Exception as e:  # noqa: BLE001 - never escape a callback
                if not fut.done():
                    fut.set_result(None)
                log.debug(G, "udp reader error: %r", e)

        def on_timeout() -> None:
            if not fut.done():
                fut.set_result(None)

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


def _drain_udp(sock: socket.socket, matcher: _Matcher, fut: asyncio.Future) -> None:
    while not fut.done():
        try:
            data, src = sock.recvfrom(RECV_MAX)
        except (BlockingIOError, InterruptedError):
            return
        except OSError as e:  # ICMP unreachable etc.
            log.debug(G, "udp recv error: %s", e)
            fut.set_result(None)
            return
        if matcher.source_ok(src) and matcher.reply_ok(data):
            fut.set_result(data)
        else:
            log.debug(G, "ignoring mismatching reply from %s", src[0])


async def _query_tcp(send: Send) -> Optional[bytes]:
    loop = asyncio.get_running_loop()
    matcher = _Matcher(send)
    local = (send.source, 0) if send.source else None
    deadline = loop.time() + send.timeout
    try:
        reader, writer = await asyncio.wait_for(
            asyncio.open_connection(send.addr, send.port, local_addr=local), send.timeout
        )
    except (OSError, asyncio.TimeoutError) as e:
        log.debug(G, "=> %s@%d tcp connect: %r", send.addr, send.port, e)
        return None
    try:
        writer.write(struct.pack("!H", len(send.wire)) + send.wire)
        # Connected: allow one more timeout for the answer (a TCP answer may be large).
        deadline = max(deadline, loop.time()) + send.timeout
        while True:
            remaining = deadline - loop.time()
            if remaining <= 0:
                return None
            try:
                hdr = await asyncio.wait_for(reader.readexactly(2), remaining)
                (n,) = struct.unpack("!H", hdr)
                data = await asyncio.wait_for(reader.readexactly(n), max(0.0, deadline - loop.time()))
            except (asyncio.TimeoutError, asyncio.IncompleteReadError, OSError) as e:
                log.debug(G, "=> %s@%d tcp read: %r", send.addr, send.port, e)
                return None
            if matcher.reply_ok(data):
                return data
            log.debug(G, "ignoring mismatching tcp reply from %s", send.addr)
    finally:
        writer.close()
