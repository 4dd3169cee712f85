"""The cache-hit fast path of the real binary (issue 14): the packet cache in C
answers repeated questions in every fork of `kresd -f 2`, with correct
answers of every kind (A, CNAME chain, NXDOMAIN, NODATA, TC=1), and a
`cache.clear()` on one fork's console is honoured by the other fork's
packet cache at once (the shared generation in the cache directory); the
pure-Python twin (KRESD_NATIVE=0) serves the same way.
"""
from __future__ import annotations

import time

import dns.flags
import dns.message
import dns.query
import pytest

from .hierarchy import CASES, TTL, check_case
from .resolver import CONFIG as HIERARCHY_CONFIG
from .test_kresd_forks import ask, group_factory, map_json, tty_json  # noqa: F401  (fixture)

pytestmark = pytest.mark.e2e
CONFIG = "modules.load('stats')\n" + HIERARCHY_CONFIG
KINDS = ("glue", "cname", "nxdomain", "nodata", "noglue")


def _fast(g) -> list[dict]:
    return map_json(g.leader_tty, "worker.stats().fastpath")


def _ttl(msg: dns.message.Message) -> int:
    return min(rr.ttl for rr in msg.answer)


@pytest.mark.parametrize("native", ["1", "0"])
def test_packet_cache_answers_in_every_fork(hierarchy, group_factory, tmp_path, listen_addr, native):
    g = group_factory(tmp_path / "rd", ["-f", "2", "-a", f"{listen_addr[0]}@{listen_addr[1]}"], CONFIG, n=2,
                      env={"KRESD_NATIVE": native})
    for name in KINDS:
        case = CASES[name]
        for _ in range(60):  # a new source port each: both forks get some
            check_case(ask(listen_addr, case.qname, case.qtype), case)
    big = CASES["big"]
    for _ in range(20):  # too big for UDP: TC=1 from the packet cache too, complete over TCP
        q = dns.message.make_query(big.qname, big.qtype, use_edns=0, payload=1232)
        r = dns.query.udp(q, listen_addr[0], port=listen_addr[1], timeout=3)
        assert r.flags & dns.flags.TC and not r.answer
    check_case(ask(listen_addr, big.qname, big.qtype, tcp=True), big)
    fast = _fast(g)
    assert len(fast) == 2
    assert all(f["backend"] == ("c" if native == "1" else "pure") for f in fast), fast
    assert all(f["packet_hits"] > 20 for f in fast), fast  # both forks answered from their packet cache
    answered = map_json(g.leader_tty, "worker.stats().queries")
    assert sum(answered) >= 60 * len(KINDS) + 20


def test_clear_on_one_fork_empties_every_packet_cache(hierarchy, group_factory, tmp_path, listen_addr):
    g = group_factory(tmp_path / "rd", ["-f", "2", "-a", f"{listen_addr[0]}@{listen_addr[1]}"], CONFIG, n=2)
    case = CASES["glue"]
    check_case(ask(listen_addr, case.qname, case.qtype), case)  # cached now, TTL as the zone gives it
    time.sleep(2.2)
    aged = [ask(listen_addr, case.qname, case.qtype) for _ in range(60)]
    assert all(_ttl(m) <= TTL - 2 for m in aged)  # both forks answer from the cache
    before = _fast(g)
    assert all(f["packet_hits"] > 0 for f in before), before
    # the leader clears; the other fork's packet cache must not answer the old data after that
    assert isinstance(tty_json(g.leader_tty, "cache.clear().count"), int)
    fresh = [ask(listen_addr, case.qname, case.qtype) for _ in range(60)]
    for m in fresh:
        check_case(m, case)
    assert all(_ttl(m) >= TTL - 1 for m in fresh), sorted(_ttl(m) for m in fresh)
    after = _fast(g)
    assert all(a["generation"] > b["generation"] for a, b in zip(after, before)), (before, after)


def test_plain_misses_are_asked_without_a_request(hierarchy, group_factory, tmp_path, listen_addr):
    """The fast miss (workers/fastmiss.py) of the real binary: once the zone
    cut is cached, a plain A miss below it is asked and answered without a
    Request, a NODATA reply is handed to the full path with the reply it
    got, and the stats module counts both."""
    g = group_factory(tmp_path / "rd", ["-f", "1", "-a", f"{listen_addr[0]}@{listen_addr[1]}"], CONFIG, n=1)
    check_case(ask(listen_addr, CASES["nxdomain"].qname, CASES["nxdomain"].qtype), CASES["nxdomain"])
    [before] = _fast(g)
    for name in ("glue", "nodata"):
        case = CASES[name]
        check_case(ask(listen_addr, case.qname, case.qtype), case)
    [after] = _fast(g)
    miss = {k: after["miss"][k] - before["miss"].get(k, 0) for k in ("asked", "answered", "handed_over")}
    assert miss == {"asked": 2, "answered": 1, "handed_over": 1}, (before, after)
    assert map_json(g.leader_tty, "stats.get('answer.total')") == [3]
    check_case(ask(listen_addr, CASES["glue"].qname, CASES["glue"].qtype), CASES["glue"])  # now a cache hit
    assert _fast(g)[0]["miss"]["asked"] == after["miss"]["asked"]
