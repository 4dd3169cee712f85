"""workers/selection/rtt.py: RFC 6298 smoothing, back-off, dead servers,
penalties and their decay, the periodic reset."""
from __future__ import annotations

import math

from hypothesis import given, strategies as st

from workers.selection import rtt
from workers.selection.rtt import UNKNOWN, RttState


def test_first_sample_sets_srtt_and_half_variance():
    s = rtt.add_rtt(UNKNOWN, 40.0, 10.0)
    assert (s.srtt, s.var, s.created, s.updated) == (40.0, 20.0, 10.0, 10.0)
    assert s.known and s.flags & rtt.HAVE_RTT


def test_rfc6298_smoothing():
    s = rtt.add_rtt(UNKNOWN, 40.0, 0.0)
    s = rtt.add_rtt(s, 80.0, 1.0)
    assert s.var == 0.75 * 20.0 + 0.25 * 40.0
    assert s.srtt == 0.875 * 40.0 + 0.125 * 80.0
    assert s.created == 0.0 and s.updated == 1.0


def test_timeout_is_srtt_plus_four_var_with_a_floor_and_backoff():
    s = rtt.add_rtt(UNKNOWN, 100.0, 0.0)  # srtt 100, var 50
    assert rtt.timeout(s, 0.8) == 0.3
    fast = rtt.add_rtt(UNKNOWN, 1.0, 0.0)  # 1 + max(2, 20) ms -> the floor
    assert rtt.timeout(fast, 0.8) == rtt.MIN_TIMEOUT
    s1 = rtt.add_timeout(s, 1.0)
    s2 = rtt.add_timeout(s1, 2.0)
    assert rtt.timeout(s1, 0.8) == 0.6 and rtt.timeout(s2, 0.8) == 1.2
    for i in range(20):
        s2 = rtt.add_timeout(s2, 3.0 + i)
    assert rtt.timeout(s2, 0.8) == min(rtt.MAX_TIMEOUT, 0.3 * 2 ** rtt.MAX_BACKOFF)


def test_unknown_server_gets_the_default_backed_off():
    assert rtt.timeout(UNKNOWN, 0.8) == 0.8
    assert rtt.timeout(rtt.add_timeout(UNKNOWN, 0.0), 0.8) == 1.6
    assert rtt.score(UNKNOWN, 0.0, 400.0) == 400.0


def test_dead_after_a_row_of_timeouts_with_growing_interval():
    s = rtt.add_rtt(UNKNOWN, 10.0, 0.0)
    for i in range(rtt.DEAD_ROW - 1):
        s = rtt.add_timeout(s, 1.0)
    assert not s.dead and s.dead_until == 0.0
    s = rtt.add_timeout(s, 2.0)
    assert s.dead and s.dead_until == 2.0 + rtt.DEAD_RETRY
    s = rtt.add_timeout(s, 3.0)
    assert s.dead_until == 3.0 + 2 * rtt.DEAD_RETRY
    for _ in range(30):
        s = rtt.add_timeout(s, 4.0)
    assert s.dead_until == 4.0 + rtt.DEAD_RETRY_MAX
    back = rtt.add_rtt(s, 12.0, 5.0)  # one reply revives it
    assert not back.dead and back.timeouts == 0 and back.dead_until == 0.0


def test_penalty_adds_decays_and_halves_per_reply():
    s = rtt.add_rtt(UNKNOWN, 10.0, 0.0)
    s = rtt.add_error(s, 0.0)
    assert rtt.score(s, 0.0, 400.0) == 10.0 + rtt.ERROR_PENALTY
    assert math.isclose(rtt.penalty_at(s, rtt.PENALTY_HALF_LIFE), rtt.ERROR_PENALTY / 2)
    s = rtt.add_timeout(s, 0.0)
    assert s.penalty == rtt.ERROR_PENALTY + rtt.TIMEOUT_PENALTY
    s = rtt.add_rtt(s, 10.0, 0.0)
    assert s.penalty == (rtt.ERROR_PENALTY + rtt.TIMEOUT_PENALTY) / 2
    for _ in range(20):
        s = rtt.add_error(s, 0.0)
    assert s.penalty == rtt.MAX_PENALTY


def test_old_future_and_implausible_entries_are_unknown():
    s = rtt.set_flags(rtt.add_rtt(UNKNOWN, 10.0, 100.0), rtt.NO_EDNS, 100.0)
    assert rtt.current(s, 100.0 + rtt.RESET_AGE - 1) is s
    assert rtt.current(s, 100.0 + rtt.RESET_AGE + 1) is UNKNOWN  # the periodic reset
    assert rtt.current(s, 50.0) is UNKNOWN  # the clock went back (reboot)
    assert rtt.current(RttState(srtt=float("nan")), 0.0) is UNKNOWN
    assert rtt.current(RttState(flags=64), 0.0) is UNKNOWN
    assert rtt.current(None, 0.0) is UNKNOWN


def test_capabilities():
    s = rtt.set_flags(UNKNOWN, rtt.NO_EDNS, 1.0)
    assert s.no_edns and not s.tcp_only and not s.known
    s = rtt.set_flags(s, rtt.TCP_ONLY, 2.0)
    assert s.no_edns and s.tcp_only
    s = rtt.add_rtt(s, 5.0, 3.0)
    assert s.no_edns and s.tcp_only and s.known


@given(st.lists(st.one_of(st.tuples(st.just("rtt"), st.floats(-1e9, 1e9, allow_nan=False)),
                          st.tuples(st.just("timeout"), st.just(0.0)),
                          st.tuples(st.just("error"), st.just(0.0))), max_size=60))
def test_any_sequence_of_outcomes_stays_valid(events):
    s, now = UNKNOWN, 1.0
    for kind, x in events:
        now += 0.5
        s = {"rtt": lambda: rtt.add_rtt(s, x, now), "timeout": lambda: rtt.add_timeout(s, now),
             "error": lambda: rtt.add_error(s, now)}[kind]()
        assert s.valid()
        assert rtt.MIN_TIMEOUT <= rtt.timeout(s, 0.8) <= rtt.MAX_TIMEOUT


def test_a_revived_server_keeps_one_timeouts_penalty():
    s = rtt.add_rtt(UNKNOWN, 10.0, 0.0)
    for _ in range(6):
        s = rtt.add_timeout(s, 0.0)
    assert s.dead and s.penalty == rtt.MAX_PENALTY
    s = rtt.add_rtt(s, 10.0, 0.0)
    assert not s.dead and s.penalty == rtt.TIMEOUT_PENALTY
