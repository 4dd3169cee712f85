"""Memory-safety check: every C function of native/ under AddressSanitizer + UBSan.

Owns: compiling tests/unit/native/asan_harness.c with the C sources
(build.SOURCES: pkt.c, key.c, answer.c, fastpath.c, ratelimit.c, reply.c) and -fsanitize=address,undefined in a
temporary directory (a subprocess, a few seconds), then feeding it
  * the hostile corpus plus thousands of mutated packets (kn_parse_query,
    kn_cache_key),
  * thousands of (query, cache value, now, maxlen, outlen) cases for
    kn_answer: good queries and values, truncated and bit-flipped values,
    random bytes, mutated queries, output buffers from 0 bytes up,
  * every rank byte for kn_rank_is_answer,
  * the packet cache and kn_udp_batch, with and without a rate limit, and
    thousands of (sender, time, query, outlen) cases for kn_rl_check and
    kn_rl_tc (ratelimit.c),
  * thousands of upstream replies (plain, signed, mutated, cut short) for
    kn_reply_rrset (reply.c), with RRSIGs allowed and not,
each input in a heap block of exactly its length, and checking that the
sanitized build reports nothing and returns the same codes and bytes as the
extension module.
Must not: be skipped: gcc with libasan is part of the dev environment (the
test fails with the compiler's message if it is missing).
"""
from __future__ import annotations

import importlib.util
import ipaddress
import os
import random
import struct
import subprocess
from pathlib import Path

import dns.message
import dns.rdatatype
import dns.rrset
import pytest

import native
from cache.entry import pack_rrset
from native import _native

from native_corpus import EVIL, mass_mutations

ROOT = Path(__file__).resolve().parents[3]
NATIVE = ROOT / "native"
HARNESS = Path(__file__).with_name("asan_harness.c")


def _build_sources() -> tuple[str, ...]:
    """native/build.py SOURCES: exactly what the extension is built from."""
    spec = importlib.util.spec_from_file_location("_native_build", NATIVE / "build.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return tuple(mod.SOURCES)


SOURCES = _build_sources()

ENV = dict(os.environ, ASAN_OPTIONS="detect_leaks=1:abort_on_error=0:exitcode=86",
           UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1:exitcode=87")


@pytest.fixture(scope="module")
def harness(tmp_path_factory) -> Path:
    assert native.BACKEND == "c"
    assert "answer.c" in SOURCES
    exe = tmp_path_factory.mktemp("asan") / "harness"
    cc = subprocess.run(
        ["gcc", "-std=c99", "-O1", "-g", "-Wall", "-Wextra", "-Werror",
         "-fsanitize=address,undefined", "-fno-sanitize-recover=all",
         "-fno-omit-frame-pointer", f"-I{NATIVE}", str(HARNESS),
         *[str(NATIVE / s) for s in SOURCES], "-o", str(exe)],
        capture_output=True, text=True, timeout=180,
    )
    assert cc.returncode == 0, cc.stderr
    return exe


def _run(exe: Path, *args: str) -> list[str]:
    run = subprocess.run([str(exe), *args], capture_output=True, text=True, timeout=300, env=ENV)
    assert run.returncode == 0, run.stderr[-4000:]
    assert run.stderr == ""
    return run.stdout.splitlines()


# -- kn_parse_query, kn_cache_key ---------------------------------------------------

def _expected_parse(wire: bytes) -> str:
    ffi, lib = _native.ffi, _native.lib
    q = ffi.new("struct kn_query *")
    rc = lib.kn_parse_query(wire, len(wire), q)
    qlen = q.qname_len if rc in (0, -5, -6) else -1
    key = ffi.new("uint8_t[]", 511)
    k1 = lib.kn_cache_key(wire, len(wire), ord("E"), 1, key, 511)
    k2 = lib.kn_cache_key(wire, len(wire), ord("E"), 1, key, 8)
    return f"{rc} {qlen} {k1} {k2}"


def test_parse_and_key_sanitized_agree(harness, tmp_path):
    names = [b"\x00", b"\x01a\x00", b"\x3f" + b"\x00" * 63 + b"\x00"]
    packets = [w for _, w, _ in EVIL] + mass_mutations(20000) + names
    corpus = tmp_path / "corpus.bin"
    corpus.write_bytes(b"".join(struct.pack("<I", len(w)) + w for w in packets))
    got = _run(harness, "parse", str(corpus))
    assert len(got) == len(packets)
    assert got == [_expected_parse(w) for w in packets]
    # the corpus exercised every outcome of the parser
    assert {int(line.split()[0]) for line in got} >= {0, -1, -2, -3, -4, -5, -6}
    assert {int(line.split()[3]) for line in got} >= {-2, -8} and any(
        int(line.split()[2]) > 0 for line in got
    )


# -- kn_answer -------------------------------------------------------------------------

NOW = 1_700_000_000


def _mutate(rng: random.Random, wire: bytes) -> bytes:
    """wire truncated, with bytes flipped or appended, or random bytes instead."""
    b = bytearray(wire)
    op = rng.randrange(4)
    if op == 0 and b:
        return bytes(b[: rng.randrange(len(b))])
    if op == 1 and b:
        for _ in range(rng.randint(1, 4)):
            b[rng.randrange(len(b))] = rng.randrange(256)
        return bytes(b)
    if op == 2:
        return bytes(b) + bytes(rng.randrange(256) for _ in range(rng.randint(1, 8)))
    return bytes(rng.randrange(256) for _ in range(rng.randint(0, 40)))


def _answer_cases(n: int, seed: int = 20261204) -> list[tuple[bytes, bytes, int, int, int]]:
    rng = random.Random(seed)
    types = {"A": "192.0.2.{}", "AAAA": "2001:db8::{}", "TXT": '"t{}"', "MX": "10 mx{}.example."}
    queries, values = [], []
    for rtype, fmt in types.items():
        for edns, do in ((False, False), (0, False), (0, True)):  # DO: not eligible
            q = dns.message.make_query("wWw.Example.", rtype, use_edns=edns, want_dnssec=do)
            queries.append(q.to_wire())
        rrset = dns.rrset.from_text("www.example.", 300, "IN", rtype,
                                    *[fmt.format(i) for i in range(1, rng.randint(2, 6))])
        for rank in (16, 48, 21, 2, 0x50):
            values.append(pack_rrset(rrset, None, inception=NOW - 10, ttl=300, rank=rank))
    big = dns.rrset.from_text("www.example.", 300, "IN", "TXT", *[f'"{"x" * 200}{i}"' for i in range(40)])
    values.append(pack_rrset(big, None, inception=NOW, ttl=60, rank=16))
    sig = dns.rrset.from_text("www.example.", 300, "IN", "RRSIG",
                              "A 8 2 300 20300101000000 20200101000000 1 example. AAAA")
    a = dns.rrset.from_text("www.example.", 300, "IN", "A", "192.0.2.7")
    values.append(pack_rrset(a, sig, inception=NOW, ttl=300, rank=48))

    def mutate(b: bytes) -> bytes:
        return _mutate(rng, b)

    cases = []
    for i in range(n):
        q = rng.choice(queries)
        v = rng.choice(values)
        if i % 3 == 1:
            v = mutate(v)
        elif i % 3 == 2:
            q = mutate(q)
        if i % 7 == 0:
            q, v = mutate(q), mutate(v)
        now = rng.choice([NOW, NOW + 290, NOW + 400, NOW - 100, 0, 0xFFFFFFFF])
        full = 65535
        outlen = rng.choice([0, 1, 12, 40, 64, 100, 512, 1232, 4096, full])
        maxlen = rng.choice([0, 50, 512, 1232, full])
        cases.append((q, v, now, maxlen, outlen))
    return cases


def _expected_answer(q: bytes, v: bytes, now: int, maxlen: int, outlen: int) -> str:
    ffi, lib = _native.ffi, _native.lib
    pq = ffi.new("struct kn_query *")
    prc = lib.kn_parse_query(q, len(q), pq)
    out = ffi.new("uint8_t[]", max(outlen, 1))
    rc = lib.kn_answer(q, len(q), pq, v, len(v), now, 1232, maxlen, out, outlen)
    body = ffi.buffer(out, rc)[:].hex() if rc > 0 else "-"
    return f"{prc} {rc} {body}"


def test_answer_sanitized_agrees(harness, tmp_path):
    cases = _answer_cases(6000)
    blob = bytearray()
    for q, v, now, maxlen, outlen in cases:
        blob += struct.pack("<I", len(q)) + q + struct.pack("<I", len(v)) + v
        blob += struct.pack("<III", now, maxlen, outlen)
    corpus = tmp_path / "answers.bin"
    corpus.write_bytes(bytes(blob))
    got = _run(harness, "answer", str(corpus))
    assert len(got) == len(cases)
    want = [_expected_answer(*c) for c in cases]
    assert got == want
    # every outcome of kn_answer was exercised, answers included
    rcs = {int(line.split()[1]) for line in got}
    assert {-8, -9, -10} <= rcs and any(rc > 0 for rc in rcs), rcs


def test_rank_rule_sanitized_agrees(harness):
    (line,) = _run(harness, "ranks")
    assert len(line) == 512
    lib = _native.lib
    assert line == "".join("1" if lib.kn_rank_is_answer(r) else "0" for r in range(512))
    assert line == "".join("1" if native.rank_is_answer(r) else "0" for r in range(512))


# -- the packet cache (fastpath.c) -------------------------------------------------------

def _pcache_cases(n: int, seed: int = 20261205) -> list[tuple[bytes, bytes, bytes, int]]:
    """(query, answer, query2, now): real exchanges (A, CNAME, NXDOMAIN with
    SOA, OPT or not), then mutated queries and answers and random bytes."""
    rng = random.Random(seed)
    good = []
    for i in range(12):
        name = f"h{i}.Example."
        q = dns.message.make_query(name, "A", use_edns=0 if i % 2 else False, id=i)
        r = dns.message.make_response(q)
        if i % 3 == 0:
            r.set_rcode(dns.rcode.NXDOMAIN)
            r.authority.append(dns.rrset.from_text("example.", 60 + i, "IN", "SOA", "a. b. 1 2 3 4 5"))
        else:
            if i % 3 == 2:
                r.answer.append(dns.rrset.from_text(name, 30, "IN", "CNAME", f"t{i}.example."))
            r.answer.append(dns.rrset.from_text(name if i % 3 == 1 else f"t{i}.example.", 100 + i, "IN", "A",
                                                *[f"192.0.2.{j}" for j in range(1, 2 + i % 4)]))
        q2 = dns.message.make_query(name.upper(), "A", use_edns=0 if i % 2 else False, id=1000 + i,
                                    payload=512 if i % 4 == 1 else 1232)
        good.append((q.to_wire(), r.to_wire(), q2.to_wire()))

    def mutate(b: bytes) -> bytes:
        return _mutate(rng, b)

    cases = []
    for i in range(n):
        q, a, q2 = rng.choice(good)
        if i % 4 == 1:
            a = mutate(a)
        elif i % 4 == 2:
            q = mutate(q)
        elif i % 4 == 3:
            q2 = mutate(q2)
        cases.append((q, a, q2, NOW + i // 50))
    return cases


def _pcache_blob(cases) -> bytes:
    blob = bytearray()
    for q, a, q2, now in cases:
        for part in (q, a, q2):
            blob += struct.pack("<I", len(part)) + part
        blob += struct.pack("<I", now)
    return bytes(blob)


def test_packet_cache_sanitized_agrees(harness, tmp_path):
    cases = _pcache_cases(6000)
    corpus = tmp_path / "pcache.bin"
    corpus.write_bytes(_pcache_blob(cases))
    got = _run(harness, "pcache", str(corpus))
    pc = native.PacketCache(16, 4096)  # the extension, the same sequence
    want = []
    for q, a, q2, now in cases:
        irc = pc.insert(q, a, now)
        hit = pc.answer(q2, now + 1, 1232)
        want.append(f"{irc} {len(hit[0]) if hit else 0} {hit[1] if hit else 0} {hit[0].hex() if hit else '-'}")
    assert got == want
    irc = {int(line.split()[0]) for line in got}
    assert {0, -9, -10} <= irc and any(int(line.split()[1]) > 0 for line in got), irc
    assert pc.flushes > 3  # the small arena filled up again and again


def test_udp_batch_sanitized(harness, tmp_path):
    cases = _pcache_cases(50, seed=7)
    corpus = tmp_path / "batch.bin"
    corpus.write_bytes(_pcache_blob(cases))
    (line,) = _run(harness, "batch", str(corpus))
    received, hits, misses = map(int, line.split())
    pc = native.PacketCache(16, 4096)
    for q, a, _q2, now in cases:
        pc.insert(q, a, now)
    now = cases[-1][3] + 1
    expected_hits = sum(1 for *_x, q2, _n in cases if pc.answer(q2, now, 1232) is not None)
    assert received == len(cases) == hits + misses
    assert hits == expected_hits > 0


def _rl_cases(n: int, seed: int = 20261206) -> list[tuple[bytes, int, bytes, int]]:
    """(sockaddr, now_ms, query, outlen): a few /24s and /56s (and an exempt
    and a non-IP sender) at close times, good, mutated and random queries."""
    rng = random.Random(seed)
    good = [dns.message.make_query(f"n{i}.Example.", "A", id=i).to_wire() for i in range(8)]
    hosts = [("127.0.15.%d" % rng.randrange(256)), "127.0.16.9", "10.1.2.3", "2001:db8::1",
             "2001:db8:0:ff::2", "192.0.2.1"]
    cases, now = [], 1000
    for i in range(n):
        now = (now + rng.choice([0, 1, 5, 40, 300, 2**31 + 5])) & 0xFFFFFFFF
        sa = native.sockaddr_bytes((rng.choice(hosts), 53)) if i % 17 else bytes([1, 0]) + bytes(26)
        q = rng.choice(good)
        r = rng.random()
        if r < 0.3:
            q = _mutate(rng, q)
        elif r < 0.4:
            q = bytes(rng.randrange(256) for _ in range(rng.randrange(30)))
        cases.append((sa, now, q, rng.choice([0, 5, 12, len(q), len(q) + 1, 512])))
    return cases


def test_rate_limit_sanitized_agrees(harness, tmp_path):
    cases = _rl_cases(3000)
    corpus = tmp_path / "rl.bin"
    corpus.write_bytes(b"".join(
        struct.pack("<I", len(sa)) + sa + struct.pack("<II", now, len(q)) + q + struct.pack("<I", outlen)
        for sa, now, q, outlen in cases))
    lines = _run(harness, "ratelimit", str(corpus))
    table = bytearray(8 * 17)
    rl = native.RateLimit(table, 16, 50, 3, 2, exempt=[ipaddress.ip_network("10.0.0.0/8")])
    expected = []
    for sa, now, q, outlen in cases:
        v = rl.check(sa, now)
        tc = rl.tc(q)
        rc = (len(tc) if len(tc) <= outlen else native.Code.ENOSPC) if tc else native.Code.EMALF
        expected.append(f"{v} {int(rc)} {tc.hex() if tc and rc > 0 else '-'}")
    assert lines == expected
    assert {line[0] for line in lines} == {"0", "1", "2"}


def test_udp_batch_rate_limit_sanitized(harness, tmp_path):
    cases = _pcache_cases(50, seed=8)
    corpus = tmp_path / "batchrl.bin"
    corpus.write_bytes(_pcache_blob(cases))
    (line,) = _run(harness, "batchrl", str(corpus))
    received, misses, tc, dropped = map(int, line.split())
    assert received == len(cases) and misses == 3  # instant 3, no refill: the rest is limited
    assert tc + dropped == received - 3 and tc > 0 and dropped > 0


# -- kn_reply_rrset ------------------------------------------------------------------

def _replies(n: int, seed: int = 14) -> list[tuple[bytes, bytes, int, int, int]]:
    """(reply, qname, qid, qtype, sigs): plain and signed answers, then mutated and cut."""
    rng = random.Random(seed)
    qname = dns.name.from_text("www.example.")
    base = []
    for qtype, texts in ((1, ["192.0.2.1", "192.0.2.2"]), (28, ["2001:db8::1"])):
        for signed in (False, True):
            q = dns.message.make_query(qname, qtype, use_edns=0)
            q.id = 7
            r = dns.message.make_response(q)
            r.answer.append(dns.rrset.from_text(qname, 300, "IN", qtype, *texts))
            if signed:
                r.answer.append(dns.rrset.from_text(
                    qname, 300, "IN", "RRSIG",
                    f"{dns.rdatatype.to_text(qtype)} 13 2 300 20300101000000 20200101000000 1 example. AAAA"))
            base.append((r.to_wire(), qtype))
    out = []
    for _ in range(n):
        wire, qtype = rng.choice(base)
        w = bytearray(wire)
        for _ in range(rng.randrange(4)):
            if w:
                w[rng.randrange(len(w))] = rng.randrange(256)
        if rng.random() < 0.3:
            w = w[:rng.randrange(len(w) + 1)]
        out.append((bytes(w), qname.to_wire(), 7, qtype, rng.randrange(2)))
    return out


def _expected_reply(r: bytes, qname: bytes, qid: int, qtype: int, sigs: int) -> str:
    ffi, lib = _native.ffi, _native.lib
    out = ffi.new("struct kn_reply *")
    rc = lib.kn_reply_rrset(r, len(r), qid, qname, len(qname), qtype, 5, 86400, sigs, out)
    if rc != 0:
        return str(rc)
    parts = [str(rc), str(out.ttl), str(out.nrd), str(out.nsig)]
    parts += [str(out.rd_off[i]) for i in range(out.nrd)]
    parts += [f"{out.sig_off[i]}/{out.sig_len[i]}/{out.sig_ttl[i]}" for i in range(out.nsig)]
    return " ".join(parts)


def test_reply_rrset_sanitized_agrees(harness, tmp_path):
    cases = _replies(6000)
    corpus = tmp_path / "replies.bin"
    corpus.write_bytes(b"".join(
        struct.pack("<I", len(r)) + r + struct.pack("<I", len(qn)) + qn + struct.pack("<III", qid, qt, sg)
        for r, qn, qid, qt, sg in cases))
    got = _run(harness, "reply", str(corpus))
    assert got == [_expected_reply(*c) for c in cases]
    taken = [line for line in got if line.startswith("0 ")]
    assert taken and any(line.split()[3] != "0" for line in taken)  # signed ones taken too
