"""Aggressive use of validated NSEC/NSEC3 from the cache (RFC 8198), as kresd 5.6 does.

Owns: what the validator remembers of a secure zone's denials (`remember`:
NSEC/NSEC3 RRsets into the cache's index, the zone's SOA; `remember_wildcard`:
a secure wildcard expansion under its wildcard owner, as kresd stashes it), and
answering from them (`synthesize`): a secure NXDOMAIN or NODATA, or a wildcard
answer, for a name the cache has no entry for, built from the cached records
around it (kresd lib/cache/peek.c with nsec1.c and nsec3.c). Which records to
fetch follows from the names (the closest predecessor, the closest encloser,
the wildcard); whether they prove anything is decided by workers/dnssec/nsec.py
and nsec3.py, the same proofs the validator applies to upstream replies.
Must not: prove denials itself, synthesise from anything below SECURE rank, from
opt-out NSEC3, from NSEC3 kresd does not check (iterations above the limit,
unknown hash), or across a delegation (an NSEC at a zone cut of the parent says
nothing about the child's names); send anything.
"""
from __future__ import annotations

import base64
import logging

import dns.dnssec
import dns.name
import dns.rdatatype as T
import dns.rrset

from cache.api import Rank
from cache.nsec import Nsec3Params, hash_of_owner

from ..dnssec import NSEC3_MAX_ITERATIONS, Status
from ..request import Outcome, Result

log = logging.getLogger("kresd.cache")

SECURE_RANK = Rank.AUTH | Rank.SECURE
NSEC3_SHA1 = 1
MAX_CE_WALK = 32  # hash computations for the closest encloser of one name (each <= 150 iterations)


# -- remembering -----------------------------------------------------------------

def remember(cache, zone: dns.name.Name, rrsets, sigs_for, soa_minimum: int | None, *,
             soa: dns.rrset.RRset | None = None, soa_sigs: dns.rrset.RRset | None = None) -> None:
    """Index the NSEC/NSEC3 RRsets of `zone` whose signatures the validator verified.
    soa (with soa_sigs), when given, is the zone's verified SOA: stashed SECURE, it
    is what synthesised negative answers carry."""
    if cache is None:
        return
    try:
        with cache.writer() as w:
            for rr in rrsets:
                if rr.rdtype == T.NSEC3 and not _checkable(Nsec3Params.of(rr[0])):
                    continue
                if rr.rdtype in (T.NSEC, T.NSEC3):
                    sigs = sigs_for(rr)
                    w.stash_nsec(zone, rr, SECURE_RANK, sigs, _cap(soa_minimum, sigs, cache.clock()))
            if soa is not None and soa.rdtype == T.SOA and soa.name == zone:
                w.stash_rrset(soa, SECURE_RANK, soa_sigs)
    except Exception as exc:  # the cache is an optimisation: never fail the request on it
        log.warning("[cache] NSEC stash failed: %s", exc)


def _cap(soa_minimum, sigs, now) -> int | None:
    """The TTL cap of a remembered record: SOA MINIMUM and its RRSIGs' expiry."""
    caps = [] if soa_minimum is None else [int(soa_minimum)]
    for rd in sigs or ():
        left = (rd.expiration - int(now)) & 0xFFFFFFFF
        caps.append(left if left < 0x80000000 else 0)
    return min(caps) if caps else None


def remember_wildcard(cache, rrset: dns.rrset.RRset, sigs: dns.rrset.RRset | None, labels: int) -> None:
    """Stash a secure wildcard expansion (RRSIG labels < owner labels) under its
    wildcard owner, so other names it covers can be answered from the cache."""
    if cache is None or sigs is None:
        return
    keep = labels + 1  # the root label is not counted in RRSIG labels
    if keep >= len(rrset.name.labels):
        return
    wild = dns.name.Name((b"*",) + rrset.name.labels[-keep:])
    try:
        with cache.writer() as w:
            w.stash_rrset(_renamed(rrset, wild), SECURE_RANK, _renamed(sigs, wild))
    except Exception as exc:
        log.warning("[cache] wildcard stash failed: %s", exc)


# -- synthesising ----------------------------------------------------------------

def synthesize(cache, zone: dns.name.Name | None, qname: dns.name.Name, qtype: int,
               now: float) -> Result | None:
    """A secure answer for (qname, qtype) from cached NSEC/NSEC3 of `zone`, or None.

    NXDOMAIN/NODATA carry [SOA, RRSIG SOA, NSEC*, RRSIG...] in authority; a
    wildcard expansion comes back as ANSWER (or CNAME) with the covering
    NSEC/NSEC3. zone None: the deepest enclosing zone whose DNSKEY the cache
    holds (for DS, above qname), which must be SECURE."""
    if cache is None:
        return None
    try:
        if zone is None:
            zone = _zone_of(cache, qname, qtype)
            if zone is None:
                return None
        if not qname.is_subdomain(zone) or (qtype == T.DS and qname == zone):
            return None
        res = _from_nsec(cache, zone, qname, qtype, now)
        if res is None:
            res = _from_nsec3(cache, zone, qname, qtype, now)
        return res
    except ImportError:
        return None  # the proof modules are not there: nothing can be proven
    except Exception as exc:  # a corrupt or surprising record: a miss, never a crash
        log.debug("aggressive cache: %s %s: %r", qname, T.to_text(qtype), exc)
        return None


def _zone_of(cache, qname, qtype):
    """The deepest zone at or above the name (for DS: above it) that the cache
    knows: its DNSKEY, which the validator caches SECURE once it checked it. A
    cut whose keys are not cached SECURE (unsigned, or not validated yet)
    stops the walk: the parent's denials say nothing about names below it."""
    name = qname.parent() if qtype == T.DS and qname != dns.name.root else qname
    while True:
        keys = cache.peek_rrset(name, T.DNSKEY)
        if keys is not None:
            return name if _secure(keys.rank) else None
        if name != qname and cache.peek_rrset(name, T.NS) is not None:
            return None
        if name == dns.name.root:
            return None
        name = name.parent()


def _secure(rank) -> bool:
    return bool(int(rank) & Rank.SECURE) and bool(int(rank) & Rank.AUTH)


def _fresh(hit, now) -> bool:
    """SECURE, and every RRSIG still valid at `now` (TTLs were capped at stash time)."""
    if hit is None or not _secure(hit.rank) or hit.rrsigs is None:
        return False
    t = int(now)
    return all(((rd.expiration - t) & 0xFFFFFFFF) < 0x80000000 for rd in hit.rrsigs)


def _types(rd) -> set[int]:
    out = set()
    for window, bitmap in rd.windows:
        for i, byte in enumerate(bitmap):
            for bit in range(8):
                if byte & (0x80 >> bit):
                    out.add(window * 256 + i * 8 + bit)
    return out


def _delegation(types: set[int]) -> bool:
    return T.NS in types and T.SOA not in types


def _renamed(rrset: dns.rrset.RRset, owner: dns.name.Name) -> dns.rrset.RRset:
    out = dns.rrset.from_rdata_list(owner, rrset.ttl, list(rrset))
    return out


def _common(a: dns.name.Name, b: dns.name.Name) -> dns.name.Name:
    _relation, _order, nlabels = a.fullcompare(b)
    return dns.name.Name(a.labels[len(a.labels) - nlabels:]) if nlabels else dns.name.root


def _soa(cache, zone, now):
    hit = cache.peek_rrset(zone, T.SOA)
    return hit if _fresh(hit, now) else None


def _authority(soa_hit, proofs) -> list:
    out = []
    if soa_hit is not None:
        out += [soa_hit.rrset, soa_hit.rrsigs]
    seen = set()
    for hit in proofs:
        k = (hit.rrset.name, hit.rrset.rdtype)
        if k in seen:
            continue
        seen.add(k)
        out += [hit.rrset, hit.rrsigs]
    return out


def _negative(cache, zone, now, outcome, proofs, prove) -> Result | None:
    soa = _soa(cache, zone, now)
    if soa is None:
        return None
    p = prove([h.rrset for h in proofs])
    if p.status is not Status.SECURE:
        return None
    return Result(outcome, [], _authority(soa, proofs), status=Status.SECURE)


def _wildcard_answer(cache, zone, qname, qtype, wild, proofs, mod, now) -> Result | None:
    """The expansion of cached secure data at `wild` for qname, or None."""
    for rtype in (qtype, T.CNAME) if qtype != T.CNAME else (qtype,):
        hit = cache.peek_rrset(wild, rtype)
        if not _fresh(hit, now):
            continue
        labels = len(wild.labels) - 2  # RRSIG labels of an expansion of *.<ce>
        p = mod.wildcard_answer(qname, labels, zone, [h.rrset for h in proofs])
        if p.status is not Status.SECURE:
            return None
        rr, sigs = _renamed(hit.rrset, qname), _renamed(hit.rrsigs, qname)
        if rtype == T.CNAME and qtype != T.CNAME:
            return Result(Outcome.CNAME, [rr, sigs], _authority(None, proofs), target=rr[0].target,
                          status=Status.SECURE)
        return Result(Outcome.ANSWER, [rr, sigs], _authority(None, proofs), status=Status.SECURE)
    return None


def _covers(hit, name) -> bool:
    """Whether a cached (non-matching) NSEC covers the name: it lies before the
    next owner, or the record is the zone's last (its next is the apex)."""
    owner, nxt = hit.rrset.name, hit.rrset[0].next
    return name < nxt or nxt <= owner


def _from_nsec(cache, zone, qname, qtype, now) -> Result | None:
    from ..dnssec import nsec as mod
    hit = cache.peek_nsec(zone, qname)
    if not _fresh(hit, now):
        return None
    types = _types(hit.rrset[0])
    if hit.exact:
        if qtype in types or T.CNAME in types:
            return None  # the data exists (and is not cached)
        if _delegation(types) and qtype != T.DS:
            return None  # the parent's NSEC at a cut: the child has the answer
        return _negative(cache, zone, now, Outcome.NODATA, [hit],
                         lambda rrs: mod.nodata(qname, qtype, zone, rrs))
    owner, nxt = hit.rrset.name, hit.rrset[0].next
    if not _covers(hit, qname):
        return None  # a gap in the cached chain
    if qname.is_subdomain(owner) and (_delegation(types) or T.DNAME in types):
        return None  # below a cut or a DNAME: not this zone's name
    ce = max(_common(qname, owner), _common(qname, nxt), key=lambda n: len(n.labels))
    if not ce.is_subdomain(zone):
        return None
    wild = dns.name.Name((b"*",) + ce.labels)
    res = _wildcard_answer(cache, zone, qname, qtype, wild, [hit], mod, now)
    if res is not None:
        return res
    whit = cache.peek_nsec(zone, wild)
    if not _fresh(whit, now) or not (whit.exact or _covers(whit, wild)):
        return None
    if whit.exact:
        wtypes = _types(whit.rrset[0])
        if qtype in wtypes or T.CNAME in wtypes:
            return None  # the wildcard has the data (not cached)
        return _negative(cache, zone, now, Outcome.NODATA, [hit, whit],
                         lambda rrs: mod.nodata(qname, qtype, zone, rrs))
    return _negative(cache, zone, now, Outcome.NXDOMAIN, [hit, whit],
                     lambda rrs: mod.nxdomain(qname, zone, rrs))


def _checkable(p: Nsec3Params) -> bool:
    return p.algorithm == NSEC3_SHA1 and p.iterations <= NSEC3_MAX_ITERATIONS


def _hash(name: dns.name.Name, p: Nsec3Params) -> bytes:
    text = dns.dnssec.nsec3_hash(name, p.salt or None, p.iterations, p.algorithm)
    return base64.b32hexdecode(text + "=" * (-len(text) % 8))


def _from_nsec3(cache, zone, qname, qtype, now) -> Result | None:
    for params in cache.nsec3_params(zone):
        if not _checkable(params):
            continue
        res = _from_nsec3_chain(cache, zone, qname, qtype, now, params)
        if res is not None:
            return res
    return None


def _covers3(hit, raw: bytes) -> bool:
    """Whether a cached (non-matching) NSEC3 covers this hash: owner < hash < next, or
    the chain's last record (next <= owner) for hashes past it or before the first."""
    owner, nxt = hash_of_owner(hit.rrset.name), bytes(hit.rrset[0].next)
    return owner < raw < nxt if owner < nxt else (raw > owner or raw < nxt)


def _from_nsec3_chain(cache, zone, qname, qtype, now, params) -> Result | None:
    from ..dnssec import nsec3 as mod

    def find(name):
        raw = _hash(name, params)
        h = cache.peek_nsec3(zone, params, raw)
        if not _fresh(h, now) or not (h.exact or _covers3(h, raw)):
            return None
        return h

    hit = find(qname)
    if hit is not None and hit.exact:
        types = _types(hit.rrset[0])
        if qtype in types or T.CNAME in types:
            return None
        if _delegation(types) and qtype != T.DS:
            return None
        return _negative(cache, zone, now, Outcome.NODATA, [hit],
                         lambda rrs: mod.nodata(qname, qtype, zone, rrs))
    # the closest encloser (kresd nsec3_encloser): walking up from the name, the
    # matched parent of the shallowest covered name (the next closer name)
    cover, nc, ce_hit = hit, (qname if hit is not None else None), None
    name = qname
    for _ in range(MAX_CE_WALK):
        if name == zone:
            break
        name = name.parent()
        h = find(name)
        if h is None:
            continue  # not cached at this depth
        if not h.exact:
            cover, nc = h, name
            continue
        if nc is None or nc.parent() != name:
            return None  # an existing ancestor with no proof below it
        ce_hit = h
        break
    if cover is None or nc is None:
        return None
    if cover.rrset[0].flags & 1:
        return None  # opt-out: proves no secure delegation, not non-existence (RFC 8198 4.5)
    ce = nc.parent()
    wild = dns.name.Name((b"*",) + ce.labels)
    res = _wildcard_answer(cache, zone, qname, qtype, wild, [cover], mod, now)
    if res is not None or ce_hit is None:
        return res  # without the encloser's own NSEC3 only a wildcard answer is possible (as kresd)
    ce_types = _types(ce_hit.rrset[0])
    if _delegation(ce_types) or T.DNAME in ce_types:
        return None
    whit = find(wild)
    if whit is None:
        return None
    if whit.exact:
        wtypes = _types(whit.rrset[0])
        if qtype in wtypes or T.CNAME in wtypes:
            return None
        return _negative(cache, zone, now, Outcome.NODATA, [ce_hit, cover, whit],
                         lambda rrs: mod.nodata(qname, qtype, zone, rrs))
    return _negative(cache, zone, now, Outcome.NXDOMAIN, [ce_hit, cover, whit],
                     lambda rrs: mod.nxdomain(qname, zone, rrs))
