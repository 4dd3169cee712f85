"""The NSEC/NSEC3 index of the cache (RFC 8198 aggressive use; kresd lib/cache/nsec1.c, nsec3.c).

Owns: the key bytes of NSEC and NSEC3 entries, chosen so that "the record whose
owner (or hash) is the closest predecessor of X in the zone" is one LMDB range
lookup, and the reads that find it (`find_nsec`, `find_nsec3`, `nsec3_params`)
on a transaction the facade (cache/api.py) opens.
Must not: decide freshness, ranks or proofs (cache/api.py checks TTL and rank,
workers/dnssec/ proves), or pack values (cache/entry.py: an NSEC/NSEC3 entry is
an ordinary positive `E`-style value, header + rdatas + RRSIGs).

Key format (an extension of CACHE_KEY_DEF in cache/keys.py, same lf()):

  zone prefix  zp = lf(zone) + b"\\x00"        (the root zone: b"\\x00")

  NSEC   zp + b"S1"                            the NSEC at the zone apex
         zp + b"S1" + b"\\x00" + lf(owner relative to the zone)   any other owner
  NSEC3  zp + b"H3" + u8 hash alg + u16 iterations + u8 salt length + salt
            + the raw hash (20 bytes for SHA-1)

  The byte after zp is an upper-case letter, which never starts a child label
  in lf(), so these keys live in the zone's own key space and `clear(zone,
  subtree=True)` (prefix zp) removes them with the zone. They never have the
  length of an exact key (zp + TAG + 2 type bytes): NSEC keys are zp+2 (apex)
  or at least zp+4, NSEC3 keys at least zp+7, so `clear(name)` of one name
  never takes them for that name's E/N/X entries.

  Order: lf() byte order is the canonical DNS order (RFC 4034 6.1), and the
  apex key is a prefix of every other NSEC key of the zone, so the NSEC keys of
  a zone sort exactly as their owners; NSEC3 keys of one parameter set sort as
  their raw hashes (base32hex keeps the order of the bytes).

Owner names are rebuilt from the key (NSEC: the lf() labels, lower-cased as
lf() stores them; NSEC3: base32hex of the hash, lower-case, plus the zone).
"""
from __future__ import annotations

import base64
import struct
from dataclasses import dataclass

import dns.name

from cache.keys import MAX_KEY_LEN, lf

TAG_NSEC = b"S1"
TAG_NSEC3 = b"H3"
_PARAMS = struct.Struct("!BHB")  # hash alg, iterations, salt length
_AFTER = b"\xff" * 64  # sorts after every hash of a parameter set (hashes <= 64 bytes)


@dataclass(frozen=True, slots=True)
class Nsec3Params:
    algorithm: int
    iterations: int
    salt: bytes

    @classmethod
    def of(cls, rd) -> Nsec3Params:
        """The parameters of an NSEC3 (or NSEC3PARAM) rdata."""
        return cls(int(rd.algorithm), int(rd.iterations), bytes(rd.salt))

    def pack(self) -> bytes:
        if len(self.salt) > 255:
            raise ValueError("NSEC3 salt too long")
        return _PARAMS.pack(self.algorithm, self.iterations, len(self.salt)) + self.salt


def zone_prefix(zone: dns.name.Name) -> bytes:
    return lf(zone) + b"\x00"


def nsec_key(zone: dns.name.Name, owner: dns.name.Name) -> bytes | None:
    """Key of the NSEC at `owner` in `zone` (owner at or below zone), None if too long."""
    k = zone_prefix(zone) + TAG_NSEC
    if owner != zone:
        rel = owner.relativize(zone)
        k += b"\x00" + lf(rel)
    return k if len(k) <= MAX_KEY_LEN else None


def nsec3_prefix(zone: dns.name.Name, params: Nsec3Params) -> bytes:
    return zone_prefix(zone) + TAG_NSEC3 + params.pack()


def nsec3_key(zone: dns.name.Name, params: Nsec3Params, raw_hash: bytes) -> bytes | None:
    k = nsec3_prefix(zone, params) + raw_hash
    return k if len(k) <= MAX_KEY_LEN else None


def hash_of_owner(owner: dns.name.Name) -> bytes:
    """The raw hash an NSEC3 owner's first label spells (base32hex). ValueError if none."""
    label = owner.labels[0].upper()
    return base64.b32hexdecode(label + b"=" * (-len(label) % 8))


def owner_of_hash(zone: dns.name.Name, raw_hash: bytes) -> dns.name.Name:
    label = base64.b32hexencode(raw_hash).rstrip(b"=").lower()
    return dns.name.Name((label,) + zone.labels)


def _unescape(label: bytes) -> bytes:
    if b"\x01" not in label:
        return label
    out = bytearray()
    i = 0
    while i < len(label):
        c = label[i]
        if c == 1 and i + 1 < len(label):
            out.append(0 if label[i + 1] == 1 else 1)
            i += 2
        else:
            out.append(c)
            i += 1
    return bytes(out)


def owner_of_nsec_key(zone: dns.name.Name, k: bytes) -> dns.name.Name:
    rest = k[len(zone_prefix(zone)) + len(TAG_NSEC):]
    if not rest:
        return zone
    labels = [_unescape(lab) for lab in rest[1:].split(b"\x00")]
    return dns.name.Name(tuple(reversed(labels)) + zone.labels)


# -- reads on an LMDB transaction (the facade opens it) ---------------------------

def _at_or_before(cur, target: bytes) -> bytes | None:
    """Position the cursor on the greatest key <= target; return it (or None)."""
    if cur.set_range(target):
        if cur.key() == target:
            return target
        if not cur.prev():
            return None
    elif not cur.last():
        return None
    return cur.key()


def find_nsec(txn, zone: dns.name.Name, name: dns.name.Name) -> tuple[dns.name.Name, bytes] | None:
    """(owner, value) of the NSEC of `zone` whose owner is `name` or its closest
    predecessor in canonical order; None when the zone has none before it."""
    target = nsec_key(zone, name)
    if target is None:
        return None
    cur = txn.cursor()
    k = _at_or_before(cur, target)
    base = zone_prefix(zone) + TAG_NSEC
    if k is None or not k.startswith(base):
        return None
    return owner_of_nsec_key(zone, k), cur.value()


def find_nsec3(txn, zone: dns.name.Name, params: Nsec3Params, raw_hash: bytes
               ) -> tuple[dns.name.Name, bytes] | None:
    """(owner, value) of the NSEC3 of `zone` with these parameters whose hash is
    `raw_hash` or its closest predecessor; below the smallest hash it wraps to
    the greatest (the last NSEC3 of the chain covers the start)."""
    target = nsec3_key(zone, params, raw_hash)
    if target is None:
        return None
    base = nsec3_prefix(zone, params)
    cur = txn.cursor()
    k = _at_or_before(cur, target)
    if k is None or not k.startswith(base):
        k = _at_or_before(cur, base + _AFTER)  # wrap around: the last of the chain
        if k is None or not k.startswith(base):
            return None
    return owner_of_hash(zone, k[len(base):]), cur.value()


def nsec3_params(txn, zone: dns.name.Name, limit: int = 4) -> list[Nsec3Params]:
    """The NSEC3 parameter sets the index holds for `zone` (at most `limit`)."""
    base = zone_prefix(zone) + TAG_NSEC3
    out: list[Nsec3Params] = []
    cur = txn.cursor()
    pos = base
    while len(out) < limit and cur.set_range(pos):
        k = cur.key()
        if not k.startswith(base) or len(k) < len(base) + _PARAMS.size:
            break
        alg, iters, slen = _PARAMS.unpack_from(k, len(base))
        start = len(base) + _PARAMS.size
        if len(k) < start + slen:
            break
        p = Nsec3Params(alg, iters, bytes(k[start:start + slen]))
        out.append(p)
        pos = base + p.pack() + _AFTER
    return out
