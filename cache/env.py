"""LMDB environment of the shared cache: open, format version, reopen, fork safety.

Owns: the single `lmdb.Environment` of a process for `<dir>/data.mdb`, its
open flags, the named databases, the format-version check, the stale-reader
check, map-resize adoption and the "never use an env inherited through fork"
rule.
Must not: know the key or value formats beyond FORMAT_VERSION (cache/keys.py
and cache/entry.py own those), evict, or be opened at import time.

Layout of data.mdb (CACHE_KEY_DEF: native code reading the same file depends
on it):
  named DB b"cache"  one record per cache entry: key from cache/keys.py, value
                     from cache/entry.py. Nothing else lives here, so
                     `count()` is the DB's entry count and clearing is a drop.
  named DB b"meta"   b"version" -> u32 big endian FORMAT_VERSION.

Open flags and why:
  subdir=True, lock=True      several processes (kresd -f N, two groups on one
                              rundir) share the file; LMDB's lock.mdb
                              serialises writers and tracks readers.
  sync=False, metasync=False  no fsync per commit. LMDB is copy-on-write and
                              only flips the meta page after the new pages are
                              written, so a `kill -9` of a process at any point
                              leaves the last committed state intact: the data
                              is in the OS page cache, which survives the
                              process. Only an OS crash/power loss may lose the
                              latest commits (or, on file systems that reorder
                              writes, need a clear); for a cache that is the
                              right trade (kresd uses MDB_NOSYNC as well).
  writemap=False              writes go through write(2), never through a
                              writable mapping, so a stray write can not
                              scribble on the map.
  readahead=False             random access pattern; do not pollute the page
                              cache.
  meminit=False               do not zero malloc'd pages (speed).
  max_readers=512             one slot per concurrent read txn of all processes.
A stale-reader check (`reader_check()`) runs at open and before eviction, so
slots of killed processes do not pin old pages forever. The writer mutex in
lock.mdb is a robust mutex on Linux, so a writer killed mid-transaction does
not deadlock the others.
"""
from __future__ import annotations

import os
import struct
import weakref

import lmdb

from cache.errors import CacheError
from cache.keys import FORMAT_VERSION

DB_CACHE = b"cache"
DB_META = b"meta"
META_VERSION = b"version"
_VERSION = struct.Struct("!I")


# Environments inherited through fork() are unusable (LMDB: never use an env
# after fork). The child closes its copy right after fork so it can open the
# file again (py-lmdb refuses a second env on the same file in one process).
# That is harmless to the parent: mdb_env_close() only unmaps the child's
# copies and clears reader slots of the child's own pid. It assumes no
# transaction is alive across the fork (ours never outlive one call; do not
# fork from another thread in the middle of a cache call).
_open_envs: weakref.WeakSet[CacheEnv] = weakref.WeakSet()


def _after_fork_in_child() -> None:
    for cenv in list(_open_envs):
        cenv._forget_after_fork()


os.register_at_fork(after_in_child=_after_fork_in_child)


class CacheEnv:
    """One process's handle on `<path>/data.mdb`."""

    def __init__(self, path: str, size: int):
        self.path = path
        self.size = int(size)
        self.env: lmdb.Environment | None = None
        self.db: lmdb._Database | None = None  # type: ignore[name-defined]
        self.meta: lmdb._Database | None = None  # type: ignore[name-defined]
        self.pid: int | None = None
        self.cleared_at_open = False
        self._psize: int | None = None

    # -- lifecycle --------------------------------------------------------
    def open(self) -> None:
        """Open (creating the dir if needed), reap stale readers, check version."""
        if self.env is not None:
            return
        try:
            os.makedirs(self.path, exist_ok=True)
            env = lmdb.open(
                self.path,
                map_size=self.size,
                subdir=True,
                max_dbs=4,
                max_readers=512,
                lock=True,
                readahead=False,
                meminit=False,
                writemap=False,
                sync=False,
                metasync=False,
                map_async=False,
            )
        except (OSError, lmdb.Error) as exc:
            raise CacheError(f"cannot open cache in {self.path}: {exc}") from exc
        self.env = env
        self.pid = os.getpid()
        _open_envs.add(self)
        try:
            env.reader_check()
            self.db = env.open_db(DB_CACHE, create=True)
            self.meta = env.open_db(DB_META, create=True)
            self.cleared_at_open = self._check_version()
        except BaseException:
            self.close()
            raise

    def close(self) -> None:
        env, self.env = self.env, None
        self.db = self.meta = None
        _open_envs.discard(self)
        if env is not None:
            env.close()

    def _forget_after_fork(self) -> None:
        env, self.env = self.env, None
        self.db = self.meta = None
        if env is not None:
            try:
                env.close()
            except lmdb.Error:
                pass

    @property
    def is_open(self) -> bool:
        return self.env is not None

    def require(self) -> lmdb.Environment:
        env = self.env
        if env is None:
            raise CacheError("cache is not open (or was inherited through fork; open it again)")
        return env

    # -- format version ---------------------------------------------------
    def _check_version(self) -> bool:
        """Clear the entries unless meta says FORMAT_VERSION. True if cleared."""
        env = self.require()
        want = _VERSION.pack(FORMAT_VERSION)
        with env.begin(write=True) as txn:
            have = txn.get(META_VERSION, db=self.meta)
            if have == want:
                return False
            cleared = False
            if have is not None or txn.stat(self.db)["entries"]:
                txn.drop(self.db, delete=False)
                cleared = True
            txn.put(META_VERSION, want, db=self.meta)
        return cleared

    def stored_version(self) -> int | None:
        with self.begin() as txn:
            have = txn.get(META_VERSION, db=self.meta)
        if have is None or len(have) != _VERSION.size:
            return None
        return _VERSION.unpack(have)[0]

    # -- transactions -----------------------------------------------------
    def begin(self, write: bool = False) -> lmdb.Transaction:
        """A transaction on the entry DB; adopts a map grown by another process."""
        env = self.require()
        try:
            return env.begin(db=self.db, write=write)
        except lmdb.MapResizedError:
            env.set_mapsize(0)  # 0: adopt the size another process set
            return env.begin(db=self.db, write=write)

    def reader_check(self) -> int:
        return self.require().reader_check()

    def pinned_by_readers(self) -> bool:
        """True if a read transaction of another live process still holds a
        snapshot older than the last commit. Pages freed since that snapshot
        can not be reused until it ends (copy-on-write), so a full map may be
        full of pinned pages rather than of entries."""
        env = self.require()
        env.reader_check()  # slots of dead processes pin nothing
        last = env.info()["last_txnid"]
        me = os.getpid()
        for line in env.readers().splitlines()[1:]:  # "pid thread txnid" ("-": idle)
            parts = line.split()
            if (len(parts) == 3 and parts[0].isdigit() and parts[2].isdigit()
                    and int(parts[0]) != me and int(parts[2]) < last):
                return True
        return False

    def page_size(self) -> int:
        if self._psize is None:
            self._psize = self.require().stat()["psize"]
        return self._psize

    def usage(self) -> dict[str, int]:
        """Map size and bytes in use (high-water mark of the data file)."""
        env = self.require()
        info = env.info()
        psize = env.stat()["psize"]
        return {
            "map_size": info["map_size"],
            "usage_bytes": (info["last_pgno"] + 1) * psize,
            "page_size": psize,
            "max_key_size": env.max_key_size(),
        }
