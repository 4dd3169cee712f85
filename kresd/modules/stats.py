"""stats: kresd 5.6's statistics collector (modules/stats/stats.c).

Owns: the per-worker counters under kresd's metric names (request.*,
answer.* by rcode, flags and latency bucket, query.edns/dnssec), custom
metrics set from Lua, the ring of recently contacted upstreams with their RTT
and the sampled list of frequent upstream queries.
Must not: change requests or answers, do I/O, or keep per-request state
outside `req.vars`.

Counted as kresd does: everything in `finish` (a dropped answer counts only
the request), latency from the request's start to `finish` on the
resolver's monotonic clock.
"""
from __future__ import annotations

import collections
import time
from typing import Any

import dns.flags
import dns.name
import dns.rcode

from workers.layer import Layer

from .policy import to_text
from .registry import Module, builtin

METRICS = (
    "answer.total", "answer.noerror", "answer.nodata", "answer.nxdomain", "answer.servfail",
    "answer.cached", "answer.stale",
    "answer.1ms", "answer.10ms", "answer.50ms", "answer.100ms", "answer.250ms", "answer.500ms",
    "answer.1000ms", "answer.1500ms", "answer.slow", "answer.sum_ms",
    "answer.aa", "answer.tc", "answer.rd", "answer.ra", "answer.ad", "answer.cd",
    "answer.edns0", "answer.do",
    "query.edns", "query.dnssec",
    "request.total", "request.internal", "request.udp", "request.tcp", "request.xdp",
    "request.dot", "request.doh", "request.doh2",
)
LATENCY_BUCKETS = ((1, "answer.1ms"), (10, "answer.10ms"), (50, "answer.50ms"), (100, "answer.100ms"),
                   (250, "answer.250ms"), (500, "answer.500ms"), (1000, "answer.1000ms"),
                   (1500, "answer.1500ms"))
ANSWER_FLAGS = ((dns.flags.AA, "answer.aa"), (dns.flags.TC, "answer.tc"), (dns.flags.RD, "answer.rd"),
                (dns.flags.RA, "answer.ra"), (dns.flags.AD, "answer.ad"), (dns.flags.CD, "answer.cd"))
UPSTREAMS_COUNT = 512
FREQUENT_COUNT = 5000


class StatsLayer(Layer):
    name = "stats"

    def __init__(self, module: "Stats"):
        self.m = module

    def produce(self, req, query):
        q = query.question[0] if query.question else None
        if q is not None:
            # the name as asked, not its 0x20 wire case (kresd samples qry->sname)
            self.m.sample_query(q.name.canonicalize().to_wire(), int(q.rdtype))

    def checkout(self, req, query, addr, tcp):
        req.vars["stats.upstream"] = (addr, self.m.now())

    def consume(self, req, reply):
        sent = req.vars.pop("stats.upstream", None)
        if sent is not None:
            addr, t0 = sent
            self.m.upstreams.append((addr, int(round((self.m.now() - t0) * 1000))))

    fast_miss = True  # workers/fastmiss.py: counted by fast_miss_count

    def fast_ok(self, pq):
        return True

    def fast_count(self, counts):
        self.m.count_fast(counts)

    def fast_miss_count(self, pq, elapsed, upstream, rtt):
        self.m.count_fast_miss(pq, elapsed, upstream, rtt)

    def fast_source(self, collect):
        self.m.pull = collect

    def finish(self, req):
        self.m.count_request(req)
        if req.drop or req.answer is None:
            return None
        self.m.count_answer(req)
        return None


@builtin
class Stats(Module):
    name = "stats"

    def __init__(self, ctx):
        super().__init__(ctx)
        self.metrics: dict[str, int] = {k: 0 for k in METRICS}
        self.pull = None  # folds the fast path's pending counts in (StatsLayer.fast_source)
        self.upstreams: collections.deque = collections.deque(maxlen=UPSTREAMS_COUNT)
        self.frequent_q: collections.Counter = collections.Counter()
        self.layer = StatsLayer(self)

    def now(self) -> float:
        r = self.ctx.resolver
        return r.clock.monotonic() if r is not None else time.monotonic()

    def inc(self, key: str, n: int = 1) -> None:
        self.metrics[key] = self.metrics.get(key, 0) + n

    # -- counting -----------------------------------------------------------

    def count_request(self, req) -> None:
        self.inc("request.total")
        if req.qsource.addr is None and req.client is None:
            self.inc("request.internal")
        elif req.tcp or req.qsource.tcp:
            self.inc("request.tcp")
        else:
            self.inc("request.udp")
        if req.query.edns >= 0:
            self.inc("query.edns")
            if req.query.ednsflags & dns.flags.DO:
                self.inc("query.dnssec")

    def count_answer(self, req) -> None:
        ans = req.answer
        self.inc("answer.total")
        self.count_latency(self.now() - req.started)
        rcode = ans.rcode()
        if rcode == dns.rcode.NOERROR:
            self.inc("answer.noerror")
            if not ans.answer:
                self.inc("answer.nodata")
        elif rcode == dns.rcode.NXDOMAIN:
            self.inc("answer.nxdomain")
        elif rcode == dns.rcode.SERVFAIL:
            self.inc("answer.servfail")
        for flag, key in ANSWER_FLAGS:
            if ans.flags & flag:
                self.inc(key)
        if ans.edns >= 0:
            self.inc("answer.edns0")
            if ans.ednsflags & dns.flags.DO:
                self.inc("answer.do")
        if req.vars.get("cached") or (req.upstream_queries == 0 and rcode != dns.rcode.SERVFAIL
                                      and not req.vars.get("policy.answered")):
            self.inc("answer.cached")
        if req.vars.get("stale"):  # serve_stale answered from expired data (workers/resolve.py)
            self.inc("answer.stale")

    def count_latency(self, elapsed: float) -> None:
        """answer.sum_ms and the latency band of one answer `elapsed` seconds after its query."""
        elapsed_ms = max(0.0, elapsed * 1000)
        self.inc("answer.sum_ms", int(elapsed_ms))
        for limit, key in LATENCY_BUCKETS:
            if elapsed_ms <= limit:
                self.inc(key)
                break
        else:
            self.inc("answer.slow")

    def count_fast_miss(self, pq, elapsed: float, upstream: str, rtt: float) -> None:
        """One positive UDP answer of the cache-miss fast path (workers/
        fastmiss.py) to query `pq` after `elapsed` seconds, from one exchange
        with `upstream` ("ip" or "ip#port") of `rtt` seconds: what produce,
        checkout, consume and finish count for such a request (RD set; no
        CD or DO: that path does not take those)."""
        self.sample_query(pq.qname_lower, pq.qtype)
        self.upstreams.append((upstream.partition("#")[0], int(round(rtt * 1000))))
        inc = self.inc
        inc("request.total")
        inc("request.udp")
        inc("answer.total")
        self.count_latency(elapsed)
        inc("answer.noerror")
        inc("answer.rd")
        inc("answer.ra")
        if pq.has_opt:
            inc("query.edns")
            inc("answer.edns0")

    def count_fast(self, c) -> None:
        """Counters of UDP answers served by the fast path (workers/fastpath.py),
        from the native.BatchCounts of one batch: the same keys count_request +
        count_answer bump for each cache hit."""
        inc, n = self.inc, c.hits
        inc("request.total", n)
        inc("request.udp", n)
        inc("answer.total", n)
        inc(LATENCY_BUCKETS[0][1], n)
        inc("answer.cached", n)
        inc("answer.ra", n)
        for key, v in (("answer.noerror", c.noerror), ("answer.nxdomain", c.nxdomain),
                       ("answer.nodata", c.nodata), ("answer.rd", c.rd), ("answer.cd", c.cd),
                       ("answer.ad", c.ad), ("answer.aa", c.aa), ("answer.tc", c.tc),
                       ("query.edns", c.edns), ("answer.edns0", c.edns), ("query.dnssec", c.dobit),
                       ("answer.do", c.dobit)):
            if v:
                inc(key, v)

    def sample_query(self, name: bytes, rdtype: int) -> None:
        """Count one upstream question; `name`: lower-case wire format (text only
        when frequent() lists it: most sampled names are never listed)."""
        key = (name, rdtype)
        if key not in self.frequent_q and len(self.frequent_q) >= FREQUENT_COUNT:
            return
        self.frequent_q[key] += 1

    # -- Lua face -----------------------------------------------------------

    def _fresh(self) -> None:
        if self.pull is not None:
            self.pull()

    def get(self, key: Any):
        self._fresh()
        return self.metrics.get(to_text(key))

    def set(self, key: Any, value: Any = None) -> None:
        """stats.set('key value') or stats.set(key, value)."""
        k = to_text(key)
        if value is None:
            k, _, v = k.strip().partition(" ")
            value = v
        self.metrics[k] = int(float(to_text(value)))

    def list(self, prefix: Any = None) -> dict:
        self._fresh()
        p = to_text(prefix) if prefix else ""
        return {k: v for k, v in self.metrics.items() if k.startswith(p)}

    def sum(self, prefix: Any = None) -> dict:
        """kresd-py: stats.list(prefix) summed over every instance of the rundir
        (map over rundir/tty/, see kresd/bindings/procmodel.py); this instance alone
        when no control socket exists yet; an instance's error is raised."""
        self._fresh()
        p = to_text(prefix) if prefix else ""
        fanout = self.ctx.worker.get("map") if isinstance(self.ctx.worker, dict) else None
        if fanout is None:
            return self.list(p)
        try:
            lists = fanout(f"stats.list({p!r})" if p else "stats.list()").values()
        except Exception as e:  # noqa: BLE001 - no control socket yet: local counters
            if "no control sockets" in str(e):
                return self.list(p)
            raise
        return merge_counters(lists)

    def upstreams_list(self) -> dict:
        out: dict[str, list] = {}
        for addr, rtt in self.upstreams:
            out.setdefault(addr, []).append(rtt)
        return out

    def frequent(self) -> list:
        return [{"name": dns.name.from_wire(n, 0)[0].to_text(), "type": t, "count": c}
                for (n, t), c in self.frequent_q.items()]

    def clear_frequent(self) -> None:
        self.frequent_q.clear()

    def lua_api(self) -> dict:
        return {"get": self.get, "set": self.set, "list": self.list, "sum": self.sum,
                "upstreams": self.upstreams_list,
                "frequent": self.frequent, "clear_frequent": self.clear_frequent}

    def lua_set(self, key: Any, value: Any) -> bool:
        self.set(key, value)
        return True

    def lua_get(self, key: Any) -> Any:
        self._fresh()
        v = self.metrics.get(to_text(key))
        if v is None:
            raise KeyError(key)
        return v


def merge_counters(lists) -> dict:
    """Sum metric dicts key by key (non-numeric values are skipped); e.g. the
    values of `map 'stats.list()'`."""
    out: dict[str, Any] = {}
    for d in lists:
        if not isinstance(d, dict):
            continue
        for k, v in d.items():
            if isinstance(v, (int, float)) and not isinstance(v, bool):
                out[k] = out.get(k, 0) + v
    return out
