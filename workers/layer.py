"""Layer protocol: the hooks modules fill, and the states they return.

Owns: `State` (kresd lib/layer.h KR_STATE_*) and `Layer`, the base class of
every pipeline module (policy, hints, view, stats, dns64, renumber, Lua user
modules...). A layer overrides only the hooks it needs; each hook gets the
`Request` (workers/request.py) and returns a State or None (= unchanged).
Must not: do I/O or block: hooks run inline in the worker's event loop.

Where the driver (workers/resolve.py) calls them, in layer order:
  lookup(req, name, type) before the cache, for every (sub-)query of the request
                          (the client's name, CNAME targets, NS addresses):
                          a workers.request.Result answers it (hints), None passes
  begin(req)              once, before resolution; DONE = answered (req.answer
                          is final), FAIL = SERVFAIL unless an rcode was set.
                          A layer may also set req.forward (policy FORWARD/STUB)
                          or req.options flags here.
  produce(req, query)     before each upstream query is sent (dns.message.Message)
  checkout(req, query, addr, tcp)  just before sending to addr; FAIL skips addr
  consume(req, reply)     after each upstream reply, once workers/scrub.py has
                          cleaned it (so no hook sees out-of-bailiwick junk),
                          before the iterator reads it
  more(req, result)       after resolution of the client's name; returns a list of
                          (name, rdtype) sub-queries to resolve (e.g. dns64's A),
                          whose Results come back through subresult(req, name,
                          rdtype, result); may be called again until it returns []
  answer_finalize(req)    the answer is complete: rewrite it (renumber, dns64, AD)
  finish(req)             always, last (stats, logging)

The cache-hit fast path (workers/fastpath.py) answers some UDP queries before
any Request exists, from data each layer gives it (fast-path consent is data):
  fast_ok(pq)   (pq: the native ParsedQuery) True if the layer would leave the
                answer to this name and type as the cache gives it; an answer
                enters the packet cache (and native.answer may serve a name)
                only with every layer's consent. The default is False, so a
                layer that may act on queries (or any Lua module) keeps every
                query on the normal path.
  fast_nets()   None, a list of ipaddress networks whose clients must take the
                full path (C tests them per datagram), or workers.fastpath.ALL
                (the layer must see every query: no packet-cache answers).
  fast_count(c) with the native.BatchCounts of what the fast path answered
                since the last call (stats). The counts are folded lazily:
  fast_source(fn) gives a layer the function that folds them (calls
                fast_count); a layer that reads its counters calls it first.
Consent is read again after every console command and Lua event
(Settings.epoch), and the packet cache is emptied then.

The cache-miss fast path (workers/fastmiss.py) answers a plain A/AAAA miss
from one upstream reply without a Request, so no hook runs for it:
  fast_miss     (class attribute) True when the layer's hooks would do
                nothing for a query it gave fast_ok to, resolved by one
                upstream exchange into a positive answer (an audited claim;
                the default False keeps every miss on the full path).
  fast_miss_count(pq, elapsed, upstream, rtt)  if defined: one such answer
                (client query, seconds since it arrived, the server asked
                and its round trip), for counters (stats).
"""
from __future__ import annotations

import enum


class State(enum.IntFlag):
    """kresd KR_STATE_* values, so Lua modules can compare them."""

    NOOP = 0
    CONSUME = 1 << 0
    PRODUCE = 1 << 1
    DONE = 1 << 2
    FAIL = 1 << 3
    YIELD = 1 << 4


class Layer:
    """Base class: every hook is a no-op. `name` is the module name."""

    name = "layer"
    fast_miss = False

    def begin(self, req):
        return None

    def lookup(self, req, sname, stype):
        return None

    def fast_ok(self, pq) -> bool:
        return False

    def fast_nets(self):
        return None

    def fast_count(self, counts) -> None:
        return None

    def fast_source(self, collect) -> None:
        return None

    def produce(self, req, query):
        return None

    def checkout(self, req, query, addr: str, tcp: bool):
        return None

    def consume(self, req, reply):
        return None

    def more(self, req, result):
        return []

    def subresult(self, req, name, rdtype, result) -> None:
        return None

    def answer_finalize(self, req):
        return None

    def finish(self, req):
        return None
