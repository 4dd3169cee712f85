"""NSEC3 denial-of-existence proofs (RFC 5155 8; kresd lib/dnssec/nsec3.c).

Owns: hashing names with each record's parameters (bounded: any NSEC3 with
more than NSEC3_MAX_ITERATIONS iterations makes the proof insecure before any
hashing, and at most MAX_HASHES distinct hashes per call), matching and
covering hashes, the closest-encloser proof, and from them name error, no
data (with DS opt-out, wildcard no data, empty non-terminals), insecure
delegations (matching NSEC3 or opt-out) and the denial behind a wildcard
expansion.
Must not: check signatures (the validator passes only NSEC3 RRsets whose
RRSIGs verified, with the signer as `zone`) or raise on odd records: records
with an unknown hash algorithm, unknown flags (RFC 5155 8.2), an owner that is
not one base32hex label directly below the zone, or hashes of the wrong length
are ignored.
"""
from __future__ import annotations

import base64
import binascii

import dns.dnssec
import dns.name
import dns.rdatatype as T

from . import NSEC3_MAX_ITERATIONS, Proof, Status
from .nsec import _is_delegation, has_type, nodata_at, wildcard_encloser

MAX_HASHES = 64  # distinct (name, parameters) hashes per proof
SHA1 = 1
SHA1_LEN = 20
OPT_OUT = 0x01


class _TooMuchWork(Exception):
    pass


def _owner_hash(owner) -> bytes | None:
    try:
        return base64.b32hexdecode(owner.labels[0].upper())
    except (binascii.Error, ValueError, TypeError, IndexError):
        return None


class _Chain:
    """The usable NSEC3 records of one zone: (owner hash, next hash, rdata)."""

    def __init__(self, zone, rrsets):
        self.zone = zone
        self.recs = []
        self.unknown_alg = False
        self.too_many_iterations = False
        self._hashes: dict = {}
        for rr in rrsets:
            try:
                if rr.rdtype != T.NSEC3 or len(rr.name.labels) != len(zone.labels) + 1 \
                        or not rr.name.is_subdomain(zone):
                    continue
                owner = _owner_hash(rr.name)
                for rd in rr:
                    self._add(owner, rd)
            except (AttributeError, TypeError, ValueError):
                continue

    def _add(self, owner, rd) -> None:
        alg, flags, iters = (getattr(rd, a, None) for a in ("algorithm", "flags", "iterations"))
        if not all(isinstance(x, int) for x in (alg, flags, iters)):
            return  # unparsed rdata
        if alg != SHA1:
            self.unknown_alg = True
            return
        if iters > NSEC3_MAX_ITERATIONS:
            self.too_many_iterations = True
            return
        nxt, salt = getattr(rd, "next", None), getattr(rd, "salt", None)
        if flags & ~OPT_OUT or owner is None or not isinstance(salt, bytes) \
                or not isinstance(nxt, bytes) or len(owner) != SHA1_LEN or len(nxt) != SHA1_LEN:
            return
        self.recs.append((owner, nxt, rd))

    def hash(self, name, rd) -> bytes:
        key = (name, rd.salt, rd.iterations)
        h = self._hashes.get(key)
        if h is None:
            if len(self._hashes) >= MAX_HASHES:
                raise _TooMuchWork()
            try:
                h = base64.b32hexdecode(dns.dnssec.nsec3_hash(name, rd.salt, rd.iterations, SHA1))
            except Exception:  # noqa: BLE001 - hostile parameters: no hash matches
                h = b""
            self._hashes[key] = h
        return h

    def matching(self, name):
        for owner, _nxt, rd in self.recs:
            if self.hash(name, rd) == owner:
                return rd
        return None

    def covering(self, name):
        for owner, nxt, rd in self.recs:
            h = self.hash(name, rd)
            if not h or h == owner:
                continue
            if (owner < h < nxt) if owner < nxt else (h > owner or h < nxt):
                return rd
        return None

    def closest_encloser(self, qname):
        """(closest encloser, next closer name, NSEC3 covering it) or None
        (RFC 5155 8.3); the encloser must not be a delegation or a DNAME."""
        if not qname.is_subdomain(self.zone):
            return None
        name = qname
        while name != self.zone:
            parent = name.parent()
            rd = self.matching(parent)
            if rd is not None:
                if _is_delegation(rd) or has_type(rd, T.DNAME):
                    return None
                cov = self.covering(name)
                return (parent, name, cov) if cov is not None else None
            name = parent
        return None


def _unusable(ch: _Chain) -> Proof | None:
    if ch.too_many_iterations:  # kresd: downgraded to insecure, nothing hashed
        return Proof(Status.INSECURE, f"NSEC3 with more than {NSEC3_MAX_ITERATIONS} iterations")
    if not ch.recs:
        if ch.unknown_alg:
            return Proof(Status.INSECURE, "NSEC3 with an unknown hash algorithm")
        return Proof(Status.BOGUS, "no usable NSEC3")
    return None


def _optout(rd) -> bool:
    return bool(rd.flags & OPT_OUT)


def _wildcard(ce):
    try:
        return dns.name.Name((b"*",) + ce.labels)
    except dns.name.NameTooLong:
        return None


def _guard(fn):
    def run(*args) -> Proof:
        try:
            return fn(*args)
        except _TooMuchWork:
            return Proof(Status.BOGUS, f"too much NSEC3 work (more than {MAX_HASHES} hashes)")
    run.__name__ = fn.__name__
    run.__doc__ = fn.__doc__
    return run


def _chain(name, zone, rrsets) -> tuple[_Chain | None, Proof | None]:
    if not name.is_subdomain(zone):
        return None, Proof(Status.BOGUS, f"{name} is not in the zone {zone} that signed the NSEC3")
    ch = _Chain(zone, rrsets)
    return ch, _unusable(ch)


@_guard
def nxdomain(qname, zone, rrsets) -> Proof:
    """Name error (RFC 5155 8.4): the closest-encloser proof and a cover of the
    wildcard at the encloser; opt-out on either cover makes it insecure."""
    ch, bad = _chain(qname, zone, rrsets)
    if bad:
        return bad
    if ch.matching(qname) is not None:
        return Proof(Status.BOGUS, f"an NSEC3 matches {qname}: it exists")
    cp = ch.closest_encloser(qname)
    if cp is None:
        return Proof(Status.BOGUS, f"no closest-encloser proof for {qname}")
    ce, _nc, cov = cp
    wc = _wildcard(ce)
    wcov = ch.covering(wc) if wc is not None else None
    if wcov is None:
        return Proof(Status.BOGUS, f"no NSEC3 denies the wildcard at {ce}")
    if _optout(cov) or _optout(wcov):
        return Proof(Status.INSECURE, "opt-out", optout=True, closest_encloser=ce)
    return Proof(Status.SECURE, closest_encloser=ce)


@_guard
def nodata(qname, qtype, zone, rrsets) -> Proof:
    """No data (RFC 5155 8.5-8.7 with erratum 3441): a matching NSEC3 without the
    type nor CNAME (an empty bitmap for an empty non-terminal); else the
    closest-encloser proof with an opt-out cover of the next closer name
    (insecure), or with the wildcard's NSEC3 lacking the type."""
    ch, bad = _chain(qname, zone, rrsets)
    if bad:
        return bad
    rd = ch.matching(qname)
    if rd is not None:
        why = nodata_at(rd, qtype, qname == dns.name.root, "NSEC3")
        if why:
            return Proof(Status.BOGUS, f"NSEC3 of {qname}: {why}")
        return Proof(Status.SECURE, closest_encloser=qname,
                     delegation=qtype == T.DS and _is_delegation(rd))
    cp = ch.closest_encloser(qname)
    if cp is None:
        return Proof(Status.BOGUS, f"no NSEC3 proves {qname} has no {T.to_text(qtype)}")
    ce, _nc, cov = cp
    if _optout(cov):
        # RFC 5155 8.6 and erratum 3441: opt-out covers the name: an unsigned
        # delegation may be there (a DS NODATA proves it; other types come from
        # such a delegation's parent side), so the answer stands, insecure (kresd)
        return Proof(Status.INSECURE, "opt-out", optout=True, closest_encloser=ce,
                     delegation=qtype == T.DS)
    wc = _wildcard(ce)
    w = ch.matching(wc) if wc is not None else None
    if w is not None and not nodata_at(w, qtype, kind="NSEC3"):  # 8.7 wildcard no data
        return Proof(Status.SECURE, closest_encloser=ce)
    return Proof(Status.BOGUS, f"no NSEC3 proves {qname} has no {T.to_text(qtype)}")


@_guard
def referral_no_ds(name, zone, rrsets) -> Proof:
    """An unsigned delegation (RFC 5155 8.9): the NSEC3 matching `name` has NS and
    neither DS nor SOA; or the next closer name is covered by opt-out."""
    ch, bad = _chain(name, zone, rrsets)
    if bad:
        return bad
    rd = ch.matching(name)
    if rd is not None:
        if has_type(rd, T.DS):
            return Proof(Status.BOGUS, f"NSEC3 of {name} lists a DS")
        if not _is_delegation(rd):
            return Proof(Status.BOGUS, f"NSEC3 of {name} is no delegation")
        return Proof(Status.SECURE, closest_encloser=name, delegation=True)
    cp = ch.closest_encloser(name)
    if cp is not None and _optout(cp[2]):
        return Proof(Status.SECURE, "opt-out", optout=True, closest_encloser=cp[0], delegation=True)
    return Proof(Status.BOGUS, f"no NSEC3 proves the delegation {name} has no DS")


@_guard
def wildcard_answer(qname, labels, zone, rrsets) -> Proof:
    """A wildcard expansion (RFC 5155 8.8): the next closer name (one label more
    than the rightmost `labels` labels of qname) is covered; opt-out: insecure."""
    ch, bad = _chain(qname, zone, rrsets)
    if bad:
        return bad
    ce = wildcard_encloser(qname, labels, zone)
    if isinstance(ce, Proof):
        return ce
    nc = dns.name.Name(qname.labels[-(labels + 2):])
    cov = ch.covering(nc)
    if cov is None:
        return Proof(Status.BOGUS, f"no NSEC3 covers the next closer name {nc}")
    if _optout(cov):
        return Proof(Status.INSECURE, "opt-out", optout=True, closest_encloser=ce)
    return Proof(Status.SECURE, closest_encloser=ce)
