"""predict: kresd 5.6's prefetching module, its expiring-record part.

Owns: the `finish` hook that refreshes, right after a request, every record
it answered from the cache close to its expiry (kresd's EXPIRING flag:
remaining TTL within 5 s + 1 % of the stored TTL, workers/layers/cache.py
is_expiring), with an internal query that skips the cache read and stashes
the fresh answer (resolve(name, type, class, {'NO_CACHE'}), as kresd's
module does), at most once per (name, type) per REFRESH_GAP seconds, and
kresd's configuration (`predict.config{window = 15, period = 24}`).
Not implemented: kresd's time-of-day prediction (sampling stats.frequent()
every `window` minutes over `period` windows); a config that asks for it
gets a log notice saying so. While loaded, cache hits take the full path
(the C fast path would answer them without this hook ever seeing that a
record is expiring): a CPU cost, not a change of answers.
Must not: delay the client's answer (refreshes run after it, on the loop).
"""
from __future__ import annotations

import time
from typing import Any

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

    def __init__(self, ctx):
        super().__init__(ctx)
        self.window = 15
        self.period = 24
        self.recent: dict[tuple, float] = {}
        self.refreshed = 0
        self.layer = PredictLayer(self)

    def refresh(self, name, rtype: int) -> None:
        key = (name, int(rtype))
        now = time.monotonic()
        if now - self.recent.get(key, -REFRESH_GAP) < REFRESH_GAP:
            return
        if len(self.recent) >= RECENT_MAX:
            self.recent = {k: t for k, t in self.recent.items() if now - t < REFRESH_GAP}
        self.recent[key] = now
        lua = getattr(self.ctx, "lua", None)
        if lua is None:
            return
        self.refreshed += 1
        log.debug(G, "predict: refreshing %s %s", name, dns.rdatatype.to_text(rtype))
        runtime = lua.runtime
        runtime.globals()[b"resolve"](name.to_text().encode(), int(rtype), 1,
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
        if self.window and self.period:
            log.notice(G, "predict: refreshing expiring records; the time-of-day prediction "
                          "(window/period) is not implemented in kresd-py")
        return None

    def lua_api(self) -> dict:
        return {"config": self.config}

    def lua_get(self, key: Any) -> Any:
        if key in ("window", "period", "refreshed"):
            return getattr(self, key)
        raise KeyError(key)
