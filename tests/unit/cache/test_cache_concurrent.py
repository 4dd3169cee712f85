"""Several processes writing the same LMDB cache at the same moment.

Each process is forked before it opens anything and opens the cache itself
(cache/env.py: never use an env inherited through fork). The processes start
each phase on a multiprocessing Barrier, so their write transactions really
contend for LMDB's writer lock, and they report their counters to the parent.

  * barrier writers: every writer stashes its own names and a set of shared
    names in one transaction per round; afterwards every committed record is
    readable with its content, the shared names all come from one transaction
    (atomicity), and no process counted a corrupt value, an error or a skip;
  * eviction race: two processes on a small map, one filling it, the other
    writing and reading; no exception (a full map is never the caller's
    error), every process reads back what it just committed (unless the
    cache counted that write as dropped), nothing corrupt, nobody empties
    the cache;
  * map growth race: a process on a small map writes and reads while another
    one opens the same cache with a large map and fills it; the small one
    adopts the grown map and nothing either committed is lost;
  * pinned pages: a reader of another process holding an old snapshot makes
    the map full however few entries there are; writes are dropped, the
    entries stay, and writing works again once the reader is gone.

Record contents are derived from (name, writer, round) and carry a digest, so
a reader can tell exactly which write it sees.
"""
from __future__ import annotations

import hashlib
import multiprocessing as mp
import queue
import time
import traceback

import dns.name
import dns.rdataclass
import dns.rdatatype as T
import dns.rdtypes.ANY.TXT
import dns.rrset

from cache import Cache, Rank
from cache import entry
from cache.api import _key
from cache.keys import TAG_RRSET

NOW = 1_700_000_000.0
TTL = 86_400
BARRIER_TIMEOUT = 30.0  # seconds; generous: only a dead or hung sibling reaches it
JOIN_TIMEOUT = 60.0

CTX = mp.get_context("fork")  # children open the cache themselves, after the fork


# -- record contents ---------------------------------------------------------------
def _digest(name: str, writer: int, rnd: int) -> str:
    return hashlib.sha256(f"{name}|{writer}|{rnd}".encode()).hexdigest()


def payload(name: str, writer: int, rnd: int, pad: int = 0) -> dns.rrset.RRset:
    strings = [f"w={writer}", f"r={rnd}", _digest(name, writer, rnd)]
    strings += [f"pad{i:02d}" + "p" * 200 for i in range(pad)]
    return dns.rrset.from_rdata_list(dns.name.from_text(name), TTL, [
        dns.rdtypes.ANY.TXT.TXT(dns.rdataclass.IN, T.TXT, [s.encode()]) for s in strings])


def decode(rrset: dns.rrset.RRset) -> tuple[int, int]:
    """(writer, round) of a TXT written by payload(); AssertionError if it is not
    exactly such a record (wrong digest, missing or extra strings)."""
    texts = sorted(rd.strings[0].decode() for rd in rrset)
    meta = [t for t in texts if not t.startswith("pad")]
    pads = [t for t in texts if t.startswith("pad")]
    assert len(meta) == 3, texts
    digest = next(t for t in meta if not t.startswith(("w=", "r=")))
    writer = int(next(t for t in meta if t.startswith("w="))[2:])
    rnd = int(next(t for t in meta if t.startswith("r="))[2:])
    name = rrset.name.to_text()
    assert digest == _digest(name, writer, rnd), (name, texts)
    assert pads == [f"pad{i:02d}" + "p" * 200 for i in range(len(pads))], (name, texts)
    return writer, rnd


def peek(c: Cache, name: str) -> tuple[int, int] | None:
    hit = c.peek_rrset(dns.name.from_text(name), T.TXT)
    if hit is None:
        return None
    assert hit.rank == Rank.AUTH, (name, hit.rank)
    assert 0 < hit.ttl <= TTL, (name, hit.ttl)
    return decode(hit.rrset)


def read_in_one_txn(c: Cache, names: list[str]) -> dict[str, tuple[int, int] | None]:
    """The records of these names as one read transaction sees them."""
    out = {}
    with c._env.begin() as txn:
        for name in names:
            dname = dns.name.from_text(name)
            v = txn.get(_key(dname, TAG_RRSET, T.TXT))
            out[name] = None if v is None else decode(entry.unpack_rrset(bytes(v), dname, 1)[1])
    return out


def all_entries(c: Cache) -> dict[str, tuple[int, int]]:
    """Every record of the cache, decoded in one read transaction."""
    out = {}
    with c._env.begin() as txn:
        for k, v in txn.cursor():
            lfn = bytes(k)[:-4]  # lf + 0x00 + TAG + TYPE (test names: plain labels)
            name = dns.name.Name(list(reversed(lfn.split(b"\x00"))) + [b""])
            hdr, rs, _ = entry.unpack_rrset(bytes(v), name, 1)
            assert hdr.rtype == T.TXT and hdr.rank == Rank.AUTH, (name, hdr)
            out[name.to_text()] = decode(rs)
    return out


# -- process plumbing ---------------------------------------------------------------
def _run_child(fn, results, *args) -> None:
    """Child body: report ("ok", value) or ("error", traceback) to the parent."""
    try:
        value = fn(*args)
        results.put((fn.__name__, args[1] if len(args) > 1 else None, "ok", value))
    except BaseException:  # noqa: BLE001 - everything goes to the parent
        results.put((fn.__name__, args[1] if len(args) > 1 else None, "error", traceback.format_exc()))
        raise


def run_children(specs: list[tuple], timeout: float = JOIN_TIMEOUT) -> list[tuple]:
    """Start one forked process per (fn, *args) spec; return their reports.
    Fails with the children's tracebacks if any of them failed or hung."""
    results = CTX.Queue()
    procs = [CTX.Process(target=_run_child, args=(fn, results, *args), daemon=True)
             for fn, *args in specs]
    for p in procs:
        p.start()
    reports = []
    deadline = time.monotonic() + timeout
    try:
        while len(reports) < len(procs):
            try:
                reports.append(results.get(timeout=max(0.1, deadline - time.monotonic())))
            except queue.Empty:
                if time.monotonic() > deadline or not any(p.is_alive() for p in procs):
                    break
    finally:
        for p in procs:
            p.join(max(0.1, deadline - time.monotonic()))
            if p.is_alive():
                p.kill()
                p.join(5)
    errors = [r for r in reports if r[2] != "ok"]
    assert not errors, "\n".join(f"{fn} {who}:\n{tb}" for fn, who, _, tb in errors)
    assert len(reports) == len(procs), f"only {len(reports)} of {len(procs)} children reported"
    assert [p.exitcode for p in procs] == [0] * len(procs)
    return reports


def counters(c: Cache) -> dict:
    st = c.stats()
    keys = ("hits", "misses", "inserts", "skipped_rank", "corrupt", "map_full", "evictions",
            "evict_runs", "clears", "write_errors", "map_size")
    return {k: st[k] for k in keys}


# -- several writers on a barrier ----------------------------------------------------
WRITERS = 4
ROUNDS = 25
OWN = 12
SHARED = 6


def own_name(w: int, r: int, j: int) -> str:
    return f"o{j}.r{r}.w{w}.own.test."


def shared_name(j: int) -> str:
    return f"s{j}.shared.test."


def _fixed_clock() -> float:
    return NOW


def _barrier_writer(path: str, w: int, barrier) -> dict:
    c = Cache(path, 64 << 20, clock=_fixed_clock)
    c.open()
    try:
        reads = 0
        for r in range(ROUNDS):
            barrier.wait(BARRIER_TIMEOUT)  # every writer commits round r at the same moment
            if r:  # round r-1 of every writer committed before this barrier
                other = (w + 1 + r) % WRITERS
                for j in range(OWN):
                    assert peek(c, own_name(other, r - 1, j)) == (other, r - 1)
                    reads += 1
            with c.writer() as tx:
                for j in range(OWN):
                    tx.stash_rrset(payload(own_name(w, r, j), w, r), Rank.AUTH)
                for j in range(SHARED):
                    tx.stash_rrset(payload(shared_name(j), w, r), Rank.AUTH)
            for j in range(OWN):  # readable at once, by the writer itself
                assert peek(c, own_name(w, r, j)) == (w, r)
                reads += 1
            # The shared names were written by whole transactions of this round
            # (nobody passes the next barrier before everyone got here): one read
            # transaction sees all of them from the same writer.
            seen = set(read_in_one_txn(c, [shared_name(j) for j in range(SHARED)]).values())
            assert len(seen) == 1 and next(iter(seen))[1] == r, seen
        return {"reads": reads, **counters(c)}
    finally:
        c.close()


def test_writers_on_a_barrier_lose_nothing(tmp_path):
    path = str(tmp_path / "cache")
    barrier = CTX.Barrier(WRITERS)
    reports = run_children([(_barrier_writer, path, w, barrier) for w in range(WRITERS)])

    per_writer = {w: value for _, w, _, value in reports}
    assert sorted(per_writer) == list(range(WRITERS))
    for w, st in per_writer.items():
        assert st["inserts"] == ROUNDS * (OWN + SHARED), (w, st)
        assert st["hits"] == st["reads"] == ROUNDS * OWN + (ROUNDS - 1) * OWN, (w, st)
        assert (st["misses"], st["corrupt"], st["skipped_rank"], st["write_errors"],
                st["map_full"], st["evictions"], st["clears"]) == (0, 0, 0, 0, 0, 0, 0), (w, st)

    c = Cache(path, 64 << 20, clock=_fixed_clock)
    c.open()
    try:
        got = all_entries(c)
        want_own = {own_name(w, r, j): (w, r)
                    for w in range(WRITERS) for r in range(ROUNDS) for j in range(OWN)}
        assert {k: v for k, v in got.items() if not k.startswith("s")} == want_own
        shared = {k: v for k, v in got.items() if k.startswith("s")}
        assert sorted(shared) == sorted(shared_name(j) for j in range(SHARED))
        # the last transaction to commit wrote every shared name: one writer, last round
        (last,) = set(shared.values())
        assert last[0] in range(WRITERS) and last[1] == ROUNDS - 1
        assert c.count() == WRITERS * ROUNDS * OWN + SHARED
        st = c.stats()
        assert st["entries"] == c.count() and st["used_bytes"] <= st["usage_bytes"] <= st["map_size"]
        for name, want in list(want_own.items())[::97]:  # and through the facade
            assert peek(c, name) == want
    finally:
        c.close()


# -- eviction in a small map racing another writer -------------------------------------------
# Small, but not degenerate: 256 pages, so the eviction threshold leaves room for
# the copy-on-write pages of a transaction and for pages a concurrent reader still
# pins (LMDB reuses a freed page only once no reader's snapshot can see it).
SMALL = 1 << 20
TINY = 256 * 1024  # 64 pages
FILL_ROUNDS = 400  # x 6 records of ~ 1.3 kB: the map fills up several times over
HOT = 3  # names every round of a process writes again (popular records re-stashed)


def _scaled_clock(t0: float):
    """Clock shared by the processes: 1 ms of CLOCK_MONOTONIC is one cache second, so a
    later write always has a later inception, whichever process made it."""
    return lambda: NOW + (time.monotonic() - t0) * 1000.0


def _round_names(tag: str, r: int, per_round: int) -> list[str]:
    return [f"u{j}.r{r}.{tag}.test." for j in range(per_round)] + \
           [f"hot{j}.{tag}.test." for j in range(HOT)]


def _racer(path: str, who: int, t0: float, size: int, per_round: int, pad: int, barrier,
           done, min_rounds: int, max_rounds: int, stop_when_done: bool) -> dict:
    """Write a batch per round and read back the whole batch right after the commit.
    Rounds: at least min_rounds; then until `done` is set (if stop_when_done) or
    max_rounds. The process with stop_when_done=False sets `done` at its end.

    A batch the cache dropped (counted in write_errors: the map was full of pages
    a reader of the other process pinned) is not read back; every other one must
    be readable at once, exactly as written."""
    tag = f"p{who}"
    c = Cache(path, size, clock=_scaled_clock(t0))
    c.open()
    try:
        barrier.wait(BARRIER_TIMEOUT)
        r, last, dropped = 0, None, 0
        while r < max_rounds and (r < min_rounds or not (stop_when_done and done.is_set())):
            names = _round_names(tag, r, per_round)
            errors = c.stats()["write_errors"]
            with c.writer() as tx:
                for name in names:
                    tx.stash_rrset(payload(name, who, r, pad), Rank.AUTH)
            if c.stats()["write_errors"] > errors:
                dropped += 1
            else:
                for name in names:  # the latest write of this process is what it reads
                    assert peek(c, name) == (who, r), f"{name} after round {r}: {counters(c)}"
                last = r
            r += 1
        assert last is not None, f"every write dropped: {counters(c)}"
        return {"rounds": r, "dropped": dropped, "last_round": last,
                "last": _round_names(tag, last, per_round), **counters(c)}
    finally:
        if not stop_when_done:
            done.set()  # also when failing: the other one must not wait for ever
        c.close()


def _check_survivors(path: str, size: int, t0: float, reports) -> dict[str, tuple[int, int]]:
    """Every record decodes to what its writer wrote; each process's last batch is there."""
    c = Cache(path, size, clock=_scaled_clock(t0))
    c.open()
    try:
        got = all_entries(c)
        for _, who, _, st in reports:
            for name in st["last"]:
                assert got.get(name) == (who, st["last_round"]), (name, got.get(name))
                assert peek(c, name) == (who, st["last_round"])
        for name, (who, r) in got.items():
            tag = name.split(".")[-3]  # u<j>.r<r>.p<who>.test. / hot<j>.p<who>.test.
            assert tag == f"p{who}", name
            if name.startswith("u"):
                assert name.split(".")[1] == f"r{r}", name
        assert c.count() == len(got)
        return got
    finally:
        c.close()


def test_eviction_in_a_small_map_races_another_writer(tmp_path):
    path = str(tmp_path / "tiny")
    t0 = time.monotonic()
    barrier, done = CTX.Barrier(2), CTX.Event()
    reports = run_children([
        # the filler: big records, many rounds; the map is full after a few
        (_racer, path, 0, t0, SMALL, 6, 6, barrier, done, FILL_ROUNDS, FILL_ROUNDS, False),
        # the other: small batches, written and read back until the filler is done
        (_racer, path, 1, t0, SMALL, 2, 0, barrier, done, 20, 100_000, True),
    ])
    st = {who: value for _, who, _, value in reports}
    for who, s in st.items():
        assert (s["corrupt"], s["misses"], s["clears"]) == (0, 0, 0), (who, s)
        assert s["write_errors"] == s["dropped"] < s["rounds"], (who, s)
        assert s["map_size"] == SMALL
    assert st[0]["rounds"] == FILL_ROUNDS and st[1]["rounds"] >= 20
    assert st[0]["evictions"] + st[1]["evictions"] > 0, st  # the map was full: someone evicted
    got = _check_survivors(path, SMALL, t0, reports)
    assert len(got) < FILL_ROUNDS * 6  # and it did drop old records


# -- map growth racing a writer on a small map -------------------------------------------------
BIG = 16 << 20
GROW_TXNS = 4
GROW_PER_TXN = 1500  # records of ~ 1 kB: each transaction alone outgrows SMALL


def _grower(path: str, who: int, t0: float, barrier, done) -> dict:
    c = Cache(path, BIG, clock=_scaled_clock(t0))
    c.open()
    try:
        barrier.wait(BARRIER_TIMEOUT)
        for r in range(GROW_TXNS):
            names = [f"g{j}.r{r}.p{who}.test." for j in range(GROW_PER_TXN)]
            with c.writer() as tx:
                for name in names:
                    tx.stash_rrset(payload(name, who, r, 4), Rank.AUTH)
            for name in names[::50]:
                assert peek(c, name) == (who, r)
        return {"rounds": GROW_TXNS, "dropped": 0, "last": [], **counters(c)}
    finally:
        done.set()
        c.close()


def test_map_grown_by_another_process_while_writing_in_a_small_map(tmp_path):
    path = str(tmp_path / "grow")
    t0 = time.monotonic()
    barrier, done = CTX.Barrier(2), CTX.Event()
    reports = run_children([
        (_grower, path, 0, t0, barrier, done),
        (_racer, path, 1, t0, SMALL, 3, 2, barrier, done, 10, 100_000, True),
    ])
    st = {who: value for _, who, _, value in reports}
    for who, s in st.items():
        assert (s["corrupt"], s["misses"], s["clears"]) == (0, 0, 0), (who, s)
        assert s["write_errors"] == s["dropped"], (who, s)
    assert st[0]["write_errors"] == 0 and st[0]["inserts"] == GROW_TXNS * GROW_PER_TXN and st[0]["evictions"] == 0
    assert st[1]["map_size"] == BIG, st[1]  # the small one adopted the grown map
    got = _check_survivors(path, BIG, t0, reports)
    # The small process never saw the grower's records in a map it had not adopted,
    # so it could not evict any of them: all of them are there.
    grown = {k: v for k, v in got.items() if k.startswith("g")}
    assert grown == {f"g{j}.r{r}.p0.test.": (0, r) for r in range(GROW_TXNS) for j in range(GROW_PER_TXN)}


# -- a reader of another process pins the freed pages -------------------------------------------
def _pinning_reader(path: str, who: int, pinned, release) -> dict:
    c = Cache(path, TINY, clock=_fixed_clock)
    c.open()
    try:
        with c._env.begin() as txn:  # an old snapshot, held until told
            entries = txn.stat(c._env.db)["entries"]
            pinned.set()
            assert release.wait(BARRIER_TIMEOUT)
        return {"entries_seen": entries}
    finally:
        c.close()


def test_full_map_of_pinned_pages_drops_the_write_not_the_cache(tmp_path):
    """LMDB reuses a freed page only once no reader can see it. A reader of another
    process that holds an old snapshot therefore fills the map with pinned pages,
    however few entries there are. Writes are then dropped (counted), the entries
    are kept (evicting or clearing them would not free a page while the reader
    lives), and writing works again as soon as the reader is gone."""
    path = str(tmp_path / "pinned")
    c = Cache(path, TINY, clock=_fixed_clock)
    c.open()
    keep = [f"k{j}.keep.test." for j in range(20)]
    with c.writer() as tx:
        for name in keep:
            tx.stash_rrset(payload(name, 0, 0, 1), Rank.AUTH)
    c.close()  # no env open in the parent across the fork
    pinned, release, results = CTX.Event(), CTX.Event(), CTX.Queue()
    reader = CTX.Process(target=_run_child, args=(_pinning_reader, results, path, 1, pinned, release),
                         daemon=True)
    reader.start()
    try:
        assert pinned.wait(BARRIER_TIMEOUT)
        c.open()
        assert c._env.pinned_by_readers() is False  # nothing committed since its snapshot
        r = 0
        while c.stats()["write_errors"] == 0:  # rewrite the same names until the map is full
            r += 1
            with c.writer() as tx:
                for j in range(4):
                    tx.stash_rrset(payload(f"h{j}.hot.test.", 0, r, 1), Rank.AUTH)
            assert r < 10_000, c.stats()
        assert c._env.pinned_by_readers() is True
        st = c.stats()
        assert (st["clears"], st["evictions"], st["write_errors"]) == (0, 0, 1), st
        assert {name: peek(c, name) for name in keep} == dict.fromkeys(keep, (0, 0))
        assert [peek(c, f"h{j}.hot.test.") for j in range(4)] == [(0, r - 1)] * 4  # dropped: r
    finally:
        release.set()
        reader.join(JOIN_TIMEOUT)
    assert results.get(timeout=5)[2:] == ("ok", {"entries_seen": len(keep)})
    assert reader.exitcode == 0
    with c.writer() as tx:  # the reader is gone: its pages are free again
        for j in range(4):
            tx.stash_rrset(payload(f"h{j}.hot.test.", 0, r + 1, 1), Rank.AUTH)
    assert [peek(c, f"h{j}.hot.test.") for j in range(4)] == [(0, r + 1)] * 4
    assert c.stats()["write_errors"] == 1 and c.count() == len(keep) + 4
    c.close()
