"""workers/layers/iterate.py consume(): the edges kresd 5.6 answers in its own way
(a CNAME loop inside one reply, a DNAME substitution over 255 octets)."""
from __future__ import annotations

import dns.flags
import dns.message
import dns.name
import dns.rcode
import dns.rdatatype as T
import dns.rrset

from workers.layers.iterate import Kind, consume
from workers.request import Outcome
from workers.settings import Settings
from workers.zonecut import ZoneCut

N = dns.name.from_text
ZONE = N("example.com.")
LONG_TARGET = ".".join(c * 50 for c in "fgh") + ".example.net."  # 167 octets
LONG_QNAME = N(f"{'x' * 49}.{'y' * 49}.old.example.com.")  # 100 octets before old.example.com.


def reply(qname, rcode=dns.rcode.NOERROR, answer=()):
    q = dns.message.make_query(qname, "A")
    r = dns.message.make_response(q)
    r.flags |= dns.flags.AA
    r.set_rcode(rcode)
    r.answer = [dns.rrset.from_text(*rr) for rr in answer]
    return r


def run(r, qname):
    return consume(r, qname, T.A, qname, T.A, ZoneCut(ZONE, {N("ns1.example.com."): ["1.2.3.4"]}),
                   Settings())


def test_dname_overflow_with_yxdomain_is_the_answer():
    r = reply(LONG_QNAME, dns.rcode.YXDOMAIN, [("old.example.com.", 300, "IN", "DNAME", LONG_TARGET)])
    c = run(r, LONG_QNAME)
    assert c.kind is Kind.FINAL and c.result.outcome is Outcome.YXDOMAIN
    assert [(rr.name, rr.rdtype) for rr in c.result.answer] == [(N("old.example.com."), T.DNAME)]
    assert not c.stash.rrsets


def test_dname_overflow_noticed_when_the_server_says_noerror():
    r = reply(LONG_QNAME, answer=[("old.example.com.", 300, "IN", "DNAME", LONG_TARGET)])
    c = run(r, LONG_QNAME)
    assert c.kind is Kind.FINAL and c.result.outcome is Outcome.YXDOMAIN


def test_yxdomain_without_dname_is_a_bad_rcode():
    c = run(reply(N("www.example.com."), dns.rcode.YXDOMAIN), N("www.example.com."))
    assert c.kind is Kind.LAME


def test_cname_loop_in_one_reply_goes_to_the_chain_check():
    # The resolver's _chain sees the target come back and fails with the chain (kresd 5.6).
    r = reply(N("loop1.example.com."), answer=[("loop1.example.com.", 300, "IN", "CNAME", "loop2.example.com."),
                                              ("loop2.example.com.", 300, "IN", "CNAME", "loop1.example.com.")])
    c = run(r, N("loop1.example.com."))
    assert c.kind is Kind.FINAL and c.result.outcome is Outcome.CNAME
    assert c.result.target == N("loop1.example.com.") and len(c.result.answer) == 2
    assert not c.stash.rrsets  # a loop is not cached
