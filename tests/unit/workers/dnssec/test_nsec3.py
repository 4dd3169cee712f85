"""NSEC3 denial proofs (workers/dnssec/nsec3.py) over chains built from name sets
with dnspython's hash (RFC 5155 Appendix A parameters: salt aabbccdd, 12
iterations), the failing variants, the work bounds, and a property test."""
import dns.dnssec
import dns.name
import dns.rdatatype as T
import dns.rrset
from hypothesis import given, settings, strategies as st

from workers.dnssec import NSEC3_MAX_ITERATIONS, Status, nsec3

Z = dns.name.from_text("example.")
SALT, ITER = "aabbccdd", 12


def n(text):
    return dns.name.from_text(text)


def h(name, iterations=ITER):
    return dns.dnssec.nsec3_hash(name, SALT, iterations, 1)


def chain(zone, types_by_name, optout=(), iterations=ITER, alg=1):
    """A full NSEC3 chain over the names (types per name), opt-out on the hashes of `optout`."""
    hashed = sorted((h(name, iterations), name) for name in types_by_name)
    out = []
    for i, (hh, name) in enumerate(hashed):
        nxt = hashed[(i + 1) % len(hashed)][0]
        flags = 1 if name in optout else 0
        types = " ".join(types_by_name[name])
        out.append(dns.rrset.from_text(f"{hh.lower()}.{zone}", 3600, "IN", "NSEC3",
                                       f"{alg} {flags} {iterations} {SALT} {nxt} {types}"))
    return out


# RFC 5155 Appendix A, abridged: names that exist and their types
ZONE = {
    n("example."): ["NS", "SOA", "MX", "RRSIG", "DNSKEY", "NSEC3PARAM"],
    n("a.example."): ["NS", "DS", "RRSIG"],
    n("ai.example."): ["A", "HINFO", "AAAA", "RRSIG"],
    n("c.example."): ["NS"],  # unsigned delegation (opt-out)
    n("ns1.example."): ["A", "RRSIG"],
    n("ns2.example."): ["A", "RRSIG"],
    n("w.example."): [],  # empty non-terminal
    n("*.w.example."): ["MX", "RRSIG"],
    n("x.w.example."): ["MX", "RRSIG"],
    n("y.w.example."): [],  # empty non-terminal
    n("x.y.w.example."): ["MX", "RRSIG"],
    n("xx.example."): ["A", "HINFO", "AAAA", "RRSIG"],
}
CHAIN = chain(Z, ZONE, optout={n("a.example."), n("ai.example."), n("example.")})


def test_name_error_b1():
    p = nsec3.nxdomain(n("a.c.x.w.example."), Z, CHAIN)
    assert p.ok and p.closest_encloser == n("x.w.example.")


def test_name_error_without_the_closest_encloser_is_bogus():
    ce = h(n("x.w.example.")).lower()
    partial = [rr for rr in CHAIN if not rr.name.to_text().startswith(ce)]
    assert not nsec3.nxdomain(n("a.c.x.w.example."), Z, partial).ok


def test_no_data_b2_and_empty_non_terminal_b21():
    assert nsec3.nodata(n("ns1.example."), T.MX, Z, CHAIN).status is Status.SECURE
    assert not nsec3.nodata(n("ns1.example."), T.A, Z, CHAIN).ok
    assert nsec3.nodata(n("y.w.example."), T.A, Z, CHAIN).status is Status.SECURE


def test_wildcard_no_data_b5():
    assert nsec3.nodata(n("a.z.w.example."), T.AAAA, Z, CHAIN).ok
    assert not nsec3.nodata(n("a.z.w.example."), T.MX, Z, CHAIN).ok  # the wildcard has MX


def test_wildcard_expansion_b4():
    p = nsec3.wildcard_answer(n("a.z.w.example."), 2, Z, CHAIN)
    assert p.ok and p.closest_encloser == n("w.example.")


def test_delegations_and_ds():
    # a.example has a DS: no insecure delegation; c.example is covered by opt-out
    assert not nsec3.referral_no_ds(n("a.example."), Z, CHAIN).ok
    p = nsec3.referral_no_ds(n("c.example."), Z, chain(Z, {k: v for k, v in ZONE.items()
                                                           if k != n("c.example.")},
                                                       optout=set(ZONE)))
    assert p.ok and p.optout
    p = nsec3.nodata(n("c.example."), T.DS, Z, CHAIN)
    assert p.status is Status.SECURE and p.delegation  # matching NSEC3: NS without DS or SOA
    apex = chain(Z, {n("c.example."): ["NS", "SOA", "DNSKEY"], Z: ["NS", "SOA"]})
    assert not nsec3.nodata(n("c.example."), T.DS, Z, apex).ok  # the child's apex


def test_too_many_iterations_is_insecure_before_any_hashing(monkeypatch):
    bomb = [dns.rrset.from_text(f"{'0' * 32}.example.", 3600, "IN", "NSEC3",
                                f"1 0 {NSEC3_MAX_ITERATIONS + 1} {SALT} {'V' * 32} A")]
    calls = []
    monkeypatch.setattr(nsec3.dns.dnssec, "nsec3_hash", lambda *a: calls.append(a) or "")
    p = nsec3.nxdomain(n("q.example."), Z, bomb)
    assert p.status is Status.INSECURE and not calls


def test_unknown_hash_algorithm_is_insecure():
    other = [dns.rrset.from_text(f"{'0' * 32}.example.", 3600, "IN", "NSEC3",
                                 f"2 0 1 {SALT} {'V' * 32} A")]
    assert nsec3.nodata(n("q.example."), T.A, Z, other).status is Status.INSECURE


def test_work_is_capped(monkeypatch):
    monkeypatch.setattr(nsec3, "MAX_HASHES", 3)
    p = nsec3.nxdomain(n("a.b.c.d.e.f.example."), Z, CHAIN)
    assert p.status is Status.BOGUS and "work" in p.reason


def test_hostile_records_never_raise():
    junk = [dns.rrset.from_text("not-base32!.example.", 1, "IN", "NSEC3", f"1 0 1 - {'V' * 32} A"),
            dns.rrset.from_text("deep.x.example.", 1, "IN", "NSEC3", f"1 0 1 - {'V' * 32} A")]
    assert not nsec3.nxdomain(n("q.example."), Z, junk).ok


labels = st.text(alphabet="abcd", min_size=1, max_size=2)


@settings(max_examples=60, deadline=None)
@given(st.sets(labels, min_size=1, max_size=8), labels)
def test_nxdomain_and_nodata_follow_the_name_set(names, q):
    zone = n("z.")
    zs = {zone: ["SOA", "NS"]} | {n(f"{x}.z."): ["A"] for x in names}
    ch = chain(zone, zs)
    qname = n(f"{q}.z.")
    assert nsec3.nxdomain(qname, zone, ch).ok == (qname not in zs)
    if qname in zs:
        assert nsec3.nodata(qname, T.MX, zone, ch).ok and not nsec3.nodata(qname, T.A, zone, ch).ok
