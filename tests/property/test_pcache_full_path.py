"""The packet cache replays the full path byte for byte.

A Resolver on the in-process fake networks (unsigned: tests/unit/workers/
test_resolve.py; signed with a trust anchor: tests/unit/workers/signedzones.py)
with a fake clock: the question is resolved once through the network, then
answered by the full path from the cache alone at t0 (rendered as the server
renders it for UDP) and kept in the packet cache (C and twin); asked again
d seconds later with another ID, case, payload, the packet cache's answer is
exactly what the full path renders at t0 + d, or a miss once a TTL ran out.
Covers A, CNAME chains, NXDOMAIN, NODATA, DNSSEC (DO, CD, AD; secure,
insecure) and TC=1 for payloads that do not fit.
"""
from __future__ import annotations

import time

import dns.flags
import dns.message
import dns.name
import dns.zone
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

import native
import native.pure as pure
from cache.api import Cache
from tests.unit.workers import signedzones as sz
from tests.unit.workers.test_resolve import EXAMPLE, make_net
from workers.resolve import Resolver
from workers.server import parse_client_query, render_answer
from workers.settings import Settings
from workers.transport import drive_sync

pytestmark = pytest.mark.skipif(native.BACKEND != "c", reason="compares the C extension with its twin")


class Clock:
    def __init__(self):
        self.now = float(int(time.time()))

    def time(self):
        return self.now

    def monotonic(self):
        return self.now


class NeedsNetwork(Exception):
    """The full path could not answer from the cache alone (the server would not keep it)."""


def _no_network(send):
    raise NeedsNetwork(send)


class World:
    def __init__(self, tmp, signed: bool):
        self.clock = Clock()
        s = Settings()
        if signed:
            s.root_hints = sz.ROOT_HINTS
            s.trust_anchors = sz.trust_anchors()
            self.net = sz.make_net("good")[0]
        else:
            s.root_hints = {dns.name.from_text("a.root-servers.net."): ["198.41.0.4"]}
            self.net, servers = make_net()
            # an answer of ~800 bytes: TC=1 for clients without EDNS or with a 512/700 payload
            huge = "".join(f'huge 3600 IN TXT "{i}{"y" * 250}"\n' for i in range(3))
            servers["1.2.3.4"].zones[0] = dns.zone.from_text(EXAMPLE + huge, "example.com.", relativize=False)
        s.reorder_rr = False  # the same record order in every answer: comparable byte for byte
        self.settings = s
        self.cache = Cache(str(tmp), 16 << 20, clock=self.clock.time)
        self.cache.open()
        self.resolver = Resolver(s, self.cache, self.clock)

    def full(self, wire: bytes, net=None) -> bytes:
        msg, _ = parse_client_query(wire)
        ans = drive_sync(self.resolver.resolve(msg, ("127.0.0.1", 5353)), net or _no_network)
        return render_answer(ans, msg, self.settings, False)[0]


@pytest.fixture(scope="module")
def worlds(tmp_path_factory):
    out = {False: World(tmp_path_factory.mktemp("plain"), False),
           True: World(tmp_path_factory.mktemp("signed"), True)}
    yield out
    for w in out.values():
        w.cache.close()


PLAIN = [("www.example.com.", "A"), ("alias.example.com.", "A"), ("nx.example.com.", "A"),
         ("www.example.com.", "AAAA"), ("big.example.com.", "TXT"), ("huge.example.com.", "TXT"), ("www.example.net.", "A"),
         ("loop1.example.com.", "A")]
SIGNED = [("www.secure.test.", "A"), ("incname.secure.test.", "A"), ("nothere.secure.test.", "A"),
          ("www.secure.test.", "AAAA"), ("x.wild.secure.test.", "A"), ("www.insecure.test.", "A"),
          ("cname.secure.test.", "A"), ("nothere.insecure.test.", "A")]


def _recase(name: str, seed: int) -> str:
    bits = (seed * 2654435761) & 0xFFFFFFFF
    return "".join(c.upper() if bits >> (i % 32) & 1 else c.lower() for i, c in enumerate(name))


@st.composite
def asks(draw, signed: bool):
    name, rtype = draw(st.sampled_from(SIGNED if signed else PLAIN))
    edns = draw(st.sampled_from([-1, 0, 0] if not signed else [0]))
    do = edns >= 0 and draw(st.booleans())
    flags = dns.flags.RD | draw(st.sampled_from([0, 0, dns.flags.CD, dns.flags.AD]))
    payload = draw(st.sampled_from([512, 700, 1232, 4096]))

    def make(seed: int, qid: int, size: int | None = None) -> bytes:
        q = dns.message.make_query(_recase(name, seed), rtype, use_edns=edns if edns >= 0 else False,
                                   payload=size or payload, want_dnssec=do, id=qid)
        q.flags = flags
        return q.to_wire()

    return make


def _ttls(wire: bytes) -> list[int]:
    m = dns.message.from_wire(wire)
    return [rr.ttl for sec in (m.answer, m.authority, m.additional) for rr in sec]


@pytest.mark.parametrize("signed", [False, True])
@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_packet_cache_answer_is_the_full_path_answer(worlds, signed, data):
    w = worlds[signed]
    make = data.draw(asks(signed))
    first = make(0, 1)
    w.full(first, w.net)  # through the network: fills the LMDB cache
    t0 = w.clock.now
    try:
        made = w.full(first)  # the full path from the cache alone: what the server would keep
    except NeedsNetwork:
        assume(False)  # e.g. a sub-query the cache does not hold: the server keeps nothing
    c, p = native.PacketCache(), pure.PacketCache()
    rc = c.insert(first, made, int(t0))
    assert rc == p.insert(first, made, int(t0))
    ttls = _ttls(made)
    try:
        for _ in range(3):
            d = data.draw(st.integers(0, 400))
            w.clock.now = t0 + d
            again = make(data.draw(st.integers(1, 99)), data.draw(st.integers(0, 0xFFFF)),
                         data.draw(st.sampled_from([None, 512, 1232])))
            bufsize = w.settings.edns_bufsize
            hit_c, hit_p = c.answer(again, int(t0 + d), bufsize), p.answer(again, int(t0 + d), bufsize)
            assert hit_c == hit_p
            if rc != 0 or (ttls and d >= min(ttls)):
                assert hit_c is None
                continue
            assert hit_c is not None
            try:
                assert hit_c[0] == w.full(again)
            except NeedsNetwork:  # the full path would refetch something else: not comparable
                pass
    finally:
        w.clock.now = t0


@pytest.mark.parametrize("signed", [False, True])
def test_every_case_is_kept_and_replayed(worlds, signed):
    """Deterministic companion of the property test: every case and flag
    combination the full path answers from the cache is kept, and replayed
    5 s later exactly as the full path renders it then."""
    w = worlds[signed]
    kinds = []
    for name, rtype in SIGNED if signed else PLAIN:
        for do in (False, True):
            for extra in (0, dns.flags.CD, dns.flags.AD):
                def ask(qid, qname=name):
                    q = dns.message.make_query(qname, rtype, use_edns=0, want_dnssec=do, id=qid)
                    q.flags = dns.flags.RD | extra
                    return q.to_wire()

                first = ask(1)
                w.full(first, w.net)
                try:
                    made = w.full(first)
                except NeedsNetwork:
                    continue
                t0 = w.clock.now
                c = native.PacketCache()
                rc = c.insert(first, made, int(t0))
                if name.startswith("loop"):
                    assert rc == native.Code.EVALUE  # SERVFAIL is never kept
                    continue
                assert rc == 0, (name, rtype, do, extra)
                w.clock.now = t0 + 5
                try:
                    again = ask(77, name.upper())
                    hit = c.answer(again, int(t0 + 5), w.settings.edns_bufsize)
                    assert hit is not None and hit[0] == w.full(again), (name, rtype, do, extra)
                    kinds.append(hit[1])
                finally:
                    w.clock.now = t0
    assert len(kinds) > 30
    assert any(k & native.Kind.RCODE == 3 for k in kinds) and any(k & native.Kind.NODATA for k in kinds)
    if signed:
        assert any(k & native.Kind.AD for k in kinds) and any(k & native.Kind.DO for k in kinds)
        assert any(k & native.Kind.CD for k in kinds)


@pytest.mark.parametrize("edns,payload", [(0, 512), (0, 700)])
def test_truncated_form_is_the_full_path_one(worlds, edns, payload):
    """Kept from a client with a large payload, asked by one whose limit it exceeds: TC=1."""
    w = worlds[False]

    def ask(qid, size, use_edns):
        q = dns.message.make_query("Huge.Example.COM.", "TXT", use_edns=use_edns, payload=size, id=qid)
        q.flags = dns.flags.RD
        return q.to_wire()

    big = ask(1, 4096, 0 if edns >= 0 else False)
    w.full(big, w.net)
    made = w.full(big)
    c, p = native.PacketCache(), pure.PacketCache()
    now = int(w.clock.now)
    assert c.insert(big, made, now) == 0 == p.insert(big, made, now)
    small = ask(2, payload, 0 if edns >= 0 else False)
    hit = c.answer(small, now, w.settings.edns_bufsize)
    assert hit == p.answer(small, now, w.settings.edns_bufsize)
    assert hit is not None and hit[1] & native.Kind.TC
    assert hit[0] == w.full(small)
    assert dns.message.from_wire(hit[0]).flags & dns.flags.TC
