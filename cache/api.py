"""Cache facade: what the resolver may ask of the shared LMDB cache.

Owns: ranks (kresd lib/cache/api.h kr_rank), freshness (TTL countdown on the
injected clock, min/max TTL clamps, RFC 2308 negative TTL), the rank rule on
overwrite, one RW transaction per `writer()`, clear/count/stats, and eviction
when the map is full (a full map is never an error to the caller).
Must not: know about requests, layers or sockets; define key or value bytes
(cache/keys.py and cache/entry.py do); open LMDB before it is asked to (fork
first, then `open()`).

Contract (unchanged from the interface-first version):

    class Rank(enum.IntFlag)          # kresd lib/cache/api.h kr_rank
        INITIAL=0 OMIT=1 TRY=2 INDET=4 BOGUS=5 MISMATCH=6 MISSING=7 INSECURE=8
        AUTH=16 SECURE=32
        # glue/non-authoritative data is stored as TRY; authoritative answers as
        # INITIAL|AUTH (no DNSSEC yet). `is_answer_rank(rank)` is True when the
        # data may be served as an answer (AUTH set, not BOGUS, no unknown
        # bits: the one rule, native.rank_is_answer).

    class Cache:
        def __init__(self, path, size, *, min_ttl=5, max_ttl=86400, clock=time.time)
        def open(self) -> None                  # after any fork; creates path/data.mdb
        def close(self) -> None
        def peek_rrset(self, name, rtype) -> CachedRRset | None
        def peek_negative(self, name, rtype) -> CachedNegative | None
        def writer(self) -> Writer              # one RW transaction per request
        class Writer:  (context manager; commits on exit unless an exception)
            def stash_rrset(self, rrset, rank, rrsigs=None) -> None
            def stash_negative(self, name, rtype, kind, soa, authority, rank) -> None
        def clear(self, name=None, subtree=False) -> int
        def count(self) -> int
        def stats(self) -> dict

    NSEC/NSEC3 index (RFC 8198 aggressive use; keys: cache/nsec.py):

        Writer.stash_nsec(self, zone, rrset, rank, rrsigs=None, soa_minimum=None) -> None
            # an NSEC or NSEC3 RRset of `zone`; TTL = min(rrset, rrsigs, SOA MINIMUM)
            # (RFC 8198 5.4), clamped like other entries; same rank rule on overwrite
        Cache.peek_nsec(self, zone, name) -> CachedNSEC | None
            # the NSEC of `zone` whose owner is `name` (exact=True) or its closest
            # predecessor in canonical order; expired or corrupt = None (no step back)
        Cache.peek_nsec3(self, zone, params, raw_hash) -> CachedNSEC | None
            # the same by hash within one parameter set (cache.nsec.Nsec3Params),
            # wrapping to the chain's last hash below its first
        Cache.nsec3_params(self, zone) -> list[Nsec3Params]   # the sets held for zone
        # clear() drops them all; clear(zone, subtree=True) those of zone and below.

Semantics worth knowing:
  * Slots: the positive RRset (tag E) and the NODATA (tag N) of one (name, type)
    share a slot as in kresd: stashing one removes the other, and a fresh entry
    in the slot with a higher rank blocks the stash. NXDOMAIN (tag X) has its
    own slot; a positive answer-rank RRset removes a lower/equal-ranked X.
  * Writer buffers its stashes and applies them in one short RW transaction on
    exit, so the LMDB writer lock is never held across an await; reads inside
    the `with` block do not see the pending stashes yet.
  * Returned RRsets carry the remaining TTL (entry TTL minus age on `clock`);
    remaining <= 0 is a miss. Corrupted values are misses (counted in stats).
  * Negative TTL = min(SOA TTL, SOA MINIMUM, TTLs of the other authority
    RRsets), then clamped to [min_ttl, max_ttl] like positive data.
"""
from __future__ import annotations

import enum
import logging
import time
from dataclasses import dataclass
from typing import Callable

import dns.name
import dns.rdatatype
import dns.rrset
import lmdb

import native as _native
from cache import entry
from cache import nsec as _nsec
from cache.entry import EntryError, Header
from cache.env import CacheEnv
from cache.errors import CacheError
from cache.decoded import DecodedMemo
from cache.generation import Generation
from cache.keys import TAG_NODATA, TAG_NXDOMAIN, TAG_RRSET, key, lf, subtree_prefix

log = logging.getLogger("kresd.cache")

DEFAULT_MIN_TTL = 5
DEFAULT_MAX_TTL = 86400  # kresd 5.6 (KR_CACHE_DEFAULT_TTL_MAX: 1 day)
_MAX_TTL_LIMIT = 0xFFFFFFFF
EVICT_THRESHOLD = 0.75  # evict before a write when live pages exceed this part of the map
EVICT_HYSTERESIS = 0.15  # ... and then down to (threshold - hysteresis) if expiry is not enough
MIN_HEADROOM_PAGES = 16  # copy-on-write needs free pages even to delete
# pressure() (two txn stats, ~4 µs) runs before a write once this process has
# written 1/PRESSURE_CHECK_PARTS of the map (at least PRESSURE_CHECK_MIN bytes) since it last looked
PRESSURE_CHECK_PARTS = 512
PRESSURE_CHECK_MIN = 2048

__all__ = [
    "Cache", "CachedNSEC", "CachedNegative", "CachedRRset", "CacheError", "Rank", "Writer",
    "is_answer_rank", "is_usable_rank",
]


class Rank(enum.IntFlag):
    """kresd kr_rank: low values are exclusive states, AUTH/SECURE are flags."""

    INITIAL = 0
    OMIT = 1
    TRY = 2
    INDET = 4
    BOGUS = 5
    MISMATCH = 6
    MISSING = 7
    INSECURE = 8
    AUTH = 16
    SECURE = 32


def is_answer_rank(rank: int) -> bool:
    """True if data of this rank may be served as an answer to a client.

    The one rule, for every path (this facade, workers/layers/cache.py, the C
    fast path): kn_rank_is_answer in native/ (kresd_native.h), with its twin
    native/pure.py rank_is_answer. AUTH set, no bits beyond 0x3F, not BOGUS.
    """
    return _rank_is_answer(int(rank))


def is_usable_rank(rank: int, nonauth: bool) -> bool:
    """May data of this rank answer a (sub-)query? An answer rank always may;
    a NONAUTH query (kresd: nameserver addresses) also takes glue and other
    non-authoritative data, anything but BOGUS."""
    if nonauth:
        rank = int(rank)
        return 0 <= rank <= 0x3F and (rank & ~(Rank.AUTH | Rank.SECURE)) != Rank.BOGUS
    return _rank_is_answer(int(rank))


@dataclass(frozen=True, slots=True)
class CachedRRset:
    rrset: dns.rrset.RRset  # TTL = remaining
    rank: Rank
    rrsigs: dns.rrset.RRset | None
    ttl: int  # remaining seconds (> 0)
    orig_ttl: int = 0  # the TTL it was stored with (kresd's is_expiring compares the two)


@dataclass(frozen=True, slots=True)
class CachedNegative:
    kind: str  # 'NXDOMAIN' | 'NODATA'
    soa: dns.rrset.RRset | None  # TTL = remaining; None: a NODATA that had no SOA
    authority: list[dns.rrset.RRset]
    rank: Rank
    ttl: int


@dataclass(frozen=True, slots=True)
class CachedNSEC:
    rrset: dns.rrset.RRset  # an NSEC or NSEC3 RRset, TTL = remaining
    rrsigs: dns.rrset.RRset | None
    rank: Rank
    ttl: int  # remaining seconds (> 0)
    exact: bool  # the owner (hash) is the looked-up name (hash), not a predecessor


NXDOMAIN = "NXDOMAIN"
NODATA = "NODATA"
STALE_TTL = 1  # the TTL of a stale record served (kresd's serve_stale callback answers 1)


def _stale(remaining: int, stale: int) -> int:
    """The TTL to serve: `remaining` while fresh; STALE_TTL for an entry that
    expired less than `stale` seconds ago; else `remaining` (<= 0: a miss)."""
    if remaining > 0 or stale <= 0 or remaining <= -stale:
        return remaining
    return STALE_TTL


# Keys are built in C (native/key.c); cache/keys.py specifies them and
# native/pure.py is the reference twin.
_rank_is_answer = _native.rank_is_answer


def _build_key(name: dns.name.Name, tag: bytes, rtype: int) -> bytes:
    try:
        return _native.cache_key(name.to_wire(), tag, rtype)
    except _native.ParseError as exc:
        raise ValueError(str(exc)) from exc


if _native.BACKEND != "c":
    _build_key = key  # noqa: F811  (no compiled extension: same bytes, in Python)


def _key(name: dns.name.Name, tag: bytes, rtype: int) -> bytes | None:
    try:
        return _build_key(name, tag, int(rtype))
    except ValueError:
        return None  # too long for LMDB: silently not cached


def exact_prefix(name: dns.name.Name) -> bytes:
    """Prefix shared by the keys of this name only (CACHE_KEY_DEF): lf + 0x00."""
    return lf(name) + b"\x00"


def _is_exact_key(k: bytes, prefix: bytes) -> bool:
    return len(k) == len(prefix) + 3 and 0x41 <= k[len(prefix)] <= 0x5A


@dataclass(slots=True)
class _Stash:
    """One buffered stash: a value for `key`, and the slot keys it competes with."""

    key: bytes
    value: bytes
    rank: int
    rivals: tuple[bytes, ...]  # same slot: blocked by a fresh higher rank, else removed
    weaker: tuple[bytes, ...]  # removed if expired or rank <= ours


def _positive_op(k: bytes, value: bytes, rank: int) -> _Stash:
    """The stash of a positive `E` entry: it replaces the same name and
    type's NODATA, and, with an answer rank, the name's NXDOMAIN unless that
    is fresh and ranked higher."""
    # CACHE_KEY_DEF: the same name's N and X keys differ only in TAG (and TYPE 0 for X)
    base = k[:-3]
    weaker = (base + TAG_NXDOMAIN + b"\x00\x00",) if is_answer_rank(rank) else ()
    return _Stash(k, value, rank, (base + TAG_NODATA + k[-2:],), weaker)


_HDR = entry.HEADER.size


class _Picked(list):
    """Keys picked for eviction from one read snapshot, with the value header
    each had then (see Cache.delete_keys)."""

    def __init__(self) -> None:
        super().__init__()
        self.headers: dict[bytes, bytes] = {}

    def add(self, k: bytes, value: bytes) -> None:
        self.append(k)
        self.headers[k] = bytes(value[:_HDR])


_RANKS: dict[int, Rank] = {}


def _rank(value: int) -> Rank:
    r = _RANKS.get(value)
    if r is None:
        r = _RANKS[value] = Rank(value)
    return r


class _Snapshot:
    """Cache.snapshot(): one read transaction for the peeks inside (nests)."""

    __slots__ = ("cache", "txn")

    def __init__(self, cache: "Cache"):
        self.cache = cache
        self.txn = None

    def __enter__(self) -> "_Snapshot":
        cache = self.cache
        if cache._snapshot is None and cache.is_open:
            self.txn = cache._snapshot = cache._env.begin()
        return self

    def __exit__(self, *exc) -> None:
        if self.txn is not None:
            self.cache._snapshot = None
            self.txn.abort()
            self.txn = None


class Writer:
    """Buffers stashes of one request; applies them in one RW txn on exit."""

    def __init__(self, cache: Cache):
        self._cache = cache
        self._ops: list[_Stash] = []
        self._done = False

    def __enter__(self) -> Writer:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.commit()
        else:
            self._ops.clear()
            self._done = True

    def __len__(self) -> int:
        return len(self._ops)

    def stash_rrset(self, rrset: dns.rrset.RRset, rank: int,
                    rrsigs: dns.rrset.RRset | None = None, inception: int | None = None) -> None:
        """Stash a positive RRset (class IN); TTL = min(rrset, rrsigs) clamped.
        `inception`: when the data arrived (default: now; the prefill module
        passes its zone file's mtime, as kresd's zone import does)."""
        cache = self._cache
        rtype = int(rrset.rdtype)
        k = _key(rrset.name, TAG_RRSET, rtype)
        if k is None or len(rrset) == 0:
            return
        ttl = rrset.ttl if rrsigs is None or not len(rrsigs) else min(rrset.ttl, rrsigs.ttl)
        try:
            value = entry.pack_rrset(rrset, rrsigs,
                                     inception=int(cache.clock() if inception is None else inception),
                                     ttl=cache.clamp_ttl(ttl), rank=int(rank))
        except EntryError as exc:
            log.debug("not caching %s %s: %s", rrset.name, rtype, exc)
            return
        self._ops.append(_positive_op(k, value, int(rank)))

    def stash_value(self, k: bytes, value: bytes, rank: int) -> None:
        """Stash a positive entry already packed (entry.pack_rdatas) under its
        `E` key (native.cache_key): what stash_rrset does once it has the
        bytes (workers/fastmiss.py stashes straight from reply bytes)."""
        self._ops.append(_positive_op(k, value, int(rank)))

    def stash_negative(self, name: dns.name.Name, rtype: int, kind: str,
                       soa: dns.rrset.RRset, authority: list[dns.rrset.RRset] | tuple,
                       rank: int) -> None:
        """Stash NXDOMAIN (any type) or NODATA for (name, rtype), RFC 2308 TTL."""
        cache = self._cache
        if kind == NXDOMAIN:
            k, rivals, rtype = _key(name, TAG_NXDOMAIN, 0), (), 0
        elif kind == NODATA:
            k, rivals = _key(name, TAG_NODATA, rtype), (_key(name, TAG_RRSET, rtype),)
        else:
            raise ValueError(f"kind must be {NXDOMAIN!r} or {NODATA!r}, not {kind!r}")
        if k is None:
            return
        if soa is None and kind == NODATA and not authority:
            ttl = 0  # NODATA without SOA: cached for min_ttl only (kresd 6 iter_nottl)
        elif soa is None or len(soa) == 0 or soa.rdtype != dns.rdatatype.SOA:
            return
        else:
            authority = list(authority or ())
            ttl = min([soa.ttl, soa[0].minimum] + [rs.ttl for rs in authority])
        try:
            value = entry.pack_negative(rtype, soa, authority, inception=int(cache.clock()),
                                        ttl=cache.clamp_ttl(ttl), rank=int(rank))
        except EntryError as exc:
            log.debug("not caching negative %s %s: %s", name, rtype, exc)
            return
        self._ops.append(_Stash(k, value, int(rank), rivals, ()))

    def stash_nsec(self, zone: dns.name.Name, rrset: dns.rrset.RRset, rank: int,
                   rrsigs: dns.rrset.RRset | None = None, soa_minimum: int | None = None,
                   inception: int | None = None) -> None:
        """Stash an NSEC/NSEC3 RRset of `zone` into the index (cache/nsec.py keys).
        TTL = min(rrset, rrsigs, SOA MINIMUM) (RFC 8198 5.4), then clamped;
        `inception` as in stash_rrset."""
        cache = self._cache
        rtype = int(rrset.rdtype)
        if rtype not in (dns.rdatatype.NSEC, dns.rdatatype.NSEC3):
            raise ValueError(f"not an NSEC or NSEC3 RRset: {rtype}")
        if len(rrset) == 0 or not rrset.name.is_subdomain(zone):
            return
        try:
            if rtype == dns.rdatatype.NSEC:
                k = _nsec.nsec_key(zone, rrset.name)
            elif rrset.name == zone or rrset.name.parent() != zone:
                return  # an NSEC3 owner is one hash label above the zone
            else:
                k = _nsec.nsec3_key(zone, _nsec.Nsec3Params.of(rrset[0]),
                                    _nsec.hash_of_owner(rrset.name))
        except (ValueError, TypeError) as exc:  # bad base32hex owner, long salt
            log.debug("not indexing %s: %s", rrset.name, exc)
            return
        if k is None:
            return
        ttls = [rrset.ttl]
        if rrsigs is not None and len(rrsigs):
            ttls.append(rrsigs.ttl)
        if soa_minimum is not None:
            ttls.append(int(soa_minimum))
        try:
            value = entry.pack_rrset(rrset, rrsigs,
                                     inception=int(cache.clock() if inception is None else inception),
                                     ttl=cache.clamp_ttl(min(ttls)), rank=int(rank))
        except EntryError as exc:
            log.debug("not indexing %s: %s", rrset.name, exc)
            return
        self._ops.append(_Stash(k, value, int(rank), (), ()))

    def commit(self) -> None:
        if self._done:
            return
        self._done = True
        ops, self._ops = self._ops, []
        if ops:
            self._cache._apply(ops)


class Cache:
    """The shared LMDB cache of one process (see the module docstring)."""

    def __init__(self, path: str, size: int, *, min_ttl: int = DEFAULT_MIN_TTL,
                 max_ttl: int = DEFAULT_MAX_TTL, clock: Callable[[], float] = time.time):
        self.path = path
        self.size = int(size)
        self.clock = clock
        self.min_ttl = min_ttl
        self.max_ttl = max_ttl
        self.evict_threshold = EVICT_THRESHOLD
        self._env = CacheEnv(path, self.size)
        self.generation = Generation(path)  # bumped by clear(): packet caches of all forks drop theirs
        self._decoded = DecodedMemo()  # RRsets decoded before, checked against the stored bytes
        self._unchecked = 1 << 62  # bytes written since the last pressure() check (check at once)
        self._snapshot: lmdb.Transaction | None = None  # the read txn of an open snapshot()
        self._counters = dict.fromkeys(
            ("hits", "misses", "inserts", "skipped_rank", "deleted", "corrupt", "map_full",
             "evict_runs", "evictions", "clears", "write_errors"), 0)

    # -- settings ---------------------------------------------------------
    @property
    def min_ttl(self) -> int:
        return self._min_ttl

    @min_ttl.setter
    def min_ttl(self, value: int) -> None:
        self._min_ttl = self._check_ttl(value)

    @property
    def max_ttl(self) -> int:
        return self._max_ttl

    @max_ttl.setter
    def max_ttl(self, value: int) -> None:
        self._max_ttl = self._check_ttl(value)

    @staticmethod
    def _check_ttl(value: int) -> int:
        value = int(value)
        if not 0 <= value <= _MAX_TTL_LIMIT:
            raise ValueError(f"TTL limit out of range: {value}")
        return value

    def clamp_ttl(self, ttl: int) -> int:
        """kresd order: raise to min_ttl, then cap at max_ttl."""
        return min(max(int(ttl), self._min_ttl), self._max_ttl)

    # -- lifecycle --------------------------------------------------------
    def open(self) -> None:
        self._env.open()
        self.generation.open()
        if self._env.cleared_at_open:
            log.info("cache format version changed, cleared %s", self.path)

    def close(self) -> None:
        self._env.close()
        self.generation.close()

    @property
    def is_open(self) -> bool:
        return self._env.is_open

    def __enter__(self) -> Cache:
        self.open()
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # -- reads ------------------------------------------------------------
    def _get(self, k: bytes | None) -> bytes | None:
        if k is None:
            return None
        txn = self._snapshot
        if txn is not None:
            return txn.get(k)
        with self._env.begin() as txn:
            return txn.get(k)

    def snapshot(self) -> "_Snapshot":
        """`with cache.snapshot():` the peeks inside share one read
        transaction (one consistent view, one begin/abort) instead of one
        each. Only for synchronous code: never held across an await."""
        return _Snapshot(self)

    def peek_raw(self, k: bytes) -> bytes | None:
        """The stored value bytes for a key (for the native fast path), or None."""
        return self._get(k)

    def peek_rrset(self, name: dns.name.Name, rtype: int, stale: int = 0) -> CachedRRset | None:
        """`stale` > 0 (serve_stale): also an entry expired at most that many
        seconds ago, with TTL STALE_TTL."""
        k = _key(name, TAG_RRSET, rtype)
        value = self._get(k)
        if value is not None:
            try:
                hdr = entry.unpack_header(value)
                remaining = _stale(hdr.remaining(self.clock()), stale)
                if remaining > 0 and hdr.rtype == int(rtype):
                    rrset, sigs = self._decoded.rrset(k, value, name, remaining)
                    self._counters["hits"] += 1
                    return CachedRRset(rrset, _rank(hdr.rank), sigs, remaining, hdr.ttl)
            except EntryError:
                self._counters["corrupt"] += 1
        self._counters["misses"] += 1
        return None

    def peek_negative(self, name: dns.name.Name, rtype: int, stale: int = 0) -> CachedNegative | None:
        now = self.clock()
        for kind, k in ((NXDOMAIN, _key(name, TAG_NXDOMAIN, 0)),
                        (NODATA, _key(name, TAG_NODATA, rtype))):
            value = self._get(k)
            if value is None:
                continue
            try:
                hdr = entry.unpack_header(value)
                remaining = _stale(hdr.remaining(now), stale)
                if remaining <= 0 or hdr.rtype != (0 if kind == NXDOMAIN else int(rtype)):
                    continue
                _, soa, auth = entry.unpack_negative(value, remaining)
            except EntryError:
                self._counters["corrupt"] += 1
                continue
            self._counters["hits"] += 1
            return CachedNegative(kind, soa, auth, Rank(hdr.rank), remaining)
        self._counters["misses"] += 1
        return None

    # -- NSEC/NSEC3 index (RFC 8198) ---------------------------------------
    def _nsec_hit(self, found, rtype: int, exact_owner) -> CachedNSEC | None:
        if found is None:
            self._counters["misses"] += 1
            return None
        owner, value = found
        try:
            hdr = entry.unpack_header(value)
            remaining = hdr.remaining(self.clock())
            if remaining > 0 and hdr.rtype == rtype:
                _, rrset, sigs = entry.unpack_rrset(value, owner, remaining)
                self._counters["hits"] += 1
                return CachedNSEC(rrset, sigs, Rank(hdr.rank), remaining, owner == exact_owner)
        except EntryError:
            self._counters["corrupt"] += 1
        self._counters["misses"] += 1
        return None

    def peek_nsec(self, zone: dns.name.Name, name: dns.name.Name) -> CachedNSEC | None:
        """The NSEC of `zone` at `name` or its closest predecessor (see the contract)."""
        if not name.is_subdomain(zone):
            return None
        with self._env.begin() as txn:
            found = _nsec.find_nsec(txn, zone, name)
            return self._nsec_hit(found, dns.rdatatype.NSEC, name)

    def peek_nsec3(self, zone: dns.name.Name, params: _nsec.Nsec3Params,
                   raw_hash: bytes) -> CachedNSEC | None:
        """The NSEC3 of `zone` matching `raw_hash` or its closest predecessor (wrapping)."""
        with self._env.begin() as txn:
            found = _nsec.find_nsec3(txn, zone, params, raw_hash)
            return self._nsec_hit(found, dns.rdatatype.NSEC3,
                                  _nsec.owner_of_hash(zone, raw_hash))

    def nsec3_params(self, zone: dns.name.Name) -> list[_nsec.Nsec3Params]:
        with self._env.begin() as txn:
            return _nsec.nsec3_params(txn, zone)

    # -- writes -----------------------------------------------------------
    def writer(self) -> Writer:
        self._env.require()
        return Writer(self)

    @staticmethod
    def _fresh_rank(value: bytes | None, now: float) -> int | None:
        """Rank of a fresh entry (value), or None (absent, expired or corrupt)."""
        if value is None:
            return None
        try:
            hdr: Header = entry.unpack_header(value)
        except EntryError:
            return None
        return hdr.rank if hdr.remaining(now) > 0 else None

    def _apply_one(self, txn: lmdb.Transaction, op: _Stash, now: float) -> bool:
        mine = self._fresh_rank(txn.get(op.key), now)
        if mine is not None and mine > op.rank:
            return False
        rivals = [(k, txn.get(k)) for k in op.rivals if k is not None]
        for _k, v in rivals:
            r = self._fresh_rank(v, now)
            if r is not None and r > op.rank:
                return False
        txn.put(op.key, op.value)
        for k, v in rivals:
            if v is not None:  # (absent: nothing to delete)
                txn.delete(k)
        for k in op.weaker:
            if k is not None:
                v = txn.get(k)
                if v is not None and (self._fresh_rank(v, now) or 0) <= op.rank:
                    txn.delete(k)
        return True

    def _write_txn(self, ops: list[_Stash]) -> tuple[int, int]:
        now = self.clock()
        inserted = skipped = 0
        with self._env.begin(write=True) as txn:
            for op in ops:
                if self._apply_one(txn, op, now):
                    inserted += 1
                else:
                    skipped += 1
        return inserted, skipped

    def _apply(self, ops: list[_Stash]) -> None:
        """Write ops in one txn; on a full map evict progressively and retry.

        While a reader of another process pins pages (see
        CacheEnv.pinned_by_readers), a full map says nothing about the entries:
        evicting live ones would not make those pages usable before that
        reader ends. Then only expired entries go, and if that is not enough
        this write is dropped; the others' entries are not thrown away for a
        reader that is about to finish."""
        self._unchecked += sum(len(op.key) + len(op.value) for op in ops)
        if self._unchecked >= max(PRESSURE_CHECK_MIN, self.size // PRESSURE_CHECK_PARTS):
            # the live pages can not have grown by much more than what this
            # process wrote since it looked (each process checks its own writes)
            self._unchecked = 0
            if self.pressure() > self._limit():
                self._relieve()
        stages = (None, self._evict_expired, self._evict_oldest, self._evict_all)
        for stage in stages:
            if stage in (self._evict_oldest, self._evict_all) and self._env.pinned_by_readers():
                self._counters["write_errors"] += 1
                log.info("cache write dropped: map full of pages pinned by another process's reader")
                return
            if stage is not None:
                self._counters["evict_runs"] += 1
                stage()
            try:
                inserted, skipped = self._write_txn(ops)
            except lmdb.MapFullError:
                self._counters["map_full"] += 1
                continue
            except lmdb.Error as exc:
                self._counters["write_errors"] += 1
                log.warning("cache write failed: %s", exc)
                return
            self._counters["inserts"] += inserted
            self._counters["skipped_rank"] += skipped
            return
        self._counters["write_errors"] += 1  # larger than the whole map: dropped
        log.warning("cache write dropped: does not fit even into an empty map")

    # -- eviction (also used by cache/gc.py) ------------------------------
    def pressure(self) -> float:
        """Fraction of the map held by live pages (entries + metadata).

        LMDB needs free pages even to delete (copy-on-write), so waiting for
        MapFullError would leave nothing to evict with; the writer therefore
        evicts when this passes `evict_threshold`, and MapFullError stays the
        fallback."""
        env = self._env.require()
        with self._env.begin() as txn:
            a = txn.stat(self._env.db)
            b = txn.stat(self._env.meta)
        pages = sum(st["branch_pages"] + st["leaf_pages"] + st["overflow_pages"] for st in (a, b))
        return (pages + 4) * a["psize"] / env.info()["map_size"]

    def _relieve(self) -> None:
        """Expired entries first; if still above the threshold, the soonest expiring."""
        self._counters["evict_runs"] += 1
        self._evict_expired()
        p = self.pressure()
        if p > self._limit():
            target = self._limit() - EVICT_HYSTERESIS
            self._evict_oldest(min(1.0, max(0.1, (p - target) / p)))

    def _limit(self) -> float:
        """evict_threshold, lowered so that at least MIN_HEADROOM_PAGES stay free."""
        pages = self._env.require().info()["map_size"] // self._env.page_size()
        return max(0.2, min(self.evict_threshold, 1.0 - MIN_HEADROOM_PAGES / max(pages, 1)))

    def delete_keys(self, keys: list[bytes]) -> int:
        """Delete keys in one txn; 0 if even that does not fit into the map.

        Keys picked by expired_keys()/soonest_expiring_keys() come from an
        earlier read snapshot: such a key is deleted only if its entry still
        has the header seen then, so an entry another process stashed under
        the key in between (fresh data) survives."""
        if not keys:
            return 0
        seen = keys.headers if isinstance(keys, _Picked) else None
        try:
            with self._env.begin(write=True) as txn:
                n = 0
                for k in keys:
                    if seen is not None:
                        v = txn.get(k)
                        if v is None or v[:_HDR] != seen[k]:
                            continue
                    n += bool(txn.delete(k))
        except lmdb.MapFullError:
            return 0
        self._counters["evictions"] += n
        return n

    def expired_keys(self, now: float | None = None) -> list[bytes]:
        """Keys of expired or corrupted entries."""
        now = self.clock() if now is None else now
        out = _Picked()
        with self._env.begin() as txn:
            for k, v in txn.cursor():
                try:
                    if entry.unpack_header(v).remaining(now) <= 0:
                        out.add(k, v)
                except EntryError:
                    out.add(k, v)
        return out

    def soonest_expiring_keys(self, fraction: float) -> list[bytes]:
        """The `fraction` of all keys whose entries expire first (inception + ttl):
        long-lived data (NS, DS, DNSKEY) survives, just-stashed short data goes."""
        items = []
        with self._env.begin() as txn:
            for k, v in txn.cursor():
                try:
                    hdr = entry.unpack_header(v)
                    items.append((hdr.inception + hdr.ttl, k, v[:_HDR]))
                except EntryError:
                    items.append((-1, k, v[:_HDR]))
        items.sort()
        out = _Picked()
        for _, k, head in items[: max(1, int(len(items) * fraction))] if items else ():
            out.add(k, head)
        return out

    def _evict_expired(self) -> int:
        self._env.reader_check()
        return self.delete_keys(self.expired_keys())

    def _evict_oldest(self, fraction: float = 0.5) -> int:
        return self.delete_keys(self.soonest_expiring_keys(fraction))

    def _evict_all(self) -> int:
        try:
            n = self.clear()
        except lmdb.MapFullError:
            return 0
        self._counters["evictions"] += n
        return n

    # -- maintenance ------------------------------------------------------
    def clear(self, name: dns.name.Name | None = None, subtree: bool = False) -> int:
        """Remove everything, one name's entries, or a whole subtree; count removed."""
        self._counters["clears"] += 1
        try:
            return self._clear(name, subtree)
        finally:
            self.generation.bump()

    def _clear(self, name: dns.name.Name | None, subtree: bool) -> int:
        with self._env.begin(write=True) as txn:
            if name is None:
                n = txn.stat(self._env.db)["entries"]
                txn.drop(self._env.db, delete=False)
                self._counters["deleted"] += n
                return n
            if subtree:
                lo = subtree_prefix(name)
                inside = lambda k: k.startswith(lo)  # noqa: E731
                match = inside
            else:
                prefix = exact_prefix(name)
                lo = prefix + b"A"  # the TAG byte follows; child labels never start A-Z
                inside = lambda k: k.startswith(prefix) and k[len(prefix)] <= 0x5A  # noqa: E731
                match = lambda k: _is_exact_key(k, prefix)  # noqa: E731
            n = 0
            cur = txn.cursor()
            if not cur.set_range(lo):
                return 0
            while True:
                k = cur.key()
                if not k or not inside(k):
                    break
                if match(k):
                    if not cur.delete():  # moves to the next record
                        break
                    n += 1
                elif not cur.next():
                    break
        self._counters["deleted"] += n
        return n

    def count(self) -> int:
        with self._env.begin() as txn:
            return txn.stat(self._env.db)["entries"]

    def stats(self) -> dict:
        out: dict = dict(self._counters)
        if self._env.is_open:
            out.update(self._env.usage())
            with self._env.begin() as txn:
                st = txn.stat(self._env.db)
            out["entries"] = st["entries"]
            out["used_bytes"] = (st["branch_pages"] + st["leaf_pages"]
                                 + st["overflow_pages"]) * st["psize"]
        return out
