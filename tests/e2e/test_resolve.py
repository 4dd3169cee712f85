"""Recursive resolution through the real resolver binary (127.0.10.1@53).

Each case of hierarchy.CASES is asked as a stub resolver asks (RD=1), first
on a cold cache and then again, answered from the cache while every knotd of
the hierarchy is stopped (SIGSTOP) and with no query waiting at any of them.
"""
from __future__ import annotations

import contextlib
import os
import signal
import socket
import struct

import dns.exception
import dns.flags
import dns.rcode
import dns.rdatatype
import pytest

from .conftest import RESOLVER_ADDR
from .hierarchy import BIG_STRINGS, CASES, NEG_TTL, SERVERS, TTL, answer_map, check_case, query

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


AUTH_ADDRS = frozenset(addr for addr, _, _ in SERVERS.values())


def queued_at_authoritatives() -> int:
    """What waits unread at the authoritative servers: bytes in the receive queues
    of the UDP sockets and connections in the accept queues of the listening TCP
    sockets bound to their addresses, port 53 (this network namespace)."""
    total = 0
    for table, listening in (("/proc/net/udp", None), ("/proc/net/tcp", "0A")):
        with open(table) as f:
            next(f)
            for line in f:
                fields = line.split()
                ip_hex, port_hex = fields[1].split(":")
                if int(port_hex, 16) != 53 or (listening and fields[3] != listening):
                    continue
                if socket.inet_ntoa(struct.pack("<I", int(ip_hex, 16))) in AUTH_ADDRS:
                    total += int(fields[4].split(":")[1], 16)  # tx_queue:rx_queue
    return total


@contextlib.contextmanager
def authoritatives_frozen(hierarchy):
    """SIGSTOP every knotd of the hierarchy (SIGCONT on exit): nothing answers
    upstream, and a query sent to one of them stays in its socket's queue."""
    pids = [p.pid for p in hierarchy.procs.values()]
    assert len(pids) == len(SERVERS) and hierarchy.running()
    stopped = []
    try:
        for pid in pids:
            os.kill(pid, signal.SIGSTOP)
            stopped.append(pid)
        yield
    finally:
        for pid in stopped:
            os.kill(pid, signal.SIGCONT)


@pytest.mark.parametrize("name", UDP_CASES)
def test_resolves_again_from_cache(hierarchy, resolver, name):
    """The second answer comes from the cache: it arrives while every authoritative
    server is stopped, and no query reached any of them meanwhile."""
    first = ask(name)
    check_resolver_reply(first, name)
    with authoritatives_frozen(hierarchy):
        before = queued_at_authoritatives()
        again = ask(name)
        assert queued_at_authoritatives() == before, "the resolver asked an authoritative server"
    check_resolver_reply(again, name)
    assert answer_map(again) == answer_map(first)
    ttl_first = {(r.name, r.rdtype): r.ttl for r in first.answer + first.authority}
    for r in again.answer + again.authority:  # the cache never makes a TTL grow
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
    """A CHAOS-class query gets SERVFAIL (kresd 5.6: only class IN is resolved; see
    test_differential.py), and the daemon keeps answering."""
    import dns.message
    import dns.query
    q = dns.message.make_query("www.glue.test.", "A", rdclass="CH")
    r = dns.query.udp(q, RESOLVER_ADDR, timeout=5)
    assert r.rcode() == dns.rcode.SERVFAIL and not r.answer, r
    assert r.id == q.id and r.question == q.question
    assert resolver.alive()
    check_resolver_reply(ask("glue"), "glue")


def test_frozen_authoritatives_are_noticed(hierarchy, resolver):
    """test_resolves_again_from_cache can fail: a name the resolver has not cached
    gets no answer while the servers are stopped, and its queries wait in their
    queues. (Last in the module: the resolver backs off the servers that timed out.)"""
    with authoritatives_frozen(hierarchy):
        before = queued_at_authoritatives()
        try:
            r = query(RESOLVER_ADDR, "not-cached-yet.glue.test.", "A", timeout=3)
        except dns.exception.Timeout:
            r = None
        assert r is None or r.rcode() == dns.rcode.SERVFAIL, r
        assert queued_at_authoritatives() > before
