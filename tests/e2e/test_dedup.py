"""Fifty concurrent clients asking the same uncached name cost one upstream query.

The resolver's only upstream is tests/e2e/spoofer.py's SpoofingRoot (its real
replies come 0.3 s late, raced by spoofed copies), so the fifty requests are
all in flight at once; identical upstream questions to the same server share
one query (workers/outbound.py), whatever 0x20 case each request chose. Every
client must get the real answer. Debian's kresd 5.6 runs the same test and
its figure is printed beside ours (it deduplicates too).

Addresses (port 53): 127.0.10.133 the root, 127.0.10.134 ours, .135 kresd 5.6.
"""
from __future__ import annotations

import threading

import dns.message
import dns.query
import dns.rcode
import pytest

from .resolver import Resolver
from .signed_hierarchy import resolver_bin
from .spoofer import SpoofingRoot

pytestmark = [pytest.mark.e2e, pytest.mark.root]

ROOT_ADDR = "127.0.10.133"
ADDRS = {"ours": "127.0.10.134", "kresd56": "127.0.10.135"}
NAME = "www.dedup.test."
REAL_A = "192.0.2.81"
CLIENTS = 50

CONFIG = f"""modules.load('hints > iterate')
policy.add(policy.suffix(policy.PASS, {{todname('test.')}}))
trust_anchors.remove('.')
option('ALLOW_LOCAL', true)
hints.root({{['a.root-servers.net.'] = '{ROOT_ADDR}'}})
"""


def concurrent_asks(addr: str) -> list:
    out: list = [None] * CLIENTS
    go = threading.Barrier(CLIENTS)

    def one(i: int) -> None:
        go.wait()
        try:
            out[i] = dns.query.udp(dns.message.make_query(NAME, "A"), addr, timeout=5)
        except Exception as e:  # noqa: BLE001 - recorded as the failure it is
            out[i] = e

    threads = [threading.Thread(target=one, args=(i,)) for i in range(CLIENTS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    return out


@pytest.mark.parametrize("kind", ["ours", "kresd56"])
def test_concurrent_identical_misses_cost_one_upstream_query(kresd_bin, tmp_path, kind):
    root = SpoofingRoot(ROOT_ADDR, {(NAME, "A"): [REAL_A]}, delay=0.3).start()
    try:
        r = Resolver(resolver_bin(kind, kresd_bin), ADDRS[kind], tmp_path / kind, config=CONFIG).start()
        try:
            answers = concurrent_asks(ADDRS[kind])
        finally:
            r.stop()
        upstream = [q for q in root.queries(NAME, "A") if q[2] == "udp"]
    finally:
        root.stop()
    print(f"{kind}: {CLIENTS} concurrent identical misses -> {len(upstream)} upstream UDP "
          f"quer{'y' if len(upstream) == 1 else 'ies'} for {NAME} A")
    bad = [a for a in answers if not isinstance(a, dns.message.Message) or a.rcode() != dns.rcode.NOERROR
           or {rd.to_text() for rr in a.answer for rd in rr} != {REAL_A}]
    assert not bad, bad[:3]
    if kind == "ours":
        assert len(upstream) == 1
