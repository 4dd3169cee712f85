"""Several processes on one cache dir, and `kill -9` in the middle of writes.

Children are forked before the parent opens anything (as kresd -f does), or
started as separate interpreters; every child leaves with os._exit.
"""
from __future__ import annotations

import hashlib
import os
import random
import signal
import struct
import subprocess
import sys
import textwrap

import dns.name
import dns.rdatatype as T
from .cache_helpers import n, rrset

from cache import Cache, Rank
from cache import api as cache_api
from cache import entry

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
NOW = 1_700_000_000.0


def _clock() -> float:
    return NOW


def expected_txt(name: str) -> list[bytes]:
    h = hashlib.sha256(name.encode()).hexdigest()
    return [f"{h}-{i}".encode() for i in range(3)]


def txt(hit) -> list[bytes]:
    assert hit is not None
    return [r.strings[0] for r in hit.rrset]


def payload(name: str):
    return rrset(name, 3600, "TXT", *[f'"{t.decode()}"' for t in expected_txt(name)])


def _child(fn) -> int:
    pid = os.fork()
    if pid == 0:
        code = 70
        try:
            code = fn() or 0
        finally:
            os._exit(code)
    return pid


def _wait(pid: int) -> int:
    return os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1])


def _name_from_key(k: bytes) -> dns.name.Name:
    lfn = k[:-4]  # lf + 0x00 + TAG + TYPE; test names have no escaped bytes
    return dns.name.Name(list(reversed(lfn.split(b"\x00"))) + [b""])


# -- sharing ---------------------------------------------------------------------
def test_two_forked_processes_share_entries(tmp_path):
    path = str(tmp_path / "shared")
    to_child_r, to_child_w = os.pipe()
    to_parent_r, to_parent_w = os.pipe()

    def child():
        c = Cache(path, 8 << 20, clock=_clock)
        c.open()
        with c.writer() as w:
            w.stash_rrset(payload("from-child.test."), Rank.AUTH)
        os.write(to_parent_w, b"1")
        assert os.read(to_child_r, 1) == b"2"  # parent has stashed its entry
        hit = c.peek_rrset(n("from-parent.test."), T.TXT)
        ok = hit is not None and [r.strings[0] for r in hit.rrset] == expected_txt("from-parent.test.")
        c.close()
        return 0 if ok else 3

    pid = _child(child)
    # the parent keeps only its own ends: a child that dies early gives EOF, not a hang
    os.close(to_parent_w)
    os.close(to_child_r)
    parent = Cache(path, 8 << 20, clock=_clock)
    assert os.read(to_parent_r, 1) == b"1"
    parent.open()  # both processes have the env open from here on
    try:
        hit = parent.peek_rrset(n("from-child.test."), T.TXT)
        assert [r.strings[0] for r in hit.rrset] == expected_txt("from-child.test.")
        with parent.writer() as w:
            w.stash_rrset(payload("from-parent.test."), Rank.AUTH)
        os.write(to_child_w, b"2")
        assert _wait(pid) == 0
    finally:
        parent.close()
        for fd in (to_child_w, to_parent_r):
            os.close(fd)


def _run_writer_interpreter(path: str, size: int, names: list[str]) -> None:
    script = textwrap.dedent(f"""
        import sys
        sys.path.insert(0, {ROOT!r})
        from cache import Cache, Rank
        from tests.unit.cache.test_cache_multiprocess import payload, _clock
        c = Cache({path!r}, {size}, clock=_clock)
        c.open()
        for name in {names!r}:
            with c.writer() as w:
                w.stash_rrset(payload(name), Rank.AUTH)
        c.close()
    """)
    subprocess.run([sys.executable, "-c", script], check=True, timeout=60)


def test_separate_interpreter_writes_are_seen_by_an_open_cache(tmp_path):
    path = str(tmp_path / "shared")
    c = Cache(path, 8 << 20, clock=_clock)
    c.open()
    try:
        with c.writer() as w:
            w.stash_rrset(payload("first.test."), Rank.AUTH)
        _run_writer_interpreter(path, 8 << 20, [f"other{i}.test." for i in range(50)])
        for i in range(50):  # no reopen needed
            hit = c.peek_rrset(n(f"other{i}.test."), T.TXT)
            assert [r.strings[0] for r in hit.rrset] == expected_txt(f"other{i}.test.")
        assert c.count() == 51
    finally:
        c.close()


def test_map_grown_by_another_process_is_adopted(tmp_path):
    path = str(tmp_path / "shared")
    c = Cache(path, 1 << 20, clock=_clock)
    c.open()
    try:
        # another process uses a 16 MiB map and stores more than 1 MiB
        _run_writer_interpreter(path, 16 << 20, [f"g{i}.test." for i in range(4000)])
        assert c.count() == 4000
        for name in ("g0.test.", "g3999.test."):
            assert txt(c.peek_rrset(n(name), T.TXT)) == expected_txt(name)
        with c.writer() as w:
            w.stash_rrset(payload("after.test."), Rank.AUTH)
        assert txt(c.peek_rrset(n("after.test."), T.TXT)) == expected_txt("after.test.")
        assert c.stats()["map_size"] == 16 << 20  # adopted, not shrunk back
    finally:
        c.close()


# -- kill -9 -----------------------------------------------------------------------
BATCH = 40


def _writer_loop(path: str, size: int, seed: int, progress_fd: int, self_kill_at: int | None) -> int:
    """Write batches forever; report each committed batch id; maybe SIGKILL itself
    after `self_kill_at` puts inside a write transaction."""
    rng = random.Random(seed)
    c = Cache(path, size, clock=_clock)
    c.open()
    if self_kill_at is not None:
        orig = cache_api.Cache._apply_one
        puts = [0]

        def counting(self, txn, op, now):
            puts[0] += 1
            if puts[0] >= self_kill_at:
                os.kill(os.getpid(), signal.SIGKILL)
            return orig(self, txn, op, now)

        cache_api.Cache._apply_one = counting
    while True:
        batch = rng.getrandbits(40)
        with c.writer() as w:
            for j in range(BATCH):
                w.stash_rrset(payload(f"b{batch}-{j}.test."), Rank.AUTH)
        os.write(progress_fd, struct.pack("!Q", batch))


def _verify_all(path: str, size: int) -> tuple[int, set[int]]:
    """Every entry decodes and holds the data derived from its name; returns
    (entries, batch ids present) and checks that batches are all-or-nothing."""
    c = Cache(path, size, clock=_clock)
    c.open()
    try:
        per_batch: dict[int, int] = {}
        with c._env.begin() as txn:
            for k, v in txn.cursor():
                name = _name_from_key(bytes(k))
                _, rs, _ = entry.unpack_rrset(bytes(v), name)
                assert [r.strings[0] for r in rs] == expected_txt(name.to_text())
                batch = int(name.labels[0].split(b"-")[0][1:])
                per_batch[batch] = per_batch.get(batch, 0) + 1
        assert c.count() == sum(per_batch.values())
        with c.writer() as w:  # the writer lock is not held by a dead process
            w.stash_rrset(payload("final.test."), Rank.AUTH)
        assert txt(c.peek_rrset(n("final.test."), T.TXT)) == expected_txt("final.test.")
        c.clear(n("final.test."))
        return sum(per_batch.values()), {b for b, cnt in per_batch.items() if cnt == BATCH}
    finally:
        c.close()


def _kill_rounds(path: str, size: int, rounds: int, seed: int) -> tuple[set[int], int]:
    rng = random.Random(seed)
    committed: set[int] = set()
    inside_txn = 0
    for r in range(rounds):
        rfd, wfd = os.pipe()
        self_kill = rng.randrange(1, 3 * BATCH) if r % 2 else None
        pid = _child(lambda: _writer_loop(path, size, rng.getrandbits(32), wfd, self_kill))
        os.close(wfd)
        want = rng.randrange(0, 4)
        got = 0
        while self_kill is None and got < want:
            data = os.read(rfd, 8)
            if not data:
                break
            committed.add(struct.unpack("!Q", data)[0])
            got += 1
        if self_kill is None:
            os.kill(pid, signal.SIGKILL)
        status = os.waitpid(pid, 0)[1]
        assert os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGKILL
        inside_txn += self_kill is not None
        while data := os.read(rfd, 8):  # commits reported before the kill
            committed.add(struct.unpack("!Q", data)[0])
        os.close(rfd)
    return committed, inside_txn


def test_kill_9_mid_write_leaves_a_consistent_cache(tmp_path):
    path = str(tmp_path / "killed")
    size = 32 << 20  # no eviction: every reported commit must survive
    committed, inside = _kill_rounds(path, size, rounds=30, seed=7)
    assert inside == 15
    entries, complete = _verify_all(path, size)
    assert committed and committed <= complete
    assert entries == BATCH * len(complete)  # no half-written batch


def test_kill_9_while_evicting_in_a_tiny_map(tmp_path):
    path = str(tmp_path / "tiny")
    size = 256 * 1024
    _kill_rounds(path, size, rounds=20, seed=11)
    entries, _ = _verify_all(path, size)
    assert entries > 0
