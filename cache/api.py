"""Cache facade (INTERFACE FIRST; the implementation follows this contract).

Owns: what the resolver may ask of the cache.
Must not: know about requests, layers or sockets.

    class Rank(enum.IntFlag)          # kresd lib/cache/api.h kr_rank
        INITIAL=0 OMIT=1 TRY=2 INDET=4 BOGUS=5 MISMATCH=6 MISSING=7 INSECURE=8
        AUTH=16 SECURE=32
        # glue/non-authoritative data is stored as TRY; authoritative answers as
        # INITIAL|AUTH (no DNSSEC yet). `is_answer_rank(rank)` is True when the
        # data may be served as an answer (AUTH set, not BOGUS).

    class Cache:
        def __init__(self, path: str, size: int, *, min_ttl=5, max_ttl=6*86400,
                     clock=time.time): ...      # does not open anything yet
        def open(self) -> None                  # after any fork; creates path/data.mdb
        def close(self) -> None
        def peek_rrset(self, name: Name, rtype: int) -> CachedRRset | None
            # fresh entries only; .rrset is a dns.rrset.RRset whose TTL is the
            # remaining TTL; .rank; .rrsigs (RRset | None); .ttl (remaining)
        def peek_negative(self, name: Name, rtype: int) -> CachedNegative | None
            # NXDOMAIN for the name (any type) or NODATA for (name, rtype);
            # .kind ('NXDOMAIN'|'NODATA'), .soa (RRset, remaining TTL),
            # .authority (list[RRset], remaining TTL), .rank, .ttl
        def writer(self) -> Writer              # one RW transaction per request
        class Writer:  (context manager; commits on exit unless an exception)
            def stash_rrset(self, rrset, rank, rrsigs=None) -> None
                # TTL clamped to [min_ttl, max_ttl]; a fresh entry with a
                # higher rank is never replaced by a lower one
            def stash_negative(self, name, rtype, kind, soa, authority, rank) -> None
                # TTL = min(SOA TTL, SOA MINIMUM) (RFC 2308), clamped
        def clear(self, name: Name | None = None, subtree: bool = False) -> int
        def count(self) -> int
        def stats(self) -> dict
    A full map is never an error to the caller: entries are evicted and the
    write retried. A format-version key is checked at open; a mismatch clears.
"""
