"""NSEC denial proofs (workers/dnssec/nsec.py): RFC 4035 Appendix B shapes,
the failing variants, and a property test over random zones."""
import dns.name
import dns.rdatatype as T
import dns.rrset
from hypothesis import given, settings, strategies as st

from workers.dnssec import Status, nsec

Z = dns.name.from_text("example.")


def nsec_rr(owner, nxt, *types):
    return dns.rrset.from_text(owner, 3600, "IN", "NSEC", f"{nxt} {' '.join(types)}")


def n(text):
    return dns.name.from_text(text)


# RFC 4035 Appendix A (abridged): the zone's NSEC chain
CHAIN = [
    nsec_rr("example.", "a.example.", "NS", "SOA", "MX", "RRSIG", "NSEC", "DNSKEY"),
    nsec_rr("a.example.", "ai.example.", "NS", "DS", "RRSIG", "NSEC"),
    nsec_rr("ai.example.", "b.example.", "A", "HINFO", "AAAA", "RRSIG", "NSEC"),
    nsec_rr("b.example.", "ns1.example.", "NS", "RRSIG", "NSEC"),
    nsec_rr("ns1.example.", "ns2.example.", "A", "RRSIG", "NSEC"),
    nsec_rr("ns2.example.", "*.w.example.", "A", "RRSIG", "NSEC"),
    nsec_rr("*.w.example.", "x.w.example.", "MX", "RRSIG", "NSEC"),
    nsec_rr("x.w.example.", "x.y.w.example.", "MX", "RRSIG", "NSEC"),
    nsec_rr("x.y.w.example.", "xx.example.", "MX", "RRSIG", "NSEC"),
    nsec_rr("xx.example.", "example.", "A", "HINFO", "AAAA", "RRSIG", "NSEC"),
]


def by_owner(*owners):
    return [rr for rr in CHAIN if rr.name.to_text() in owners]


def test_name_error_b2():
    p = nsec.nxdomain(n("ml.example."), Z, by_owner("b.example.", "example."))
    assert p.status is Status.SECURE and p.closest_encloser == Z


def test_name_error_needs_the_wildcard_denial():
    p = nsec.nxdomain(n("ml.example."), Z, by_owner("b.example."))
    assert p.status is Status.BOGUS and "wildcard" in p.reason


def test_name_error_of_an_existing_name_is_bogus():
    assert not nsec.nxdomain(n("ns1.example."), Z, by_owner("ns1.example.", "example.")).ok


def test_no_data_b3():
    assert nsec.nodata(n("ns1.example."), T.MX, Z, by_owner("ns1.example.")).status is Status.SECURE
    assert not nsec.nodata(n("ns1.example."), T.A, Z, by_owner("ns1.example.")).ok  # the type is there


def test_no_data_empty_non_terminal():
    # y.w.example exists only as the parent of x.y.w.example
    assert nsec.nodata(n("y.w.example."), T.A, Z, by_owner("x.w.example.")).status is Status.SECURE


def test_referral_to_unsigned_b4_and_ds_rules():
    assert nsec.referral_no_ds(n("b.example."), Z, by_owner("b.example.")).status is Status.SECURE
    assert not nsec.referral_no_ds(n("a.example."), Z, by_owner("a.example.")).ok  # DS listed
    assert not nsec.referral_no_ds(n("c.example."), Z, by_owner("b.example.")).ok  # no NSEC at it
    p = nsec.nodata(n("b.example."), T.DS, Z, by_owner("b.example."))
    assert p.status is Status.SECURE and p.delegation
    # the child's apex NSEC (SOA bit) cannot deny the parent-side DS, except at the root
    apex = [nsec_rr("b.example.", "x.b.example.", "NS", "SOA", "RRSIG", "NSEC", "DNSKEY")]
    assert not nsec.nodata(n("b.example."), T.DS, Z, apex).ok
    root = [nsec_rr(".", "aaa.", "NS", "SOA", "RRSIG", "NSEC", "DNSKEY")]
    assert nsec.nodata(dns.name.root, T.DS, dns.name.root, root).status is Status.SECURE


def test_parent_side_nsec_proves_nothing_below_the_delegation():
    assert not nsec.nxdomain(n("x.b.example."), Z, by_owner("b.example.", "example.")).ok


def test_wildcard_expansion_b6_and_wildcard_no_data_b7():
    p = nsec.wildcard_answer(n("a.z.w.example."), 2, Z, by_owner("x.y.w.example."))
    assert p.status is Status.SECURE and p.closest_encloser == n("w.example.")
    assert not nsec.wildcard_answer(n("a.z.w.example."), 2, Z, by_owner("ns1.example.")).ok
    p = nsec.nodata(n("a.z.w.example."), T.AAAA, Z, by_owner("x.y.w.example.", "*.w.example."))
    assert p.status is Status.SECURE


def test_hostile_records_never_raise():
    odd = [dns.rrset.from_text("zz.other.", 1, "IN", "NSEC", "a.other. A")]
    assert not nsec.nxdomain(n("q.example."), Z, odd).ok
    assert not nsec.nodata(n("q.example."), T.A, Z, []).ok


labels = st.text(alphabet="abcdefgh", min_size=1, max_size=3)


@settings(max_examples=150, deadline=None)
@given(st.sets(st.lists(labels, min_size=1, max_size=2).map(lambda ls: ".".join(ls)), min_size=1,
               max_size=12), st.lists(labels, min_size=1, max_size=2))
def test_nxdomain_holds_exactly_for_absent_names(names, q):
    """A full NSEC chain over a random zone (no wildcards): the proof holds for a
    name exactly when it is absent (and not an empty non-terminal)."""
    zone = n("z.")
    owners = sorted({zone} | {n(f"{x}.z.") for x in names})
    existing = set(owners)
    for o in owners:  # empty non-terminals exist too
        p = o
        while p != zone:
            p = p.parent()
            existing.add(p)
    chain = [nsec_rr(o.to_text(), owners[(i + 1) % len(owners)].to_text(), "A", "RRSIG", "NSEC")
             for i, o in enumerate(owners)]
    qname = n(".".join(q) + ".z.")
    assert nsec.nxdomain(qname, zone, chain).ok == (qname not in existing)
    if qname in owners:
        assert nsec.nodata(qname, T.MX, zone, chain).ok
        assert not nsec.nodata(qname, T.A, zone, chain).ok
