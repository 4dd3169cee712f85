"""The sans-I/O boundary between the resolution core and the network.

Owns: `Send` (what the core asks the outside world to do), `Clock`, and the
drivers that run a resolution generator synchronously or under asyncio.
Must not: open sockets (workers/outbound.py does; tests plug in fakes).

Protocol: `Resolver.resolve(...)` (workers/resolve.py) is a generator. It
yields `Send` objects and is resumed with the reply as bytes, or with None when
the query timed out or failed at the network level. When it returns, the
StopIteration value is the final answer (a dns.message.Message).
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Awaitable, Callable, Generator, Optional


@dataclass(frozen=True)
class Send:
    """Send `wire` to addr:port and hand back the reply (bytes) or None."""

    addr: str  # IPv4 or IPv6 literal
    port: int
    wire: bytes  # the query, already rendered (ID, question, EDNS)
    tcp: bool = False  # use TCP (after TC=1)
    timeout: float = 0.8  # seconds to wait for a matching reply
    source: Optional[str] = None  # source address (net.outgoing_v4/v6)
    x20: bool = False  # randomise the QNAME case on the wire and require it back (0x20)


@dataclass(frozen=True)
class Preset:
    """A reply received before the request existed (Request.preset): to
    question (qname, qtype) sent to `addr` ("ip" or "ip#port") with ID qid,
    QNAME wire `sent` (its 0x20 case), EDNS or not, 0x20 or not, over UDP."""

    addr: str
    qname: object  # dns.name.Name
    qtype: int
    qid: int
    sent: bytes
    raw: bytes
    edns: bool
    x20: bool
    rtt: float  # seconds from sending to the reply (reported when the reply is taken)


class Clock:
    """Wall clock (TTLs, timestamps) and monotonic clock (timeouts, limits)."""

    def time(self) -> float:
        return time.time()

    def monotonic(self) -> float:
        return time.monotonic()


Resolution = Generator[Send, Optional[bytes], "object"]


def drive_sync(gen: Resolution, transport: Callable[[Send], Optional[bytes]]):
    """Run a resolution to completion with a blocking transport function."""
    try:
        send = next(gen)
        while True:
            send = gen.send(transport(send))
    except StopIteration as stop:
        return stop.value


async def drive_async(gen: Resolution, transport: Callable[[Send], Awaitable[Optional[bytes]]]):
    """Run a resolution to completion with an async transport function."""
    try:
        send = next(gen)
        while True:
            reply = await transport(send)
            send = gen.send(reply)
    except StopIteration as stop:
        return stop.value
