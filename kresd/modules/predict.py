"""predict: kresd 5.6's prefetching module.

Owns two things, as kresd's predict.lua does:
* the `finish` hook that refreshes, right after a request, every record
it answered from the cache close to its expiry (kresd's EXPIRING flag:
remaining TTL within 5 s + 1 % of the stored TTL, workers/layers/cache.py
is_expiring), with an internal query that skips the cache read and stashes
the fresh answer (resolve(name, type, class, {'NO_CACHE'}), as kresd's
module does), at most once per (name, type) per REFRESH_GAP seconds, and
kresd's configuration (`predict.config{window = 15, period = 24}`);
* the time-of-day prediction: the day is cut into windows of `window`
  minutes, numbered modulo `period` (the epoch, from the local time). At a
  random moment 1/5 to 2/5 of a window apart, the names the stats module saw
  most (stats.frequent(), then cleared) are logged under the current epoch.
  When a new epoch starts, what was logged for it last time round is queued,
  and so is every name seen in both epoch-i-1 and epoch-2i-1 (a regular
  pattern: kresd's generate()); the queue is resolved with NO_CACHE a fifth
  at a time, 3 x window seconds apart (kresd's drain()). `period` 0 or 1
  turns the prediction off; the stats module is loaded when it is on.
While loaded, cache hits take the full path
(the C fast path would answer them without this hook ever seeing that a
record is expiring): a CPU cost, not a change of answers.
Must not: delay the client's answer (refreshes run after it, on the loop).
"""
from __future__ import annotations

import random
import time
from typing import Any, Callable

import dns.rdatatype

from kresd import log
from kresd.bindings.bridge import LuaUsage
from workers.layer import Layer

from .registry import Module, builtin

G = log.Group.SYSTEM
REFRESH_GAP = 5.0  # seconds before the same (name, type) is refreshed again
RECENT_MAX = 10000


class PredictLayer(Layer):
    name = "predict"

    def __init__(self, module: "Predict"):
        self.module = module

    def fast_ok(self, pq) -> bool:
        return False  # every cache hit must pass `finish`, see the module docstring

    def finish(self, req):
        for name, rtype in req.vars.get("expiring", ()):
            self.module.refresh(name, rtype)
        return None


@builtin
class Predict(Module):
    name = "predict"

    def __init__(self, ctx, localtime: Callable[[], time.struct_time] = time.localtime):
        super().__init__(ctx)
        self.window = 15
        self.period = 24
        self.recent: dict[tuple, float] = {}
        self.refreshed = 0
        self.layer = PredictLayer(self)
        self.localtime = localtime
        self.log: dict[int, set] = {}  # epoch -> {(type, name)} sampled in it
        self.queue: set = set()  # (type, name) to prefetch
        self.batch = 0
        self.current_epoch: int | None = None
        self.learned = 0
        self._ev_sample = self._ev_drain = None

    # -- the time-of-day prediction (predict.lua) ------------------------------
    def epoch(self) -> int | None:
        if not self.period or self.period <= 1 or not self.window:
            return None
        t = self.localtime()
        return int(t.tm_hour * (60 / self.window) + t.tm_min // self.window) % int(self.period) + 1

    def init(self) -> None:
        registry = self.ctx.registry
        if (self.period or 0) > 1 and registry is not None and registry.get("stats") is None:
            registry.load("stats")  # (kresd's config() does this, and runs on load)
        if self.window > 0 and self.period > 0:
            self.current_epoch = self.epoch()
            self._arm_sample()

    def deinit(self) -> None:
        for h in (self._ev_sample, self._ev_drain):
            if h is not None and self.ctx.scheduler is not None:
                self.ctx.scheduler.cancel(h)
        self._ev_sample = self._ev_drain = None
        self.log, self.queue = {}, set()

    def _arm_sample(self) -> None:
        scheduler = self.ctx.scheduler
        if scheduler is None:
            return
        jitter = self.window * 60 / 5
        self._ev_sample = scheduler.call_later(random.uniform(jitter, 2 * jitter), self.process)

    def sample(self, epoch_now: int | None) -> int:
        stats = self.ctx.registry.get("stats") if self.ctx.registry is not None else None
        if epoch_now is None or stats is None:
            return 0
        queries = stats.frequent()
        stats.clear_frequent()
        current = self.log.setdefault(epoch_now, set())
        current.update((q["type"], q["name"]) for q in queries)
        return len(queries)

    def generate(self, epoch_now: int | None) -> int:
        if epoch_now is None:
            return 0
        queued, period = 0, int(self.period)
        for i in range(1, period // 2):
            current = self.log.get((epoch_now - i - 1) % period + 1)
            past = self.log.get((epoch_now - 2 * i - 1) % period + 1)
            if current and past:
                for key in current & past:
                    if key not in self.queue:
                        self.queue.add(key)
                        queued += 1
        return queued

    def process(self) -> None:
        """One sampling tick (kresd's predict.process)."""
        epoch_now = self.epoch()
        queued = 0
        if epoch_now != self.current_epoch:
            self.current_epoch = epoch_now
            before = len(self.queue)
            self.queue |= self.log.get(epoch_now, set())
            queued = len(self.queue) - before
            queued += self.generate(epoch_now)
            self.log[epoch_now] = set()
        self.learned = self.sample(epoch_now)
        if queued:
            self.batch = max(1, len(self.queue) // 5)
            if self._ev_drain is None and self.ctx.scheduler is not None:
                self._ev_drain = self.ctx.scheduler.call_later(0, self.drain)
        self._arm_sample()

    def drain(self) -> None:
        """Resolve up to one batch of the queue (kresd's predict.drain)."""
        self._ev_drain = None
        done = 0
        while self.queue and done < self.batch:
            rtype, name = self.queue.pop()
            self._resolve(name, rtype)
            done += 1
        if done and self.ctx.scheduler is not None:
            self._ev_drain = self.ctx.scheduler.call_later(self.window * 3, self.drain)

    def refresh(self, name, rtype: int) -> None:
        key = (name, int(rtype))
        now = time.monotonic()
        if now - self.recent.get(key, -REFRESH_GAP) < REFRESH_GAP:
            return
        if len(self.recent) >= RECENT_MAX:
            self.recent = {k: t for k, t in self.recent.items() if now - t < REFRESH_GAP}
        self.recent[key] = now
        self.refreshed += 1
        log.debug(G, "predict: refreshing %s %s", name, dns.rdatatype.to_text(rtype))
        self._resolve(name.to_text(), int(rtype))

    def _resolve(self, name: str, rtype: int) -> None:
        lua = getattr(self.ctx, "lua", None)
        if lua is None:
            return
        runtime = lua.runtime
        runtime.globals()[b"resolve"](str(name).encode(), int(rtype), 1,
                                      runtime.table_from([b"NO_CACHE"]))

    def config(self, arg: Any = None) -> Any:
        if arg is None:
            return None
        if not isinstance(arg, dict):
            raise LuaUsage("[predict] configuration must be a table or nil")
        for key in ("window", "period"):
            if key in arg:
                value = arg[key]
                if not isinstance(value, (int, float)) or isinstance(value, bool) or value < 0:
                    raise LuaUsage(f"[predict] {key} must be a number >= 0")
                setattr(self, key, value)
        self.deinit()
        self.init()
        return None

    def lua_api(self) -> dict:
        return {"config": self.config}

    def lua_get(self, key: Any) -> Any:
        if key in ("window", "period", "refreshed", "learned", "current_epoch"):
            return getattr(self, key)
        if key == "queue_len":
            return len(self.queue)
        raise KeyError(key)
