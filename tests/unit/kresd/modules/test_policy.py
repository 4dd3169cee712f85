"""policy module: filters, actions and rule lists through the real driver."""
import dns.flags
import dns.name
import dns.rcode
import dns.rdatatype as T
import pytest

from kresd.modules.policy import (QueryView, lua_pattern_to_regex, split_addr, to_name,
                                  todname)
from workers.request import Forward

from .helpers import Env, _LuaFunction


def ede(msg):
    return [(o.code, o.text) for o in msg.options if o.otype == 15]


@pytest.fixture
def env():
    return Env("policy")


def test_deny_answers_nxdomain_aa_soa_and_ede(env):
    p = env.mod("policy")
    p.add(p.suffix(p.DENY, [todname("example.cz")]))
    a = env.ask("dummy.example.cz.", use_edns=0)
    assert a.rcode() == dns.rcode.NXDOMAIN
    assert a.flags & dns.flags.AA and a.flags & dns.flags.RA and not a.flags & dns.flags.AD
    assert not a.answer
    soa = a.authority[0]
    assert soa.rdtype == T.SOA and soa.name == dns.name.from_text("dummy.example.cz.") and soa.ttl == 10800
    assert soa[0].rname == dns.name.from_text("nobody.invalid.") and soa[0].minimum == 10800
    assert ede(a) == [(15, "CR36")]
    assert env.upstream_count == 0


def test_deny_msg_puts_txt_in_additional(env):
    p = env.mod("policy")
    p.add(p.all(p.DENY_MSG("go away")))
    a = env.ask("www.example.cz.")
    txt = a.additional[0]
    assert txt.name == dns.name.from_text("explanation.invalid.") and txt.rdtype == T.TXT
    assert txt[0].strings == (b"go away",)
    with pytest.raises(ValueError):
        p.DENY_MSG("x" * 300)


def test_pass_stops_later_rules(env):
    p = env.mod("policy")
    p.add(p.pattern(p.PASS, todname("dummy.example.cz")))
    p.add(p.suffix(p.DENY, [todname("example.cz")]))
    assert env.ask("fake.example.cz.").rcode() == dns.rcode.NXDOMAIN
    a = env.ask("dummy.example.cz.")
    assert a.rcode() == dns.rcode.NOERROR and a.answer[0][0].address == "9.10.11.12"


def test_pattern_is_a_lua_pattern_over_the_wire_name(env):
    p = env.mod("policy")
    p.add(p.pattern(p.DENY, b"\x08example[0-8]\x02cz"))
    assert env.ask("example0.cz.").rcode() == dns.rcode.NXDOMAIN
    assert env.ask("dummy.example0.cz.").rcode() == dns.rcode.NXDOMAIN
    assert env.ask("www.example.cz.").rcode() == dns.rcode.NOERROR


def test_suffix_common_and_todnames(env):
    p = env.mod("policy")
    names = p.todnames(["example.cz", "nic.cz"])
    assert names == [todname("example.cz."), todname("nic.cz.")]
    p.add(p.suffix_common(p.DENY, names, todname("cz")))
    assert env.ask("dummy.example.cz.").rcode() == dns.rcode.NXDOMAIN
    assert env.ask("nic.cz.").rcode() == dns.rcode.NXDOMAIN


def test_suffix_match_is_case_insensitive(env):
    p = env.mod("policy")
    p.add(p.suffix(p.DENY, [todname("Example.CZ")]))
    assert env.ask("WWW.example.cz.").rcode() == dns.rcode.NXDOMAIN


def test_domains_matches_exact_names_only(env):
    p = env.mod("policy")
    p.add(p.domains(p.REFUSE, ["www.example.cz."]))
    a = env.ask("www.example.cz.", use_edns=0)
    assert a.rcode() == dns.rcode.REFUSED and not a.flags & dns.flags.AA
    assert ede(a) == [(18, "EIM4")]
    assert env.ask("dummy.example.cz.").rcode() == dns.rcode.NOERROR


def test_drop_is_servfail_with_prohibited(env):
    p = env.mod("policy")
    p.add(p.suffix(p.DROP, [todname("example.cz")]))
    a = env.ask("www.example.cz.", use_edns=0)
    assert a.rcode() == dns.rcode.SERVFAIL and not a.answer
    assert ede(a) == [(18, "U5KL")]


def test_no_answer_sends_nothing(env):
    p = env.mod("policy")
    p.add(p.all(p.NO_ANSWER))
    assert env.ask("www.example.cz.") is None


def test_tc_only_over_udp(env):
    p = env.mod("policy")
    p.add(p.suffix(p.TC, [todname("example.cz")]))
    a = env.ask("www.example.cz.")
    assert a.flags & dns.flags.TC and not a.answer and a.rcode() == dns.rcode.NOERROR
    assert not a.flags & dns.flags.AA
    a = env.ask("www.example.cz.", tcp=True)
    assert not a.flags & dns.flags.TC and a.answer  # TC over TCP = PASS


def test_forward_sets_request_forward(env):
    p = env.mod("policy")
    seen = []
    fwd = p.FORWARD(["1.2.3.4", "192.0.2.7@5353", "2001:db8::1#53"])
    p.add(p.all(fwd))
    p.add(p.all(_LuaFunction(lambda req, q: seen.append(req) or None)))  # never reached
    env.resolver.layers.append(type("Spy", (), {
        **{h: (lambda self, *a: None) for h in ("produce", "checkout", "consume", "answer_finalize",
                                                  "finish", "subresult")},
        "name": "spy", "more": lambda self, *a: [],
        "begin": lambda self, req: seen.append(req.forward) or None})())
    env.ask("www.example.cz.")
    assert seen[0] == Forward([("1.2.3.4", 53), ("192.0.2.7", 5353), ("2001:db8::1", 53)])
    with pytest.raises(ValueError):
        p.FORWARD("not-an-ip")


def test_forward_resolves_through_the_forwarder(env):
    p = env.mod("policy")
    p.add(p.suffix(p.FORWARD("1.2.3.4"), [todname("example.cz")]))
    a = env.ask("www.example.cz.")
    assert sorted(rd.address for rd in a.answer[0]) == ["1.2.3.5", "1.2.3.6"]
    assert env.servers["198.41.0.4"].queries == []  # no iteration from the root


def test_stub_is_a_stub_forward():
    e = Env("policy")
    p = e.mod("policy")

    class R:
        forward = None

        class options:
            NO_MINIMIZE = False
    req = R()
    assert p.STUB("10.0.0.1")(1, req) == 1
    assert req.forward == Forward([("10.0.0.1", 53)], stub=True)


def test_answer_action_and_nodata(env):
    p = env.mod("policy")
    p.add(p.domains(p.ANSWER({int(T.A): {"rdata": bytes([10, 20, 30, 40]), "ttl": 300}}, True),
                    [todname("www.example.cz")]))
    a = env.ask("www.example.cz.", use_edns=0)
    assert a.answer[0][0].address == "10.20.30.40" and a.answer[0].ttl == 300
    assert a.flags & dns.flags.AA and ede(a) == [(4, "5DO5")]
    a = env.ask("www.example.cz.", "AAAA")
    assert not a.answer and a.authority[0].rdtype == T.SOA and a.rcode() == dns.rcode.NOERROR


def test_answer_without_nodata_falls_through(env):
    p = env.mod("policy")
    p.add(p.all(p.ANSWER({int(T.A): {"rdata": [bytes([1, 1, 1, 1]), bytes([2, 2, 2, 2])]}})))
    a = env.ask("www.example.cz.")
    assert sorted(rd.address for rd in a.answer[0]) == ["1.1.1.1", "2.2.2.2"] and a.answer[0].ttl == 1
    a = env.ask("www6.example.cz.", "AAAA")
    assert a.answer[0][0].address == "2001:db8::1"


def test_chain_actions_continue(env):
    p = env.mod("policy")
    p.add(p.all(p.DEBUG_ALWAYS))
    p.add(p.all(p.FLAGS(["NO_CACHE", "NO_0X20"], "NO_MINIMIZE")))
    p.add(p.suffix(p.DENY, [todname("example.cz")]))
    assert env.ask("www.example.cz.").rcode() == dns.rcode.NXDOMAIN
    assert [r.count for r in p.rules.rules] == [1, 1, 1]


def test_custom_lua_filter_and_action(env):
    p = env.mod("policy")
    seen = []

    def custom_action(state, req):
        req.answer.set_rcode(dns.rcode.REFUSED)
        return 4  # kres.DONE as a Lua number

    def custom_filter(req, query):
        seen.append((query.name(), query.stype))
        return _LuaFunction(custom_action) if query.stype == T.MX else None
    p.add(_LuaFunction(custom_filter))
    assert env.ask("www.example.cz.", "MX").rcode() == dns.rcode.REFUSED
    assert env.ask("www.example.cz.", "A").rcode() == dns.rcode.NOERROR
    assert seen[0] == (todname("www.example.cz."), T.MX)
    assert len(env.lua.calls) == 3


def test_filter_returning_builtin_action(env):
    p = env.mod("policy")
    p.add(_LuaFunction(lambda req, q: p.DENY))
    assert env.ask("www.example.cz.").rcode() == dns.rcode.NXDOMAIN


def test_add_del_ids_and_postrules(env):
    p = env.mod("policy")
    r1 = p.add(p.all(p.DENY))
    r2 = p.add(p.all(p.REFUSE), True)
    assert r2.id == r1.id + 1 and r2.postrule
    assert p.delete(r1.id) and not p.delete(r1.id)
    a = env.ask("www.example.cz.")
    assert a.rcode() == dns.rcode.REFUSED and not a.answer  # postrule in finish
    assert p.delete(r2)
    assert env.ask("www.example.cz.").rcode() == dns.rcode.NOERROR


def test_special_names(env):
    a = env.ask("foo.test.")
    assert a.rcode() == dns.rcode.NXDOMAIN and a.additional[0].rdtype == T.TXT
    assert env.ask("1.168.192.in-addr.arpa.", "PTR").rcode() == dns.rcode.NXDOMAIN
    a = env.ask("localhost.", "A")
    assert a.answer[0][0].address == "127.0.0.1" and a.flags & dns.flags.AA
    assert env.ask("x.localhost.", "AAAA").answer[0][0].address == "::1"
    a = env.ask("1.0.0.127.in-addr.arpa.", "PTR")
    assert a.answer[0][0].target == dns.name.from_text("localhost.")
    assert env.ask("2.0.0.127.in-addr.arpa.", "PTR").rcode() == dns.rcode.NXDOMAIN
    assert env.upstream_count == 0


def test_pass_unblocks_special_names(env):
    p = env.mod("policy")
    p.add(p.suffix(p.PASS, [todname("test.")]))
    a = env.ask("foo.test.")
    # resolved: the root says NXDOMAIN with its SOA (a policy block has no SOA from the root)
    assert a.rcode() == dns.rcode.NXDOMAIN and not a.additional
    assert [rr.name.to_text() for rr in a.authority] == ["."]
    asked = {q[0].to_text() for q in env.servers["198.41.0.4"].queries}
    assert asked and asked <= {"test.", "foo.test."}, asked


def test_not_implemented_are_clear(env):
    p = env.mod("policy")
    for fn, args in ((p.rpz, (p.DENY, "/x.rpz")), (p.TLS_FORWARD, ({},)), (p.MIRROR, ("1.2.3.4",))):
        with pytest.raises(NotImplementedError, match="not implemented"):
            fn(*args)


def test_lua_api_table(env):
    api = env.mod("policy").lua_api()
    for k in ("add", "del", "all", "suffix", "suffix_common", "pattern", "domains", "todnames",
              "PASS", "DENY", "DENY_MSG", "DROP", "REFUSE", "TC", "NO_ANSWER", "FORWARD", "STUB",
              "ANSWER", "DEBUG_ALWAYS", "QTRACE", "FLAGS", "REROUTE"):
        assert k in api
    assert api is env.mod("policy").lua_api()


def test_helpers():
    assert split_addr("192.0.2.1@5353") == ("192.0.2.1", 5353)
    assert split_addr("2001:DB8::1#853") == ("2001:db8::1", 853)
    assert split_addr("192.0.2.1") == ("192.0.2.1", 53)
    assert to_name(b"\x07example\x02cz\x00") == dns.name.from_text("example.cz.")
    assert to_name("\x07example\x02cz\x00") == dns.name.from_text("example.cz.")
    assert to_name("1.2.3.4") == dns.name.from_text("1.2.3.4.")
    import re
    assert re.search(lua_pattern_to_regex("%d+%.%a"), "ab12.c")
    assert re.search(lua_pattern_to_regex("^[^%d]-x$"), "abcx")
    assert not re.search(lua_pattern_to_regex("^[^%d]-x$"), "a1x")


def test_query_view(env):
    import dns.message
    from workers.request import Request
    req = Request(dns.message.make_query("WWW.Example.cz.", "AAAA"), None, False, 0.0)
    qv = QueryView(req)
    assert qv.name() == todname("www.example.cz.") and qv.stype == T.AAAA and qv.sclass == 1
