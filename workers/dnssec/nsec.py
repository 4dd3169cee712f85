"""NSEC denial-of-existence proofs (RFC 4035 5.4; kresd lib/dnssec/nsec.c).

Owns: the set logic of NSEC proofs: name error (the name and the wildcard
that could have produced it are covered), no data (matching NSEC without the
type, empty non-terminal, wildcard no data), an insecure delegation (NSEC at
the delegation with NS and without DS/SOA), and the denial behind a wildcard
expansion.
Must not: check signatures (the validator passes only NSEC RRsets whose RRSIGs
verified, with the signer as `zone`) or raise on odd records: a record that
does not fit is ignored, and what is not proven is BOGUS with a reason.
"""
from __future__ import annotations

import dns.name
import dns.rdatatype as T

from . import Proof, Status


def has_type(rd, rtype: int) -> bool:
    """Is rtype in the type bitmap of an NSEC or NSEC3 rdata?"""
    window, bit = rtype >> 8, rtype & 0xFF
    try:
        for win, bitmap in rd.windows:
            if win == window:
                i = bit // 8
                return i < len(bitmap) and bool(bitmap[i] & (0x80 >> (bit % 8)))
    except (AttributeError, TypeError, ValueError):
        return False
    return False


def _records(zone, rrsets):
    """(owner, next, rdata) of the NSEC records inside the zone."""
    out = []
    for rr in rrsets:
        if rr.rdtype != T.NSEC or not rr.name.is_subdomain(zone):
            continue
        for rd in rr:
            try:
                nxt = rd.next
                if isinstance(nxt, dns.name.Name) and nxt.is_absolute():
                    out.append((rr.name, nxt, rd))
            except AttributeError:
                continue
    return out


def _covers(owner, nxt, name) -> bool:
    """owner < name < next in canonical order, the last NSEC wrapping to the apex."""
    if owner < nxt:
        return owner < name < nxt
    return name > owner or name < nxt  # next <= owner: the end of the chain


def _common(a: dns.name.Name, b: dns.name.Name) -> dns.name.Name:
    _, _, n = a.fullcompare(b)
    return dns.name.Name(a.labels[-n:]) if n else dns.name.root


def _closest_encloser(qname, owner, nxt, zone) -> dns.name.Name:
    """RFC 4035 5.4: the longer common ancestor of qname with owner or next."""
    ce = max(_common(qname, owner), _common(qname, nxt), key=lambda n: len(n.labels))
    return ce if ce.is_subdomain(zone) else zone


def _wildcard(ce: dns.name.Name) -> dns.name.Name | None:
    try:
        return dns.name.Name((b"*",) + ce.labels)
    except dns.name.NameTooLong:
        return None


def _delegation_above(owner, rd, qname) -> bool:
    """An NSEC at a delegation (NS, no SOA) or a DNAME above qname proves nothing below it."""
    if owner == qname or not qname.is_subdomain(owner):
        return False
    return (has_type(rd, T.NS) and not has_type(rd, T.SOA)) or has_type(rd, T.DNAME)


def _covering(recs, name):
    for owner, nxt, rd in recs:
        if owner != name and _covers(owner, nxt, name) and not _delegation_above(owner, rd, name):
            return owner, nxt, rd
    return None


def _matching(recs, name):
    for owner, nxt, rd in recs:
        if owner == name:
            return owner, nxt, rd
    return None


def nxdomain(qname, zone, rrsets) -> Proof:
    recs = _records(zone, rrsets)
    if _matching(recs, qname):
        return Proof(Status.BOGUS, f"an NSEC at {qname} says it exists")
    cov = _covering(recs, qname)
    if cov is None:
        return Proof(Status.BOGUS, f"no NSEC covers {qname}")
    if cov[1].is_subdomain(qname):
        return Proof(Status.BOGUS, f"{qname} is an empty non-terminal: it exists")
    ce = _closest_encloser(qname, cov[0], cov[1], zone)
    wc = _wildcard(ce)
    if wc is not None and wc != qname:
        if _matching(recs, wc):
            return Proof(Status.BOGUS, f"the wildcard {wc} exists")
        if _covering(recs, wc) is None:
            return Proof(Status.BOGUS, f"no NSEC denies the wildcard {wc}")
    return Proof(Status.SECURE, closest_encloser=ce)


def nodata_at(rd, qtype, root: bool = False, kind: str = "NSEC") -> str:
    """Why a matching NSEC (or NSEC3) does not prove NODATA for qtype ('' = it does)."""
    if has_type(rd, qtype):
        return "the type exists"
    if has_type(rd, T.CNAME) and qtype != T.CNAME:
        return "a CNAME exists"
    if qtype == T.DS and has_type(rd, T.SOA) and not root:  # the root has no parent side
        return f"the {kind} is the child zone's apex, not the parent side"
    if qtype != T.DS and has_type(rd, T.NS) and not has_type(rd, T.SOA):
        return "the NSEC is a delegation's, from the parent side"
    return ""


def nodata(qname, qtype, zone, rrsets) -> Proof:
    recs = _records(zone, rrsets)
    m = _matching(recs, qname)
    if m is not None:
        why = nodata_at(m[2], qtype, qname == dns.name.root)
        if why:
            return Proof(Status.BOGUS, f"NSEC at {qname}: {why}")
        cut = qtype == T.DS and has_type(m[2], T.NS) and not has_type(m[2], T.SOA)
        return Proof(Status.SECURE, closest_encloser=qname, delegation=cut)
    for owner, nxt, rd in recs:  # empty non-terminal: the next name is below qname
        if _covers(owner, nxt, qname) and nxt != qname and nxt.is_subdomain(qname):
            return Proof(Status.SECURE, closest_encloser=qname)
    cov = _covering(recs, qname)
    if cov is not None:  # wildcard NODATA
        ce = _closest_encloser(qname, cov[0], cov[1], zone)
        wc = _wildcard(ce)
        w = _matching(recs, wc) if wc is not None else None
        if w is not None and not nodata_at(w[2], qtype):
            return Proof(Status.SECURE, closest_encloser=ce)
    return Proof(Status.BOGUS, f"no NSEC proves {qname} has no {T.to_text(qtype)}")


def referral_no_ds(name, zone, rrsets) -> Proof:
    recs = _records(zone, rrsets)
    m = _matching(recs, name)
    if m is None:
        return Proof(Status.BOGUS, f"no NSEC at the delegation {name}")
    rd = m[2]
    if has_type(rd, T.DS):
        return Proof(Status.BOGUS, f"NSEC at {name} lists a DS")
    if has_type(rd, T.SOA) or not has_type(rd, T.NS):
        return Proof(Status.BOGUS, f"NSEC at {name} is no delegation")
    return Proof(Status.SECURE, closest_encloser=name)


def wildcard_answer(qname, labels, zone, rrsets) -> Proof:
    recs = _records(zone, rrsets)
    if _covering(recs, qname) is None:
        return Proof(Status.BOGUS, f"no NSEC proves {qname} does not exist (wildcard answer)")
    ce = dns.name.Name(qname.labels[-(labels + 1):])
    return Proof(Status.SECURE, closest_encloser=ce)
