"""Hostile-packet corpus for the native parser tests (not a test module).

Owns: EVIL, a list of (label, wire, expected Code or None for OK) built by
hand to hit every bounds check of native/pkt.c, and mass_mutations(), a
seeded, deterministic generator of many mutated/random packets.
Must not: import native (the ASan test runs these through a separate build).
"""
from __future__ import annotations

import random
import struct

OK, EMALF, ENOQ, EQDCOUNT, ETRAIL, EBADOPT, ESHORT = None, -2, -3, -4, -5, -6, -1


def hdr(qd=1, an=0, ns=0, ar=0, qid=0x1234, flags=0x0100):
    return struct.pack("!6H", qid, flags, qd, an, ns, ar)


Q = b"\x03www\x07example\x03com\x00" + struct.pack("!HH", 1, 1)  # at offset 12
OPT = b"\x00" + struct.pack("!HHIH", 41, 1232, 0x8000, 0)


def rr(owner, rtype=1, rdata=b"\x01\x02\x03\x04"):
    return owner + struct.pack("!HHIH", rtype, 1, 300, len(rdata)) + rdata


def chain(hops):
    """Question whose name is a chain of `hops` pointers, each strictly backwards.

    Records in the answer section: the first has owner "\x01a\x00", then each
    next owner is a pointer to the previous pointer; the question can not point
    forward, so the chain lives in the answer section of a packet whose
    question is plain.
    """
    body = hdr(an=hops + 1) + Q
    first = len(body)
    body += rr(b"\x01a\x00")
    prev = first
    for _ in range(hops):
        here = len(body)
        body += rr(struct.pack("!H", 0xC000 | prev))
        prev = here
    return body


def name_of(total):
    """Wire name of exactly `total` bytes (labels of up to 63)."""
    labels, left = [], total - 1
    while left > 0:
        n = min(63, left - 1)
        labels.append(b"\x3f"[:0] + bytes([n]) + b"x" * n)
        left -= n + 1
    return b"".join(labels) + b"\x00"


EVIL = [
    ("empty", b"", ESHORT),
    ("11 bytes", bytes(11), ESHORT),
    ("header only qd=0", hdr(qd=0), ENOQ),
    ("qd=0 with garbage", hdr(qd=0) + b"\xff" * 20, ENOQ),
    ("qd=2", hdr(qd=2) + Q + Q, EQDCOUNT),
    ("qd=65535", hdr(qd=0xFFFF), EQDCOUNT),
    ("plain", hdr() + Q, OK),
    ("question cut in name", hdr() + Q[:5], EMALF),
    ("question cut in type", hdr() + Q[:-3], EMALF),
    ("no question bytes", hdr(), EMALF),
    ("self pointer in question", hdr() + b"\xc0\x0c" + Q[-4:], EMALF),
    ("forward pointer in question", hdr() + b"\xc0\x0e\x00" + Q[-4:], EMALF),
    ("pointer to offset 0 (root via header)", hdr(qid=0x0000) + b"\xc0\x00" + Q[-4:], OK),
    ("label then self loop", hdr() + b"\x01a\xc0\x0c" + Q[-4:], EMALF),
    ("half pointer at end", hdr() + b"\xc0", EMALF),
    ("label type 0x40", hdr() + b"\x41" + b"a" * 65 + b"\x00" + Q[-4:], EMALF),
    ("label type 0x80", hdr() + b"\x80\x00" + Q[-4:], EMALF),
    ("label runs past end", hdr() + b"\x3fabc", EMALF),
    ("name 255 bytes", hdr() + name_of(255) + Q[-4:], OK),
    ("name 256 bytes", hdr() + name_of(256) + Q[-4:], EMALF),
    ("ancount 65535, no records", hdr(an=0xFFFF) + Q, EMALF),
    ("arcount 65535, one OPT", hdr(ar=0xFFFF) + Q + OPT, EMALF),
    ("nscount 1, rdlength past end", hdr(ns=1) + Q + b"\x00" + struct.pack("!HHIH", 1, 1, 0, 100), EMALF),
    ("record cut in fixed part", hdr(an=1) + Q + b"\x00\x00\x01\x00", EMALF),
    ("answer owner -> qname", hdr(an=1) + Q + rr(b"\xc0\x0c"), OK),
    ("answer owner self pointer", hdr(an=1) + Q + rr(b"\xc0\x21"), EMALF),
    ("answer owner forward pointer", hdr(an=1) + Q + rr(b"\xc0\x30"), EMALF),
    ("answer owner 2-cycle", hdr(an=2) + Q + rr(b"\xc0\x31") + rr(b"\xc0\x21"), EMALF),
    ("16 hops", chain(16), OK),
    ("17 hops", chain(17), EMALF),
    ("trailing byte", hdr() + Q + b"\x00", ETRAIL),
    ("OPT", hdr(ar=1) + Q + OPT, OK),
    ("OPT cut", hdr(ar=1) + Q + OPT[:-1], EMALF),
    ("OPT twice", hdr(ar=2) + Q + OPT + OPT, EBADOPT),
    ("OPT in answer", hdr(an=1) + Q + OPT, EBADOPT),
    ("OPT owner not root", hdr(ar=1) + Q + b"\xc0\x0c" + OPT[1:], EBADOPT),
    ("OPT option cut", hdr(ar=1) + Q + b"\x00" + struct.pack("!HHIH", 41, 512, 0, 3) + b"\x00\x0a\x00", EBADOPT),
    ("OPT option too long", hdr(ar=1) + Q + b"\x00" + struct.pack("!HHIHHH", 41, 512, 0, 6, 10, 9) + b"ab", EBADOPT),
    ("OPT cookie", hdr(ar=1) + Q + b"\x00" + struct.pack("!HHIHHH", 41, 512, 0, 12, 10, 8) + b"c" * 8, OK),
    ("too long message", hdr(ar=1) + Q + b"\x00" + struct.pack("!HHIH", 41, 512, 0, 0xFFFF) + bytes(0xFFFF), EMALF),
]


def _mutate(rng: random.Random, wire: bytes) -> bytes:
    w = bytearray(wire)
    for _ in range(rng.randint(1, 4)):
        if not w:
            return bytes(rng.getrandbits(8) for _ in range(rng.randint(0, 40)))
        i = rng.randrange(len(w))
        op = rng.randrange(7)
        if op == 0:
            w[i] ^= 1 << rng.randrange(8)
        elif op == 1:
            w[i] = rng.choice((0, 1, 0x3F, 0x40, 0x80, 0xC0, 0xFF, 0x29))
        elif op == 2:
            del w[i:]
        elif op == 3:
            w[i:i] = bytes(rng.getrandbits(8) for _ in range(rng.randint(1, 6)))
        elif op == 4:
            w[i : i + 2] = bytes((0xC0 | rng.randrange(4), rng.randrange(256)))
        elif op == 5 and len(w) >= 12:
            j = 4 + 2 * rng.randrange(4)
            w[j : j + 2] = struct.pack("!H", rng.choice((0, 1, 2, 3, 0xFFFF)))
        else:
            w[i:i] = w[rng.randrange(len(w)) :][: rng.randint(1, 12)]  # duplicate a piece
    return bytes(w)


def mass_mutations(n: int, seed: int = 20240601) -> list[bytes]:
    """n deterministic packets: mutated EVIL/seed packets plus pure noise."""
    rng = random.Random(seed)
    seeds = [w for _, w, _ in EVIL if len(w) < 2000]
    out = []
    for _ in range(n):
        if rng.random() < 0.1:
            out.append(bytes(rng.getrandbits(8) for _ in range(rng.randint(0, 64))))
        else:
            out.append(_mutate(rng, rng.choice(seeds)))
    return out
