"""Unit tests of native/__init__.py (the typed wrappers) and native/build.py.

Owns: the contract between kresd_native.h and the Python wrappers (codes, flag
bits, struct layout, error objects, buffer reuse), and the hand-made hostile
corpus (native_corpus.EVIL) with its expected codes for C and the pure twin.
Must not: do property-based differential testing (tests/property/).
"""
from __future__ import annotations

import importlib.util
import struct
from pathlib import Path

import dns.message
import pytest

import native
import native.pure as pure
from native import Code, Header, OptFlag, ParsedQuery, ParseError, _native

from native_corpus import EVIL

ROOT = Path(__file__).resolve().parents[3]


def test_backend_is_the_c_extension():
    assert native.BACKEND == "c", "build it: .venv/bin/python native/build.py"
    assert Path(_native.__file__).parent == ROOT / "native"


def test_codes_and_flags_match_the_header():
    lib = _native.lib
    for code in Code:
        assert getattr(lib, f"KN_{code.name}") == code.value
    for flag in OptFlag:
        assert getattr(lib, f"KN_OPT_{flag.name}") == flag.value
    assert lib.KN_MAX_KEY_LEN == native.MAX_KEY_LEN == 511
    assert lib.KN_QNAME_MAX == native.QNAME_MAX


def test_parsed_query_fields_follow_struct_order():
    fields = [n for n, _ in _native.ffi.typeof("struct kn_query").fields if n != "reserved"]
    assert list(ParsedQuery._fields) == fields
    assert list(Header._fields) == fields[:8]


def test_parse_query_result_and_header():
    msg = dns.message.make_query("WwW.example.", "AAAA", use_edns=0, want_dnssec=True, payload=4096)
    wire = msg.to_wire()
    q = native.parse_query(wire)
    assert q.qname == b"\x03WwW\x07example\x00" and q.qname_lower == b"\x03www\x07example\x00"
    assert (q.qtype, q.qclass, q.udp_size, q.do_bit, q.has_opt) == (28, 1, 4096, 1, 1)
    assert q.header == Header(msg.id, 0x0100, 1, 0, 0, 1, 0, 0)
    # bytes-like inputs are accepted
    assert native.parse_query(bytearray(wire)) == q == native.parse_query(memoryview(wire))


def test_results_do_not_alias_the_reused_buffer():
    a = native.parse_query(dns.message.make_query("a.example.", "A").to_wire())
    b = native.parse_query(dns.message.make_query("bbbbbb.example.", "MX").to_wire())
    assert a.qname == b"\x01a\x07example\x00" and a.qtype == 1
    assert b.qname == b"\x06bbbbbb\x07example\x00" and b.qtype == 15
    k1 = native.cache_key(a.qname, b"E", 1)
    k2 = native.cache_key(b.qname, b"E", 15)
    assert k1 == b"example\x00a\x00E\x00\x01" and k2.startswith(b"example\x00bbbbbb")


def test_parse_error_objects():
    with pytest.raises(ParseError) as ei:
        native.parse_query(b"\x00" * 5)
    assert ei.value.code is Code.ESHORT and ei.value.header is None and ei.value.query is None
    assert isinstance(ei.value, ValueError) and str(ei.value) == "ESHORT"
    with pytest.raises(ParseError) as ei:
        native.parse_query(struct.pack("!6H", 9, 0x2800, 1, 0, 0, 0) + b"\xc0\x0c\x00\x01\x00\x01")
    assert ei.value.code is Code.EMALF
    assert ei.value.header == Header(9, 0x2800, 1, 0, 0, 0, 5, 0) and ei.value.query is None


@pytest.mark.parametrize("label,wire,expected", EVIL, ids=[e[0] for e in EVIL])
def test_hostile_corpus(label, wire, expected):
    results = []
    for fn in (native.parse_query, pure.parse_query):
        try:
            results.append(("ok", fn(wire)))
        except ParseError as e:
            results.append(("err", e.code, e.header, e.query))
    assert results[0] == results[1]
    if expected is None:
        assert results[0][0] == "ok"
    else:
        assert results[0][:2] == ("err", expected)


def test_build_script_cdef_and_sources():
    spec = importlib.util.spec_from_file_location("native_build", ROOT / "native" / "build.py")
    build = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(build)
    cdef = build.read_cdef()
    assert "kn_parse_query" in cdef and "kn_cache_key" in cdef and "#include" not in cdef
    assert build.ffibuilder._assigned_source[0] == "native._native"
    kwds = build.ffibuilder._assigned_source[3]
    assert "-O2" in kwds["extra_compile_args"]
    assert all(Path(build.HERE, Path(s).name).is_file() for s in kwds["sources"])


def test_pure_fallback_when_not_built():
    import subprocess
    import sys

    code = (
        "import sys; sys.modules['native._native'] = None\n"
        "import native, dns.message\n"
        "assert native.BACKEND == 'pure', native.BACKEND\n"
        "q = native.parse_query(dns.message.make_query('x.', 'A').to_wire())\n"
        "assert q.qname == b'\\x01x\\x00'\n"
        "assert native.cache_key(q.qname, b'E', 1) == b'x\\x00E\\x00\\x01'\n"
    )
    run = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True)
    assert run.returncode == 0, run.stderr


def test_mass_mutations_c_equals_twin():
    """10000 seeded mutated/random packets: C and the pure twin agree exactly."""
    from native_corpus import mass_mutations

    def outcome(fn, wire):
        try:
            return ("ok", fn(wire))
        except ParseError as e:
            return ("err", e.code, e.header, e.query)

    seen = set()
    for wire in mass_mutations(10000, seed=7):
        c = outcome(native.parse_query, wire)
        assert c == outcome(pure.parse_query, wire), wire
        seen.add(0 if c[0] == "ok" else int(c[1]))
    assert seen >= {0, -1, -2, -3, -4, -5, -6}
