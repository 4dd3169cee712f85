"""Full map: eviction (expired first, then oldest, then all) and no error to callers."""
from __future__ import annotations

import dns.rdatatype as T
from .cache_helpers import n, rrset

from cache import Rank
from cache.gc import collect

TINY = 128 * 1024


def big(name: str, ttl: int = 300):
    return rrset(name, ttl, "TXT", *[f'"{name} {i:03d} ' + "x" * 200 + '"' for i in range(4)])


def assert_big(c, name: str, ttl: int) -> None:
    """name is cached with exactly big(name)'s strings and `ttl` seconds left."""
    hit = c.peek_rrset(n(name), T.TXT)
    assert hit is not None, f"{name} missing"
    assert sorted(rd.strings for rd in hit.rrset) == sorted(rd.strings for rd in big(name))
    assert (hit.ttl, hit.rrset.ttl, hit.rank) == (ttl, ttl, Rank.AUTH), (name, hit.ttl, hit.rank)


def test_tiny_map_never_raises_and_keeps_latest(make_cache):
    c = make_cache(size=TINY)
    for batch in range(60):
        with c.writer() as w:
            for i in range(10):
                w.stash_rrset(big(f"r{batch}-{i}.example."), Rank.AUTH)
        for i in range(10):  # what was just written is readable
            assert_big(c, f"r{batch}-{i}.example.", 300)
    st = c.stats()
    assert st["evictions"] > 0 and st["write_errors"] == 0
    assert 0 < c.count() < 600


def test_expired_are_evicted_first(make_cache, clock):
    c = make_cache(size=TINY)
    keep = [f"keep{i}.example." for i in range(5)]
    with c.writer() as w:
        for name in keep:
            w.stash_rrset(big(name, ttl=86400), Rank.AUTH)
    i = 0
    while c.stats()["evictions"] == 0:  # fill the map with short-lived entries
        with c.writer() as w:
            w.stash_rrset(big(f"short{i}.example.", ttl=10), Rank.AUTH)
        i += 1
        if i == 20:
            clock.advance(60)  # the first 20 expire; the rest stays fresh
        assert i < 5000
    st = c.stats()
    assert st["evictions"] == 20 and st["map_full"] == 0  # evicted before the map filled up
    for name in keep:
        assert_big(c, name, 86400 - 60)
    for j in range(20, i):
        assert_big(c, f"short{j}.example.", 10)


def test_soonest_expiring_go_when_nothing_expired(make_cache, clock):
    c = make_cache(size=TINY)
    with c.writer() as w:
        w.stash_rrset(big("long.example.", ttl=86400), Rank.AUTH)
    for i in range(200):
        with c.writer() as w:
            w.stash_rrset(big(f"s{i}.example.", ttl=600 + i), Rank.AUTH)
        clock.advance(1)
    assert c.stats()["evictions"] > 0
    assert_big(c, "long.example.", 86400 - 200)
    assert_big(c, "s199.example.", 600 + 199 - 1)
    assert c.peek_rrset(n("s0.example."), T.TXT) is None


def test_map_full_fallback_inside_one_big_transaction(make_cache):
    c = make_cache(size=TINY)
    c.evict_threshold = 1.0  # no early eviction: MapFullError must be handled
    c_limit = c._limit
    c._limit = lambda: 1.0  # type: ignore[method-assign]
    for b in range(30):
        with c.writer() as w:
            for i in range(10):
                w.stash_rrset(big(f"b{b}-{i}.example."), Rank.AUTH)
    st = c.stats()
    assert st["map_full"] > 0 and st["write_errors"] == 0
    for i in range(10):  # the last transaction is there as a whole
        assert_big(c, f"b29-{i}.example.", 300)
    c._limit = c_limit  # type: ignore[method-assign]


def test_value_larger_than_map_is_dropped_quietly(make_cache):
    c = make_cache(size=TINY)
    with c.writer() as w:
        w.stash_rrset(big("small.example."), Rank.AUTH)
    huge = rrset("huge.example.", 300, "TXT", *[f'"{i} ' + "y" * 250 + '"' for i in range(600)])
    with c.writer() as w:
        w.stash_rrset(huge, Rank.AUTH)
    assert c.peek_rrset(n("huge.example."), T.TXT) is None
    assert c.stats()["write_errors"] == 1
    with c.writer() as w:  # the cache is still usable
        w.stash_rrset(big("after.example."), Rank.AUTH)
    assert_big(c, "after.example.", 300)


def test_gc_collect_threshold(make_cache, clock):
    c = make_cache(size=1 << 20)
    for b in range(20):
        with c.writer() as w:
            for i in range(20):
                w.stash_rrset(big(f"g{b}-{i}.example.", ttl=10 if b < 5 else 3600), Rank.AUTH)
        clock.advance(1)
    clock.advance(30)
    total = c.count()
    dry = collect(c, threshold=0.0, dry_run=True)
    assert dry.expired == 100 and c.count() == total
    assert collect(c, threshold=1.0).expired == 0  # below threshold: nothing to do
    res = collect(c, threshold=0.05, fraction=0.2)
    assert res.expired == 100 and res.oldest > 0
    assert res.usage_after <= 0.05 or c.count() == 0
    assert c.count() == 300 - res.oldest
    # soonest expiring went first: every batch evicted is older than every batch left
    names = {(b, i) for b in range(5, 20) for i in range(20)}
    alive = {(b, i) for b, i in names if c.peek_rrset(n(f"g{b}-{i}.example."), T.TXT) is not None}
    gone = names - alive
    assert len(alive) == c.count() and len(gone) == res.oldest
    assert max(b for b, _ in gone) <= min((b for b, _ in alive), default=20)
    assert res.usage_after < res.usage_before


def test_eviction_keeps_an_entry_rewritten_after_it_was_chosen(make_cache, clock):
    """Eviction picks keys in a read snapshot and deletes them in a later write
    transaction; another process may stash a fresh entry under a picked key in
    between. That fresh entry must survive (expired and soonest-expiring alike)."""
    c = make_cache()
    with c.writer() as w:
        w.stash_rrset(big("hot.example.", ttl=10), Rank.AUTH)
        w.stash_rrset(big("cold.example.", ttl=10), Rank.AUTH)
        w.stash_rrset(big("long.example.", ttl=86400), Rank.AUTH)
    clock.advance(60)  # hot and cold expired
    expired = c.expired_keys()
    oldest = c.soonest_expiring_keys(0.7)  # hot and cold: they expire first
    assert len(expired) == len(oldest) == 2
    with c.writer() as w:  # the other writer, after the snapshot
        w.stash_rrset(rrset("hot.example.", 300, "TXT", '"fresh"'), Rank.AUTH)
    assert c.delete_keys(expired) == 1  # cold only
    assert c.delete_keys(oldest) == 0  # cold is gone already, hot is not the one picked
    hit = c.peek_rrset(n("hot.example."), T.TXT)
    assert [rd.strings for rd in hit.rrset] == [(b"fresh",)] and hit.ttl == 300
    assert c.peek_rrset(n("cold.example."), T.TXT) is None
    assert_big(c, "long.example.", 86400 - 60)
    # keys without a snapshot (a plain list) are deleted as asked
    assert c.delete_keys([k for k in oldest]) == 1
    assert c.peek_rrset(n("hot.example."), T.TXT) is None
