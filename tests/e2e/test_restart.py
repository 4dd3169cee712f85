"""The cache survives kill -9: a restarted resolver answers with the authoritative servers gone.

Timeline (no sleep longer than ~2 s):
  1. resolver on 127.0.10.11 resolves every case (cold cache), remembering each
     reply's TTLs and when the query started and ended;
  2. kill -9 the resolver, stop every knotd;
  3. wait until at least MIN_GAP seconds passed since the last reply of step 1;
  4. restart the resolver on the same rundir and ask again: same answers, with
     TTLs lowered by the time that passed (the cache stores whole seconds, so
     each bound allows one second of rounding).
"""
from __future__ import annotations

import math
import time

import dns.rdatatype
import pytest

from .conftest import RESTART_ADDR
from .hierarchy import CASES, check_case, query

pytestmark = [pytest.mark.e2e, pytest.mark.root]

MIN_GAP = 2.05  # seconds between the two rounds: enough for TTLs to drop by >= 1


def ttls(msg) -> dict[tuple[str, str, str], int]:
    """TTL of every answer RRset and of the SOA of negative answers."""
    out = {}
    for section, rrsets in (("answer", msg.answer), ("authority", msg.authority)):
        for rrset in rrsets:
            if section == "answer" or rrset.rdtype == dns.rdatatype.SOA:
                out[(section, rrset.name.to_text(), dns.rdatatype.to_text(rrset.rdtype))] = rrset.ttl
    return out


def ask(name: str):
    case = CASES[name]
    t0 = time.monotonic()
    r = query(RESTART_ADDR, case.qname, case.qtype, timeout=5, tcp=(name == "big"))
    return r, t0, time.monotonic()


def test_cache_survives_kill9_without_upstreams(hierarchy, start_resolver, tmp_path):
    rundir = tmp_path / "rundir"
    res = start_resolver(RESTART_ADDR, rundir)
    first = {}
    for name in sorted(CASES):
        r, t0, t1 = ask(name)
        check_case(r, CASES[name])
        first[name] = (ttls(r), t0, t1)

    res.kill9()
    hierarchy.stop()  # from now on only the cache can answer
    last = max(t1 for _, _, t1 in first.values())
    time.sleep(max(0.0, MIN_GAP - (time.monotonic() - last)))

    start_resolver(RESTART_ADDR, rundir, probe=(CASES["glue"].qname, CASES["glue"].qtype))
    for name in sorted(CASES):
        r, t0, t1 = ask(name)
        check_case(r, CASES[name])  # same rcode, records and SOA as before
        before, b0, b1 = first[name]
        after = ttls(r)
        assert after.keys() == before.keys(), (name, before, after)
        lo_gap, hi_gap = t0 - b1, t1 - b0  # time between the two replies, bounds
        for key, ttl_before in before.items():
            ttl_after = after[key]
            assert ttl_after <= ttl_before - math.floor(lo_gap) + 1, \
                f"{name} {key}: TTL {ttl_before} -> {ttl_after} after {lo_gap:.2f}s: not decreased"
            assert ttl_after >= ttl_before - math.ceil(hi_gap) - 1, \
                f"{name} {key}: TTL {ttl_before} -> {ttl_after} after {hi_gap:.2f}s: dropped too much"
            assert ttl_after < ttl_before, f"{name} {key}: TTL {ttl_before} -> {ttl_after}"
