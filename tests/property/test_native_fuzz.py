"""Fuzz test: hostile bytes through kn_parse_query/kn_cache_key, reads bounded.

Owns: random and mutated packets (truncations, bit flips, compression loops,
self/forward pointers, huge counts) pushed through the C functions with the
input placed against PROT_NONE guard pages (so a read of one byte past the end,
or before the start, is a SIGSEGV, not a silent pass) and the output struct
and key buffer placed against guard pages too; plus exact-size ffi buffers,
and agreement with the pure twin on every such input.
Must not: rely on luck for memory safety alone: tests/unit/native/
test_native_asan.py runs a larger corpus under AddressSanitizer.
"""
from __future__ import annotations

import ctypes
import mmap
import struct

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import native
import native.pure as pure
from native import ParseError, _native

ffi, lib = _native.ffi, _native.lib
PAGE = mmap.PAGESIZE
QSIZE = ffi.sizeof("struct kn_query")

# [guard][input page][guard][output page][guard]
_map = mmap.mmap(-1, 5 * PAGE, prot=mmap.PROT_READ | mmap.PROT_WRITE)
_base = ctypes.addressof(ctypes.c_char.from_buffer(_map))
_libc = ctypes.CDLL(None, use_errno=True)
_libc.mprotect.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
for _g in (0, 2, 4):
    assert _libc.mprotect(_base + _g * PAGE, PAGE, 0) == 0, ctypes.get_errno()
_OUT = ffi.cast("struct kn_query *", _base + 4 * PAGE - QSIZE)
_KEY_END = _base + 4 * PAGE  # key buffers end at the last guard page


def guarded_parse(wire: bytes, at_end: bool) -> tuple[int, bytes]:
    n = len(wire)
    assert n <= PAGE
    off = 2 * PAGE - n if at_end else PAGE
    _map[off : off + n] = wire
    rc = lib.kn_parse_query(ffi.cast("uint8_t *", _base + off), n, _OUT)
    return rc, bytes(ffi.buffer(_OUT))


def guarded_key(wire: bytes, outlen: int) -> tuple[int, bytes]:
    n = len(wire)
    off = 2 * PAGE - n
    _map[off : off + n] = wire
    out = ffi.cast("uint8_t *", _KEY_END - outlen)
    rc = lib.kn_cache_key(ffi.cast("uint8_t *", _base + off), n, 69, 1, out, outlen)
    return rc, bytes(ffi.buffer(out, max(rc, 0)))


def outcome(fn, wire):
    try:
        return ("ok", fn(wire))
    except ParseError as e:
        return ("err", e.code, e.header, e.query)


def q(name=b"\x01a\x00", qtype=1):
    return name + struct.pack("!HH", qtype, 1)


def header(qd=1, an=0, ns=0, ar=0):
    return struct.pack("!6H", 0xBEEF, 0x0100, qd, an, ns, ar)


SEEDS = [
    header() + q(),
    header(ar=1) + q() + b"\x00" + struct.pack("!HHIH", 41, 1232, 0x8000, 12) + b"\x00\x0a\x00\x08" + b"c" * 8,
    header(an=2) + q(b"\x03www\x07Example\x03com\x00", 28) + b"\xc0\x0c" + struct.pack("!HHIH", 5, 1, 60, 2) + b"\xc0\x0c"
    + b"\xc0\x1d" + struct.pack("!HHIH", 1, 1, 60, 4) + b"\x7f\x00\x00\x01",
    header(ns=1) + q() + b"\x01b\xc0\x0c" + struct.pack("!HHIH", 2, 1, 60, 4) + b"\x01c\xc0\x15",
    header() + b"\xc0\x00" + struct.pack("!HH", 1, 1),
]

mutation = st.tuples(
    st.sampled_from(["flip", "set", "trunc", "insert", "ptr", "count", "dup"]),
    st.integers(0, 10**6),
    st.integers(0, 255),
    st.binary(min_size=1, max_size=6),
)


@st.composite
def hostile(draw):
    if draw(st.integers(0, 9)) == 0:
        return draw(st.binary(max_size=200))
    w = bytearray(draw(st.sampled_from(SEEDS)))
    for op, pos, val, blob in draw(st.lists(mutation, min_size=1, max_size=5)):
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
        elif op == "ptr":  # pointers to themselves, forwards, backwards
            w[i : i + 2] = bytes((0xC0 | (val & 3), (i + val - 128) & 0xFF))
        elif op == "count" and len(w) >= 12:
            j = 4 + 2 * (val % 4)
            w[j : j + 2] = struct.pack("!H", (0, 1, 2, 0xFFFF)[val % 4])
        elif op == "dup":
            w[i:i] = w[pos % len(w) :][: 1 + val % 16]
    return bytes(w)


FUZZ = settings(max_examples=800, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@FUZZ
@given(hostile())
def test_parse_guarded_no_crash_and_agrees(wire):
    rc_end, out_end = guarded_parse(wire, at_end=True)
    rc_start, out_start = guarded_parse(wire, at_end=False)
    assert rc_end == rc_start
    assert rc_end in (0, -1, -2, -3, -4, -5, -6)
    # exact-size heap copy, and the wrapper/twin agree with the raw call
    exact = ffi.new("uint8_t[]", len(wire))
    ffi.memmove(exact, wire, len(wire))
    q2 = ffi.new("struct kn_query *")
    assert lib.kn_parse_query(exact, len(wire), q2) == rc_end
    c = outcome(native.parse_query, wire)
    assert c == outcome(pure.parse_query, wire)
    assert (0 if c[0] == "ok" else c[1]) == rc_end
    if rc_end in (0, -5, -6):
        n = struct.unpack_from("=H", out_end, ffi.offsetof("struct kn_query", "qname_len"))[0]
        assert 1 <= n <= 255


@settings(max_examples=500, deadline=None)
@given(st.one_of(hostile(), st.binary(max_size=300)), st.sampled_from([0, 1, 4, 8, 64, 511]))
def test_cache_key_guarded(wire, outlen):
    rc, key = guarded_key(wire, outlen)
    try:
        want = pure.cache_key(wire, b"E", 1)
    except ParseError as e:
        assert rc == e.code
        return
    if len(want) <= outlen:
        assert (rc, key) == (len(want), want)
    else:
        assert rc == native.Code.ENOSPC


def test_huge_counts_and_loops_terminate():
    loop = header(an=0xFFFF) + q() + b"\xc0\x11" * 2000  # pointers to a fixed spot
    assert outcome(native.parse_query, loop) == outcome(pure.parse_query, loop)
    for wire in (header(an=0xFFFF, ns=0xFFFF, ar=0xFFFF) + q() + bytes(PAGE - 19),):
        rc, _ = guarded_parse(wire, at_end=True)
        assert rc == native.Code.EMALF
