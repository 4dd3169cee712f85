"""cache/api.py: ranks, TTL countdown, clamps, negative caching, clear, stats."""
from __future__ import annotations

import dns.name
import dns.rdatatype as T
import dns.rrset
import lmdb
import pytest
from .cache_helpers import n, rrset, rrsig, soa

from cache import Cache, CacheError, Rank, is_answer_rank


def stash(cache, rs, rank=Rank.AUTH, sigs=None):
    with cache.writer() as w:
        w.stash_rrset(rs, rank, sigs)


def neg(cache, name, rtype, kind, s=None, auth=(), rank=Rank.AUTH):
    with cache.writer() as w:
        w.stash_negative(n(name), rtype, kind, s or soa(), list(auth), rank)


# -- ranks ---------------------------------------------------------------------
def test_rank_values_match_kresd():
    assert [int(r) for r in (Rank.INITIAL, Rank.OMIT, Rank.TRY, Rank.INDET, Rank.BOGUS,
                             Rank.MISMATCH, Rank.MISSING, Rank.INSECURE, Rank.AUTH,
                             Rank.SECURE)] == [0, 1, 2, 4, 5, 6, 7, 8, 16, 32]


@pytest.mark.parametrize("rank,ok", [
    (Rank.INITIAL | Rank.AUTH, True), (Rank.SECURE | Rank.AUTH, True),
    (Rank.INSECURE | Rank.AUTH, True), (Rank.TRY, False), (Rank.INITIAL, False),
    (Rank.BOGUS | Rank.AUTH, False), (Rank.BOGUS, False), (Rank.SECURE, False),
])
def test_is_answer_rank(rank, ok):
    assert is_answer_rank(rank) is ok


# -- positive data and TTL ---------------------------------------------------------
def test_stash_peek_case_insensitive_and_ttl_countdown(cache, clock):
    stash(cache, rrset("www.Example.org.", 300, "A", "192.0.2.1"))
    hit = cache.peek_rrset(n("WWW.EXAMPLE.ORG."), T.A)
    assert hit.rrset.to_text() == "WWW.EXAMPLE.ORG. 300 IN A 192.0.2.1"
    assert hit.rank == Rank.AUTH and hit.ttl == 300 and hit.rrsigs is None
    clock.advance(100.5)
    assert cache.peek_rrset(n("www.example.org."), T.A).ttl == 200
    assert cache.peek_rrset(n("www.example.org."), T.A).rrset.ttl == 200
    clock.advance(199)
    assert cache.peek_rrset(n("www.example.org."), T.A).ttl == 1
    clock.advance(1)
    assert cache.peek_rrset(n("www.example.org."), T.A) is None
    assert cache.peek_rrset(n("www.example.org."), T.AAAA) is None


def test_rrsigs_stored_and_ttl_is_min(cache):
    stash(cache, rrset("example.org.", 3600, "A", "192.0.2.1"), Rank.SECURE | Rank.AUTH,
          rrsig("example.org.", "A", ttl=100))
    hit = cache.peek_rrset(n("example.org."), T.A)
    assert hit.ttl == 100 and hit.rrsigs.ttl == 100 and len(hit.rrsigs) == 1
    assert hit.rank == Rank.SECURE | Rank.AUTH


def test_clamps_and_runtime_settable(cache):
    stash(cache, rrset("low.", 1, "A", "192.0.2.1"))
    stash(cache, rrset("high.", 10 * 86400, "A", "192.0.2.1"))
    assert cache.peek_rrset(n("low."), T.A).ttl == 5
    assert cache.peek_rrset(n("high."), T.A).ttl == 86400  # kresd 5.6 default max_ttl: 1 day
    cache.min_ttl, cache.max_ttl = 60, 120
    stash(cache, rrset("low2.", 1, "A", "192.0.2.1"))
    stash(cache, rrset("high2.", 1000, "A", "192.0.2.1"))
    assert cache.peek_rrset(n("low2."), T.A).ttl == 60
    assert cache.peek_rrset(n("high2."), T.A).ttl == 120
    with pytest.raises(ValueError):
        cache.max_ttl = -1


def test_zero_min_ttl_zero_ttl_is_not_served(make_cache):
    c = make_cache(min_ttl=0)
    stash(c, rrset("zero.", 0, "A", "192.0.2.1"))
    assert c.peek_rrset(n("zero."), T.A) is None


# -- ranks on overwrite ------------------------------------------------------------
def test_lower_rank_does_not_replace_fresh_higher(cache, clock):
    stash(cache, rrset("ns.example.", 300, "A", "192.0.2.1"), Rank.AUTH)
    stash(cache, rrset("ns.example.", 300, "A", "192.0.2.99"), Rank.TRY)
    hit = cache.peek_rrset(n("ns.example."), T.A)
    assert hit.rank == Rank.AUTH and hit.rrset[0].address == "192.0.2.1"
    assert cache.stats()["skipped_rank"] == 1
    stash(cache, rrset("ns.example.", 300, "A", "192.0.2.2"), Rank.AUTH)  # equal: replaces
    assert cache.peek_rrset(n("ns.example."), T.A).rrset[0].address == "192.0.2.2"
    stash(cache, rrset("ns.example.", 300, "A", "192.0.2.3"), Rank.SECURE | Rank.AUTH)
    assert cache.peek_rrset(n("ns.example."), T.A).rank == Rank.SECURE | Rank.AUTH
    clock.advance(301)
    stash(cache, rrset("ns.example.", 300, "A", "192.0.2.4"), Rank.TRY)  # old one expired
    hit = cache.peek_rrset(n("ns.example."), T.A)
    assert hit.rank == Rank.TRY and hit.rrset[0].address == "192.0.2.4"


def test_nodata_and_rrset_share_a_slot(cache):
    neg(cache, "a.example.org.", T.AAAA, "NODATA")
    stash(cache, rrset("a.example.org.", 300, "AAAA", "2001:db8::1"), Rank.TRY)
    assert cache.peek_rrset(n("a.example.org."), T.AAAA) is None  # blocked by AUTH NODATA
    stash(cache, rrset("a.example.org.", 300, "AAAA", "2001:db8::1"), Rank.AUTH)
    hit = cache.peek_rrset(n("a.example.org."), T.AAAA)
    assert ([rd.address for rd in hit.rrset], hit.rank, hit.ttl) == (["2001:db8::1"], Rank.AUTH, 300)
    assert cache.peek_negative(n("a.example.org."), T.AAAA) is None
    neg(cache, "a.example.org.", T.AAAA, "NODATA")
    assert cache.peek_rrset(n("a.example.org."), T.AAAA) is None
    assert cache.peek_negative(n("a.example.org."), T.AAAA).kind == "NODATA"


def test_positive_answer_removes_nxdomain(cache):
    neg(cache, "gone.example.org.", 0, "NXDOMAIN")
    stash(cache, rrset("gone.example.org.", 300, "A", "192.0.2.1"), Rank.TRY)  # glue: keeps it
    assert cache.peek_negative(n("gone.example.org."), T.A).kind == "NXDOMAIN"
    stash(cache, rrset("gone.example.org.", 300, "A", "192.0.2.1"), Rank.AUTH)
    assert cache.peek_negative(n("gone.example.org."), T.A) is None


# -- negative caching (RFC 2308) ---------------------------------------------------
def test_nxdomain_ttl_is_min_of_soa_ttl_and_minimum(cache, clock):
    nsec = rrset("a.example.org.", 3600, "NSEC", "c.example.org. A RRSIG NSEC")
    neg(cache, "b.example.org.", 0, "NXDOMAIN", soa(ttl=3600, minimum=300), [nsec])
    for t in (T.A, T.MX, T.AAAA):
        hit = cache.peek_negative(n("B.example.org."), t)
        assert hit.kind == "NXDOMAIN" and hit.ttl == 300 and hit.soa.ttl == 300
        assert hit.soa == soa() and hit.authority == [nsec]
    neg(cache, "c.example.org.", T.A, "NODATA", soa(ttl=60, minimum=300))
    hit = cache.peek_negative(n("c.example.org."), T.A)
    assert hit.kind == "NODATA" and hit.ttl == 60 and hit.rank == Rank.AUTH
    assert cache.peek_negative(n("c.example.org."), T.AAAA) is None
    clock.advance(60)
    assert cache.peek_negative(n("c.example.org."), T.A) is None
    assert cache.peek_negative(n("b.example.org."), T.A).ttl == 240


def test_negative_ttl_clamped(cache):
    cache.max_ttl = 100
    neg(cache, "x.example.org.", 0, "NXDOMAIN", soa(ttl=86400, minimum=86400))
    assert cache.peek_negative(n("x.example.org."), T.A).ttl == 100
    cache.min_ttl = 30
    neg(cache, "y.example.org.", 0, "NXDOMAIN", soa(ttl=10, minimum=10))
    assert cache.peek_negative(n("y.example.org."), T.A).ttl == 30


def test_negative_bad_kind_and_missing_soa(cache):
    with cache.writer() as w:
        with pytest.raises(ValueError):
            w.stash_negative(n("a."), 1, "SERVFAIL", soa(), [], Rank.AUTH)
        w.stash_negative(n("a."), 1, "NODATA", rrset("a.", 1, "A", "192.0.2.1"), [], Rank.AUTH)
    assert cache.count() == 0


# -- writer ------------------------------------------------------------------------
def test_writer_is_one_transaction_and_exception_discards(cache):
    with pytest.raises(RuntimeError):
        with cache.writer() as w:
            w.stash_rrset(rrset("a.", 300, "A", "192.0.2.1"), Rank.AUTH)
            raise RuntimeError("request failed")
    assert cache.count() == 0
    with cache.writer() as w:
        for i in range(100):
            w.stash_rrset(rrset(f"h{i}.example.", 300, "A", "192.0.2.1"), Rank.AUTH)
        assert len(w) == 100 and cache.count() == 0  # applied on exit
    assert cache.count() == 100 and cache.stats()["inserts"] == 100


def test_escaped_max_name_and_non_in(cache):
    # the longest possible key: every label byte escaped (2 bytes each)
    long_name = dns.name.Name([b"\x00" * 63] * 3 + [b"\x01" * 61, b""])
    stash(cache, dns.rrset.from_text(long_name, 300, "IN", "A", "192.0.2.1"))
    hit = cache.peek_rrset(long_name, T.A)
    assert hit.rrset.name == long_name and [rd.address for rd in hit.rrset] == ["192.0.2.1"]
    stash(cache, dns.rrset.from_text("ch.", 300, "CH", "TXT", "x"))  # only IN is cached
    assert cache.count() == 1


def test_too_long_key_is_silently_not_cached(cache, monkeypatch):
    import cache.api as api_module
    import cache.keys as keys_module
    # No valid name reaches 511 bytes, so lower the limit on the Python builder
    monkeypatch.setattr(keys_module, "MAX_KEY_LEN", 10)
    monkeypatch.setattr(api_module, "_build_key", keys_module.key)
    stash(cache, rrset("a-long-name.example.", 300, "A", "192.0.2.1"))
    neg(cache, "a-long-name.example.", 0, "NXDOMAIN")
    assert cache.count() == 0
    assert cache.peek_rrset(n("a-long-name.example."), T.A) is None


def test_corrupted_value_is_a_miss(cache, tmp_path):
    stash(cache, rrset("www.example.org.", 300, "A", "192.0.2.1"))
    neg(cache, "nx.example.org.", 0, "NXDOMAIN")
    env = cache._env
    with env.begin(write=True) as txn:
        for k, v in list(txn.cursor()):
            txn.put(k, v[:-3])  # truncated payload
    assert cache.peek_rrset(n("www.example.org."), T.A) is None
    assert cache.peek_negative(n("nx.example.org."), T.A) is None
    with env.begin(write=True) as txn:
        for k, _ in list(txn.cursor()):
            txn.put(k, b"\x01")
    assert cache.peek_rrset(n("www.example.org."), T.A) is None
    assert cache.stats()["corrupt"] == 3  # www and nx truncated, then www unreadable
    stash(cache, rrset("www.example.org.", 300, "A", "192.0.2.2"), Rank.TRY)  # overwrites junk
    assert cache.peek_rrset(n("www.example.org."), T.A).rrset[0].address == "192.0.2.2"


# -- clear / count / stats ---------------------------------------------------------
def fill(cache):
    with cache.writer() as w:
        for name in ("example.org.", "www.example.org.", "a.b.example.org.", "example.net.",
                     "xexample.org.", "org."):
            w.stash_rrset(rrset(name, 300, "A", "192.0.2.1"), Rank.AUTH)
            w.stash_rrset(rrset(name, 300, "TXT", "t"), Rank.AUTH)
        w.stash_rrset(rrset(".", 300, "NS", "a.root-servers.net."), Rank.AUTH)
        w.stash_negative(n("nx.example.org."), 0, "NXDOMAIN", soa(), [], Rank.AUTH)


def test_clear_all_name_subtree(cache):
    fill(cache)
    assert cache.count() == 14
    assert cache.clear(n("example.org.")) == 2  # the name only
    assert cache.peek_rrset(n("example.org."), T.A) is None
    assert cache.peek_rrset(n("www.example.org."), T.A).rrset[0].address == "192.0.2.1"
    assert cache.clear(n("example.org."), subtree=True) == 5  # www, a.b (2 each), nx
    assert cache.peek_rrset(n("www.example.org."), T.A) is None
    assert cache.peek_negative(n("nx.example.org."), T.A) is None
    assert cache.peek_rrset(n("xexample.org."), T.A).rrset[0].address == "192.0.2.1"
    assert cache.peek_rrset(n("org."), T.TXT).rrset[0].strings == (b"t",)
    assert cache.clear(n("nothing.test."), subtree=True) == 0
    assert cache.clear(dns.name.root) == 1  # root's own NS only
    assert cache.count() == 6
    assert cache.clear() == 6 and cache.count() == 0


def test_clear_root_subtree_is_everything(cache):
    fill(cache)
    assert cache.clear(dns.name.root, subtree=True) == 14
    assert cache.count() == 0


def test_stats_counters(cache):
    stash(cache, rrset("a.", 300, "A", "192.0.2.1"))
    cache.peek_rrset(n("a."), T.A)
    cache.peek_rrset(n("b."), T.A)
    st = cache.stats()
    assert (st["hits"], st["misses"], st["inserts"], st["entries"]) == (1, 1, 1, 1)
    assert st["map_size"] == 8 << 20
    assert st["used_bytes"] == st["page_size"]  # one entry: one leaf page
    assert st["usage_bytes"] % st["page_size"] == 0 and st["usage_bytes"] >= st["used_bytes"]


# -- lifecycle ---------------------------------------------------------------------
def test_not_open_raises_cache_error(tmp_path):
    c = Cache(str(tmp_path / "c"), 1 << 20)
    assert not (tmp_path / "c").exists()  # nothing happens before open()
    with pytest.raises(CacheError):
        c.peek_rrset(n("a."), T.A)
    with pytest.raises(CacheError):
        c.writer()
    c.open()
    assert (tmp_path / "c" / "data.mdb").exists()
    c.close()
    with pytest.raises(CacheError):
        c.count()


def test_open_bad_dir_is_cache_error(tmp_path):
    f = tmp_path / "file"
    f.write_text("x")
    with pytest.raises(CacheError):
        Cache(str(f), 1 << 20).open()


def test_reopen_keeps_entries(make_cache, tmp_path):
    c = make_cache()
    stash(c, rrset("a.", 300, "A", "192.0.2.1"))
    c.close()
    c.open()
    hit = c.peek_rrset(n("a."), T.A)
    assert (hit.rrset[0].address, hit.ttl, hit.rank) == ("192.0.2.1", 300, Rank.AUTH)
    assert isinstance(lmdb.version(), tuple)


def test_nodata_without_soa_is_kept_for_min_ttl_only(cache, clock):
    with cache.writer() as w:
        w.stash_negative(n("nottl.example."), T.A, "NODATA", None, [], Rank.AUTH)
        w.stash_negative(n("nottl.example."), 0, "NXDOMAIN", None, [], Rank.AUTH)  # not without SOA
    hit = cache.peek_negative(n("nottl.example."), T.A)
    assert hit.kind == "NODATA" and hit.soa is None and hit.authority == [] and hit.ttl == cache.min_ttl
    assert cache.peek_negative(n("nottl.example."), T.AAAA) is None
    clock.advance(cache.min_ttl)
    assert cache.peek_negative(n("nottl.example."), T.A) is None


def test_stale_window_serves_expired_entries_with_ttl_1(cache, clock):
    stash(cache, rrset("s.example.", 60, "A", "192.0.2.9"))
    neg(cache, "x.example.", 0, "NXDOMAIN", soa(ttl=60, minimum=60))
    clock.advance(61)
    assert cache.peek_rrset(n("s.example."), T.A) is None
    hit = cache.peek_rrset(n("s.example."), T.A, stale=100)
    assert hit.ttl == 1 and hit.rrset.ttl == 1 and [rd.address for rd in hit.rrset] == ["192.0.2.9"]
    assert cache.peek_negative(n("x.example."), T.A, stale=100).ttl == 1
    clock.advance(100)  # now 101 s past expiry: outside the window
    assert cache.peek_rrset(n("s.example."), T.A, stale=100) is None
    assert cache.peek_negative(n("x.example."), T.A, stale=100) is None
    stash(cache, rrset("f.example.", 60, "A", "192.0.2.8"))
    assert cache.peek_rrset(n("f.example."), T.A, stale=100).ttl == 60  # fresh data keeps its TTL
