"""The modules through the real Lua engine: kresd config snippets, then queries."""
import dns.flags
import dns.message
import dns.name
import dns.rcode
import pytest

from workers.request import QSource
from workers.settings import Settings
from workers.transport import drive_sync

from .helpers import make_net

engine_mod = pytest.importorskip("kresd.engine")


@pytest.fixture
def eng():
    s = Settings()
    e = engine_mod.Engine(s)
    e.load_config_text("modules = {'stats', 'policy', 'hints'}\n"
                       "hints.root({['a.root-servers.net.'] = '198.41.0.4'})\n"
                       "if priming then modules.unload('priming') end\n"
                       "trust_anchors.remove('.')\n")  # the fake hierarchy is unsigned
    e.net, e.servers = make_net()
    return e


def ask(e, name, rdtype="A", client="192.0.2.1", tcp=False, flags=None):
    q = dns.message.make_query(name, rdtype)
    if flags is not None:
        q.flags = flags
    return drive_sync(e.resolver.resolve(q, client=(client, 1), tcp=tcp, qsource=QSource(client, 1, tcp=tcp)),
                      e.net)


def test_suffix_deny_and_pattern(eng):
    eng.load_config_text(r"""
policy.add(policy.suffix(policy.DENY, {todname('nic.cz')}))
policy:add(policy.pattern(policy.DENY, '\8example[0-8]\2cz'))
""")
    assert ask(eng, "dummy.nic.cz.").rcode() == dns.rcode.NXDOMAIN
    assert ask(eng, "example0.cz.").rcode() == dns.rcode.NXDOMAIN
    assert ask(eng, "www.example.cz.").rcode() == dns.rcode.NOERROR


def test_pass_pattern_with_todname(eng):
    eng.load_config_text("""
policy.add(policy.pattern(policy.PASS, todname('dummy.example.cz')))
policy.add(policy.suffix(policy.DENY, {todname('example.cz')}))
""")
    assert ask(eng, "fake.example.cz.").rcode() == dns.rcode.NXDOMAIN
    assert ask(eng, "dummy.example.cz.").answer[0][0].address == "9.10.11.12"


def test_custom_filter_and_action_functions(eng):
    eng.load_config_text("""
policy.add(function (req, query)
    if query.stype == kres.type.MX then return policy.REFUSE end
end)
policy.add(function (req, query)
    if query:name() == todname('www.example.cz') then
        return function (state, req) return kres.FAIL end
    end
end)
""")
    assert ask(eng, "dummy.example.cz.", "MX").rcode() == dns.rcode.REFUSED
    assert ask(eng, "www.example.cz.").rcode() == dns.rcode.SERVFAIL
    assert ask(eng, "dummy.example.cz.").rcode() == dns.rcode.NOERROR


def test_del_by_id_and_debug_chain(eng):
    eng.load_config_text("""
policy.add(policy.all(policy.DEBUG_ALWAYS))
local r = policy.add(policy.all(policy.DENY))
assert(policy.del(r.id))
assert(not policy.del(r.id))
""")
    assert ask(eng, "www.example.cz.").rcode() == dns.rcode.NOERROR


def test_tc_drop_and_answer(eng):
    eng.load_config_text("""
policy.add(policy.suffix(policy.TC, {todname('www.example.cz')}))
policy.add(policy.suffix(policy.DROP, {todname('fake.example.cz')}))
policy.add(policy.domains(policy.ANSWER({[kres.type.A] = {rdata = '\\10\\20\\30\\40', ttl = 300}}),
                          {todname('dummy.example.cz')}))
""")
    assert ask(eng, "www.example.cz.").flags & dns.flags.TC
    assert ask(eng, "fake.example.cz.").rcode() == dns.rcode.SERVFAIL
    a = ask(eng, "dummy.example.cz.")
    assert a.answer[0][0].address == "10.20.30.40" and a.answer[0].ttl == 300


def test_forward(eng):
    eng.load_config_text("policy.add(policy.suffix(policy.FORWARD('1.2.3.4'), {todname('example.cz')}))")
    a = ask(eng, "www.example.cz.")
    assert sorted(rd.address for rd in a.answer[0]) == ["1.2.3.5", "1.2.3.6"]
    assert eng.servers["198.41.0.4"].queries == []


def test_hints_static_and_template_lines(eng):
    eng.load_config_text("hints['www.nic.cz'] = '1.2.3.4'")
    a = ask(eng, "www.nic.cz.")
    assert a.answer[0][0].address == "1.2.3.4" and not a.flags & dns.flags.AA
    a = ask(eng, "4.3.2.1.in-addr.arpa.", "PTR")
    assert a.answer[0][0].target == dns.name.from_text("www.nic.cz.")


def test_dns64_and_renumber(eng):
    eng.load_config_text("""
modules.load('dns64')
dns64.config('fe80::21b:aabb:0:0')
modules.load('renumber')
renumber.config({{'1.2.3.0/24', '4.5.6.0'}})
""")
    a = ask(eng, "www.example.cz.", "AAAA")
    assert sorted(rd.address for rd in a.answer[0]) == ["fe80::21b:aabb:102:305", "fe80::21b:aabb:102:306"]
    a = ask(eng, "www.example.cz.")
    assert sorted(rd.address for rd in a.answer[0]) == ["4.5.6.5", "4.5.6.6"]


def test_view_addr(eng):
    eng.load_config_text("""
modules.load('view')
view:addr('192.0.2.0/24', policy.suffix(policy.DENY, {todname('example.cz')}))
view:addr('10.0.0.1', policy.all(policy.REFUSE))
""")
    assert ask(eng, "www.example.cz.", client="192.0.2.9").rcode() == dns.rcode.NXDOMAIN
    assert ask(eng, "www.example.cz.", client="10.0.0.1").rcode() == dns.rcode.REFUSED
    assert ask(eng, "www.example.cz.", client="10.0.0.2").rcode() == dns.rcode.NOERROR


def test_stats_from_lua(eng):
    ask(eng, "www.example.cz.")
    assert "request.total" in eng.eval("stats.list('request')")
    eng.load_config_text("stats['custom.x'] = 5\nassert(stats.get('custom.x') == 5)\n"
                         "assert(stats.get('request.total') == 1)\nassert(stats['custom.x'] == 5)")


def test_workarounds_and_refuse_nord_default(eng):
    eng.load_config_text("modules = { 'workarounds < iterate' }")
    assert eng.registry.list().index("workarounds") < eng.registry.list().index("iterate")
    assert len(eng.registry.get("policy").rules.rules) == 1
    a = ask(eng, "www.example.cz.", flags=0)
    assert a.rcode() == dns.rcode.REFUSED


def test_priming_unload_and_errors(eng):
    assert eng.settings.priming is False
    eng.load_config_text("modules.load('priming')")
    assert eng.settings.priming is True
    with pytest.raises(Exception, match="not a valid IP"):
        eng.load_config_text("policy.add(policy.all(policy.FORWARD('nonsense')))")
    with pytest.raises(Exception, match="not implemented"):
        eng.load_config_text("policy.add(policy.rpz(policy.DENY, 'x.rpz'))")
