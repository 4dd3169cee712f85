"""NSEC denial-of-existence proofs (RFC 4035 5.4; kresd lib/dnssec/nsec.c).

Owns: the set logic of NSEC proofs: name error (the name and the wildcard
that could have produced it are covered), no data (matching NSEC without the
type, empty non-terminal, wildcard no data), an insecure delegation (NSEC at
the delegation with NS and without DS/SOA), and the denial behind a wildcard
expansion; plus the type-bitmap helpers (`has_type`, `nodata_at`) that
nsec3.py shares.
Must not: check signatures (the validator passes only NSEC RRsets whose RRSIGs
verified, with the signer as `zone`) or raise on odd records: a record that
does not fit (outside the zone, relative or unparsed rdata) is ignored, and
what is not proven is BOGUS with a reason.
"""
from __future__ import annotations

import dns.name
import dns.rdatatype as T

from . import Proof, Status


def has_type(rd, rtype: int) -> bool:
    """Is rtype in the type bitmap of an NSEC or NSEC3 rdata? (False for garbage.)"""
    window, bit = rtype >> 8, rtype & 0xFF
    try:
        for win, bitmap in rd.windows:
            if win == window:
                i = bit // 8
                return i < len(bitmap) and bool(bitmap[i] & (0x80 >> (bit % 8)))
    except (AttributeError, TypeError, ValueError, IndexError):
        return False
    return False


def _is_delegation(rd) -> bool:
    """The parent side of a zone cut: NS without SOA."""
    return has_type(rd, T.NS) and not has_type(rd, T.SOA)


def _records(zone, rrsets):
    """(owner, next, rdata) of the NSEC records inside the zone; anything odd is skipped."""
    out = []
    for rr in rrsets:
        try:
            if rr.rdtype != T.NSEC or not rr.name.is_subdomain(zone):
                continue
            for rd in rr:
                nxt = getattr(rd, "next", None)
                if isinstance(nxt, dns.name.Name) and nxt.is_absolute():
                    out.append((rr.name, nxt, rd))
        except (AttributeError, TypeError, ValueError):
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
    return _is_delegation(rd) or has_type(rd, T.DNAME)


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


def _outside(name, zone) -> Proof | None:
    if not name.is_subdomain(zone):
        return Proof(Status.BOGUS, f"{name} is not in the zone {zone} that signed the NSEC")
    return None


def nxdomain(qname, zone, rrsets) -> Proof:
    """Name error: qname is covered, is no empty non-terminal, and the wildcard
    at its closest encloser is covered too."""
    if (bad := _outside(qname, zone)) is not None:
        return bad
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
    # the parent side of a cut proves nothing about the child's data (RFC 6840
    # 4.1), except that no CNAME is there (none may stand at an apex; kresd)
    if qtype not in (T.DS, T.CNAME) and _is_delegation(rd):
        return f"the {kind} is a delegation's, from the parent side"
    return ""


def nodata(qname, qtype, zone, rrsets) -> Proof:
    """No data: an NSEC at qname without the type (nor CNAME), qname an empty
    non-terminal, or qname covered and the wildcard at its closest encloser
    without the type. `delegation` says a DS denial shows a zone cut."""
    if (bad := _outside(qname, zone)) is not None:
        return bad
    recs = _records(zone, rrsets)
    m = _matching(recs, qname)
    if m is not None:
        why = nodata_at(m[2], qtype, qname == dns.name.root)
        if why:
            return Proof(Status.BOGUS, f"NSEC at {qname}: {why}")
        cut = qtype == T.DS and _is_delegation(m[2])
        return Proof(Status.SECURE, closest_encloser=qname, delegation=cut)
    for owner, nxt, rd in recs:  # empty non-terminal: the next name is below qname
        if _covers(owner, nxt, qname) and nxt != qname and nxt.is_subdomain(qname) \
                and not _delegation_above(owner, rd, qname):
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
    """An unsigned delegation: the NSEC at `name` has NS, and neither DS nor SOA."""
    if (bad := _outside(name, zone)) is not None:
        return bad
    recs = _records(zone, rrsets)
    m = _matching(recs, name)
    if m is None:
        return Proof(Status.BOGUS, f"no NSEC at the delegation {name}")
    rd = m[2]
    if has_type(rd, T.DS):
        return Proof(Status.BOGUS, f"NSEC at {name} lists a DS")
    if not _is_delegation(rd):
        return Proof(Status.BOGUS, f"NSEC at {name} is no delegation")
    return Proof(Status.SECURE, closest_encloser=name, delegation=True)


def wildcard_encloser(qname, labels, zone):
    """The closest encloser a wildcard expansion claims (the rightmost `labels`
    labels of qname), or a BOGUS Proof when `labels` is no expansion."""
    if not 0 <= labels < len(qname.labels) - 1:
        return Proof(Status.BOGUS, f"RRSIG labels {labels} is no wildcard expansion of {qname}")
    ce = dns.name.Name(qname.labels[-(labels + 1):])
    if not ce.is_subdomain(zone):
        return Proof(Status.BOGUS, f"the wildcard's closest encloser {ce} is outside {zone}")
    return ce


def wildcard_answer(qname, labels, zone, rrsets) -> Proof:
    """A wildcard expansion (RRSIG labels < qname's labels): an NSEC covers qname
    and shows nothing between it and the closest encloser (the rightmost
    `labels` labels) exists, so no closer match could have answered."""
    if (bad := _outside(qname, zone)) is not None:
        return bad
    ce = wildcard_encloser(qname, labels, zone)
    if isinstance(ce, Proof):
        return ce
    recs = _records(zone, rrsets)
    cov = _covering(recs, qname)
    if cov is None:
        return Proof(Status.BOGUS, f"no NSEC proves {qname} does not exist (wildcard answer)")
    # a name between the encloser and qname (owner or next sharing more labels
    # with qname than the encloser) exists: the wildcard could not have matched
    if len(_closest_encloser(qname, cov[0], cov[1], zone).labels) > len(ce.labels):
        return Proof(Status.BOGUS, f"a closer match than {ce} exists for {qname}")
    return Proof(Status.SECURE, closest_encloser=ce)
