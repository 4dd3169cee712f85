"""Hostile input: the daemon survives garbage on UDP and TCP and still answers correctly.

UDP: 3000 datagrams (random bytes, truncated queries, compression loops,
mutated queries). TCP: 300 connections (random framing, lengths longer than
the data, connections closed mid-message, garbage after valid queries).
Every loop is bounded in count and time; all traffic goes to 127.0.10.12.
The random generator is seeded, and the seed is printed, so a failure can be
replayed.
"""
from __future__ import annotations

import os
import random
import socket
import struct
import time

import dns.message
import pytest

from .conftest import HOSTILE_ADDR
from .hierarchy import CASES, check_case, query

pytestmark = [pytest.mark.e2e, pytest.mark.root]

UDP_PACKETS = 3000
TCP_CONNECTIONS = 300
TIME_LIMIT = 60.0  # seconds for each of the UDP and TCP phases
QNAMES = [c.qname for c in CASES.values()] + ["a.b.c.d.e.f.glue.test.", "."]


def valid_query(rng: random.Random) -> bytes:
    q = dns.message.make_query(rng.choice(QNAMES), rng.choice(["A", "AAAA", "TXT", "NS", "SOA"]),
                               use_edns=rng.choice([None, 0]), payload=rng.choice([512, 1232, 4096]))
    q.id = rng.randrange(65536)
    return q.to_wire()


def header(rng: random.Random, qd=1, an=0, ns=0, ar=0, flags=0x0100) -> bytes:
    return struct.pack(">HHHHHH", rng.randrange(65536), flags, qd, an, ns, ar)


def compression_loop(rng: random.Random) -> bytes:
    """Names whose compression pointers loop, point forward, or point out of the packet."""
    kind = rng.randrange(6)
    if kind == 0:   # qname is a pointer to itself
        return header(rng) + b"\xc0\x0c" + b"\x00\x01\x00\x01"
    if kind == 1:   # two labels then a pointer back to the first label
        return header(rng) + b"\x01a\x01b\xc0\x0c" + b"\x00\x01\x00\x01"
    if kind == 2:   # two pointers pointing at each other
        return header(rng) + b"\xc0\x0e\xc0\x0c" + b"\x00\x01\x00\x01"
    if kind == 3:   # pointer beyond the end of the packet
        return header(rng) + b"\xff\xff" + b"\x00\x01\x00\x01"
    if kind == 4:   # valid question (no EDNS), then an answer RR whose owner points at itself
        q = dns.message.make_query(rng.choice(QNAMES), "A").to_wire()
        q = q[:6] + b"\x00\x01" + q[8:]        # ANCOUNT = 1
        return q + struct.pack(">H", 0xC000 | len(q)) + b"\x00\x01\x00\x01\x00\x00\x00\x3c" \
            + b"\x00\x04\x7f\x00\x00\x01"
    # a cycle of 40 pointers, each pointing at the one before it
    n = 40
    ptrs = b"".join(struct.pack(">H", 0xC000 | (12 + 2 * ((i - 1) % n))) for i in range(n))
    return header(rng) + ptrs + b"\x00\x01\x00\x01"


def mutated_query(rng: random.Random) -> bytes:
    q = bytearray(valid_query(rng))
    for _ in range(rng.randrange(1, 6)):
        i = rng.randrange(len(q))
        q[i] = rng.randrange(256)
    if rng.random() < 0.3:  # absurd section counts
        q[4:12] = bytes(rng.randrange(256) for _ in range(8))
    return bytes(q)


def udp_payload(rng: random.Random, i: int) -> bytes:
    kind = i % 4
    if kind == 0:
        return os.urandom(rng.randrange(0, 600)) if rng.random() < 0.5 else \
            bytes(rng.randrange(256) for _ in range(rng.randrange(0, 64)))
    if kind == 1:
        q = valid_query(rng)
        return q[:rng.randrange(0, len(q))]  # truncated anywhere, header included
    if kind == 2:
        return compression_loop(rng)
    return mutated_query(rng)


def drain(sock: socket.socket) -> int:
    n = 0
    while True:
        try:
            sock.recv(65535)
            n += 1
        except (BlockingIOError, ConnectionRefusedError):
            return n


def tcp_session(rng: random.Random, i: int) -> None:
    """One hostile TCP connection; never blocks for more than ~1 s."""
    kind = i % 7
    with socket.create_connection((HOSTILE_ADDR, 53), timeout=1.0) as s:
        if kind == 0:    # random bytes, random framing
            s.sendall(os.urandom(rng.randrange(1, 300)))
        elif kind == 1:  # length larger than what follows, then close mid-message
            data = valid_query(rng)
            s.sendall(struct.pack(">H", len(data) + rng.randrange(1, 500)) + data)
        elif kind == 2:  # half a length prefix
            s.sendall(b"\x00")
        elif kind == 3:  # a valid query cut in the middle
            data = valid_query(rng)
            framed = struct.pack(">H", len(data)) + data
            s.sendall(framed[:rng.randrange(2, len(framed))])
        elif kind == 4:  # zero-length message, then a compression loop
            loop = compression_loop(rng)
            s.sendall(b"\x00\x00" + struct.pack(">H", len(loop)) + loop)
        elif kind == 5:  # a valid query, garbage frames after it, read a little
            data = valid_query(rng)
            junk = os.urandom(rng.randrange(1, 200))
            s.sendall(struct.pack(">H", len(data)) + data + struct.pack(">H", len(junk)) + junk)
            s.settimeout(0.2)
            try:
                s.recv(65535)
            except (socket.timeout, OSError):
                pass
        else:            # connect and close at once (RST: SO_LINGER 0)
            s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))


def test_survives_hostile_packets(hierarchy, start_resolver):
    seed = int.from_bytes(os.urandom(4), "big")
    print(f"hostile input seed: {seed}")
    rng = random.Random(seed)
    res = start_resolver(HOSTILE_ADDR)

    # --- UDP
    replies = 0
    deadline = time.monotonic() + TIME_LIMIT
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.setblocking(False)
        for i in range(UDP_PACKETS):
            if time.monotonic() > deadline:
                break
            try:
                s.sendto(udp_payload(rng, i), (HOSTILE_ADDR, 53))
            except (BlockingIOError, ConnectionRefusedError):
                pass
            if i % 50 == 49:  # let the daemon keep up; loopback drops are fine
                time.sleep(0.005)
                replies += drain(s)
        time.sleep(0.2)
        replies += drain(s)
    print(f"udp: {i + 1} datagrams sent, {replies} replies")
    assert res.alive(), "kresd died on hostile UDP input\n" + res.log_tail()

    # --- TCP
    deadline = time.monotonic() + TIME_LIMIT
    refused = 0
    for i in range(TCP_CONNECTIONS):
        if time.monotonic() > deadline:
            break
        try:
            tcp_session(rng, i)
        except OSError:
            refused += 1
    print(f"tcp: {i + 1} connections, {refused} failed")
    assert res.alive(), "kresd died on hostile TCP input\n" + res.log_tail()

    # --- still a working resolver, on both transports
    for tcp in (False, True):
        for name in ("glue", "cname", "nxdomain"):
            case = CASES[name]
            check_case(query(HOSTILE_ADDR, case.qname, case.qtype, tcp=tcp, timeout=5), case)
    assert res.alive()
