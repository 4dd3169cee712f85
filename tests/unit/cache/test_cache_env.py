"""cache/env.py: format version, layout, fork safety."""
from __future__ import annotations

import os
import struct

import dns.rdatatype as T
import lmdb
from .cache_helpers import n, rrset

from cache import Cache, CacheError, Rank
from cache.keys import FORMAT_VERSION


def _stash_one(c: Cache) -> None:
    with c.writer() as w:
        w.stash_rrset(rrset("a.example.", 300, "A", "192.0.2.1"), Rank.AUTH)


def _set_version(path: str, value: bytes | None) -> None:
    env = lmdb.open(path, max_dbs=4, subdir=True)
    meta = env.open_db(b"meta")
    with env.begin(write=True) as txn:
        if value is None:
            txn.delete(b"version", db=meta)
        else:
            txn.put(b"version", value, db=meta)
    env.close()


def test_version_written_at_open(make_cache, tmp_path):
    c = make_cache()
    assert c._env.stored_version() == FORMAT_VERSION
    assert sorted(os.listdir(tmp_path / "cache")) == ["data.mdb", "generation", "lock.mdb"]


def test_same_version_keeps_entries(make_cache, tmp_path):
    c = make_cache()
    _stash_one(c)
    c.close()
    c.open()
    assert not c._env.cleared_at_open and c.count() == 1


def test_version_mismatch_clears(make_cache, tmp_path):
    c = make_cache()
    _stash_one(c)
    c.close()
    _set_version(str(tmp_path / "cache"), struct.pack("!I", FORMAT_VERSION + 1))
    c.open()
    assert c._env.cleared_at_open
    assert c.count() == 0 and c._env.stored_version() == FORMAT_VERSION
    assert c.peek_rrset(n("a.example."), T.A) is None


def test_missing_version_with_entries_clears(make_cache, tmp_path):
    c = make_cache()
    _stash_one(c)
    c.close()
    _set_version(str(tmp_path / "cache"), None)
    c.open()
    assert c._env.cleared_at_open and c.count() == 0


def test_env_inherited_through_fork_is_not_usable_in_child(make_cache, tmp_path):
    c = make_cache()
    _stash_one(c)
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # child: the inherited env must be refused, a reopen must work
        code = 1
        try:
            try:
                c.count()
            except CacheError:
                c.open()
                hit = c.peek_rrset(n("a.example."), T.A)
                code = 0 if hit is not None and hit.rrset[0].address == "192.0.2.1" else 2
        finally:
            os.write(w, bytes([code]))
            os._exit(0)
    os.close(w)
    assert os.read(r, 1) == b"\x00"
    os.close(r)
    os.waitpid(pid, 0)
    assert c.count() == 1  # the parent's env still works
