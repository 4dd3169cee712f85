"""The driver's CNAME chain (workers/resolve.py _chain, _resolve_request) at the
edges, as Debian's kresd 5.6 answers them (tests/e2e/test_differential.py
compares the two): the chain limit, loops, DNAME overflow, classes and meta types."""
from __future__ import annotations

import dns.edns
import dns.flags
import dns.message
import dns.name
import dns.rcode
import dns.rdatatype as T
import dns.rrset

from .fakenet import AuthServer
from .test_resolve import EXAMPLE, EXAMPLE_NET, ask, make_net, resolver  # noqa: F401 (fixture)

N = dns.name.from_text
LIMIT = 13  # kresd KR_CNAME_CHAIN_LIMIT, Settings.max_cname_chain

# c12: 12 CNAMEs to www, c13: 13 (one reply per link: the fake server does not follow)
CHAINS = "".join(f"c{n}-{i} 3600 IN CNAME {f'c{n}-{i + 1}' if i + 1 < n else 'www'}\n"
                 for n in (LIMIT - 1, LIMIT) for i in range(n))
LONG_QNAME = f"{'x' * 49}.{'y' * 49}.old.example.com."  # old DNAMEs to example.net.


class LongDname(AuthServer):
    """example.com. with a DNAME to a 167-octet target: YXDOMAIN for a long name."""

    def answer(self, wire, tcp):
        q = dns.message.from_wire(wire)
        if q.question[0].name == N(LONG_QNAME):
            self.queries.append((q.question[0].name, q.question[0].rdtype, tcp))
            r = dns.message.make_response(q)
            r.flags |= dns.flags.AA
            r.set_rcode(dns.rcode.YXDOMAIN)
            r.answer.append(dns.rrset.from_text("old.example.com.", 300, "IN", "DNAME",
                                                ".".join(c * 50 for c in "fgh") + ".example.net."))
            return r.to_wire()
        return super().answer(wire, tcp)


def edes(msg):
    return [o.code for o in msg.options if o.otype == dns.edns.OptionType.EDE]


def chain_net():
    net, _ = make_net()
    net.servers["1.2.3.4"] = AuthServer(("example.com.", EXAMPLE + CHAINS), ("example.net.", EXAMPLE_NET))
    return net


def test_chain_of_twelve_cnames_is_answered(resolver):
    a = ask(resolver, chain_net(), "c12-0.example.com.", use_edns=0)
    assert a.rcode() == dns.rcode.NOERROR
    assert [rr.rdtype for rr in a.answer] == [T.CNAME] * 12 + [T.A]


def test_thirteenth_cname_fails_with_the_chain_so_far(resolver):
    a = ask(resolver, chain_net(), "c13-0.example.com.", use_edns=0)
    assert a.rcode() == dns.rcode.SERVFAIL and edes(a) == []
    assert [rr.rdtype for rr in a.answer] == [T.CNAME] * 13
    assert a.answer[-1].name == N("c13-12.example.com.")


def test_loop_across_replies_fails_with_both_links(resolver):
    net, _ = make_net()
    a = ask(resolver, net, "loop1.example.com.", use_edns=0)
    assert a.rcode() == dns.rcode.SERVFAIL and edes(a) == []
    assert {rr.name for rr in a.answer} == {N("loop1.example.com."), N("loop2.example.com.")}


def test_dname_overflow_is_yxdomain(resolver):
    net, _ = make_net()
    net.servers["1.2.3.4"] = LongDname(("example.com.", EXAMPLE), ("example.net.", EXAMPLE_NET))
    a = ask(resolver, net, LONG_QNAME)
    assert a.rcode() == dns.rcode.YXDOMAIN
    assert [(rr.name, rr.rdtype) for rr in a.answer] == [(N("old.example.com."), T.DNAME)]


def test_other_classes_and_meta_types_servfail_without_asking(resolver):
    net, _ = make_net()
    for name, rdtype, rdclass in [("version.bind.", "TXT", "CH"), ("www.example.com.", "ANY", "IN"),
                                  ("example.com.", "AXFR", "IN"), ("www.example.com.", "TYPE0", "IN")]:
        a = ask(resolver, net, name, rdtype, rdclass=rdclass, use_edns=0)
        assert a.rcode() == dns.rcode.SERVFAIL and edes(a) == [] and not a.answer, (name, rdtype)
    assert net.sent == 0


def test_maila_is_asked_upstream(resolver):
    net, _ = make_net()
    a = ask(resolver, net, "www.example.com.", "MAILA")
    assert a.rcode() == dns.rcode.NOERROR and net.sent > 0
