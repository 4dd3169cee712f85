"""Aggressive use of cached NSEC/NSEC3 (RFC 8198): workers/layers/aggressive.py
over a real cache, with the proof modules of workers/dnssec."""
from __future__ import annotations

import base64

import dns.dnssec
import dns.name
import dns.rdatatype as T
import dns.rrset
import pytest

from cache import Cache, Rank
from workers.dnssec import Status
from workers.layers import aggressive
from workers.request import Outcome

NOW = 1_700_000_000
SECURE = Rank.AUTH | Rank.SECURE
INSECURE = Rank.AUTH | Rank.INSECURE
ZONE = dns.name.from_text("example.org.")


def n(text):
    return dns.name.from_text(text)


def rrset(owner, ttl, rtype, *rdatas):
    return dns.rrset.from_text(owner, ttl, "IN", rtype, *rdatas)


def sig(rr, labels=None):
    labels = len(rr.name.labels) - 1 if labels is None else labels
    return rrset(rr.name.to_text(), rr.ttl, "RRSIG",
                 f"{T.to_text(rr.rdtype)} 13 {labels} {rr.ttl} 20300101000000 20200101000000 "
                 "12345 example.org. dGVzdHNpZ25hdHVyZWRhdGE=")


SOA = rrset("example.org.", 3600, "SOA", "ns.example.org. h.example.org. 1 7200 3600 1209600 300")

NSEC_CHAIN = [
    ("example.org.", "a.example.org.", "NS SOA RRSIG NSEC DNSKEY"),
    ("a.example.org.", "d.example.org.", "A RRSIG NSEC"),
    ("d.example.org.", "sub.example.org.", "TXT RRSIG NSEC"),
    ("sub.example.org.", "w.example.org.", "NS DS RRSIG NSEC"),  # a secure delegation
    ("w.example.org.", "*.w.example.org.", "A RRSIG NSEC"),
    ("*.w.example.org.", "x.w.example.org.", "TXT RRSIG NSEC"),
    ("x.w.example.org.", "example.org.", "A RRSIG NSEC"),
]


@pytest.fixture
def clock():
    class Clock:
        now = NOW

        def __call__(self):
            return self.now
    return Clock()


@pytest.fixture
def cache(tmp_path, clock):
    c = Cache(str(tmp_path / "cache"), 8 << 20, clock=clock)
    c.open()
    yield c
    c.close()


def nsec_rrsets(chain=NSEC_CHAIN):
    return [rrset(o, 3600, "NSEC", f"{x} {t}") for o, x, t in chain]


def fill(cache, rrsets, rank=SECURE, soa_rank=SECURE, soa_minimum=300):
    if rank == SECURE:
        aggressive.remember(cache, ZONE, rrsets, sig, soa_minimum, soa=SOA, soa_sigs=sig(SOA))
    else:
        with cache.writer() as w:
            for rr in rrsets:
                w.stash_nsec(ZONE, rr, rank, sig(rr), soa_minimum)
    if soa_rank != SECURE or rank != SECURE:
        with cache.writer() as w:
            w.stash_rrset(SOA, soa_rank, sig(SOA))


def names(rrsets, rtype):
    return {rr.name for rr in rrsets if rr.rdtype == rtype}


def check_authority(res, *owners, rtype=T.NSEC):
    auth = res.authority
    assert names(auth, T.SOA) == {ZONE}
    assert names(auth, rtype) == {n(o) if isinstance(o, str) else o for o in owners}
    covered = {(rr.name, rr.covers) for rr in auth if rr.rdtype == T.RRSIG}
    for rr in auth:
        if rr.rdtype != T.RRSIG:
            assert (rr.name, rr.rdtype) in covered, f"no RRSIG for {rr.name}"


# -- NSEC -------------------------------------------------------------------------

def test_nxdomain_with_wildcard_denial(cache):
    fill(cache, nsec_rrsets())
    res = aggressive.synthesize(cache, ZONE, n("b.example.org."), T.A, NOW)
    assert res is not None and res.outcome is Outcome.NXDOMAIN
    assert res.status is Status.SECURE and res.answer == []
    # a.example.org. covers b; the apex NSEC covers *.example.org.
    check_authority(res, "a.example.org.", "example.org.")


def test_nxdomain_deeper_name_same_interval(cache):
    fill(cache, nsec_rrsets())
    res = aggressive.synthesize(cache, ZONE, n("deep.b.example.org."), T.DS, NOW)
    assert res.outcome is Outcome.NXDOMAIN


def test_nodata(cache):
    fill(cache, nsec_rrsets())
    res = aggressive.synthesize(cache, ZONE, n("a.example.org."), T.MX, NOW)
    assert res.outcome is Outcome.NODATA and res.status is Status.SECURE
    check_authority(res, "a.example.org.")


def test_no_synthesis_when_the_type_exists(cache):
    fill(cache, nsec_rrsets())
    assert aggressive.synthesize(cache, ZONE, n("a.example.org."), T.A, NOW) is None
    assert aggressive.synthesize(cache, ZONE, n("example.org."), T.SOA, NOW) is None


def test_wildcard_nodata(cache):
    fill(cache, nsec_rrsets())
    res = aggressive.synthesize(cache, ZONE, n("q.w.example.org."), T.A, NOW)
    assert res.outcome is Outcome.NODATA
    check_authority(res, "*.w.example.org.")  # covers q.w and matches the wildcard
    assert aggressive.synthesize(cache, ZONE, n("q.w.example.org."), T.TXT, NOW) is None


def test_wildcard_answer_from_remembered_expansion(cache):
    fill(cache, nsec_rrsets())
    txt = rrset("q.w.example.org.", 600, "TXT", '"hello"')
    aggressive.remember_wildcard(cache, txt, sig(txt, labels=3), 3)
    assert cache.peek_rrset(n("*.w.example.org."), T.TXT).rank == SECURE
    res = aggressive.synthesize(cache, ZONE, n("r.w.example.org."), T.TXT, NOW)
    assert res.outcome is Outcome.ANSWER and res.status is Status.SECURE
    rr, rs = res.answer
    assert rr.name == n("r.w.example.org.") and rr[0].strings == (b"hello",)
    assert rs.rdtype == T.RRSIG and rs.name == rr.name and rs[0].labels == 3
    assert names(res.authority, T.NSEC) == {n("*.w.example.org.")}


def test_wildcard_cname_answer(cache):
    fill(cache, nsec_rrsets([("example.org.", "*.example.org.", "NS SOA RRSIG NSEC DNSKEY"),
                             ("*.example.org.", "example.org.", "CNAME RRSIG NSEC")]))
    cname = rrset("q.example.org.", 600, "CNAME", "target.example.net.")
    aggressive.remember_wildcard(cache, cname, sig(cname, labels=2), 2)
    res = aggressive.synthesize(cache, ZONE, n("z.example.org."), T.A, NOW)
    assert res.outcome is Outcome.CNAME and res.target == n("target.example.net.")
    assert res.answer[0].name == n("z.example.org.")


def test_no_synthesis_across_a_delegation(cache):
    fill(cache, nsec_rrsets())
    assert aggressive.synthesize(cache, ZONE, n("sub.example.org."), T.A, NOW) is None
    assert aggressive.synthesize(cache, ZONE, n("x.sub.example.org."), T.A, NOW) is None
    assert aggressive.synthesize(cache, ZONE, n("sub.example.org."), T.DS, NOW) is None  # DS exists
    # a DS query is the parent's: the apex's DS is not in this zone
    assert aggressive.synthesize(cache, ZONE, ZONE, T.DS, NOW) is None


def test_insecure_rank_refused(cache):
    fill(cache, nsec_rrsets(), rank=INSECURE)
    assert aggressive.synthesize(cache, ZONE, n("b.example.org."), T.A, NOW) is None
    assert aggressive.synthesize(cache, ZONE, n("a.example.org."), T.MX, NOW) is None


def test_insecure_soa_refused(cache):
    fill(cache, nsec_rrsets())
    with cache.writer() as w:
        w.stash_rrset(SOA, Rank.AUTH, sig(SOA))  # the rank rule keeps SECURE ...
    cache.clear(ZONE)  # ... so drop it and stash an unvalidated one
    with cache.writer() as w:
        w.stash_rrset(SOA, Rank.AUTH, sig(SOA))
    assert aggressive.synthesize(cache, ZONE, n("b.example.org."), T.A, NOW) is None


DNSKEY = rrset("example.org.", 3600, "DNSKEY", "257 3 13 dGVzdGtleWRhdGE=")


def test_zone_found_from_its_secure_dnskey(cache):
    fill(cache, nsec_rrsets())
    assert aggressive.synthesize(cache, None, n("deep.b.example.org."), T.A, NOW) is None  # no keys
    with cache.writer() as w:
        w.stash_rrset(DNSKEY, SECURE, sig(DNSKEY))
    res = aggressive.synthesize(cache, None, n("deep.b.example.org."), T.A, NOW)
    assert res.outcome is Outcome.NXDOMAIN
    assert aggressive.synthesize(cache, None, n("a.example.org."), T.MX, NOW).outcome is Outcome.NODATA
    assert aggressive.synthesize(cache, None, n("b.example.com."), T.A, NOW) is None
    # a cut below the zone whose keys are not cached stops the walk
    with cache.writer() as w:
        w.stash_rrset(rrset("b.example.org.", 3600, "NS", "ns.example.net."), Rank.AUTH)
    assert aggressive.synthesize(cache, None, n("deep.b.example.org."), T.A, NOW) is None


def test_zone_with_unvalidated_keys_refused(cache):
    fill(cache, nsec_rrsets())
    with cache.writer() as w:
        w.stash_rrset(DNSKEY, Rank.AUTH, sig(DNSKEY))
    assert aggressive.synthesize(cache, None, n("b.example.org."), T.A, NOW) is None


def test_expired_records_are_misses(cache, clock):
    fill(cache, nsec_rrsets(), soa_minimum=300)  # RFC 8198 5.4: min(TTL, SOA MINIMUM)
    clock.now += 299
    assert aggressive.synthesize(cache, ZONE, n("b.example.org."), T.A, NOW) is not None
    clock.now += 1
    assert aggressive.synthesize(cache, ZONE, n("b.example.org."), T.A, NOW) is None


def test_nothing_cached(cache):
    assert aggressive.synthesize(cache, ZONE, n("b.example.org."), T.A, NOW) is None
    assert aggressive.synthesize(None, ZONE, n("b.example.org."), T.A, NOW) is None


# -- NSEC3 ------------------------------------------------------------------------

SALT, ITERS = "AABB", 2


def h(name):
    return dns.dnssec.nsec3_hash(n(name), SALT, ITERS, 1).lower()


def nsec3_chain(existing, flags=0):
    """An NSEC3 chain over `existing` {name: types}, each record's next the following hash."""
    hashed = sorted((base64.b32hexdecode(h(nm).upper()), nm) for nm in existing)
    out = []
    for i, (raw, nm) in enumerate(hashed):
        nxt = base64.b32hexencode(hashed[(i + 1) % len(hashed)][0]).decode().rstrip("=")
        out.append(rrset(f"{h(nm)}.example.org.", 3600, "NSEC3",
                         f"1 {flags} {ITERS} {SALT} {nxt} {existing[nm]}"))
    return out


EXISTING = {"example.org.": "NS SOA RRSIG DNSKEY NSEC3PARAM", "a.example.org.": "A RRSIG",
            "w.example.org.": "", "*.w.example.org.": "TXT RRSIG", "sub.example.org.": "NS DS"}


def nsec3_owner(name):
    return n(f"{h(name)}.example.org.")


def test_nsec3_nxdomain(cache):
    fill(cache, nsec3_chain(EXISTING))
    res = aggressive.synthesize(cache, ZONE, n("b.example.org."), T.A, NOW)
    assert res is not None and res.outcome is Outcome.NXDOMAIN and res.status is Status.SECURE
    owners = names(res.authority, T.NSEC3)
    assert nsec3_owner("example.org.") in owners  # the closest encloser
    assert 2 <= len(owners) <= 3  # + the next closer's cover and the wildcard's (maybe the same)
    check_authority(res, *owners, rtype=T.NSEC3)
    res = aggressive.synthesize(cache, ZONE, n("deeper.deep.b.example.org."), T.A, NOW)
    assert res.outcome is Outcome.NXDOMAIN


def test_nsec3_nodata(cache):
    fill(cache, nsec3_chain(EXISTING))
    res = aggressive.synthesize(cache, ZONE, n("a.example.org."), T.MX, NOW)
    assert res.outcome is Outcome.NODATA
    assert names(res.authority, T.NSEC3) == {nsec3_owner("a.example.org.")}
    assert aggressive.synthesize(cache, ZONE, n("a.example.org."), T.A, NOW) is None
    # an empty non-terminal: NODATA for any type
    assert aggressive.synthesize(cache, ZONE, n("w.example.org."), T.A, NOW).outcome is Outcome.NODATA


def test_nsec3_wildcard_nodata_and_answer(cache):
    fill(cache, nsec3_chain(EXISTING))
    res = aggressive.synthesize(cache, ZONE, n("q.w.example.org."), T.A, NOW)
    assert res.outcome is Outcome.NODATA
    assert nsec3_owner("*.w.example.org.") in names(res.authority, T.NSEC3)
    assert aggressive.synthesize(cache, ZONE, n("q.w.example.org."), T.TXT, NOW) is None
    txt = rrset("q.w.example.org.", 600, "TXT", '"hi"')
    aggressive.remember_wildcard(cache, txt, sig(txt, labels=3), 3)
    res = aggressive.synthesize(cache, ZONE, n("deep.r.w.example.org."), T.TXT, NOW)
    assert res.outcome is Outcome.ANSWER and res.answer[0].name == n("deep.r.w.example.org.")


def test_nsec3_wildcard_answer_from_the_next_closer_cover_alone(cache):
    """A cached wildcard expansion needs only the NSEC3 covering the next closer
    name (RFC 5155 8.8), as the upstream answer carried; kresd answers so too."""
    chain = nsec3_chain(EXISTING)
    raw = base64.b32hexdecode(h("r.w.example.org.").upper())
    cover = [rr for rr in chain if _covers_raw(rr, raw)]
    assert len(cover) == 1
    fill(cache, cover)
    txt = rrset("q.w.example.org.", 600, "TXT", '"hi"')
    aggressive.remember_wildcard(cache, txt, sig(txt, labels=3), 3)
    res = aggressive.synthesize(cache, ZONE, n("r.w.example.org."), T.TXT, NOW)
    assert res.outcome is Outcome.ANSWER and res.answer[0].name == n("r.w.example.org.")
    assert names(res.authority, T.NSEC3) == {cover[0].name}
    # no negative answer without the encloser's and the wildcard's records
    assert aggressive.synthesize(cache, ZONE, n("r.w.example.org."), T.A, NOW) is None


def _covers_raw(rr, raw):
    owner = base64.b32hexdecode(rr.name.labels[0].upper())
    nxt = bytes(rr[0].next)
    return owner < raw < nxt if owner < nxt else (raw > owner or raw < nxt)


def test_nsec_gap_in_the_cached_chain(cache):
    fill(cache, nsec_rrsets([("example.org.", "a.example.org.", "NS SOA RRSIG NSEC DNSKEY"),
                             ("a.example.org.", "b.example.org.", "A RRSIG NSEC")]))
    # c.example.org.'s predecessor a. ends at b.: the record covering c is not cached
    assert aggressive.synthesize(cache, ZONE, n("c.example.org."), T.A, NOW) is None


def test_nsec3_below_delegation_refused(cache):
    fill(cache, nsec3_chain(EXISTING))
    assert aggressive.synthesize(cache, ZONE, n("x.sub.example.org."), T.A, NOW) is None
    assert aggressive.synthesize(cache, ZONE, n("sub.example.org."), T.A, NOW) is None


def test_nsec3_opt_out_refused(cache):
    fill(cache, nsec3_chain(EXISTING, flags=1))
    assert aggressive.synthesize(cache, ZONE, n("b.example.org."), T.A, NOW) is None
    assert aggressive.synthesize(cache, ZONE, n("deep.b.example.org."), T.A, NOW) is None


def test_nsec3_too_many_iterations_not_remembered(cache):
    rr = rrset(f"{h('a.example.org.')}.example.org.", 3600, "NSEC3", f"1 0 151 {SALT} 00000000 A")
    aggressive.remember(cache, ZONE, [rr], sig, None)
    assert cache.nsec3_params(ZONE) == []


def test_nsec3_insecure_rank_refused(cache):
    fill(cache, nsec3_chain(EXISTING), rank=INSECURE)
    assert aggressive.synthesize(cache, ZONE, n("b.example.org."), T.A, NOW) is None


def test_remembered_ttl_capped_by_soa_minimum_and_rrsig_expiry(cache):
    import time
    rr = rrset("a.example.org.", 3600, "NSEC", "d.example.org. A RRSIG NSEC")
    expires = time.strftime("%Y%m%d%H%M%S", time.gmtime(NOW + 100))
    soon = rrset("a.example.org.", 3600, "RRSIG",
                 f"NSEC 13 3 3600 {expires} 20200101000000 12345 example.org. dGVzdHNpZ25hdHVyZWRhdGE=")
    aggressive.remember(cache, ZONE, [rr], lambda x: soon, 600)
    assert cache.peek_nsec(ZONE, n("a.example.org.")).ttl == 100
    aggressive.remember(cache, ZONE, [rr], sig, 600)
    assert cache.peek_nsec(ZONE, n("a.example.org.")).ttl == 600
