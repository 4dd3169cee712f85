"""hints module: static answers, hosts files, root hints, Lua face."""
import dns.flags
import dns.name
import dns.rcode
import dns.rdatatype as T
import pytest

from .helpers import Env


@pytest.fixture
def env():
    return Env("hints")


def test_static_a_and_ptr_as_kresd(env):
    h = env.mod("hints")
    assert h.lua_set("www.nic.cz", "1.2.3.4")
    a = env.ask("www.nic.cz.")
    assert a.rcode() == dns.rcode.NOERROR and a.answer[0][0].address == "1.2.3.4"
    assert a.answer[0].ttl == 5
    assert a.flags & (dns.flags.QR | dns.flags.RD | dns.flags.RA) and not a.flags & dns.flags.AA
    a = env.ask("4.3.2.1.in-addr.arpa.", "PTR")
    assert a.answer[0][0].target == dns.name.from_text("www.nic.cz.")
    assert not a.flags & dns.flags.AA
    assert env.upstream_count == 0


def test_nodata_for_other_types_is_authoritative(env):
    h = env.mod("hints")
    h.set("host.example 192.0.2.1")
    a = env.ask("host.example.", "AAAA")
    assert a.rcode() == dns.rcode.NOERROR and not a.answer and a.flags & dns.flags.AA
    assert h.use_nodata(False) == {"result": True}
    assert h.use_nodata("x") == {"result": False}
    assert env.mod("hints").lookup(None, dns.name.from_text("host.example."), T.AAAA) is None


def test_set_get_del(env):
    h = env.mod("hints")
    assert h.set("a.example 192.0.2.1")["result"]
    assert h.set("a.example", "2001:db8::1")["result"]
    assert not h.set("a.example nonsense")["result"]
    assert h.get("a.example") == ["192.0.2.1", "2001:db8::1"]
    assert h.get() == {"a.example.": ["192.0.2.1", "2001:db8::1"]}
    a = env.ask("A.Example.", "AAAA")
    assert a.answer[0][0].address == "2001:db8::1"
    assert h.delete("a.example 192.0.2.1")["result"]
    assert h.get("a.example") == ["2001:db8::1"]
    assert h.delete("a.example")["result"] and h.get("a.example") is None
    assert not h.delete("a.example")["result"]
    assert env.mod("hints").lookup(None, dns.name.from_text("1.2.0.192.in-addr.arpa."), T.PTR) is None


def test_last_name_wins_ptr(env):
    h = env.mod("hints")
    h.set("one.example 192.0.2.9")
    h.set("two.example 192.0.2.9")
    a = env.ask("9.2.0.192.in-addr.arpa.", "PTR")
    assert a.answer[0][0].target == dns.name.from_text("two.example.")


def test_add_hosts_and_config(env, tmp_path):
    f = tmp_path / "hosts"
    f.write_text("# comment\n192.0.2.10 canon.example alias.example\n\n2001:db8::10 v6.example\n")
    h = env.mod("hints")
    assert h.add_hosts(str(f)) == {"result": True}
    assert h.get("alias.example") == ["192.0.2.10"] and h.get("v6.example") == ["2001:db8::10"]
    a = env.ask("10.2.0.192.in-addr.arpa.", "PTR")
    assert a.answer[0][0].target == dns.name.from_text("canon.example.")  # canonical wins
    assert h.add_hosts(str(tmp_path / "missing")) == {"result": False}
    bad = tmp_path / "bad"
    bad.write_text("192.0.2.1\n")
    assert h.add_hosts(str(bad)) == {"result": False}
    h.config()
    assert h.get() == {}
    h.config(str(f))
    assert h.get("canon.example") == ["192.0.2.10"]


def test_root_hints_replace_settings(env):
    h = env.mod("hints")
    cur = h.root({"k.root-servers.net": "193.0.14.129", "x.root": ["192.0.2.1", "2001:db8::53"]})
    assert cur == {"k.root-servers.net.": ["193.0.14.129"], "x.root.": ["192.0.2.1", "2001:db8::53"]}
    assert env.settings.root_hints[dns.name.from_text("k.root-servers.net.")] == ["193.0.14.129"]
    assert h.root() == cur
    h.root_file()
    assert len(env.settings.root_hints) == 13


def test_root_with_empty_address_leaves_builtin_root_hints(env):
    """Deckard's template without stub-addr renders hints.root({['k.root-servers.net'] = ''}).
    kresd 5.6 empties the set and skips the address that does not parse, then its
    postconfig.lua loads the built-in root hints into the empty set: the resolver
    starts from the built-in root servers, never from nothing."""
    from workers.settings import default_root_hints
    from workers.zonecut import root_cut_from_hints

    h = env.mod("hints")
    builtin = {n.to_text(): a for n, a in default_root_hints().items()}
    cur = h.root({"k.root-servers.net": ""})
    assert env.settings.root_hints == {}  # what hint_root leaves
    assert cur == builtin and h.root() == builtin  # what is in effect
    cut = root_cut_from_hints(env.settings)
    assert {n.to_text(): a for n, a in cut.ns.items()} == builtin
    # every built-in root address answers as the fake root: resolution works
    for addrs in default_root_hints().values():
        for a in addrs:
            env.net.servers.setdefault(a, env.servers["198.41.0.4"])
    a = env.ask("www.example.cz.")
    assert a.rcode() == dns.rcode.NOERROR
    assert sorted(r.address for r in a.answer[0]) == ["1.2.3.5", "1.2.3.6"]


def test_root_skips_only_addresses_that_do_not_parse(env):
    h = env.mod("hints")
    cur = h.root({"a.root-servers.net": "", "x.root": ["192.0.2.1", "bogus", "2001:db8::53"]})
    assert cur == {"x.root.": ["192.0.2.1", "2001:db8::53"]}
    assert env.settings.root_hints == {dns.name.from_text("x.root."): ["192.0.2.1", "2001:db8::53"]}


def test_root_file(env, tmp_path):
    f = tmp_path / "root.hints"
    f.write_text(". 3600000 NS A.ROOT-SERVERS.NET.\nA.ROOT-SERVERS.NET. 3600000 A 192.0.2.53\n")
    env.mod("hints").root_file(str(f))
    assert env.settings.root_hints == {dns.name.from_text("a.root-servers.net."): ["192.0.2.53"]}


def test_ttl(env):
    h = env.mod("hints")
    assert h.ttl() == 5
    assert h.ttl(60) == 60 and h.ttl(-1) == 60 and h.ttl(1.5) == 60
    h.set("t.example 192.0.2.3")
    assert env.ask("t.example.").answer[0].ttl == 60


def test_policy_runs_first_when_loaded_first():
    env = Env("policy", "hints")
    env.mod("hints").set("x.test 192.0.2.1")
    assert env.ask("x.test.").rcode() == dns.rcode.NXDOMAIN  # special-use test. blocked first


def test_lua_api(env):
    api = env.mod("hints").lua_api()
    assert set(api) >= {"config", "add_hosts", "set", "del", "get", "root", "root_file", "use_nodata", "ttl"}
    with pytest.raises(ValueError):
        env.mod("hints").lua_set("bad.example", "not-an-address")
    with pytest.raises(KeyError):
        env.mod("hints").lua_get("nothing.example")


def test_root_skips_unparsable_addresses(env):
    cur = env.mod("hints").root({"k.root-servers.net": "", "a.root": "192.0.2.1"})
    assert cur == {"a.root.": ["192.0.2.1"]}
