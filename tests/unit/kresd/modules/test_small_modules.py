"""refuse_nord, workarounds, priming and ns_refresh modules."""
import dns.flags
import dns.rcode
import native

from kresd.modules.policy import Policy
from kresd.modules.workarounds import NO_0X20_ZONES

from .helpers import Env


def test_refuse_nord_refuses_rd0():
    env = Env("refuse_nord")
    a = env.ask("www.example.cz.", flags=0, use_edns=0)
    assert a.rcode() == dns.rcode.REFUSED and not a.flags & dns.flags.AD and not a.answer
    assert [o.code for o in a.options if o.otype == 15] == [20]
    assert env.upstream_count == 0
    assert env.ask("www.example.cz.").rcode() == dns.rcode.NOERROR


def test_refuse_nord_unloaded_lets_rd0_through():
    env = Env()
    a = env.ask("www.example.cz.", flags=0)
    assert a.rcode() == dns.rcode.NOERROR


def test_workarounds_adds_no_0x20_rule_once():
    env = Env("workarounds")
    p = env.mod("policy")
    assert isinstance(p, Policy) and "policy" in env.registry.list()  # loaded as a dependency
    assert len(p.rules.rules) == 1
    env.mod("workarounds").config()
    assert len(p.rules.rules) == 1
    seen = []

    class Spy:
        name = "spy"

        def begin(self, req):
            req.options.NO_0X20 = False
            return None

        def produce(self, req, q):
            seen.append(req.options.NO_0X20)

        def __getattr__(self, n):
            return lambda *a: [] if n == "more" else None
    env.resolver.layers.insert(0, Spy())
    env.ask("b.avqs.mcafee.com.")
    assert seen and all(seen)
    seen.clear()
    env.ask("www.example.cz.")
    assert seen and not any(seen)
    assert "avqs.mcafee.com." in NO_0X20_ZONES
    env.registry.unload("workarounds")
    assert p.rules.rules == []


def test_priming_toggles_setting():
    env = Env()
    env.settings.priming = False
    env.registry.load("priming")
    assert env.settings.priming is True
    env.registry.unload("priming")
    assert env.settings.priming is False


def test_ns_refresh_toggles_setting_and_is_off_by_default():
    env = Env()
    assert env.settings.ns_refresh is False  # kresd 5.6 sends no such queries
    env.registry.load("ns_refresh")
    assert env.settings.ns_refresh is True
    env.registry.unload("ns_refresh")
    assert env.settings.ns_refresh is False


def _pq(name: str, rd: bool = True):
    import dns.message
    import native

    q = dns.message.make_query(name, "A")
    if not rd:
        q.flags &= ~dns.flags.RD
    return native.parse_query(q.to_wire())


def test_fast_path_consent_of_modules():
    env = Env("policy", "refuse_nord", "stats", "hints")
    layers = {lay.name: lay for lay in env.resolver.layers}
    www = _pq("www.Example.cz.")
    assert all(lay.fast_ok(www) for lay in layers.values())
    assert not layers["policy"].fast_ok(_pq("foo.test."))  # special-use: DENY, never from cache
    assert not layers["policy"].fast_ok(_pq("localhost."))
    env.mod("hints").add_pair("hinted.cz.", "192.0.2.7")
    assert not layers["hints"].fast_ok(www)  # static hints answer before the cache
    p = env.mod("policy")
    p.add(p.suffix(p.PASS, ["other."]))  # does not match: the walk goes on
    assert layers["policy"].fast_ok(www)
    p.add(p.suffix(p.PASS, ["test."]))  # PASS ends the walk: even special-use test. is the cache's
    assert layers["policy"].fast_ok(_pq("foo.test."))
    p.add(p.suffix(p.DENY, ["example.cz."]))
    assert not layers["policy"].fast_ok(www)  # a matching rule that changes the answer
    assert layers["policy"].fast_ok(_pq("foo.test."))  # PASSed before the DENY
    p.add(p.all(p.PASS))
    assert not layers["policy"].fast_ok(_pq("x.org."))  # a filter only a Request decides
    stats = env.mod("stats")
    before = dict(stats.list())
    layers["stats"].fast_count(native.BatchCounts(hits=1, noerror=1, rd=1))
    after = stats.list()
    # a fast-path answer counts as one cached NOERROR answer to one UDP request
    assert {k: after[k] - before[k] for k in after if after[k] != before[k]} == {
        "request.total": 1, "request.udp": 1, "answer.total": 1, "answer.1ms": 1,
        "answer.noerror": 1, "answer.ra": 1, "answer.rd": 1, "answer.cached": 1}
    # a batch of packet-cache answers: every kind counted as the full path counts it
    before = dict(stats.list())
    layers["stats"].fast_count(native.BatchCounts(hits=10, noerror=7, nxdomain=3, nodata=2, tc=1, edns=6,
                                                  dobit=4, cd=1, ad=2, aa=0, rd=10))
    after = stats.list()
    assert {k: after[k] - before[k] for k in after if after[k] != before[k]} == {
        "request.total": 10, "request.udp": 10, "answer.total": 10, "answer.1ms": 10,
        "answer.noerror": 7, "answer.nxdomain": 3, "answer.nodata": 2, "answer.tc": 1,
        "query.edns": 6, "answer.edns0": 6, "query.dnssec": 4, "answer.do": 4, "answer.cd": 1,
        "answer.ad": 2, "answer.ra": 10, "answer.rd": 10, "answer.cached": 10}
