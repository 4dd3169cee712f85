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

from ..request import Outcome, Result
from ..zonecut import ZoneCut

ANSWER_RANK = Rank.INITIAL | Rank.AUTH
NONAUTH_RANK = Rank.TRY


def peek(cache, name: dns.name.Name, rtype: int, nonauth: bool = False) -> Result | None:
    """A cached answer for exactly (name, rtype), or a CNAME to follow."""
    if cache is None:
        return None
    hit = cache.peek_rrset(name, rtype)
    if hit is not None and is_usable_rank(hit.rank, nonauth):
        return Result(Outcome.ANSWER, [hit.rrset])
    if rtype != T.CNAME:
        hit = cache.peek_rrset(name, T.CNAME)
        if hit is not None and is_usable_rank(hit.rank, nonauth):
            return Result(Outcome.CNAME, [hit.rrset], target=hit.rrset[0].target)
    neg = cache.peek_negative(name, rtype)
    if neg is not None and is_usable_rank(neg.rank, nonauth):
        kind = Outcome.NXDOMAIN if neg.kind == "NXDOMAIN" else Outcome.NODATA
        soa = [neg.soa] if neg.soa is not None else []
        return Result(kind, [], soa + list(neg.authority))
    return None


def peek_addresses(cache, name: dns.name.Name, want4: bool, want6: bool) -> list[str]:
    """Addresses of a nameserver, glue included."""
    out: list[str] = []
    if cache is None:
        return out
    for rtype, want in ((T.A, want4), (T.AAAA, want6)):
        if not want:
            continue
        hit = cache.peek_rrset(name, rtype)
        if hit is not None:
            out.extend(rd.address for rd in hit.rrset)
    return out


def closest_cut(cache, name: dns.name.Name, want4: bool, want6: bool) -> ZoneCut | None:
    """The deepest cached NS set at or above `name` (root excluded: hints/priming)."""
    if cache is None:
        return None
    n = name
    while n != dns.name.root:
        hit = cache.peek_rrset(n, T.NS)
        if hit is not None:
            cut = ZoneCut(n, from_cache=True)
            for rd in hit.rrset:
                cut.ns[rd.target] = peek_addresses(cache, rd.target, want4, want6)
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
        self.rrsets: list[tuple[dns.rrset.RRset, int]] = []
        self.negative: list[tuple] = []

    def add(self, rrset: dns.rrset.RRset, rank) -> None:
        self.rrsets.append((rrset, rank))

    def add_negative(self, name, rtype, kind: str, soa, authority, rank) -> None:
        self.negative.append((name, rtype, kind, soa, authority, rank))

    def commit(self, cache) -> None:
        if cache is None or not (self.rrsets or self.negative):
            return
        with cache.writer() as w:
            for rrset, rank in self.rrsets:
                w.stash_rrset(rrset, rank)
            for name, rtype, kind, soa, auth, rank in self.negative:
                w.stash_negative(name, rtype, kind, soa, auth, rank)
