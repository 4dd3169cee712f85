"""kresd/bindings/*: each Lua namespace against Settings, the cache and timers."""
from __future__ import annotations

import json
import os
import socket

import dns.name
import dns.rrset
import pytest

from cache.api import Cache, Rank
from kresd.engine import Engine, FakeScheduler
from kresd.errors import ConfigError
from workers.settings import GlueMode, Settings


@pytest.fixture
def sched():
    return FakeScheduler()


@pytest.fixture
def eng(tmp_path, sched):
    e = Engine(Settings(), rundir=str(tmp_path), scheduler=sched)
    yield e
    e.stop()


def run(eng, text):
    eng.load_config_text(text, name="t")


# -- net ---------------------------------------------------------------------------

def test_net_list_after_listen(eng):
    run(eng, "net.listen('127.0.0.1', 5353)\nnet.listen({'::1'}, 53, {kind = 'dns', freebind = true})\n")
    assert eng.eval("net.list()[1].transport.ip") == '"127.0.0.1"'
    assert eng.eval("net.list()[1].transport.port") == "5353"
    assert eng.eval("net.list()[1].transport.family") == '"inet4"'
    assert eng.eval("net.list()[1].kind") == '"dns"'
    assert eng.eval("net.list()[3].transport.family") == '"inet6"'
    assert eng.eval("#net.list()") == "4"  # udp + tcp per address
    assert [(e.addr, e.port) for e in eng.settings.listen] == [("127.0.0.1", 5353), ("::1", 53)]


def test_net_sugar_and_close(eng):
    run(eng, "net = { '127.0.0.2', '127.0.0.3' }\n")
    assert [e.addr for e in eng.settings.listen] == ["127.0.0.2", "127.0.0.3"]
    assert eng.eval("net.close('127.0.0.2')") == "true"
    assert [e.addr for e in eng.settings.listen] == ["127.0.0.3"]


def test_net_listen_errors(eng):
    for bad in ("net.listen()", "net.listen('nonsense-iface-xyz')",
                "net.listen('127.0.0.1', 99999)", "net.listen('127.0.0.1', 53, {kind = 'tls'})"):
        with pytest.raises(ConfigError):
            run(eng, bad)


def test_net_properties(eng):
    s = eng.settings
    run(eng, "net.ipv6 = false\nnet.ipv4 = true\nnet.bufsize(4096)\n"
             "net.outgoing_v4('127.0.0.5')\nnet.outgoing_v6('::5')\nnet.tcp_pipeline(50)\n")
    assert (s.ipv4, s.ipv6, s.edns_bufsize, s.outgoing_v4, s.outgoing_v6, s.tcp_pipeline) == \
        (True, False, 4096, "127.0.0.5", "::5", 50)
    assert eng.eval("net.ipv6") == "false"
    assert eng.eval("net.bufsize()") == "4096"
    assert eng.eval("net.outgoing_v4()") == '"127.0.0.5"'
    with pytest.raises(ConfigError):
        run(eng, "net.outgoing_v4('::1')")
    with pytest.raises(ConfigError):
        run(eng, "net.ipv4 = 'yes'")


def test_net_interfaces(eng):
    assert eng.eval("type(net.interfaces())") == '"table"'
    # the loopback interface with its IPv4 address, as kresd lists it
    assert eng.eval("(function() for _, a in ipairs(net.interfaces().lo.addr) do"
                    " if a == '127.0.0.1' then return true end end return false end)()") == "true"
    assert eng.eval("net.lo.addr[1] == net.interfaces().lo.addr[1]") == "true"


# -- cache ---------------------------------------------------------------------------

def _stash(cache, *names):
    with cache.writer() as w:
        for n in names:
            w.stash_rrset(dns.rrset.from_text(n, 300, "IN", "A", "192.0.2.1"), Rank.AUTH)


def test_cache_size_opens_and_clear_subtree(eng, tmp_path):
    run(eng, "cache.size = 10 * MB\n")
    assert isinstance(eng.cache, Cache) and eng.cache.is_open and eng.resolver.cache is eng.cache
    assert eng.cache.size == 10 * 1024 * 1024 and eng.cache.path == str(tmp_path)
    assert eng.eval("cache.current_size") == str(10 * 1024 * 1024)
    _stash(eng.cache, "a.sub.example.", "b.c.sub.example.", "sub.example.", "other.example.")
    assert eng.eval("cache.count()") == "4"
    assert eng.eval("cache.clear('*.sub.example').count") == "3"
    assert eng.cache.peek_rrset(dns.name.from_text("other.example."), 1).rrset[0].address == "192.0.2.1"
    assert eng.cache.peek_rrset(dns.name.from_text("sub.example."), 1) is None
    assert eng.eval("cache.count()") == "1"
    assert eng.eval("cache.clear().count") == "1"
    assert eng.eval("cache.count()") == "0"


def test_cache_clear_exact_name(eng):
    run(eng, "cache.open(5 * MB)\n")
    _stash(eng.cache, "x.example.", "y.x.example.")
    assert eng.eval("cache.clear('x.example', true).count") == "1"
    assert eng.eval("cache.count()") == "1"


def test_cache_misc(eng, tmp_path):
    run(eng, "cache.open(5 * MB, 'lmdb://cdir')\ncache.min_ttl(10)\ncache.max_ttl(3600)\n")
    assert (tmp_path / "cdir" / "data.mdb").exists()
    assert (eng.settings.cache_min_ttl, eng.cache.min_ttl) == (10, 10)
    assert (eng.settings.cache_max_ttl, eng.cache.max_ttl) == (3600, 3600)
    assert eng.eval("cache.backends()[1]") == '"lmdb"'
    assert eng.eval("cache.stats().map_size") == str(5 * 1024 * 1024)
    assert eng.eval("cache.stats().entries") == "0"
    assert "lmdb://" in eng.eval("cache.current_storage")
    _stash(eng.cache, "g.example.")
    assert eng.eval("cache.get('g.example').A.rdata[1]") == '"192.0.2.1"'
    assert eng.eval("cache.prune().pruned") == "0"
    assert eng.eval("cache.close()") == "true"
    assert eng.cache is None and eng.resolver.cache is None
    assert eng.eval("cache.count()") == "0"
    assert eng.eval("cache.min_ttl(-1)").startswith("error:")


def test_cache_open_failure_is_the_bindings_usage_error(eng, tmp_path):
    """A cache LMDB refuses (data.mdb is a directory) raises cache/'s CacheError;
    the binding must catch that class (there is only one) and say where."""
    (tmp_path / "bad" / "data.mdb").mkdir(parents=True)
    with pytest.raises(ConfigError) as exc:
        run(eng, "cache.open(5 * MB, 'lmdb://bad')\n")
    assert "cache.open: can't open cache in" in str(exc.value)
    assert "t:1" in str(exc.value)


def test_one_cache_error_class():
    import cache
    import cache.env
    import kresd.errors
    assert kresd.errors.CacheError is cache.CacheError is cache.env.CacheError


# -- event ---------------------------------------------------------------------------

def test_event_after_fires_with_id(eng, sched):
    run(eng, "fired = {}\nid = event.after(2 * sec, function(ev) table.insert(fired, ev) end)\n")
    assert sched.advance(1.5) == 0
    assert eng.eval("#fired") == "0"
    sched.advance(0.5)
    assert eng.eval("fired[1] == id") == "true"
    sched.advance(10)
    assert eng.eval("#fired") == "1"


def test_event_recurrent_cancel_reschedule(eng, sched):
    run(eng, "n = 0\nr = event.recurrent(100, function(ev) n = n + 1 end)\n"
             "once = event.after(1000, function(ev) done = true end)\n")
    sched.advance(0.35)
    assert eng.eval("n") == "3"
    assert eng.eval("event.cancel(r)") == "true"
    sched.advance(1)
    assert eng.eval("n") == "3"
    assert eng.eval("event.cancel(r)") == "false"
    run(eng, "late = event.after(100, function() late_done = true end)\nevent.reschedule(late, 5000)\n")
    sched.advance(1)
    assert eng.eval("late_done") == "nil"
    sched.advance(5)
    assert eng.eval("late_done") == "true"


def test_event_callback_error_does_not_propagate(eng, sched):
    run(eng, "event.after(0, function() error('cb failed') end)\nevent.after(0, function() ok = 1 end)\n")
    sched.advance(0)
    assert eng.eval("ok") == "1"


def test_event_usage(eng):
    with pytest.raises(ConfigError) as ei:
        run(eng, "event.after('soon')\n")
    assert "event" in ei.value.message


# -- option / mode / misc ----------------------------------------------------------------

def test_option_and_mode(eng):
    s = eng.settings
    run(eng, "option('NO_MINIMIZE', true)\noption('ALLOW_LOCAL', true)\noption('NO_EDNS', true)\n"
             "option('NO_0X20', false)\noption('NO_IPV6', true)\nmode('strict')\nreorder_RR(true)\n")
    assert (s.no_minimize, s.allow_local, s.no_edns, s.no_0x20, s.ipv6) == (True, True, True, False, False)
    assert s.glue_mode is GlueMode.STRICT
    assert eng.eval("option('NO_MINIMIZE')") == "true"
    assert eng.eval("option('NO_IPV6')") == "true"
    assert eng.eval("mode()") == '"strict"'
    assert eng.eval("reorder_RR()") == "true"
    assert eng.eval("option('NO_CACHE', true)") == "true"
    run(eng, "mode('permissive')\n")
    assert s.glue_mode is GlueMode.PERMISSIVE
    with pytest.raises(ConfigError) as ei:
        run(eng, "option('BOGUS', true)")
    assert "BOGUS" in ei.value.message
    with pytest.raises(ConfigError):
        run(eng, "mode('lenient')")


def test_misc_functions(eng, monkeypatch):
    assert eng.eval("type(help())") == '"string"'
    assert eng.eval("hostname()") == f'"{socket.gethostname()}"'
    assert eng.eval("env.PATH") == json.dumps(os.environ["PATH"])
    assert eng.eval("todname('example.com')") == '"\\7example\\3com\\0"'
    assert eng.eval("kres.dname2str(todname('Example.COM'))") == '"Example.COM."'
    assert eng.eval("tojson({a = {1, 2}})") == '"{\\"a\\":[1,2]}"'
    assert eng.eval("fromjson('{\"x\": [1, 2]}').x[2]") == "2"
    assert eng.eval("kres.type.AAAA, kres.class.IN, kres.rcode.NXDOMAIN") == "28\n1\n3"
    assert eng.eval("kres.DONE, kres.FAIL") == "4\n8"
    assert eng.eval("verbose(true)") == "true" and eng.settings.verbose
    assert eng.eval("log_level('info')") == '"info"'
    assert eng.eval("log_level('loud')").startswith("error:")
    from kresd import log
    log.reset()


def test_user_unknown(eng):
    assert "invalid user name" in eng.eval("user('no-such-user-xyz')")


def test_worker(eng):
    assert eng.eval("worker.id, worker.count") == "0\n1"
    assert eng.eval("worker.pid") == str(os.getpid())
    assert eng.eval("worker.stats().queries") == "0"
    eng.worker.stats_provider = lambda: {"queries": 7}
    assert eng.eval("worker.stats().queries") == "7"


# -- modules -------------------------------------------------------------------------------

def test_modules_load_list_unload_and_errors(eng):
    with pytest.raises(ConfigError) as ei:
        run(eng, "modules.load('no_such_module_xyz')\n")
    assert "no_such_module_xyz" in ei.value.message
    assert eng.eval("#modules.list() > 0") == "true"
    assert eng.eval("modules.list()[1]") == '"iterate"'
    assert eng.eval("modules.unload('nothing')") == "false"


# -- resolve() and the asyncio scheduler ----------------------------------------------------

def test_resolve_with_sync_transport(tmp_path):
    from tests.unit.workers.test_resolve import make_net

    net, _ = make_net()
    eng = Engine(Settings(), rundir=str(tmp_path), scheduler=FakeScheduler(), transport=net)
    try:
        eng.settings.priming = False
        eng.load_config_text("trust_anchors.remove('.')")  # the fake hierarchy is unsigned
        eng.load_config_text(
            "resolve('www.example.com', kres.type.A, kres.class.IN, {}, function(pkt, req)\n"
            "  got = { rcode = pkt:rcode(), qname = kres.dname2str(pkt:qname()),\n"
            "          n = #pkt:section(kres.section.ANSWER),\n"
            "          cut = kres.dname2str(req:resolved().zone_cut.name) }\n"
            "end)\n")
        assert eng.eval("got.rcode, got.qname, got.n, got.cut") == '0\n"www.example.com."\n1\n"example.com."'
    finally:
        eng.stop()


def test_timers_and_resolve_wait_for_the_loop(tmp_path):
    import asyncio

    from tests.unit.workers.test_resolve import make_net

    net, _ = make_net()

    async def transport(send):
        return net(send)

    eng = Engine(Settings(), rundir=str(tmp_path))  # default AsyncioScheduler, no loop yet
    eng.settings.priming = False
    eng.load_config_text("trust_anchors.remove('.')")  # the fake hierarchy is unsigned
    eng.load_config_text("event.after(0, function(ev) fired = ev end)\n"
                         "resolve{name = 'www.example.com', type = kres.type.A,"
                         " finish = function(pkt) rc = pkt:rcode() end}\n")
    assert eng.eval("fired") == "nil"

    async def main():
        eng.start(asyncio.get_running_loop(), transport)
        for _ in range(50):
            await asyncio.sleep(0.01)
            if eng.eval("rc") != "nil":
                break

    try:
        asyncio.run(main())
        assert eng.eval("fired") == "1"
        assert eng.eval("rc") == "0"
    finally:
        eng.stop()


def test_cache_ttl_limits_as_kresd56(eng):
    """kresd 5.6: an open cache first; min <= max; defaults 5 s and 1 day."""
    with pytest.raises(ConfigError) as ei:
        run(eng, "cache.max_ttl(100)\n")
    assert "no cache is open yet" in str(ei.value)
    run(eng, "cache.open(5 * MB)\n")
    assert eng.eval("cache.max_ttl()") == "86400" and eng.eval("cache.min_ttl()") == "5"
    for bad in ("cache.max_ttl(4)", "cache.max_ttl(0)", "cache.max_ttl(2^31)",
                "cache.min_ttl(86401)", "cache.min_ttl(-1)"):
        assert eng.eval(bad).startswith("error: "), bad
    assert eng.eval("cache.max_ttl(5)") == "5" and eng.eval("cache.min_ttl(5)") == "5"
