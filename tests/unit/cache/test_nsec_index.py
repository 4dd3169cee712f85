"""The NSEC/NSEC3 index (cache/nsec.py keys, Cache.peek_nsec/peek_nsec3, Writer.stash_nsec)."""
from __future__ import annotations

import base64

import dns.dnssec
import dns.name
import dns.rdatatype as T
import pytest
from .cache_helpers import n, rrset, rrsig, soa

from cache import Rank
from cache.keys import key, TAG_RRSET
from cache.nsec import Nsec3Params, hash_of_owner, nsec3_key, nsec_key, owner_of_hash, zone_prefix

SECURE = Rank.AUTH | Rank.SECURE
ZONE = n("example.org.")


def nsec(owner: str, nxt: str, types: str = "A RRSIG NSEC", ttl: int = 3600):
    return rrset(owner, ttl, "NSEC", f"{nxt} {types}")


def stash(cache, zone, *rrsets, rank=SECURE, soa_minimum=None, sigs=None):
    with cache.writer() as w:
        for rs in rrsets:
            w.stash_nsec(zone, rs, rank, sigs, soa_minimum)


CHAIN = [("example.org.", "a.example.org."), ("a.example.org.", "b.a.example.org."),
         ("b.a.example.org.", "d.example.org."), ("d.example.org.", "example.org.")]


@pytest.fixture
def chain(cache):
    stash(cache, ZONE, *(nsec(o, x) for o, x in CHAIN))
    return cache


@pytest.mark.parametrize("name, owner, exact", [
    ("example.org.", "example.org.", True),
    ("0.example.org.", "example.org.", False),  # before the first child: the apex
    ("a.example.org.", "a.example.org.", True),
    ("x.a.example.org.", "b.a.example.org.", False),  # a.example.org < b.a < x.a < d
    ("c.a.example.org.", "b.a.example.org.", False),
    ("a.a.example.org.", "a.example.org.", False),
    ("c.example.org.", "b.a.example.org.", False),
    ("d.example.org.", "d.example.org.", True),
    ("zzz.example.org.", "d.example.org.", False),  # past the last: its next wraps to the apex
    ("deep.z.example.org.", "d.example.org.", False),
])
def test_predecessor(chain, name, owner, exact):
    hit = chain.peek_nsec(ZONE, n(name))
    assert hit is not None
    assert hit.rrset.name == n(owner)
    assert hit.rrset.rdtype == T.NSEC
    assert hit.exact is exact
    assert hit.rank == SECURE


def test_zone_boundaries(cache):
    stash(cache, ZONE, nsec("m.example.org.", "n.example.org."))
    stash(cache, n("sub.m.example.org."), nsec("sub.m.example.org.", "sub.m.example.org."))
    stash(cache, n("org."), nsec("example.org.", "f.org.", "NS DS RRSIG NSEC"))
    # nothing of example.org. before its m.: no predecessor inside the zone
    assert cache.peek_nsec(ZONE, n("a.example.org.")) is None
    # the child zone's apex NSEC is not the parent's
    hit = cache.peek_nsec(ZONE, n("x.sub.m.example.org."))
    assert hit.rrset.name == n("m.example.org.") and hit.rrset[0].next == n("n.example.org.")
    assert cache.peek_nsec(n("sub.m.example.org."), n("x.sub.m.example.org.")).rrset.name == \
        n("sub.m.example.org.")
    # the parent's NSEC at the delegation is in the parent's index only
    assert cache.peek_nsec(n("org."), n("example.org.")).rrset[0].next == n("f.org.")
    assert cache.peek_nsec(n("org."), n("a.org.")) is None
    # names outside the zone are never looked up
    assert cache.peek_nsec(ZONE, n("example.com.")) is None


def test_root_zone(cache):
    root = dns.name.root
    stash(cache, root, nsec(".", "aaa.", "NS SOA RRSIG NSEC DNSKEY"), nsec("sk.", "ski.", "NS RRSIG NSEC"))
    assert cache.peek_nsec(root, n("deep.sk2.")).rrset.name == n("sk.")
    assert cache.peek_nsec(root, n("*.")).rrset.name == root
    assert cache.peek_nsec(root, n("sk.")).exact


def test_expiry_and_soa_minimum(cache, clock):
    stash(cache, ZONE, nsec("example.org.", "b.example.org.", ttl=3600), soa_minimum=300)
    hit = cache.peek_nsec(ZONE, n("a.example.org."))
    assert hit.ttl == 300 and hit.rrset.ttl == 300
    clock.advance(299)
    assert cache.peek_nsec(ZONE, n("a.example.org.")).ttl == 1
    clock.advance(1)
    assert cache.peek_nsec(ZONE, n("a.example.org.")) is None


def test_expired_predecessor_is_a_miss(cache, clock):
    """An expired closest predecessor is a miss: no stepping back to an older record."""
    stash(cache, ZONE, nsec("example.org.", "z.example.org.", ttl=1000))
    stash(cache, ZONE, nsec("m.example.org.", "n.example.org.", ttl=10))
    clock.advance(20)
    assert cache.peek_nsec(ZONE, n("mm.example.org.")) is None
    assert cache.peek_nsec(ZONE, n("b.example.org.")).rrset.name == ZONE


def test_ttl_capped_by_rrsig_and_clamped(make_cache):
    c = make_cache(min_ttl=60)
    stash(c, ZONE, nsec("example.org.", "b.example.org.", ttl=3600),
          sigs=rrsig("example.org.", "NSEC", ttl=120))
    hit = c.peek_nsec(ZONE, ZONE)
    assert hit.ttl == 120 and hit.rrsigs is not None and hit.rrsigs[0].type_covered == T.NSEC
    stash(c, ZONE, nsec("example.org.", "b.example.org.", ttl=3600), soa_minimum=5)
    assert c.peek_nsec(ZONE, ZONE).ttl == 60  # raised to min_ttl like any entry


def test_rank_rule_on_overwrite(cache):
    stash(cache, ZONE, nsec("example.org.", "b.example.org."))
    stash(cache, ZONE, nsec("example.org.", "c.example.org."), rank=Rank.AUTH)
    hit = cache.peek_nsec(ZONE, ZONE)
    assert hit.rrset[0].next == n("b.example.org.") and hit.rank == SECURE


def test_clear(chain, cache):
    with cache.writer() as w:
        w.stash_rrset(soa(), SECURE)
    total = cache.count()
    # one name's E/N/X entries only: the index survives (its keys never look exact)
    assert cache.clear(ZONE) == 1
    assert cache.clear(n("a.example.org.")) == 0
    assert cache.count() == total - 1
    assert cache.peek_nsec(ZONE, n("a.example.org.")).exact
    assert cache.clear(ZONE, subtree=True) == len(CHAIN)
    assert cache.peek_nsec(ZONE, n("a.example.org.")) is None
    stash(cache, ZONE, *(nsec(o, x) for o, x in CHAIN))
    assert cache.clear() == len(CHAIN)
    assert cache.peek_nsec(ZONE, ZONE) is None


def test_keys_never_look_exact():
    """clear(name) takes a key for name's entry when it is exactly lf + 0x00 + TAG + 2 bytes."""
    for owner in ("example.org.", "a.example.org.", "ab.example.org.", "a.b.example.org."):
        k = nsec_key(ZONE, n(owner))
        assert len(k) != len(zone_prefix(ZONE)) + 3
        assert k != key(ZONE, TAG_RRSET, 1)
    p = Nsec3Params(1, 0, b"")
    assert len(nsec3_key(ZONE, p, b"\x00")) > len(zone_prefix(ZONE)) + 3


def nsec3(zone: str, name: str, nxt_hash: bytes, salt: str = "AABB", iters: int = 2, flags: int = 0):
    z = n(zone)
    h = dns.dnssec.nsec3_hash(n(name), None if salt == "-" else salt, iters, 1).lower()
    nxt = base64.b32hexencode(nxt_hash).rstrip(b"=").decode()
    return rrset(f"{h}.{zone}", 3600, "NSEC3", f"1 {flags} {iters} {salt} {nxt} A RRSIG"), \
        hash_of_owner(n(f"{h}.{zone}")), z


def test_nsec3_predecessor_and_wrap(cache):
    recs = [nsec3("example.org.", nm, b"\x00" * 20) for nm in ("example.org.", "a.example.org.",
                                                               "b.example.org.")]
    hashes = sorted(h for _, h, _ in recs)
    stash(cache, ZONE, *(r for r, _, _ in recs))
    params = Nsec3Params(1, 2, bytes.fromhex("AABB"))
    assert cache.nsec3_params(ZONE) == [params]
    for h in hashes:  # exact
        hit = cache.peek_nsec3(ZONE, params, h)
        assert hit.exact and hash_of_owner(hit.rrset.name) == h
    mid = bytes([hashes[0][0]]) + b"\xff" * 19
    if mid < hashes[1]:
        hit = cache.peek_nsec3(ZONE, params, mid)
        assert not hit.exact and hash_of_owner(hit.rrset.name) == hashes[0]
    # past the greatest and below the smallest: the greatest (the chain wraps)
    for h in (b"\xff" * 20, b"\x00" * 20):
        if h in hashes:
            continue
        hit = cache.peek_nsec3(ZONE, params, h)
        assert hash_of_owner(hit.rrset.name) == hashes[-1]
    # another parameter set and another zone see nothing
    assert cache.peek_nsec3(ZONE, Nsec3Params(1, 3, bytes.fromhex("AABB")), hashes[0]) is None
    assert cache.peek_nsec3(n("example.com."), params, hashes[0]) is None


def test_nsec3_params_several(cache):
    a, _, _ = nsec3("example.org.", "a.example.org.", b"\x01" * 20, salt="01", iters=1)
    b, _, _ = nsec3("example.org.", "a.example.org.", b"\x01" * 20, salt="-", iters=0)
    stash(cache, ZONE, a, b)
    assert set(cache.nsec3_params(ZONE)) == {Nsec3Params(1, 1, b"\x01"), Nsec3Params(1, 0, b"")}


def test_nsec3_owner_round_trip():
    h = bytes(range(20))
    assert hash_of_owner(owner_of_hash(ZONE, h)) == h


def test_not_indexed(cache):
    with cache.writer() as w:
        w.stash_nsec(ZONE, nsec("a.example.com.", "b.example.com."), SECURE)  # outside the zone
        w.stash_nsec(ZONE, rrset("notbase32-x.example.org.", 60, "NSEC3",
                                 "1 0 0 - 0000 A"), SECURE)
        w.stash_nsec(ZONE, rrset("0000.a.example.org.", 60, "NSEC3", "1 0 0 - 0000 A"), SECURE)
        with pytest.raises(ValueError):
            w.stash_nsec(ZONE, rrset("a.example.org.", 60, "A", "192.0.2.1"), SECURE)
    assert cache.count() == 0
