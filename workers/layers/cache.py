"""Cache layer: answer from the cache, and stash what iteration learnt.

Owns: turning cache entries into a `Result` for (name, type), finding the
closest cached zone cut, and writing records with the right rank (kresd
lib/layer/cache.c; ranks as lib/cache/api.h).
Must not: decide what an upstream reply means (iterate does) or do I/O
beyond the cache itself.
"""
from __future__ import annotations

import dns.name
import dns.rdatatype as T
import dns.rrset

from cache.api import Rank, is_usable_rank

from ..dnssec import Status
from ..request import Outcome, Result
from ..zonecut import ZoneCut

ANSWER_RANK = Rank.INITIAL | Rank.AUTH  # authoritative, not validated (yet)
NONAUTH_RANK = Rank.TRY
SECURE_RANK = Rank.AUTH | Rank.SECURE
INSECURE_RANK = Rank.AUTH | Rank.INSECURE


def peek(cache, name: dns.name.Name, rtype: int, nonauth: bool = False,
         min_rank: int = 0, stale: int = 0) -> Result | None:
    """A cached answer for exactly (name, rtype), or a CNAME to follow.

    min_rank: kresd get_lowest_rank(): INSECURE|AUTH where a trust anchor
    covers the name and the client wants validated data (so unvalidated
    records are not served), else 0. The Result carries the RRSIGs after
    each RRset and the DNSSEC status its rank records.
    """
    if cache is None:
        return None
    with cache.snapshot():  # the lookups below in one read transaction
        return _peek(cache, name, rtype, nonauth, min_rank, stale)


def _peek(cache, name: dns.name.Name, rtype: int, nonauth: bool, min_rank: int,
          stale: int = 0) -> Result | None:
    def ok(rank):
        return is_usable_rank(rank, nonauth) and int(rank) >= min_rank

    hit = cache.peek_rrset(name, rtype, stale) if stale else cache.peek_rrset(name, rtype)
    if hit is not None and ok(hit.rank):
        return Result(Outcome.ANSWER, _with_sigs(hit), status=rank_status(hit.rank),
                      expiring=is_expiring(getattr(hit, "orig_ttl", 0), hit.ttl))
    if rtype != T.CNAME:
        hit = cache.peek_rrset(name, T.CNAME, stale) if stale else cache.peek_rrset(name, T.CNAME)
        if hit is not None and ok(hit.rank):
            return Result(Outcome.CNAME, _with_sigs(hit), target=hit.rrset[0].target,
                          status=rank_status(hit.rank),
                          expiring=is_expiring(getattr(hit, "orig_ttl", 0), hit.ttl))
    neg = cache.peek_negative(name, rtype, stale) if stale else cache.peek_negative(name, rtype)
    if neg is not None and ok(neg.rank):
        kind = Outcome.NXDOMAIN if neg.kind == "NXDOMAIN" else Outcome.NODATA
        soa = [neg.soa] if neg.soa is not None else []
        return Result(kind, [], soa + list(neg.authority), status=rank_status(neg.rank))
    return None


def is_expiring(orig_ttl: int, ttl: int) -> bool:
    """kresd lib/cache is_expiring(): the remaining TTL is within 5 s + 1 % of the original."""
    return orig_ttl > 0 and 100 * (ttl - 5) < orig_ttl


def _with_sigs(hit) -> list:
    if hit.rrsigs is not None and len(hit.rrsigs):
        return [hit.rrset, hit.rrsigs]
    return [hit.rrset]


def rank_status(rank: int) -> Status:
    """The DNSSEC status a cache rank records (kresd kr_rank)."""
    rank = int(rank)
    if rank & Rank.SECURE:
        return Status.SECURE
    if rank & ~(Rank.AUTH | Rank.SECURE) == Rank.INSECURE:
        return Status.INSECURE
    return Status.INDETERMINATE


def peek_addresses(cache, name: dns.name.Name, want4: bool, want6: bool, auth: list | None = None) -> list[str]:
    """Addresses of a nameserver, glue included. `auth` (a list) gets True
    appended when some of them come from an authoritative answer (the child
    zone's own, not glue)."""
    out: list[str] = []
    if cache is None:
        return out
    for rtype, want in ((T.A, want4), (T.AAAA, want6)):
        if not want:
            continue
        hit = cache.peek_rrset(name, rtype)
        if hit is not None:
            out.extend(rd.address for rd in hit.rrset)
            if auth is not None and int(hit.rank) & _AUTH:
                auth.append(True)
    return out


_AUTH = int(Rank.AUTH)


def closest_cut(cache, name: dns.name.Name, want4: bool, want6: bool) -> ZoneCut | None:
    """The deepest cached NS set at or above `name` (root excluded: hints/priming)."""
    if cache is None:
        return None
    with cache.snapshot():  # the walk and the addresses in one read transaction
        return _closest_cut(cache, name, want4, want6)


def _closest_cut(cache, name: dns.name.Name, want4: bool, want6: bool) -> ZoneCut | None:
    n = name
    while len(n.labels) > 1:  # (not the root)
        hit = cache.peek_rrset(n, T.NS)
        if hit is not None:
            cut = ZoneCut(n, from_cache=True)
            auth: list = []
            for rd in hit.rrset:
                cut.ns[rd.target] = peek_addresses(cache, rd.target, want4, want6, auth)
            cut.child_addrs = bool(auth)
            return cut
        n = n.parent()
    hit = cache.peek_rrset(dns.name.root, T.NS)
    if hit is not None:
        cut = ZoneCut(dns.name.root, from_cache=True)
        for rd in hit.rrset:
            cut.ns[rd.target] = peek_addresses(cache, rd.target, want4, want6)
        return cut
    return None


class Stash:
    """Records to write at the end of a consume step, in one transaction."""

    def __init__(self):
        self.rrsets: list[tuple] = []  # (rrset, rank, RRSIG RRset or None)
        self.negative: list[tuple] = []

    def add(self, rrset: dns.rrset.RRset, rank, sigs=None) -> None:
        self.rrsets.append((rrset, rank, sigs))

    def rerank(self, rrset_rank, negative_rank: int | None = None) -> None:
        """Ranks decided after the iterator (the validator): rrset_rank(rrset,
        old rank) -> new rank for each RRset; negative_rank for every negative."""
        self.rrsets = [(rr, rrset_rank(rr, r), s) for rr, r, s in self.rrsets]
        if negative_rank is not None:
            self.negative = [(*neg[:5], negative_rank) for neg in self.negative]

    def add_negative(self, name, rtype, kind: str, soa, authority, rank) -> None:
        self.negative.append((name, rtype, kind, soa, authority, rank))

    def commit(self, cache) -> None:
        if cache is None or not (self.rrsets or self.negative):
            return
        with cache.writer() as w:
            for rrset, rank, sigs in self.rrsets:
                w.stash_rrset(rrset, rank, sigs)
            for name, rtype, kind, soa, auth, rank in self.negative:
                w.stash_negative(name, rtype, kind, soa, auth, rank)
