"""serve_stale against the knotd hierarchy: with TTLs clamped to 2 s, an
answer is cached, every knotd is stopped, the TTL runs out, and the same
question is still answered from the expired data with a TTL of 1 s (RFC 8767)
instead of SERVFAIL. Without the module the same situation gives SERVFAIL.
The hierarchy is started again afterwards (tests/e2e/conftest.py restarts it
for the next module anyway).

Known difference, kept: kresd 5.6's serve_stale turns stale data on only once
a query has been resolving for 3 s (its module checks `creation_time + 3 s`
when it produces the next upstream query); here the stopped servers refuse at
once (ICMP), so kresd 5.6 answers SERVFAIL within that time. kresd-py serves
the stale data as soon as no upstream could answer, as RFC 8767 describes."""
from __future__ import annotations

import time

import dns.message
import dns.query
import dns.rcode
import pytest

from tests.conftest import alloc_test_addr

from .resolver import CONFIG, Resolver
from .test_kresd_forks import tty

pytestmark = pytest.mark.e2e
STALE = CONFIG + "modules.load('stats')\nmodules.load('serve_stale')\ncache.size = 20 * MB\ncache.min_ttl(1)\ncache.max_ttl(2)\n"
PLAIN = CONFIG + "cache.size = 20 * MB\ncache.min_ttl(1)\ncache.max_ttl(2)\n"


def ask(addr, ede=None):
    r = dns.query.udp(dns.message.make_query("www.glue.test.", "A", use_edns=0), addr, timeout=15)
    if ede is not None:
        ede.extend(o.code for o in r.options if int(o.otype) == 15)
    return dns.rcode.to_text(r.rcode()), [(rr.ttl, sorted(rd.to_text() for rd in rr)) for rr in r.answer]


def test_stale_answers_when_upstreams_are_down(kresd_bin, hierarchy, tmp_path):
    started = []
    try:
        for name, binary, config in (("ours", kresd_bin, STALE), ("ours-plain", kresd_bin, PLAIN)):
            r = Resolver(binary, alloc_test_addr(), tmp_path / name, config=config)
            started.append(r)
            r.start(probe=("www.glue.test.", "A"))
        fresh = [ask(r.addr) for r in started]
        assert all(f[0] == "NOERROR" and f[1] for f in fresh), fresh
        hierarchy.stop()
        time.sleep(3.5)  # past the 2 s TTL of everything cached
        edes: list = []
        ours, plain = ask(started[0].addr, edes), ask(started[1].addr)
        assert ours == ("NOERROR", [(1, ["192.0.2.1"])]), ours
        assert edes == [3]  # RFC 8914 Stale Answer
        (count,) = tty(started[0].rundir / "tty" / str(started[0].proc.pid), "stats.get('answer.stale')")
        assert count.strip() == "1", count
        assert plain[0] == "SERVFAIL", plain
    finally:
        for r in started:
            r.stop()
        if not hierarchy.running():
            hierarchy.start()
