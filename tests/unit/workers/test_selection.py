"""workers/selection/iterate.py: what each selection error does to a server,
for one query (kresd lib/selection.c error()) and across requests."""
from __future__ import annotations

import random

import pytest

from workers.selection.iterate import QuerySelection, Selection, SelectionError as E


class Clock:
    def __init__(self):
        self.now = 100.0

    def __call__(self):
        return self.now


@pytest.fixture
def sel():
    return Selection(Clock(), random.Random(1))


@pytest.mark.parametrize("err", [E.NOTIMPL, E.OTHER_RCODE, E.BAD_CNAME, E.MALFORMED,
                                 E.MISMATCHED, E.TRUNCATED])
def test_fatal_errors_break_the_server_at_once(sel, err):
    q = QuerySelection()
    sel.report_error("192.0.2.1", err, q)
    assert not q.usable("192.0.2.1")
    assert sel.choose(["192.0.2.1"], q) is None
    assert sel.choose(["192.0.2.1", "192.0.2.2"], q) == "192.0.2.2"
    assert q.local("192.0.2.1").errors == {err: 1}


@pytest.mark.parametrize("err", [E.REFUSED, E.SERVFAIL, E.LAME])
def test_refused_servfail_lame_first_turn_minimisation_off(sel, err):
    q = QuerySelection()
    sel.report_error("192.0.2.1", err, q, minimized=True)
    assert q.no_minimize
    assert q.usable("192.0.2.1") and q.errors("192.0.2.1") == 1
    # asked again only after the servers without errors
    assert sel.choose(["192.0.2.1", "192.0.2.2"], q) == "192.0.2.2"
    assert sel.choose(["192.0.2.1"], q) == "192.0.2.1"
    sel.report_error("192.0.2.1", err, q, minimized=False)
    assert not q.usable("192.0.2.1") and q.errors("192.0.2.1") == 2


@pytest.mark.parametrize("err", [E.REFUSED, E.SERVFAIL, E.LAME])
def test_refused_to_a_full_name_breaks_the_server(sel, err):
    q = QuerySelection()
    sel.report_error("192.0.2.1", err, q, minimized=False)
    assert not q.usable("192.0.2.1")
    q2 = QuerySelection(no_minimize=True)
    sel.report_error("192.0.2.1", err, q2, minimized=True)
    assert not q2.usable("192.0.2.1")


def test_formerr_first_drops_edns_then_breaks(sel):
    q = QuerySelection()
    sel.report_error("192.0.2.1", E.FORMERR, q, edns=True)
    assert q.usable("192.0.2.1") and q.errors("192.0.2.1") == 1
    sel.report_error("192.0.2.1", E.FORMERR, q, edns=False)
    assert not q.usable("192.0.2.1")
    q2 = QuerySelection()
    sel.report_error("192.0.2.9", E.FORMERR, q2, edns=False)
    assert not q2.usable("192.0.2.9")
    # one server's FORMERR to EDNS does not break another that was never
    # asked without EDNS (the EDNS fallback is per address)
    q3 = QuerySelection()
    sel.report_error("192.0.2.7", E.FORMERR, q3, edns=True)
    sel.report_error("192.0.2.8", E.FORMERR, q3, edns=True)
    assert q3.usable("192.0.2.7") and q3.usable("192.0.2.8")


def test_timeout_exhausts_at_this_cut_and_backs_off_for_everyone(sel):
    q = QuerySelection()
    sel.report_error("192.0.2.1", E.TIMEOUT, q)
    assert not q.usable("192.0.2.1")
    q.new_cut()  # a new zone cut may list the address again
    assert q.usable("192.0.2.1") and q.errors("192.0.2.1") == 1
    assert sel.state("192.0.2.1").timeouts == 1
    assert sel.timeout("192.0.2.1", 0.8) == 1.6  # never measured: the default, backed off


def test_broken_survives_a_new_cut(sel):
    q = QuerySelection()
    sel.report_error("192.0.2.1", E.MALFORMED, q)
    q.new_cut()
    assert not q.usable("192.0.2.1")


def test_errors_other_than_timeouts_stay_with_the_query(sel):
    """kresd keeps them in the query's local state: the next request asks the
    server again (it may have been a transient failure or another zone); the
    shared state only gets a penalty, no back-off."""
    q = QuerySelection()
    for err in (E.REFUSED, E.SERVFAIL, E.MALFORMED, E.LAME, E.FORMERR):
        sel.report_error("192.0.2.1", err, q)
    st = sel.state("192.0.2.1")
    assert (st.timeouts, st.dead) == (0, False) and st.penalty > 0
    assert sel.choose(["192.0.2.1"], QuerySelection()) == "192.0.2.1"


def test_fewer_errors_beat_a_faster_server(sel):
    q = QuerySelection()
    sel.report_rtt("192.0.2.1", 0.001)
    sel.report_rtt("192.0.2.2", 0.300)
    assert sel.choose(["192.0.2.1", "192.0.2.2"], q) == "192.0.2.1"
    sel.report_error("192.0.2.1", E.REFUSED, q)
    assert sel.choose(["192.0.2.1", "192.0.2.2"], q) == "192.0.2.2"


# -- choice over the learned state (fake clock, seeded random) -------------------

A, B, C = "192.0.2.10", "192.0.2.50", "192.0.2.200"
DELAY = {A: 0.010, B: 0.050, C: 0.200}


def run(sel, clock, n, lost=None):
    """n queries against A/B/C answering after DELAY; `lost` drops that many
    queries to A first. The count of queries each server got."""
    got = {A: 0, B: 0, C: 0}
    lost = {A: lost or 0}
    for _ in range(n):
        q = QuerySelection()
        while True:
            addr = sel.choose([A, B, C], q)
            got[addr] += 1
            if lost.get(addr):
                lost[addr] -= 1
                clock.now += sel.timeout(addr, 0.8)
                sel.report_error(addr, E.TIMEOUT, q)
                continue
            clock.now += DELAY[addr]
            sel.report_rtt(addr, DELAY[addr])
            break
    return got


@pytest.mark.parametrize("seed", range(5))
def test_most_queries_go_to_the_fastest_and_every_server_is_explored(seed):
    clock = Clock()
    sel = Selection(clock, random.Random(seed))
    got = run(sel, clock, 200)
    assert got[A] >= 0.8 * 200 and min(got.values()) >= 2, got


@pytest.mark.parametrize("seed", range(8))
def test_a_transient_loss_is_forgiven_gradually(seed):
    """3 lost packets at the fastest server: traffic moves away, and comes
    back to it as the penalty decays and its exploration replies halve it."""
    clock = Clock()
    sel = Selection(clock, random.Random(seed))
    run(sel, clock, 100)
    for _ in range(3):
        clock.now += sel.timeout(A, 0.8)
        sel.report_error(A, E.TIMEOUT, QuerySelection())
    assert sel.state(A).penalty > 250.0 and sel.state(A).timeouts == 3
    first = run(sel, clock, 20)
    assert first[A] < 10, first  # not forgiven at once
    run(sel, clock, 80)
    got = run(sel, clock, 100)
    assert got[A] >= 80, got


def test_load_is_spread_over_servers_within_20_ms():
    clock = Clock()
    sel = Selection(clock, random.Random(3))
    sel.EPSILON = 0.0
    sel.report_rtt("192.0.2.1", 0.010)
    sel.report_rtt("192.0.2.2", 0.025)  # within 10 + 20 ms
    sel.report_rtt("192.0.2.3", 0.060)
    picks = [sel.choose(["192.0.2.1", "192.0.2.2", "192.0.2.3"], QuerySelection()) for _ in range(400)]
    assert 120 < picks.count("192.0.2.2") < 280 and picks.count("192.0.2.3") == 0


def test_unknown_servers_are_tried_first():
    clock = Clock()
    sel = Selection(clock, random.Random(1))
    sel.report_rtt("192.0.2.1", 0.001)
    assert sel.choose(["192.0.2.1", "192.0.2.2"], QuerySelection()) == "192.0.2.2"


def test_a_dead_server_is_skipped_then_let_through_or_left_to_the_prober():
    clock = Clock()
    sel = Selection(clock, random.Random(1))
    sel.report_rtt(A, 0.010)
    sel.report_rtt(B, 0.050)
    for _ in range(4):
        sel.report_error(A, E.TIMEOUT, QuerySelection())
    assert sel.state(A).dead and A in sel.dead_seen
    assert {sel.choose([A, B], QuerySelection()) for _ in range(100)} == {B}
    assert sel.choose([A], QuerySelection()) == A  # the only one: asked anyway
    clock.now += 1.5  # the dead interval is over: kresd lets a query through
    assert A in {sel.choose([A, B], QuerySelection()) for _ in range(100)}
    sel.probing = True  # unless a prober asks it off the clients' path
    assert {sel.choose([A, B], QuerySelection()) for _ in range(100)} == {B}
    assert sel.choose([A], QuerySelection()) == A  # the only one, its dead interval over: let through
    sel.report_error(A, E.TIMEOUT, QuerySelection())  # dead again, for longer
    assert sel.choose([A], QuerySelection()) is None  # within it: none asked, the prober will
    clock.now += 2.5
    assert sel.choose([A], QuerySelection()) == A
    sel.report_rtt(A, 0.010)  # the probe's reply
    assert not sel.state(A).dead and A not in sel.dead_seen


def test_forks_share_what_they_learn_through_the_table(tmp_path):
    from workers.selection import table

    clock = Clock()
    one = Selection(clock, random.Random(1), table.open_shared(str(tmp_path)))
    two = Selection(clock, random.Random(2), table.open_shared(str(tmp_path)))
    one.report_rtt(A, 0.010)
    one.report_rtt(B, 0.050)
    one.set_no_edns(B)
    assert two.state(A).srtt == 10.0 and two.state(B).no_edns
    two.EPSILON = 0.0
    assert two.choose([A, B], QuerySelection()) == A
    two.reset(A)
    assert not one.state(A).known and one.show().keys() == {B}


def test_show_and_reset():
    clock = Clock()
    sel = Selection(clock, random.Random(1))
    sel.report_rtt(A, 0.010)
    sel.set_tcp_only("192.0.2.9#5353")
    clock.now += 2
    shown = sel.show()
    assert shown[A] == {"srtt": 10.0, "var": 5.0, "timeout": 200.0, "penalty": 0.0, "timeouts": 0,
                        "dead": False, "no_edns": False, "tcp_only": False, "age": 2.0}
    assert shown["192.0.2.9#5353"]["tcp_only"]
    sel.reset()
    assert sel.show() == {}
