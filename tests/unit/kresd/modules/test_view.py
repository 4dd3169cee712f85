"""view module: per-client rules by source subnet, destination and TSIG key name."""
import dns.message
import dns.rcode
import dns.tsigkeyring
import pytest

from kresd.modules.policy import todname
from workers.request import QSource
from workers.transport import drive_sync

from .helpers import Env


@pytest.fixture
def env():
    return Env("policy", "view")


def test_addr_rule_applies_to_subnet_only(env):
    p, v = env.mod("policy"), env.mod("view")
    v.addr("192.0.2.0/24", p.suffix(p.DENY, [todname("example.cz")]))
    assert env.ask("www.example.cz.", client=("192.0.2.7", 1)).rcode() == dns.rcode.NXDOMAIN
    assert env.ask("www.example.cz.", client=("198.51.100.1", 1)).rcode() == dns.rcode.NOERROR


def test_most_specific_subnet_first(env):
    p, v = env.mod("policy"), env.mod("view")
    v.addr("0.0.0.0/0", p.all(p.DENY))
    v.addr("192.0.2.0/24", p.all(p.REFUSE))
    v.addr("192.0.2.7", p.all(p.PASS))
    assert env.ask("www.example.cz.", client=("192.0.2.7", 1)).rcode() == dns.rcode.NOERROR
    assert env.ask("www.example.cz.", client=("192.0.2.8", 1)).rcode() == dns.rcode.REFUSED
    assert env.ask("www.example.cz.", client=("203.0.113.1", 1)).rcode() == dns.rcode.NXDOMAIN
    assert env.ask("www.example.cz.", client=("2001:db8::1", 1)).rcode() == dns.rcode.NOERROR


def test_non_matching_filter_falls_to_next_rule(env):
    p, v = env.mod("policy"), env.mod("view")
    v.addr("192.0.2.0/24", p.suffix(p.DENY, [todname("nic.cz")]))
    v.addr("192.0.0.0/16", p.all(p.REFUSE))
    assert env.ask("www.example.cz.", client=("192.0.2.1", 1)).rcode() == dns.rcode.REFUSED
    assert env.ask("nic.cz.", client=("192.0.2.1", 1)).rcode() == dns.rcode.NXDOMAIN


def test_dst_and_list_of_subnets(env):
    p, v = env.mod("policy"), env.mod("view")
    added = v.addr(["127.0.0.53", "::1"], p.all(p.REFUSE), True)
    assert len(added) == 2
    assert env.ask("www.example.cz.", dst="127.0.0.53").rcode() == dns.rcode.REFUSED
    assert env.ask("www.example.cz.", dst="127.0.0.54").rcode() == dns.rcode.NOERROR
    with pytest.raises(ValueError):
        v.addr("not-a-subnet", p.all(p.DENY))


def test_tsig_key_name(env):
    p, v = env.mod("policy"), env.mod("view")
    v.tsig(b"\x05mykey", p.all(p.REFUSE))
    keyring = dns.tsigkeyring.from_text({"mykey.": "c2VjcmV0c2VjcmV0"})
    q = dns.message.make_query("www.example.cz.", "A")
    q.use_tsig(keyring, keyname="mykey.")
    q = dns.message.from_wire(q.to_wire(), keyring=keyring)
    a = drive_sync(env.resolver.resolve(q, client=("192.0.2.1", 1), qsource=QSource("192.0.2.1")), env.net)
    assert a.rcode() == dns.rcode.REFUSED
    assert env.ask("www.example.cz.").rcode() == dns.rcode.NOERROR


def test_lua_api(env):
    assert set(env.mod("view").lua_api()) == {"addr", "tsig", "config"}
