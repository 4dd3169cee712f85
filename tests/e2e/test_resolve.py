"""Recursive resolution through the real resolver binary (127.0.10.1@53).

Each case of hierarchy.CASES is asked as a stub resolver asks (RD=1), first
on a cold cache and then again (answered from the cache).
"""
from __future__ import annotations

import dns.flags
import dns.rcode
import dns.rdatatype
import pytest

from .conftest import RESOLVER_ADDR
from .hierarchy import BIG_STRINGS, CASES, NEG_TTL, TTL, answer_map, check_case, query

pytestmark = [pytest.mark.e2e, pytest.mark.root]

UDP_CASES = sorted(n for n in CASES if n != "big")  # big does not fit a 1232-byte UDP reply


def ask(name: str, **kw):
    case = CASES[name]
    return query(RESOLVER_ADDR, case.qname, case.qtype, timeout=5, **kw)


def check_resolver_reply(r, name: str) -> None:
    case = CASES[name]
    check_case(r, case)
    assert r.flags & dns.flags.QR and r.flags & dns.flags.RA and r.flags & dns.flags.RD
    assert not r.flags & dns.flags.AA, "a resolver does not answer authoritatively"
    for rrset in r.answer:
        assert 0 < rrset.ttl <= (86400 if rrset.rdtype == dns.rdatatype.NS else TTL)
    for rrset in r.authority:
        if rrset.rdtype == dns.rdatatype.SOA:
            assert 0 < rrset.ttl <= NEG_TTL, "negative answers: TTL = min(SOA TTL, minimum)"


@pytest.mark.parametrize("name", UDP_CASES)
def test_resolves(resolver, name):
    check_resolver_reply(ask(name), name)


@pytest.mark.parametrize("name", UDP_CASES)
def test_resolves_again_from_cache(resolver, name):
    first = ask(name)
    again = ask(name)
    check_resolver_reply(again, name)
    assert answer_map(again) == answer_map(first)
    ttl_first = {(r.name, r.rdtype): r.ttl for r in first.answer + first.authority}
    for r in again.answer + again.authority:  # the cache never makes a TTL grow
        if (r.name, r.rdtype) in ttl_first:
            assert r.ttl <= ttl_first[(r.name, r.rdtype)], (r, ttl_first)


@pytest.mark.parametrize("name", UDP_CASES)
def test_resolves_over_tcp(resolver, name):
    check_resolver_reply(ask(name, tcp=True), name)


def test_big_answer_truncated_over_udp(resolver):
    """Needs TCP to the authoritative server, then TC=1 to a 512-byte UDP client."""
    r = ask("big", payload=512)
    assert r.rcode() == dns.rcode.NOERROR, r
    assert r.flags & dns.flags.TC, f"expected TC=1 for a >1232-byte answer over UDP\n{r}"
    r = ask("big", payload=None)  # no EDNS: 512 bytes
    assert r.flags & dns.flags.TC, r


def test_big_answer_complete_over_tcp(resolver):
    r = ask("big", tcp=True)
    check_resolver_reply(r, "big")
    assert {d.strings[0].decode() for d in r.answer[0]} == set(BIG_STRINGS)


def test_wrong_class_or_garbage_question_does_not_kill(resolver):
    """A CHAOS-class query gets some well-formed reply, and the daemon keeps answering."""
    import dns.message
    import dns.query
    q = dns.message.make_query("www.glue.test.", "A", rdclass="CH")
    r = dns.query.udp(q, RESOLVER_ADDR, timeout=5)
    assert r.rcode() in (dns.rcode.NOERROR, dns.rcode.NOTIMP, dns.rcode.REFUSED,
                         dns.rcode.SERVFAIL, dns.rcode.FORMERR, dns.rcode.NXDOMAIN)
    assert resolver.alive()
    check_resolver_reply(ask("glue"), "glue")
