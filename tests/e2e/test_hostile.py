"""Hostile input: the daemon survives garbage on UDP and TCP and still answers correctly.

UDP: 3000 datagrams (random bytes, truncated queries, compression loops,
mutated queries), with a valid query after every VALID_EVERY of them. TCP: 300
connections (random framing, lengths longer than the data, connections closed
mid-message, garbage frames between valid queries). Every valid query, on
either transport, must get its answer (same ID and question, NOERROR or
NXDOMAIN), and each phase must get through all its packets or connections
within its time limit.
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

import dns.flags
import dns.message
import dns.rcode
import pytest

from .conftest import HOSTILE_ADDR
from .hierarchy import CASES, check_case, query

pytestmark = [pytest.mark.e2e, pytest.mark.root]

UDP_PACKETS = 3000
TCP_CONNECTIONS = 300
TIME_LIMIT = 60.0  # seconds for each of the UDP and TCP phases
VALID_EVERY = 10  # UDP: one valid query after every VALID_EVERY hostile datagrams
ANSWER_WAIT = 10.0  # seconds the last valid UDP queries may still take
ANSWERED = (dns.rcode.NOERROR, dns.rcode.NXDOMAIN)
QNAMES = [c.qname for c in CASES.values()] + ["a.b.c.d.e.f.glue.test.", "."]


def valid_query(rng: random.Random) -> bytes:
    return valid_message(rng).to_wire()


def valid_message(rng: random.Random) -> dns.message.Message:
    q = dns.message.make_query(rng.choice(QNAMES), rng.choice(["A", "AAAA", "TXT", "NS", "SOA"]),
                               use_edns=rng.choice([None, 0]), payload=rng.choice([512, 1232, 4096]))
    q.id = rng.randrange(65536)
    return q


class Expected:
    """Valid queries sent and the answers that came back for them."""

    def __init__(self):
        self.sent: dict[int, dns.message.Message] = {}  # id -> query (IDs unique among them)
        self.rcodes: dict[int, int] = {}  # id -> rcode of its answer

    def new_query(self, rng: random.Random) -> dns.message.Message:
        q = valid_message(rng)
        while q.id in self.sent:
            q.id = rng.randrange(65536)
        self.sent[q.id] = q
        return q

    def reply(self, wire: bytes) -> None:
        """Record wire if it answers one of our queries (garbage replies are ignored)."""
        try:
            r = dns.message.from_wire(wire)
        except Exception:  # noqa: BLE001 - e.g. a FORMERR without a question
            return
        q = self.sent.get(r.id)
        if q is not None and r.flags & dns.flags.QR and r.question == q.question:
            # a hostile packet may carry the same ID and question (a mutated copy):
            # its FORMERR must not hide the answer the valid query got
            if self.rcodes.get(r.id) not in ANSWERED:
                self.rcodes[r.id] = r.rcode()

    def missing(self) -> list[str]:
        return [f"{q.question[0]} id={i}" for i, q in self.sent.items() if i not in self.rcodes]

    def bad(self) -> list[str]:
        return [f"{self.sent[i].question[0]}: {dns.rcode.to_text(rc)}"
                for i, rc in self.rcodes.items() if rc not in ANSWERED]


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


def drain(sock: socket.socket, expected: Expected) -> int:
    n = 0
    while True:
        try:
            expected.reply(sock.recv(65535))
            n += 1
        except (BlockingIOError, ConnectionRefusedError):
            return n


def read_frames(s: socket.socket, want: set[int], expected: Expected, timeout: float = 5.0) -> None:
    """Read framed replies until every ID in want is answered (or EOF / timeout)."""
    s.settimeout(timeout)
    buf = b""
    while want - expected.rcodes.keys():
        try:
            data = s.recv(65535)
        except (socket.timeout, OSError):
            return
        if not data:
            return
        buf += data
        while len(buf) >= 2 and len(buf) >= 2 + struct.unpack_from(">H", buf)[0]:
            n = struct.unpack_from(">H", buf)[0]
            expected.reply(buf[2:2 + n])
            buf = buf[2 + n:]


def tcp_session(rng: random.Random, i: int, expected: Expected) -> None:
    """One hostile TCP connection; never blocks for more than ~5 s."""
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
        elif kind == 5:  # valid queries with a garbage frame between them: both answered
            q1, q2 = expected.new_query(rng), expected.new_query(rng)
            junk = os.urandom(rng.randrange(1, 200))
            s.sendall(b"".join(struct.pack(">H", len(w)) + w for w in (q1.to_wire(), junk, q2.to_wire())))
            read_frames(s, {q1.id, q2.id}, expected)
        else:            # connect and close at once (RST: SO_LINGER 0)
            s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))


def test_survives_hostile_packets(hierarchy, start_resolver):
    seed = int.from_bytes(os.urandom(4), "big")
    print(f"hostile input seed: {seed}")
    rng = random.Random(seed)
    res = start_resolver(HOSTILE_ADDR)

    # --- UDP
    udp, tcp = Expected(), Expected()
    replies = 0
    deadline = time.monotonic() + TIME_LIMIT
    sent = 0
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.setblocking(False)
        for i in range(UDP_PACKETS):
            if time.monotonic() > deadline:
                break
            payloads = [udp_payload(rng, i)]
            if i % VALID_EVERY == VALID_EVERY - 1:
                payloads.append(udp.new_query(rng).to_wire())
            for p in payloads:
                try:
                    s.sendto(p, (HOSTILE_ADDR, 53))
                except (BlockingIOError, ConnectionRefusedError):
                    pass
            sent += 1
            if i % 50 == 49:  # let the daemon keep up
                time.sleep(0.005)
                replies += drain(s, udp)
        end = time.monotonic() + ANSWER_WAIT
        while udp.missing() and time.monotonic() < end:
            time.sleep(0.05)
            replies += drain(s, udp)
    print(f"udp: {sent} datagrams sent, {replies} replies, "
          f"{len(udp.rcodes)} of {len(udp.sent)} valid queries answered")
    assert res.alive(), "kresd died on hostile UDP input\n" + res.log_tail()
    assert sent == UDP_PACKETS, f"UDP phase cut short by its time limit: {sent} of {UDP_PACKETS} sent"
    assert len(udp.sent) == UDP_PACKETS // VALID_EVERY
    assert not udp.missing(), f"valid UDP queries without an answer: {udp.missing()[:5]}"
    assert not udp.bad(), f"valid UDP queries answered with an error: {udp.bad()[:5]}"

    # --- TCP
    deadline = time.monotonic() + TIME_LIMIT
    refused = done = 0
    for i in range(TCP_CONNECTIONS):
        if time.monotonic() > deadline:
            break
        try:
            tcp_session(rng, i, tcp)
        except OSError as e:
            refused += 1
            print(f"tcp connection {i} (kind {i % 7}): {e!r}")
        done += 1
    print(f"tcp: {done} connections, {refused} failed, "
          f"{len(tcp.rcodes)} of {len(tcp.sent)} valid queries answered")
    assert res.alive(), "kresd died on hostile TCP input\n" + res.log_tail()
    assert done == TCP_CONNECTIONS, f"TCP phase cut short by its time limit: {done} of {TCP_CONNECTIONS}"
    assert refused == 0, f"{refused} TCP connections failed"
    assert len(tcp.sent) == 2 * len(range(5, TCP_CONNECTIONS, 7))
    assert not tcp.missing(), f"valid TCP queries without an answer: {tcp.missing()[:5]}"
    assert not tcp.bad(), f"valid TCP queries answered with an error: {tcp.bad()[:5]}"

    # --- still a working resolver, on both transports
    for tcp in (False, True):
        for name in ("glue", "cname", "nxdomain"):
            case = CASES[name]
            check_case(query(HOSTILE_ADDR, case.qname, case.qtype, tcp=tcp, timeout=5), case)
    assert res.alive()
