"""`event` namespace (after, recurrent, reschedule, cancel) and the schedulers.

Owns: the Scheduler protocol (call_later(delay_s, fn) -> handle, cancel(handle)),
AsyncioScheduler (loop timers; timers set before the loop exists are kept and
armed by attach(loop)), FakeScheduler (advance(seconds) for tests), and kresd's
event ids: callbacks get their id, `recurrent` re-arms after each call.
Must not: sleep or block; times from Lua are milliseconds (kresd `sec = 1000`).
"""
from __future__ import annotations

import heapq
import itertools
import logging
from typing import Any, Callable, Protocol

from .bridge import LuaUsage

log = logging.getLogger("kresd.event")


class Scheduler(Protocol):
    def call_later(self, delay_s: float, fn: Callable[[], None]) -> Any: ...

    def cancel(self, handle: Any) -> None: ...


class AsyncioScheduler:
    """Timers on an asyncio loop; before attach(loop), timers wait in a list."""

    def __init__(self, loop=None):
        self.loop = loop
        self._pending: dict[int, tuple[float, Callable]] = {}
        self._handles: dict[int, Any] = {}
        self._ids = itertools.count(1)

    def call_later(self, delay_s: float, fn: Callable[[], None]) -> int:
        h = next(self._ids)
        if self.loop is None:
            self._pending[h] = (delay_s, fn)
        else:
            self._arm(h, delay_s, fn)
        return h

    def _arm(self, h: int, delay_s: float, fn) -> None:
        def fire():
            self._handles.pop(h, None)
            fn()
        self._handles[h] = self.loop.call_later(max(0.0, delay_s), fire)

    def cancel(self, handle: int) -> None:
        self._pending.pop(handle, None)
        th = self._handles.pop(handle, None)
        if th is not None:
            th.cancel()

    def attach(self, loop) -> None:
        self.loop = loop
        pending, self._pending = self._pending, {}
        for h, (delay, fn) in pending.items():
            self._arm(h, delay, fn)


class FakeScheduler:
    """Deterministic timers: nothing fires until advance(seconds)."""

    def __init__(self):
        self.now = 0.0
        self._heap: list = []
        self._ids = itertools.count(1)
        self._cancelled: set[int] = set()

    def call_later(self, delay_s: float, fn) -> int:
        h = next(self._ids)
        heapq.heappush(self._heap, (self.now + max(0.0, delay_s), h, fn))
        return h

    def cancel(self, handle: int) -> None:
        self._cancelled.add(handle)

    def advance(self, seconds: float = 0.0) -> int:
        """Run every timer due within `seconds`; returns how many fired."""
        end = self.now + seconds
        fired = 0
        while self._heap and self._heap[0][0] <= end:
            when, h, fn = heapq.heappop(self._heap)
            self.now = max(self.now, when)
            if h in self._cancelled:
                self._cancelled.discard(h)
                continue
            fired += 1
            fn()
        self.now = end
        return fired

    def pending(self) -> int:
        return sum(1 for _, h, _ in self._heap if h not in self._cancelled)


class _Events:
    """kresd event ids over a Scheduler."""

    def __init__(self, engine):
        self.engine = engine
        self.ids = itertools.count(1)
        self.timers: dict[int, dict] = {}  # id -> {fn, interval, handle}

    def _schedule(self, eid: int, delay_ms: float) -> None:
        ev = self.timers[eid]
        ev["handle"] = self.engine.scheduler.call_later(delay_ms / 1000.0, lambda: self._fire(eid))

    def _fire(self, eid: int) -> None:
        ev = self.timers.get(eid)
        if ev is None:
            return
        ev["handle"] = None
        if ev["interval"] is None:
            del self.timers[eid]
        try:
            self.engine.changed()  # a callback may change the configuration
            self.engine.lua_bridge.call(ev["fn"], eid)
        except Exception as e:  # noqa: BLE001 - a failing callback never stops the loop
            log.error("[system] event %d callback failed: %s", eid, e)
        if eid in self.timers and ev["interval"] is not None and ev["handle"] is None:
            self._schedule(eid, ev["interval"])

    def add(self, delay, fn, interval=None) -> int:
        if not isinstance(delay, (int, float)) or isinstance(delay, bool) or delay < 0:
            raise LuaUsage("event: expected a time in milliseconds >= 0 and a function")
        if self.engine.lua_bridge.lua_type(fn) != "function" and not callable(fn):
            raise LuaUsage("event: expected a time in milliseconds and a function")
        eid = next(self.ids)
        self.timers[eid] = {"fn": fn, "interval": interval, "handle": None}
        self._schedule(eid, delay)
        return eid

    def cancel(self, eid) -> bool:
        ev = self.timers.pop(eid, None)
        if ev is None:
            return False
        if ev["handle"] is not None:
            self.engine.scheduler.cancel(ev["handle"])
        return True

    def reschedule(self, eid, delay) -> bool:
        ev = self.timers.get(eid)
        if ev is None or not isinstance(delay, (int, float)):
            raise LuaUsage("event.reschedule(id, timeout_ms): no such event or bad timeout")
        if ev["handle"] is not None:
            self.engine.scheduler.cancel(ev["handle"])
        self._schedule(eid, delay)
        return True


def cancel_all(engine) -> None:
    ev = getattr(engine, "events", None)
    if ev is not None:
        for eid in list(ev.timers):
            ev.cancel(eid)


def install(engine) -> None:
    from . import namespace

    ev = engine.events = _Events(engine)

    def after(delay=None, fn=None):
        """event.after(time_ms, function(ev) ... end) -> id"""
        return ev.add(delay, fn)

    def recurrent(interval=None, fn=None):
        """event.recurrent(interval_ms, function(ev) ... end) -> id"""
        if not isinstance(interval, (int, float)) or isinstance(interval, bool) or interval <= 0:
            raise LuaUsage("event.recurrent(interval_ms > 0, function(ev))")
        return ev.add(interval, fn, interval)

    def cancel(eid=None):
        """event.cancel(id) -> true if it was pending"""
        if not isinstance(eid, int):
            raise LuaUsage("event.cancel(id)")
        return ev.cancel(eid)

    def reschedule(eid=None, delay=None):
        """event.reschedule(id, timeout_ms)"""
        return ev.reschedule(eid, delay)

    def socket(*_a):
        raise LuaUsage("event.socket: not implemented in kresd-py")

    namespace(engine, "event", {"after": after, "recurrent": recurrent, "cancel": cancel,
                                "reschedule": reschedule, "socket": socket})
