"""Differential tests of workers/wire.py against dnspython.

Owns: (1) the upstream question's bytes (query_wire, query_message +
render_query) equal dns.message.make_query(...).to_wire() for random names,
cases, types, flags and EDNS; a hook's changes reach the wire; (2) parse_reply
builds the same Message as dns.message.from_wire (sections, exact name case,
RRset merging, TTLs, OPT, index, flags) for random replies (many types,
duplicate and case-varied owners, TTLs above 2**31, EDNS options); (3) on
mutated, truncated and random bytes it never accepts what dnspython rejects,
and raises what dnspython raises.
Must not: depend on the resolver or the network.
"""
from __future__ import annotations

import random

import dns.edns
import dns.exception
import dns.flags
import dns.message
import dns.name
import dns.rdata
import dns.rdataclass
import dns.rdatatype as T
import dns.rrset
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from workers import wire

label = st.binary(min_size=1, max_size=12).filter(lambda b: b"." not in b) | st.text(
    "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-", min_size=1, max_size=12
).map(str.encode)
names = st.lists(label, min_size=0, max_size=5).map(lambda ls: dns.name.Name(ls + [b""]))
ZONE = ["example.com.", "Example.COM.", "ns1.example.com.", "a.b.example.com.", "."]


def _name_text(draw) -> dns.name.Name:
    return dns.name.from_text(draw(st.sampled_from(ZONE)))


# -- the question ----------------------------------------------------------------------

@given(names, st.integers(0, 65535), st.integers(0, 0xFFFF), st.booleans(), st.integers(512, 65535),
       st.booleans(), st.integers(0, 65535), st.randoms(use_true_random=False))
def test_question_bytes_equal_dnspython(name, qid, flags, edns, payload, do, qtype, rng):
    qtype = qtype or 1
    sent = wire.x20(name.to_wire().lower(), rng)
    sent_name = dns.name.from_wire(sent, 0)[0]
    ref = dns.message.make_query(sent_name, qtype, use_edns=0 if edns else False, payload=payload,
                                 id=qid, want_dnssec=do and edns)
    ref.flags = flags & ~0x7800 & ~0x000F  # opcode QUERY, rcode 0 (what the core sends)
    f = int(ref.flags)
    opt = (payload, dns.flags.DO if do else 0) if edns else None
    assert wire.query_wire(qid, f, sent, qtype, opt) == ref.to_wire()
    m = wire.query_message(qid, f, sent, qtype, opt)
    assert m.question[0].name.labels == sent_name.labels  # the case on the wire
    assert m == ref and m.edns == ref.edns and m.ednsflags == ref.ednsflags and m.payload == ref.payload
    assert wire.render_query(m) == ref.to_wire()


def test_a_hooks_changes_reach_the_wire():
    sent = dns.name.from_text("wWw.Example.").to_wire()
    m = wire.query_message(7, 0, sent, T.A, (1232, dns.flags.DO))
    m.flags |= dns.flags.CD
    m.use_edns(0, 0, 4096, options=[dns.edns.GenericOption(65001, b"xy")])
    assert wire.render_query(m) == m.to_wire()
    assert dns.message.from_wire(wire.render_query(m)).options[0].otype == 65001
    m = wire.query_message(7, 0, sent, T.A, None)
    m.ednsflags = dns.flags.DO  # a hook turning EDNS on
    assert wire.render_query(m) == m.to_wire() and dns.message.from_wire(m.to_wire()).edns == 0


# -- the reply -------------------------------------------------------------------------

RDATA = [
    (T.A, ["192.0.2.1", "192.0.2.2", "10.0.0.1"]),
    (T.AAAA, ["2001:db8::1", "::1"]),
    (T.NS, ["ns1.example.com.", "NS2.Example.Net."]),
    (T.CNAME, ["target.example.com.", "x.example.org."]),
    (T.MX, ["10 mail.example.com.", "20 MAIL.example.COM."]),
    (T.TXT, ['"hello"', '"a" "b"']),
    (T.SOA, ["ns1.example.com. host.example.com. 1 7200 3600 1209600 300"]),
    (T.DS, ["12345 8 2 " + "ab" * 32]),
    (T.NSEC, ["b.example.com. A NS RRSIG"]),
    (T.RRSIG, ["A 8 2 3600 20300101000000 20200101000000 12345 example.com. " + "AAAA" * 20,
               "A 8 2 3600 20300101000000 20200101000000 12345 example.com. " + "CCCC" * 20]),
    (T.RRSIG, ["NS 8 2 3600 20300101000000 20200101000000 12345 example.com. " + "BBBB" * 20]),
    (T.PTR, ["ptr.example.com."]),
    (T.DNAME, ["example.net."]),
]


@st.composite
def rrsets(draw):
    rtype, choices = draw(st.sampled_from(RDATA))
    texts = draw(st.lists(st.sampled_from(choices), min_size=1, max_size=3))
    ttl = draw(st.sampled_from([0, 60, 3600, 0x7FFFFFFF, 0x80000000, 0xFFFFFFFF]))
    name = draw(st.sampled_from(ZONE + ["www.example.com.", "WWW.example.com."]))
    return dns.rrset.from_text_list(name, ttl, "IN", rtype, texts)


@st.composite
def replies(draw):
    qname = draw(st.sampled_from(["www.example.com.", "wWw.ExAmple.COM.", "example.com."]))
    q = dns.message.make_query(qname, draw(st.sampled_from([T.A, T.NS, T.MX, T.DS])),
                               use_edns=draw(st.sampled_from([False, 0])))
    r = dns.message.make_response(q)
    r.id = draw(st.integers(0, 65535))
    r.flags |= draw(st.sampled_from([0, dns.flags.AA, dns.flags.TC, dns.flags.AA | dns.flags.AD]))
    r.set_rcode(draw(st.sampled_from([0, 2, 3, 5])))
    if q.edns >= 0 and draw(st.booleans()):
        r.use_edns(0, draw(st.sampled_from([0, dns.flags.DO])), 1232,
                   options=[dns.edns.GenericOption(65001, draw(st.binary(max_size=8)))])
    for section in (r.answer, r.authority, r.additional):
        # appended one by one: the same owner and type may repeat (dnspython merges on parse)
        section.extend(draw(st.lists(rrsets(), max_size=4)))
    return r


def _same(a: dns.message.Message, b: dns.message.Message) -> None:
    assert type(a) is type(b)
    assert (a.id, int(a.flags), type(a.flags), a.rcode(), a.opcode()) == \
        (b.id, int(b.flags), type(b.flags), b.rcode(), b.opcode())
    for sa, sb in zip(a.sections, b.sections):
        assert len(sa) == len(sb)
        for ra, rb in zip(sa, sb):
            assert ra.name.labels == rb.name.labels  # the exact case
            assert (ra.rdclass, ra.rdtype, ra.covers, ra.ttl, ra.deleting) == \
                (rb.rdclass, rb.rdtype, rb.covers, rb.ttl, rb.deleting)
            assert (type(ra.rdclass), type(ra.rdtype), type(ra.covers)) == \
                (type(rb.rdclass), type(rb.rdtype), type(rb.covers))
            assert list(ra) == list(rb)
    if a.opt is None:
        assert b.opt is None
    else:
        assert (a.opt.name, a.opt.rdclass, a.opt.ttl, list(a.opt)) == \
            (b.opt.name, b.opt.rdclass, b.opt.ttl, list(b.opt))
        assert (a.edns, a.ednsflags, a.payload, a.options) == (b.edns, b.ednsflags, b.payload, b.options)
    if b.index is not None:  # dnspython parsed it (the fast parser handed it over)
        assert set(a.index) == set(b.index)
    for (section, name, rdclass, rdtype, covers, deleting), rr in a.index.items():
        # without an index (the fast parser), find_rrset() scans the sections: the same RRsets
        found = b.find_rrset(section, name, rdclass, rdtype, covers, deleting)
        assert found.name.labels == rr.name.labels and list(found) == list(rr)
    assert a.wire == b.wire
    assert a.to_wire(want_shuffle=False) == b.to_wire(want_shuffle=False)


def _outcome(w: bytes):
    try:
        return dns.message.from_wire(w), None
    except Exception as exc:  # noqa: BLE001
        return None, type(exc)


def _check(w: bytes) -> None:
    ref, err = _outcome(w)
    if err is None:
        _same(ref, wire.parse_reply(w))
        return
    assert wire._parse_or_none(w) is None  # never accepts what dnspython rejects
    try:
        wire.parse_reply(w)
    except Exception as exc:  # noqa: BLE001
        assert type(exc) is err
    else:
        raise AssertionError("parse_reply accepted what dnspython rejects")


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(replies())
def test_reply_parse_equals_dnspython(r):
    w = r.to_wire(max_size=65535)
    _same(dns.message.from_wire(w), wire.parse_reply(w))


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(replies(), st.lists(st.tuples(st.integers(0, 10_000), st.integers(0, 255)), min_size=1, max_size=4),
       st.integers(0, 10_000), st.booleans())
def test_mutated_replies_never_accepted_beyond_dnspython(r, flips, cut, trailing):
    w = bytearray(r.to_wire(max_size=65535))
    for pos, val in flips:
        w[pos % len(w)] = val
    w = bytes(w)
    _check(w)
    _check(w[: cut % (len(w) + 1)])
    if trailing:
        _check(w + b"\x00")


@settings(max_examples=300)
@given(st.binary(max_size=200))
def test_random_bytes(b):
    _check(b)
    _check(b"\x12\x34\x81\x80\x00\x01\x00\x01\x00\x00\x00\x00" + b)


QUESTION = b"\x03www\x07example\x03com\x00\x00\x01\x00\x01"
HDR_1AN = b"\x00\x07\x81\x80\x00\x01\x00\x01\x00\x00\x00\x00"
HDR_1AR = b"\x00\x07\x81\x80\x00\x01\x00\x00\x00\x00\x00\x01"


def test_hostile_names_and_records():
    a_rr = b"\x00\x01\x00\x01\x00\x00\x00\x3c\x00\x04\xc0\x00\x02\x01"
    cases = [
        HDR_1AN + QUESTION + b"\xc0\x0c" + a_rr,  # fine
        HDR_1AN + QUESTION + b"\xc0\x1d" + a_rr,  # forward pointer (to itself)
        HDR_1AN + QUESTION + b"\xc0\x40" + a_rr,  # pointer past the end
        HDR_1AN + QUESTION + b"\x40" + a_rr,  # label type 0x40
        HDR_1AN + QUESTION + b"\x80\x00" + a_rr,  # label type 0x80
        HDR_1AN + QUESTION + b"\x01a\xc0\x0c" + a_rr,  # prefix + pointer
        HDR_1AN + QUESTION + b"\xc0\x0c" + a_rr[:-1],  # short rdata
        HDR_1AN + QUESTION + b"\xc0\x0c" + a_rr + b"\x00",  # trailing byte
        HDR_1AR + QUESTION + b"\x00\x00\x29\x04\xd0\x00\x00\x00\x00\x00\x00",  # OPT
        HDR_1AR + QUESTION + b"\x01x\x00\x00\x29\x04\xd0\x00\x00\x00\x00\x00\x00",  # OPT, owner not root
        HDR_1AN + QUESTION + b"\x00\x00\x29\x04\xd0\x00\x00\x00\x00\x00\x00",  # OPT in the answer
        b"\x00\x07\x81\x80\x00\x01\x00\x00\x00\x00\x00\x02" + QUESTION
        + b"\x00\x00\x29\x04\xd0\x00\x00\x00\x00\x00\x00" * 2,  # two OPTs
        b"\x00\x07\x81\x80\x00\x02\x00\x00\x00\x00\x00\x00" + QUESTION * 2,  # two questions
        b"\x00\x07\x81\x80\x00\x00\x00\x00\x00\x00\x00\x00",  # no question
        b"\x00\x07\xa9\x80\x00\x01\x00\x00\x00\x00\x00\x00" + QUESTION,  # opcode UPDATE
        # the question name a pointer into the header
        b"\x00\x07\x81\x80\x00\x01\x00\x00\x00\x00\x00\x00" + b"\xc0\x03\x00\x01\x00\x01",
        HDR_1AN + QUESTION + b"\xc0\x0c\x00\xfa\x00\xff\x00\x00\x00\x00\x00\x00",  # TSIG
    ]
    # pointer chains: each record's owner points to the previous record's owner
    # (itself a pointer), so the n-th owner takes n hops; past 16 dnspython refuses
    for n in (16, 17, 20):
        w = bytearray(b"\x00\x07\x81\x80\x00\x01" + n.to_bytes(2, "big") + b"\x00\x00\x00\x00" + QUESTION)
        prev = 12
        for _ in range(n):
            here = len(w)
            w += bytes([0xC0 | prev >> 8, prev & 0xFF]) + a_rr
            prev = here
        cases.append(bytes(w))
    long_name = b"".join(b"\x3f" + b"a" * 63 for _ in range(4)) + b"\x00"  # 257 bytes
    cases.append(b"\x00\x07\x81\x80\x00\x01\x00\x00\x00\x00\x00\x00" + long_name + b"\x00\x01\x00\x01")
    for w in cases:
        _check(w)
    assert wire._parse_or_none(cases[0]) is not None


def test_names_are_shared_and_keep_their_case():
    r = dns.message.make_response(dns.message.make_query("wWw.Example.com.", "A"))
    r.answer.append(dns.rrset.from_text("wWw.Example.com.", 60, "IN", "A", "192.0.2.1"))
    a = wire.parse_reply(r.to_wire())
    b = wire.parse_reply(r.to_wire())
    assert a.question[0].name is b.question[0].name
    assert a.answer[0].name.labels == (b"wWw", b"Example", b"com", b"")
    assert a.answer[0][0] is b.answer[0][0]  # memoised rdata (immutable)


def test_x20_randomises_letters_only():
    plain = dns.name.from_text("abc-123.example.").to_wire()
    outs = {wire.x20(plain, random.Random(i)) for i in range(16)}
    assert len(outs) > 8
    for o in outs:
        assert o.lower() == plain and len(o) == len(plain)


# -- client queries and answers ---------------------------------------------------------

@st.composite
def client_queries(draw):
    q = dns.message.make_query(draw(names), draw(st.integers(1, 65535)),
                               rdclass=draw(st.sampled_from([1, 1, 3, 255])),
                               id=draw(st.integers(0, 65535)))
    q.flags = dns.flags.Flag(draw(st.integers(0, 0xFFFF)) & ~0x8000)  # any opcode, flags, rcode
    edns = draw(st.sampled_from([None, 0, 0, 1]))
    if edns is not None:
        opts = draw(st.sampled_from([[], [], [dns.edns.GenericOption(65001, b"ab")]]))
        q.use_edns(edns, draw(st.integers(0, 0xFFFF)), draw(st.integers(0, 65535)), options=opts)
    return q.to_wire()


@settings(max_examples=400)
@given(client_queries(), st.lists(st.tuples(st.integers(0, 300), st.integers(0, 255)), max_size=2))
def test_client_query_message_equals_dnspython(w, flips):
    import native
    from workers.server import Action, parse_client_query

    w = bytearray(w)
    for pos, val in flips:
        w[pos % len(w)] = val
    w = bytes(w)
    try:
        pq = native.parse_query(w)
    except native.ParseError:
        return
    msg = wire.query_from_parsed(w, pq)
    ref, err = _outcome(w)
    if msg is not None:
        assert err is None  # the native parser and the shape check never accept what dnspython refuses
        _same(ref, msg)
    if err is None and len(ref.question) == 1 and not w[2] & 0x80:  # (QR set: dropped)
        got, action = parse_client_query(w)
        assert action is Action.RESOLVE
        _same(ref, got)


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(replies(), st.sampled_from([0, 100, 512, 700, 1232, 4096, 65535]))
def test_render_equals_dnspython(r, max_size):
    if r.edns >= 0 and r.opt is not None and not r.options and max_size == 100:
        r.use_edns(0, 0, 1232, options=[dns.edns.EDEOption(22, "no reachable authority")])
    try:
        ref = r.to_wire(max_size=max_size, want_shuffle=False)
    except dns.exception.TooBig:
        ref = dns.exception.TooBig
    try:
        got = wire.render(r, max_size, shuffle=False)
    except dns.exception.TooBig:
        got = dns.exception.TooBig
    assert got == ref
    if got is not dns.exception.TooBig:
        shuffled = dns.message.from_wire(wire.render(r, max_size, shuffle=True))
        plain = dns.message.from_wire(got)
        assert shuffled == plain  # the same RRsets (dnspython compares them as sets)


def test_make_answer_equals_the_dnspython_construction():
    from workers.request import make_answer
    from workers.settings import Settings

    s = Settings()
    for flags in (0, dns.flags.RD, dns.flags.RD | dns.flags.CD | dns.flags.AD):
        for edns, ednsflags in ((None, 0), (0, 0), (0, dns.flags.DO | 0x0123)):
            q = dns.message.make_query("wWw.Example.", "AAAA", use_edns=edns, ednsflags=ednsflags)
            q.flags = flags
            q.set_opcode(2 if flags == dns.flags.RD else 0)
            ref = dns.message.Message(id=q.id)
            ref.flags = dns.flags.QR | dns.flags.RA | (q.flags & (dns.flags.RD | dns.flags.CD))
            ref.set_opcode(q.opcode())
            ref.question = list(q.question)
            if q.edns >= 0:
                ref.use_edns(0, dns.flags.DO & q.ednsflags, s.edns_bufsize)
            got = make_answer(q, s)
            assert (got.id, int(got.flags), type(got.flags), got.opcode()) == \
                (ref.id, int(ref.flags), type(ref.flags), ref.opcode())
            assert (got.edns, got.ednsflags, got.payload, got.options, got.request_payload) == \
                (ref.edns, ref.ednsflags, ref.payload, ref.options, ref.request_payload)
            assert got.to_wire() == ref.to_wire() and got.question == ref.question


def test_x20_bits_set_the_case_per_byte():
    assert wire.x20_bits(b"\x03abc\x00", 0b1010) == b"\x03AbC\x00"
    assert wire.x20_bits(b"\x03abc\x00", 0) == b"\x03abc\x00"
    assert wire.x20_bits(b"\x01\x7a\x00", 0b11) == b"\x01Z\x00"  # the length byte 0x01 untouched
