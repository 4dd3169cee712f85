"""The resolution driver: no I/O, one generator per client request.

Owns: `Resolver.resolve()`, which walks a request through its stages with named
states (begin -> cache -> iterate (produce -> send -> consume) -> finish) and
yields `Send` for every upstream query. It follows CNAME chains, resolves
missing nameserver addresses as sub-queries with cycle detection, primes the
root, enforces the per-request limits and turns failures into SERVFAIL + EDE.
Must not: open sockets, sleep, or read clocks other than the injected Clock
(the same code runs against real servers, scripted scenarios and fake time).
"""
from __future__ import annotations

import logging
import os
import random
import weakref

import dns.exception
import dns.flags
import dns.message
import dns.name
import dns.rcode
import dns.rdatatype as T

from .dnssec import Status
from .dnssec.verify import owner_labels
from .layers import aggressive
from .layers import cache as cache_layer
from .layers.iterate import Kind, consume, consume_forward, consume_stub
from .layers.validate import Bogus, Validator, find_sigs, proof_records, worst
from .layer import Layer, State
from .request import (EDE, Options, Outcome, QSource, Query, Request, ResolveFail, Result, make_answer,
                      precheck, resolvable, set_ede)
from .scrub import scrub
from .selection.iterate import QuerySelection, Selection, SelectionError
from .settings import GlueMode, Settings
from . import wire
from .transport import Clock, Send
from .zonecut import ZoneCut, root_cut_from_hints, usable_addresses

log = logging.getLogger("kresd.resolv")  # kresd log group "resolv"
# header and EDNS flag bits as plain ints: tests on the hot path without
# building dns.flags.Flag values
_QR, _TC, _DO = int(dns.flags.QR), int(dns.flags.TC), int(dns.flags.DO)

#: NS address sub-queries (one per NS name and type) a query may make in a row
#: at one zone cut without reaching a server: kresd's KR_COUNT_NO_NSADDR_LIMIT,
#: its mitigation of NXNSAttack (CVE-2020-12667). A query to a real address
#: starts the count again.
NS_ADDR_LOOKUPS = 5

#: Timeouts one address may cost one request, all its sub-queries together:
#: past that, the request asks it no more (a silent server behind many NS
#: names, NXNSAttack with a silent victim, is not asked once per name).
REQUEST_TIMEOUTS = 2

#: Background refresh of NS addresses (the child zone's own A/AAAA of the NS
#: names its parent gave glue for): at most this many waiting, and one name and
#: type is not queued again for REFRESH_RETRY seconds (failed or not).
REFRESH_PENDING_MAX = 64
REFRESH_RETRY = 300.0


class PooledSystemRandom(random.SystemRandom):
    """random.SystemRandom whose getrandbits() (the IDs and 0x20 case of
    every upstream query) takes its bytes from an os.urandom pool of POOL
    bytes instead of one urandom call each (about 6 % of a plain miss's CPU).
    The pool is emptied in a forked child, so no two processes share bits."""

    POOL = 4096
    _pools: "weakref.WeakSet" = weakref.WeakSet()  # the live instances (emptied after fork)

    def __init__(self):
        super().__init__()
        self._buf = b""
        self._pos = 0
        PooledSystemRandom._pools.add(self)

    def getrandbits(self, k: int) -> int:
        n = (k + 7) // 8
        if n > 64:
            return super().getrandbits(k)
        pos = self._pos
        if pos + n > len(self._buf):
            self._buf, pos = os.urandom(self.POOL), 0
        self._pos = pos + n
        return int.from_bytes(self._buf[pos:pos + n], "little") >> (n * 8 - k)

    @classmethod
    def _after_fork(cls) -> None:
        for rng in cls._pools:
            rng._buf, rng._pos = b"", 0


os.register_at_fork(after_in_child=PooledSystemRandom._after_fork)


class Resolver:
    def __init__(self, settings: Settings, cache=None, clock: Clock | None = None,
                 rng: random.Random | None = None, layers: list | None = None):
        self.settings = settings
        self.cache = cache
        self.clock = clock or Clock()
        self.rng = rng or PooledSystemRandom()
        self.selection = Selection(self.clock.monotonic, self.rng)
        self.layers: list[Layer] = layers if layers is not None else []  # module order
        self.validator = Validator(self)
        self.sig_checks = 0  # RRSIG verifications of all requests (worker.stats().sig_checks)
        self.referrals = 0  # referrals followed (workers/fastmiss.py: new zone cuts may exist)
        self._uid = 0
        self.refresh_pending: list[tuple[dns.name.Name, int]] = []  # NS (name, type) to fetch
        self._refresh_queued: dict[tuple[dns.name.Name, int], float] = {}  # -> when queued
        self.on_refresh = None  # called when refresh_pending grows (the worker runs them)
        self._hooks_of: list = []  # the layers self._hooks was built from
        self._hooks: dict[str, list] = {}  # hook name -> [(layer, bound hook)]

    @staticmethod
    def _trace(req, fmt: str, *args) -> None:
        _trace(req, fmt, *args)

    # -- the request --------------------------------------------------------

    def resolve(self, query: dns.message.Message, client=None, tcp: bool = False, qsource=None,
                on_request=None, preset=None):
        """Generator: yields Send, receives bytes|None, returns the answer Message
        (or None: send nothing, e.g. policy.DROP). `on_request(req)` is called with
        the Request once it exists (Lua resolve() callbacks and kresd-query use it).
        `preset`: a workers.transport.Preset reply (Request.preset)."""
        early = precheck(query, self.settings)
        if early is not None:
            return early
        self._uid += 1
        req = Request(query, client, tcp, self.clock.monotonic(), uid=self._uid,
                      options=Options.from_settings(self.settings))
        req.qsource = qsource or QSource(client[0] if client else None, client[1] if client else 0, tcp=tcp)
        req.answer = make_answer(query, self.settings)
        req.preset = preset
        if on_request is not None:
            on_request(req)
        try:
            state = self._hook(req, "begin")
            if not state & (State.DONE | State.FAIL):
                yield from self._resolve_request(req)
            elif state & State.FAIL and req.answer.rcode() == dns.rcode.NOERROR:
                req.answer.set_rcode(dns.rcode.SERVFAIL)
            self._hook(req, "answer_finalize")
        except Exception:  # a bug must cost one SERVFAIL, never the worker
            log.exception("[%05d] request failed", req.uid)
            req.answer = make_answer(query, self.settings)
            req.answer.set_rcode(dns.rcode.SERVFAIL)
        finally:
            self.sig_checks += req.sig_checks
            self._hook(req, "finish")
        return None if req.drop else req.answer

    def _hooked(self, name: str) -> list:
        """(layer, bound hook) of the layers that fill hook `name`, in layer
        order; the Layer defaults (no-ops) are left out. Cached while the layer
        list holds the same layers (modules.load/unload change it in place)."""
        layers = self.layers
        if self._hooks_of != layers:
            self._hooks_of = list(layers)
            self._hooks = {}
        hooks = self._hooks.get(name)
        if hooks is None:
            default = getattr(Layer, name, None)
            hooks = self._hooks[name] = [
                (layer, fn) for layer in layers
                if (fn := getattr(layer, name, None)) is not None
                and getattr(fn, "__func__", fn) is not default]
        return hooks

    def _hook(self, req: Request, name: str, *args) -> int:
        """Call one hook on every layer, in order; DONE/FAIL from begin stops the walk."""
        state = State.NOOP
        for layer, fn in self._hooked(name):
            try:
                st = fn(req, *args)
            except Exception:
                log.exception("[%05d] module %s failed in %s", req.uid, layer.name, name)
                st = State.FAIL if name == "begin" else None
            if st:
                state = State(int(st))
                req.state = state
                if name == "begin" and state & (State.DONE | State.FAIL):
                    break
        return state

    def _resolve_request(self, req: Request):
        ans = req.answer
        try:
            if not resolvable(req.query.question[0]):  # other classes, meta types: as kresd 5.6
                raise ResolveFail(f"{req.qname} {T.to_text(req.qtype)} class "
                                  f"{req.query.question[0].rdclass} is not resolved", None)
            res = yield from self._chain(req, req.qname, req.qtype)
            for _ in range(4):  # layers asking for more (dns64's A query)
                wanted = [(lay, w) for lay, more in self._hooked("more") for w in (more(req, res) or [])]
                if not wanted:
                    break
                for lay, (name, rdtype) in wanted:
                    try:
                        sub = yield from self._chain(req, name, rdtype)
                    except ResolveFail as fail:
                        sub = fail
                    lay.subresult(req, name, rdtype, sub)
        except ResolveFail as fail:
            _trace(req, "resolution failed: %s", fail)
            if isinstance(fail, Bogus):
                req.bogus = (fail.zone, str(fail), int(fail.ede))
                # one line per bogus answer is the bogus_log module's (as kresd)
                _trace(req, "bogus answer: %s (zone %s)", fail, fail.zone)
            ans.set_rcode(dns.rcode.SERVFAIL)
            if fail.ede is not None:
                set_ede(ans, fail.ede, str(fail)[:200])
            if fail.answer:  # a CNAME chain cut short or looping
                ans.answer = _dnssec_filter(req)(_dedupe(fail.answer))
            return
        keep = _dnssec_filter(req)
        ans.answer = keep(_dedupe(res.answer))
        if res.aa:
            ans.flags |= dns.flags.AA
        if res.outcome is Outcome.NXDOMAIN:
            ans.set_rcode(dns.rcode.NXDOMAIN)
        elif res.outcome is Outcome.YXDOMAIN:
            ans.set_rcode(dns.rcode.YXDOMAIN)
        if res.outcome in (Outcome.NXDOMAIN, Outcome.NODATA) or res.authority:
            ans.authority = keep(_dedupe(res.authority))
        req.secure = res.status is Status.SECURE
        # AD only for secure data, and only to a client that asked (DO or AD), as kresd
        if req.secure and (req.query.ednsflags & dns.flags.DO or req.query.flags & dns.flags.AD):
            ans.flags |= dns.flags.AD
        req.result = res

    # -- stages -------------------------------------------------------------

    def _check_limits(self, req: Request) -> None:
        if req.upstream_queries >= self.settings.max_upstream_queries:
            raise ResolveFail("too many upstream queries", EDE.NO_REACHABLE_AUTHORITY)
        if self.clock.monotonic() - req.started > self.settings.resolve_time_limit:
            raise ResolveFail("resolution time limit exceeded", EDE.NO_REACHABLE_AUTHORITY)

    def _chain(self, req: Request, qname: dns.name.Name, qtype: int, nonauth: bool = False,
               no_cache: bool = False, key_prime: bool = False):
        """Resolve (qname, qtype), following CNAMEs across zones. The Result's
        status is the worst of its parts (secure only if every link is).

        As kresd 5.6 (iterate.c, cname_depth against KR_CNAME_CHAIN_LIMIT), the
        chain fails when its max_cname_chain-th CNAME is to be followed, and when
        it comes back to a name it passed: SERVFAIL without EDE, the answer
        section holding the chain up to there (ResolveFail.answer).
        """
        answer = []
        proofs = []  # NSEC/NSEC3 of wildcard-expanded links (kresd keeps them in authority)
        seen = {qname}
        name = qname
        status = Status.SECURE
        for _ in range(self.settings.max_cname_chain + 1):  # each CNAME lookup adds one at least
            res = yield from self._lookup(req, name, qtype, nonauth, no_cache and name == qname, key_prime)
            answer.extend(res.answer)
            status = worst(status, res.status)
            cut = _chain_cut(answer, self.settings.max_cname_chain) if qtype != T.CNAME else None
            if cut is not None:
                raise ResolveFail("CNAME chain too long", None, answer=answer[:cut])
            if res.outcome is not Outcome.CNAME:
                return Result(res.outcome, answer, res.authority + proofs if proofs else res.authority,
                              aa=res.aa, status=status)
            proofs.extend(proof_records(res.authority))
            if res.target in seen:
                raise ResolveFail(f"CNAME chain loop at {res.target}", None, answer=answer)
            seen.add(res.target)
            name = res.target
        raise ResolveFail("CNAME chain too long", None, answer=answer)

    def _lookup(self, req: Request, sname: dns.name.Name, stype: int, nonauth: bool = False,
                no_cache: bool = False, key_prime: bool = False):
        for _, lookup in self._hooked("lookup"):  # local data first (hints), as kresd
            hit = lookup(req, sname, stype)
            if hit is not None:
                req.cache_hits += 1
                return hit
        min_rank = 0
        if not (nonauth or key_prime) and self.validator.wanted(req, sname, stype):
            min_rank = int(cache_layer.INSECURE_RANK)  # kresd get_lowest_rank()
        hit = None if no_cache else cache_layer.peek(self._cache(req), sname, stype, nonauth, min_rank)
        if hit is not None and req.query.ednsflags & _DO and _wildcard_expanded(hit):
            # A DO client needs the NSEC proof of a wildcard expansion, which the
            # cache does not keep with the RRset: the answer is rebuilt from the
            # cached wildcard and NSEC/NSEC3 just below (RFC 8198, as kresd), or
            # asked again (plain clients are answered from the cache).
            _trace(req, "cache hit %s %s is a wildcard expansion: looking for its proof", sname,
                   T.to_text(stype))
            hit = None
        if hit is None and min_rank and not no_cache:  # RFC 8198: from validated NSEC/NSEC3
            hit = aggressive.synthesize(self._cache(req), None, sname, stype, self.clock.time())
        if hit is not None:
            req.cache_hits += 1
            if hit.expiring:  # the predict module refreshes it after the request
                req.vars.setdefault("expiring", []).append((sname, stype))
            if not min_rank:
                hit.status = Status.INDETERMINATE
            _trace(req, "cache hit %s %s: %s (%s)", sname, _Type(stype), hit.outcome.value,
                   hit.status.value)
            return hit
        try:
            return (yield from self._iterate(req, sname, stype, key_prime=key_prime))
        except ResolveFail as fail:
            stale = self._stale(req, fail, sname, stype, nonauth, min_rank, no_cache)
            if stale is None:
                raise
            return stale

    def _stale(self, req: Request, fail: ResolveFail, sname, stype, nonauth, min_rank, no_cache):
        """serve_stale (RFC 8767, kresd's module sets settings.serve_stale): when
        no upstream could answer, data that expired at most that many seconds
        ago, with a TTL of 1 s; None when there is none or it does not apply."""
        window = self.settings.serve_stale
        if not window or no_cache or req.options.NO_CACHE or fail.ede != EDE.NO_REACHABLE_AUTHORITY \
                or isinstance(fail, Bogus):
            return None
        hit = cache_layer.peek(self._cache(req), sname, stype, nonauth, min_rank, stale=window)
        if hit is None:
            return None
        _trace(req, "no upstream answered: serving stale %s %s", sname, _Type(stype))
        req.vars["stale"] = True
        if not min_rank:
            hit.status = Status.INDETERMINATE
        return hit

    def _find_cut(self, req: Request, sname: dns.name.Name, stype: int):
        if req.forward is not None:
            cut = ZoneCut(dns.name.root, from_hints=True)  # configured: no ALLOW_LOCAL filter
            cut.ns[dns.name.from_text("forwarders.invalid.")] = [f"{a}#{p}" for a, p in req.forward.targets]
            return cut
        start = sname.parent() if stype == T.DS and sname != dns.name.root else sname
        o = req.options
        cut = cache_layer.closest_cut(self._cache(req), start, not o.NO_IPV4, not o.NO_IPV6)
        if cut is None:
            cut = yield from self._prime(req)
        elif cut.name == dns.name.root and not cut.addresses(o):
            cut = root_cut_from_hints(self.settings)  # root NS without address: hints are the safety belt
        return cut

    def _minimized(self, sname: dns.name.Name, stype: int, cut: ZoneCut):
        depth = len(cut.name.labels) + 1
        if len(sname.labels) <= depth or stype == T.DS:
            return sname, stype
        return sname.split(depth)[1], T.NS

    def _state(self, req: Request, q: Query, state: str) -> None:
        q.state = state
        _trace(req, "[%s] %s (cut %s)", state, q, q.cut.name if q.cut is not None else "-")

    def _iterate(self, req: Request, sname: dns.name.Name, stype: int, key_prime: bool = False):
        """Ask servers from the closest cut down until the name is answered.

        Named steps of one query (Query.state, in the trace log): cut (find the
        closest zone cut), trust (its chain of trust: DS, DNSKEY), send (one
        upstream exchange), consume (what the reply means), validate (check
        it; may ask DS/DNSKEY sub-queries), stash (cache it with the ranks the
        validator chose), then referral (next cut) or done.
        """
        forward = req.forward is not None
        stub = forward and req.forward.stub
        self._uid += 1
        q = Query(sname, stype, self._uid, key_prime=key_prime,
                  sel=QuerySelection(no_minimize=req.options.NO_MINIMIZE or forward))
        self._state(req, q, "cut")
        q.cut = yield from self._find_cut(req, sname, stype)
        while True:
            self._check_limits(req)
            q.want = self.validator.cut_wanted(req, q.cut)
            if q.want:
                self._state(req, q, "trust")
                yield from self.validator.trust_check(req, q)
            cut = q.cut
            qname, qtype = (sname, stype) if q.sel.no_minimize else self._minimized(sname, stype, cut)
            candidates = [a for a in cut.addresses(req.options) if req.timeouts.get(a, 0) < REQUEST_TIMEOUTS]
            pre = req.preset
            if pre is not None and pre.addr in candidates and pre.qtype == qtype and pre.qname == qname \
                    and q.sel.usable(pre.addr):
                addr = pre.addr  # the server whose reply is already here (Request.preset)
            else:
                addr = self.selection.choose(candidates, q.sel)
            if addr is None:
                if forward:
                    if q.last_bogus is not None:
                        raise q.last_bogus
                    raise ResolveFail("no forwarder answered", EDE.NO_REACHABLE_AUTHORITY)
                found = yield from self._resolve_ns_addrs(req, q)
                if found:
                    continue
                if (q.sel.addrs or q.sel.exhausted) and cut.from_cache and cut.name != dns.name.root \
                        and cut.name not in q.fell_back and (cut.child_addrs or not q.sel.only_timeouts()):
                    # Every server of a cached cut failed: its NS set or glue may be
                    # stale, so ask the parent side for a fresh delegation (once):
                    # back to the glue when the child's own addresses failed. Not
                    # when the parent's own glue just timed out (it would only be
                    # asked again: NXNS with a silent victim).
                    q.fell_back.add(cut.name)
                    _trace(req, "cut %s exhausted, falling back to its parent", cut.name)
                    self._state(req, q, "cut")
                    q.cut = yield from self._find_cut(req, cut.name.parent(), T.NS)
                    q.sel.new_cut()
                    q.ns_tried = set()
                    q.ns_addr_lookups = 0
                    continue
                if q.last_bogus is not None:
                    raise q.last_bogus
                raise ResolveFail(f"no usable server for zone {cut.name}", EDE.NO_REACHABLE_AUTHORITY)
            minimized = (qname, qtype) != (sname, stype)
            q.ns_addr_lookups = 0
            self._state(req, q, "send")
            reply, edns = yield from self._exchange(req, addr, qname, qtype, cut, q.sel)
            if reply is None:
                continue
            req.cut_name = cut.name
            self._state(req, q, "consume")
            if stub:
                c = consume_stub(reply)
            elif forward:
                c = consume_forward(reply, sname, stype)
            else:
                c = consume(reply, sname, stype, qname, qtype, cut, self.settings)
            _trace(req, "%s %s @%s (cut %s): %s %s", qname, _Type(qtype), addr,
                   cut.name, c.kind.value, c.why)
            if c.result is not None:
                _attach_sigs(c.result, reply)
                _attach_wildcard_proof(c.result, reply)
            if q.want and not stub:
                self._state(req, q, "validate")
                try:
                    yield from self.validator.validate(req, q, c, reply)
                except Bogus as bogus:
                    if not bogus.server_fault:
                        raise
                    q.last_bogus = bogus
                    self.selection.report_error(addr, SelectionError.DNSSEC_ERROR, q.sel)
                    _trace(req, "bogus reply from %s: %s", addr, bogus)
                    continue
            if not stub:
                self._state(req, q, "stash")
                _stash_sigs(c.stash, reply)
                self._stash(req, c.stash)
            if c.kind is Kind.REFERRAL:
                self.referrals += 1
                self._state(req, q, "referral")
                if c.cut.ns is not cut.ns and c.cut.ns != cut.ns:
                    q.sel.new_cut()
                    q.ns_tried = set()
                    q.ns_addr_lookups = 0
                q.cut = c.cut
                for ns, addrs in q.cut.ns.items():
                    req.learn_addrs(ns, addrs)
                if not forward:
                    self._queue_refresh(req, q.cut)
            elif c.kind is Kind.RETRY_FULL:
                q.sel.no_minimize = True
            elif c.kind is Kind.LAME:
                self.selection.report_error(addr, c.error, q.sel, minimized=minimized, edns=edns)
                _trace(req, "%s counted against %s: %s", c.error.name, addr,
                       "broken" if not q.sel.usable(addr) else f"{q.sel.errors(addr)} error(s)")
            else:
                self._state(req, q, "done")
                return c.result

    def _queue_refresh(self, req: Request, cut: ZoneCut) -> None:
        """With module ns_refresh loaded, a referral that gave glue: queue the
        child zone's own addresses of those NS names, to be fetched in the
        background (take_refresh) and used once stashed as an authoritative
        (and, where DNSSEC applies, validated) answer. Not below the root or a
        TLD (their glue is what everyone uses), not for names already known
        from an authoritative answer."""
        cache = self._cache(req)
        if not self.settings.ns_refresh or cache is None or len(cut.name.labels) < 3:
            return
        now = self.clock.monotonic()
        for ns, addrs in cut.ns.items():
            if not addrs:
                continue
            for rtype, want in ((T.A, not req.options.NO_IPV4), (T.AAAA, not req.options.NO_IPV6)):
                key = (ns, rtype)
                if not want or now - self._refresh_queued.get(key, -REFRESH_RETRY) < REFRESH_RETRY:
                    continue
                if len(self.refresh_pending) >= REFRESH_PENDING_MAX:
                    return
                hit = cache.peek_rrset(ns, rtype)
                if hit is not None and hit.rank & cache_layer.Rank.AUTH:
                    continue
                if len(self._refresh_queued) > 10_000:
                    self._refresh_queued.clear()
                self._refresh_queued[key] = now
                self.refresh_pending.append(key)
                _trace(req, "queued a refresh of %s %s (glue of %s)", ns, T.to_text(rtype), cut.name)
        if self.refresh_pending and self.on_refresh is not None:
            self.on_refresh()

    def take_refresh(self) -> list[tuple[dns.name.Name, int]]:
        """The NS addresses to fetch in the background (and forget them here)."""
        out, self.refresh_pending = self.refresh_pending, []
        return out

    def _cache(self, req: Request):
        return None if req.options.NO_CACHE else self.cache

    def _stash(self, req: Request, stash) -> None:
        try:
            stash.commit(self.cache)  # NO_CACHE only skips reads (kresd: cache_stash ignores it)
        except Exception as exc:  # a cache failure never fails the request
            log.warning("[cache] stash failed: %s", exc)

    def _resolve_ns_addrs(self, req: Request, query: Query):
        """Resolve addresses of one more NS of the query's cut; True when some
        became usable. At most NS_ADDR_LOOKUPS lookups in a row (NXNSAttack)."""
        s = self.settings
        o = req.options
        cut, ns_tried, q = query.cut, query.ns_tried, query.sel
        for ns in list(cut.ns):
            known = usable_addresses(cut.ns[ns], o)
            if ns in ns_tried or any(q.usable(a) for a in known):
                continue
            # Addresses known but all failed: look again past the cache, so that
            # iteration meets the parent side's glue (kept in req.ns_addrs). Not
            # for a name inside the cut: only the servers that failed know it
            # (the parent fallback in _iterate re-fetches its glue instead).
            no_cache = bool(known)
            if no_cache and ns.is_subdomain(cut.name):
                continue
            ns_tried.add(ns)
            if req.depth >= s.max_depth:
                return False
            addrs: list[str] = []
            for rtype, want in ((T.A, not o.NO_IPV4), (T.AAAA, not o.NO_IPV6)):
                if not want or (ns, rtype) in req.resolving or usable_addresses(addrs, o):
                    continue
                query.ns_addr_lookups += 1
                if query.ns_addr_lookups > NS_ADDR_LOOKUPS:
                    _trace(req, "no more NS address lookups at cut %s (mitigation for NXNSAttack "
                           "CVE-2020-12667)", cut.name)
                    return False
                req.resolving.add((ns, rtype))
                req.depth += 1
                try:
                    res = yield from self._chain(req, ns, rtype, nonauth=True, no_cache=no_cache)
                    for rr in res.answer:
                        if rr.rdtype == rtype:
                            addrs.extend(rd.address for rd in rr)
                except ResolveFail as fail:
                    _trace(req, "NS %s %s unresolvable: %s", ns, T.to_text(rtype), fail)
                finally:
                    req.depth -= 1
                    req.resolving.discard((ns, rtype))
            req.learn_addrs(ns, addrs)
            cut.ns[ns] = list(req.ns_addrs[ns])
            if any(q.usable(a) for a in usable_addresses(cut.ns[ns], o)):
                return True
        return False

    def _prime(self, req: Request):
        """Root zone cut: from a priming query if enabled, else the hints."""
        hints = root_cut_from_hints(self.settings)
        if not self.settings.priming or ("prime", 0) in req.resolving:
            return hints
        req.resolving.add(("prime", 0))
        q = QuerySelection(no_minimize=True)
        try:
            for _ in range(3):
                addr = self.selection.choose(hints.addresses(req.options), q)
                if addr is None:
                    break
                q.exhausted.add(addr)  # one try per root server
                reply, _ = yield from self._exchange(req, addr, dns.name.root, T.NS, hints, q)
                if reply is None or not reply.flags & dns.flags.AA:
                    continue
                ns = next((rr for rr in reply.answer if rr.rdtype == T.NS and rr.name == dns.name.root), None)
                if ns is None:
                    continue
                cut = ZoneCut(dns.name.root)
                stash = cache_layer.Stash()
                stash.add(ns, cache_layer.ANSWER_RANK)
                for rd in ns:
                    cut.ns[rd.target] = []
                    for grr in reply.additional:
                        if grr.name == rd.target and grr.rdtype in (T.A, T.AAAA):
                            cut.ns[rd.target].extend(g.address for g in grr)
                            stash.add(grr, cache_layer.NONAUTH_RANK)
                self._stash(req, stash)
                if cut.addresses(req.options):
                    return cut
        finally:
            req.resolving.discard(("prime", 0))
        return hints

    # -- one upstream exchange ---------------------------------------------------

    def _exchange(self, req: Request, addr: str, qname, qtype, cut: ZoneCut, q: QuerySelection):
        """Ask addr ("ip" or "ip#port"). Returns (reply, edns): the reply
        scrubbed and seen by the modules' consume hooks, or None when the
        exchange failed (the failure is counted in q); edns tells whether the
        question that got the reply carried EDNS."""
        s = self.settings
        host, _, port = addr.partition("#")
        st = self.selection.state(addr)
        edns = not req.options.NO_EDNS and not st.no_edns
        forward = req.forward is not None
        tcp = st.tcp_only  # remembered per address (selection capability memory)
        case_lost = False  # UDP lost the 0x20 case here: if TCP works, the server is TCP-only
        # 0x20 (kresd 5.6 default, forwarders included; off with NO_0X20):
        # the QNAME goes out in random letter case, which the reply must echo.
        x20 = not req.options.NO_0X20
        plain = qname.to_wire().lower()  # the QNAME's wire form in plain case
        flags = dns.flags.RD if forward else 0
        if forward and req.cd:
            flags |= dns.flags.CD  # kresd DNSSEC_CD: the forwarder must not filter either
        known = st  # the state just read (the first try's timeout); later tries read it again
        pre, req.preset = req.preset, None  # only the first exchange may take it
        if pre is not None and not (pre.addr == addr and pre.qtype == qtype and pre.qname == qname
                                    and pre.edns == edns and pre.x20 == x20 and not tcp and not forward):
            pre = None
        for _ in range(4):
            self._check_limits(req)
            req.upstream_queries += 1
            if pre is not None:  # this question's reply is here already (its RTT was reported)
                qid, sent, raw, t0, rtt, pre = pre.qid, pre.sent, pre.raw, None, pre.rtt, None
            else:
                # the ID and the 0x20 case from one draw of the (system) random source
                bits = self.rng.getrandbits(16 + len(plain) if x20 else 16)
                qid = bits & 0xFFFF
                sent = wire.x20_bits(plain, bits >> 16) if x20 else plain
                out = self._question(req, qid, flags, sent, qtype, edns, host, tcp)
                if out is None:
                    req.upstream_queries -= 1
                    q.exhausted.add(addr)  # a module vetoed this server for this query
                    return None, edns
                source = s.outgoing_v6 if ":" in host else s.outgoing_v4
                t0 = self.clock.monotonic()
                # the server's retransmission timeout (over TCP at least the default: it
                # also covers the handshake), within what is left of the request's time
                left = s.resolve_time_limit - (t0 - req.started)
                timeout = self.selection.timeout(addr, s.upstream_timeout, known)
                known = None
                if tcp:
                    timeout = max(timeout, s.upstream_timeout)
                timeout = max(0.05, min(timeout, left))
                raw = yield Send(host, int(port or 53), out, tcp=tcp, timeout=timeout,
                                 source=source, x20=x20)
            if raw is None:
                self.selection.report_error(addr, SelectionError.TIMEOUT, q, question=(qname, qtype))
                req.timeouts[addr] = req.timeouts.get(addr, 0) + 1
                return None, edns
            if x20:
                raw = wire.plain_case(raw, sent)
                if raw is None:
                    # The case did not come back (outbound waited for a reply that
                    # echoed it until the timeout): a server that does not keep
                    # case, or a spoofer. As kresd: ask again over TCP, without 0x20.
                    _trace(req, "%s: reply without the 0x20 case of %s, asking again over TCP", addr, sent)
                    x20, tcp, case_lost = False, True, True
                    continue
            try:
                reply = wire.parse_reply(raw)
            except dns.message.Truncated:
                if tcp:
                    self.selection.report_error(addr, SelectionError.TRUNCATED, q)
                    return None, edns
                tcp = True
                continue
            except Exception:  # hostile bytes: any parse failure is this server's fault
                self.selection.report_error(addr, SelectionError.MALFORMED, q)
                return None, edns
            if not _matches(reply, qid, qname, qtype):
                self.selection.report_error(addr, SelectionError.MISMATCHED, q)
                return None, edns
            if not tcp or st.tcp_only:  # a TCP exchange also times its handshake
                self.selection.report_rtt(addr, rtt if t0 is None else self.clock.monotonic() - t0)
            if int(reply.flags) & _TC:
                if tcp:  # TC=1 over TCP: nothing more to try with this server
                    self.selection.report_error(addr, SelectionError.TRUNCATED, q)
                    return None, edns
                tcp = True  # (an empty TC=1 is also how knotd and BIND say "too big")
                continue
            if case_lost and not st.tcp_only:
                self.selection.set_tcp_only(addr)  # UDP failed it, TCP works: TCP from now on
                _trace(req, "%s answers over TCP only: remembered", addr)
            if edns and reply.rcode() in (dns.rcode.FORMERR, dns.rcode.NOTIMP):
                # kresd: FORMERR to an EDNS query means "ask again without EDNS"
                self.selection.report_error(addr, SelectionError.FORMERR, q)
                self.selection.set_no_edns(addr)
                edns = False
                continue
            # Scrub first: module hooks (Lua included) see only what survived it.
            reply = scrub(reply, qname, cut.name, keep_all_glue=s.glue_mode == GlueMode.PERMISSIVE)
            if self._hook(req, "consume", reply) & State.FAIL:
                q.exhausted.add(addr)  # a module rejected the reply
                return None, edns
            return reply, edns
        q.exhausted.add(addr)
        return None, edns

    def _question(self, req: Request, qid: int, flags: int, sent: bytes, qtype: int, edns: bool,
                  host: str, tcp: bool) -> bytes | None:
        """The wire of one upstream question (QNAME wire `sent`, in its 0x20
        case), after the layers' produce and checkout hooks see it as a
        Message; None when a checkout hook vetoes the server (FAIL). Without
        such hooks no Message is built."""
        opt = (self.settings.edns_bufsize, dns.flags.DO) if edns else None
        if not self._hooked("produce") and not self._hooked("checkout"):
            return wire.query_wire(qid, flags, sent, qtype, opt)
        query = wire.query_message(qid, flags, sent, qtype, opt)
        self._hook(req, "produce", query)
        if self._hook(req, "checkout", query, host, tcp) & State.FAIL:
            return None
        return wire.render_query(query)


class _Type(int):
    """A type number printed as its name, only when a trace line is written."""

    __slots__ = ()

    def __str__(self) -> str:
        return T.to_text(int(self))  # (an int: dnspython formats unknown types with str())


def _trace(req: Request, fmt: str, *args) -> None:
    """Per-request debug log; requests marked TRACE (policy DEBUG_ALWAYS, QTRACE)
    are logged whatever the log level, as kresd does."""
    if req.options.TRACE:
        log.handle(log.makeRecord(log.name, logging.DEBUG, __file__, 0, "[%05d] " + fmt,
                                  (req.uid, *args), None))
    elif log.isEnabledFor(logging.DEBUG):
        log.debug("[%05d] " + fmt, req.uid, *args)


def _matches(reply: dns.message.Message, qid: int, qname, qtype) -> bool:
    if reply.id != qid or not int(reply.flags) & _QR:
        return False
    if not reply.question:
        return reply.rcode() != dns.rcode.NOERROR
    q = reply.question[0]
    return q.name == qname and q.rdtype == qtype


# libknot knot_rrtype_is_dnssec(): records only a DNSSEC-aware client wants
_DNSSEC_TYPES = frozenset({T.RRSIG, T.NSEC, T.NSEC3, T.DNSKEY, T.NSEC3PARAM})


def _dnssec_filter(req: Request):
    """kresd lib/resolve.c write_extra_ranked_records(): without DO in the
    query, DNSSEC records go to the wire only when their type was asked."""
    if req.query.ednsflags & _DO:
        return lambda rrsets: rrsets
    qtype = req.qtype
    return lambda rrsets: [rr for rr in rrsets if rr.rdtype == qtype or rr.rdtype not in _DNSSEC_TYPES]


def _attach_sigs(res: Result, reply: dns.message.Message) -> None:
    """Put each answer RRset's RRSIGs (from the reply) right after it, as the
    answer to a DO client carries them (kresd keeps RRSIGs with their RRset)."""
    out = []
    for rr in res.answer:
        out.append(rr)
        if rr.rdtype == T.RRSIG:
            continue  # the data itself (a query for type RRSIG)
        sig = find_sigs(reply.answer, rr.name, rr.rdtype)
        if sig is not None:
            out.append(sig)
    res.answer = out


def _attach_wildcard_proof(res: Result, reply: dns.message.Message) -> None:
    """A wildcard expansion carries its NSEC/NSEC3 proof in the authority
    section for a DO client, validated or not (CD), as kresd puts it there."""
    if res.outcome not in (Outcome.ANSWER, Outcome.CNAME) or not _wildcard_expanded(res):
        return
    proof = proof_records(reply.authority)
    if proof:
        res.authority = _dedupe(list(res.authority) + proof)


def _wildcard_expanded(res: Result) -> bool:
    """Does an RRSIG in the (cached) answer show a wildcard expansion?"""
    for rr in res.answer:
        if rr.rdtype == T.RRSIG:
            for rd in rr:
                if rd.labels < owner_labels(rr.name):
                    return True
    return False


def _stash_sigs(stash, reply: dns.message.Message) -> None:
    """RRSIGs go to the cache with their RRset (validated or not), so that a DO
    client answered from the cache gets them too."""
    for i, (rr, rank, sigs) in enumerate(stash.rrsets):
        if sigs is None:
            for section in (reply.answer, reply.authority, reply.additional):
                sigs = find_sigs(section, rr.name, rr.rdtype)
                if sigs is not None:
                    stash.rrsets[i] = (rr, rank, sigs)
                    break


def _dedupe(rrsets):
    out = []
    seen = set()
    for rr in rrsets:
        key = (rr.name, rr.rdtype, rr.covers)
        if key in seen:
            continue
        seen.add(key)
        out.append(rr)
    return out


def _chain_cut(answer: list, limit: int) -> int | None:
    """Where a chain in `answer` is cut: just after its limit-th CNAME (kresd fails on
    following it), or None while it has fewer."""
    n = 0
    for i, rr in enumerate(answer):
        if rr.rdtype == T.CNAME:
            n += 1
            if n >= limit:
                i += 1
                while i < len(answer) and answer[i].rdtype == T.RRSIG:  # its signature
                    i += 1
                return i
    return None
