"""NXNSAttack (CVE-2020-12667): a referral to 120 glueless NS names under a victim zone.

Our binary and Debian's kresd 5.6 resolve the same attacker names against the
same scripted servers (tests/e2e/nxns.py), one resolver after the other, and
the test prints the upstream queries per client query of both. Ours must cost
no more than kresd's: in total, and at the victim's server. Two victims: one
answering NXDOMAIN, one silent (every query to it times out).

Queries over TCP count as well. The silent victim also gets our prober's
re-asks of a dead server (one per dead interval, which doubles): they are
counted against the client queries they happen to fall beside.

Addresses: scripted servers 127.0.11.2-4; the resolvers 127.0.11.10 (ours) and
127.0.11.11 (kresd 5.6).
"""
from __future__ import annotations

import pytest

from . import nxns
from .resolver import Resolver
from .signed_hierarchy import resolver_bin

pytestmark = [pytest.mark.e2e, pytest.mark.root]

ADDRS = {"ours": "127.0.11.10", "kresd56": "127.0.11.11"}
QUERIES = {"nxdomain": 4, "silent": 6}  # silent: past the first queries, where both learn it is dead


def run(kind: str, kresd_bin, tmp_path, mode: str) -> list[dict]:
    servers = nxns.Servers(mode).start()
    try:
        try:
            r = Resolver(resolver_bin(kind, kresd_bin), ADDRS[kind], tmp_path / f"{kind}-{mode}",
                         config=nxns.config()).start(probe=("attacker.", "NS"))
        except RuntimeError as e:
            pytest.fail(f"{kind}: {e}")
        try:
            return nxns.measure(servers, ADDRS[kind], QUERIES[mode])
        finally:
            r.stop()
    finally:
        servers.stop()


@pytest.mark.parametrize("mode", ["nxdomain", "silent"])
def test_nxns_costs_no_more_upstream_queries_than_kresd56(kresd_bin, tmp_path, mode):
    got = {kind: run(kind, kresd_bin, tmp_path, mode) for kind in ADDRS}
    for kind, res in got.items():
        print(f"NXNS victim {mode}: {kind}: upstream queries per client query "
              f"{[r['total'] for r in res]} (to the victim {[r['victim'] for r in res]}), "
              f"rcodes {[r['rcode'] for r in res]}")
    ours, ref = got["ours"], got["kresd56"]
    assert all(r["rcode"] is not None for r in ours), "every client query must get an answer"
    assert sum(r["total"] for r in ours) <= sum(r["total"] for r in ref)
    assert sum(r["victim"] for r in ours) <= sum(r["victim"] for r in ref)
    assert max(r["total"] for r in ours) <= max(r["total"] for r in ref)
