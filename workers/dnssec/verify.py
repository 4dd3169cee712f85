"""RRSIG checks: one RRset against a zone's keys, and a DNSKEY set against its DS.

Owns: which RRSIGs and keys may be tried for an RRset (type covered, signer,
labels, key tag, algorithm, protocol, zone and revoke flags), the validity
window on the resolver's clock, the per-request work budget that bounds
KeyTrap-style data (CVE-2023-50387: colliding key tags, many keys, many
signatures), DS digest matching, and which algorithms and digests count as
supported (an unsupported one makes the zone insecure, not bogus).
Must not: fetch keys or decide what an answer means: the validator step
(workers/layers/validate.py) does. The cryptography is dnspython's
(dns.dnssec.validate_rrsig on `cryptography`).
"""
from __future__ import annotations

from dataclasses import dataclass

import dns.dnssec
import dns.name
import dns.rdatatype as T
import dns.rrset
from dns.dnssectypes import Algorithm

from . import Status

# RFC 8624 "MUST/RECOMMENDED validate" set that `cryptography` implements.
SUPPORTED_ALGORITHMS = frozenset({
    Algorithm.RSASHA1, Algorithm.RSASHA1NSEC3SHA1, Algorithm.RSASHA256, Algorithm.RSASHA512,
    Algorithm.ECDSAP256SHA256, Algorithm.ECDSAP384SHA384, Algorithm.ED25519, Algorithm.ED448,
})
SUPPORTED_DIGESTS = frozenset({1, 2, 4})  # SHA-1, SHA-256, SHA-384 (GOST is not)

ZONE_FLAG = 0x0100
REVOKE_FLAG = 0x0080
SEP_FLAG = 0x0001

# KeyTrap bounds (kresd 5.7.1's fix caps the work the same way): per request,
# at most this many signature verifications in all; per RRset, at most this
# many failed attempts before the RRset is bogus.
MAX_SIG_CHECKS_PER_REQUEST = 64
MAX_FAILS_PER_RRSET = 8


class BudgetExceeded(Exception):
    """The request spent its signature-verification budget."""


class Budget:
    def __init__(self, limit: int = MAX_SIG_CHECKS_PER_REQUEST):
        self.limit = limit
        self.used = 0

    def spend(self) -> None:
        if self.used >= self.limit:
            raise BudgetExceeded(f"more than {self.limit} signature verifications")
        self.used += 1


@dataclass(frozen=True)
class Verdict:
    status: Status
    reason: str = ""
    ede: int = 6  # RFC 8914 code for a bogus verdict
    labels: int | None = None  # RRSIG labels of the signature that verified (wildcards)
    signer: dns.name.Name | None = None


def owner_labels(name: dns.name.Name) -> int:
    """RFC 4034 3.1.3: labels of the owner, root and a leading '*' not counted."""
    n = len(name.labels) - 1
    if name.labels and name.labels[0] == b"*":
        n -= 1
    return n


def key_usable(rd) -> bool:
    return rd.protocol == 3 and bool(rd.flags & ZONE_FLAG) and not rd.flags & REVOKE_FLAG


def supported_ds(ds_rdatas) -> list:
    """DS (or trust-anchor DNSKEY) records a validator can use."""
    out = []
    for rd in ds_rdatas:
        if rd.rdtype == T.DS:
            if rd.algorithm in SUPPORTED_ALGORITHMS and rd.digest_type in SUPPORTED_DIGESTS:
                out.append(rd)
        elif rd.rdtype == T.DNSKEY and rd.algorithm in SUPPORTED_ALGORITHMS:
            out.append(rd)
    return out


def signer_of(sigs) -> dns.name.Name | None:
    if sigs is None:
        return None
    for rd in sigs:
        return rd.signer
    return None


def _in_window(rd, now: int) -> str:
    # RFC 4034 3.1.5: serial number arithmetic on 32-bit times
    def after(a, b):  # a >= b in serial arithmetic
        return ((a - b) & 0xFFFFFFFF) < 0x80000000
    n = now & 0xFFFFFFFF
    if not after(rd.expiration, n):
        return "expired"
    if not after(n, rd.inception):
        return "notyet"
    return ""


def verify_rrset(rrset: dns.rrset.RRset, sigs, keys, zone: dns.name.Name, now: int,
                 budget: Budget) -> Verdict:
    """Does some RRSIG in `sigs` by `zone` over `rrset` verify with `keys`
    (the zone's DNSKEY rdatas, already trusted)? Raises BudgetExceeded."""
    candidates = [rd for rd in (sigs or ()) if rd.type_covered == rrset.rdtype]
    if not candidates:
        return Verdict(Status.BOGUS, f"no RRSIG for {rrset.name} {T.to_text(rrset.rdtype)}", ede=10)
    olabels = owner_labels(rrset.name)
    fails = 0
    why = {"expired": 0, "notyet": 0, "nokey": 0, "bad": 0, "other": 0}
    for rd in candidates:
        if rd.signer != zone or not rrset.name.is_subdomain(rd.signer) or rd.labels > olabels:
            why["other"] += 1
            continue
        if rd.algorithm not in SUPPORTED_ALGORITHMS:
            why["other"] += 1
            continue
        w = _in_window(rd, now)
        if w:
            why[w] += 1
            continue
        matching = [k for k in keys if k.algorithm == rd.algorithm and key_usable(k)
                    and key_tag(k) == rd.key_tag]
        if not matching:
            why["nokey"] += 1
            continue
        for key in matching:
            if fails >= MAX_FAILS_PER_RRSET:
                return Verdict(Status.BOGUS, f"too many failed signatures over {rrset.name}", ede=6)
            budget.spend()
            if _check(rrset, rd, key, zone, now):
                labels = rd.labels if rd.labels < olabels else None
                return Verdict(Status.SECURE, labels=labels, signer=zone)
            fails += 1
            why["bad"] += 1
    name = f"{rrset.name} {T.to_text(rrset.rdtype)}"
    if why["bad"]:
        return Verdict(Status.BOGUS, f"bad signature over {name}", ede=6)
    if why["expired"]:
        return Verdict(Status.BOGUS, f"expired signature over {name}", ede=7)
    if why["notyet"]:
        return Verdict(Status.BOGUS, f"signature over {name} not yet valid", ede=8)
    if why["nokey"]:
        return Verdict(Status.BOGUS, f"no key of {zone} matches the RRSIG over {name}", ede=9)
    return Verdict(Status.BOGUS, f"no usable RRSIG over {name}", ede=10)


def _check(rrset, rrsig, key, zone, now) -> bool:
    """The cryptographic check only: the caller matched signer, labels, type,
    algorithm and key tag, and checked the window in serial arithmetic
    (_in_window). The signed data is dnspython's (RFC 4034 3.1.8.1 canonical
    form) and the verification its algorithm classes' on `cryptography`; the
    public key object comes from the memo below, so a zone's key is loaded
    once, not once per signature."""
    if rrsig.rdclass != rrset.rdclass:
        return False
    # (looked up here, not at import: dns.dnssec, and cryptography with it,
    # is loaded on the first validation, not at boot: kresd/__init__.py)
    signed_data = getattr(dns.dnssec, "_make_rrsig_signature_data", None)
    if signed_data is None:  # a dnspython without the helper: its whole check
        return _check_dnspython(rrset, rrsig, key, zone)
    try:
        public = _public_key(key)
        public.verify(rrsig.signature, signed_data(rrset, rrsig, None))
        return True
    except Exception:  # InvalidSignature, a hostile key or signature: a failed check
        return False


def _check_dnspython(rrset, rrsig, key, zone) -> bool:
    """dnspython's validate_rrsig; it compares the 32-bit times as plain
    numbers, so it is given the inception as `now`."""
    try:
        ks = dns.rrset.from_rdata_list(zone, 0, [key])
        dns.dnssec.validate_rrsig(rrset, rrsig, {zone: ks}, now=rrsig.inception,
                                  policy=dns.dnssec.allow_all_policy)
        return True
    except Exception:  # ValidationFailure, UnsupportedAlgorithm, hostile bytes
        return False


# Per-process memos of what a DNSKEY's bytes determine: its key tag (RFC 4034
# appendix B) and its loaded public key. Keyed by the rdata's fields, bounded
# (emptied when full: hostile data can only make them useless, not large).
_MEMO_MAX = 4096
_tags: dict = {}
_publics: dict = {}


def _memo_key(key) -> tuple:
    return (key.flags, key.protocol, key.algorithm, key.key)


def key_tag(key) -> int:
    """dns.dnssec.key_id(key), memoised."""
    k = _memo_key(key)
    tag = _tags.get(k)
    if tag is None:
        if len(_tags) >= _MEMO_MAX:
            _tags.clear()
        tag = _tags[k] = dns.dnssec.key_id(key)
    return tag


def public_key(key):
    """The key's public-key object, memoised (workers/fastmiss.py verifies with it)."""
    return _public_key(key)


def _public_key(key):
    """The key's dnspython public-key object (raises on a bad key or an
    unsupported algorithm; failures are not memoised)."""
    k = _memo_key(key)
    public = _publics.get(k)
    if public is None:
        cls = dns.dnssec.get_algorithm_cls_from_dnskey(key).public_cls
        public = cls.from_dnskey(key)
        if len(_publics) >= _MEMO_MAX:
            _publics.clear()
        _publics[k] = public
    return public


def ds_matches(zone: dns.name.Name, key, ds) -> bool:
    """Does the DNSKEY `key` of `zone` hash to the DS (or equal the anchor DNSKEY)?"""
    if ds.rdtype == T.DNSKEY:
        return ds.algorithm == key.algorithm and ds.key == key.key and ds.protocol == key.protocol
    return (ds.algorithm == key.algorithm and ds.key_tag == key_tag(key)
            and ds.digest_type in SUPPORTED_DIGESTS and _digest(zone, key, ds.digest_type) == ds.digest)


def verify_dnskeys(zone: dns.name.Name, dnskeys: dns.rrset.RRset, sigs, anchors, now: int,
                   budget: Budget, configured: bool = False) -> Verdict:
    """The DNSKEY RRset of `zone` against its DS set or trust-anchor keys: some
    key that a usable anchor names (zone flag set, not revoked) must sign the
    whole RRset (RFC 4035 5.2). A DS set with no supported algorithm or digest
    makes the zone insecure; a configured trust anchor never does (kresd: the
    operator asked for that zone to be secure, so it is bogus instead)."""
    usable = list(anchors) if configured else supported_ds(anchors)
    if not usable:
        return Verdict(Status.INSECURE, "no supported DS algorithm or digest")
    trusted = []
    for key in dnskeys:
        if any(ds_matches(zone, key, ds) for ds in usable):
            trusted.append(key)
    if not trusted:
        return Verdict(Status.BOGUS, f"no DNSKEY of {zone} matches its DS", ede=9)
    if not any(key_usable(k) for k in trusted):
        return Verdict(Status.BOGUS, f"the DNSKEY of {zone} named by its DS is no zone key", ede=11)
    return verify_rrset(dnskeys, sigs, [k for k in trusted if key_usable(k)], zone, now, budget)


def _digest(zone, key, digest_type) -> bytes | None:
    try:
        return dns.dnssec.make_ds(zone, key, digest_type, policy=dns.dnssec.allow_all_policy).digest
    except Exception:
        return None
