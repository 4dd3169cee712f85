"""The cache-hit fast path: answer a UDP query straight from the cache bytes.

Owns: deciding, per datagram, whether a query can be answered without building
a Request (C parse -> C cache key -> one LMDB read -> C answer), and asking
every loaded layer whether it agrees (Layer.fast_ok / fast_count).
Must not: change what a client gets. Anything unusual (DO, AD or CD set: the
DNSSEC answer is the full path's; data not validated while a trust anchor is
configured; not a fresh RRset of the asked type with an answer rank, CNAMEs, negative answers, EDNS options the
answer would carry, an answer that does not fit, a layer that may act on the
query) returns None and the query takes the normal path, where the same data
produces the same answer (tests/property/test_native_answer.py and
tests/unit/workers/test_fastpath.py check that).
"""
from __future__ import annotations

import native

from .server import udp_limit

TAG_RRSET = b"E"  # CACHE_KEY_DEF (cache/keys.py)
_VALIDATED_RANK = 16 | 8  # kr_rank AUTH|INSECURE (cache/api.py Rank): the value byte at offset 8


class FastPath:
    def __init__(self, resolver, settings, clock):
        self.resolver = resolver
        self.settings = settings
        self.clock = clock
        self.hits = 0

    def min_rank(self) -> int:
        """kresd get_lowest_rank() for a client without CD: with any trust
        anchor configured, only validated data (INSECURE|AUTH or better) may
        be answered here; names outside every anchor (stored unvalidated)
        then take the full path, which applies the per-name rule."""
        if any(self.settings.trust_anchors.values()):
            return _VALIDATED_RANK
        return 0

    def __call__(self, data: bytes) -> bytes | None:
        cache = self.resolver.cache
        if cache is None or not self.settings.fastpath:
            return None
        try:
            pq = native.parse_query(data)
        except native.ParseError:
            return None
        layers = self.resolver.layers
        for layer in layers:
            if not layer.fast_ok(pq):
                return None
        try:
            value = cache.peek_raw(native.cache_key(pq.qname, TAG_RRSET, pq.qtype))
        except (native.ParseError, ValueError):
            return None
        if value is None or value[8] < self.min_rank():
            return None  # unvalidated data where validation is on: the full path decides
        maxlen = udp_limit(bool(pq.has_opt), pq.udp_size, self.settings.edns_bufsize)
        wire = native.answer(data, pq, value, int(self.clock.time()), self.settings.edns_bufsize, maxlen)
        if wire is None:
            return None
        self.hits += 1
        for layer in layers:
            layer.fast_count(pq)
        return wire
