"""workers/selection/table.py: the fixed per-IP table, in memory and in a
shared file; corrupt or torn records are empty, never an exception."""
from __future__ import annotations

import os
import struct

from hypothesis import given, settings, strategies as st

from workers.selection import rtt, table
from workers.selection.rtt import RttState
from workers.selection.table import SLOT, Table, addr_of, key_of


def _st(i: float) -> RttState:
    return RttState(srtt=i, var=i / 2, timeouts=1, flags=rtt.HAVE_RTT, created=1.0, updated=1.0 + i)


def test_keys_are_ip_and_port():
    assert addr_of(key_of("192.0.2.1")) == "192.0.2.1"
    assert addr_of(key_of("192.0.2.1#53")) == "192.0.2.1"
    assert addr_of(key_of("2001:db8::1#5353")) == "2001:db8::1#5353"
    assert key_of("192.0.2.1") != key_of("192.0.2.1#5353")
    assert addr_of(key_of("not-an-ip")) is None and len(key_of("not-an-ip")) == 20


def test_put_get_delete_clear():
    t = Table(slots=64)
    t.put(key_of("192.0.2.1"), _st(10.0))
    t.put(key_of("192.0.2.2"), _st(20.0))
    assert t.get(key_of("192.0.2.1")) == _st(10.0)
    t.put(key_of("192.0.2.1"), _st(11.0))
    assert t.get(key_of("192.0.2.1")) == _st(11.0)
    assert len(list(t.items())) == 2
    t.delete(key_of("192.0.2.1"))
    assert t.get(key_of("192.0.2.1")) is None and t.get(key_of("192.0.2.2")) == _st(20.0)
    t.clear()
    assert list(t.items()) == []


def test_a_full_window_evicts_the_least_recently_updated():
    t = Table(slots=table.PROBE)  # one probe window: the whole table
    addrs = [f"192.0.2.{i}" for i in range(table.PROBE + 1)]
    for i, a in enumerate(addrs):
        t.put(key_of(a), _st(float(i)))
    assert t.get(key_of(addrs[0])) is None  # the oldest went
    assert all(t.get(key_of(a)) == _st(float(i)) for i, a in enumerate(addrs) if i)


def test_a_torn_record_is_ignored():
    t = Table(slots=16)
    k = key_of("192.0.2.1")
    t.put(k, _st(10.0))
    slot = next(s for s in range(16) if t._read_slot(s))
    off = t._off(slot)
    seq = struct.unpack_from("<I", t.buf, off)[0]
    struct.pack_into("<I", t.buf, off, seq | 1)  # a writer is in the record
    assert t.get(k) is None
    struct.pack_into("<I", t.buf, off, seq)
    t.buf[off + 30] ^= 0xFF  # half-written body: the CRC no longer matches
    assert t.get(k) is None
    t.put(k, _st(12.0))  # and the slot is reused
    assert t.get(k) == _st(12.0)


def test_file_is_shared_between_mappings_and_survives_reopen(tmp_path):
    a = table.open_shared(str(tmp_path))
    b = table.open_shared(str(tmp_path))
    a.put(key_of("192.0.2.1"), _st(10.0))
    assert b.get(key_of("192.0.2.1")) == _st(10.0)
    a.close()
    b.close()
    c = table.open_shared(str(tmp_path))
    assert c.get(key_of("192.0.2.1")) == _st(10.0)
    c.close()


def test_a_remembered_read_sees_the_other_mappings_next_write(tmp_path):
    """Reads reuse a decoded record while its slot's write counter stands still:
    a write through another mapping (another fork) moves it, and the next read
    decodes again."""
    a = table.open_shared(str(tmp_path))
    b = table.open_shared(str(tmp_path))
    k = key_of("192.0.2.1")
    a.put(k, _st(10.0))
    assert b.get(k) == _st(10.0) and b.get(k) == _st(10.0)  # the second from b's memory
    a.put(k, _st(30.0))
    assert b.get(k) == _st(30.0)
    a.delete(k)
    assert b.get(k) is None
    a.close()
    b.close()


def test_a_truncated_or_foreign_file_is_rebuilt_empty(tmp_path):
    path = tmp_path / table.FILE_NAME
    t = table.open_shared(str(tmp_path))
    t.put(key_of("192.0.2.1"), _st(10.0))
    t.close()
    with open(path, "r+b") as f:
        f.truncate(1000)
    t = table.open_shared(str(tmp_path))
    assert list(t.items()) == [] and os.path.getsize(path) == table.HEADER_SIZE + table.SLOTS * SLOT
    t.close()
    path.write_bytes(b"junk")
    t = table.open_shared(str(tmp_path))
    t.put(key_of("192.0.2.3"), _st(3.0))
    assert t.get(key_of("192.0.2.3")) == _st(3.0)
    t.close()


ADDRS = [f"192.0.2.{i}" for i in range(40)] + ["2001:db8::1", "2001:db8::1#5353"]


@settings(max_examples=60)
@given(st.lists(st.tuples(st.sampled_from(ADDRS), st.integers(0, 60_000).map(float)), max_size=80))
def test_reads_return_the_last_write_or_nothing(ops):
    """A model check: with evictions a key may be gone, but what a read
    returns is the last state written for that key."""
    t = Table(slots=32)
    model = {}
    for n, (addr, x) in enumerate(ops):
        s = RttState(srtt=x, flags=rtt.HAVE_RTT, created=0.0, updated=float(n))
        t.put(key_of(addr), s)
        model[addr] = s
        got = t.get(key_of(addr))
        assert got == s
    for addr in ADDRS:
        got = t.get(key_of(addr))
        assert got is None or got == model.get(addr)
    assert len(list(t.items())) <= 32


@settings(max_examples=60)
@given(st.binary(min_size=0, max_size=2000), st.integers(0, 32 * SLOT))
def test_corrupt_bytes_never_raise(junk, at):
    t = Table(slots=32)
    for i, a in enumerate(ADDRS[:20]):
        t.put(key_of(a), _st(float(i)))
    end = min(len(t.buf), table.HEADER_SIZE + at + len(junk))
    t.buf[table.HEADER_SIZE + at:end] = junk[:end - table.HEADER_SIZE - at]
    for a in ADDRS:
        got = t.get(key_of(a))
        assert got is None or got.valid()
        t.put(key_of(a), _st(1.0))
        assert t.get(key_of(a)) == _st(1.0)
    assert all(s.valid() for _, s in t.items())


@settings(max_examples=30)
@given(st.binary(min_size=0, max_size=table.HEADER_SIZE + 4 * SLOT))
def test_opening_a_file_of_random_bytes_never_raises(tmp_path_factory, junk):
    d = tmp_path_factory.mktemp("tbl")
    (d / table.FILE_NAME).write_bytes(junk)
    t = table.open_shared(str(d), slots=4)
    assert all(s.valid() for _, s in t.items())
    t.put(key_of("192.0.2.1"), _st(1.0))
    assert t.get(key_of("192.0.2.1")) == _st(1.0)
    t.close()
