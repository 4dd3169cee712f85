"""Differential tests: C kn_parse_query (native.parse_query) vs its twins.

Owns: the property tests that the C query parser agrees with
native/pure.py:parse_query (exactly, on every input) and with dnspython's
dns.message.from_wire (the independent oracle).
Must not: test cache keys (test_native_keys.py) or memory safety
(test_native_fuzz.py, tests/unit/native/test_native_asan.py).

Agreement with dns.message.from_wire can not be exact on arbitrary bytes:
from_wire parses RDATA contents, TSIG, UPDATE-opcode rules and all QDCOUNT
questions; kn_parse_query only checks record framing. So on mutated bytes we
assert the weaker, honest property in both directions:
  * from_wire accepts a one-question message  =>  C returns OK with the same
    header, question and EDNS fields;
  * C returns OK  =>  from_wire accepts it, or from_wire with
    continue_on_error=True reports only errors that are not about framing
    (RDATA content, TSIG, UPDATE rules) and sees the same question.
"""
from __future__ import annotations

import struct

import dns.exception
import dns.message
import dns.name
import dns.wire
import pytest
from hypothesis import HealthCheck, assume, example, given, settings
from hypothesis import strategies as st

import native
import native.pure as pure
from native import Code, ParseError

SETTINGS = settings(
    max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)


def test_backend_is_c():
    assert native.BACKEND == "c", "build it: .venv/bin/python native/build.py"


def outcome(fn, wire):
    """Comparable outcome: ('ok', ParsedQuery) or ('err', code, header, query)."""
    try:
        return ("ok", fn(wire))
    except ParseError as e:
        return ("err", e.code, e.header, e.query)


# --- wire builders --------------------------------------------------------

label_bytes = st.one_of(
    st.binary(min_size=1, max_size=63),
    st.text("abcXYZ-09_", min_size=1, max_size=20).map(str.encode),
    st.sampled_from([b"\x00", b"\x01", b"\x00\x01\xff", b"A", b"\xc0", b"."]),
)


@st.composite
def name_labels(draw, max_wire=255):
    labels = draw(st.lists(label_bytes, max_size=12))
    out, size = [], 1
    for lab in labels:
        if size + 1 + len(lab) > max_wire:
            break
        out.append(lab)
        size += 1 + len(lab)
    return out


def name_wire(labels):
    return b"".join(bytes([len(lab)]) + lab for lab in labels) + b"\x00"


def rr(owner, rtype, rclass, ttl, rdata):
    return owner + struct.pack("!HHIH", rtype, rclass, ttl, len(rdata)) + rdata


def option(code, data):
    return struct.pack("!HH", code, len(data)) + data


@st.composite
def extra_record(draw):
    owner = draw(
        st.one_of(
            st.just(b"\xc0\x0c"),  # pointer to the qname
            st.just(b"\x00"),
            name_labels(max_wire=60).map(name_wire),
            name_labels(max_wire=40).map(lambda la: name_wire(la)[:-1] + b"\xc0\x0c"),
        )
    )
    kind = draw(st.sampled_from(["A", "AAAA", "PRIV", "TXT"]))
    if kind == "A":
        rtype, rdata = 1, draw(st.binary(min_size=4, max_size=4))
    elif kind == "AAAA":
        rtype, rdata = 28, draw(st.binary(min_size=16, max_size=16))
    elif kind == "TXT":
        s = draw(st.binary(max_size=40))
        rtype, rdata = 16, bytes([len(s)]) + s
    else:
        rtype, rdata = draw(st.integers(65280, 65534)), draw(st.binary(max_size=40))
    return rr(owner, rtype, 1, draw(st.integers(0, 2**32 - 1)), rdata)


@st.composite
def valid_query(draw):
    """(wire, expected fields) of a well-formed one-question query."""
    labels = draw(name_labels())
    qname = name_wire(labels)
    qid = draw(st.integers(0, 0xFFFF))
    opcode = draw(st.sampled_from([0, 0, 0, 1, 2, 4]))  # not UPDATE (5): dnspython rules
    flags = (draw(st.integers(0, 0xFFFF)) & ~0x7800) | (opcode << 11)
    qtype = draw(st.integers(0, 0xFFFF).filter(lambda t: t not in (41, 250)))
    qclass = draw(st.sampled_from([1, 1, 3, 4, 254, 255, 0x1234]))
    an = draw(st.lists(extra_record(), max_size=3))
    ns = draw(st.lists(extra_record(), max_size=2))
    ar = draw(st.lists(extra_record(), max_size=2))
    exp = {"opt": None}
    if draw(st.booleans()):
        udp = draw(st.integers(0, 0xFFFF))
        ext, ver = draw(st.integers(0, 255)), draw(st.integers(0, 255))
        eflags = draw(st.integers(0, 0xFFFF))
        opts = b""
        cookie = None
        for _ in range(draw(st.integers(0, 3))):
            code = draw(st.sampled_from([10, 10, 12, 65001, 3]))
            data = draw(st.binary(max_size=40))
            if code == 10:
                data = draw(st.sampled_from([8, 16, 24, 40])) * b"\x5a"
            if code == 3:
                data = b""  # NSID query
            if code == 12:
                data = bytes(len(data))  # padding is zeros
            if code == 10 and cookie is None:
                cookie = (len(opts) + 4, len(data))
            opts += option(code, data)
        opt = rr(b"\x00", 41, udp, (ext << 24) | (ver << 16) | eflags, opts)
        pos = draw(st.integers(0, len(ar)))
        ar_wire = b"".join(ar[:pos]) + opt + b"".join(ar[pos:])
        exp["opt"] = (udp, ext, ver, eflags, opts, cookie, len(b"".join(ar[:pos])))
        arcount = len(ar) + 1
    else:
        ar_wire, arcount = b"".join(ar), len(ar)
    header = struct.pack("!6H", qid, flags, 1, len(an), len(ns), arcount)
    question = qname + struct.pack("!HH", qtype, qclass)
    body = header + question + b"".join(an) + b"".join(ns)
    wire = body + ar_wire
    exp.update(
        id=qid, flags=flags, qname=qname, qtype=qtype, qclass=qclass,
        counts=(1, len(an), len(ns), arcount), question_end=12 + len(question),
        ar_start=len(body),
    )
    return wire, exp


def check_expected(q, exp):
    assert (q.id, q.flags, q.opcode, q.rcode) == (
        exp["id"], exp["flags"], (exp["flags"] >> 11) & 15, exp["flags"] & 15
    )
    assert (q.qdcount, q.ancount, q.nscount, q.arcount) == exp["counts"]
    assert q.qname == exp["qname"] and q.qname_len == len(exp["qname"])
    assert q.qname_lower == exp["qname"].translate(
        bytes.maketrans(b"ABCDEFGHIJKLMNOPQRSTUVWXYZ", b"abcdefghijklmnopqrstuvwxyz")
    )
    assert (q.qtype, q.qclass, q.question_end) == (exp["qtype"], exp["qclass"], exp["question_end"])
    if exp["opt"] is None:
        assert q.has_opt == 0 and q.udp_size == 0 and q.do_bit == 0 and q.opt_flags == 0
        return
    udp, ext, ver, eflags, opts, cookie, before = exp["opt"]
    assert q.has_opt == 1 and q.opt_flags == 0
    assert (q.udp_size, q.ext_rcode, q.edns_version, q.edns_flags) == (udp, ext, ver, eflags)
    assert q.do_bit == (1 if eflags & 0x8000 else 0)
    assert q.opt_rdata_off == exp["ar_start"] + before + 11 and q.opt_rdata_len == len(opts)
    if cookie is None:
        assert (q.cookie_off, q.cookie_len) == (0, 0)
    else:
        assert (q.cookie_off - q.opt_rdata_off, q.cookie_len) == cookie


def check_oracle(q, msg):
    """q (C result) against a dns.message.Message parsed from the same wire."""
    assert (q.id, q.flags, q.opcode) == (msg.id, int(msg.flags), msg.opcode())
    qr = msg.question[0]
    assert q.qname == qr.name.to_wire()
    assert (q.qtype, q.qclass) == (qr.rdtype, qr.rdclass)
    if msg.opt is None:
        assert q.has_opt == 0
        return
    assert q.has_opt == 1
    assert q.udp_size == msg.payload and q.edns_version == msg.edns
    assert q.edns_flags == msg.ednsflags & 0xFFFF
    assert q.ext_rcode == (msg.opt.ttl >> 24) & 0xFF
    assert (q.ext_rcode << 4) | q.rcode == msg.rcode()
    assert bool(q.do_bit) == bool(msg.ednsflags & 0x8000)


# --- valid queries -----------------------------------------------------------

@SETTINGS
@given(valid_query())
def test_valid_query_c_equals_twin_and_construction(case):
    wire, exp = case
    c = native.parse_query(wire)
    assert pure.parse_query(wire) == c
    check_expected(c, exp)


@SETTINGS
@given(valid_query())
def test_valid_query_matches_dnspython_from_wire(case):
    wire, exp = case
    c = native.parse_query(wire)
    msg = dns.message.from_wire(wire)
    check_oracle(c, msg)


@settings(max_examples=200, deadline=None)
@given(
    name=name_labels(),
    rdtype=st.sampled_from([1, 2, 5, 6, 15, 16, 28, 33, 43, 48, 65, 255]),
    edns=st.sampled_from([-1, 0]),
    payload=st.integers(512, 4096),
    dnssec=st.booleans(),
    rd=st.booleans(),
)
def test_dnspython_made_queries(name, rdtype, edns, payload, dnssec, rd):
    """Queries rendered by dnspython itself (its own choices of layout)."""
    qname = dns.name.Name([*name, b""])
    msg = dns.message.make_query(
        qname, rdtype, use_edns=edns, payload=payload, want_dnssec=dnssec and edns == 0
    )
    if not rd:
        msg.flags &= ~dns.flags.RD
    wire = msg.to_wire()
    c = native.parse_query(wire)
    assert pure.parse_query(wire) == c
    check_oracle(c, dns.message.from_wire(wire))
    assert c.qname == qname.to_wire()


# --- arbitrary and mutated bytes ---------------------------------------------

@st.composite
def mutated_query(draw):
    wire = bytearray(draw(valid_query())[0])
    for _ in range(draw(st.integers(1, 4))):
        op = draw(st.sampled_from(["flip", "set", "trunc", "insert", "delete", "ptr", "count"]))
        if not wire:
            break
        i = draw(st.integers(0, len(wire) - 1))
        if op == "flip":
            wire[i] ^= 1 << draw(st.integers(0, 7))
        elif op == "set":
            wire[i] = draw(st.sampled_from([0, 1, 0x3F, 0x40, 0x80, 0xC0, 0xFF, 0x29]))
        elif op == "trunc":
            del wire[i:]
        elif op == "insert":
            wire[i:i] = draw(st.binary(min_size=1, max_size=8))
        elif op == "delete":
            del wire[i : i + draw(st.integers(1, 4))]
        elif op == "ptr":
            wire[i : i + 2] = bytes([0xC0 | draw(st.integers(0, 3)), draw(st.integers(0, 255))])
        elif op == "count" and len(wire) >= 12:
            j = 4 + 2 * draw(st.integers(0, 3))
            wire[j : j + 2] = struct.pack("!H", draw(st.sampled_from([0, 1, 2, 3, 0xFFFF])))
    return bytes(wire)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.one_of(st.binary(max_size=80), mutated_query()))
def test_any_bytes_c_equals_twin(wire):
    assert outcome(native.parse_query, wire) == outcome(pure.parse_query, wire)


# Errors dnspython raises from RDATA contents / message-kind rules, which the C
# framing parser deliberately does not check.
def _framing_error(err) -> bool:
    e = err.exception if hasattr(err, "exception") else err
    framing = (
        dns.name.BadPointer, dns.name.BadLabelType, dns.name.NameTooLong,
        dns.name.PointerChainTooLong, dns.message.ShortHeader,
        dns.message.TrailingJunk, dns.message.BadEDNS,
    )
    return isinstance(e, framing)


# found by this test: a CNAME in the additional section whose RDATA name has a
# 0x40 label (dnspython: BadLabelType; C: RDATA is not its business)
_RDATA_BAD_LABEL = (
    b'\x00\x00\x00\x00\x00\x01\x00\x00\x00\x00\x00\x02\x01\x00\x01\x00\x03\x00\x00\x00'
    b'\x00\x00\x00\x00\x01\x01\x00\x01\x00\x01\x00\x0e\x00\x00\x00\x00\x00\x00\x00\x00'
    b'\x00\x00\x00\x00\x00\x00\x00\x00\x01\x00\x01\x00\x00\x00\x00\x00\x04\x00\x00\x00'
    b'\x00\x01\x00\x01\x00\x01\x00\x0e\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00'
    b'\x00\x00\x00\x00\x05\x00\x01\x00\x00\x00\x00\x00\x04\x01\x00@\x00'
)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(mutated_query())
@example(_RDATA_BAD_LABEL)
def test_mutated_bytes_against_dnspython(wire):
    c = outcome(native.parse_query, wire)
    try:
        msg = dns.message.from_wire(wire)
    except Exception:
        msg = None
    if msg is not None and len(msg.question) == 1:
        # the strong direction: dnspython accepts => C accepts, same fields
        assert c[0] == "ok", (wire, c)
        check_oracle(c[1], msg)
    if c[0] == "ok" and msg is None:
        # the weak direction: C accepts, dnspython refuses => not for framing.
        # RDATA contents are not C's business (a CNAME's target with a bad
        # label is RDATA), so dnspython reads a copy whose record types are
        # made opaque; what it still refuses there is about the framing.
        walked = opaque_rdata(wire)
        assert walked is not None, ("owner names or record framing broken", wire)
        opaque, question = walked
        lax = dns.message.from_wire(opaque, continue_on_error=True)
        assert not any(_framing_error(e) for e in lax.errors), (wire, lax.errors)
        # (read by dnspython's name parser: from_wire may drop the question of
        # a message it refuses for its kind, e.g. an UPDATE without SOA zone)
        assert question == (c[1].qname, c[1].qtype, c[1].qclass)


_OPAQUE_TYPE = 65280  # private use: dnspython keeps the RDATA as GenericRdata
_RR_FIXED = struct.Struct("!HHIH")


def opaque_rdata(wire: bytes) -> tuple[bytes, tuple] | None:
    """(wire with every record's TYPE but OPT's set to a private-use type,
    (first qname wire, qtype, qclass)), walking the message with dnspython's
    own name parser; None if the walk meets a broken name or a record running
    past the end (framing)."""
    out = bytearray(wire)
    question = None
    try:
        parser = dns.wire.Parser(wire)
        qd, an, ns, ar = struct.unpack_from("!4H", wire, 4)
        parser.seek(12)
        for _ in range(qd):
            qname = parser.get_name(decompress=True)
            qtype, qclass = parser.get_struct("!HH")
            question = question or (qname.to_wire(), qtype, qclass)
        for _ in range(an + ns + ar):
            parser.get_name(decompress=True)
            at = parser.current
            rtype, _, _, rdlen = parser.get_struct(_RR_FIXED.format)
            if rtype != 41:
                out[at : at + 2] = struct.pack("!H", _OPAQUE_TYPE)
            parser.get_bytes(rdlen)
    except (dns.exception.FormError, struct.error):
        return None
    return bytes(out), question


def test_opaque_rdata_keeps_framing_errors():
    """The oracle's helper itself: RDATA names stop mattering, owner names do not."""
    hdr = struct.pack("!6H", 0, 0, 1, 1, 0, 0)
    q = b"\x01a\x00" + struct.pack("!HH", 1, 1)
    bad_rdata = b"\x01a\x00" + _RR_FIXED.pack(5, 1, 0, 3) + b"\x01\x00\x40"
    fixed, question = opaque_rdata(hdr + q + bad_rdata)
    assert question == (b"\x01a\x00", 1, 1)
    assert dns.message.from_wire(fixed).answer[0].rdtype == _OPAQUE_TYPE  # parses now
    with pytest.raises(dns.name.BadLabelType):
        dns.message.from_wire(hdr + q + bad_rdata)
    bad_owner = b"\x01a\x40" + _RR_FIXED.pack(1, 1, 0, 4) + b"\x01\x02\x03\x04"
    assert opaque_rdata(hdr + q + bad_owner) is None
    assert opaque_rdata(hdr + q + b"\x01a\x00" + _RR_FIXED.pack(1, 1, 0, 9) + b"\x01") is None


# --- specific codes ----------------------------------------------------------

def test_codes_short_noq_qdcount():
    for n in range(12):
        assert outcome(native.parse_query, bytes(n))[:2] == ("err", Code.ESHORT)
    e = outcome(native.parse_query, struct.pack("!6H", 7, 0, 0, 0, 0, 0))
    assert e[1] == Code.ENOQ and e[2].id == 7
    e = outcome(native.parse_query, struct.pack("!6H", 7, 0, 2, 0, 0, 0) + b"\x00" * 10)
    assert e[1] == Code.EQDCOUNT and e[2].qdcount == 2


def test_trailing_and_bad_opt_carry_the_query():
    base = struct.pack("!6H", 1, 0x0100, 1, 0, 0, 1) + b"\x01a\x00" + struct.pack("!HH", 1, 1)
    opt = rr(b"\x00", 41, 1232, 0x8000, b"")
    e = outcome(native.parse_query, base + opt + b"x")
    assert e[1] == Code.ETRAIL and e[3].do_bit == 1 and e[3].qname == b"\x01a\x00"
    bad_owner = rr(b"\x01b\x00", 41, 1232, 0, b"")
    e = outcome(native.parse_query, base + bad_owner)
    assert e[1] == Code.EBADOPT and e[3].opt_flags == native.OptFlag.BAD_OWNER
    dup = base[:10] + b"\x00\x02" + base[12:] + opt + opt
    e = outcome(native.parse_query, dup)
    assert e[1] == Code.EBADOPT and e[3].opt_flags == native.OptFlag.DUPLICATE
    wrong = base[:6] + b"\x00\x01" + base[8:10] + b"\x00\x00" + base[12:] + opt
    e = outcome(native.parse_query, wrong)
    assert e[1] == Code.EBADOPT and e[3].opt_flags == native.OptFlag.WRONG_SECTION
    assert e[3].has_opt == 0
    malformed = rr(b"\x00", 41, 1232, 0, b"\x00\x0a\x00\x08abc")
    e = outcome(native.parse_query, base + malformed)
    assert e[1] == Code.EBADOPT and e[3].opt_flags == native.OptFlag.MALFORMED
    for w in (dup, wrong, base + bad_owner, base + malformed):
        with pytest.raises(dns.exception.FormError):
            dns.message.from_wire(w)


def test_question_pointer_into_header_follows_dnspython():
    # qname = pointer to offset 2 (strictly backwards, into the header):
    # flags word 0x0100 = label of length 1 ("\x00"), then qdcount high byte 0 = root
    wire = struct.pack("!6H", 1, 0x0100, 1, 0, 0, 0) + b"\xc0\x02" + struct.pack("!HH", 1, 1)
    c = native.parse_query(wire)
    assert c.qname == b"\x01\x00\x00" and c.question_end == 18
    assert dns.message.from_wire(wire).question[0].name.to_wire() == c.qname
    for bad in (b"\xc0\x0c", b"\xc0\x0d", b"\x01a\xc0\x0c", b"\x40", b"\x80", b"\x01"):
        w = struct.pack("!6H", 1, 0, 1, 0, 0, 0) + bad + b"\x00" + struct.pack("!HH", 1, 1)
        assert outcome(native.parse_query, w)[1] == Code.EMALF
        assert outcome(pure.parse_query, w)[1] == Code.EMALF
