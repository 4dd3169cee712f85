"""Differential tests: C kn_cache_key (native.cache_key) vs cache/keys.py.

Owns: the property tests that native.cache_key builds exactly the bytes of
cache.keys.key_from_wire (CACHE_KEY_DEF) for every well-formed name, that C
rejects whatever key_from_wire rejects, and that C and native/pure.py:cache_key
agree on every input (result or error code).
Must not: test query parsing (test_native_parse.py).

key_from_wire is lenient (it does not validate label types, lengths or
trailing bytes: it is only ever given names dnspython produced), while C is
strict. So on arbitrary bytes the property is: C accepts => key_from_wire
gives the same bytes; key_from_wire raises => C rejects.
"""
from __future__ import annotations

import dns.name
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import native
import native.pure as pure
from cache.keys import MAX_KEY_LEN, key, key_from_wire
from native import Code, ParseError

TAGS = st.sampled_from([b"E", b"N", b"X"]) | st.sampled_from(
    [bytes([c]) for c in range(65, 91)]
)
RTYPES = st.integers(0, 0xFFFF)

label = st.one_of(
    st.binary(min_size=1, max_size=63),
    st.lists(st.sampled_from(b"\x00\x01\x02AZaz-_\xff"), min_size=1, max_size=63).map(bytes),
    st.integers(1, 63).map(lambda n: b"\x00" * n),
    st.integers(1, 63).map(lambda n: b"\x01" * n),
    st.text("ABCDEFGHIJKLMNOPQRSTUVWXYZ[@`{", min_size=1, max_size=63).map(str.encode),
)


@st.composite
def wire_name(draw):
    """A well-formed uncompressed wire name, often near or at 255 bytes."""
    labels, size = [], 1
    for lab in draw(st.lists(label, max_size=130)):
        if size + 1 + len(lab) > 255:
            if draw(st.booleans()):  # fill up to exactly 255 bytes
                room = 255 - size - 1
                if room >= 1:
                    labels.append(lab[:room].ljust(room, b"\x00"))
                    size = 255
            break
        labels.append(lab)
        size += 1 + len(lab)
    return b"".join(bytes([len(lab)]) + lab for lab in labels) + b"\x00"


def c_outcome(fn, *args):
    try:
        return fn(*args)
    except ParseError as e:
        return e.code


@settings(max_examples=400, deadline=None)
@given(wire_name(), TAGS, RTYPES)
def test_c_key_equals_key_from_wire(wire, tag, rtype):
    expect = key_from_wire(wire, tag, rtype)  # never too long for a valid name
    assert native.cache_key(wire, tag, rtype) == expect
    assert pure.cache_key(wire, tag, rtype) == expect
    # and the Name-based spec agrees (dns.name.Name round trip)
    name = dns.name.from_wire(wire, 0)[0]
    assert key(name, tag, rtype) == expect


@settings(max_examples=600, deadline=None)
@given(
    st.one_of(
        st.binary(max_size=300),
        wire_name().flatmap(
            lambda w: st.tuples(st.just(w), st.integers(0, len(w)), st.binary(max_size=3)).map(
                lambda t: t[0][: t[1]] + t[2] + t[0][t[1] :]
            )
        ),
    ),
    TAGS,
    RTYPES,
)
def test_any_bytes_c_vs_python(wire, tag, rtype):
    c = c_outcome(native.cache_key, wire, tag, rtype)
    assert c == c_outcome(pure.cache_key, wire, tag, rtype)
    try:
        py = key_from_wire(wire, tag, rtype)
    except (IndexError, ValueError):
        py = None
    if isinstance(c, bytes):
        assert c == py
    if py is None:
        assert not isinstance(c, bytes)


def test_examples():
    w = b"\x03www\x07Example\x03ORG\x00"
    assert native.cache_key(w, b"E", 1) == b"org\x00example\x00www\x00E\x00\x01"
    assert native.cache_key(b"\x00", b"X", 0) == b"\x00X\x00\x00"
    assert native.cache_key(b"\x02\x00\x01\x00", b"N", 0x1234) == b"\x01\x01\x01\x02\x00N\x12\x34"


@pytest.mark.parametrize(
    "bad",
    [b"", b"\x01", b"\x03ab", b"\x03abc", b"\x40" + b"a" * 64 + b"\x00", b"\x80\x00",
     b"\xc0\x00", b"\x01a\xc0\x00", b"\x01a\x00\x00", b"\x00\x00",
     (b"\x3f" + b"a" * 63) * 4 + b"\x00"],  # 257 bytes
)
def test_malformed_names_rejected(bad):
    for fn in (native.cache_key, pure.cache_key):
        with pytest.raises(ParseError) as ei:
            fn(bad, b"E", 1)
        assert ei.value.code == Code.EMALF


def test_longest_possible_key_fits():
    """Worst case (4 labels of 0x00 bytes, 255-byte name) is 507 < MAX_KEY_LEN,
    so EKEYLEN can not happen for a well-formed name (keys.py's docstring says
    "below 600"; the exact bound is 507)."""
    wire = (b"\x3f" + b"\x00" * 63) * 3 + b"\x3d" + b"\x00" * 61 + b"\x00"
    assert len(wire) == 255
    k = native.cache_key(wire, b"E", 1)
    assert len(k) == 507 <= MAX_KEY_LEN
    assert k == key_from_wire(wire, b"E", 1)


def test_bad_tag_and_rtype():
    with pytest.raises(ValueError):
        native.cache_key(b"\x00", b"", 1)
    with pytest.raises(ValueError):
        native.cache_key(b"\x00", b"EE", 1)
    with pytest.raises(OverflowError):
        native.cache_key(b"\x00", b"E", 0x10000)
    with pytest.raises(OverflowError):
        pure.cache_key(b"\x00", b"E", -1)
