"""Spoofed upstream replies never reach the client or the cache.

The resolver's only upstream is tests/e2e/spoofer.py's SpoofingRoot (root
hints point to it): every UDP reply it gives is raced by spoofed copies whose
A records read 6.6.6.6: from a wrong source port, with a wrong ID, and with
the QNAME case flipped when the resolver randomised it (0x20). The real reply
follows 0.1 s later. The client must get the real answer, the same answer again
from the cache (no new upstream query), and the priming data (root NS glue)
must be the real one too. The resolver's QNAMEs must carry mixed case (0x20 on
by default, as kresd 5.6 does).

Run against our binary and against Debian's kresd 5.6 (the reference: it
passes the same test; on the wrong-case spoof it retries over TCP).
Addresses (port 53): 127.0.10.130 the spoofing root, 127.0.10.131 ours,
127.0.10.132 kresd 5.6.
"""
from __future__ import annotations

import dns.rcode
import dns.rdatatype
import pytest

from .hierarchy import query
from .resolver import Resolver
from .signed_hierarchy import KRESD56
from .spoofer import SPOOFED_A, SpoofingRoot

pytestmark = [pytest.mark.e2e, pytest.mark.root]

ROOT_ADDR = "127.0.10.130"
RESOLVER_ADDRS = {"ours": "127.0.10.131", "kresd56": "127.0.10.132"}
REAL_A = "192.0.2.80"
NAME = "www.spoof-target.test."

CONFIG = f"""modules.load('hints > iterate')
policy.add(policy.suffix(policy.PASS, {{todname('test.')}}))
trust_anchors.remove('.')
option('ALLOW_LOCAL', true)
hints.root({{['a.root-servers.net.'] = '{ROOT_ADDR}'}})
"""


@pytest.fixture
def root():
    """A fresh SpoofingRoot per test (its records of queries and spoofs start empty)."""
    r = SpoofingRoot(ROOT_ADDR, {(NAME, "A"): [REAL_A]}).start()
    yield r
    r.stop()


def a_records(msg) -> set[str]:
    return {rd.to_text() for rrset in msg.answer if rrset.rdtype == dns.rdatatype.A for rd in rrset}


def all_rdata(msg) -> str:
    return " ".join(rrset.to_text() for sect in (msg.answer, msg.authority, msg.additional)
                    for rrset in sect)


@pytest.mark.parametrize("kind", ["ours", "kresd56"])
def test_spoofed_replies_ignored_and_never_cached(kind, root, kresd_bin, tmp_path):
    binary = kresd_bin if kind == "ours" else KRESD56
    if not binary.exists():
        pytest.fail(f"{binary} is missing: run tools/install.sh")
    resolver = Resolver(binary, RESOLVER_ADDRS[kind], tmp_path / "rundir", config=CONFIG)
    resolver.start()
    try:
        first = query(resolver.addr, NAME, "A", timeout=5)
        asked = len(root.queries(NAME))
        second = query(resolver.addr, NAME, "A", timeout=5)
        glue = query(resolver.addr, "a.root-servers.net.", "A", timeout=5)
    finally:
        resolver.stop()
        print(resolver.log_tail())
    print(f"{kind}: spoofs sent {dict(root.spoofs)}; upstream queries: "
          + ", ".join(f"{n.decode()} {t} {tr}" for n, t, tr in root.seen))

    assert root.spoofs["port"] >= 1 and root.spoofs["id"] >= 1  # the race really happened
    assert (first.rcode(), a_records(first)) == (dns.rcode.NOERROR, {REAL_A})
    assert asked >= 1 and len(root.queries(NAME)) == asked  # the second answer came from the cache
    assert (second.rcode(), a_records(second)) == (dns.rcode.NOERROR, {REAL_A})
    assert a_records(glue) == {ROOT_ADDR}
    for msg in (first, second, glue):
        assert SPOOFED_A not in all_rdata(msg)
    # 0x20: the resolver randomised the QNAME case, so the wrong-case spoof was sent too
    mixed = [n for n, _t, tr in root.seen if tr == "udp" and n != n.lower()]
    assert mixed, "no upstream QNAME with randomised case (0x20 off)"
    assert root.spoofs["case"] >= 1
