"""cache/entry.py: pack/unpack round trips and defensive unpacking."""
from __future__ import annotations

import random

import dns.rdatatype
import pytest
from .cache_helpers import n, rrset, rrsig, soa

from cache import entry
from cache.entry import HEADER, EntryError


def test_rrset_roundtrip_with_header():
    rs = rrset("www.example.org.", 300, "A", "192.0.2.1", "192.0.2.2")
    v = entry.pack_rrset(rs, None, inception=1000, ttl=300, rank=16)
    hdr, out, sigs = entry.unpack_rrset(v, n("www.example.org."), 42)
    assert (hdr.inception, hdr.ttl, hdr.rank, hdr.flags, hdr.rtype) == (1000, 300, 16, 0, 1)
    assert out == rs and out.ttl == 42 and sigs is None


def test_rrset_with_rrsigs_and_names_in_rdata():
    rs = rrset("example.org.", 300, "MX", "10 mail.example.org.", "20 Mail2.Example.NET.")
    sig = rrsig("example.org.", "MX")
    v = entry.pack_rrset(rs, sig, inception=5, ttl=300, rank=48)
    hdr, out, sigs = entry.unpack_rrset(v, n("example.org."))
    assert hdr.flags & entry.FLAG_RRSIGS
    assert out == rs and sigs == sig
    assert sigs.covers == dns.rdatatype.MX


def test_negative_roundtrip():
    auth = [rrset("a.example.org.", 300, "NSEC", "c.example.org. A RRSIG NSEC"),
            rrsig("a.example.org.", "NSEC")]
    v = entry.pack_negative(0, soa(), auth, inception=7, ttl=300, rank=16)
    hdr, s, a = entry.unpack_negative(v, 11)
    assert hdr.negative and hdr.rtype == 0
    assert s == soa() and s.ttl == 11
    assert a == auth and all(r.ttl == 11 for r in a)


def test_kind_mismatch_is_error():
    pos = entry.pack_rrset(rrset("a.", 1, "A", "192.0.2.1"), None, inception=0, ttl=1, rank=0)
    neg = entry.pack_negative(1, soa(), [], inception=0, ttl=1, rank=0)
    with pytest.raises(EntryError):
        entry.unpack_negative(pos)
    with pytest.raises(EntryError):
        entry.unpack_rrset(neg, n("a."))


def test_pack_rejects_non_in_and_non_soa():
    with pytest.raises(EntryError):
        entry.pack_rrset(dns.rrset.from_text("a.", 1, "CH", "TXT", "x"), None,
                         inception=0, ttl=1, rank=0)
    with pytest.raises(EntryError):
        entry.pack_negative(1, rrset("a.", 1, "A", "192.0.2.1"), [], inception=0, ttl=1, rank=0)


def test_remaining_counts_down_and_never_exceeds_ttl():
    hdr = entry.unpack_header(HEADER.pack(1000, 60, 0, 0, 1))
    assert hdr.remaining(1000) == 60
    assert hdr.remaining(1059.9) == 1
    assert hdr.remaining(1060) == 0
    assert hdr.remaining(900) == 60  # clock went backwards


@pytest.mark.parametrize("cut", range(0, 40))
def test_truncated_values_are_entry_errors(cut):
    rs = rrset("www.example.org.", 300, "TXT", "hello world", "second")
    v = entry.pack_rrset(rs, rrsig("www.example.org.", "TXT"), inception=1, ttl=2, rank=3)
    neg = entry.pack_negative(16, soa(), [rrset("x.example.org.", 3, "NSEC", "y.example.org. A")],
                              inception=1, ttl=2, rank=3)
    for value in (v, neg):
        with pytest.raises(EntryError):
            entry.unpack_rrset(value[: len(value) * cut // 40], n("www.example.org."))
        with pytest.raises(EntryError):
            entry.unpack_negative(value[: len(value) * cut // 40])


def test_trailing_bytes_and_unknown_flags_rejected():
    v = entry.pack_rrset(rrset("a.", 1, "A", "192.0.2.1"), None, inception=0, ttl=1, rank=0)
    with pytest.raises(EntryError):
        entry.unpack_rrset(v + b"\x00", n("a."))
    bad = bytearray(v)
    bad[9] = 0x80
    with pytest.raises(EntryError):
        entry.unpack_rrset(bytes(bad), n("a."))


def test_random_corruption_never_raises_anything_else():
    rng = random.Random(1234)
    rs = rrset("www.example.org.", 300, "MX", "10 mail.example.org.")
    values = [
        entry.pack_rrset(rs, rrsig("www.example.org.", "MX"), inception=1, ttl=2, rank=3),
        entry.pack_negative(1, soa(), [rrset("a.example.org.", 3, "NSEC", "b.example.org. A")],
                            inception=1, ttl=2, rank=3),
    ]
    for _ in range(3000):
        v = bytearray(rng.choice(values))
        for _ in range(rng.randint(1, 4)):
            v[rng.randrange(len(v))] = rng.randrange(256)
        for fn in (lambda b: entry.unpack_rrset(b, n("x.")), entry.unpack_negative):
            try:
                fn(bytes(v))
            except EntryError:
                pass
