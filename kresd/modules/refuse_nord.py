"""refuse_nord: kresd 5.6's module refusing queries without the RD bit
(modules/refuse_nord/refuse_nord.c), loaded by default in kresd 5.6.

Owns: the `begin` check: a client query with RD=0 gets REFUSED with AD
cleared and EDE "Not Authoritative" (code 20), which stops the request before
any cache lookup (no cache snooping).
Must not: look at anything but the client's header, or do I/O.
"""
from __future__ import annotations

import dns.flags
import dns.rcode

from workers.layer import Layer, State
from workers.request import set_ede

from .registry import Module, builtin

EDE_NOTAUTH = 20


class RefuseNordLayer(Layer):
    name = "refuse_nord"
    fast_miss = True  # workers/fastmiss.py: the fast miss takes RD=1 queries only

    def begin(self, req):
        if req.query.flags & dns.flags.RD:
            return None
        ans = req.answer
        ans.set_rcode(dns.rcode.REFUSED)
        ans.flags &= ~dns.flags.AD
        set_ede(ans, EDE_NOTAUTH)
        return State.DONE

    def fast_ok(self, pq):
        return True  # the fast path itself never answers RD=0 queries


@builtin
class RefuseNord(Module):
    name = "refuse_nord"

    def __init__(self, ctx):
        super().__init__(ctx)
        self.layer = RefuseNordLayer()

    def lua_api(self) -> dict:
        return {}
