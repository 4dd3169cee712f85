"""The cache-miss fast path: the plainest upstream answers without a Request.

Owns, for one worker, the UDP query that the cache-hit fast path
(workers/fastpath.py) found nothing for and that one upstream question can
answer:
  * when it may be tried (`start`): the fast path's consent held for the
    name (every layer's fast_ok, the client outside every fast_nets subnet),
    every loaded layer says it may skip the Request (Layer.fast_miss), the
    resolv log is not at debug level, the query asks A or AAAA of class IN
    with RD=1 and without DNSSEC flags (DO, AD, CD) or EDNS options, the
    cache holds nothing else for the name (no CNAME, NXDOMAIN or NODATA
    entry, no expired entry of the type that serve_stale might want), the
    closest cached zone cut is the name's parent (so the full path would ask
    it the full name too: no QNAME minimisation step), and, where a trust
    anchor covers that zone, the cache holds its DNSKEY validated (SECURE),
    no negative trust anchor covers it and no cached NSEC/NSEC3 of it answers
    the name (RFC 8198, workers/layers/aggressive.py);
  * asking the zone's server the selection chooses (the same ID, 0x20 case,
    EDNS, timeout and source address rules as workers/resolve.py
    _exchange), through the worker's upstream UDP pool without a Task, and
    sharing one question among clients asking the same name and type;
  * the reply: when native.reply_rrset finds it the plainest positive answer
    (see there) and, under a trust anchor, its first RRSIG verifies with a
    key of the zone as workers/dnssec/verify.py verify_rrset would take it
    (`_validated`), the RRset is stashed as the full path stashes it (same
    bytes, same rank, RRSIGs included; batched: one write transaction per
    loop iteration) and each client is answered with native.answer from
    those bytes (the LMDB tier's answer, the same bytes as the full path's);
    the stats module counts it as the full path would
    (StatsLayer.fast_miss_count);
  * anything else (a timeout, a referral, a CNAME, a negative answer, a
    signature that does not verify at once, a malformed or truncated reply,
    a client the answer does not fit) is handed to the full path with the
    reply it got (Request.preset), so no question is asked twice.
Must not: change what a client gets or what the cache holds (tests/unit/
workers/test_fastmiss.py compares both with the full path's on the same
replies), ask anything the full path would not, or raise into the server.
The design (../shared/DESIGN.md "miss -> Request + one Task") is kept for
every other miss; this one skips the Request, the dnspython objects and the
Task because they cost most of a plain miss's CPU (issue 14's profile).
"""
from __future__ import annotations

import functools
import logging
import struct

import dns.name
import dns.rdatatype as T

import native
from cache import entry
from cache.keys import TAG_NODATA, TAG_NXDOMAIN, TAG_RRSET

from . import outbound, wire
from .layers import cache as cache_layer
from .dnssec import Status, ta, verify
from .layers.cache import ANSWER_RANK, SECURE_RANK
from .request import Options
from .server import udp_limit
from .selection.iterate import QuerySelection, SelectionError
from .transport import Preset, Send

log = logging.getLogger("kresd.fastmiss")
_RESOLV_LOG = logging.getLogger("kresd.resolv")  # workers/resolve.py's per-request log

_RD = 0x0100
_NOT_FAST = 0x8000 | 0x0100 | 0x0020 | 0x0010  # QR, RD, AD, CD: only RD may be set
_DO = 0x8000
CUT_MEMO_TTL = 5.0  # seconds a zone cut read from the cache is reused (at most its NS TTL)
CUT_MEMO_MAX = 4096  # parent names remembered (then forgotten all at once)
NOCUT_TTL = 1.0  # seconds a parent name is not tried again (unless a referral came)
MAX_KEYS_TRIED = 2  # signature checks one fast miss may spend (then the full path decides)
INFLIGHT_MAX = 4096  # questions in flight here; past that the full path takes new misses


_SIG_HEAD = struct.Struct("!BBIIIH")  # RRSIG rdata after the type covered, up to the signer
_RR_HEAD = struct.Struct("!HHI")  # type, class, TTL of a record in signed data
_U16 = struct.Struct("!H")


def _labels(qname: bytes) -> int:
    """RFC 4034 3.1.3 labels of an uncompressed wire name (no wildcard here)."""
    n = pos = 0
    while qname[pos]:
        pos += qname[pos] + 1
        n += 1
    return n


class _Miss:
    """One upstream question in flight and the clients waiting for it."""

    __slots__ = ("key", "clients", "addr", "qname", "qtype", "qid", "sent", "edns", "x20", "t0", "zone",
                 "keys")

    def __init__(self, key, addr, qname, qtype, qid, sent, edns, x20, t0, zone, keys):
        self.key, self.addr, self.qname, self.qtype = key, addr, qname, qtype
        self.qid, self.sent, self.edns, self.x20, self.t0 = qid, sent, edns, x20, t0
        self.zone, self.keys = zone, keys  # the cut's name (wire) and its validated keys, or None
        self.clients: list = []  # (sock, data, addr, pq, started)


class FastMiss:
    def __init__(self, fast):
        self.fast = fast  # workers/fastpath.FastPath (consent, resolver, settings, clock)
        self.server = None  # workers/server.Server (bind())
        self.ok = False  # every layer consents, no debug log (consent())
        self.settings = fast.settings
        self.validating = False  # some trust anchor is configured
        self.opts = Options()
        self.counting: list = []  # layers with fast_miss_count
        self.inflight: dict[tuple, _Miss] = {}
        self.cuts: dict[bytes, tuple] = {}  # parent wire -> _cut()'s tuple
        self.nocut: dict[bytes, tuple] = {}  # parent wire -> (from, until) when it is no cut to use
        self._referrals = -1  # resolver.referrals when nocut was last emptied
        self._ops: list = []  # (key, value, rank) stashes waiting for the flush
        self.counts = {"asked": 0, "answered": 0, "shared": 0, "handed_over": 0}

    def bind(self, server) -> None:
        self.server = server

    def consent(self, layers, settings) -> None:
        """Called with the fast path's consent (Settings.epoch or the cache
        generation changed): read again what may take this path."""
        self.ok = (self.server is not None and bool(settings.fastpath)
                   and all(getattr(layer, "fast_miss", False) for layer in layers)
                   and not _RESOLV_LOG.isEnabledFor(logging.DEBUG))  # (debug: the full path logs each step)
        self.settings = settings
        self.validating = any(settings.trust_anchors.values())
        self.opts = Options.from_settings(settings)
        self.counting = [layer for layer in layers if hasattr(layer, "fast_miss_count")]
        self.clear_cuts()

    def clear_cuts(self) -> None:
        self.cuts.clear()
        self.nocut.clear()

    # -- the query ---------------------------------------------------------------
    def start(self, sock, data: bytes, addr, pq) -> bool:
        """Take the miss `pq` (native.parse_query(data), consented to by the
        fast path, its positive entry absent): True when it is asked here."""
        if not self.ok or pq.qtype not in native.REPLY_RRSET_TYPES or pq.qclass != 1 \
                or pq.flags & _NOT_FAST != _RD or pq.opcode or pq.edns_version or pq.opt_rdata_len \
                or pq.do_bit:
            return False  # (what native.answer would not answer either)
        qn, qtype = pq.qname_lower, pq.qtype
        key = (qn, qtype)
        miss = self.inflight.get(key)
        clock = self.fast.clock
        if miss is not None:
            miss.clients.append((sock, data, addr, pq, clock.monotonic()))
            self.counts["shared"] += 1
            return True
        if len(self.inflight) >= INFLIGHT_MAX or len(qn) < 2:
            return False
        resolver = self.fast.resolver
        cache = resolver.cache
        with cache.snapshot():
            # (the caller found no entry of the asked type at all: FastPath.__call__)
            for k in ((qn, TAG_RRSET, T.CNAME), (qn, TAG_NXDOMAIN, 0), (qn, TAG_NODATA, qtype)):
                if cache.peek_raw(native.cache_key(*k)) is not None:
                    return False
            now = clock.monotonic()
            wall = clock.time()  # (memos age with the clock the cache's TTLs use)
            parent = qn[qn[0] + 1:]
            if resolver.referrals != self._referrals:  # new cuts: "no cut here" may be stale
                self._referrals = resolver.referrals
                self.nocut.clear()
            memo = self.cuts.get(parent)
            if memo is None or not memo[4] <= wall < memo[0]:
                no = self.nocut.get(parent)
                if no is not None and no[0] <= wall < no[1]:
                    return False
                memo = self._cut(cache, parent, wall)
                if memo is None:
                    return False
        if memo[2] is not None:
            # RFC 8198: the full path may answer from cached NSEC/NSEC3 of the zone
            from .layers import aggressive
            if aggressive.synthesize(cache, memo[3], dns.name.from_wire(qn, 0)[0], qtype, wall) is not None:
                return False
        selection = resolver.selection
        upstream = selection.choose(memo[1], QuerySelection())
        if upstream is None:
            return False
        st = selection.state(upstream)
        if st.tcp_only:
            return False
        s, opts = self.fast.settings, self.opts
        edns = not opts.NO_EDNS and not st.no_edns
        x20 = not opts.NO_0X20
        bits = resolver.rng.getrandbits(16 + len(qn) if x20 else 16)
        qid = bits & 0xFFFF
        sent = wire.x20_bits(qn, bits >> 16) if x20 else qn
        out = wire.query_wire(qid, 0, sent, qtype, (s.edns_bufsize, _DO) if edns else None)
        host, _, port = upstream.partition("#")
        timeout = max(0.05, min(selection.timeout(upstream, s.upstream_timeout, st), s.resolve_time_limit))
        source = s.outgoing_v6 if ":" in host else s.outgoing_v4
        fut = outbound.send_udp(Send(host, int(port or 53), out, timeout=timeout, source=source, x20=x20))
        if fut is None:
            return False
        miss = _Miss(key, upstream, qn, qtype, qid, sent, edns, x20, now, parent, memo[2])
        miss.clients.append((sock, data, addr, pq, now))
        self.inflight[key] = miss
        self.counts["asked"] += 1
        fut.add_done_callback(functools.partial(self._done, miss))
        return True

    def _cut(self, cache, parent: bytes, now: float) -> tuple | None:
        """(expires, addresses, keys, name, created) of the cached cut at
        `parent` (unix times, `now` is one), remembered for at most
        CUT_MEMO_TTL (and its NS and DNSKEY TTLs; a clock going back ends it).
        keys: None where the full path would not validate, else the cut's
        DNSKEYs the cache holds validated (SECURE), usable ones by (key tag,
        algorithm). None (remembered NOCUT_TTL or until the full path follows
        a referral) when the closest cached cut is elsewhere (or is the
        root), has no usable address, or should be validated but its keys
        are not cached validated (or it is below a negative trust anchor)."""
        addrs = keys = None
        expires = now + CUT_MEMO_TTL
        name = dns.name.from_wire(parent, 0)[0] if parent != b"\x00" else dns.name.root
        if name != dns.name.root:
            o = self.opts
            cut = cache_layer.closest_cut(cache, name, not o.NO_IPV4, not o.NO_IPV6)
            if cut is not None and cut.name == name:
                ns = cache.peek_rrset(name, T.NS)
                addrs = cut.addresses(o) or None
                if ns is not None:
                    expires = now + min(CUT_MEMO_TTL, ns.ttl)
        if addrs is not None and self.validating and ta.closest_ta(self.settings, name) is not None:
            hit = None if ta.is_negative(self.settings, name) else cache.peek_rrset(name, T.DNSKEY)
            if hit is None or cache_layer.rank_status(hit.rank) is not Status.SECURE:
                addrs = None  # (the full path fetches and validates them first)
            else:
                keys = {}
                for k in hit.rrset:
                    if verify.key_usable(k) and k.algorithm in verify.SUPPORTED_ALGORITHMS:
                        keys.setdefault((verify.key_tag(k), int(k.algorithm)), []).append(k)
                expires = min(expires, now + hit.ttl)
        memo = self.cuts if addrs is not None else self.nocut
        if len(memo) >= CUT_MEMO_MAX:
            memo.clear()
        if addrs is None:
            self.nocut[parent] = (now, min(expires, now + NOCUT_TTL))
            return None
        out = self.cuts[parent] = (expires, addrs, keys, name, now)
        return out

    # -- the reply -----------------------------------------------------------------
    def _done(self, miss: _Miss, fut) -> None:
        try:
            self._reply(miss, None if fut.cancelled() else fut.result())
        except Exception:  # noqa: BLE001 - a bug here must cost the full path, not the worker
            log.exception("fast miss of %r failed", miss.qname)
            if self.inflight.get(miss.key) is miss:
                del self.inflight[miss.key]
            self._hand_over(miss, None)

    def _reply(self, miss: _Miss, raw: bytes | None) -> None:
        if self.inflight.get(miss.key) is miss:
            del self.inflight[miss.key]
        fast = self.fast
        selection = fast.resolver.selection
        clock = fast.clock
        if raw is None:
            selection.report_error(miss.addr, SelectionError.TIMEOUT, QuerySelection(),
                                   question=(self._name(miss), miss.qtype))
            self._hand_over(miss, None)
            return
        rtt = clock.monotonic() - miss.t0
        plain = wire.plain_case(raw, miss.sent) if miss.x20 else raw
        cache = fast.resolver.cache
        got = None if plain is None else native.reply_rrset(plain, miss.qid, miss.qname, miss.qtype,
                                                             cache.min_ttl, cache.max_ttl,
                                                             miss.keys is not None)
        now = int(clock.time())
        if got is not None and miss.keys is not None:
            got = self._validated(miss, got, now, cache)
        if got is None:
            self._hand_over(miss, Preset(miss.addr, self._name(miss), miss.qtype, miss.qid, miss.sent, raw,
                                         miss.edns, miss.x20, rtt))
            return
        selection.report_rtt(miss.addr, rtt)
        ttl, rdatas, sigs = got
        rank = int(ANSWER_RANK if miss.keys is None else SECURE_RANK)
        value = entry.pack_rdatas(miss.qtype, rdatas, inception=now, ttl=ttl, rank=rank,
                                  rrsigs=[rd for _, rd in sigs])
        self._stash(native.cache_key(miss.qname, TAG_RRSET, miss.qtype), value, rank)
        settings = fast.settings
        bufsize = settings.edns_bufsize
        server = self.server
        preset = None
        for client in miss.clients:
            sock, data, addr, pq, started = client
            out = native.answer(data, pq, value, now, bufsize, udp_limit(bool(pq.has_opt), pq.udp_size, bufsize))
            if out is None:  # (does not fit: the full path truncates)
                if preset is None:
                    preset = Preset(miss.addr, self._name(miss), miss.qtype, miss.qid, miss.sent, raw,
                                    miss.edns, miss.x20, rtt)
                self.counts["handed_over"] += 1
                server.udp_full(sock, data, addr, preset)
                continue
            server.stats.count_answer(0)
            server._sendto(sock, out, addr)
            self.counts["answered"] += 1
            if self.counting:
                elapsed = clock.monotonic() - started
                for layer in self.counting:
                    layer.fast_miss_count(pq, elapsed, miss.addr, rtt)

    def _validated(self, miss: _Miss, got: tuple, now: int, cache) -> tuple | None:
        """The reply's RRset proven SECURE by its first RRSIG and a key of
        the cut, as workers/layers/validate.py would prove it (verify_rrset
        tries the RRSIGs in order and stops at the first that verifies), with
        its TTL capped as _cap_ttl caps it: (TTL, rdatas, RRSIGs), or None
        (the full path decides: another signature, a wildcard, a failure)."""
        ttl, rdatas, sigs = got
        if not sigs:
            return None
        _sig_ttl, rd = sigs[0]
        alg, labels, orig_ttl, expiration, inception, tag = _SIG_HEAD.unpack_from(rd, 2)
        end = 18 + len(miss.zone)
        if rd[18:end].lower() != miss.zone or labels != _labels(miss.qname) \
                or ((expiration - now) & 0xFFFFFFFF) >= 0x80000000 \
                or ((now - inception) & 0xFFFFFFFF) >= 0x80000000:
            return None
        keys = miss.keys.get((tag, alg))
        if not keys:
            return None
        signed = [rd[:18], miss.zone]
        head = miss.qname + _RR_HEAD.pack(miss.qtype, 1, orig_ttl)
        for r in sorted(rdatas):
            signed += (head, _U16.pack(len(r)), r)
        data = b"".join(signed)
        signature = rd[end:]
        resolver = self.fast.resolver
        for key in keys[:MAX_KEYS_TRIED]:
            resolver.sig_checks += 1
            try:
                verify.public_key(key).verify(signature, data)
            except Exception:  # noqa: BLE001 - InvalidSignature, a hostile key or signature
                continue
            left = (expiration - now) & 0xFFFFFFFF
            ttl = min(ttl, orig_ttl, left)  # _cap_ttl
            if ttl < cache.min_ttl or min(t for t, _ in sigs) < ttl:
                return None  # (the stash would keep another TTL than the answer's)
            return ttl, rdatas, sigs
        return None

    def _hand_over(self, miss: _Miss, preset) -> None:
        for sock, data, addr, _pq, _started in miss.clients:
            self.counts["handed_over"] += 1
            self.server.udp_full(sock, data, addr, preset)

    @staticmethod
    def _name(miss: _Miss) -> dns.name.Name:
        return dns.name.from_wire(miss.qname, 0)[0]

    # -- the stash -------------------------------------------------------------------
    def _stash(self, k: bytes, value: bytes, rank: int) -> None:
        if not self._ops:
            self.server._loop.call_soon(self.flush)
        self._ops.append((k, value, rank))

    def flush(self) -> None:
        """Write the stashes of this loop iteration in one transaction."""
        ops, self._ops = self._ops, []
        if not ops:
            return
        try:
            with self.fast.resolver.cache.writer() as w:
                for k, value, rank in ops:
                    w.stash_value(k, value, rank)
        except Exception as exc:  # noqa: BLE001 - a cache failure never fails an answer
            log.warning("[cache] stash failed: %s", exc)

    def stats(self) -> dict:
        return dict(self.counts, inflight=len(self.inflight))
