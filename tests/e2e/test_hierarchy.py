"""The knotd hierarchy itself, queried directly (no resolver involved).

These pin down what each authoritative server says, so a failing resolver test
can be blamed on the resolver and not on the fixture.
"""
from __future__ import annotations

import shutil
import subprocess

import dns.flags
import dns.rcode
import dns.rdatatype
import pytest

from .hierarchy import BIG_STRINGS, CASES, SERVERS, answer_map, check_case, query, soa_owners

pytestmark = [pytest.mark.e2e, pytest.mark.root]


@pytest.mark.parametrize("name", [n for n, s in SERVERS.items() if s[1]])
def test_server_is_authoritative(hierarchy, name):
    addr, origin, _ = SERVERS[name]
    r = query(addr, origin, "SOA", rd=False)
    assert r.rcode() == dns.rcode.NOERROR
    assert r.flags & dns.flags.AA
    assert [rr.name.to_text() for rr in r.answer] == [origin]


def referral(addr: str, qname: str) -> tuple[dict, dict]:
    r = query(addr, qname, "A", rd=False)
    assert r.rcode() == dns.rcode.NOERROR and not r.answer and not r.flags & dns.flags.AA, r
    ns = {rr.name.to_text(): {d.to_text() for d in rr} for rr in r.authority
          if rr.rdtype == dns.rdatatype.NS}
    glue = {rr.name.to_text(): {d.to_text() for d in rr} for rr in r.additional
            if rr.rdtype == dns.rdatatype.A}
    return ns, glue


def test_root_refers_to_tlds_with_glue(hierarchy):
    assert referral("127.0.10.2", "www.glue.test.") == (
        {"test.": {"ns.test."}}, {"ns.test.": {"127.0.10.3"}})
    assert referral("127.0.10.2", "www.example.") == (
        {"example.": {"ns.example."}}, {"ns.example.": {"127.0.10.4"}})


def test_delegation_with_glue(hierarchy):
    assert referral("127.0.10.3", "www.glue.test.") == (
        {"glue.test.": {"ns1.glue.test."}}, {"ns1.glue.test.": {"127.0.10.5"}})


def test_delegation_without_glue(hierarchy):
    # The NS name is in example.: test. has no address for it, example. has.
    assert referral("127.0.10.3", "www.noglue.test.") == (
        {"noglue.test.": {"ns.hoster.example."}}, {})
    r = query("127.0.10.4", "ns.hoster.example.", "A", rd=False)
    assert answer_map(r) == {("ns.hoster.example.", "A"): {"127.0.10.6"}}


def test_lame_delegation(hierarchy):
    assert referral("127.0.10.3", "www.lame.test.") == (
        {"lame.test.": {"ns1.lame.test.", "ns2.lame.test."}},
        {"ns1.lame.test.": {"127.0.10.7"}, "ns2.lame.test.": {"127.0.10.8"}})
    assert query("127.0.10.7", "www.lame.test.", "A", rd=False).rcode() == dns.rcode.REFUSED
    assert query("127.0.10.7", "lame.test.", "SOA", rd=False).rcode() == dns.rcode.REFUSED


@pytest.mark.parametrize("name", sorted(CASES))
def test_final_answer_from_authoritative(hierarchy, name):
    case = CASES[name]
    r = query(case.server, case.qname, case.qtype, rd=False, tcp=(name == "big"))
    assert r.flags & dns.flags.AA
    if name == "cname":
        # The target is in another zone: the authoritative server gives the CNAME only.
        assert answer_map(r) == {("alias.glue.test.", "CNAME"): {"www.example."}}
        assert answer_map(query("127.0.10.4", "www.example.", "A")) == \
            {("www.example.", "A"): {"192.0.2.80"}}
    else:
        check_case(r, case)


def test_negative_answers_carry_soa(hierarchy):
    nx = query("127.0.10.5", "nx.glue.test.", "A", rd=False)
    assert nx.rcode() == dns.rcode.NXDOMAIN and soa_owners(nx) == ["glue.test."]
    nodata = query("127.0.10.5", "www.glue.test.", "AAAA", rd=False)
    assert nodata.rcode() == dns.rcode.NOERROR and not nodata.answer
    assert soa_owners(nodata) == ["glue.test."]


def test_big_answer_needs_tcp(hierarchy):
    udp = query("127.0.10.5", "big.glue.test.", "TXT", payload=1232, rd=False)
    assert udp.flags & dns.flags.TC
    tcp = query("127.0.10.5", "big.glue.test.", "TXT", tcp=True, rd=False)
    assert not tcp.flags & dns.flags.TC
    assert len(tcp.to_wire()) > 1232
    assert {d.strings[0].decode() for d in tcp.answer[0]} == set(BIG_STRINGS)


def test_kdig_sees_the_root(hierarchy):
    """The same check with the CLI tool users reach for (knot-dnsutils)."""
    kdig = shutil.which("kdig")
    if kdig is None:
        pytest.fail("kdig is not installed: run tools/install.sh (Debian package knot-dnsutils)")
    out = subprocess.run([kdig, "@127.0.10.2", "+norec", "+timeout=2", "+retry=0", ".", "NS"],
                         capture_output=True, text=True, timeout=10)
    assert out.returncode == 0, out.stderr
    assert "status: NOERROR" in out.stdout and "a.root-servers.net." in out.stdout


def test_edge_zones(hierarchy):
    """What the edge cases of test_differential.py rest on, from knotd itself."""
    from .hierarchy import CNAME_LIMIT, NAME255, OVERFLOW_QNAME
    r = query("127.0.10.14", f"l{CNAME_LIMIT}-12.edge.test.", "A", rd=False)  # the last link
    assert answer_map(r) == {(f"l{CNAME_LIMIT}-12.edge.test.", "CNAME"): {"www.edge.test."},
                             ("www.edge.test.", "A"): {"192.0.2.20"}}
    r = query("127.0.10.14", OVERFLOW_QNAME, "A", rd=False)
    assert r.rcode() == dns.rcode.YXDOMAIN
    assert [rr.rdtype for rr in r.answer] == [dns.rdatatype.DNAME]
    assert answer_map(query("127.0.10.14", NAME255, "A", rd=False)) == {(NAME255, "A"): {"192.0.2.26"}}
    assert answer_map(query("127.0.10.15", "xloop.edge.example.", "A", rd=False)) == \
        {("xloop.edge.example.", "CNAME"): {"xloop.edge.test."}}
    assert referral("127.0.10.3", "www.edge.test.") == (
        {"edge.test.": {"ns.edge.test."}}, {"ns.edge.test.": {"127.0.10.14"}})
