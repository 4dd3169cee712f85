"""dns64 module: AAAA synthesis from A through the driver's more/subresult hooks."""
import dns.flags
import dns.name
import dns.rcode
import dns.rdatatype as T
import pytest

from .helpers import Env


@pytest.fixture
def env():
    e = Env("dns64")
    e.mod("dns64").config("fe80::21b:aabb:0:0")
    return e


def addrs(msg, rdtype=T.AAAA):
    return sorted(rd.address for rr in msg.answer if rr.rdtype == rdtype for rd in rr)


def test_synthesis_from_a(env):
    a = env.ask("www.example.cz.", "AAAA")
    assert a.rcode() == dns.rcode.NOERROR
    assert addrs(a) == ["fe80::21b:aabb:102:305", "fe80::21b:aabb:102:306"]
    assert a.answer[0].ttl == 3600  # min(A TTL, TTL of the NODATA SOA RR), as kresd
    assert not a.authority


def test_real_aaaa_is_kept(env):
    a = env.ask("www6.example.cz.", "AAAA")
    assert addrs(a) == ["2001:db8::1"]


def test_cname_chain_kept(env):
    a = env.ask("cname.example.cz.", "AAAA")
    assert a.answer[0].rdtype == T.CNAME
    assert addrs(a) == ["fe80::21b:aabb:102:305", "fe80::21b:aabb:102:306"]
    assert all(rr.name == dns.name.from_text("www.example.cz.") for rr in a.answer[1:])


def test_cd_disables_and_nxdomain_untouched(env):
    a = env.ask("www.example.cz.", "AAAA", flags=dns.flags.RD | dns.flags.CD, use_edns=0, want_dnssec=True)
    assert not a.answer and a.authority[0].rdtype == T.SOA
    a = env.ask("nothing.example.cz.", "AAAA")
    assert a.rcode() == dns.rcode.NXDOMAIN and not a.answer


def test_excluded_aaaa_is_replaced(env):
    a = env.ask("mapped.example.cz.", "AAAA")
    assert addrs(a) == ["fe80::21b:aabb:a00:1"]


def test_no_a_keeps_nodata(env):
    a = env.ask("ns.example.cz.", "MX")
    assert not a.answer
    a = env.ask("example.cz.", "AAAA")  # apex: no A either
    assert not a.answer and a.authority


def test_config_forms():
    e = Env("dns64")
    m = e.mod("dns64")
    assert m.synthesize("192.0.2.33") == "64:ff9b::c000:221"  # default prefix
    m.config({"prefix": "2001:db8:64::", "exclude_subnets": ["2001:db8::/32"]})
    assert m.synthesize("10.0.0.1") == "2001:db8:64::a00:1"
    assert m.excluded("2001:db8::5") and not m.excluded("::ffff:1.2.3.4")
    with pytest.raises(ValueError):
        m.config("192.0.2.1")
    with pytest.raises(ValueError):
        m.config("garbage")


def test_dns64_disable_option(env):
    import dns.message
    from workers.request import QSource
    from workers.transport import drive_sync
    from workers.layer import Layer

    class Disable(Layer):
        def begin(self, req):
            req.options.DNS64_DISABLE = True
            return None
    env.resolver.layers.insert(0, Disable())
    q = dns.message.make_query("www.example.cz.", "AAAA")
    a = drive_sync(env.resolver.resolve(q, client=("192.0.2.1", 1), qsource=QSource("192.0.2.1")), env.net)
    assert not a.answer
