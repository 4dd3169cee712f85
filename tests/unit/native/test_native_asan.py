"""Memory-safety check: native/pkt.c and key.c under AddressSanitizer + UBSan.

Owns: compiling tests/unit/native/asan_harness.c with the C sources and
-fsanitize=address,undefined in a temporary directory (a subprocess, ~1 s),
feeding it the hostile corpus plus thousands of mutated packets, each in a
heap block of exactly its length, and checking that the sanitized build
reports nothing and returns the same codes as the extension module.
Must not: be skipped: gcc with libasan is part of the dev environment (the
test fails with the compiler's message if it is missing).
"""
from __future__ import annotations

import os
import struct
import subprocess
from pathlib import Path

import native
from native import _native

from native_corpus import EVIL, mass_mutations

ROOT = Path(__file__).resolve().parents[3]
NATIVE = ROOT / "native"
HARNESS = Path(__file__).with_name("asan_harness.c")


def _expected(wire: bytes) -> str:
    ffi, lib = _native.ffi, _native.lib
    q = ffi.new("struct kn_query *")
    rc = lib.kn_parse_query(wire, len(wire), q)
    qlen = q.qname_len if rc in (0, -5, -6) else -1
    key = ffi.new("uint8_t[]", 511)
    k1 = lib.kn_cache_key(wire, len(wire), ord("E"), 1, key, 511)
    k2 = lib.kn_cache_key(wire, len(wire), ord("E"), 1, key, 8)
    return f"{rc} {qlen} {k1} {k2}"


def test_sanitized_build_agrees_and_is_clean(tmp_path):
    assert native.BACKEND == "c"
    exe = tmp_path / "harness"
    cc = subprocess.run(
        ["gcc", "-std=c99", "-O1", "-g", "-Wall", "-Wextra", "-Werror",
         "-fsanitize=address,undefined", "-fno-sanitize-recover=all",
         "-fno-omit-frame-pointer", f"-I{NATIVE}", str(HARNESS),
         str(NATIVE / "pkt.c"), str(NATIVE / "key.c"), "-o", str(exe)],
        capture_output=True, text=True, timeout=120,
    )
    assert cc.returncode == 0, cc.stderr
    names = [b"\x00", b"\x01a\x00", b"\x3f" + b"\x00" * 63 + b"\x00"]
    packets = [w for _, w, _ in EVIL] + mass_mutations(20000) + names
    corpus = tmp_path / "corpus.bin"
    corpus.write_bytes(b"".join(struct.pack("<I", len(w)) + w for w in packets))
    env = dict(os.environ, ASAN_OPTIONS="detect_leaks=1:abort_on_error=0:exitcode=86",
               UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1:exitcode=87")
    run = subprocess.run([str(exe), str(corpus)], capture_output=True, text=True,
                         timeout=120, env=env)
    assert run.returncode == 0, run.stderr[-4000:]
    assert run.stderr == ""
    got = run.stdout.splitlines()
    assert len(got) == len(packets)
    want = [_expected(w) for w in packets]
    assert got == want
    # the corpus exercised every outcome of the parser
    assert {int(line.split()[0]) for line in got} >= {0, -1, -2, -3, -4, -5, -6}
    assert {int(line.split()[3]) for line in got} >= {-2, -8} and any(
        int(line.split()[2]) > 0 for line in got
    )
