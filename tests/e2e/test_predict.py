"""predict against the knotd hierarchy: with TTLs clamped to 6 s, a name asked
again when its cached record is expiring (remaining TTL within 5 s + 1 %, as
kresd's is_expiring) is refreshed from upstream right after that answer, so
the next answer carries a fresh TTL; without the module it keeps counting
down."""
from __future__ import annotations

import time

import dns.message
import dns.query
import pytest

from tests.conftest import alloc_test_addr

from .resolver import CONFIG, Resolver
from .test_kresd_forks import tty

pytestmark = pytest.mark.e2e
SHORT = "cache.size = 20 * MB\ncache.min_ttl(1)\ncache.max_ttl(6)\n"


def ttl(addr):
    r = dns.query.udp(dns.message.make_query("www.glue.test.", "A"), addr, timeout=5)
    return r.answer[0].ttl


def test_expiring_record_is_refreshed(kresd_bin, hierarchy, tmp_path):
    started = []
    try:
        for name, config in (("predict", CONFIG + "modules.load('predict')\n" + SHORT), ("plain", CONFIG + SHORT)):
            r = Resolver(kresd_bin, alloc_test_addr(), tmp_path / name, config=config)
            started.append(r)
            r.start()
        seen = {}
        for r in started:
            seen[r] = [ttl(r.addr)]
        time.sleep(2.2)
        for r in started:
            seen[r].append(ttl(r.addr))  # expiring now: predict refreshes after answering
        time.sleep(0.8)
        for r in started:
            seen[r].append(ttl(r.addr))
        pred, plain = (seen[r] for r in started)
        assert pred[1] <= 4 and plain[1] <= 4, (pred, plain)  # (the first answer: the upstream TTL)
        assert pred[2] >= 5, pred  # refreshed
        assert plain[2] <= 3, plain  # still counting down
        (n,) = tty(started[0].rundir / "tty" / str(started[0].proc.pid), "predict.refreshed")
        assert int(n.strip()) >= 1
    finally:
        for r in started:
            r.stop()
