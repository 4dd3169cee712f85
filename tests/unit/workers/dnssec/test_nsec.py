"""NSEC denial proofs (workers/dnssec/nsec.py) on the RFC 4035 Appendix A zone:
the Appendix B answers (B.2 name error, B.3 no data, B.5 referral to an
unsigned zone, B.6 wildcard expansion, B.7 wildcard no data, B.8 DS child
zone no data) and their failing variants. Random zones: tests/property/test_denial.py."""
import dns.name
import dns.rdata
import dns.rdataclass
import dns.rdatatype as T
import dns.rdtypes.ANY.NSEC
import dns.rrset

from workers.dnssec import Status, nsec

Z = dns.name.from_text("example.")


def nsec_rr(owner, nxt, *types):
    return dns.rrset.from_text(owner, 3600, "IN", "NSEC", f"{nxt} {' '.join(types)}")


def n(text):
    return dns.name.from_text(text)


# RFC 4035 Appendix A: the zone's NSEC chain
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


def test_has_type_reads_the_bitmap_windows():
    rd = nsec_rr("a.example.", "b.example.", "A", "MX", "TYPE1234")[0]
    assert nsec.has_type(rd, T.A) and nsec.has_type(rd, T.MX) and nsec.has_type(rd, 1234)
    assert not nsec.has_type(rd, T.AAAA) and not nsec.has_type(rd, 1235) and not nsec.has_type(rd, 65535)
    garbage = dns.rdata.GenericRdata(dns.rdataclass.IN, T.NSEC, b"\x00\x01")
    assert not nsec.has_type(garbage, T.A)


# -- B.2 name error


def test_name_error_b2():
    p = nsec.nxdomain(n("ml.example."), Z, by_owner("b.example.", "example."))
    assert p.status is Status.SECURE and p.closest_encloser == Z


def test_name_error_needs_the_wildcard_denial():
    p = nsec.nxdomain(n("ml.example."), Z, by_owner("b.example."))
    assert p.status is Status.BOGUS and "wildcard" in p.reason


def test_name_error_needs_the_name_covered():
    p = nsec.nxdomain(n("ml.example."), Z, by_owner("example.", "ns1.example."))
    assert p.status is Status.BOGUS and "covers" in p.reason


def test_name_error_of_an_existing_name_is_bogus():
    assert not nsec.nxdomain(n("ns1.example."), Z, by_owner("ns1.example.", "example.")).ok


def test_name_error_of_an_empty_non_terminal_is_bogus():
    # w.example exists as the parent of *.w.example and x.w.example
    p = nsec.nxdomain(n("w.example."), Z, by_owner("ns2.example.", "example."))
    assert p.status is Status.BOGUS and "empty non-terminal" in p.reason


def test_name_error_under_a_wildcard_is_bogus():
    # a.z.w.example is covered, but *.w.example exists and would have answered
    p = nsec.nxdomain(n("a.z.w.example."), Z, by_owner("x.y.w.example.", "*.w.example."))
    assert p.status is Status.BOGUS and "wildcard" in p.reason


def test_name_error_closest_encloser_from_the_deeper_neighbour():
    # a.x.w.example: x.w.example -> x.y.w.example covers it; the encloser is
    # x.w.example, so *.x.w.example must be denied (the same NSEC covers it)
    p = nsec.nxdomain(n("a.x.w.example."), Z, by_owner("x.w.example."))
    assert p.status is Status.SECURE and p.closest_encloser == n("x.w.example.")


def test_name_error_at_the_end_of_the_chain_wraps_to_the_apex():
    p = nsec.nxdomain(n("zz.example."), Z, by_owner("xx.example.", "example."))
    assert p.status is Status.SECURE and p.closest_encloser == Z


def test_names_outside_the_zone_are_bogus():
    p = nsec.nxdomain(n("zz.other."), Z, CHAIN)
    assert p.status is Status.BOGUS and "not in the zone" in p.reason
    assert not nsec.nodata(n("zz.other."), T.A, Z, CHAIN).ok
    assert not nsec.referral_no_ds(n("b.other."), Z, CHAIN).ok
    assert not nsec.wildcard_answer(n("a.b.other."), 1, Z, CHAIN).ok


def test_nsec_of_another_zone_is_ignored():
    other = [nsec_rr("a.other.", "z.other.", "A"), nsec_rr("other.", "a.other.", "SOA")]
    assert not nsec.nxdomain(n("ml.example."), Z, other).ok


# -- B.3 no data


def test_no_data_b3():
    assert nsec.nodata(n("ns1.example."), T.MX, Z, by_owner("ns1.example.")).status is Status.SECURE
    p = nsec.nodata(n("ns1.example."), T.A, Z, by_owner("ns1.example."))
    assert p.status is Status.BOGUS and "type exists" in p.reason


def test_no_data_with_a_cname_is_bogus():
    cname = [nsec_rr("www.example.", "xx.example.", "CNAME", "RRSIG", "NSEC")]
    p = nsec.nodata(n("www.example."), T.A, Z, cname)
    assert p.status is Status.BOGUS and "CNAME" in p.reason


def test_no_data_without_any_nsec_is_bogus():
    assert not nsec.nodata(n("ns1.example."), T.MX, Z, []).ok
    assert not nsec.nodata(n("ns1.example."), T.MX, Z, by_owner("ns2.example.")).ok


def test_no_data_empty_non_terminal():
    # y.w.example exists only as the parent of x.y.w.example
    p = nsec.nodata(n("y.w.example."), T.A, Z, by_owner("x.w.example."))
    assert p.status is Status.SECURE and p.closest_encloser == n("y.w.example.")


# -- B.5 referral to an unsigned zone; delegations and DS


def test_referral_to_unsigned_b5():
    p = nsec.referral_no_ds(n("b.example."), Z, by_owner("b.example."))
    assert p.status is Status.SECURE and p.delegation


def test_referral_failing_variants():
    assert "DS" in nsec.referral_no_ds(n("a.example."), Z, by_owner("a.example.")).reason
    assert not nsec.referral_no_ds(n("c.example."), Z, by_owner("b.example.")).ok  # no NSEC at it
    p = nsec.referral_no_ds(n("ns1.example."), Z, by_owner("ns1.example."))
    assert p.status is Status.BOGUS and "no delegation" in p.reason
    apex = [nsec_rr("b.example.", "x.b.example.", "NS", "SOA", "RRSIG", "NSEC", "DNSKEY")]
    assert not nsec.referral_no_ds(n("b.example."), Z, apex).ok  # the child's apex


def test_ds_no_data_at_a_delegation():
    p = nsec.nodata(n("b.example."), T.DS, Z, by_owner("b.example."))
    assert p.status is Status.SECURE and p.delegation
    p = nsec.nodata(n("ns1.example."), T.DS, Z, by_owner("ns1.example."))
    assert p.status is Status.SECURE and not p.delegation  # no zone cut there


def test_ds_child_zone_no_data_b8():
    # the answer came from the child: its apex NSEC (SOA bit) cannot deny the parent's DS
    p = nsec.nodata(Z, T.DS, Z, by_owner("example."))
    assert p.status is Status.BOGUS and "apex" in p.reason
    apex = [nsec_rr("b.example.", "x.b.example.", "NS", "SOA", "RRSIG", "NSEC", "DNSKEY")]
    assert not nsec.nodata(n("b.example."), T.DS, n("b.example."), apex).ok
    # ... except at the root, which has no parent side
    root = [nsec_rr(".", "aaa.", "NS", "SOA", "RRSIG", "NSEC", "DNSKEY")]
    assert nsec.nodata(dns.name.root, T.DS, dns.name.root, root).status is Status.SECURE


def test_parent_side_nsec_proves_no_child_data():
    p = nsec.nodata(n("b.example."), T.A, Z, by_owner("b.example."))
    assert p.status is Status.BOGUS and "parent side" in p.reason
    # no CNAME may stand at a zone apex: the parent side proves that one (kresd)
    assert nsec.nodata(n("b.example."), T.CNAME, Z, by_owner("b.example.")).ok


def test_parent_side_nsec_proves_nothing_below_the_delegation():
    assert not nsec.nxdomain(n("x.b.example."), Z, by_owner("b.example.", "example.")).ok
    assert not nsec.nodata(n("x.b.example."), T.A, Z, by_owner("b.example.", "example.")).ok
    dname = [nsec_rr("d.example.", "ns1.example.", "DNAME", "RRSIG", "NSEC"), CHAIN[0]]
    assert not nsec.nxdomain(n("x.d.example."), Z, dname).ok


# -- B.6 wildcard expansion, B.7 wildcard no data


def test_wildcard_expansion_b6():
    p = nsec.wildcard_answer(n("a.z.w.example."), 2, Z, by_owner("x.y.w.example."))
    assert p.status is Status.SECURE and p.closest_encloser == n("w.example.")


def test_wildcard_expansion_failing_variants():
    assert not nsec.wildcard_answer(n("a.z.w.example."), 2, Z, by_owner("ns1.example.")).ok
    assert not nsec.wildcard_answer(n("a.z.w.example."), 2, Z, []).ok
    # the labels field must leave at least one label to expand
    assert "no wildcard expansion" in nsec.wildcard_answer(n("a.z.w.example."), 4, Z, CHAIN).reason
    assert not nsec.wildcard_answer(n("a.z.w.example."), 7, Z, CHAIN).ok
    # z.w.example exists (an empty non-terminal above b.z.w.example): *.w.example
    # could not have produced a.z.w.example
    ent = [nsec_rr("x.y.w.example.", "b.z.w.example.", "MX")]
    p = nsec.wildcard_answer(n("a.z.w.example."), 2, Z, ent)
    assert p.status is Status.BOGUS and "closer match" in p.reason


def test_wildcard_no_data_b7():
    p = nsec.nodata(n("a.z.w.example."), T.AAAA, Z, by_owner("x.y.w.example.", "*.w.example."))
    assert p.status is Status.SECURE and p.closest_encloser == n("w.example.")


def test_wildcard_no_data_failing_variants():
    # the wildcard has the type; the wildcard's NSEC is missing; qname not covered
    assert not nsec.nodata(n("a.z.w.example."), T.MX, Z, by_owner("x.y.w.example.", "*.w.example.")).ok
    assert not nsec.nodata(n("a.z.w.example."), T.AAAA, Z, by_owner("x.y.w.example.")).ok
    assert not nsec.nodata(n("a.z.w.example."), T.AAAA, Z, by_owner("*.w.example.")).ok
    # a wildcard at another encloser proves nothing here
    assert not nsec.nodata(n("a.z.w.example."), T.AAAA, Z,
                           by_owner("x.y.w.example.", "example.") + [nsec_rr("*.example.", "a.example.", "A")]).ok


# -- hostile records


def test_hostile_records_never_raise():
    odd = [dns.rrset.from_text("zz.other.", 1, "IN", "NSEC", "a.other. A")]
    assert not nsec.nxdomain(n("q.example."), Z, odd).ok
    assert not nsec.nodata(n("q.example."), T.A, Z, []).ok
    generic = dns.rrset.RRset(n("a.example."), dns.rdataclass.IN, T.NSEC)
    generic.add(dns.rdata.GenericRdata(dns.rdataclass.IN, T.NSEC, b"\x00garbage"))
    relative = dns.rrset.RRset(n("a.example."), dns.rdataclass.IN, T.NSEC)
    relative.add(dns.rdtypes.ANY.NSEC.NSEC(dns.rdataclass.IN, T.NSEC, dns.name.from_text("zz", None), []))
    for junk in ([generic], [relative], [generic, relative]):
        assert not nsec.nxdomain(n("b.example."), Z, junk).ok
        assert not nsec.nodata(n("a.example."), T.A, Z, junk).ok
        assert not nsec.referral_no_ds(n("a.example."), Z, junk).ok
        assert not nsec.wildcard_answer(n("b.example."), 1, Z, junk).ok
