"""The driver's defences towards authoritative servers: 0x20 case randomisation
of the upstream QNAME (checked on the reply, plain case in the cache and to
clients) and the NXNSAttack bound on NS address lookups (kresd
KR_COUNT_NO_NSADDR_LIMIT)."""
from __future__ import annotations

import random

import dns.flags
import dns.message
import dns.name
import dns.rcode
import dns.rdatatype as T
from hypothesis import given
from hypothesis import strategies as st
import pytest

from workers.layers import cache as cache_layer
from workers.request import Outcome
from workers.resolve import NS_ADDR_LOOKUPS
from workers.wire import plain_case, x20

from .fakenet import AuthServer
from .test_resolve import COM, ask, make_net, resolver  # noqa: F401 (fixture)

N = dns.name.from_text


# -- 0x20 ------------------------------------------------------------------------------

def randomize_case(name: dns.name.Name, rng) -> dns.name.Name:
    """The 0x20 case of `name` as the driver puts it on the wire."""
    return dns.name.from_wire(x20(name.to_wire().lower(), rng), 0)[0]


@given(st.lists(st.binary(min_size=1, max_size=20), min_size=0, max_size=6), st.integers(0, 2**32))
def test_randomize_case_only_changes_letter_case(labels, seed):
    try:
        name = dns.name.Name(labels + [b""])
    except dns.name.NameTooLong:
        return
    out = randomize_case(name, random.Random(seed))
    assert out == name  # case-insensitive equality
    assert out.to_wire().lower() == name.to_wire().lower()
    assert len(out.to_wire()) == len(name.to_wire())
    # only ASCII letters change (never label lengths or other bytes)
    assert {a ^ b for a, b in zip(out.to_wire(), name.to_wire().lower())} <= {0, 0x20}


def test_randomize_case_uses_both_cases():
    name = N("abcdefghijklmnopqrstuvwxyz.example.")
    outs = {randomize_case(name, random.Random(i)).to_text() for i in range(8)}
    assert len(outs) == 8
    assert all(any(c.isupper() for c in o) and any(c.islower() for c in o) for o in outs)


def _reply_wire(qname: str) -> bytes:
    q = dns.message.make_query(qname, "A")
    r = dns.message.make_response(q)
    r.answer.append(dns.rrset.from_text(qname, 60, "IN", "A", "192.0.2.1"))
    return r.to_wire()


def test_plain_case_of_an_echoing_reply():
    sent = N("wWw.ExAmple.COM.").to_wire()
    out = plain_case(_reply_wire("wWw.ExAmple.COM."), sent)
    m = dns.message.from_wire(out)
    # the question and the owner compressed against it come back in plain case
    assert m.question[0].name.to_text() == "www.example.com."
    assert m.answer[0].name.to_text() == "www.example.com."


def test_plain_case_refuses_another_case_and_passes_other_names():
    sent = N("wWw.ExAmple.COM.").to_wire()
    assert plain_case(_reply_wire("www.example.com."), sent) is None
    other = _reply_wire("other.example.")
    assert plain_case(other, sent) == other
    assert plain_case(b"\x00\x01", sent) == b"\x00\x01"


def test_upstream_qnames_are_randomised_and_answers_are_plain(resolver):
    net, servers = make_net()
    a = ask(resolver, net, "www.example.com.")
    assert a.answer[0].name.to_text() == "www.example.com."
    wire = [n.to_text() for srv in servers.values() for n in srv.wire_names]
    assert any(n != n.lower() for n in wire), wire  # 0x20 on by default, as kresd 5.6
    a = ask(resolver, net, "www.example.com.")  # from the cache
    assert a.answer[0].name.to_text() == "www.example.com."


def test_no_0x20_sends_plain_case(resolver):
    resolver.settings.no_0x20 = True
    net, servers = make_net()
    ask(resolver, net, "www.example.com.")
    wire = [n.to_text() for srv in servers.values() for n in srv.wire_names]
    assert wire and all(n == n.lower() for n in wire)


class UdpMangled(AuthServer):
    """Answers over UDP changed by `mangle(message)`; over TCP as they come."""

    def __init__(self, zones, mangle):
        super().__init__(*zones)
        self.mangle = mangle

    def answer(self, wire, tcp):
        out = super().answer(wire, tcp)
        if out is None or tcp:
            return out
        m = dns.message.from_wire(out)
        self.mangle(m)
        return m.to_wire()


def lowercase_question(m):
    """Breaks 0x20, as some middleboxes do."""
    m.question[0].name = m.question[0].name.canonicalize()


def partial_tc(m):
    """TC=1 with what fitted (the answer kept), as for a large answer."""
    m.flags |= dns.flags.TC


def mangled(net, servers, mangle, addr="1.2.3.4") -> UdpMangled:
    srv = UdpMangled(servers[addr].zones, mangle)
    servers[addr] = net.servers[addr] = srv
    return srv


def test_server_that_loses_the_case_is_asked_again_over_tcp_without_0x20(resolver):
    net, servers = make_net()
    srv = mangled(net, servers, lowercase_question)
    a = ask(resolver, net, "www.example.com.")
    assert a.rcode() == dns.rcode.NOERROR and a.answer[0][0].address == "10.0.0.1"
    tcp = [(n, t) for n, t, over_tcp in srv.queries if over_tcp]
    assert tcp, "the retry goes over TCP"
    tcp_names = [n for n, (_, _, over_tcp) in zip(srv.wire_names, srv.queries) if over_tcp]
    assert all(n.to_text() == n.to_text().lower() for n in tcp_names)  # without 0x20


# -- NXNSAttack ------------------------------------------------------------------------

FANOUT = 40
VICTIM_NET = """
@ 3600 IN SOA a.gtld.com. x. 1 1800 900 604800 86400
@ 3600 IN NS a.gtld.com.
victim.net. 3600 IN NS ns.victim.net.
ns.victim.net. 3600 IN A 1.2.3.9
"""
VICTIM = """
@ 3600 IN SOA ns x. 1 1800 900 604800 300
@ 3600 IN NS ns
ns 3600 IN A 1.2.3.9
"""


def attack_net(good: int | None = None, fanout: int = FANOUT):
    """com. delegates x.com. to `fanout` glueless names in victim.net. (which has
    none of them, NXDOMAIN); with `good`, n<good> exists and serves x.com."""
    net, servers = make_net()
    attack = "".join(f"x.com. 3600 IN NS n{i}.victim.net.\n" for i in range(fanout))
    victim = VICTIM + (f"n{good} 3600 IN A 1.2.3.10\n" if good is not None else "")
    servers["192.5.6.30"] = AuthServer(("com.", COM + attack), ("net.", VICTIM_NET))
    servers["1.2.3.9"] = AuthServer(("victim.net.", victim))
    servers["1.2.3.10"] = AuthServer(("x.com.", "@ 3600 IN SOA a. b. 1 2 3 4 5\n@ 3600 IN NS a.\n"
                                                "www 3600 IN A 10.9.9.9\n"))
    net.servers.update(servers)
    return net, servers


def test_nxns_referral_costs_at_most_the_lookup_bound(resolver):
    net, servers = attack_net()
    a = ask(resolver, net, "www.x.com.")
    assert a.rcode() == dns.rcode.SERVFAIL
    names = {n for n, t, _ in servers["1.2.3.9"].queries if t in (T.A, T.AAAA)}
    assert 0 < len(names) <= NS_ADDR_LOOKUPS  # at most 5 NS names looked up, not 40
    assert net.sent <= 3 * NS_ADDR_LOOKUPS + 4


def test_lookups_within_the_bound_still_find_a_server(resolver):
    """Three NS names, one good: whichever order they are tried in, the good one
    is reached within five lookups (A and AAAA of the two others, then its A)."""
    net, servers = attack_net(good=2, fanout=3)
    a = ask(resolver, net, "www.x.com.")
    assert a.rcode() == dns.rcode.NOERROR and a.answer[0][0].address == "10.9.9.9"


def test_negative_answers_for_ns_names_are_reused_by_the_next_request(resolver):
    """The NXDOMAIN of each NS name looked up is cached: the same referral asked
    again costs the victim nothing (the lookups still count against the bound)."""
    net, servers = attack_net()
    ask(resolver, net, "www.x.com.")
    victim = len(servers["1.2.3.9"].queries)
    looked_up = {(n, t) for n, t, _ in servers["1.2.3.9"].queries if n != N("victim.net.")}
    for name, rdtype in looked_up:
        hit = cache_layer.peek(resolver.cache, name, rdtype, True, 0)
        assert hit is not None and hit.outcome is Outcome.NXDOMAIN, (name, hit)
    a = ask(resolver, net, "www.x.com.")
    assert a.rcode() == dns.rcode.SERVFAIL
    assert len(servers["1.2.3.9"].queries) == victim


class CaseSpy(AuthServer):
    def __init__(self, inner):
        self.inner, self.names = inner, []

    def answer(self, wire, tcp):
        self.names.append(dns.message.from_wire(wire).question[0].name.to_text())
        return self.inner.answer(wire, tcp)


@pytest.mark.parametrize("stub", [False, True])
def test_forwarded_queries_use_0x20_too(resolver, stub):
    """kresd 5.6 randomises the case towards FORWARD and STUB targets as well (measured)."""
    from .fakenet import FakeNet
    from .test_resolve_upstream import Policy, Recursive

    spy = CaseSpy(Recursive())
    resolver.layers.append(Policy(stub=stub))
    a = ask(resolver, FakeNet({"192.0.2.99": spy}), "target.example.")
    assert a.answer and a.answer[0][0].address == "10.1.1.1"
    assert a.answer[0].name.to_text() == "target.example."
    assert any(n != n.lower() for n in spy.names), spy.names


# -- capability memory: TCP only ------------------------------------------------------

def test_empty_truncated_replies_do_not_make_a_server_tcp_only(resolver):
    """An empty TC=1 is how knotd and BIND answer a too-big question over UDP:
    no capability memory from it (the next small question goes over UDP)."""
    net, servers = make_net()
    servers["1.2.3.4"].behaviour = "tc"
    a = ask(resolver, net, "www.example.com.")
    assert a.rcode() == dns.rcode.NOERROR and a.answer[0][0].address == "10.0.0.1"
    assert not resolver.selection.state("1.2.3.4").tcp_only
    before = len(servers["1.2.3.4"].queries)
    ask(resolver, net, "nope.example.com.")
    assert not servers["1.2.3.4"].queries[before][2]  # UDP first again


def test_server_that_loses_the_case_is_remembered_as_tcp_only(resolver):
    net, servers = make_net()
    srv = mangled(net, servers, lowercase_question)
    ask(resolver, net, "www.example.com.")
    assert resolver.selection.state("1.2.3.4").tcp_only
    before = len(srv.queries)
    ask(resolver, net, "nope.example.com.")
    assert all(tcp for _, _, tcp in srv.queries[before:])


def test_a_large_answer_does_not_make_a_server_tcp_only(resolver):
    net, servers = make_net()
    srv = mangled(net, servers, partial_tc)
    a = ask(resolver, net, "www.example.com.")
    assert a.answer and a.answer[0][0].address == "10.0.0.1"
    assert any(tcp for _, _, tcp in srv.queries)  # it did go to TCP after the TC=1
    assert not resolver.selection.state("1.2.3.4").tcp_only


def test_a_silent_victim_costs_a_request_at_most_two_timeouts(resolver):
    """NXNSAttack with a victim that never answers: each NS name looked up would
    ask it again; the request gives up on it after REQUEST_TIMEOUTS timeouts."""
    net, servers = attack_net()
    servers["1.2.3.9"].behaviour = "timeout"
    a = ask(resolver, net, "www.x.com.")
    assert a.rcode() == dns.rcode.SERVFAIL
    assert 0 < len(servers["1.2.3.9"].queries) <= 2  # REQUEST_TIMEOUTS; 5 without it


def test_tcp_exchanges_wait_at_least_the_default_timeout(resolver):
    """A server learnt as fast (a 20 ms UDP timeout would do) still gets the
    default timeout over TCP: it covers the handshake too."""
    net, servers = make_net()
    sends = []

    def spy(send):
        sends.append(send)
        return net(send)

    resolver.selection.report_rtt("1.2.3.4", 0.001)
    servers["1.2.3.4"].behaviour = "tc"
    ask(resolver, spy, "www.example.com.")
    to_it = [s for s in sends if s.addr == "1.2.3.4"]
    assert [s.tcp for s in to_it] == [False, True]
    assert to_it[0].timeout < resolver.settings.upstream_timeout <= to_it[1].timeout


def test_trace_prints_type_names_and_numbers():
    from workers.resolve import _Type

    assert f"{_Type(1)} {_Type(65535)} {_Type(28)}" == "A TYPE65535 AAAA"
    assert _Type(65535) == 65535
