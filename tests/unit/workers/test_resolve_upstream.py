"""The driver against misbehaving upstreams: selection errors counted per
query (kresd lib/selection.c), scrub before any module hook, and policy.STUB
versus policy.FORWARD."""
from __future__ import annotations

import dns.edns
import dns.flags
import dns.message
import dns.name
import dns.rcode
import dns.rdatatype as T
import dns.rrset
import pytest

from workers.layer import Layer
from workers.request import Forward

from .fakenet import AuthServer, FakeNet
from .test_resolve import COM, EXAMPLE, ROOT, ask, make_net, resolver  # noqa: F401 (fixture)

N = dns.name.from_text


# -- selection errors count per query ---------------------------------------------------

class RefusesNonApexNS(AuthServer):
    """A broken authoritative that REFUSES NS queries below its apex (common
    in the wild) but answers the full name."""

    def answer(self, wire, tcp):
        q = dns.message.from_wire(wire)
        qname, qtype = q.question[0].name, q.question[0].rdtype
        z = self._zone_for(qname)
        if qtype == T.NS and z is not None and qname != z.origin:
            self.queries.append((qname.canonicalize(), qtype, tcp))
            r = dns.message.make_response(q)
            r.set_rcode(dns.rcode.REFUSED)
            return r.to_wire()
        return super().answer(wire, tcp)


def test_refused_minimised_query_is_retried_with_the_full_name(resolver):
    """kresd: REFUSED turns NO_MINIMIZE on and the same server may be asked
    again; the only server of the zone is not given up on after one REFUSED."""
    net, servers = make_net()
    servers["1.2.3.4"] = RefusesNonApexNS(*[("example.com.", EXAMPLE)])
    net.servers["1.2.3.4"] = servers["1.2.3.4"]
    a = ask(resolver, net, "a.b.www.example.com.")
    assert a.rcode() == dns.rcode.NXDOMAIN and a.authority[0].rdtype == T.SOA  # not SERVFAIL
    asked = [(q[0].to_text(), T.to_text(q[1])) for q in servers["1.2.3.4"].queries]
    assert ("www.example.com.", "NS") in asked
    assert ("a.b.www.example.com.", "A") in asked


ROOT_BAD = ROOT + "com. 3600 IN NS bad.com.\nbad.com. 3600 IN A 9.9.9.9\n"
COM_BAD = COM + "example.com. 3600 IN NS bad.com.\nbad.com. 3600 IN A 9.9.9.9\n"


def test_broken_server_not_asked_again_deeper_in_the_same_query(resolver):
    """A server that SERVFAILs a full-name question is broken for the whole
    query: after the referral to example.com (which lists it again) it is not
    asked a second time."""
    resolver.settings.no_minimize = True
    net, servers = make_net()
    net.servers["198.41.0.4"] = AuthServer((".", ROOT_BAD))
    net.servers["192.5.6.30"] = AuthServer(("com.", COM_BAD))
    bad = net.servers["9.9.9.9"] = AuthServer(("com.", COM_BAD), behaviour="servfail")
    resolver.selection.EPSILON = 0.0  # no random exploration
    for known in ("198.41.0.4", "192.5.6.30"):  # unknown servers would be tried first
        resolver.selection.report_rtt(known, 0.1)
    resolver.selection.report_rtt("9.9.9.9", 0.0001)  # the fastest: always chosen first
    a = ask(resolver, net, "www.example.com.")
    assert a.rcode() == dns.rcode.NOERROR and a.answer[0][0].address == "10.0.0.1"
    assert len(bad.queries) == 1, bad.queries


def test_formerr_without_edns_breaks_the_server(resolver):
    net, servers = make_net()
    formerr = servers["1.2.3.4"]
    formerr.behaviour = "noedns"  # FORMERR to EDNS queries
    answers = formerr.answer

    def always_formerr(wire, tcp):  # ... and to plain ones too
        q = dns.message.from_wire(wire)
        formerr.queries.append((q.question[0].name, q.question[0].rdtype, tcp))
        r = dns.message.make_response(q)
        r.use_edns(False)
        r.set_rcode(dns.rcode.FORMERR)
        return r.to_wire()

    formerr.answer = always_formerr
    a = ask(resolver, net, "www.example.com.")
    assert a.rcode() == dns.rcode.SERVFAIL
    assert len(formerr.queries) == 2  # with EDNS, then without; then broken
    formerr.answer = answers


# -- scrub before module hooks -------------------------------------------------------------

class Junk(AuthServer):
    """Adds out-of-bailiwick records to every reply."""

    def answer(self, wire, tcp):
        r = dns.message.from_wire(super().answer(wire, tcp))
        r.answer.append(dns.rrset.from_text("evil.org.", 3600, "IN", "A", "6.6.6.6"))
        r.authority.append(dns.rrset.from_text("org.", 3600, "IN", "NS", "ns.evil.org."))
        r.additional.append(dns.rrset.from_text("ns.evil.org.", 3600, "IN", "A", "6.6.6.6"))
        return r.to_wire()


class Spy(Layer):
    name = "spy"

    def __init__(self):
        self.seen: list[dns.name.Name] = []

    def consume(self, req, reply):
        for sec in (reply.answer, reply.authority, reply.additional):
            self.seen.extend(rr.name for rr in sec)


def test_consume_hooks_see_only_the_scrubbed_reply(resolver):
    net, servers = make_net()
    net.servers["1.2.3.4"] = Junk(("example.com.", EXAMPLE))
    spy = Spy()
    resolver.layers.append(spy)
    a = ask(resolver, net, "www.example.com.")
    assert a.answer[0][0].address == "10.0.0.1"
    assert N("www.example.com.") in spy.seen  # the hook did run on the reply
    assert not [n for n in spy.seen if n.is_subdomain(N("org."))], spy.seen


# -- STUB is not FORWARD ----------------------------------------------------------------------

class Recursive:
    """A scripted recursive upstream (answers RD=1 queries from a table)."""

    DATA = {
        ("alias.example.", T.A): ["alias.example. 300 IN CNAME target.example.",
                                  "target.example. 300 IN A 10.1.1.1"],
        ("target.example.", T.A): ["target.example. 300 IN A 10.1.1.1"],
        ("lonely.example.", T.A): ["lonely.example. 300 IN CNAME nowhere.example."],
        ("nowhere.example.", T.A): ["nowhere.example. 300 IN A 10.2.2.2"],
    }

    def __init__(self):
        self.queries = []

    def answer(self, wire, tcp):
        q = dns.message.from_wire(wire)
        key = (q.question[0].name.to_text().lower(), q.question[0].rdtype)
        self.queries.append((key, bool(q.flags & dns.flags.RD)))
        r = dns.message.make_response(q)
        r.flags |= dns.flags.RA
        for line in self.DATA.get(key, []):
            r.answer.append(dns.rrset.from_text(*line.split(" ", 4)[:4], line.split(" ", 4)[4]))
        if key not in self.DATA:
            r.set_rcode(dns.rcode.NXDOMAIN)
            r.authority.append(dns.rrset.from_text("example.", 300, "IN", "SOA",
                                                   "ns. host. 1 2 3 4 300"))
        return r.to_wire()


class Policy(Layer):
    name = "policy"

    def __init__(self, stub: bool):
        self.stub = stub

    def begin(self, req):
        req.forward = Forward([("192.0.2.99", 53)], stub=self.stub)


@pytest.fixture
def upstream():
    up = Recursive()
    return up, FakeNet({"192.0.2.99": up})


def test_stub_takes_the_answer_as_it_comes(resolver, upstream):
    up, net = upstream
    resolver.layers.append(Policy(stub=True))
    a = ask(resolver, net, "alias.example.")
    assert [(rr.rdtype, rr.name.to_text()) for rr in a.answer] == [
        (T.CNAME, "alias.example."), (T.A, "target.example.")]
    assert up.queries == [(("alias.example.", T.A), True)]  # one query, RD=1
    a = ask(resolver, net, "lonely.example.")  # the CNAME target is not chased
    assert a.rcode() == dns.rcode.NOERROR
    assert [rr.rdtype for rr in a.answer] == [T.CNAME]
    assert [k for k, _ in up.queries] == [("alias.example.", T.A), ("lonely.example.", T.A)]
    a = ask(resolver, net, "missing.example.")
    assert a.rcode() == dns.rcode.NXDOMAIN and a.authority[0].rdtype == T.SOA
    assert resolver.cache.peek_rrset(N("alias.example."), T.CNAME) is None  # not stashed


def test_forward_resolves_through_the_forwarder(resolver, upstream):
    up, net = upstream
    resolver.layers.append(Policy(stub=False))
    a = ask(resolver, net, "lonely.example.")
    assert [rr.rdtype for rr in a.answer] == [T.CNAME, T.A]
    assert a.answer[1][0].address == "10.2.2.2"
    assert up.queries == [(("lonely.example.", T.A), True), (("nowhere.example.", T.A), True)]
    ask(resolver, net, "alias.example.")
    assert [k for k, _ in up.queries][2:] == [("alias.example.", T.A), ("target.example.", T.A)]
    assert resolver.cache.peek_rrset(N("alias.example."), T.CNAME) is not None


# -- CNAME loops in one reply; DNSSEC records only for DO clients -------------------------------

class SelfCname(AuthServer):
    """www.example.com CNAME www.example.com (plus an NSEC-signed NODATA for TXT)."""

    def answer(self, wire, tcp):
        q = dns.message.from_wire(wire)
        qname, qtype = q.question[0].name, q.question[0].rdtype
        self.queries.append((qname, qtype, tcp))
        r = dns.message.make_response(q)
        r.flags |= dns.flags.AA
        if qname == N("loop.example.com."):
            r.answer.append(dns.rrset.from_text(qname, 300, "IN", "CNAME", "loop.example.com."))
        elif qname == N("www.example.com.") and qtype == T.TXT:
            r.authority.append(dns.rrset.from_text("example.com.", 300, "IN", "SOA",
                                                   "ns1.example.com. x. 1 2 3 4 300"))
            r.authority.append(dns.rrset.from_text("www.example.com.", 300, "IN", "NSEC",
                                                   "z.example.com. A RRSIG NSEC"))
            r.authority.append(dns.rrset.from_text(
                "www.example.com.", 300, "IN", "RRSIG",
                "NSEC 8 3 300 20300101000000 20200101000000 1 example.com. AAAA"))
        elif qname == N("www.example.com.") and qtype == T.NSEC:
            r.answer.append(dns.rrset.from_text("www.example.com.", 300, "IN", "NSEC",
                                                "z.example.com. A RRSIG NSEC"))
        else:
            return super().answer(wire, tcp)
        return r.to_wire()


def test_cname_to_itself_is_servfail(resolver):
    """kresd 5.6 "cname chain loop": SERVFAIL (not NODATA) without EDE, the looping
    CNAME in the answer section (as Debian's kresd 5.6 answers, tests/e2e/test_differential.py)."""
    net, _ = make_net()
    srv = net.servers["1.2.3.4"] = SelfCname(("example.com.", EXAMPLE))
    a = ask(resolver, net, "loop.example.com.", use_edns=0)
    assert a.rcode() == dns.rcode.SERVFAIL
    assert [(rr.name, rr.rdtype) for rr in a.answer] == [(N("loop.example.com."), T.CNAME)]
    assert not any(o.otype == dns.edns.OptionType.EDE for o in a.options)
    assert [q for q in srv.queries if q[0] == N("loop.example.com.")] == [
        (N("loop.example.com."), T.A, False)]  # broken for the query: asked once
    assert resolver.cache.peek_negative(N("loop.example.com."), T.A) is None


def test_dnssec_records_only_for_do_clients(resolver):
    net, _ = make_net()
    net.servers["1.2.3.4"] = SelfCname(("example.com.", EXAMPLE))
    plain = ask(resolver, net, "www.example.com.", "TXT", use_edns=0)
    assert plain.rcode() == dns.rcode.NOERROR and not plain.answer
    assert [rr.rdtype for rr in plain.authority] == [T.SOA]
    do = ask(resolver, net, "www.example.com.", "TXT", use_edns=0, want_dnssec=True)
    assert sorted(rr.rdtype for rr in do.authority) == sorted([T.SOA, T.NSEC, T.RRSIG])
    # asked for the DNSSEC type itself: given even without DO
    nsec = ask(resolver, net, "www.example.com.", "NSEC", use_edns=0)
    assert [rr.rdtype for rr in nsec.answer] == [T.NSEC]
