"""The decoded-RRset memo of the cache facade, the shared read transaction of
Cache.snapshot() and the spacing of the map pressure checks.

The memo must never serve what LMDB no longer holds: a re-stash (same or
other data), an eviction, a clear and a write by another Cache on the same
files (another process) all change or remove the stored bytes, which every
peek reads. What it returns is the caller's own copy with the remaining TTL.
"""
from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import dns.rdatatype as T

from cache import Rank
from cache.decoded import DecodedMemo

from .cache_helpers import n, rrset, rrsig

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
NOW = 1_700_000_000.0


def _stash(c, *rrsets, rank=Rank.AUTH, sigs=None):
    with c.writer() as w:
        for rr in rrsets:
            w.stash_rrset(rr, rank, sigs)


def test_memo_reuses_decoded_rrsets_and_returns_copies(make_cache, clock):
    c = make_cache()
    _stash(c, rrset("example.org.", 3600, "NS", "ns1.example.org.", "ns2.example.org."))
    a = c.peek_rrset(n("example.org."), T.NS)
    assert len(c._decoded) == 1
    clock.advance(10)
    b = c.peek_rrset(n("example.org."), T.NS)
    assert len(c._decoded) == 1
    assert a.rrset is not b.rrset  # each caller owns its RRset ...
    assert list(a.rrset)[0] is list(b.rrset)[0]  # ... sharing the immutable rdatas
    assert (a.ttl, a.rrset.ttl, b.ttl, b.rrset.ttl) == (3600, 3600, 3590, 3590)
    a.rrset.ttl = 1  # a caller changing its copy changes nothing for the next one
    a.rrset.add(list(rrset("x.", 1, "NS", "ns9.example.org."))[0])
    c2 = c.peek_rrset(n("example.org."), T.NS)
    assert c2.rrset.ttl == 3590 and len(c2.rrset) == 2


def test_memo_follows_every_change_of_the_stored_bytes(make_cache, clock):
    c = make_cache()
    name = n("ns1.example.org.")
    _stash(c, rrset("ns1.example.org.", 300, "A", "192.0.2.1"), rank=Rank.TRY)
    assert [rd.address for rd in c.peek_rrset(name, T.A).rrset] == ["192.0.2.1"]
    _stash(c, rrset("ns1.example.org.", 300, "A", "192.0.2.2"))  # new data (and rank)
    hit = c.peek_rrset(name, T.A)
    assert [rd.address for rd in hit.rrset] == ["192.0.2.2"] and hit.rank == Rank.AUTH
    clock.advance(100)
    _stash(c, rrset("ns1.example.org.", 300, "A", "192.0.2.2"))  # same data, new inception
    assert c.peek_rrset(name, T.A).ttl == 300
    c.clear(name)
    assert c.peek_rrset(name, T.A) is None  # cleared: never the memo
    _stash(c, rrset("ns1.example.org.", 5, "A", "192.0.2.3"))
    assert [rd.address for rd in c.peek_rrset(name, T.A).rrset] == ["192.0.2.3"]
    clock.advance(6)
    assert c.peek_rrset(name, T.A) is None  # expired


def _in_another_process(path, code: str) -> None:
    """Run `code` with `c`, a Cache on path, in a separate interpreter (another
    process: LMDB forbids a second environment on one file in a process)."""
    prog = textwrap.dedent(f"""
        import sys
        sys.path.insert(0, {ROOT!r})
        import dns.rrset
        from cache import Cache, Rank
        c = Cache({str(path)!r}, 8 << 20, clock=lambda: {NOW!r})
        c.open()
    """) + textwrap.dedent(code) + "\nc.close()\n"
    subprocess.run([sys.executable, "-c", prog], check=True, timeout=60)


def test_memo_sees_another_processes_writes(make_cache, tmp_path, clock):
    """A stash or clear by another process is what this one returns next, though
    it decoded the old value before (same key: only the bytes tell)."""
    path = tmp_path / "shared"
    clock.now = NOW
    mine = make_cache(path=path)
    name = n("example.org.")
    _stash(mine, rrset("example.org.", 3600, "NS", "ns1.example.org."))
    assert [rd.target.to_text() for rd in mine.peek_rrset(name, T.NS).rrset] == ["ns1.example.org."]
    _in_another_process(path, """
        with c.writer() as w:
            ns2 = dns.rrset.from_text("example.org.", 3600, "IN", "NS", "ns2.example.org.")
            w.stash_rrset(ns2, Rank.AUTH)
    """)
    assert [rd.target.to_text() for rd in mine.peek_rrset(name, T.NS).rrset] == ["ns2.example.org."]
    _in_another_process(path, "c.clear()")
    assert mine.peek_rrset(name, T.NS) is None


def test_memo_keeps_the_asked_case_and_the_rrsigs(make_cache):
    c = make_cache()
    _stash(c, rrset("www.example.org.", 300, "A", "192.0.2.1"), sigs=rrsig("www.example.org.", "A"))
    lower = c.peek_rrset(n("www.example.org."), T.A)
    upper = c.peek_rrset(n("WWW.Example.ORG."), T.A)
    assert lower.rrset.name.labels[0] == b"www" and upper.rrset.name.labels[0] == b"WWW"
    assert upper.rrsigs is not None and upper.rrsigs is not lower.rrsigs
    assert list(upper.rrsigs) == list(lower.rrsigs) and upper.rrsigs.ttl == 300


def test_memo_is_bounded(make_cache, monkeypatch):
    monkeypatch.setattr(DecodedMemo, "MAX", 8)
    c = make_cache()
    for i in range(20):
        _stash(c, rrset(f"h{i}.example.org.", 300, "A", "192.0.2.1"))
        assert c.peek_rrset(n(f"h{i}.example.org."), T.A) is not None
    assert len(c._decoded) == 8
    assert c.peek_rrset(n("h0.example.org."), T.A) is not None  # decoded again


def test_snapshot_shares_one_read_transaction(make_cache, monkeypatch):
    c = make_cache()
    _stash(c, rrset("a.example.org.", 300, "A", "192.0.2.1"))
    begun = []
    real = c._env.begin

    def counting(write=False):
        begun.append(write)
        return real(write)

    monkeypatch.setattr(c._env, "begin", counting)
    with c.snapshot():
        with c.snapshot():  # nested: still the one transaction
            assert c.peek_rrset(n("a.example.org."), T.A) is not None
        assert c.peek_rrset(n("b.example.org."), T.A) is None
        assert c.peek_negative(n("b.example.org."), T.A) is None
    assert begun == [False]
    assert c._snapshot is None
    c.peek_rrset(n("a.example.org."), T.A)  # outside: a transaction of its own
    assert begun == [False, False]


def test_pressure_checked_once_per_share_of_the_map_written(make_cache, monkeypatch):
    c = make_cache(size=8 << 20)  # 1/512 of it: 16 KiB between checks
    calls = []
    real = c.pressure
    monkeypatch.setattr(c, "pressure", lambda: calls.append(1) or real())
    _stash(c, rrset("first.example.org.", 300, "A", "192.0.2.1"))
    assert len(calls) == 1  # the first write looks at once
    for i in range(50):  # ~50 small entries: well below 16 KiB
        _stash(c, rrset(f"s{i}.example.org.", 300, "A", "192.0.2.1"))
    assert len(calls) == 1
    big = rrset("big.example.org.", 300, "TXT", *[f'"{i} ' + "x" * 250 + '"' for i in range(70)])
    _stash(c, big)  # ~18 KiB: past the share, checked again
    _stash(c, rrset("next.example.org.", 300, "A", "192.0.2.1"))
    assert len(calls) == 2
