"""Client TCP connections of one worker (plain DNS over TCP, RFC 7766 framing).

Owns: one asyncio Protocol per client connection: 2-byte length framing,
pipelining (answers go out in completion order), the per-connection in-flight
limit (settings.tcp_pipeline), the input-idle timer (net.tcp_in_idle,
settings.tcp_idle_timeout) and the bound on what a connection may queue for
writing.
Must not: parse or answer DNS (its host does: `TCPHost.tcp_message`), decide
how many connections a worker accepts (`TCPHost.tcp_open`), block the loop, or
let an exception escape a protocol callback (each catches everything, logs one
debug line and aborts that connection).

Hostile clients, and what bounds them:
- Idle or slowloris (a partial frame, then nothing or a trickle): closed when
  nothing happened for tcp_idle_timeout. Only a completed query handed to the
  host, or an answer written, counts as activity; partial data and complete
  frames the host drops do not. While queries are in flight the connection is
  not idle.
- Pipelining without reading: the transport's write buffer has a high-water
  mark (settings.tcp_write_buffer, low-water a quarter of it). Over it asyncio
  calls pause_writing(): the connection stops reading and dispatching queries;
  answers still in flight are written. The connection is aborted (RST, unsent
  answers dropped) when its write buffer exceeds settings.tcp_write_cap, or
  when it has not drained to the low-water mark within tcp_idle_timeout.
So per connection the server holds at most one socket read of unparsed input,
tcp_pipeline queries in flight and tcp_write_cap bytes of answers.
"""
from __future__ import annotations

import asyncio
import struct
from typing import Any, Awaitable, Callable, Optional, Protocol, Union

from kresd import log

G = log.Group.NETWORK

# What the host makes of one complete frame: None (dropped), answer bytes to
# write now, or a coroutine function giving the answer bytes (None: send
# nothing), called in the connection's task (so nothing is created that a
# cancelled task would leave un-awaited).
Outcome = Union[None, bytes, Callable[[], Awaitable[Optional[bytes]]]]


class TCPHost(Protocol):
    """What a connection needs from its server (workers/server.py Server)."""

    settings: Any  # workers.settings.Settings: tcp_* fields
    stats: Any  # counters: tcp_idle_closed, tcp_write_aborted

    def tcp_open(self, conn: "TCPConnection") -> bool: ...  # False: over the limit, refuse

    def tcp_closed(self, conn: "TCPConnection") -> None: ...

    def tcp_message(self, wire: bytes, peer: tuple) -> Outcome: ...

    def spawn(self, coro) -> asyncio.Task: ...


class TCPConnection(asyncio.Protocol):
    """One client TCP connection: framing, pipelining, idle timer, flow control."""

    def __init__(self, host: TCPHost):
        self.host = host
        self.settings = host.settings
        self.transport: asyncio.Transport | None = None
        self.peer: tuple = ("", 0)
        self.buf = bytearray()
        self.inflight = 0
        self.reading_paused = False
        self.write_paused = False  # asyncio said: over the write-buffer high-water mark
        self.closed = False
        self.last_active = 0.0  # loop time of the last completed query or answer
        self.idle_handle: asyncio.TimerHandle | None = None
        self.drain_handle: asyncio.TimerHandle | None = None

    # --- lifecycle --------------------------------------------------------------

    def connection_made(self, transport) -> None:
        try:
            self.transport = transport
            self.peer = (transport.get_extra_info("peername") or ("", 0))[:2]
            if not self.host.tcp_open(self):
                self.closed = True
                transport.abort()
                return
            high = max(1, int(self.settings.tcp_write_buffer))
            transport.set_write_buffer_limits(high=high, low=high // 4)
            self.last_active = self._loop().time()
            self._arm_idle(self.settings.tcp_idle_timeout)
        except Exception as e:  # noqa: BLE001
            log.debug(G, "tcp accept error: %r", e)
            self.abort()

    def connection_lost(self, exc) -> None:
        try:
            self.closed = True
            for h in (self.idle_handle, self.drain_handle):
                if h is not None:
                    h.cancel()
            self.idle_handle = self.drain_handle = None
            self.buf = bytearray()
            self.host.tcp_closed(self)
        except Exception as e:  # noqa: BLE001
            log.debug(G, "tcp close error: %r", e)

    def abort(self) -> None:
        """Close now, dropping unsent answers (RST)."""
        self.closed = True
        if self.transport is not None:
            self.transport.abort()

    def close(self) -> None:
        """Close after the answers already written are flushed."""
        self.closed = True
        if self.transport is not None:
            self.transport.close()

    @staticmethod
    def _loop() -> asyncio.AbstractEventLoop:
        return asyncio.get_running_loop()

    # --- input idle timer (net.tcp_in_idle) ---------------------------------------

    def _arm_idle(self, delay: float) -> None:
        if self.idle_handle is not None:
            self.idle_handle.cancel()
        self.idle_handle = self._loop().call_later(max(0.0, delay), self._on_idle)

    def _activity(self) -> None:
        """A completed query or an answer: the timer itself is moved when it fires."""
        self.last_active = self._loop().time()

    def _on_idle(self) -> None:
        try:
            self.idle_handle = None
            if self.closed:
                return
            timeout = self.settings.tcp_idle_timeout
            left = self.last_active + timeout - self._loop().time()
            if self.inflight or left > 0:  # answering, or active since the timer was set
                self._arm_idle(left if left > 0 else timeout)
                return
            if self.write_paused:  # its answers are not read either
                self._cut("idle, answers not read")
                return
            self.host.stats.tcp_idle_closed += 1
            log.debug(G, "tcp idle timeout, closing %s", self.peer[0])
            if self.transport.get_write_buffer_size():
                self.abort()  # a graceful close would wait for a client that does not read
            else:
                self.close()
        except Exception as e:  # noqa: BLE001
            log.debug(G, "tcp idle error: %r", e)
            self.abort()

    # --- write flow control (asyncio calls these from transport.write / on drain) ---

    def pause_writing(self) -> None:
        try:
            self.write_paused = True
            if self.drain_handle is None and not self.closed:
                timeout = self.settings.tcp_idle_timeout
                self.drain_handle = self._loop().call_later(timeout, self._on_drain_timeout)
            self._update_reading()
        except Exception as e:  # noqa: BLE001
            log.debug(G, "tcp pause error: %r", e)
            self.abort()

    def resume_writing(self) -> None:
        try:
            self.write_paused = False
            if self.drain_handle is not None:
                self.drain_handle.cancel()
                self.drain_handle = None
            if not self.closed:
                self._process()
        except Exception as e:  # noqa: BLE001
            log.debug(G, "tcp resume error: %r", e)
            self.abort()

    def _on_drain_timeout(self) -> None:
        self.drain_handle = None
        if self.closed or not self.write_paused:
            return
        self._cut("its answers did not drain within tcp_in_idle")

    def _cut(self, why: str) -> None:
        self.host.stats.tcp_write_aborted += 1
        log.debug(G, "tcp client %s aborted: %s", self.peer[0], why)
        self.abort()

    # --- reading --------------------------------------------------------------------

    def data_received(self, data: bytes) -> None:
        try:
            if self.closed:
                return
            self.buf += data
            self._process()
        except Exception as e:  # noqa: BLE001
            log.debug(G, "tcp read error from %s: %r", self.peer[0], e)
            self.abort()

    def _process(self) -> None:
        """Dispatch complete frames while under the in-flight limit and not write-paused."""
        limit = max(1, self.settings.tcp_pipeline)
        while not self.closed and not self.write_paused and self.inflight < limit and len(self.buf) >= 2:
            (n,) = struct.unpack_from("!H", self.buf, 0)
            if len(self.buf) < 2 + n:
                break  # a partial frame: not activity
            wire = bytes(self.buf[2:2 + n])
            del self.buf[:2 + n]
            self._message(wire)
        self._update_reading()

    def _update_reading(self) -> None:
        if self.closed or self.transport is None:
            return
        want_pause = self.write_paused or self.inflight >= max(1, self.settings.tcp_pipeline)
        if want_pause != self.reading_paused:
            self.reading_paused = want_pause
            if want_pause:
                self.transport.pause_reading()
            else:
                self.transport.resume_reading()

    def _message(self, wire: bytes) -> None:
        out = self.host.tcp_message(wire, self.peer)
        if out is None:  # dropped: not activity
            return
        self._activity()
        if isinstance(out, (bytes, bytearray)):
            self._write(out)
            return
        self.inflight += 1
        self.host.spawn(self._serve(out))

    async def _serve(self, resolve: Callable[[], Awaitable[Optional[bytes]]]) -> None:
        try:
            wire = await resolve()
            if wire is not None:
                self._write(wire)
        except asyncio.CancelledError:
            raise
        except Exception as e:  # noqa: BLE001
            log.debug(G, "tcp answer to %s failed: %r", self.peer[0], e)
        finally:
            self.inflight -= 1
            if not self.closed:
                try:
                    self._activity()
                    self._process()
                except Exception as e:  # noqa: BLE001
                    log.debug(G, "tcp resume error: %r", e)
                    self.abort()

    # --- writing --------------------------------------------------------------------

    def _write(self, wire: bytes) -> None:
        t = self.transport
        if self.closed or t is None or t.is_closing():
            return
        t.write(struct.pack("!H", len(wire)) + wire)  # may call pause_writing()
        if not self.closed and t.get_write_buffer_size() > self.settings.tcp_write_cap:
            self._cut(f"over {self.settings.tcp_write_cap} bytes of unsent answers")
