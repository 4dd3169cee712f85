"""worker.stats() means what it means in kresd 5.6: requests from clients, queries sent upstream.

kresd's worker.stats() counts client requests in `queries` and `concurrent`
(being resolved now), and *outbound* queries in `udp`, `tcp`, `ipv4`, `ipv6` and
`timeout` (daemon/worker.h). Both resolvers (ours and Debian's kresd 5.6) get
the same 50 concurrent identical misses through tests/e2e/spoofer.py's root,
which answers 0.3 s late: while they wait, `concurrent` counts them; afterwards
`queries` grew by 50, `concurrent` is 0, and `udp` / `ipv4` grew by exactly the
UDP queries the root received.

Addresses (port 53): 127.0.10.136 the root, 127.0.10.137 ours, .138 kresd 5.6.
"""
from __future__ import annotations

import threading
import time

import dns.message
import dns.query
import dns.rcode
import pytest

from .resolver import Resolver
from .signed_hierarchy import resolver_bin
from .spoofer import SpoofingRoot
from .test_kresd_forks import tty

pytestmark = [pytest.mark.e2e, pytest.mark.root]

ROOT_ADDR = "127.0.10.136"
ADDRS = {"ours": "127.0.10.137", "kresd56": "127.0.10.138"}
NAME = "www.stats.test."
CLIENTS = 50
FIELDS = ("queries", "concurrent", "udp", "tcp", "ipv4", "ipv6", "timeout")

CONFIG = f"""modules.load('hints > iterate')
policy.add(policy.suffix(policy.PASS, {{todname('test.')}}))
trust_anchors.remove('.')
option('ALLOW_LOCAL', true)
hints.root({{['a.root-servers.net.'] = '{ROOT_ADDR}'}})
"""


def stats(r: Resolver, kind: str) -> dict:
    """The worker.stats() fields above, each asked as plain text (both consoles print a number).
    kresd 5.6 keeps its control sockets in rundir/control/, kresd-py in rundir/tty/."""
    path = r.rundir / ("tty" if kind == "ours" else "control") / str(r.proc.pid)
    out = tty(path, *(f"worker.stats().{f}" for f in FIELDS))
    return {f: int(float(v.strip())) for f, v in zip(FIELDS, out)}


@pytest.mark.parametrize("kind", ["ours", "kresd56"])
def test_worker_stats_counts_client_requests_and_upstream_queries(kresd_bin, tmp_path, kind):
    root = SpoofingRoot(ROOT_ADDR, {(NAME, "A"): ["192.0.2.82"]}, delay=0.3).start()
    try:
        r = Resolver(resolver_bin(kind, kresd_bin), ADDRS[kind], tmp_path / kind, config=CONFIG).start()
        try:
            # the start-up probe's own requests (some given up by the client) end first
            deadline = time.monotonic() + 5
            while (before := stats(r, kind))["concurrent"] and time.monotonic() < deadline:
                time.sleep(0.05)
            seen_before = len(root.seen)
            answers: list = [None] * CLIENTS
            go = threading.Barrier(CLIENTS + 1)

            def one(i: int) -> None:
                go.wait()
                try:
                    answers[i] = dns.query.udp(dns.message.make_query(NAME, "A"), ADDRS[kind], timeout=5)
                except Exception as e:  # noqa: BLE001 - recorded as the failure it is
                    answers[i] = e

            threads = [threading.Thread(target=one, args=(i,)) for i in range(CLIENTS)]
            for t in threads:
                t.start()
            go.wait()
            time.sleep(0.15)  # every request has arrived; the root's answer is 0.15 s away
            during = stats(r, kind)
            for t in threads:
                t.join(10)
            after = stats(r, kind)
        finally:
            r.stop()
        upstream = root.seen[seen_before:]
    finally:
        root.stop()
    bad = [a for a in answers if not isinstance(a, dns.message.Message) or a.rcode() != dns.rcode.NOERROR]
    assert not bad, bad[:3]
    d = {f: after[f] - before[f] for f in FIELDS}
    print(f"{kind}: before {before}, during {during}, after {after}, root saw {len(upstream)} queries")
    assert before["concurrent"] == 0 and after["concurrent"] == 0
    assert during["concurrent"] >= CLIENTS * 0.8  # (a few may still be on their way in)
    assert d["queries"] == CLIENTS
    udp = sum(1 for q in upstream if q[2] == "udp")
    tcp = len(upstream) - udp
    assert (d["udp"], d["tcp"], d["ipv4"], d["ipv6"], d["timeout"]) == (udp, tcp, udp + tcp, 0, 0)
    assert udp >= 1
