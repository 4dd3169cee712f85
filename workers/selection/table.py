"""The per-IP table of upstream state, shared by all forks and restarts.

Owns: a fixed-size table of `RttState` records keyed by upstream address
(IP + port), in a buffer that is either process-local (a bytearray) or the
mmap of a file next to the cache (`<cache dir>/upstreams.tbl`), so every
fork of a rundir and every later kresd on it reads and writes the same state
(kresd keeps its rtt_state in the cache LMDB. Measured here in Python: a
find+put in this table costs ~6 us, an uncontended LMDB get+put in its own
no-sync write transaction ~4.4 us; the table is used anyway because its
writes take no lock, where LMDB's single writer mutex is shared with every
fork's cache stash, and because it cannot be filled up, cleared or
garbage-collected with the cache.)

Layout (little endian): a 64-byte header (magic, slot count, slot size) and
SLOTS records of SLOT bytes:
  seq u32      seqlock: odd while a writer is in the record
  crc u32      CRC-32 of the rest of the record
  key 20s      family u8 (4/6; 0 = unnamed), pad u8, port u16, ip 16s
  srtt var penalty f32 (ms), timeouts u16, flags u16, 4 pad bytes
  created updated dead_until f64 (monotonic seconds)
Open addressing: a key lives in one of PROBE slots from crc32(key) % SLOTS;
an insert takes a free (invalid) slot of that window, or evicts its least
recently updated record. Readers retry while the seqlock is odd or moved and
then ignore the record; a record whose CRC or values are off is empty.
Writers do not lock: a read-modify-write may lose another process's update
(last writer wins), which costs at worst a slightly stale RTT.
A file with a wrong size or header is rebuilt empty at open (under flock);
nothing in here raises on what the buffer holds.
Must not: interpret the state (workers/selection/rtt.py does) or block.
"""
from __future__ import annotations

import fcntl
import functools
import ipaddress
import mmap
import os
import struct
import zlib
from typing import Iterator

from .rtt import RttState

MAGIC = b"KRSELTB1"
HEADER = struct.Struct("<8sII")
HEADER_SIZE = 64
REC = struct.Struct("<II20sfffHH4xddd")
SLOT = REC.size  # 72
SLOTS = 4096
PROBE = 8
_BODY = struct.Struct("<20sfffHH4xddd")  # REC after seq and crc
FILE_NAME = "upstreams.tbl"


@functools.lru_cache(maxsize=4096)
def key_of(addr: str) -> bytes:
    """'ip' or 'ip#port' -> the 20-byte key (port 53 by default)."""
    host, _, port = addr.partition("#")
    try:
        ip = ipaddress.ip_address(host)
        p = int(port) if port else 53
        if not 0 <= p <= 0xFFFF:
            raise ValueError(port)
    except ValueError:  # not an address: a stable digest keeps it apart
        return b"\0\0" + zlib.crc32(addr.encode()).to_bytes(4, "little") + bytes(14)
    ipb = ip.packed.ljust(16, b"\0")
    return bytes((ip.version, 0)) + p.to_bytes(2, "little") + ipb


def addr_of(key: bytes) -> str | None:
    """The 'ip' / 'ip#port' text of a key (None for unnamed keys)."""
    fam, port = key[0], int.from_bytes(key[2:4], "little")
    if fam == 4:
        host = str(ipaddress.IPv4Address(key[4:8]))
    elif fam == 6:
        host = str(ipaddress.IPv6Address(key[4:20]))
    else:
        return None
    return host if port == 53 else f"{host}#{port}"


class Table:
    """A fixed table of RttState by key over a writable buffer."""

    def __init__(self, buf=None, slots: int = SLOTS, path: str | None = None):
        self.slots = slots
        self.path = path
        self.buf = buf if buf is not None else bytearray(HEADER_SIZE + slots * SLOT)
        self._mv = memoryview(self.buf)
        self._memo: dict[bytes, tuple[int, int, RttState]] = {}  # key -> (slot, write counter, state)
        if buf is None:
            HEADER.pack_into(self.buf, 0, MAGIC, slots, SLOT)

    # -- opening a shared file ------------------------------------------------------
    @classmethod
    def open(cls, path: str, slots: int = SLOTS) -> "Table":
        """Map path (created or rebuilt empty when its size or header is off)."""
        size = HEADER_SIZE + slots * SLOT
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            try:
                head = os.pread(fd, HEADER_SIZE, 0)
                ok = os.fstat(fd).st_size == size and len(head) == HEADER_SIZE \
                    and HEADER.unpack_from(head) == (MAGIC, slots, SLOT)
                if not ok:
                    os.ftruncate(fd, 0)
                    os.ftruncate(fd, size)
                    os.pwrite(fd, HEADER.pack(MAGIC, slots, SLOT).ljust(HEADER_SIZE, b"\0"), 0)
            finally:
                fcntl.flock(fd, fcntl.LOCK_UN)
            mm = mmap.mmap(fd, size, mmap.MAP_SHARED, mmap.PROT_READ | mmap.PROT_WRITE)
        finally:
            os.close(fd)
        return cls(mm, slots, path=path)

    def close(self) -> None:
        self._mv.release()
        if isinstance(self.buf, mmap.mmap):
            self.buf.close()

    # -- records --------------------------------------------------------------------
    def _home(self, key: bytes) -> int:
        return zlib.crc32(key) % self.slots

    def _off(self, slot: int) -> int:
        return HEADER_SIZE + slot * SLOT

    def _read_slot(self, slot: int) -> tuple[bytes, RttState] | None:
        """(key, state) of a slot, or None if empty, corrupt or being written."""
        rec = self._read_slot_seq(slot)
        return None if rec is None else rec[:2]

    def _read_slot_seq(self, slot: int) -> tuple[bytes, RttState, int] | None:
        """(key, state, seq) of a slot: seq is the write counter the state was read at."""
        off = self._off(slot)
        buf = self.buf
        for _ in range(3):
            seq, crc = struct.unpack_from("<II", buf, off)
            if seq & 1:
                continue
            body = bytes(self._mv[off + 8:off + SLOT])
            if struct.unpack_from("<I", buf, off)[0] != seq:
                continue
            if zlib.crc32(body) != crc:
                return None
            key, srtt, var, pen, tos, flags, created, updated, dead = _BODY.unpack(body)
            if key[0] not in (4, 6) and key[:2] != b"\0\0":
                return None
            st = RttState(srtt, var, pen, tos, flags, created, updated, dead)
            return (key, st, seq) if st.valid() else None
        return None

    def _write_slot(self, slot: int, key: bytes, st: RttState) -> None:
        off = self._off(slot)
        body = _BODY.pack(key, st.srtt, st.var, st.penalty, st.timeouts, st.flags,
                          st.created, st.updated, st.dead_until)
        odd = struct.unpack_from("<I", self.buf, off)[0] | 1  # odd: a writer is in
        struct.pack_into("<I", self.buf, off, odd)
        self._mv[off + 8:off + SLOT] = body
        struct.pack_into("<I", self.buf, off + 4, zlib.crc32(body))
        struct.pack_into("<I", self.buf, off, (odd + 1) & 0xFFFFFFFF)

    def _lookup(self, key: bytes) -> tuple[int, RttState] | None:
        memo = self._memo.get(key)
        if memo is not None:  # decoded before: still valid while the slot's write counter is unchanged
            slot, seq, st = memo
            if struct.unpack_from("<I", self.buf, HEADER_SIZE + slot * SLOT)[0] == seq:
                return slot, st
        home = self._home(key)
        mv = self._mv
        for i in range(PROBE):
            slot = (home + i) % self.slots
            off = HEADER_SIZE + slot * SLOT + 8
            if mv[off:off + 20] == key:  # cheap pre-check before the CRC
                rec = self._read_slot_seq(slot)
                if rec is not None and rec[0] == key:
                    if len(self._memo) > 2 * self.slots:
                        self._memo.clear()
                    self._memo[key] = (slot, rec[2], rec[1])
                    return slot, rec[1]
        return None

    def find(self, key: bytes) -> tuple[int, RttState | None]:
        """(slot, state) of key; when absent, (the slot an insert takes, None):
        a free slot of its window or its least recently updated record."""
        found = self._lookup(key)
        if found is not None:
            return found
        home = self._home(key)
        oldest = oldest_t = None
        for i in range(PROBE):
            slot = (home + i) % self.slots
            rec = self._read_slot(slot)
            if rec is None:
                return slot, None
            if oldest_t is None or rec[1].updated < oldest_t:
                oldest, oldest_t = slot, rec[1].updated
        return oldest, None

    def get(self, key: bytes) -> RttState | None:
        found = self._lookup(key)
        return None if found is None else found[1]

    def put(self, key: bytes, st: RttState, slot: int | None = None) -> None:
        """Store st for key (at `slot` from find(), if the caller has it)."""
        self._write_slot(self.find(key)[0] if slot is None else slot, key, st)

    def delete(self, key: bytes) -> None:
        home = self._home(key)
        for i in range(PROBE):
            slot = (home + i) % self.slots
            rec = self._read_slot(slot)
            if rec is not None and rec[0] == key:
                self._clear_slot(slot)

    def _clear_slot(self, slot: int) -> None:
        off = self._off(slot)
        odd = struct.unpack_from("<I", self.buf, off)[0] | 1
        struct.pack_into("<I", self.buf, off, odd)
        self._mv[off + 4:off + SLOT] = bytes(SLOT - 4)
        struct.pack_into("<I", self.buf, off, (odd + 1) & 0xFFFFFFFF)

    def clear(self) -> None:
        for slot in range(self.slots):
            self._clear_slot(slot)

    def items(self) -> Iterator[tuple[bytes, RttState]]:
        for slot in range(self.slots):
            if not any(struct.unpack_from("<II", self.buf, self._off(slot))):
                continue  # never written
            rec = self._read_slot(slot)
            if rec is not None:
                yield rec


def open_shared(cache_dir: str, slots: int = SLOTS) -> Table:
    """The shared table of a cache directory (`cache_dir/upstreams.tbl`)."""
    return Table.open(os.path.join(cache_dir, FILE_NAME), slots)
