"""ta_signal_query module: RFC 8145 key tag signalling after upstream DNSKEY fetches."""
import dns.message
import dns.name
import dns.rdata
import dns.rdatatype as T
import dns.rrset
import pytest

from kresd.modules.ta_signal_query import signal_name
from workers.request import Request
from workers.settings import Settings

from .helpers import Env

CZ = dns.name.from_text("cz.")
DS_A = dns.rdata.from_text("IN", "DS", "54321 8 2 " + "AB" * 32)
DS_B = dns.rdata.from_text("IN", "DS", "12345 13 2 " + "CD" * 32)
DNSKEY = dns.rdata.from_text("IN", "DNSKEY", "257 3 15 l02Woi0iS8Aa25FQkUd9RMzZHJpBoRQwAQEX1SxZJA4=")


class Clock:
    def __init__(self):
        self.t = 1000.0

    def monotonic(self):
        return self.t

    def time(self):
        return self.t


def make_env(anchors=None):
    s = Settings()
    s.trust_anchors = {CZ: [DS_A, DS_B]} if anchors is None else anchors
    # the fake network is unsigned: keep the validator out of these tests
    s.negative_trust_anchors = [dns.name.root]
    env = Env("ta_signal_query", settings=s)
    sent = []
    env.mod("ta_signal_query").sender = sent.append
    env.resolver.clock = Clock()
    return env, sent


def dnskey_reply(zone, ttl=3600, with_keys=True):
    q = dns.message.make_query(zone, "DNSKEY")
    r = dns.message.make_response(q)
    if with_keys:
        r.answer.append(dns.rrset.from_rdata(zone, ttl, DNSKEY))
    return r


def client_req(name="www.example.cz.", rdtype="A"):
    return Request(dns.message.make_query(name, rdtype), ("192.0.2.1", 1), False, 0.0)


def feed(layer, reply, req=None):
    """One request that got this upstream reply, then finished."""
    req = req or client_req()
    layer.consume(req, reply)
    layer.finish(req)
    return req


def test_signal_name_format():
    assert signal_name([54321, 12345], CZ) == dns.name.from_text("_ta-3039-d431.cz.")
    assert signal_name([20326], dns.name.root) == dns.name.from_text("_ta-4f66.")
    assert signal_name([1, 0xABCD], dns.name.root).labels[0] == b"_ta-0001-abcd"
    assert signal_name([], CZ) is None


def test_upstream_dnskey_reply_of_an_anchored_zone_signals():
    env, sent = make_env()
    feed(env.mod("ta_signal_query").layer, dnskey_reply(CZ), client_req())
    assert sent == [dns.name.from_text("_ta-3039-d431.cz.")]


def test_dnskey_anchor_key_tag_is_used():
    import dns.dnssec
    env, sent = make_env({dns.name.root: [DNSKEY]})
    feed(env.mod("ta_signal_query").layer, dnskey_reply(dns.name.root), client_req())
    assert sent == [signal_name([dns.dnssec.key_id(DNSKEY)], dns.name.root)]


@pytest.mark.parametrize("reply", [
    dnskey_reply(dns.name.from_text("example.cz.")),  # no anchor for that zone
    dns.message.make_response(dns.message.make_query("cz.", "DS")),  # not a DNSKEY reply
    dns.message.make_response(dns.message.make_query("cz.", "NS")),
])
def test_other_replies_do_not_signal(reply):
    env, sent = make_env()
    feed(env.mod("ta_signal_query").layer, reply, client_req())
    assert sent == []


def test_at_most_once_per_refresh_of_the_keys():
    env, sent = make_env()
    layer = env.mod("ta_signal_query").layer
    feed(layer, dnskey_reply(CZ, ttl=600), client_req())
    env.resolver.clock.t += 599
    feed(layer, dnskey_reply(CZ, ttl=600), client_req())
    assert len(sent) == 1
    env.resolver.clock.t += 1
    feed(layer, dnskey_reply(CZ, ttl=600), client_req())
    assert len(sent) == 2
    # a reply without keys holds nothing back
    feed(layer, dnskey_reply(dns.name.root, with_keys=False), client_req())
    env2, sent2 = make_env({dns.name.root: [DS_A]})
    lay2 = env2.mod("ta_signal_query").layer
    feed(lay2, dnskey_reply(dns.name.root, with_keys=False), client_req())
    feed(lay2, dnskey_reply(dns.name.root, with_keys=False), client_req())
    assert len(sent2) == 2


def test_no_signal_when_the_keys_of_that_zone_were_bogus():
    env, sent = make_env()
    layer = env.mod("ta_signal_query").layer
    req = client_req()
    req.bogus = (CZ, "no valid RRSIG for DNSKEY", 6)
    feed(layer, dnskey_reply(CZ), req)
    assert sent == []
    req = client_req()
    req.bogus = (dns.name.from_text("example.cz."), "signature expired", 7)
    feed(layer, dnskey_reply(CZ), req)  # cz.'s keys were fine: signalled
    assert sent == [dns.name.from_text("_ta-3039-d431.cz.")]


def test_signal_waits_for_the_end_of_the_request():
    env, sent = make_env()
    layer = env.mod("ta_signal_query").layer
    req = client_req()
    layer.consume(req, dnskey_reply(CZ))
    layer.consume(req, dnskey_reply(CZ))
    assert sent == []
    layer.finish(req)
    assert len(sent) == 1


def test_the_signal_query_itself_never_signals():
    env, sent = make_env()
    feed(env.mod("ta_signal_query").layer, dnskey_reply(CZ), client_req("_ta-3039-d431.cz.", "NULL"))
    assert sent == []


def test_through_the_resolver_on_an_upstream_dnskey_fetch():
    env, sent = make_env()
    env.ask("cz.", "DNSKEY")
    assert sent == [dns.name.from_text("_ta-3039-d431.cz.")]
    env.ask("www.example.cz.")  # no DNSKEY of cz. fetched by this one
    assert len(sent) == 1


def test_fast_path_consent_and_config():
    m = make_env()[0].mod("ta_signal_query")
    assert m.layer.fast_ok(None)
    assert m.config() is None
    with pytest.raises(ValueError, match="ta_signal_query.*no configuration options"):
        m.config({"interval": 5})


engine_mod = pytest.importorskip("kresd.engine")


def test_lua_engine_sends_the_signal_in_the_background():
    """Default-loaded; the signal goes out from an event after the request, through
    resolve(), as kresd's event.after(0, function() resolve(...) end)."""
    from kresd.engine import FakeScheduler

    from .helpers import make_net
    s = Settings()
    sched = FakeScheduler()
    net, servers = make_net()
    e = engine_mod.Engine(s, scheduler=sched, transport=net)
    try:
        e.load_config_text("modules.load('ta_signal_query')\n"  # already loaded: a no-op
                           "modules = {'hints'}\n"
                           "hints.root({['a.root-servers.net.'] = '198.41.0.4'})\n"
                           "if priming then modules.unload('priming') end\n"
                           "trust_anchors.remove('.')\n"
                           "trust_anchors.set_insecure({'.'})\n")
        assert "ta_signal_query" in e.registry.list()
        s.trust_anchors = {dns.name.root: [DS_A, DS_B]}
        from workers.transport import drive_sync
        drive_sync(e.resolver.resolve(dns.message.make_query(".", "DNSKEY"), client=("192.0.2.1", 1)), net)
        root = servers["198.41.0.4"]
        signal = dns.name.from_text("_ta-3039-d431.")
        assert (signal, T.NULL) not in [(n, t) for n, t, _ in root.queries]  # not inline
        sched.advance(0)
        assert (signal, T.NULL) in [(n.canonicalize(), t) for n, t, _ in root.queries]
        with pytest.raises(engine_mod.ConfigError, match="no configuration options"):
            e.load_config_text("ta_signal_query.interval = 5\n")
        e.load_config_text("modules.unload('ta_signal_query')\n")
        assert e.registry.get("ta_signal_query") is None
    finally:
        e.stop()
