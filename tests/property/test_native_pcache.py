"""The packet cache (native/fastpath.c kn_pc_*) against its pure twin
(native/pure.py PacketCache), and both against the full path.

1. Hypothesis builds answers (random owners in random case, CNAME/A/AAAA/TXT/
   SOA/NSEC/RRSIG records with random TTLs, NOERROR/NXDOMAIN/SERVFAIL, with or
   without OPT, sometimes TC or EDNS options) and queries asking them again
   (another ID, another case, other flags and payloads, later): C and twin
   give the same insert codes, the same bytes and kinds, the same counts.
2. Random and mutated bytes as queries and answers: the same codes, no crash.
3. Small arenas and indexes: the same flushes, hits and misses over a
   sequence of inserts and lookups.
4. The full path (a Resolver on the fake network, a fake clock): an answer it
   made from the cache at t0, kept, and answered from the packet cache at
   t0 + d, is byte for byte what the full path renders at t0 + d, for A,
   CNAME chains, NXDOMAIN, NODATA, DNSSEC (DO, CD, AD) and TC=1.
"""
from __future__ import annotations

import random

import dns.flags
import dns.message
import dns.name
import dns.rcode
import dns.rdatatype
import dns.rrset
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import native
import native.pure as pure

pytestmark = pytest.mark.skipif(native.BACKEND != "c", reason="compares the C extension with its twin")

NOW = 1_700_000_000
LABELS = st.text(alphabet="abcXYZ019-", min_size=1, max_size=12)
NAMES = st.lists(LABELS, min_size=1, max_size=4).map(lambda ls: ".".join(ls) + ".example.")
TTLS = st.integers(min_value=0, max_value=90000)


def _recase(name: str, seed: int) -> str:
    """name with ASCII case chosen by the bits of seed (no random module in strategies)."""
    bits = (seed * 2654435761) & 0xFFFFFFFF
    return "".join(c.upper() if bits >> (i % 32) & 1 else c.lower() for i, c in enumerate(name))


@st.composite
def exchanges(draw):
    """(query wire, answer wire) of one exchange the resolver might have had."""
    qname = draw(NAMES)
    qtype = draw(st.sampled_from(["A", "AAAA", "TXT", "MX", "CNAME"]))
    edns = draw(st.sampled_from([None, 0]))
    do = edns is not None and draw(st.booleans())
    q = dns.message.make_query(_recase(qname, draw(st.integers(0, 99))), qtype,
                               use_edns=edns if edns is not None else False,
                               payload=draw(st.sampled_from([512, 1232, 4096])), want_dnssec=do,
                               id=draw(st.integers(0, 0xFFFF)))
    q.flags = dns.flags.RD | draw(st.sampled_from([0, dns.flags.CD, dns.flags.AD]))
    r = dns.message.make_response(q)
    r.flags |= dns.flags.RA | draw(st.sampled_from([0, dns.flags.AD, dns.flags.AA, dns.flags.TC]))
    rcode = draw(st.sampled_from([dns.rcode.NOERROR, dns.rcode.NOERROR, dns.rcode.NXDOMAIN,
                                  dns.rcode.SERVFAIL]))
    r.set_rcode(rcode)
    owner = qname
    for _ in range(draw(st.integers(0, 3))):  # a CNAME chain
        target = draw(NAMES)
        r.answer.append(dns.rrset.from_text(owner, draw(TTLS), "IN", "CNAME", target))
        owner = target
    if rcode == dns.rcode.NOERROR and draw(st.booleans()):
        r.answer.append(dns.rrset.from_text(owner, draw(TTLS), "IN", "TXT", '"a"', '"b c"'))
    if not r.answer or draw(st.booleans()):
        r.authority.append(dns.rrset.from_text("example.", draw(TTLS), "IN", "SOA",
                                               "ns.example. h.example. 1 2 3 4 5"))
        if draw(st.booleans()):
            r.authority.append(dns.rrset.from_text(qname, draw(TTLS), "IN", "NSEC", "z.example. A RRSIG"))
    if draw(st.booleans()):
        r.additional.append(dns.rrset.from_text("ns.example.", draw(TTLS), "IN", "A", "192.0.2.1"))
    if edns is not None and draw(st.integers(0, 9)) == 0:
        r.use_edns(0, r.ednsflags, 1232, options=[dns.edns.GenericOption(15, b"\x00\x03")])
    return q.to_wire(), r.to_wire(want_shuffle=False)


@st.composite
def later_queries(draw, qwire: bytes):
    """The same question asked again: other ID and case, maybe other flags/payload."""
    q = dns.message.from_wire(qwire)
    name = _recase(q.question[0].name.to_text(), draw(st.integers(0, 99)))
    edns = q.edns if draw(st.integers(0, 4)) else draw(st.sampled_from([-1, 0]))
    q2 = dns.message.make_query(name, q.question[0].rdtype, use_edns=edns if edns >= 0 else False,
                                payload=draw(st.sampled_from([512, 600, 1232, 4096, 65535])),
                                want_dnssec=bool(q.ednsflags & dns.flags.DO) if edns >= 0 else False,
                                id=draw(st.integers(0, 0xFFFF)))
    q2.flags = q.flags if draw(st.integers(0, 4)) else dns.flags.RD | draw(st.sampled_from([0, dns.flags.CD]))
    return q2.to_wire()


def _both():
    return native.PacketCache(), pure.PacketCache()


def _same_state(c, p):
    assert (c.count, c.used, c.flushes, c.gen) == (p.count, p.used, p.flushes, p.gen)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_c_and_twin_agree(data):
    qwire, awire = data.draw(exchanges())
    c, p = _both()
    rc_c, rc_p = c.insert(qwire, awire, NOW), p.insert(qwire, awire, NOW)
    assert rc_c == rc_p
    _same_state(c, p)
    assert c.key(qwire) == p.key(qwire)
    for _ in range(3):
        q2 = data.draw(later_queries(qwire))
        now = NOW + data.draw(st.integers(-5, 100000))
        bufsize = data.draw(st.sampled_from([512, 1232, 4096]))
        assert c.answer(q2, now, bufsize) == p.answer(q2, now, bufsize)


@settings(max_examples=300, deadline=None)
@given(st.data())
def test_kept_answers_are_the_answer_with_the_new_id_case_and_ttls(data):
    qwire, awire = data.draw(exchanges())
    c = native.PacketCache()
    if c.insert(qwire, awire, NOW) != 0:
        return
    a = dns.message.from_wire(awire)
    q2 = dns.message.from_wire(qwire)
    q2.id = data.draw(st.integers(0, 0xFFFF))
    q2.question[0].name = dns.name.from_text(_recase(q2.question[0].name.to_text(), 7))
    d = data.draw(st.integers(0, 100))
    hit = c.answer(q2.to_wire(), NOW + d, 4096)
    min_ttl = min(rr.ttl for sec in (a.answer, a.authority, a.additional) for rr in sec)
    if d >= min_ttl:
        assert hit is None
        return
    assert hit is not None
    got = dns.message.from_wire(hit[0])
    assert got.id == q2.id and got.question[0].name.to_text() == q2.question[0].name.to_text()
    assert got.rcode() == a.rcode() and got.flags == a.flags
    for mine, orig in zip(got.answer + got.authority + got.additional, a.answer + a.authority + a.additional):
        assert mine.ttl == orig.ttl - d and mine.name == orig.name and set(mine) == set(orig)


def _mutate(rnd: random.Random, wire: bytes) -> bytes:
    b = bytearray(wire)
    for _ in range(rnd.randint(1, 4)):
        op = rnd.randint(0, 2)
        if op == 0 and b:
            b[rnd.randrange(len(b))] = rnd.randrange(256)
        elif op == 1 and b:
            del b[rnd.randrange(len(b)):]
        else:
            b[rnd.randrange(len(b) + 1):rnd.randrange(len(b) + 1)] = bytes(rnd.randrange(256) for _ in range(3))
    return bytes(b)


@settings(max_examples=300, deadline=None)
@given(st.data(), st.integers(0, 2 ** 32 - 1))
def test_mutated_and_random_bytes(data, seed):
    rnd = random.Random(seed)
    qwire, awire = data.draw(exchanges())
    c, p = _both()
    for _ in range(5):
        q = _mutate(rnd, qwire) if rnd.random() < 0.5 else qwire
        a = _mutate(rnd, awire) if rnd.random() < 0.8 else bytes(rnd.randrange(256) for _ in range(rnd.randint(0, 64)))
        assert c.insert(q, a, NOW) == p.insert(q, a, NOW)
        _same_state(c, p)
        q2 = _mutate(rnd, qwire)
        assert c.answer(q2, NOW + 1, 1232) == p.answer(q2, NOW + 1, 1232)
        assert c.answer(qwire, NOW + 1, 1232) == p.answer(qwire, NOW + 1, 1232)


@settings(max_examples=60, deadline=None)
@given(st.lists(exchanges(), min_size=5, max_size=40), st.sampled_from([4, 8, 16]),
       st.sampled_from([256, 1024, 4096]))
def test_small_caches_flush_alike(pairs, nslots, arena):
    c, p = native.PacketCache(nslots, arena), pure.PacketCache(nslots, arena)
    for i, (q, a) in enumerate(pairs):
        assert c.insert(q, a, NOW + i) == p.insert(q, a, NOW + i)
        _same_state(c, p)
        for q2, _ in pairs[: i + 1]:
            assert c.answer(q2, NOW + i, 4096) == p.answer(q2, NOW + i, 4096)


def test_flush_and_generation():
    c, p = _both()
    q = dns.message.make_query("www.example.", "A", id=2)
    r = dns.message.make_response(q)
    r.answer.append(dns.rrset.from_text("www.example.", 60, "IN", "A", "192.0.2.1"))
    for pc in (c, p):
        assert pc.insert(q.to_wire(), r.to_wire(), NOW) == 0
        assert pc.answer(q.to_wire(), NOW, 1232) is not None
        pc.flush(7)
        assert pc.gen == 7 and pc.count == 0 and pc.answer(q.to_wire(), NOW, 1232) is None


def test_refusals_are_named():
    q = dns.message.make_query("www.example.", "A", id=1)
    r = dns.message.make_response(q)
    r.answer.append(dns.rrset.from_text("www.example.", 60, "IN", "A", "192.0.2.1"))
    zero = dns.message.make_response(q)
    zero.answer.append(dns.rrset.from_text("www.example.", 0, "IN", "A", "192.0.2.1"))
    norec = dns.message.make_query("www.example.", "A", id=1)
    norec.flags = 0
    other = dns.message.make_response(q)
    other.id ^= 1
    for pc in _both():
        assert pc.insert(norec.to_wire(), r.to_wire(), NOW) == native.Code.ENOTELIG  # RD=0
        assert pc.insert(q.to_wire(), zero.to_wire(), NOW) == native.Code.EVALUE  # TTL 0
        assert pc.insert(q.to_wire(), other.to_wire(), NOW) == native.Code.EVALUE  # not its reply
        assert pc.insert(q.to_wire(), r.to_wire() + b"\0", NOW) == native.Code.EVALUE  # trailing byte
        big = dns.message.make_response(q)
        big.answer.append(dns.rrset.from_text("www.example.", 60, "IN", "TXT", *['"%d%s"' % (i, "x" * 250) for i in range(20)]))
        assert pc.insert(q.to_wire(), big.to_wire(), NOW) == native.Code.ENOSPC
        assert pc.count == 0
