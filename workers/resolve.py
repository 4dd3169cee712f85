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
import random

import dns.exception
import dns.flags
import dns.message
import dns.name
import dns.rcode
import dns.rdatatype as T

from .layers import cache as cache_layer
from .layers.iterate import Kind, consume
from .request import (EDE, Outcome, Request, ResolveFail, Result, make_answer, precheck, set_ede)
from .scrub import scrub
from .selection.iterate import Selection, SelectionError
from .settings import GlueMode, Settings
from .transport import Clock, Send
from .zonecut import ZoneCut, root_cut_from_hints, usable_addresses

log = logging.getLogger("kresd.resolve")


class Resolver:
    def __init__(self, settings: Settings, cache=None, clock: Clock | None = None,
                 rng: random.Random | None = None):
        self.settings = settings
        self.cache = cache
        self.clock = clock or Clock()
        self.rng = rng or random.SystemRandom()
        self.selection = Selection(self.clock.monotonic, self.rng)
        self._uid = 0

    # -- the request --------------------------------------------------------

    def resolve(self, query: dns.message.Message, client=None, tcp: bool = False):
        """Generator: yields Send, receives bytes|None, returns the answer Message."""
        early = precheck(query, self.settings)
        if early is not None:
            return early
        self._uid += 1
        req = Request(query, client, tcp, self.clock.monotonic(), uid=self._uid)
        ans = make_answer(query, self.settings)
        try:
            res = yield from self._chain(req, req.qname, req.qtype)
        except ResolveFail as fail:
            log.debug("[%05d] resolution failed: %s", req.uid, fail)
            ans.set_rcode(dns.rcode.SERVFAIL)
            set_ede(ans, fail.ede, str(fail)[:200])
            return ans
        ans.answer = _dedupe(res.answer)
        if res.outcome is Outcome.NXDOMAIN:
            ans.set_rcode(dns.rcode.NXDOMAIN)
        if res.outcome in (Outcome.NXDOMAIN, Outcome.NODATA):
            ans.authority = _dedupe(res.authority)
        return ans

    # -- stages -------------------------------------------------------------

    def _check_limits(self, req: Request) -> None:
        if req.upstream_queries >= self.settings.max_upstream_queries:
            raise ResolveFail("too many upstream queries", EDE.NO_REACHABLE_AUTHORITY)
        if self.clock.monotonic() - req.started > self.settings.resolve_time_limit:
            raise ResolveFail("resolution time limit exceeded", EDE.NO_REACHABLE_AUTHORITY)

    def _chain(self, req: Request, qname: dns.name.Name, qtype: int, nonauth: bool = False,
               no_cache: bool = False):
        """Resolve (qname, qtype), following CNAMEs across zones."""
        answer = []
        seen = {qname}
        name = qname
        for _ in range(self.settings.max_cname_chain + 1):
            res = yield from self._lookup(req, name, qtype, nonauth, no_cache and name == qname)
            answer.extend(res.answer)
            if res.outcome is not Outcome.CNAME:
                return Result(res.outcome, answer, res.authority)
            if res.target in seen:
                raise ResolveFail(f"CNAME chain loop at {res.target}", EDE.OTHER)
            seen.add(res.target)
            name = res.target
        raise ResolveFail("CNAME chain too long", EDE.OTHER)

    def _lookup(self, req: Request, sname: dns.name.Name, stype: int, nonauth: bool = False,
                no_cache: bool = False):
        hit = None if no_cache else cache_layer.peek(self.cache, sname, stype, nonauth)
        if hit is not None:
            log.debug("[%05d] cache hit %s %s: %s", req.uid, sname, T.to_text(stype), hit.outcome.value)
            return hit
        return (yield from self._iterate(req, sname, stype))

    def _find_cut(self, req: Request, sname: dns.name.Name, stype: int):
        start = sname.parent() if stype == T.DS and sname != dns.name.root else sname
        s = self.settings
        cut = cache_layer.closest_cut(self.cache, start, s.ipv4, s.ipv6)
        if cut is None:
            cut = yield from self._prime(req)
        elif cut.name == dns.name.root and not cut.addresses(s):
            cut = root_cut_from_hints(s)  # root NS known but no address: the hints are the safety belt
        return cut

    def _minimized(self, sname: dns.name.Name, stype: int, cut: ZoneCut):
        depth = len(cut.name.labels) + 1
        if len(sname.labels) <= depth or stype == T.DS:
            return sname, stype
        return sname.split(depth)[1], T.NS

    def _iterate(self, req: Request, sname: dns.name.Name, stype: int):
        """Ask servers from the closest cut down until the name is answered."""
        cut = yield from self._find_cut(req, sname, stype)
        minimize = not self.settings.no_minimize
        tried: set[str] = set()
        ns_tried: set = set()
        fell_back: set = set()
        while True:
            self._check_limits(req)
            qname, qtype = self._minimized(sname, stype, cut) if minimize else (sname, stype)
            addr = self.selection.choose(cut.addresses(self.settings), tried)
            if addr is None:
                found = yield from self._resolve_ns_addrs(req, cut, ns_tried, tried)
                if found:
                    continue
                if tried and cut.from_cache and cut.name != dns.name.root and cut.name not in fell_back:
                    # Every server of a cached cut failed: its NS set or glue may be
                    # stale, so ask the parent side for a fresh delegation (once).
                    fell_back.add(cut.name)
                    log.debug("[%05d] cut %s exhausted, falling back to its parent", req.uid, cut.name)
                    cut = yield from self._find_cut(req, cut.name.parent(), T.NS)
                    tried, ns_tried = set(), set()
                    continue
                raise ResolveFail(f"no usable server for zone {cut.name}", EDE.NO_REACHABLE_AUTHORITY)
            reply = yield from self._exchange(req, addr, qname, qtype, cut)
            if reply is None:
                tried.add(addr)
                continue
            c = consume(reply, sname, stype, qname, qtype, cut, self.settings)
            log.debug("[%05d] %s %s @%s (cut %s): %s %s", req.uid, qname, T.to_text(qtype), addr,
                      cut.name, c.kind.value, c.why)
            self._stash(c.stash)
            if c.kind is Kind.REFERRAL:
                if c.cut.ns is not cut.ns and c.cut.ns != cut.ns:
                    tried, ns_tried = set(), set()
                cut = c.cut
                for ns, addrs in cut.ns.items():
                    req.learn_addrs(ns, addrs)
            elif c.kind is Kind.RETRY_FULL:
                minimize = False
            elif c.kind is Kind.LAME:
                self.selection.report_error(addr, SelectionError.LAME)
                tried.add(addr)
                if minimize and qname != sname:
                    minimize = False  # broken servers: fall back to full names
            else:
                return c.result

    def _stash(self, stash) -> None:
        try:
            stash.commit(self.cache)
        except Exception as exc:  # a cache failure never fails the request
            log.warning("[cache] stash failed: %s", exc)

    def _resolve_ns_addrs(self, req: Request, cut: ZoneCut, ns_tried: set, tried: set):
        """Resolve addresses of one more NS of the cut; True when some became usable."""
        s = self.settings
        for ns in list(cut.ns):
            known = usable_addresses(cut.ns[ns], s)
            if ns in ns_tried or any(a not in tried for a in known):
                continue
            # Addresses known but all failed: look again past the cache, so that
            # iteration meets the parent side's glue (kept in req.ns_addrs).
            no_cache = bool(known)
            ns_tried.add(ns)
            if req.depth >= s.max_depth:
                return False
            addrs: list[str] = []
            for rtype, want in ((T.A, s.ipv4), (T.AAAA, s.ipv6)):
                if not want or (ns, rtype) in req.resolving or usable_addresses(addrs, s):
                    continue
                req.resolving.add((ns, rtype))
                req.depth += 1
                try:
                    res = yield from self._chain(req, ns, rtype, nonauth=True, no_cache=no_cache)
                    for rr in res.answer:
                        if rr.rdtype == rtype:
                            addrs.extend(rd.address for rd in rr)
                except ResolveFail as fail:
                    log.debug("[%05d] NS %s %s unresolvable: %s", req.uid, ns, T.to_text(rtype), fail)
                finally:
                    req.depth -= 1
                    req.resolving.discard((ns, rtype))
            req.learn_addrs(ns, addrs)
            cut.ns[ns] = list(req.ns_addrs[ns])
            if any(a not in tried for a in usable_addresses(cut.ns[ns], s)):
                return True
        return False

    def _prime(self, req: Request):
        """Root zone cut: from a priming query if enabled, else the hints."""
        hints = root_cut_from_hints(self.settings)
        if not self.settings.priming or ("prime", 0) in req.resolving:
            return hints
        req.resolving.add(("prime", 0))
        tried: set[str] = set()
        try:
            for _ in range(3):
                addr = self.selection.choose(hints.addresses(self.settings), tried)
                if addr is None:
                    break
                tried.add(addr)
                reply = yield from self._exchange(req, addr, dns.name.root, T.NS, hints)
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
                self._stash(stash)
                if cut.addresses(self.settings):
                    return cut
        finally:
            req.resolving.discard(("prime", 0))
        return hints

    # -- one upstream exchange ---------------------------------------------------

    def _exchange(self, req: Request, addr: str, qname, qtype, cut: ZoneCut):
        """Ask addr; returns a scrubbed reply Message, or None (the server failed)."""
        s = self.settings
        st = self.selection.state(addr)
        edns = not s.no_edns and not st.no_edns
        tcp = False
        for _ in range(4):
            self._check_limits(req)
            qid = self.rng.getrandbits(16)
            q = dns.message.make_query(qname, qtype, use_edns=0 if edns else False,
                                       payload=s.edns_bufsize, id=qid)
            q.flags = 0
            source = s.outgoing_v6 if ":" in addr else s.outgoing_v4
            req.upstream_queries += 1
            t0 = self.clock.monotonic()
            raw = yield Send(addr, 53, q.to_wire(), tcp=tcp, timeout=s.upstream_timeout, source=source)
            if raw is None:
                self.selection.report_error(addr, SelectionError.TIMEOUT)
                return None
            try:
                reply = dns.message.from_wire(raw)
            except dns.message.Truncated:
                if tcp:
                    return None
                tcp = True
                continue
            except Exception:  # hostile bytes: any parse failure is this server's fault
                self.selection.report_error(addr, SelectionError.MALFORMED)
                return None
            if not _matches(reply, qid, qname, qtype):
                self.selection.report_error(addr, SelectionError.MISMATCHED)
                return None
            self.selection.report_rtt(addr, self.clock.monotonic() - t0)
            if reply.flags & dns.flags.TC and not tcp:
                tcp = True
                continue
            if edns and reply.rcode() in (dns.rcode.FORMERR, dns.rcode.NOTIMP):
                self.selection.set_no_edns(addr)
                edns = False
                continue
            return scrub(reply, qname, cut.name, keep_all_glue=s.glue_mode == GlueMode.PERMISSIVE)
        return None


def _matches(reply: dns.message.Message, qid: int, qname, qtype) -> bool:
    if reply.id != qid or not reply.flags & dns.flags.QR:
        return False
    if not reply.question:
        return reply.rcode() != dns.rcode.NOERROR
    q = reply.question[0]
    return q.name == qname and q.rdtype == qtype


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
