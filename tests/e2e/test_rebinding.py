"""The `rebinding` module against the knotd hierarchy, beside Debian's kresd
5.6 with the same config: names under glue.test. are stubbed to its knotd
(127.0.10.5) without ALLOW_LOCAL, so an answer holding a loopback address is
blocked (REFUSED with kresd's explanation TXT) and a public one passes."""
from __future__ import annotations

import dns.message
import dns.query
import dns.rcode
import dns.rdatatype
import pytest

from tests.conftest import alloc_test_addr

from .resolver import Resolver
from .signed_hierarchy import KRESD56

pytestmark = pytest.mark.e2e
CONFIG = """modules.load('rebinding')
policy.add(policy.suffix(policy.STUB('127.0.10.5'), {todname('glue.test.')}))
trust_anchors.remove('.')
"""


def summary(reply):
    txt = [(str(r.name), r.ttl, [t.to_text() for t in r]) for r in reply.additional
           if r.rdtype == dns.rdatatype.TXT]
    return (dns.rcode.to_text(reply.rcode()), sorted(str(r) for rr in reply.answer for r in rr), txt,
            bool(reply.flags & dns.flags.AA))


@pytest.fixture
def pair(kresd_bin, hierarchy, tmp_path):
    started = []
    for name, binary in (("ours", kresd_bin), ("kresd56", KRESD56)):
        r = Resolver(binary, alloc_test_addr(), tmp_path / name, config=CONFIG)
        started.append(r)
        r.start(probe=("www.glue.test.", "A"))
    yield started
    for r in started:
        r.stop()
        print(r.log_tail())


def test_blocks_private_addresses_as_kresd56(pair):
    for qname, blocked in (("ns1.glue.test.", True), ("www.glue.test.", False)):
        got = []
        for r in pair:
            q = dns.message.make_query(qname, "A")
            got.append(summary(dns.query.udp(q, r.addr, timeout=5)))
        assert got[0] == got[1], (qname, got)
        assert (got[0][0] == "REFUSED") == blocked, got[0]
        if blocked:
            assert got[0][2] == [("explanation.invalid.", 10800, ['"blocked by DNS rebinding protection"'])]
