"""serve_stale: kresd 5.6's module (RFC 8767): expired cached data when no
upstream server answers.

Owns: turning the resolver's stale window on while loaded
(settings.serve_stale: at most one day past expiry, as kresd's module
callback allows) and off when unloaded, and the `answer_finalize` mark of a
stale answer: EDE 3 "Stale Answer" (RFC 8914), counted as `answer.stale` by
the stats module. The driver (workers/resolve.py `_stale`) serves the data:
after the upstream resolution of a (sub-)query failed for lack of a
reachable server, the cache is read again accepting entries expired at most
`serve_stale` seconds ago, with a TTL of 1 s (kresd's callback answers 1).
Fresh cache hits (the fast path included) are not affected.
Must not: serve stale data while an upstream can still answer, or for a
bogus answer.
"""
from __future__ import annotations

from typing import Any

from workers.layer import Layer
from workers.request import set_ede

from .registry import Module, builtin

MAX_STALE = 24 * 3600  # kresd: `ttl + 3600 * 24 > 0` -> at most one day stale
EDE_STALE = 3


class ServeStaleLayer(Layer):
    name = "serve_stale"
    fast_miss = True  # workers/fastmiss.py: stale data is served only after failures, by the full path

    def fast_ok(self, pq) -> bool:
        return True  # only the full path, after failed upstream queries, serves stale data

    def answer_finalize(self, req):
        if req.vars.get("stale") and req.answer is not None:
            set_ede(req.answer, EDE_STALE)
        return None


@builtin
class ServeStale(Module):
    name = "serve_stale"

    def __init__(self, ctx):
        super().__init__(ctx)
        self.layer = ServeStaleLayer()

    def init(self) -> None:
        self.ctx.settings.serve_stale = MAX_STALE

    def deinit(self) -> None:
        self.ctx.settings.serve_stale = 0

    def lua_api(self) -> dict:
        return {}

    def config(self, arg: Any = None) -> Any:
        return None
