"""The cache generation: a counter shared by every process of a cache directory.

Owns: the file `<cache dir>/generation` (8 bytes, a little-endian u64, mapped
read-only by readers) and its increment. `Cache.clear()` bumps it in the
process that clears; every worker compares it before answering from its
per-process packet cache (workers/fastpath.py) and empties that cache when it
changed, so a `cache.clear()` in one fork is honoured by all of them.
Must not: hold anything but the counter, or block readers (a reader is one
aligned 8-byte load; the increment takes an flock so two clears in two
processes never lose one).
"""
from __future__ import annotations

import fcntl
import mmap
import os
import struct

FILE = "generation"
_U64 = struct.Struct("<Q")


class Generation:
    def __init__(self, directory: str):
        self.path = os.path.join(directory, FILE)
        self._fd = -1
        self._map: mmap.mmap | None = None

    def open(self) -> None:
        if self._map is not None:
            return
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        try:
            if os.fstat(fd).st_size < _U64.size:
                with _locked(fd):
                    if os.fstat(fd).st_size < _U64.size:  # a torn or new file starts at 0
                        os.ftruncate(fd, _U64.size)
            self._map = mmap.mmap(fd, _U64.size, mmap.MAP_SHARED, mmap.PROT_READ | mmap.PROT_WRITE)
        except BaseException:
            os.close(fd)
            raise
        self._fd = fd

    def close(self) -> None:
        if self._map is not None:
            self._map.close()
            os.close(self._fd)
        self._map, self._fd = None, -1

    def value(self) -> int:
        m = self._map
        return _U64.unpack_from(m)[0] if m is not None else 0

    def bump(self) -> int:
        """Increment the counter (all processes see it at once); returns the new value."""
        if self._map is None:
            return 0
        with _locked(self._fd):
            v = (_U64.unpack_from(self._map)[0] + 1) & 0xFFFFFFFFFFFFFFFF
            _U64.pack_into(self._map, 0, v)
        return v


class _locked:
    def __init__(self, fd: int):
        self.fd = fd

    def __enter__(self):
        fcntl.flock(self.fd, fcntl.LOCK_EX)

    def __exit__(self, *exc):
        fcntl.flock(self.fd, fcntl.LOCK_UN)
