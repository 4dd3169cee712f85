"""native.reply_rrset (the fast miss's reader of upstream replies: C
kn_reply_rrset, and its twin native.pure.reply_rrset) against the full
path's parser (workers/wire.py parse_reply, which is dnspython's
meaning): for random replies built with dnspython (random flags, rcodes,
sections, TTLs, duplicates, OPT, question and ID mismatches) and for mutated
bytes of them, whatever reply_rrset accepts the full path reads as the same
answer RRset (same owner, type, minimum TTL and records in order) of a
NOERROR reply without TC, authority or other additional records; and it
never raises; and C and the twin agree on every reply, with RRSIGs allowed
or not."""
from __future__ import annotations

import dns.flags
import dns.message
import dns.name
import dns.rcode
import dns.rdatatype as T
import dns.rrset
from hypothesis import given, settings
from hypothesis import strategies as st

import native
import native.pure as pure
from workers import wire

QNAME = dns.name.from_text("www.example.")
QWIRE = QNAME.to_wire()
MIN_TTL, MAX_TTL = 5, 86400


@st.composite
def replies(draw):
    qtype = draw(st.sampled_from([T.A, T.AAAA]))
    q = dns.message.make_query(QNAME, qtype, use_edns=draw(st.sampled_from([-1, 0])))
    q.id = 4242
    r = dns.message.make_response(q)
    plain = draw(st.booleans())  # half of them close to what reply_rrset takes
    r.flags = dns.flags.Flag(draw(st.integers(0, 0xFFFF)) & (0x85F0 if plain else 0x87F0) | dns.flags.QR)
    r.set_rcode(0 if plain else draw(st.sampled_from([0, 0, 0, 2, 3, 5])))
    n = draw(st.integers(1 if plain else 0, 4))
    rtype = qtype if plain else draw(st.sampled_from([qtype, qtype, qtype, T.CNAME, T.TXT]))
    owner = draw(st.sampled_from([QNAME, QNAME, dns.name.from_text("WwW.ExAmPlE."),
                                  dns.name.from_text("other.example.")][:3 if plain else 4]))
    for i in range(n):
        ttl = draw(st.sampled_from([5, 300, 86400] if plain else [0, 1, 5, 300, 86400, 86401, 2**31]))
        if rtype == T.A:
            text = f"192.0.2.{draw(st.integers(0, 3))}"
        elif rtype == T.AAAA:
            text = f"2001:db8::{draw(st.integers(0, 3))}"
        elif rtype == T.CNAME:
            text = "target.example."
        else:
            text = '"t"'
        r.answer.append(dns.rrset.from_text(owner, ttl, "IN", rtype, text))
    if draw(st.booleans()):  # RRSIGs over the answer (signatures need not verify here)
        for i in range(draw(st.integers(1, 3))):
            covered = "A" if qtype == T.A else "AAAA"
            if not plain and draw(st.booleans()):
                covered = "TXT"
            signer = draw(st.sampled_from(["example.", "EXample.", "other."]))
            r.answer.append(dns.rrset.from_text(
                owner, 300, "IN", "RRSIG",
                f"{covered} 13 2 300 20300101000000 20200101000000 {1000 + i} {signer} "
                + "AAAA" * draw(st.integers(1, 3))))
    if not plain and draw(st.booleans()):
        r.authority.append(dns.rrset.from_text("example.", 300, "IN", "NS", "ns.example."))
    if not plain and draw(st.booleans()):
        r.additional.append(dns.rrset.from_text("ns.example.", 300, "IN", "A", "192.0.2.53"))
    if not plain:
        r.id = draw(st.sampled_from([4242, 4243]))
    raw = r.to_wire(want_shuffle=False)
    # dnspython merges RRsets: write each answer record on its own (duplicates too)
    return qtype, raw


def _meaning(raw: bytes, qtype: int):
    """What the full path reads: (ttl, rdata wires) for a reply reply_rrset may take."""
    try:
        m = wire.parse_reply(raw)
    except Exception:  # noqa: BLE001 - not a reply the full path reads
        return "unreadable"
    return m


def _check(raw: bytes, qtype: int) -> None:
    for sigs in (False, True):
        got = native.reply_rrset(raw, 4242, QWIRE, qtype, MIN_TTL, MAX_TTL, sigs)
        assert got == pure.reply_rrset(raw, 4242, QWIRE, qtype, MIN_TTL, MAX_TTL, sigs)
        _check_meaning(raw, qtype, got, sigs)


def _check_meaning(raw: bytes, qtype: int, got, sigs: bool) -> None:
    if got is None:
        return
    m = _meaning(raw, qtype)
    assert m != "unreadable", raw
    assert m.id == 4242 and m.rcode() == dns.rcode.NOERROR and not m.flags & dns.flags.TC
    assert [(q.name, q.rdtype) for q in m.question] == [(QNAME, qtype)]
    assert not m.authority and not m.additional
    rrset, *rest = m.answer
    assert (rrset.name, rrset.rdtype) == (QNAME, qtype)
    ttl, rdatas, rrsigs = got
    assert ttl == rrset.ttl and MIN_TTL <= ttl <= MAX_TTL
    assert list(rdatas) == [rd.to_wire() for rd in rrset]
    if not sigs:
        assert rrsigs == () and rest == []
        return
    if rrsigs:
        [sigset] = rest
        assert (sigset.name, sigset.rdtype, sigset.covers) == (QNAME, T.RRSIG, qtype)
        assert [rd for _, rd in rrsigs] == [rd.to_wire() for rd in sigset]
        assert min(t for t, _ in rrsigs) == sigset.ttl
    else:
        assert rest == []


@settings(max_examples=400, deadline=None)
@given(replies())
def test_accepted_replies_mean_the_same_to_the_full_path(reply):
    qtype, raw = reply
    _check(raw, qtype)


@settings(max_examples=400, deadline=None)
@given(replies(), st.lists(st.tuples(st.integers(0, 200), st.integers(0, 255)), max_size=4),
       st.integers(0, 8))
def test_mutated_replies_never_raise_and_agree_when_taken(reply, flips, cut):
    qtype, raw = reply
    b = bytearray(raw)
    for pos, val in flips:
        if pos < len(b):
            b[pos] = val
    if cut:
        b = b[:-cut]
    _check(bytes(b), qtype)


def test_plain_replies_are_taken():
    for qtype, texts in ((T.A, ("192.0.2.1", "192.0.2.2")), (T.AAAA, ("2001:db8::1", "2001:db8::2"))):
        q = dns.message.make_query(QNAME, qtype)
        q.id = 4242
        r = dns.message.make_response(q)
        r.answer.append(dns.rrset.from_text(QNAME, 300, "IN", qtype, *texts))
        got = native.reply_rrset(r.to_wire(want_shuffle=False), 4242, QWIRE, qtype, MIN_TTL, MAX_TTL)
        assert got is not None and got[0] == 300 and len(got[1]) == 2
