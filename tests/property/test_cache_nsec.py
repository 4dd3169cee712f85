"""Property tests of the NSEC/NSEC3 index (cache/nsec.py): for random owner sets
the range lookup finds the same predecessor as a sorted list in canonical order."""
from __future__ import annotations

import bisect
import shutil
import tempfile

import dns.name
import dns.rdata
import dns.rdataclass
import dns.rdatatype as T
import dns.rrset
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cache import Cache, Rank
from cache.nsec import Nsec3Params, hash_of_owner, owner_of_hash

IN = dns.rdataclass.IN
SECURE = Rank.AUTH | Rank.SECURE
# bytes that stress the lookup format: its separator and escape, upper case, dots
label_bytes = st.sampled_from(b"\x00\x01\x02aAbBzZ-.*\xff")
labels = st.lists(label_bytes, min_size=1, max_size=4).map(bytes)
zones = st.sampled_from([dns.name.root, dns.name.from_text("org."), dns.name.from_text("a.B.org.")])


def below(zone):
    return st.lists(labels, min_size=0, max_size=3).map(lambda ls: dns.name.Name(tuple(ls) + zone.labels))


def _nsec(owner, nxt, ttl=300):
    rd = dns.rdata.from_text(IN, T.NSEC, f"{nxt.to_text()} A RRSIG NSEC")
    return dns.rrset.from_rdata_list(owner, ttl, [rd])


class _Tmp:
    def __enter__(self):
        self.dir = tempfile.mkdtemp(prefix="nsec-prop-")
        self.cache = Cache(self.dir + "/c", 16 << 20, clock=lambda: 1_700_000_000)
        self.cache.open()
        return self.cache

    def __exit__(self, *exc):
        self.cache.close()
        shutil.rmtree(self.dir, ignore_errors=True)


@given(data=st.data(), zone=zones)
@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_nsec_predecessor_matches_sorted_list(data, zone):
    owners = sorted(set(data.draw(st.lists(below(zone), min_size=1, max_size=12))))
    queries = data.draw(st.lists(below(zone), min_size=1, max_size=12))
    with _Tmp() as cache:
        with cache.writer() as w:
            for i, owner in enumerate(owners):
                w.stash_nsec(zone, _nsec(owner, owners[(i + 1) % len(owners)]), SECURE)
        for q in queries + owners:
            i = bisect.bisect_right(owners, q)  # dns.name.Name orders canonically (RFC 4034 6.1)
            hit = cache.peek_nsec(zone, q)
            if i == 0:
                assert hit is None
                continue
            want = owners[i - 1]
            assert hit is not None, (q, want)
            assert hit.rrset.name == want
            assert hit.exact == (want == q)
            assert hit.rrset[0].next == owners[i % len(owners)]


hashes = st.binary(min_size=20, max_size=20)


@given(owned=st.lists(hashes, min_size=1, max_size=12, unique=True),
       queries=st.lists(hashes, min_size=1, max_size=12),
       salt=st.binary(max_size=8), iterations=st.integers(0, 150))
@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_nsec3_predecessor_matches_sorted_list(owned, queries, salt, iterations):
    zone = dns.name.from_text("example.")
    params = Nsec3Params(1, iterations, salt)
    owned = sorted(owned)
    salt_text = salt.hex() or "-"
    with _Tmp() as cache:
        with cache.writer() as w:
            for h in owned:
                rd = dns.rdata.from_text(IN, T.NSEC3, f"1 0 {iterations} {salt_text} 00000000 A")
                w.stash_nsec(zone, dns.rrset.from_rdata_list(owner_of_hash(zone, h), 300, [rd]), SECURE)
            # a second parameter set must not be seen through the first
            rd = dns.rdata.from_text(IN, T.NSEC3, f"1 0 {iterations + 1} {salt_text} 00000000 A")
            w.stash_nsec(zone, dns.rrset.from_rdata_list(owner_of_hash(zone, b"\x80" * 20), 300, [rd]),
                         SECURE)
        for q in queries + owned:
            i = bisect.bisect_right(owned, q)
            want = owned[i - 1]  # i == 0 wraps to owned[-1]
            hit = cache.peek_nsec3(zone, params, q)
            assert hit is not None
            assert hash_of_owner(hit.rrset.name) == want
            assert hit.exact == (want == q)
            assert hit.rrset[0].iterations == iterations
