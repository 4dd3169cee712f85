"""kresd/cpubalance.py: when a default-pinned worker leaves a crowded CPU, and when it goes home."""
from __future__ import annotations

import os
import time

import psutil
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kresd import cpubalance as cb
from kresd.cpubalance import Balancer, Load, Sampler

HOMES2 = {0: 0, 1: 1}


def load(busy, used, placed):
    return Load(dict(enumerate(busy)), dict(used), {w: list(c) for w, c in placed.items()})


# the ../shared/bench picture: dnsperf saturates CPU 1 beside worker 1, CPU 0 mostly idle
CROWDED = load([0.40, 1.0], {0: 0.38, 1: 0.28}, {0: [0], 1: [1]})


def test_foreign_is_busy_minus_the_groups_own_use():
    ld = load([0.9, 0.5], {0: 0.6, 1: 0.4}, {0: [0], 1: [0, 1]})  # worker 1 counts half on each
    assert ld.ours() == pytest.approx({0: 0.8, 1: 0.2})
    assert ld.foreign() == pytest.approx({0: 0.1, 1: 0.3})
    assert load([0.2], {0: 0.5}, {0: [0]}).foreign() == {0: 0.0}  # never negative


def test_a_crowded_worker_moves_after_sustained_samples_to_the_idle_cpu():
    b = Balancer()
    for i in range(cb.SUSTAIN - 1):
        assert b.decide(CROWDED, HOMES2, now=float(i)) is None
    m = b.decide(CROWDED, HOMES2, now=5.0)
    assert (m.wid, m.cpu, m.home) == (1, 0, False)
    assert "CPU 1 was 100% busy, 72% of it outside kresd" in m.why
    assert b.cpu(1) == 0 and b.cpu(0) is None


def test_a_short_spike_moves_nothing():
    b = Balancer()
    calm = load([0.40, 0.50], {0: 0.38, 1: 0.28}, {0: [0], 1: [1]})
    for i in range(6):  # crowded every other sample: never SUSTAIN in a row
        assert b.decide(CROWDED if i % 2 else calm, HOMES2, now=float(i)) is None


def test_a_cpu_busy_with_the_groups_own_workers_is_not_crowded():
    b = Balancer()
    own = load([1.0, 0.1], {0: 0.5, 2: 0.48}, {0: [0], 2: [0]})  # -f 3 on 2 CPUs: 0 and 2 share
    for i in range(5):
        assert b.decide(own, {0: 0, 2: 0}, now=float(i)) is None


def test_no_move_without_room_elsewhere():
    b = Balancer()
    full = load([1.0, 0.7], {0: 0.2, 1: 0.65}, {0: [0], 1: [1]})  # 0.7 + 0.2 > ROOM
    for i in range(5):
        assert b.decide(full, HOMES2, now=float(i)) is None


def test_the_least_busy_cpu_with_room_is_chosen():
    b = Balancer()
    ld = load([1.0, 0.5, 0.2, 0.3], {0: 0.1}, {0: [0]})
    m = None
    for i in range(cb.SUSTAIN):
        m = b.decide(ld, {0: 0}, now=float(i))
    assert (m.wid, m.cpu) == (0, 2)


def test_one_move_per_sample():
    b = Balancer()
    ld = load([1.0, 1.0, 0.0, 0.0], {0: 0.1, 1: 0.1}, {0: [0], 1: [1]})  # both crowded
    moves = [b.decide(ld, HOMES2, now=float(i)) for i in range(cb.SUSTAIN)]
    assert [m.wid for m in moves if m] == [0]
    after = load([1.0, 1.0, 0.1, 0.0], {0: 0.1, 1: 0.1}, {0: [2], 1: [1]})
    m = b.decide(after, HOMES2, now=float(cb.SUSTAIN))
    assert (m.wid, m.cpu) == (1, 3)  # the next sample moves the other one, to the idler CPU


def test_an_explicitly_mapped_worker_never_moves():
    b = Balancer()
    for i in range(5):
        assert b.decide(CROWDED, {0: 0}, now=float(i)) is None  # worker 1 is not in homes


def test_home_again_after_hold_once_the_other_load_is_gone():
    b = Balancer()
    for i in range(cb.SUSTAIN):
        b.decide(CROWDED, HOMES2, now=float(i))
    t = float(cb.SUSTAIN - 1)
    assert b.cpu(1) == 0
    still = load([0.7, 1.0], {0: 0.38, 1: 0.3}, {0: [0], 1: [0]})  # dnsperf still on CPU 1
    quiet = load([0.7, 0.05], {0: 0.38, 1: 0.3}, {0: [0], 1: [0]})
    assert b.decide(quiet, HOMES2, now=t + cb.HOLD - 0.5) is None  # held
    assert b.decide(still, HOMES2, now=t + cb.HOLD + 1) is None
    m = b.decide(quiet, HOMES2, now=t + cb.HOLD + 2)
    assert (m.wid, m.cpu, m.home) == (1, 1, True) and "fell to 5%" in m.why
    assert b.cpu(1) is None


def test_a_moved_worker_crowded_again_waits_hold_before_the_next_move():
    b = Balancer()
    for i in range(cb.SUSTAIN):
        b.decide(CROWDED, HOMES2, now=float(i))
    t = float(cb.SUSTAIN - 1)
    worse = load([1.0, 1.0, 0.0], {0: 0.1, 1: 0.1}, {0: [0], 1: [0]})  # now CPU 0 is crowded too
    homes = {0: 0, 1: 1}
    for dt in (1, 2, 3):
        m = b.decide(worse, homes, now=t + dt)
        assert m is None or m.wid == 0  # worker 1 stays put within HOLD
    m = None
    for dt in range(int(cb.HOLD), int(cb.HOLD) + 5):
        m = b.decide(worse, homes, now=t + dt) or m
    assert m is not None


def test_a_worker_that_is_gone_is_forgotten():
    b = Balancer()
    for i in range(cb.SUSTAIN):
        b.decide(CROWDED, HOMES2, now=float(i))
    assert b.cpu(1) == 0
    b.decide(load([0.4, 1.0], {0: 0.38}, {0: [0]}), {0: 0}, now=10.0)
    assert b.cpu(1) is None


cpus = st.integers(2, 4)


@st.composite
def samples(draw):
    n = draw(cpus)
    workers = draw(st.integers(1, 2 * n))
    homes = {w: w % n for w in range(workers)}
    steps = []
    for _ in range(draw(st.integers(1, 40))):
        busy = draw(st.lists(st.floats(0, 1), min_size=n, max_size=n))
        used = {w: draw(st.floats(0, 1)) for w in homes}
        steps.append((busy, used, draw(st.floats(0.5, 3))))
    return n, homes, steps


@settings(max_examples=200, deadline=None)
@given(samples())
def test_property_moves_are_rare_and_sane(case):
    """Any sequence of loads: at most one move per sample, only of movable workers,
    to another allowed CPU with room, and the same worker never twice within HOLD
    (no flapping)."""
    n, homes, steps = case
    b = Balancer()
    now = 0.0
    last: dict[int, float] = {}
    for busy, used, dt in steps:
        now += dt
        placed = {w: [b.cpu(w) if b.cpu(w) is not None else homes[w]] for w in homes}
        ld = load(busy, used, placed)
        m = b.decide(ld, homes, now)
        if m is None:
            continue
        assert m.wid in homes and 0 <= m.cpu < n and m.cpu != placed[m.wid][0]
        if m.home:
            assert m.cpu == homes[m.wid]
        else:
            assert ld.busy[m.cpu] + used[m.wid] <= cb.ROOM
            assert ld.busy[placed[m.wid][0]] >= cb.BUSY
        if m.wid in last:
            assert now - last[m.wid] >= cb.HOLD
        last[m.wid] = now


def test_sampler_measures_this_process():
    s = Sampler()
    me = os.getpid()
    assert s.sample({7: me}, time.monotonic()) is None  # the first call is a baseline
    t0 = time.monotonic()
    while time.monotonic() - t0 < 0.3:
        pass
    busy, used = s.sample({7: me, 8: 2 ** 22 + 12345}, time.monotonic())  # 8: no such process
    assert set(busy) == set(range(psutil.cpu_count()))
    assert all(0.0 <= v <= 1.0 for v in busy.values())
    assert max(busy.values()) > 0.3  # the loop above kept one CPU busy
    assert 0.5 < used[7] <= 1.2 and 8 not in used
