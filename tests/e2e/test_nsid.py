"""The `nsid` module on the real binary against the knotd hierarchy (RFC
5001): a query with the NSID option gets the configured identifier, also when
the answer comes from the cache (after the same question without NSID filled
the packet cache); a query without it gets no NSID; `nsid.name()` reads it."""
from __future__ import annotations

import dns.edns
import dns.message
import dns.query
import pytest

from tests.conftest import alloc_test_addr

from .resolver import CONFIG, Resolver
from .test_kresd_forks import tty

pytestmark = pytest.mark.e2e


def nsid_of(reply):
    for o in reply.options:
        if int(o.otype) == 3:
            return o.to_wire()
    return None


def test_nsid_on_fresh_and_cached_answers(kresd_bin, hierarchy, tmp_path):
    addr = alloc_test_addr()
    r = Resolver(kresd_bin, addr, tmp_path / "run", config=CONFIG + "modules.load('nsid')\nnsid.name('kp-1')\n")
    r.start()
    try:
        for _ in range(3):  # the repeats are cache hits (packet cache for the plain query)
            plain = dns.query.udp(dns.message.make_query("www.glue.test.", "A", use_edns=0), addr, timeout=5)
            assert plain.answer and nsid_of(plain) is None, plain
            q = dns.message.make_query("www.glue.test.", "A", use_edns=0, options=[dns.edns.GenericOption(3, b"")])
            a = dns.query.udp(q, addr, timeout=5)
            assert a.answer and nsid_of(a) == b"kp-1", a
        (out,) = tty(r.rundir / "tty" / str(r.proc.pid), "nsid.name()")
        assert "kp-1" in out, out
    finally:
        r.stop()
