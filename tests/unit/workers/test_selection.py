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
