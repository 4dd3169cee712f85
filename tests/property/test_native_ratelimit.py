"""The rate limit (native/ratelimit.c kn_rl_*) against its pure twin
(native/pure.py RateLimit), its semantics, and its sharing across processes.

1. Hypothesis draws a configuration (table size, rate, instant limit, slip,
   prefix lengths, exempt nets) and a sequence of senders and times: C and
   twin give the same verdicts and leave the same table bytes.
2. kn_rl_tc on random and mutated bytes: the same answers as the twin; the
   TC answer is the query's header (QR, TC set) and question only; inputs
   placed against a PROT_NONE guard page (a read past the end is a crash).
3. The semantics of kresd 6's rate-limiting: instant_limit queries at once,
   then rate_limit per second; one bucket per /24 and /56; exempt subnets;
   slip 0 drops all, 1 answers TC to all, N answers TC to every Nth.
4. Two processes (os.fork) on one MAP_SHARED table: the limit is the total.
5. UdpBatch (C and twin) with a limiter on a real loopback socket: a flood is
   cut with TC answers and drops, another subnet's queries are misses.
"""
from __future__ import annotations

import ctypes
import ipaddress
import mmap
import os
import socket

import dns.flags
import dns.message
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import native
import native.pure as pure

pytestmark = pytest.mark.skipif(native.BACKEND != "c", reason="compares the C extension with its twin")

HOSTS = ["127.0.15.1", "127.0.15.200", "127.0.16.1", "10.9.8.7", "2001:db8::1",
         "2001:db8:0:ff::1", "2001:db8:1::1", "fe80::1"]
NETS = [ipaddress.ip_network(n) for n in ("10.0.0.0/8", "127.0.16.0/24", "2001:db8:1::/48")]


def pair(nbuckets=1024, rate=10, instant=5, slip=2, v4=24, v6=56, exempt=()):
    tc, tp = bytearray(8 * (nbuckets + 1)), bytearray(8 * (nbuckets + 1))
    return (native.RateLimit(tc, nbuckets, rate, instant, slip, v4, v6, exempt), tc,
            pure.RateLimit(tp, nbuckets, rate, instant, slip, v4, v6, exempt), tp)


def sa(host: str, port: int = 5353) -> bytes:
    return native.sockaddr_bytes((host, port))


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(nbits=st.integers(0, 6), rate=st.integers(0, 5000), instant=st.integers(0, 40),
       slip=st.integers(0, 4), v4=st.integers(0, 32), v6=st.integers(0, 128),
       exempt=st.lists(st.sampled_from(NETS), max_size=3),
       steps=st.lists(st.tuples(st.sampled_from(HOSTS), st.integers(0, 2**32 - 1) | st.integers(0, 300)),
                      min_size=1, max_size=80))
def test_c_and_twin_agree(nbits, rate, instant, slip, v4, v6, exempt, steps):
    c, tc, p, tp = pair(1 << nbits, rate, instant, slip, v4, v6, exempt)
    now = 0
    for host, dt in steps:
        now = (now + dt) & 0xFFFFFFFF
        assert c.check(sa(host), now) == p.check(sa(host), now), (host, now)
    assert tc == tp
    assert c.counts() == p.counts()


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=300) | st.builds(
    lambda n, t, m, i, f: _flip(dns.message.make_query(n, t, id=i).to_wire(), m, f),
    st.sampled_from(["a.", "Example.COM.", "x.y.z."]), st.sampled_from(["A", "TXT", "MX"]),
    st.integers(0, 200), st.integers(0, 0xFFFF), st.integers(0, 255)))
def test_tc_answer_agrees_and_is_guarded(wire):
    c, _, p, _ = pair()
    got = c.tc(wire)
    assert got == p.tc(wire)
    assert _guarded_tc(wire) == (len(got) if got else -2)
    if got:
        assert got[2] & 0x82 == 0x82 and got[4:12] == b"\0\1\0\0\0\0\0\0"
        assert got[12:] == wire[12:len(got)] and got[:2] == wire[:2]


def _flip(wire: bytes, at: int, byte: int) -> bytes:
    if at >= len(wire):
        return wire[: at % (len(wire) + 1)]  # a truncation
    return wire[:at] + bytes([byte]) + wire[at + 1:]


_PAGE = mmap.PAGESIZE
_map = mmap.mmap(-1, 2 * _PAGE, prot=mmap.PROT_READ | mmap.PROT_WRITE)
_base = ctypes.addressof(ctypes.c_char.from_buffer(_map))
_libc = ctypes.CDLL(None, use_errno=True)
_libc.mprotect.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
assert _libc.mprotect(_base + _PAGE, _PAGE, 0) == 0


def _guarded_tc(wire: bytes) -> int:
    """kn_rl_tc on wire ending exactly at a guard page."""
    ffi, lib = native._native.ffi, native._native.lib
    off = _PAGE - len(wire)
    _map[off:_PAGE] = wire
    out = ffi.new("uint8_t[]", 4096)
    return lib.kn_rl_tc(ffi.cast("uint8_t *", _base + off), len(wire), out, 4096)


@pytest.mark.parametrize("impl", ["c", "pure"])
def test_burst_then_rate(impl):
    c, _, p, _ = pair(rate=10, instant=5, slip=0)
    rl = c if impl == "c" else p
    t = 10_000
    assert [rl.check(sa("127.0.15.1"), t) for _ in range(7)] == [0] * 5 + [2, 2]
    assert rl.check(sa("127.0.15.99", 1), t) == 2  # the same /24
    assert rl.check(sa("127.0.14.1"), t) == 0  # another /24
    assert rl.check(sa("127.0.15.1"), t + 99) == 2  # 10/s: one more after 100 ms
    assert rl.check(sa("127.0.15.1"), t + 100) == 0
    assert rl.check(sa("127.0.15.1"), t + 100) == 2
    passed = sum(rl.check(sa("127.0.15.7"), t + 100 + ms) == 0 for ms in range(1, 10_001))
    assert passed == 100  # 10 s at 10 per second
    assert [rl.check(sa("127.0.15.1"), t + 60_000) for _ in range(6)] == [0] * 5 + [2]  # refilled


@pytest.mark.parametrize("impl", ["c", "pure"])
def test_v6_prefix_and_exempt(impl):
    c, _, p, _ = pair(rate=0, instant=1, slip=0, v6=56, exempt=[ipaddress.ip_network("2001:db8:1::/48")])
    rl = c if impl == "c" else p
    assert rl.check(sa("2001:db8:0:100::1"), 0) == 0
    assert rl.check(sa("2001:db8:0:1ff::2"), 0) == 2  # the same /56
    assert rl.check(sa("2001:db8:0:200::1"), 0) == 0  # another /56
    assert all(rl.check(sa("2001:db8:1::5"), 0) == 0 for _ in range(20))  # exempt


def test_dry_run_alike():
    tc, tp = bytearray(8 * 17), bytearray(8 * 17)
    c = native.RateLimit(tc, 16, 0, 1, 1, dry_run=True)
    p = pure.RateLimit(tp, 16, 0, 1, 1, dry_run=True)
    for rl in (c, p):
        assert [rl.check(sa("127.0.15.1"), 0) for _ in range(4)] == [0] * 4
        assert rl.counts() == (3, 0, 0)
    assert tc == tp


@pytest.mark.parametrize("slip, expect", [(0, [2] * 6), (1, [1] * 6), (3, [2, 2, 1, 2, 2, 1])])
def test_slip(slip, expect):
    c, _, p, _ = pair(rate=0, instant=1, slip=slip)
    for rl in (c, p):
        assert rl.check(sa("127.0.15.1"), 0) == 0
        assert [rl.check(sa("127.0.15.1"), 0) for _ in range(6)] == expect


def test_bad_arguments_are_refused():
    for cls in (native.RateLimit, pure.RateLimit):
        with pytest.raises(ValueError):
            cls(bytearray(8 * 9), 6, 1, 1, 1)  # not a power of two
        with pytest.raises(ValueError):
            cls(bytearray(8 * 4), 8, 1, 1, 1)  # table too small
        with pytest.raises(ValueError):
            cls(bytearray(8 * 9), 8, 1, native.RL_INSTANT_MAX + 1, 1)
        with pytest.raises(ValueError):
            cls(bytearray(8 * 9), 8, 1, 1, 1, v4_bits=33)


def test_forks_share_one_limit(tmp_path):
    """4 processes, 100 queries each from one /24 at one instant, on one
    MAP_SHARED file: exactly instant_limit pass in total (no refill)."""
    path = tmp_path / "table"
    path.write_bytes(bytes(8 * 1025))
    pids = []
    for k in range(4):
        pid = os.fork()
        if pid == 0:  # pragma: no cover - the child
            code = 1
            try:
                with open(path, "r+b") as f:
                    m = mmap.mmap(f.fileno(), 8 * 1025)
                rl = native.RateLimit(m, 1024, 0, 30, 0)
                passed = sum(rl.check(sa(f"127.0.15.{k}", 1000 + i), 5) == 0 for i in range(100))
                with open(tmp_path / f"passed.{k}", "w") as out:
                    out.write(str(passed))
                code = 0
            finally:
                os._exit(code)
        pids.append(pid)
    for pid in pids:
        assert os.waitpid(pid, 0)[1] == 0
    total = sum(int((tmp_path / f"passed.{k}").read_text()) for k in range(4))
    assert total == 30
    assert int.from_bytes(path.read_bytes()[:8], "little") == 400 - 30  # the shared count


@pytest.mark.parametrize("impl", ["c", "pure"])
def test_udp_batch_cuts_a_flood(impl):
    mod = native if impl == "c" else pure
    srv = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    srv.bind(("127.0.17.2", 0))
    srv.setblocking(False)
    flood = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    flood.bind(("127.0.17.3", 0))
    other = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    other.bind(("127.0.18.3", 0))
    table = bytearray(8 * 1025)
    rl = mod.RateLimit(table, 1024, 0, 4, 2)
    batch = mod.UdpBatch(mod.PacketCache())
    batch.set_limiter(rl)
    try:
        q = dns.message.make_query("flood.example.", "A", id=7)
        q.flags |= dns.flags.CD
        for _ in range(20):
            flood.sendto(q.to_wire(), srv.getsockname())
        for _ in range(3):
            other.sendto(q.to_wire(), srv.getsockname())
        got, misses = 0, []
        while True:
            n, m = batch.run(srv, 0, 1232, True)
            if not n:
                break
            got += n
            misses += m
        assert got == 23
        assert sorted(a[0] for _, a in misses) == ["127.0.17.3"] * 4 + ["127.0.18.3"] * 3
        assert rl.counts() == (16, 8, 8)
        flood.settimeout(1)
        answers = [flood.recv(512) for _ in range(8)]
        for a in answers:
            r = dns.message.from_wire(a)
            assert r.id == 7 and r.flags & dns.flags.TC and r.flags & dns.flags.CD and r.flags & dns.flags.QR
            assert not r.answer and len(r.question) == 1 and r.question[0].name.to_text() == "flood.example."
    finally:
        for s in (srv, flood, other):
            s.close()


@settings(max_examples=200, deadline=None)
@given(raw=st.lists(st.binary(min_size=28, max_size=28), min_size=1, max_size=30),
       fam=st.sampled_from([socket.AF_INET, socket.AF_INET6, 0, 1]), now=st.integers(0, 2**32 - 1))
def test_random_sockaddrs_agree(raw, fam, now):
    c, tc, p, tp = pair(16, 3, 2, 1, 20, 40, NETS)
    for r in raw:
        r = fam.to_bytes(2, "little") + r[2:]
        assert c.check(r, now) == p.check(r, now)
    assert tc == tp


@pytest.mark.parametrize("impl", ["c", "pure"])
def test_udp_batch_limits_packet_cache_hits(impl):
    """The limit comes before the packet cache: a client over its limit gets
    no cached answer (only the TC=1 form every slip-th time)."""
    import dns.rrset

    mod = native if impl == "c" else pure
    srv = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    srv.bind(("127.0.17.4", 0))
    srv.setblocking(False)
    flood = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    flood.bind(("127.0.17.5", 0))
    q = dns.message.make_query("hit.example.", "A", id=9)
    r = dns.message.make_response(q)
    r.answer.append(dns.rrset.from_text("hit.example.", 300, "IN", "A", "192.0.2.1"))
    pc = mod.PacketCache()
    assert pc.insert(q.to_wire(), r.to_wire(), 1000) == 0
    rl = mod.RateLimit(bytearray(8 * 1025), 1024, 0, 4, 2)
    batch = mod.UdpBatch(pc)
    batch.set_limiter(rl)
    try:
        for _ in range(10):
            flood.sendto(q.to_wire(), srv.getsockname())
        n, misses = batch.run(srv, 1001, 1232, True)
        assert n == 10 and not misses
        counts = batch.take()[0]
        assert counts.hits == 4 and rl.counts() == (6, 3, 3)
        flood.settimeout(1)
        replies = [dns.message.from_wire(flood.recv(512)) for _ in range(7)]
        assert sum(1 for x in replies if x.answer and not x.flags & dns.flags.TC) == 4
        assert sum(1 for x in replies if x.flags & dns.flags.TC and not x.answer) == 3
    finally:
        srv.close()
        flood.close()
