"""renumber module: prefix rewriting of A/AAAA in answers, policy.REROUTE."""
import dns.name
import dns.rcode
import dns.rdatatype as T
import pytest

from kresd.modules.policy import todname

from .helpers import Env


def ede(msg):
    return [(o.code, o.text) for o in msg.options if o.otype == 15]


def test_prefix_rewrite_keeps_host_bits():
    env = Env("renumber")
    env.mod("renumber").config([["1.2.3.0/24", "4.5.6.0"]])
    a = env.ask("www.example.cz.", use_edns=0)
    assert sorted(rd.address for rd in a.answer[0]) == ["4.5.6.5", "4.5.6.6"]
    assert not a.authority and not a.additional and ede(a) == [(4, "DUQR")]
    assert env.ask("dummy.example.cz.").answer[0][0].address == "9.10.11.12"  # outside: untouched


def test_exact_target_and_partial_octets():
    env = Env("renumber")
    env.mod("renumber").config([["1.2.3.5/32", "10.0.0.1!"], ["1.2.3.0/20", "172.16.255.0"]])
    a = env.ask("www.example.cz.")
    assert sorted(rd.address for rd in a.answer[0]) == ["10.0.0.1", "172.16.243.6"]


def test_ipv6_and_first_rule_wins():
    env = Env("renumber")
    env.mod("renumber").config([["2001:db8::/32", "fd00:1::"], ["2001::/16", "fd00:2::"]])
    a = env.ask("www6.example.cz.", "AAAA")
    assert a.answer[0][0].address == "fd00:1::1"


def test_bad_config():
    env = Env("renumber")
    r = env.mod("renumber")
    with pytest.raises(ValueError):
        r.config(["1.2.3.0/24", "4.5.6.0"])
    with pytest.raises(ValueError):
        r.config([["1.2.3.0/24", "4.5.!6.0"]])
    with pytest.raises(ValueError):
        r.config([["nonsense", "4.5.6.0"]])
    assert r.config() is None


def test_policy_reroute_postrule():
    env = Env("policy")
    p = env.mod("policy")
    p.add(p.suffix(p.REROUTE({"1.2.3.0/24": "192.0.2.0"}), [todname("example.cz")]), True)
    a = env.ask("www.example.cz.")
    assert sorted(rd.address for rd in a.answer[0]) == ["192.0.2.5", "192.0.2.6"]


def test_policy_reroute_by_name():
    env = Env("policy")
    p = env.mod("policy")
    p.add(p.all(p.REROUTE({"www.example.cz.": "192.0.2.99"}, True)), True)
    a = env.ask("www.example.cz.")
    # both records become the same address: one rdata in the set
    assert [rd.address for rd in a.answer[0]] == ["192.0.2.99"]
    assert a.rcode() == dns.rcode.NOERROR
    assert a.answer[0].name == dns.name.from_text("www.example.cz.") and a.answer[0].rdtype == T.A
