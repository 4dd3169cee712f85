"""ta_signal_query: kresd 5.6's trust anchor signalling (RFC 8145 section 5,
modules/ta_signal_query/ta_signal_query.lua), loaded by default as in kresd 5.6.

Owns: the `consume` hook that watches upstream DNSKEY replies (replies the
driver got from the network: a cache hit never reaches `consume`), and the
`finish` hook that acts on them once the request is validated: when the
DNSKEY's owner has trust anchors and its keys were not found bogus (kresd's
consume hook does not run on a reply the validator failed), it starts, in
the background, the query
`_ta-<tag>-<tag>...<zone>` type NULL (the anchors' key tags as 4 lowercase
hex digits, sorted, as kresd's `string.format('%04x')`), the way kresd does
it: `event.after(0, function() resolve(name, kres.type.NULL) end)`. Its
result is ignored.
Must not: change the request, the reply or its processing, wait for the
signal's answer, or send a signal more than once per refresh of the keys.

"Once per refresh": with the cache, kresd fetches a zone's DNSKEY once per
TTL and signals each time. Here a zone is not signalled again before the
TTL of the DNSKEY RRset that triggered its last signal has run out (so a
disabled cache does not turn every request into a signal), one request
signals a zone once (kresd also signals on a referral answering the DNSKEY
question), and a signal query's own DNSKEY fetch never triggers another.
"""
from __future__ import annotations

import logging
from typing import Any, Callable

import dns.name
import dns.rdataclass
import dns.rdatatype as T

from workers.layer import Layer

from .registry import Module, builtin
from .ta_sentinel import key_tags, no_options

log = logging.getLogger("kresd.tasign")  # kresd 5.6 log group LOG_GRP_TASIGNALING


def signal_name(tags: list[int], zone: dns.name.Name) -> dns.name.Name | None:
    """`_ta-xxxx-yyyy.<zone>` for these key tags, or None without any."""
    if not tags:
        return None
    label = "_ta" + "".join(f"-{t:04x}" for t in sorted(tags))
    return dns.name.Name((label.encode(),)).concatenate(zone)


def _is_signal(name: dns.name.Name) -> bool:
    return bool(name.labels) and name.labels[0].lower().startswith(b"_ta-")


class TaSignalQueryLayer(Layer):
    name = "ta_signal_query"
    fast_miss = True  # workers/fastmiss.py: it acts on DNSKEY replies only

    def __init__(self, module: "TaSignalQuery"):
        self.m = module

    def fast_ok(self, pq):
        return True  # acts only on upstream replies, never on cache hits

    def consume(self, req, reply):
        if not reply.question or reply.question[0].rdtype != T.DNSKEY:
            return None
        if _is_signal(req.qname):
            return None
        zone = reply.question[0].name
        ttl = min((rr.ttl for rr in reply.answer if rr.rdtype == T.DNSKEY), default=0)
        seen = req.vars.setdefault("ta_signal_query", {})
        seen[zone] = max(ttl, seen.get(zone, 0))  # a referral and then the zone's answer: one signal
        return None

    def finish(self, req):
        seen = req.vars.get("ta_signal_query")
        if not seen:
            return None
        bogus_zone = req.bogus[0] if req.bogus else None
        for zone, ttl in seen.items():
            if zone != bogus_zone:  # kresd's consume hook does not run on a failed (bogus) reply
                self.m.trigger(zone, ttl)
        return None


def _lua_sender(ctx) -> Callable[[dns.name.Name], None] | None:
    """kresd's `event.after(0, function() resolve(name, NULL, IN) end)`, through
    the engine's Lua globals; None when the module runs without an engine."""
    bridge = ctx.lua
    runtime = getattr(bridge, "runtime", None)
    if runtime is None:
        return None
    g = runtime.globals()

    def send(name: dns.name.Name) -> None:
        def fire(*_ev):
            bridge.call(g[b"resolve"], name.to_text(), int(T.NULL), int(dns.rdataclass.IN), "NONAUTH")
        bridge.call(g[b"event"][b"after"], 0, fire)
    return send


@builtin
class TaSignalQuery(Module):
    name = "ta_signal_query"

    def __init__(self, ctx, sender: Callable[[dns.name.Name], None] | None = None):
        super().__init__(ctx)
        self.layer = TaSignalQueryLayer(self)
        self.sender = sender  # None: the engine's event.after + resolve (see _lua_sender)
        self.hold: dict[dns.name.Name, float] = {}  # zone -> no new signal before this time

    def now(self) -> float:
        r = self.ctx.resolver
        return r.clock.monotonic() if r is not None else 0.0

    def trigger(self, zone: dns.name.Name, ttl: int) -> dns.name.Name | None:
        """A DNSKEY of `zone` came from upstream: signal its anchors' key tags.
        Returns the signal name, or None when nothing was sent."""
        qname = signal_name(key_tags(self.ctx.settings, zone), zone)
        if qname is None:
            return None
        now = self.now()
        if now < self.hold.get(zone, float("-inf")):
            return None
        self.hold[zone] = now + ttl
        send = self.sender or _lua_sender(self.ctx)
        if send is None:
            log.debug("signalling query %s not sent: no engine", qname)
            return None
        log.info("signalling query triggered: %s", qname)
        send(qname)
        return qname

    def config(self, conf: Any = None) -> Any:
        return no_options(self.name, conf)
