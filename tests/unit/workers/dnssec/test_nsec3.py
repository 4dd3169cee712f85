"""NSEC3 denial proofs (workers/dnssec/nsec3.py) on the RFC 5155 Appendix A zone
(salt aabbccdd, 12 iterations; hashes computed with dnspython, not copied):
the Appendix B answers (B.1 name error, B.2 no data, B.2.1 empty
non-terminal, B.3 opt-out referral, B.4 wildcard expansion, B.5 wildcard no
data, B.6 DS child zone no data), their failing variants, and the work
bounds. Random zones: tests/property/test_denial.py."""
import base64

import dns.dnssec
import dns.name
import dns.rdata
import dns.rdataclass
import dns.rdatatype as T
import dns.rrset

from workers.dnssec import NSEC3_MAX_ITERATIONS, Status, nsec3

Z = dns.name.from_text("example.")
SALT, ITER = "aabbccdd", 12


def n(text):
    return dns.name.from_text(text)


def h(name, iterations=ITER, salt=SALT):
    return dns.dnssec.nsec3_hash(name, salt, iterations, 1)


def nsec3_rr(owner_hash, zone, alg, flags, iterations, salt, nxt, types):
    owner = dns.name.Name((owner_hash.lower().encode(),) + zone.labels)
    return dns.rrset.from_text(owner, 3600, "IN", "NSEC3",
                               f"{alg} {flags} {iterations} {salt} {nxt} {' '.join(types)}")


def chain(zone, types_by_name, flags=0, iterations=ITER, alg=1, salt=SALT):
    """A full NSEC3 chain over the names (types per name), all with these flags."""
    hashed = sorted((h(name, iterations, salt), name) for name in types_by_name)
    return [nsec3_rr(hh, zone, alg, flags, iterations, salt, hashed[(i + 1) % len(hashed)][0],
                     types_by_name[name])
            for i, (hh, name) in enumerate(hashed)]


# RFC 5155 Appendix A: the names with an NSEC3 and their types (c.example, an
# unsigned delegation, has none: it lies in an opt-out span)
ZONE = {
    n("example."): ["NS", "SOA", "MX", "RRSIG", "DNSKEY", "NSEC3PARAM"],
    n("2t7b4g4vsa5smi47k61mv5bv1a22bojr.example."): ["A", "RRSIG"],
    n("a.example."): ["NS", "DS", "RRSIG"],
    n("ai.example."): ["A", "HINFO", "AAAA", "RRSIG"],
    n("ns1.example."): ["A", "RRSIG"],
    n("ns2.example."): ["A", "RRSIG"],
    n("w.example."): [],  # empty non-terminal
    n("*.w.example."): ["MX", "RRSIG"],
    n("x.w.example."): ["MX", "RRSIG"],
    n("y.w.example."): [],  # empty non-terminal
    n("x.y.w.example."): ["MX", "RRSIG"],
    n("xx.example."): ["A", "HINFO", "AAAA", "RRSIG"],
}
RFC = chain(Z, ZONE, flags=1)  # as published: every NSEC3 has opt-out
# the same zone without opt-out (c.example then has its own NSEC3)
PLAIN = chain(Z, ZONE | {n("c.example."): ["NS"]})


def matching(ch, name):
    return [rr for rr in ch if rr.name.labels[0].decode().upper() == h(name)]


def covering(ch, name):
    hh = h(name)
    out = []
    for rr in ch:
        owner, nxt = rr.name.labels[0].decode().upper(), base64.b32hexencode(rr[0].next).decode()
        if (owner < hh < nxt) if owner < nxt else (hh > owner or hh < nxt):
            out.append(rr)
    assert len(out) == 1
    return out


def test_hashes_are_the_rfc_5155_appendix_a_ones():
    assert h(Z) == "0P9MHAVEQVM6T7VBL5LOP2U3T2RP3TOM"
    assert h(n("a.example.")) == "35MTHGPGCU1QG68FAB165KLNSNK3DPVL"


# -- B.1 name error


def b1(ch):
    return matching(ch, n("x.w.example.")) + covering(ch, n("c.x.w.example.")) + \
        covering(ch, n("*.x.w.example."))


def test_name_error_b1():
    p = nsec3.nxdomain(n("a.c.x.w.example."), Z, b1(PLAIN))
    assert p.status is Status.SECURE and p.closest_encloser == n("x.w.example.")
    # as published, the next closer name is covered by opt-out: insecure (kresd)
    p = nsec3.nxdomain(n("a.c.x.w.example."), Z, b1(RFC))
    assert p.status is Status.INSECURE and p.optout and p.closest_encloser == n("x.w.example.")


def test_name_error_b1_failing_variants():
    q = n("a.c.x.w.example.")
    no_ce = covering(PLAIN, n("c.x.w.example.")) + covering(PLAIN, n("*.x.w.example."))
    p = nsec3.nxdomain(q, Z, no_ce)
    assert p.status is Status.BOGUS and "closest-encloser" in p.reason
    assert covering(PLAIN, n("c.x.w.example.")) != covering(PLAIN, n("*.x.w.example."))
    no_nc = matching(PLAIN, n("x.w.example.")) + covering(PLAIN, n("*.x.w.example."))
    assert not nsec3.nxdomain(q, Z, no_nc).ok
    no_wc = matching(PLAIN, n("x.w.example.")) + covering(PLAIN, n("c.x.w.example."))
    p = nsec3.nxdomain(q, Z, no_wc)
    assert p.status is Status.BOGUS and "wildcard" in p.reason
    # wrong NSEC3: the neighbours of the right ones cover nothing of use
    wrong = matching(PLAIN, n("x.w.example.")) + matching(PLAIN, n("ns1.example.")) + \
        matching(PLAIN, n("xx.example."))
    assert not nsec3.nxdomain(q, Z, wrong).ok


def test_name_error_of_an_existing_name_is_bogus():
    assert not nsec3.nxdomain(n("ns1.example."), Z, PLAIN).ok
    assert not nsec3.nxdomain(n("y.w.example."), Z, PLAIN).ok  # empty non-terminal
    assert not nsec3.nxdomain(n("a.z.w.example."), Z, PLAIN).ok  # the wildcard exists


def test_closest_encloser_at_a_delegation_or_dname_is_refused():
    # a.example is a delegation: its parent-side NSEC3 proves nothing below it
    deleg = matching(PLAIN, n("a.example.")) + covering(PLAIN, n("x.a.example.")) + \
        covering(PLAIN, n("*.a.example."))
    assert not nsec3.nxdomain(n("x.a.example."), Z, deleg).ok
    dz = {n("example."): ["SOA", "NS"], n("d.example."): ["DNAME"]}
    dch = chain(Z, dz)
    assert not nsec3.nxdomain(n("x.d.example."), Z, dch).ok


def test_full_chain_name_error():
    assert nsec3.nxdomain(n("a.c.x.w.example."), Z, PLAIN).status is Status.SECURE
    assert nsec3.nxdomain(n("zz.example."), Z, PLAIN).status is Status.SECURE


# -- B.2 no data, B.2.1 empty non-terminal


def test_no_data_b2():
    assert nsec3.nodata(n("ns1.example."), T.MX, Z, matching(RFC, n("ns1.example."))).status is Status.SECURE
    p = nsec3.nodata(n("ns1.example."), T.A, Z, matching(RFC, n("ns1.example.")))
    assert p.status is Status.BOGUS and "type exists" in p.reason
    assert not nsec3.nodata(n("ns1.example."), T.MX, Z, matching(RFC, n("ns2.example."))).ok


def test_no_data_with_a_cname_is_bogus():
    ch = chain(Z, {Z: ["SOA", "NS"], n("www.example."): ["CNAME"]})
    p = nsec3.nodata(n("www.example."), T.A, Z, ch)
    assert p.status is Status.BOGUS and "CNAME" in p.reason


def test_no_data_empty_non_terminal_b21():
    p = nsec3.nodata(n("y.w.example."), T.A, Z, matching(RFC, n("y.w.example.")))
    assert p.status is Status.SECURE and p.closest_encloser == n("y.w.example.")
    # a wrong record instead (the NSEC3 of x.y.w.example, or a cover only): bogus
    assert not nsec3.nodata(n("y.w.example."), T.A, Z, matching(RFC, n("x.y.w.example."))).ok
    assert not nsec3.nodata(n("y.w.example."), T.A, Z, covering(PLAIN, n("yy.w.example."))).ok


def test_parent_side_nsec3_proves_no_child_data():
    p = nsec3.nodata(n("a.example."), T.A, Z, matching(PLAIN, n("a.example.")))
    assert p.status is Status.BOGUS and "parent side" in p.reason


# -- B.3 referral to an opt-out unsigned zone


def b3(ch):
    return matching(ch, Z) + covering(ch, n("c.example."))


def test_opt_out_referral_b3():
    p = nsec3.referral_no_ds(n("c.example."), Z, b3(RFC))
    assert p.status is Status.SECURE and p.optout and p.closest_encloser == Z
    p = nsec3.nodata(n("c.example."), T.DS, Z, b3(RFC))
    assert p.status is Status.INSECURE and p.optout and p.delegation


def test_opt_out_referral_b3_failing_variants():
    assert not nsec3.referral_no_ds(n("c.example."), Z, covering(RFC, n("c.example."))).ok  # no CE
    assert not nsec3.referral_no_ds(n("c.example."), Z, matching(RFC, Z)).ok  # no next closer
    no_optout = matching(PLAIN, Z) + covering(PLAIN, n("cc.example."))  # a cover without opt-out
    assert not nsec3.referral_no_ds(n("cc.example."), Z, no_optout).ok


def test_referral_with_a_matching_nsec3():
    p = nsec3.referral_no_ds(n("c.example."), Z, matching(PLAIN, n("c.example.")))
    assert p.status is Status.SECURE and not p.optout and p.delegation
    assert "DS" in nsec3.referral_no_ds(n("a.example."), Z, matching(PLAIN, n("a.example."))).reason
    p = nsec3.referral_no_ds(n("ns1.example."), Z, matching(PLAIN, n("ns1.example.")))
    assert p.status is Status.BOGUS and "no delegation" in p.reason
    p = nsec3.nodata(n("c.example."), T.DS, Z, matching(PLAIN, n("c.example.")))
    assert p.status is Status.SECURE and p.delegation


# -- B.4 wildcard expansion, B.5 wildcard no data


def test_wildcard_expansion_b4():
    p = nsec3.wildcard_answer(n("a.z.w.example."), 2, Z, covering(PLAIN, n("z.w.example.")))
    assert p.status is Status.SECURE and p.closest_encloser == n("w.example.")
    p = nsec3.wildcard_answer(n("a.z.w.example."), 2, Z, covering(RFC, n("z.w.example.")))
    assert p.status is Status.INSECURE and p.optout


def test_wildcard_expansion_failing_variants():
    q = n("a.z.w.example.")
    assert not nsec3.wildcard_answer(q, 2, Z, matching(PLAIN, n("x.w.example."))).ok
    assert not nsec3.wildcard_answer(q, 1, Z, PLAIN).ok  # w.example exists: not covered
    # (a deeper encloser than the real one is not caught here: the RRSIG labels
    # field is signed, so the validator has checked it against *.<encloser>)
    assert "no wildcard expansion" in nsec3.wildcard_answer(q, 4, Z, PLAIN).reason
    assert not nsec3.wildcard_answer(n("x.w.example."), 2, Z, PLAIN).ok


def b5(ch):
    return matching(ch, n("w.example.")) + covering(ch, n("z.w.example.")) + matching(ch, n("*.w.example."))


def test_wildcard_no_data_b5():
    p = nsec3.nodata(n("a.z.w.example."), T.AAAA, Z, b5(PLAIN))
    assert p.status is Status.SECURE and p.closest_encloser == n("w.example.")
    p = nsec3.nodata(n("a.z.w.example."), T.AAAA, Z, b5(RFC))
    assert p.status is Status.INSECURE and p.optout


def test_wildcard_no_data_b5_failing_variants():
    q = n("a.z.w.example.")
    assert not nsec3.nodata(q, T.MX, Z, b5(PLAIN)).ok  # the wildcard has MX
    no_ce = covering(PLAIN, n("z.w.example.")) + matching(PLAIN, n("*.w.example."))
    assert not nsec3.nodata(q, T.AAAA, Z, no_ce).ok
    no_wc = matching(PLAIN, n("w.example.")) + covering(PLAIN, n("z.w.example."))
    assert not nsec3.nodata(q, T.AAAA, Z, no_wc).ok


# -- B.6 DS child zone no data


def test_ds_child_zone_no_data_b6():
    # the child's apex NSEC3 (SOA bit) cannot deny the parent-side DS
    p = nsec3.nodata(Z, T.DS, Z, matching(RFC, Z))
    assert p.status is Status.BOGUS and "apex" in p.reason
    child = chain(n("c.example."), {n("c.example."): ["NS", "SOA", "DNSKEY"]})
    assert not nsec3.nodata(n("c.example."), T.DS, n("c.example."), child).ok
    # ... except at the root, which has no parent side
    root = chain(dns.name.root, {dns.name.root: ["NS", "SOA", "DNSKEY"], n("aaa."): ["NS"]})
    assert nsec3.nodata(dns.name.root, T.DS, dns.name.root, root).status is Status.SECURE


# -- parameters and work bounds


def test_too_many_iterations_is_insecure_before_any_hashing(monkeypatch):
    bomb = chain(Z, ZONE, iterations=NSEC3_MAX_ITERATIONS + 1)
    calls = []
    monkeypatch.setattr(nsec3.dns.dnssec, "nsec3_hash", lambda *a: calls.append(a) or "")
    for p in (nsec3.nxdomain(n("q.example."), Z, bomb), nsec3.nodata(n("q.example."), T.A, Z, bomb),
              nsec3.referral_no_ds(n("q.example."), Z, bomb),
              nsec3.wildcard_answer(n("q.w.example."), 2, Z, bomb),
              nsec3.nxdomain(n("q.example."), Z, PLAIN + bomb[:1])):  # one is enough
        assert p.status is Status.INSECURE and "iterations" in p.reason
    assert not calls


def test_the_iteration_bound_itself_is_checked():
    ch = chain(Z, ZONE | {n("c.example."): ["NS"]}, iterations=NSEC3_MAX_ITERATIONS)
    assert nsec3.nxdomain(n("a.c.x.w.example."), Z, ch).status is Status.SECURE


def test_unknown_hash_algorithm():
    other = chain(Z, ZONE, alg=2)
    assert nsec3.nodata(n("q.example."), T.A, Z, other).status is Status.INSECURE
    # ignored beside usable records: the proof rests on those
    assert nsec3.nodata(n("ns1.example."), T.MX, Z, other + PLAIN).status is Status.SECURE
    assert nsec3.nodata(n("ns1.example."), T.A, Z, other + PLAIN).status is Status.BOGUS


def test_unknown_flags_are_ignored():
    odd = chain(Z, ZONE, flags=2)
    assert nsec3.nodata(n("ns1.example."), T.MX, Z, odd).status is Status.BOGUS


def test_records_with_their_own_parameters():
    # two chains with different salts: each record is hashed with its own
    other = chain(Z, ZONE | {n("c.example."): ["NS"]}, salt="01")
    assert nsec3.nodata(n("ns1.example."), T.MX, Z, matching(PLAIN, n("ns1.example.")) + other).ok
    assert nsec3.nxdomain(n("a.c.x.w.example."), Z, b1(PLAIN) + other[:3]).ok
    salted = [rr for rr in other if rr.name.labels[0].decode().upper()
              == h(n("ns1.example."), salt="01")]
    assert nsec3.nodata(n("ns1.example."), T.MX, Z, salted).status is Status.SECURE


def test_owner_hash_is_case_insensitive_and_directly_below_the_zone():
    rd = matching(PLAIN, n("ns1.example."))[0][0]
    upper = dns.rrset.from_rdata(f"{h(n('ns1.example.'))}.example.", 3600, rd)
    assert nsec3.nodata(n("ns1.example."), T.MX, Z, [upper]).status is Status.SECURE
    deep = dns.rrset.from_rdata(f"{h(n('ns1.example.'))}.sub.example.", 3600, rd)
    assert not nsec3.nodata(n("ns1.example."), T.MX, Z, [deep]).ok
    assert not nsec3.nodata(n("ns1.example."), T.MX, n("sub.example."), [deep]).ok  # not in that zone


def test_hashes_are_computed_once_per_name_and_parameters(monkeypatch):
    real, calls = nsec3.dns.dnssec.nsec3_hash, []
    monkeypatch.setattr(nsec3.dns.dnssec, "nsec3_hash", lambda *a: calls.append(a[0]) or real(*a))
    assert nsec3.nxdomain(n("a.c.x.w.example."), Z, PLAIN).ok
    assert len(calls) == len(set(calls)) and len(calls) <= 6


def test_work_is_capped(monkeypatch):
    monkeypatch.setattr(nsec3, "MAX_HASHES", 3)
    p = nsec3.nxdomain(n("a.b.c.d.e.f.example."), Z, PLAIN)
    assert p.status is Status.BOGUS and "work" in p.reason


def test_many_salts_hit_the_cap():
    salts = [f"{i:04x}" for i in range(nsec3.MAX_HASHES + 1)]
    many = [nsec3_rr(f"{i:032d}", Z, 1, 0, 0, s, "V" * 32, ["A"]) for i, s in enumerate(salts)]
    p = nsec3.nodata(n("q.example."), T.A, Z, many)
    assert p.status is Status.BOGUS and "work" in p.reason


def test_names_outside_the_zone_are_bogus():
    for p in (nsec3.nxdomain(n("q.other."), Z, PLAIN), nsec3.nodata(n("q.other."), T.A, Z, PLAIN),
              nsec3.referral_no_ds(n("q.other."), Z, PLAIN), nsec3.wildcard_answer(n("a.q.other."), 1, Z, PLAIN)):
        assert p.status is Status.BOGUS and "not in the zone" in p.reason


def test_hostile_records_never_raise():
    junk = [dns.rrset.from_text("not-base32!.example.", 1, "IN", "NSEC3", f"1 0 1 - {'V' * 32} A"),
            dns.rrset.from_text("deep.x.example.", 1, "IN", "NSEC3", f"1 0 1 - {'V' * 32} A"),
            dns.rrset.from_text(f"{'0' * 8}.example.", 1, "IN", "NSEC3", "1 0 1 - VVVVVVVV A"),  # short hash
            dns.rrset.from_text(f"{'0' * 32}.example.", 1, "IN", "NSEC3", "1 0 1 - VVVVVVVV A")]
    generic = dns.rrset.RRset(n(f"{'0' * 32}.example."), dns.rdataclass.IN, T.NSEC3)
    generic.add(dns.rdata.GenericRdata(dns.rdataclass.IN, T.NSEC3, b"\x01\x00"))
    for rrsets in (junk, [generic], junk + [generic]):
        for p in (nsec3.nxdomain(n("q.example."), Z, rrsets), nsec3.nodata(n("q.example."), T.A, Z, rrsets),
                  nsec3.referral_no_ds(n("q.example."), Z, rrsets),
                  nsec3.wildcard_answer(n("a.q.example."), 1, Z, rrsets)):
            assert p.status is Status.BOGUS and "no usable NSEC3" in p.reason
