"""Background refresh of NS addresses: the driver queues the child zone's own
A/AAAA of NS names its parent gave glue for (workers/resolve.py), the worker
runs them (workers/refresh.py), the cache then prefers them to the glue, and
the driver falls back to the glue when they fail."""
from __future__ import annotations

import asyncio

import dns.message
import dns.name
import dns.rcode
import dns.rdatatype as T
import pytest

from cache.api import Rank
from workers import resolve as resolve_mod
from workers.layers import cache as cache_layer
from workers.refresh import MAX_RUNNING, Refresher
from workers.transport import drive_sync

from .fakenet import AuthServer
from .test_resolve import COM, EXAMPLE, ask, make_net, resolver  # noqa: F401 (fixture)

N = dns.name.from_text
NS1 = N("ns1.example.com.")


def run_refresh(resolver, net) -> list:
    """What the worker does, synchronously: resolve each queued item."""
    items = resolver.take_refresh()
    for name, rtype in items:
        drive_sync(resolver.resolve(dns.message.make_query(name, rtype)), net)
    return items


@pytest.fixture(autouse=True)
def module_loaded(resolver):
    resolver.settings.ns_refresh = True  # what modules.load('ns_refresh') does


def test_off_by_default_as_kresd_sends_no_such_query(resolver):
    resolver.settings.ns_refresh = False
    net, _ = make_net()
    ask(resolver, net, "www.example.com.")
    assert resolver.take_refresh() == []


def test_referral_with_glue_queues_the_child_addresses(resolver):
    net, _ = make_net()
    ask(resolver, net, "www.example.com.")
    assert resolver.take_refresh() == [(NS1, T.A), (NS1, T.AAAA)]


def test_no_refresh_below_the_root_or_a_tld(resolver):
    net, _ = make_net()
    ask(resolver, net, "www.example.com.")
    names = {n for n, _ in resolver.take_refresh()}
    assert N("a.gtld.com.") not in names and N("a.root-servers.net.") not in names


def test_refreshed_address_is_authoritative_and_not_queued_again(resolver):
    net, _ = make_net()
    ask(resolver, net, "www.example.com.")
    run_refresh(resolver, net)
    hit = resolver.cache.peek_rrset(NS1, T.A)
    assert hit is not None and hit.rank & Rank.AUTH
    cut = cache_layer.closest_cut(resolver.cache, N("x.example.com."), True, True)
    assert cut.name == N("example.com.") and cut.child_addrs
    resolver.clock.monotonic = lambda: 1e9  # past the retry interval
    resolver.cache.clear(N("www.example.com."))
    ask(resolver, net, "nope.example.com.")
    assert resolver.take_refresh() == []  # the cache holds the child's answer already


def test_queue_is_bounded_and_not_repeated(resolver):
    net, _ = make_net()
    ask(resolver, net, "www.example.com.")
    resolver.take_refresh()
    resolver.cache.clear()
    ask(resolver, net, "www.example.com.")
    assert resolver.take_refresh() == []  # queued less than REFRESH_RETRY ago
    assert resolve_mod.REFRESH_PENDING_MAX >= 2


def test_child_addresses_that_fail_fall_back_to_the_glue(resolver):
    """The child says its NS is at 1.2.3.77 (dead), the parent's glue 1.2.3.4
    works: after the refresh the resolver tries the child's address, and then
    goes back to the parent's glue instead of failing."""
    net, servers = make_net()
    child = EXAMPLE.replace("ns1 3600 IN A 1.2.3.4", "ns1 3600 IN A 1.2.3.77")
    servers["1.2.3.4"] = net.servers["1.2.3.4"] = AuthServer(("example.com.", child))
    servers["1.2.3.77"] = net.servers["1.2.3.77"] = AuthServer(("example.com.", child), behaviour="timeout")
    ask(resolver, net, "www.example.com.")
    run_refresh(resolver, net)
    assert [rd.address for rd in resolver.cache.peek_rrset(NS1, T.A).rrset] == ["1.2.3.77"]
    resolver.cache.clear(N("www.example.com."))
    a = ask(resolver, net, "www.example.com.")
    assert a.rcode() == dns.rcode.NOERROR and a.answer[0][0].address == "10.0.0.1"
    assert servers["1.2.3.77"].queries, "the child's own address was tried first"


def test_refresher_runs_at_most_max_running_in_the_background(resolver):
    net, _ = make_net()
    started = []

    async def transport(send):
        started.append(send)
        return net(send)

    async def main():
        r = Refresher(resolver, transport)
        resolver.refresh_pending = [(N(f"ns{i}.example.com."), T.A) for i in range(MAX_RUNNING + 3)]
        r.kick()
        r.kick()  # scheduled once
        await asyncio.sleep(0)
        assert len(r.running) == MAX_RUNNING and resolver.refresh_pending == []
        await asyncio.gather(*list(r.running))
        return r

    r = asyncio.run(main())
    assert r.done == MAX_RUNNING and started
    assert resolver.cache.peek_rrset(NS1, T.A) is not None  # ns1 was among them


def test_kick_without_a_loop_drops_the_work(resolver):
    r = Refresher(resolver, None)
    resolver.refresh_pending = [(NS1, T.A)]
    r.kick()
    assert resolver.refresh_pending == []
