"""bogus_log: kresd 5.6's DNSSEC validation failure log (modules/bogus_log/).

Owns: one log line per answer that failed DNSSEC validation, at `notice` in
the `dnssec` group, in kresd's words followed by what kresd-py also knows:
    [dnssec] validation failure: www.broken.test. A (zone broken.test.: <reason>)
and the table of the most frequent bogus (name, type) pairs, at most 5000 of
them, least recently seen dropped first (kresd's LRU); `bogus_log.frequent()`
returns it as kresd does, [{name=, type='A', count=}], most frequent first.
Must not: change the answer, or keep per-request state.

Reads what the validator leaves on the Request: `req.bogus` =
(zone, reason, EDE) when validation failed and the answer is SERVFAIL.
kresd logs the name and type of the failing (sub-)query (it may be the
zone's DNSKEY); the driver reports failures per request, so the name and type
here are the client's, and the zone says where the chain broke.
Not loaded by default, as in kresd: `modules.load('bogus_log')`.
"""
from __future__ import annotations

import collections
import logging
from typing import Any

import dns.name
import dns.rdatatype

from kresd.log import NOTICE
from workers.layer import Layer

from .registry import Module, builtin
from .ta_sentinel import no_options

log = logging.getLogger("kresd.dnssec")  # kresd 5.6 log group LOG_GRP_DNSSEC
FREQUENT_COUNT = 5000  # kresd's FREQUENT_COUNT (LRU size)


class BogusLogLayer(Layer):
    name = "bogus_log"
    fast_miss = True  # workers/fastmiss.py: it logs bogus answers: a fast miss is never validated

    def __init__(self, module: "BogusLog"):
        self.m = module

    def fast_ok(self, pq):
        return True  # the fast path never serves a bogus answer

    def finish(self, req):
        if req.bogus is None or not req.query.question:
            return None
        zone, reason, _ede = req.bogus
        q = req.query.question[0]
        qtype = dns.rdatatype.to_text(q.rdtype)
        log.log(NOTICE, "validation failure: %s %s (zone %s: %s)", q.name, qtype, zone, reason)
        self.m.count(q.name, q.rdtype)
        return None


@builtin
class BogusLog(Module):
    name = "bogus_log"

    def __init__(self, ctx):
        super().__init__(ctx)
        self.layer = BogusLogLayer(self)
        self.frequent_q: collections.OrderedDict = collections.OrderedDict()  # (name, type) -> count

    def count(self, name: dns.name.Name, rdtype: int) -> None:
        key = (name.canonicalize(), int(rdtype))
        n = self.frequent_q.pop(key, 0)
        if not n and len(self.frequent_q) >= FREQUENT_COUNT:
            self.frequent_q.popitem(last=False)
        self.frequent_q[key] = n + 1

    def frequent(self) -> list:
        """[{name='x.', type='A', count=n}], most frequent first."""
        items = sorted(self.frequent_q.items(), key=lambda kv: -kv[1])
        return [{"name": n.to_text(), "type": dns.rdatatype.to_text(t), "count": c} for (n, t), c in items]

    def config(self, conf: Any = None) -> Any:
        return no_options(self.name, conf)

    def lua_api(self) -> dict:
        return {"config": self.config, "frequent": self.frequent}
