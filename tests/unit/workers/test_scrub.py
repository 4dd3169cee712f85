"""Unit tests for workers/scrub.py: what an upstream reply may keep."""
import dns.message
import dns.name
import dns.rrset

from workers.scrub import scrub

N = dns.name.from_text


def reply(answer=(), authority=(), additional=()):
    q = dns.message.make_query("www.example.com.", "A")
    r = dns.message.make_response(q)
    r.answer = [dns.rrset.from_text(*a) for a in answer]
    r.authority = [dns.rrset.from_text(*a) for a in authority]
    r.additional = [dns.rrset.from_text(*a) for a in additional]
    return r


def names(section):
    return sorted((rr.name.to_text(), rr.rdtype) for rr in section)


def test_out_of_bailiwick_answer_dropped():
    r = reply(answer=[("www.example.com.", 60, "IN", "A", "1.2.3.4"),
                      ("www.evil.net.", 60, "IN", "A", "6.6.6.6")])
    scrub(r, N("www.example.com."), N("example.com."))
    assert names(r.answer) == [("www.example.com.", 1)]


def test_unrelated_in_zone_answer_dropped():
    r = reply(answer=[("www.example.com.", 60, "IN", "A", "1.2.3.4"),
                      ("other.example.com.", 60, "IN", "A", "6.6.6.6")])
    scrub(r, N("www.example.com."), N("example.com."))
    assert names(r.answer) == [("www.example.com.", 1)]


def test_cname_chain_kept_within_bailiwick_only():
    r = reply(answer=[("www.example.com.", 60, "IN", "CNAME", "a.example.com."),
                      ("a.example.com.", 60, "IN", "CNAME", "b.other.org."),
                      ("b.other.org.", 60, "IN", "A", "6.6.6.6")])
    scrub(r, N("www.example.com."), N("example.com."))
    assert names(r.answer) == [("a.example.com.", 5), ("www.example.com.", 5)]


def test_dname_chain_kept():
    r = reply(answer=[("example.com.", 60, "IN", "DNAME", "example.net."),
                      ("www.example.com.", 60, "IN", "CNAME", "www.example.net.")])
    scrub(r, N("www.example.com."), N("com."))
    assert len(r.answer) == 2


def test_authority_ns_must_be_above_qname():
    r = reply(authority=[("example.com.", 60, "IN", "NS", "ns.example.com."),
                         ("sibling.com.", 60, "IN", "NS", "ns.evil.net."),
                         ("example.com.", 60, "IN", "A", "1.1.1.1")],
              additional=[("ns.example.com.", 60, "IN", "A", "1.2.3.4"),
                          ("ns.evil.net.", 60, "IN", "A", "6.6.6.6"),
                          ("unrelated.com.", 60, "IN", "A", "6.6.6.6")])
    scrub(r, N("www.example.com."), N("com."))
    assert names(r.authority) == [("example.com.", 2)]
    assert names(r.additional) == [("ns.example.com.", 1)]


def test_out_of_bailiwick_glue_kept_only_when_permissive():
    def make():
        return reply(authority=[("example.com.", 60, "IN", "NS", "ns.other.net.")],
                     additional=[("ns.other.net.", 60, "IN", "A", "1.2.3.4")])
    r = scrub(make(), N("www.example.com."), N("com."))
    assert r.additional == []
    r = scrub(make(), N("www.example.com."), N("com."), keep_all_glue=True)
    assert names(r.additional) == [("ns.other.net.", 1)]


def test_other_class_dropped():
    r = reply(answer=[("www.example.com.", 60, "CH", "TXT", "x")])
    scrub(r, N("www.example.com."), N("."))
    assert r.answer == []
