"""Unit tests for the resolution driver against an in-process authoritative network."""
import dns.edns
import dns.flags
import dns.message
import dns.name
import dns.rcode
import dns.rdatatype as T
import pytest

from cache.api import Cache
from workers.resolve import Resolver
from workers.settings import Settings
from workers.transport import drive_sync

from .fakenet import AuthServer, FakeNet

ROOT = """
@ 3600 IN SOA a.root. nstld. 1 1800 900 604800 86400
@ 3600 IN NS a.root-servers.net.
a.root-servers.net. 3600 IN A 198.41.0.4
com. 3600 IN NS a.gtld.com.
a.gtld.com. 3600 IN A 192.5.6.30
net. 3600 IN NS a.gtld.com.
org. 3600 IN NS ns.org.
ns.org. 3600 IN A 192.0.2.53
"""
COM = """
@ 3600 IN SOA a.gtld.com. x. 1 1800 900 604800 86400
@ 3600 IN NS a.gtld.com.
a.gtld.com. 3600 IN A 192.5.6.30
example.com. 3600 IN NS ns1.example.com.
ns1.example.com. 3600 IN A 1.2.3.4
noglue.com. 3600 IN NS ns.example.net.
cyc1.com. 3600 IN NS ns.cyc2.com.
cyc2.com. 3600 IN NS ns.cyc1.com.
lame.com. 3600 IN NS ns.lame.com.
lame.com. 3600 IN NS ns2.lame.com.
ns.lame.com. 3600 IN A 1.2.3.66
ns2.lame.com. 3600 IN A 1.2.3.4
"""
NET = """
@ 3600 IN SOA a.gtld.com. x. 1 1800 900 604800 86400
@ 3600 IN NS a.gtld.com.
example.net. 3600 IN NS ns1.example.com.
"""
EXAMPLE = """
@ 3600 IN SOA ns1 x. 1 1800 900 604800 300
@ 3600 IN NS ns1
ns1 3600 IN A 1.2.3.4
www 3600 IN A 10.0.0.1
alias 3600 IN CNAME www.example.net.
old 3600 IN DNAME example.net.
loop1 3600 IN CNAME loop2
loop2 3600 IN CNAME loop1
big 3600 IN TXT "%s"
""" % ("x" * 200)
EXAMPLE_NET = """
@ 3600 IN SOA ns1.example.com. x. 1 1800 900 604800 300
@ 3600 IN NS ns1.example.com.
www 3600 IN A 10.0.0.2
ns 3600 IN A 1.2.3.5
"""
NOGLUE = """
@ 3600 IN SOA ns.example.net. x. 1 1800 900 604800 300
@ 3600 IN NS ns.example.net.
www 3600 IN A 10.0.0.3
"""
LAME = """
@ 3600 IN SOA ns x. 1 1800 900 604800 300
@ 3600 IN NS ns
www 3600 IN A 10.0.0.4
"""


def make_net(**behaviour):
    servers = {
        "198.41.0.4": AuthServer((".", ROOT)),
        "192.5.6.30": AuthServer(("com.", COM), ("net.", NET)),
        "1.2.3.4": AuthServer(("example.com.", EXAMPLE), ("example.net.", EXAMPLE_NET), ("lame.com.", LAME)),
        "1.2.3.5": AuthServer(("noglue.com.", NOGLUE)),
        "1.2.3.66": AuthServer(("other.", "@ 3600 IN SOA a. b. 1 2 3 4 5\n@ 3600 IN NS a.\n"), behaviour="refused"),
    }
    for addr, b in behaviour.items():
        servers[addr.replace("_", ".")].behaviour = b
    return FakeNet(servers), servers


@pytest.fixture
def resolver(tmp_path):
    s = Settings()
    s.root_hints = {dns.name.from_text("a.root-servers.net."): ["198.41.0.4"]}
    cache = Cache(str(tmp_path), 8 * 1024 * 1024)
    cache.open()
    yield Resolver(s, cache)
    cache.close()


def ask(resolver, net, name, rdtype="A", **kw):
    return drive_sync(resolver.resolve(dns.message.make_query(name, rdtype, **kw)), net)


def test_iterative_answer_then_cache(resolver):
    net, _ = make_net()
    a = ask(resolver, net, "www.example.com.")
    assert a.rcode() == dns.rcode.NOERROR
    assert [rd.address for rd in a.answer[0]] == ["10.0.0.1"]
    assert a.flags & dns.flags.RA and not a.flags & dns.flags.AA
    sent = net.sent
    a = ask(resolver, net, "www.example.com.")
    assert net.sent == sent and a.answer[0][0].address == "10.0.0.1"


def test_nxdomain_and_nodata_carry_soa(resolver):
    net, _ = make_net()
    a = ask(resolver, net, "nope.example.com.")
    assert a.rcode() == dns.rcode.NXDOMAIN and a.authority[0].rdtype == T.SOA
    a = ask(resolver, net, "www.example.com.", "AAAA")
    assert a.rcode() == dns.rcode.NOERROR and not a.answer and a.authority[0].rdtype == T.SOA


def test_cname_across_zones(resolver):
    net, _ = make_net()
    a = ask(resolver, net, "alias.example.com.")
    assert [rr.rdtype for rr in a.answer] == [T.CNAME, T.A]
    assert a.answer[1][0].address == "10.0.0.2"


def test_ns_without_glue_is_resolved(resolver):
    net, _ = make_net()
    a = ask(resolver, net, "www.noglue.com.")
    assert a.answer[0][0].address == "10.0.0.3"


def test_dependency_cycle_fails_fast(resolver):
    net, _ = make_net()
    a = ask(resolver, net, "www.cyc1.com.", use_edns=0)
    assert a.rcode() == dns.rcode.SERVFAIL
    assert any(isinstance(o, dns.edns.EDEOption) for o in a.options)
    assert net.sent < 30


LAME_NS, GOOD_NS = "1.2.3.66", "1.2.3.4"  # ns.lame.com. (REFUSED to everything), ns2.lame.com.


def _prefer(resolver, addr, other):
    """Make addr the server selection tries first (lowest smoothed RTT, no
    random exploration)."""
    resolver.selection.EPSILON = 0.0
    resolver.selection.report_rtt(addr, 0.0)
    resolver.selection.report_rtt(other, 0.1)


def _asked(server):
    return [(q[0].to_text(), T.to_text(q[1])) for q in server.queries]


def test_lame_server_skipped(resolver):
    """lame.com. has two servers; the preferred one answers REFUSED. It is asked
    once per resolution (the question is not minimised at the lame.com. cut, so
    REFUSED breaks it for the query), the other server gives the answer, and a
    repeated resolution that finds the answer in the cache asks nobody."""
    net, servers = make_net()
    lame, good = servers[LAME_NS], servers[GOOD_NS]
    for _ in range(3):  # each resolution starts with fresh per-query selection state
        resolver.cache.clear()
        lame.queries.clear()
        good.queries.clear()
        _prefer(resolver, LAME_NS, GOOD_NS)
        a = ask(resolver, net, "www.lame.com.")
        assert a.rcode() == dns.rcode.NOERROR
        assert [(rr.name.to_text(), [rd.address for rd in rr]) for rr in a.answer] == \
            [("www.lame.com.", ["10.0.0.4"])]  # only ns2.lame.com. serves this record
        assert _asked(lame) == [("www.lame.com.", "A")]  # asked first, and only once
        assert _asked(good) == [("www.lame.com.", "A")]
    sent = net.sent
    a = ask(resolver, net, "www.lame.com.")
    assert a.answer[0][0].address == "10.0.0.4" and net.sent == sent  # from the cache


def test_lame_server_refusing_a_minimised_query(resolver):
    """Below the cut the question is minimised: REFUSED to it turns minimisation
    off for the query (kresd selection.c); the other server is asked the full
    name, and the lame one is not asked again (it has an error counted, the
    other has none)."""
    net, servers = make_net()
    lame, good = servers[LAME_NS], servers[GOOD_NS]
    _prefer(resolver, LAME_NS, GOOD_NS)
    a = ask(resolver, net, "a.b.www.lame.com.")
    assert a.rcode() == dns.rcode.NXDOMAIN and a.authority[0].name.to_text() == "lame.com."
    assert _asked(lame) == [("www.lame.com.", "NS")]
    assert _asked(good) == [("a.b.www.lame.com.", "A")]  # the full name: no more minimising


def test_tc_falls_back_to_tcp(resolver):
    net, servers = make_net(**{"1_2_3_4": "tc"})
    a = ask(resolver, net, "big.example.com.", "TXT")
    assert a.rcode() == dns.rcode.NOERROR and a.answer
    assert any(tcp for (_, _, tcp) in servers["1.2.3.4"].queries)


def test_edns_fallback(resolver):
    net, _ = make_net(**{"1_2_3_4": "noedns"})
    a = ask(resolver, net, "www.example.com.")
    assert a.answer[0][0].address == "10.0.0.1"


def test_all_servers_down_servfail(resolver):
    net, _ = make_net(**{"1_2_3_4": "timeout"})
    a = ask(resolver, net, "www.example.com.")
    assert a.rcode() == dns.rcode.SERVFAIL


def test_garbage_reply_is_a_server_failure(resolver):
    net, _ = make_net(**{"1_2_3_4": "garbage"})
    assert ask(resolver, net, "www.example.com.").rcode() == dns.rcode.SERVFAIL


def test_loopback_upstreams_need_allow_local(tmp_path):
    s = Settings()
    s.root_hints = {dns.name.from_text("a.root-servers.net."): ["127.0.10.2"]}
    root = ROOT.replace("192.5.6.30", "127.0.10.3").replace("198.41.0.4", "127.0.10.2")
    net = FakeNet({"127.0.10.2": AuthServer((".", root)),
                   "127.0.10.3": AuthServer(("com.", COM.replace("192.5.6.30", "127.0.10.3")))})
    r = Resolver(s, None)
    # Configured hints are used as given; glue pointing at loopback is not.
    assert ask(r, net, "www.example.com.").rcode() == dns.rcode.SERVFAIL
    assert not net.servers["127.0.10.3"].queries
    s.allow_local = True
    ask(r, net, "www.example.com.")
    assert net.servers["127.0.10.3"].queries


def test_upstream_query_cap(tmp_path):
    s = Settings()
    s.root_hints = {dns.name.from_text("a.root-servers.net."): ["198.41.0.4"]}
    s.max_upstream_queries = 2
    net, _ = make_net()
    r = Resolver(s, None)
    assert ask(r, net, "www.example.com.").rcode() == dns.rcode.SERVFAIL
    assert net.sent <= 2


def test_qname_minimisation_sends_ns_queries(resolver):
    net, servers = make_net()
    root, com = servers["198.41.0.4"], servers["192.5.6.30"]
    ask(resolver, net, "a.b.www.example.com.")
    # priming, then one label more than the zone cut, as NS
    assert _asked(root) == [(".", "NS"), ("com.", "NS")]
    assert _asked(com) == [("example.com.", "NS")]
    resolver.settings.no_minimize = True
    resolver.cache.clear()
    root.queries.clear()
    com.queries.clear()
    ask(resolver, net, "a.b.www.example.com.")
    assert _asked(root) == [(".", "NS"), ("a.b.www.example.com.", "A")]
    assert _asked(com) == [("a.b.www.example.com.", "A")]


def test_dname_is_followed(resolver):
    net, _ = make_net()
    a = ask(resolver, net, "www.old.example.com.")
    assert [rr.rdtype for rr in a.answer] == [T.DNAME, T.CNAME, T.A]
    assert a.answer[-1][0].address == "10.0.0.2"


def test_cname_loop_servfail(resolver):
    net, _ = make_net()
    assert ask(resolver, net, "loop1.example.com.").rcode() == dns.rcode.SERVFAIL


def test_trace_requests_log_whatever_the_level(resolver, caplog):
    import logging

    from workers.layer import Layer

    class Trace(Layer):
        def begin(self, req):
            req.options.TRACE = True

    net, _ = make_net()
    logging.getLogger("kresd").setLevel(logging.WARNING)  # kresd's level: debug is off
    caplog.handler.setLevel(logging.NOTSET)
    try:
        ask(resolver, net, "www.example.com.")
        assert not any("www.example.com" in r.getMessage() for r in caplog.records)
        resolver.layers.append(Trace())
        resolver.cache.clear()
        ask(resolver, net, "www.example.com.")
        assert any("www.example.com" in r.getMessage() for r in caplog.records)
    finally:
        logging.getLogger("kresd").setLevel(logging.NOTSET)


def test_failing_module_hook_costs_nothing(resolver):
    from workers.layer import Layer

    class Broken(Layer):
        name = "broken"

        def begin(self, req):
            raise RuntimeError("module bug")

        def finish(self, req):
            raise RuntimeError("module bug")

    net, _ = make_net()
    resolver.layers.append(Broken())
    a = ask(resolver, net, "www.example.com.")
    assert a.rcode() == dns.rcode.SERVFAIL  # begin FAIL -> SERVFAIL, no exception escapes


def test_trace_names_each_step_of_a_query(resolver, caplog):
    """Each (sub-)query walks named steps (Query.state), shown in the trace:
    cut -> send -> consume -> stash -> referral ... -> done."""
    import logging
    import re

    from workers.layer import Layer

    class Trace(Layer):
        def begin(self, req):
            req.options.TRACE = True

    net, _ = make_net()
    resolver.layers.append(Trace())
    caplog.handler.setLevel(logging.NOTSET)
    ask(resolver, net, "www.example.com.")
    steps = [m.group(1) for r in caplog.records
             for m in [re.search(r"\] \[(\w+)\] www\.example\.com\. A", r.getMessage())] if m]
    assert steps[0] == "cut" and steps[-1] == "done"
    assert {"send", "consume", "stash", "referral"} <= set(steps)
    assert "validate" not in steps and "trust" not in steps  # no trust anchor configured
