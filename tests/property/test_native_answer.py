"""Differential tests of the cache-hit fast path: kn_answer / native.answer.

Owns: (1) for random eligible queries (random qname case, A/AAAA/TXT/MX/NS,
with/without EDNS, DO, CD) and values packed with cache.entry.pack_rrset
(random rdata, ranks, inception/ttl/now giving a positive, zero or negative
remaining TTL): the C answer equals the pure twin byte for byte and,
semantically, what the slow path puts on the wire (make_answer + the RRset
with the remaining TTL + render_answer); (2) every ineligible query and
unusable value gives None in both; (3) the size limit; (4) hostile/mutated
queries, values and even garbage kn_query structs through kn_answer with all
inputs and the output against PROT_NONE guard pages (no crash, no read or
write out of bounds), agreeing with the twin where the struct is genuine.
Must not: depend on the resolver or the network.
"""
from __future__ import annotations

import ctypes
import mmap
import struct

import dns.flags
import dns.message
import dns.name
import dns.rcode
import dns.rdataclass
import dns.rdatatype
import dns.rrset
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

import native
import native.pure as pure
from cache.entry import pack_rrset
from native import _native
from cache import is_answer_rank
from workers.request import make_answer
from workers.server import render_answer
from workers.settings import Settings

ffi, lib = _native.ffi, _native.lib
PAGE = mmap.PAGESIZE
QSIZE = ffi.sizeof("struct kn_query")
IN = dns.rdataclass.IN
T = dns.rdatatype
TYPES = [T.A, T.AAAA, T.TXT, T.MX, T.NS]

# [g][query][g][value][g][kn_query][g][out][g]: each input ends at a guard page
_map = mmap.mmap(-1, 9 * PAGE, prot=mmap.PROT_READ | mmap.PROT_WRITE)
_base = ctypes.addressof(ctypes.c_char.from_buffer(_map))
_libc = ctypes.CDLL(None, use_errno=True)
_libc.mprotect.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
for _g in (0, 2, 4, 6, 8):
    assert _libc.mprotect(_base + _g * PAGE, PAGE, 0) == 0, ctypes.get_errno()
_PQ = ffi.cast("struct kn_query *", _base + 6 * PAGE - QSIZE)


def _place(page: int, data: bytes):
    off = (page + 1) * PAGE - len(data)
    _map[off : off + len(data)] = data
    return ffi.cast("uint8_t *", _base + off)


def guarded_answer(wire: bytes, value: bytes, now: int, bufsize: int, outlen: int,
                   pq_bytes: bytes | None = None) -> tuple[int, bytes]:
    """kn_answer with q, val, pq and out[0..outlen) all ending at guard pages."""
    assert len(wire) <= PAGE and len(value) <= PAGE and outlen <= PAGE
    q = _place(1, wire)
    v = _place(3, value)
    if pq_bytes is None:
        lib.kn_parse_query(q, len(wire), _PQ)
    else:
        _map[6 * PAGE - QSIZE : 6 * PAGE] = pq_bytes
    out = ffi.cast("uint8_t *", _base + 8 * PAGE - outlen)
    rc = lib.kn_answer(q, len(wire), _PQ, v, len(value), now, bufsize, outlen, out, outlen)
    return rc, bytes(ffi.buffer(out, max(rc, 0)))


# -- strategies --------------------------------------------------------------
label = st.text("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-", min_size=1, max_size=20)
lower_label = st.text("abcdefghijklmnopqrstuvwxyz0123456789", min_size=1, max_size=12)
dname = st.lists(lower_label, min_size=1, max_size=4).map(lambda ls: ".".join(ls) + ".")


def rdata_text(rtype):
    if rtype == T.A:
        return st.tuples(*[st.integers(0, 255)] * 4).map(lambda t: "%d.%d.%d.%d" % t)
    if rtype == T.AAAA:
        return st.binary(min_size=16, max_size=16).map(
            lambda b: ":".join(b[i : i + 2].hex() for i in range(0, 16, 2)))
    if rtype == T.TXT:
        return st.lists(st.text("abcdefgh xyz0123", max_size=40), min_size=1, max_size=3).map(
            lambda ss: " ".join('"%s"' % s for s in ss))
    if rtype == T.MX:
        return st.tuples(st.integers(0, 65535), dname).map(lambda t: "%d %s" % t)
    return dname


@st.composite
def case(draw):
    qname = dns.name.from_text(".".join(draw(st.lists(label, min_size=1, max_size=4))) + ".")
    rtype = draw(st.sampled_from(TYPES))
    edns = draw(st.sampled_from([None, 0]))
    query = dns.message.make_query(qname, rtype, use_edns=edns,
                                   payload=draw(st.integers(512, 65535)),
                                   want_dnssec=edns is not None and draw(st.booleans()))
    query.id = draw(st.integers(0, 65535))
    if draw(st.booleans()):
        query.flags |= dns.flags.CD
    texts = draw(st.lists(rdata_text(rtype), min_size=1, max_size=6))
    rrset = dns.rrset.from_text_list(qname.to_text().lower(), 300, IN, rtype, texts)
    good_ranks = st.sampled_from([16, 48, 17, 24, 20, 56])  # answer ranks
    rank = draw(st.one_of(good_ranks, good_ranks, st.sampled_from([21, 53, 2, 5, 0, 8]), st.integers(0, 255)))
    inception = draw(st.integers(0, 2**32 - 1))
    ttl = draw(st.integers(0, 10**6))
    window = st.integers(-3, ttl + 3).map(lambda d: inception + d)
    now = draw(st.one_of(window, window, window, st.integers(0, 2**32 - 1)))
    now = min(max(now, 0), 2**32 - 1)
    value = pack_rrset(rrset, None, inception=inception, ttl=ttl, rank=rank)
    bufsize = draw(st.integers(512, 65535))
    return query, rrset, value, inception, ttl, now, rank, bufsize


def remaining_of(inception, ttl, now):
    return ttl - (now - inception) if now > inception else ttl


def slow_path(query, rrset, remaining, bufsize) -> dns.message.Message:
    s = Settings(edns_bufsize=bufsize)
    qmsg = dns.message.from_wire(query.to_wire())
    ans = make_answer(qmsg, s)
    rs = dns.rrset.RRset(qmsg.question[0].name, IN, rrset.rdtype)  # owner as sent
    rs.update(rrset)
    rs.ttl = remaining
    ans.answer = [rs]
    wire, truncated = render_answer(ans, qmsg, s, tcp=True)
    assert not truncated
    return dns.message.from_wire(wire)


def assert_same(got: dns.message.Message, want: dns.message.Message):
    assert got.id == want.id
    assert got.flags == want.flags
    assert got.rcode() == want.rcode() and got.opcode() == want.opcode()
    assert len(got.question) == len(want.question) == 1
    gq, wq = got.question[0], want.question[0]
    assert gq.name.labels == wq.name.labels  # case preserved
    assert (gq.rdtype, gq.rdclass) == (wq.rdtype, wq.rdclass)
    assert len(got.answer) == len(want.answer) == 1
    ga, wa = got.answer[0], want.answer[0]
    assert ga.name.labels == wa.name.labels
    assert (ga.rdtype, ga.rdclass, ga.ttl) == (wa.rdtype, wa.rdclass, wa.ttl)
    assert set(ga) == set(wa) and len(ga) == len(wa)
    assert not got.authority and not want.authority
    assert not got.additional and not want.additional
    assert got.edns == want.edns
    if want.edns >= 0:
        assert got.payload == want.payload
        assert got.ednsflags == want.ednsflags
        assert list(got.options) == list(want.options) == []


FAST = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@FAST
@given(case())
def test_answer_matches_slow_path_and_twin(c):
    query, rrset, value, inception, ttl, now, rank, bufsize = c
    wire = query.to_wire()
    pq = native.parse_query(wire)
    got = native.answer(wire, pq, value, now, bufsize, 65535)
    assert got == pure.answer(wire, pq, value, now, bufsize, 65535)
    remaining = remaining_of(inception, ttl, now)
    # ranks with bits 0x40/0x80 (no kr_rank) are declined by the fast path;
    # so are DO, AD and CD (DNSSEC answers are the full path's)
    dnssec = query.flags & (dns.flags.AD | dns.flags.CD) or query.ednsflags & dns.flags.DO
    if remaining <= 0 or not is_answer_rank(rank) or dnssec:
        event("declined")
        assert got is None
        return
    event("answered")
    assert got is not None
    assert_same(dns.message.from_wire(got), slow_path(query, rrset, remaining, bufsize))
    # guarded raw call gives the same bytes
    if len(wire) <= PAGE and len(value) <= PAGE and len(got) <= PAGE:
        assert guarded_answer(wire, value, now, bufsize, len(got)) == (len(got), got)
        assert guarded_answer(wire, value, now, bufsize, len(got) - 1)[0] == native.Code.ENOSPC


@FAST
@given(case(), st.integers(-5, 400))
def test_size_limit(c, slack):
    query, rrset, value, inception, ttl, now, rank, bufsize = c
    wire = query.to_wire()
    pq = native.parse_query(wire)
    full = native.answer(wire, pq, value, now, bufsize, 65535)
    if full is None:
        return
    maxlen = max(len(full) - 200 + slack, 0)
    got = native.answer(wire, pq, value, now, bufsize, maxlen)
    assert got == pure.answer(wire, pq, value, now, bufsize, maxlen)
    assert got == (full if len(full) <= maxlen else None)


# -- ineligible queries and unusable values ------------------------------------
RR = dns.rrset.from_text("www.example.com.", 300, "IN", "A", "192.0.2.1", "192.0.2.2")
GOOD_VALUE = pack_rrset(RR, None, inception=1000, ttl=300, rank=16)
NOW = 1100


def _q(**kw):
    m = dns.message.make_query("www.example.com.", kw.pop("rtype", "A"), **kw)
    return m


def _wire_edit(wire: bytes, at: int, data: bytes) -> bytes:
    return wire[:at] + data + wire[at + len(data):]


def _bad_queries():
    base = _q().to_wire()
    flags = struct.unpack_from("!H", base, 2)[0]
    yield "qr", _wire_edit(base, 2, struct.pack("!H", flags | 0x8000))
    yield "no rd", _wire_edit(base, 2, struct.pack("!H", flags & ~0x0100))
    yield "opcode", _wire_edit(base, 2, struct.pack("!H", flags | (2 << 11)))
    yield "class CH", base[:-2] + b"\x00\x03"
    for t in (0, 41, 128, 249, 250, 251, 252, 253, 254, 255):
        yield f"type {t}", base[:-4] + struct.pack("!HH", t, 1)
    yield "edns v1", _q(use_edns=1).to_wire()
    m = _q()
    m.answer.append(RR)
    yield "answer rr", m.to_wire()
    m = _q()
    m.authority.append(RR)
    yield "authority rr", m.to_wire()
    m = _q(use_edns=0)
    m.additional.append(RR)
    yield "extra additional", m.to_wire()
    m = _q(use_edns=None)
    m.additional.append(RR)
    yield "additional no opt", m.to_wire()
    yield "qdcount 0", _wire_edit(base, 4, b"\x00\x00")[:12]
    yield "trailing", base + b"\x00"
    yield "short", base[:11]
    yield "compressed qname", struct.pack("!6H", 1, 0x0100, 1, 0, 0, 0) + b"\x03www\xc0\x00" + b"\x00\x01\x00\x01"


@pytest.mark.parametrize("name,wire", list(_bad_queries()), ids=lambda x: x if isinstance(x, str) else "")
def test_ineligible_queries(name, wire):
    # the value matches the query type where it matters (type tests use A values)
    for fn in (native.answer, pure.answer):
        assert fn(wire, None, GOOD_VALUE, NOW, 1232, 65535) is None, name


def _hdr(value, **kw):
    inc, ttl, rank, flags, t = struct.unpack_from("!IIBBH", value)
    d = dict(inc=inc, ttl=ttl, rank=rank, flags=flags, t=t)
    d.update(kw)
    return struct.pack("!IIBBH", d["inc"], d["ttl"], d["rank"], d["flags"], d["t"]) + value[12:]


def _bad_values():
    v = GOOD_VALUE
    yield "empty", b""
    yield "header only", v[:12]
    yield "negative", _hdr(v, flags=2)
    yield "unknown flag", _hdr(v, flags=4)
    yield "rrsig flag without rrsigs", _hdr(v, flags=1)
    yield "wrong type", _hdr(v, t=28)
    yield "bogus", _hdr(v, rank=16 | 5)
    yield "bogus secure", _hdr(v, rank=48 | 5)
    yield "no auth", _hdr(v, rank=8)
    yield "unknown rank bit", _hdr(v, rank=64 | 16)
    yield "expired", _hdr(v, inc=NOW - 300)
    yield "expired long ago", _hdr(v, inc=0, ttl=5)
    yield "count 0", v[:12] + b"\x00\x00"
    yield "trailing", v + b"\x00"
    yield "truncated", v[:-1]
    yield "rdlen overrun", v[:14] + b"\xff\xff" + v[16:]
    yield "count overrun", v[:12] + b"\x00\x03" + v[14:]


@pytest.mark.parametrize("name,value", list(_bad_values()), ids=lambda x: x if isinstance(x, str) else "")
def test_unusable_values(name, value):
    wire = _q().to_wire()
    pq = native.parse_query(wire)
    assert native.answer(wire, pq, value, NOW, 1232, 65535) is None, name
    assert pure.answer(wire, pq, value, NOW, 1232, 65535) is None, name


def test_examples_good():
    rrsig = dns.rrset.from_text("www.example.com.", 300, "IN", "RRSIG",
                                "A 8 3 300 20300101000000 20200101000000 12345 example.com. AAAA")
    for value, edns, do in (
        (GOOD_VALUE, None, False),
        (pack_rrset(RR, rrsig, inception=1000, ttl=300, rank=48), 0, False),
        (_hdr(GOOD_VALUE, inc=NOW + 50), 0, False),  # inception in the future: full TTL
    ):
        q = _q(use_edns=edns, want_dnssec=do)
        wire = q.to_wire()
        pq = native.parse_query(wire)
        got = native.answer(wire, pq, value, NOW, 4096, 65535)
        assert got is not None and got == pure.answer(wire, pq, value, NOW, 4096, 65535)
        m = dns.message.from_wire(got)
        rem = struct.unpack_from("!I", value, 4)[0] - max(NOW - struct.unpack_from("!I", value)[0], 0)
        assert m.answer[0].ttl == rem
        assert (m.id, m.question, m.rcode()) == (q.id, q.question, dns.rcode.NOERROR)
        assert m.answer[0].name == RR.name and sorted(rd.address for rd in m.answer[0]) == \
            ["192.0.2.1", "192.0.2.2"]
        assert len(m.answer) == 1 and not m.additional  # RRSIGs not on the wire
        assert (m.edns, bool(m.ednsflags & dns.flags.DO)) == ((-1, False) if edns is None else (0, do))
        if edns is not None:
            assert m.payload == 4096
        assert struct.unpack_from("!H", got, 6)[0] == 2


def test_dnssec_queries_take_the_full_path():
    """DO, AD or CD: the answer needs RRSIGs, the AD bit or unvalidated data,
    which only the full path decides (C and twin agree)."""
    rrsig = dns.rrset.from_text("www.example.com.", 300, "IN", "RRSIG",
                                "A 8 3 300 20300101000000 20200101000000 12345 example.com. AAAA")
    value = pack_rrset(RR, rrsig, inception=1000, ttl=300, rank=48)
    ad, cd = _q(), _q()
    ad.flags |= dns.flags.AD
    cd.flags |= dns.flags.CD
    for q in (_q(use_edns=0, want_dnssec=True), ad, cd):
        wire = q.to_wire()
        pq = native.parse_query(wire)
        assert native.answer(wire, pq, value, NOW, 4096, 65535) is None
        assert pure.answer(wire, pq, value, NOW, 4096, 65535) is None
    wire = _q().to_wire()  # the same value answers a plain query
    assert native.answer(wire, native.parse_query(wire), value, NOW, 4096, 65535) is not None


def test_remaining_one_and_zero():
    wire = _q().to_wire()
    pq = native.parse_query(wire)
    v = _hdr(GOOD_VALUE, inc=1000, ttl=100)
    assert dns.message.from_wire(native.answer(wire, pq, v, 1099, 1232, 512)).answer[0].ttl == 1
    assert native.answer(wire, pq, v, 1100, 1232, 512) is None
    assert pure.answer(wire, pq, v, 1100, 1232, 512) is None


# -- hostile input, guarded ----------------------------------------------------
mutation = st.tuples(st.sampled_from(["flip", "set", "trunc", "insert", "dup"]),
                     st.integers(0, 1 << 16), st.integers(0, 255), st.binary(min_size=1, max_size=6))


def _mutate(draw, data: bytes) -> bytes:
    w = bytearray(data)
    for op, pos, val, blob in draw(st.lists(mutation, max_size=4)):
        if not w:
            break
        i = pos % len(w)
        if op == "flip":
            w[i] ^= 1 << (val % 8)
        elif op == "set":
            w[i] = val
        elif op == "trunc":
            del w[i:]
        elif op == "insert":
            w[i:i] = blob
        elif op == "dup":
            w[i:i] = w[pos % len(w):][: 1 + val % 16]
    return bytes(w)


@st.composite
def hostile(draw):
    query, rrset, value, inception, ttl, now, rank, bufsize = draw(case())
    wire = query.to_wire()
    if draw(st.integers(0, 9)) == 0:
        wire = draw(st.binary(max_size=100))
    if draw(st.integers(0, 9)) == 0:
        value = draw(st.binary(max_size=100))
    return _mutate(draw, wire)[:PAGE], _mutate(draw, value)[:PAGE], now, bufsize


HOSTILE = settings(max_examples=600, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@HOSTILE
@given(hostile(), st.sampled_from([0, 1, 12, 40, 100, 512, PAGE]))
def test_hostile_guarded_agrees_with_twin(h, outlen):
    wire, value, now, bufsize = h
    rc, out = guarded_answer(wire, value, now, bufsize, outlen)
    want = pure.answer(wire, None, value, now, bufsize, outlen)
    if not _parses(wire):
        # kn_answer on a struct kn_parse_query refused: no crash (checked by
        # getting here), and the wrapper/twin never answer
        assert rc in (-8, -9, -10) or 0 < rc <= outlen
        assert want is None
        assert native.answer(wire, None, value, now, bufsize, outlen) is None
        return
    event("hostile: answered" if want is not None else "hostile: declined")
    if want is None:
        assert rc < 0
    else:
        assert (rc, out) == (len(want), want)
    assert native.answer(wire, None, value, now, bufsize, outlen) == want


def _parses(wire: bytes) -> bool:
    try:
        native.parse_query(wire)
    except native.ParseError:
        return False
    return True


@HOSTILE
@given(st.binary(max_size=300), st.binary(min_size=QSIZE, max_size=QSIZE), st.binary(max_size=200),
       st.integers(0, 2**32 - 1), st.sampled_from([0, 13, 64, PAGE]))
def test_garbage_struct_never_crashes(wire, pq_bytes, value, now, outlen):
    rc, out = guarded_answer(wire, value, now, 1232, outlen, pq_bytes=pq_bytes)
    assert rc in (-8, -9, -10) or 0 < rc <= outlen


@HOSTILE
@given(case(), st.binary(min_size=QSIZE, max_size=QSIZE), st.data())
def test_garbage_struct_on_good_input(c, pq_bytes, data):
    """A real query and value with a random struct: no crash, and an answer only
    if the struct agrees with the query bytes enough to pass the cross-checks."""
    query, rrset, value, inception, ttl, now, rank, bufsize = c
    wire = query.to_wire()
    if data.draw(st.booleans()):  # a real struct with some fields scrambled
        lib.kn_parse_query(wire, len(wire), _PQ)
        real = bytearray(ffi.buffer(_PQ))
        for i, b in data.draw(st.lists(st.tuples(st.integers(0, QSIZE - 1), st.integers(0, 255)), max_size=4)):
            real[i] = b
        pq_bytes = bytes(real)
    rc, out = guarded_answer(wire, value, now, bufsize, PAGE, pq_bytes=pq_bytes)
    assert rc in (-8, -9, -10) or 0 < rc <= PAGE
    if rc > 0:
        dns.message.from_wire(out)  # whatever passed is a well-formed message
