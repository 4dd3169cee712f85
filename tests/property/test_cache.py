"""Property tests of the cache: entry pack/unpack round trips for random RRsets,
and a stateful model test of Cache (stash/peek/clear/count) against a dict."""
from __future__ import annotations

import shutil
import tempfile

import dns.name
import dns.rdata
import dns.rdataclass
import dns.rdatatype as T
import dns.rrset
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule

from cache import Cache, Rank, is_answer_rank
from cache import entry
from cache.entry import EntryError

IN = dns.rdataclass.IN

# -- strategies ------------------------------------------------------------------
labels = st.binary(min_size=1, max_size=20)
names = st.lists(labels, min_size=0, max_size=5).map(lambda ls: dns.name.Name(ls + [b""]))
ttls = st.integers(min_value=0, max_value=2**31 - 1)


def _rd(rtype, text):
    return dns.rdata.from_text(IN, rtype, text)


ipv4 = st.tuples(*[st.integers(0, 255)] * 4).map(lambda t: ".".join(map(str, t)))
txt = st.lists(st.binary(max_size=40), min_size=1, max_size=3)
rdata_by_type = {
    T.A: ipv4.map(lambda a: _rd(T.A, a)),
    T.AAAA: st.binary(min_size=16, max_size=16).map(
        lambda b: dns.rdata.from_wire(IN, T.AAAA, b, 0, 16)),
    T.TXT: txt.map(lambda ss: dns.rdata.from_text(IN, T.TXT, " ".join(
        '"' + "".join(f"\\{c:03d}" for c in s) + '"' for s in ss))),
    T.MX: st.tuples(st.integers(0, 65535), names).map(
        lambda t: _rd(T.MX, f"{t[0]} {t[1].to_text()}")),
    T.NS: names.map(lambda nm: _rd(T.NS, nm.to_text())),
    T.SOA: st.tuples(names, names, *[st.integers(0, 2**32 - 1)] * 5).map(
        lambda t: _rd(T.SOA, f"{t[0].to_text()} {t[1].to_text()} {t[2]} {t[3]} {t[4]} {t[5]} {t[6]}")),
    65280: st.binary(max_size=100).map(lambda b: dns.rdata.GenericRdata(IN, 65280, b)),
}


@st.composite
def rrsets(draw, rtype=None, owner=None):
    rtype = draw(st.sampled_from(sorted(rdata_by_type))) if rtype is None else rtype
    owner = draw(names) if owner is None else owner
    rds = draw(st.lists(rdata_by_type[rtype], min_size=1, max_size=6))
    return dns.rrset.from_rdata_list(owner, draw(ttls), rds)


@st.composite
def rrsigs(draw, owner, covered):
    n = draw(st.integers(1, 3))
    rds = [_rd(T.RRSIG, f"{T.to_text(covered)} 13 {len(owner) - 1} 300 20300101000000 "
               f"20200101000000 {draw(st.integers(0, 65535))} {draw(names).to_text()} "
               "dGVzdHNpZ25hdHVyZWRhdGE=") for _ in range(n)]
    return dns.rrset.from_rdata_list(owner, draw(ttls), rds)


# -- entry round trips -----------------------------------------------------------------
@given(data=st.data(), inception=st.integers(0, 2**32 - 1), ttl=st.integers(0, 2**32 - 1),
       rank=st.integers(0, 255), with_sigs=st.booleans())
@settings(max_examples=150, suppress_health_check=[HealthCheck.too_slow])
def test_rrset_entry_roundtrip(data, inception, ttl, rank, with_sigs):
    rs = data.draw(rrsets())
    sigs = data.draw(rrsigs(rs.name, rs.rdtype)) if with_sigs else None
    value = entry.pack_rrset(rs, sigs, inception=inception, ttl=ttl, rank=rank)
    hdr, out, out_sigs = entry.unpack_rrset(value, rs.name, 7)
    assert (hdr.inception, hdr.ttl, hdr.rank, hdr.rtype) == (inception, ttl, rank, rs.rdtype)
    assert out == rs and out.ttl == 7
    assert out_sigs == sigs
    for cut in (0, len(value) // 2, len(value) - 1):
        try:
            entry.unpack_rrset(value[:cut], rs.name)
        except EntryError:
            pass
        else:
            raise AssertionError("a truncated value must not decode")


@given(data=st.data(), rtype=st.integers(0, 65535), ttl=st.integers(0, 2**32 - 1))
@settings(max_examples=100, suppress_health_check=[HealthCheck.too_slow])
def test_negative_entry_roundtrip(data, rtype, ttl):
    soa = data.draw(rrsets(rtype=T.SOA))
    auth = data.draw(st.lists(rrsets(), max_size=4))
    value = entry.pack_negative(rtype, soa, auth, inception=1, ttl=ttl, rank=16)
    hdr, out_soa, out_auth = entry.unpack_negative(value, 9)
    assert hdr.rtype == rtype and hdr.ttl == ttl and hdr.negative
    assert out_soa == soa and out_auth == auth


@given(blob=st.binary(max_size=300), name=names)
@settings(max_examples=300)
def test_random_bytes_never_crash_unpacking(blob, name):
    for fn in (lambda: entry.unpack_rrset(blob, name), lambda: entry.unpack_negative(blob)):
        try:
            fn()
        except EntryError:
            pass


# -- stateful model test ------------------------------------------------------------------
NAMES = [dns.name.from_text(t) for t in ("a.", "b.a.", "C.B.a.", "x.", "b.x.", "xa.")] + [dns.name.root]
TYPES = [T.A, T.AAAA, T.TXT]
RANKS = [Rank.TRY, Rank.INITIAL | Rank.AUTH, Rank.SECURE | Rank.AUTH, Rank.BOGUS | Rank.AUTH]
SOA = dns.rrset.from_text("a.", 100, "IN", "SOA", "ns.a. h.a. 1 2 3 4 50")
MIN_TTL, MAX_TTL = 5, 1000


def _canon(name):
    return name.canonicalize()


class CacheModel(RuleBasedStateMachine):
    def __init__(self):
        super().__init__()
        self.dir = tempfile.mkdtemp(prefix="cache-model-")
        self.now = 1_000_000.0
        self.cache = Cache(self.dir, 16 << 20, min_ttl=MIN_TTL, max_ttl=MAX_TTL,
                           clock=lambda: self.now)
        self.cache.open()
        self.model: dict[tuple, tuple] = {}  # (name, tag, type) -> (inception, ttl, rank, data)
        self.serial = 0

    def teardown(self):
        self.cache.close()
        shutil.rmtree(self.dir, ignore_errors=True)

    # model helpers
    def _fresh_rank(self, k, now):
        v = self.model.get(k)
        if v is None or v[0] + v[1] - int(now) <= 0:
            return None
        return v[2]

    def _model_stash(self, k, rivals, weaker, rank, ttl, data):
        now = int(self.now)
        for kk in (k, *rivals):
            r = self._fresh_rank(kk, now)
            if r is not None and r > rank:
                return
        self.model[k] = (now, min(max(ttl, MIN_TTL), MAX_TTL), int(rank), data)
        for kk in rivals:
            self.model.pop(kk, None)
        for kk in weaker:
            r = self._fresh_rank(kk, now)
            if r is None or r <= rank:
                self.model.pop(kk, None)

    @rule(ops=st.lists(st.tuples(st.sampled_from(NAMES), st.sampled_from(TYPES + ["NODATA", "NX"]),
                                 st.sampled_from(TYPES), st.sampled_from(RANKS),
                                 st.integers(0, 1500)), min_size=1, max_size=5))
    def stash(self, ops):
        with self.cache.writer() as w:
            for name, what, rtype, rank, ttl in ops:
                c = _canon(name)
                self.serial += 1
                if what == "NODATA":
                    soa = SOA.copy()
                    soa.ttl = ttl
                    w.stash_negative(name, rtype, "NODATA", soa, [], rank)
                    self._model_stash((c, "N", rtype), [(c, "E", rtype)], [], rank,
                                      min(ttl, 50), "NODATA")
                elif what == "NX":
                    soa = SOA.copy()
                    soa.ttl = ttl
                    w.stash_negative(name, 0, "NXDOMAIN", soa, [], rank)
                    self._model_stash((c, "X", 0), [], [], rank, min(ttl, 50), "NXDOMAIN")
                else:
                    text = f"v{self.serial}"
                    rd = (dns.rdata.from_text(IN, what, f"10.0.{self.serial % 256}.1") if what == T.A
                          else dns.rdata.from_text(IN, what, f"2001:db8::{self.serial:x}")
                          if what == T.AAAA else dns.rdata.from_text(IN, what, text))
                    w.stash_rrset(dns.rrset.from_rdata_list(name, ttl, [rd]), rank)
                    weaker = [(c, "X", 0)] if is_answer_rank(rank) else []
                    self._model_stash((c, "E", what), [(c, "N", what)], weaker, rank, ttl,
                                      rd.to_text())

    @rule(seconds=st.integers(0, 400))
    def advance(self, seconds):
        self.now += seconds

    @rule(name=st.sampled_from(NAMES), rtype=st.sampled_from(TYPES))
    def peek(self, name, rtype):
        c = _canon(name)
        now = int(self.now)
        hit = self.cache.peek_rrset(name, rtype)
        v = self.model.get((c, "E", rtype))
        if v is None or v[0] + v[1] - now <= 0:
            assert hit is None
        else:
            assert hit is not None and hit.ttl == v[0] + v[1] - now
            assert hit.rank == v[2] and hit.rrset[0].to_text() == v[3]
        neg = self.cache.peek_negative(name, rtype)
        want = None
        for k in ((c, "X", 0), (c, "N", rtype)):
            v = self.model.get(k)
            if v is not None and v[0] + v[1] - now > 0:
                want = (v[3], v[0] + v[1] - now, v[2])
                break
        if want is None:
            assert neg is None
        else:
            assert neg is not None and (neg.kind, neg.ttl, neg.rank) == want

    @rule(name=st.sampled_from(NAMES + [None]), subtree=st.booleans())
    def clear(self, name, subtree):
        removed = self.cache.clear(name, subtree)
        if name is None:
            gone = list(self.model)
        else:
            c = _canon(name)
            gone = [k for k in self.model if k[0] == c or (subtree and k[0].is_subdomain(c))]
        for k in gone:
            del self.model[k]
        assert removed == len(gone)

    @invariant()
    def count_matches(self):
        assert self.cache.count() == len(self.model)


TestCacheModel = CacheModel.TestCase
TestCacheModel.settings = settings(max_examples=60, stateful_step_count=25, deadline=None,
                                   suppress_health_check=[HealthCheck.too_slow])
