"""Decoded RRsets of cache values, per process, for as long as the stored bytes stay the same.

Owns: `DecodedMemo`, which cache/api.py's peek_rrset asks for the RRset (and
RRSIGs) of an E value it has just read from LMDB.
Must not: read LMDB itself or decide freshness (the caller passes the value
it read and the remaining TTL), or hand out objects the caller could change
for others (copies of the RRsets; their rdatas are immutable).
"""
from __future__ import annotations

import dns.name

from cache import entry


class DecodedMemo:
    """RRsets this process decoded from cache values, reused while the stored
    value is byte for byte the same (kept per key, with those bytes).

    Decoding builds dnspython objects (~40 µs for an NS set or its glue on a
    slow machine), and the same NS and address RRsets are read for every
    query below a zone cut. The stored bytes are read from LMDB on every peek
    anyway (so a stash, an eviction or a clear by any process is seen at
    once: other bytes, or none, are a memo miss), and they hold the inception
    and TTL, so equal bytes are the same entry; the remaining TTL is set on a
    copy per peek. No shared state, no invalidation protocol. Bounded: the
    oldest entry goes when full.
    """

    MAX = 4096

    def __init__(self) -> None:
        self._memo: dict[bytes, tuple] = {}  # key -> (value, rrset, rrsigs or None)

    def __len__(self) -> int:
        return len(self._memo)

    def rrset(self, k: bytes, value: bytes, name: dns.name.Name, ttl: int):
        """(rrset, rrsigs or None) of the E value at k, owned by the caller,
        named `name` (its case) and with TTL `ttl`. Raises EntryError."""
        memo = self._memo
        hit = memo.get(k)
        if hit is None or hit[0] != value or hit[1].name.labels != name.labels:
            _, rrset, sigs = entry.unpack_rrset(value, name, ttl)
            if hit is None and len(memo) >= self.MAX:
                del memo[next(iter(memo))]
            memo[k] = hit = (value, rrset, sigs)
        rrset = hit[1].copy()
        rrset.ttl = ttl
        sigs = hit[2]
        if sigs is not None:
            sigs = sigs.copy()
            sigs.ttl = ttl
        return rrset, sigs

    def clear(self) -> None:
        self._memo.clear()
