"""NSEC3 denial-of-existence proofs (RFC 5155 8; kresd lib/dnssec/nsec3.c).

Owns: hashing names with each record's parameters (bounded: more than
NSEC3_MAX_ITERATIONS iterations makes the proof insecure before any hashing,
and at most MAX_HASHES distinct hashes per call), matching and covering
hashes, the closest-encloser proof, and from them name error, no data (with
DS opt-out, wildcard no data, empty non-terminals), insecure delegations
(matching NSEC3 or opt-out) and the denial behind a wildcard expansion.
Must not: check signatures (the validator passes only NSEC3 RRsets whose
RRSIGs verified, with the signer as `zone`) or raise on odd records.
"""
from __future__ import annotations

import base64

import dns.dnssec
import dns.name
import dns.rdatatype as T

from . import NSEC3_MAX_ITERATIONS, Proof, Status
from .nsec import has_type, nodata_at

MAX_HASHES = 64  # distinct (name, parameters) hashes per proof
SHA1 = 1


class _TooMuchWork(Exception):
    pass


class _Chain:
    def __init__(self, zone, rrsets):
        self.zone = zone
        self.recs = []  # (owner hash, next hash, rdata)
        self.unknown_alg = False
        self.too_many_iterations = False
        self._hashes: dict = {}
        for rr in rrsets:
            if rr.rdtype != T.NSEC3 or len(rr.name.labels) != len(zone.labels) + 1 \
                    or not rr.name.is_subdomain(zone):
                continue
            try:
                owner = base64.b32hexdecode(rr.name.labels[0].upper())
            except (ValueError, TypeError):
                continue
            for rd in rr:
                if rd.algorithm != SHA1:
                    self.unknown_alg = True
                    continue
                if rd.iterations > NSEC3_MAX_ITERATIONS:
                    self.too_many_iterations = True
                    continue
                self.recs.append((owner, bytes(rd.next), rd))

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
        for owner, nxt, rd in self.recs:
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
                if (has_type(rd, T.NS) and not has_type(rd, T.SOA)) or has_type(rd, T.DNAME):
                    return None
                cov = self.covering(name)
                return (parent, name, cov) if cov is not None else None
            name = parent
        return None


def _unusable(ch: _Chain) -> Proof | None:
    if not ch.recs:
        if ch.too_many_iterations:
            return Proof(Status.INSECURE, f"NSEC3 with more than {NSEC3_MAX_ITERATIONS} iterations")
        if ch.unknown_alg:
            return Proof(Status.INSECURE, "NSEC3 with an unknown hash algorithm")
        return Proof(Status.BOGUS, "no usable NSEC3")
    return None


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


@_guard
def nxdomain(qname, zone, rrsets) -> Proof:
    ch = _Chain(zone, rrsets)
    bad = _unusable(ch)
    if bad:
        return bad
    if ch.matching(qname) is not None:
        return Proof(Status.BOGUS, f"an NSEC3 matches {qname}: it exists")
    cp = ch.closest_encloser(qname)
    if cp is None:
        return Proof(Status.BOGUS, f"no closest-encloser proof for {qname}")
    ce, _nc, cov = cp
    wc = _wildcard(ce)
    if wc is None or ch.covering(wc) is None:
        return Proof(Status.BOGUS, f"no NSEC3 denies the wildcard at {ce}")
    if cov.flags & 1:
        return Proof(Status.INSECURE, "opt-out", optout=True, closest_encloser=ce)
    return Proof(Status.SECURE, closest_encloser=ce)


@_guard
def nodata(qname, qtype, zone, rrsets) -> Proof:
    ch = _Chain(zone, rrsets)
    bad = _unusable(ch)
    if bad:
        return bad
    rd = ch.matching(qname)
    if rd is not None:
        why = nodata_at(rd, qtype, qname == dns.name.root, "NSEC3")
        if why:
            return Proof(Status.BOGUS, f"NSEC3 of {qname}: {why}")
        cut = qtype == T.DS and has_type(rd, T.NS) and not has_type(rd, T.SOA)
        return Proof(Status.SECURE, closest_encloser=qname, delegation=cut)
    cp = ch.closest_encloser(qname)
    if cp is None:
        return Proof(Status.BOGUS, f"no NSEC3 proves {qname} has no {T.to_text(qtype)}")
    ce, _nc, cov = cp
    if cov.flags & 1:
        # RFC 5155 8.6: opt-out covers the name: an unsigned delegation may be
        # there (a DS NODATA proves it; other types come from such a
        # delegation's parent side), so the answer stands, insecure (kresd)
        return Proof(Status.INSECURE, "opt-out", optout=True, closest_encloser=ce,
                     delegation=qtype == T.DS)
    wc = _wildcard(ce)
    w = ch.matching(wc) if wc is not None else None
    if w is not None and not nodata_at(w, qtype, kind="NSEC3"):  # 8.7 wildcard no data
        if cov.flags & 1:  # the next closer name is covered by opt-out: maybe an unsigned delegation
            return Proof(Status.INSECURE, "opt-out", optout=True, closest_encloser=ce)
        return Proof(Status.SECURE, closest_encloser=ce)
    return Proof(Status.BOGUS, f"no NSEC3 proves {qname} has no {T.to_text(qtype)}")


@_guard
def referral_no_ds(name, zone, rrsets) -> Proof:
    ch = _Chain(zone, rrsets)
    bad = _unusable(ch)
    if bad:
        return bad
    rd = ch.matching(name)
    if rd is not None:
        if has_type(rd, T.DS):
            return Proof(Status.BOGUS, f"NSEC3 of {name} lists a DS")
        if has_type(rd, T.SOA) or not has_type(rd, T.NS):
            return Proof(Status.BOGUS, f"NSEC3 of {name} is no delegation")
        return Proof(Status.SECURE, closest_encloser=name)
    cp = ch.closest_encloser(name)
    if cp is not None and cp[2].flags & 1:
        return Proof(Status.SECURE, "opt-out", optout=True, closest_encloser=cp[0])
    return Proof(Status.BOGUS, f"no NSEC3 proves the delegation {name} has no DS")


@_guard
def wildcard_answer(qname, labels, zone, rrsets) -> Proof:
    ch = _Chain(zone, rrsets)
    bad = _unusable(ch)
    if bad:
        return bad
    if labels + 1 >= len(qname.labels):
        return Proof(Status.BOGUS, "no wildcard expansion")
    ce = dns.name.Name(qname.labels[-(labels + 1):])
    nc = dns.name.Name(qname.labels[-(labels + 2):])
    cov = ch.covering(nc)
    if cov is None:
        return Proof(Status.BOGUS, f"no NSEC3 covers the next closer name {nc}")
    if cov.flags & 1:
        return Proof(Status.INSECURE, "opt-out", optout=True, closest_encloser=ce)
    return Proof(Status.SECURE, closest_encloser=ce)
