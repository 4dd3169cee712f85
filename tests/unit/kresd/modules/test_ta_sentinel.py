"""ta_sentinel module: RFC 8509 key sentinel answers, as kresd 5.6's ta_sentinel.lua."""
import dns.dnssec
import dns.flags
import dns.message
import dns.name
import dns.rcode
import dns.rdata
import dns.rdataclass
import dns.rdatatype as T
import dns.rrset
import pytest

from kresd.modules.ta_sentinel import key_tags, sentinel
from workers.layer import Layer
from workers.request import Request, make_answer
from workers.settings import Settings

from .helpers import Env

DS_20326 = dns.rdata.from_text("IN", "DS", "20326 8 2 E06D44B80B8F1D39A95C0B0D7C65D08458E880409BBC683457104237C7F8EC8D")
DS_38696 = dns.rdata.from_text("IN", "DS", "38696 8 2 683D2D0ACB8C9B712A1948B27F741219298D0A450D612C483AF444A4C0FB2B16")
DNSKEY = dns.rdata.from_text("IN", "DNSKEY", "257 3 15 l02Woi0iS8Aa25FQkUd9RMzZHJpBoRQwAQEX1SxZJA4=")


def make_req(name, rdtype="A", secure=True, cd=False, do=True, answer=None, rcode=dns.rcode.NOERROR,
             anchors=(DS_20326,)):
    settings = Settings()
    settings.trust_anchors = {dns.name.root: list(anchors)} if anchors else {}
    q = dns.message.make_query(name, rdtype, want_dnssec=do)
    q.flags |= dns.flags.RD | (dns.flags.CD if cd else 0)
    req = Request(q, ("192.0.2.1", 5353), False, 0.0)
    req.answer = make_answer(q, settings)
    req.answer.set_rcode(rcode)
    qname = q.question[0].name
    if answer is None and rcode == dns.rcode.NOERROR:
        answer = [dns.rrset.from_text(qname, 300, "IN", rdtype, "192.0.2.7" if rdtype == "A" else "2001:db8::7")]
    req.answer.answer = list(answer or [])
    req.secure = secure
    if secure and do:
        req.answer.flags |= dns.flags.AD
    return req, settings


def run(name, **kw):
    """The finish hook of a loaded ta_sentinel on a hand-made request; the answer."""
    req, settings = make_req(name, **kw)
    env = Env("ta_sentinel", settings=settings)
    env.mod("ta_sentinel").layer.finish(req)
    return req.answer


def is_servfail(ans):
    return (ans.rcode() == dns.rcode.SERVFAIL and not ans.answer and not ans.authority
            and not ans.additional and ans.edns < 0 and not ans.flags & dns.flags.AD
            and len(ans.question) == 1)


def test_is_ta_with_a_root_anchor_tag_is_left_alone():
    ans = run("root-key-sentinel-is-ta-20326.example.")
    assert ans.rcode() == dns.rcode.NOERROR and ans.answer and ans.flags & dns.flags.AD


def test_is_ta_with_an_unknown_tag_is_servfail_with_an_empty_payload():
    ans = run("root-key-sentinel-is-ta-12345.example.")
    assert is_servfail(ans)
    assert ans.question[0].name == dns.name.from_text("root-key-sentinel-is-ta-12345.example.")
    assert ans.flags & dns.flags.QR and ans.flags & dns.flags.RA  # header otherwise kept


def test_not_ta_with_a_root_anchor_tag_is_servfail():
    assert is_servfail(run("root-key-sentinel-not-ta-20326.example."))


def test_not_ta_with_an_unknown_tag_is_left_alone():
    ans = run("root-key-sentinel-not-ta-12345.example.", rdtype="AAAA")
    assert ans.rcode() == dns.rcode.NOERROR and ans.answer[0].rdtype == T.AAAA


def test_second_anchor_and_dnskey_anchor_tags_count():
    assert run("root-key-sentinel-is-ta-38696.example.", anchors=(DS_20326, DS_38696)).answer
    tag = dns.dnssec.key_id(DNSKEY)
    assert key_tags(_settings(DNSKEY), dns.name.root) == [tag]
    name = f"root-key-sentinel-is-ta-{tag:05d}.example."
    assert run(name, anchors=(DNSKEY,)).answer
    assert is_servfail(run(f"root-key-sentinel-not-ta-{tag:05d}.example.", anchors=(DNSKEY,)))


def _settings(*anchors):
    s = Settings()
    s.trust_anchors = {dns.name.root: list(anchors)}
    return s


def test_no_root_anchor_means_no_tag_is_a_trust_anchor():
    assert is_servfail(run("root-key-sentinel-is-ta-20326.example.", anchors=()))
    assert run("root-key-sentinel-not-ta-20326.example.", anchors=()).answer


def test_anchors_of_other_zones_do_not_count():
    s = Settings()
    s.trust_anchors = {dns.name.from_text("example."): [DS_20326]}
    assert key_tags(s, dns.name.root) == []


@pytest.mark.parametrize("kw", [
    {"secure": False},  # insecure or unvalidated answer: not judged
    {"cd": True},  # the client asked for unvalidated data
    {"rdtype": "MX", "answer": []},  # only A and AAAA
    {"rcode": dns.rcode.SERVFAIL},  # failed request
])
def test_answers_that_are_not_judged(kw):
    ans = run("root-key-sentinel-is-ta-12345.example.", **kw)
    assert ans.rcode() != dns.rcode.SERVFAIL or kw.get("rcode") == dns.rcode.SERVFAIL
    assert ans.edns >= 0  # untouched (the OPT is still there)


def test_secure_negative_answer_is_judged_as_kresd_does():
    # kresd checks the answer's rank, not its rcode
    ans = run("root-key-sentinel-is-ta-12345.example.", rcode=dns.rcode.NXDOMAIN)
    assert is_servfail(ans)


@pytest.mark.parametrize("label", [
    "root-key-sentinel-is-ta-2032",  # 4 digits: not the 29-octet label
    "root-key-sentinel-is-ta-203260",  # 6 digits
    "root-key-sentinel-is-ta-4f66a",  # hex digits, but tonumber() reads decimal only
    "root-key-sentinel-is-ta-99999",  # beyond 0xffff
    "root-key-sentinel-xx-ta-12345",  # right length, wrong words
    "root-key-sentinel-not-ta-1234",  # 'not' pattern needs 30 octets
    "www",
])
def test_labels_that_are_not_sentinels(label):
    ans = run(f"{label}.example.")
    assert ans.rcode() == dns.rcode.NOERROR and ans.answer


def test_tag_read_as_lua_tonumber_and_case_insensitive():
    # "1e003" is 1000 for Lua's tonumber(), as in kresd
    assert is_servfail(run("root-key-sentinel-is-ta-1e003.example."))
    req, _ = make_req("root-key-sentinel-is-ta-1e003.example.")
    assert sentinel(req) == (True, 1000)
    assert run("ROOT-Key-Sentinel-IS-TA-20326.example.").answer


def test_name_judged_is_the_end_of_the_cname_chain():
    name = dns.name.from_text("root-key-sentinel-is-ta-12345.example.")
    other = dns.name.from_text("www.example.")
    chain = [dns.rrset.from_text(name, 300, "IN", "CNAME", str(other)),
             dns.rrset.from_text(other, 300, "IN", "A", "192.0.2.7")]
    assert run(str(name), answer=chain).answer == chain  # kresd's req:resolved() is www.example.
    target = dns.name.from_text("root-key-sentinel-is-ta-54321.test.")
    chain = [dns.rrset.from_text(name, 300, "IN", "CNAME", str(target)),
             dns.rrset.from_text(target, 300, "IN", "A", "192.0.2.7")]
    assert is_servfail(run(str(name), answer=chain))


def test_dropped_answer_is_ignored():
    req, settings = make_req("root-key-sentinel-is-ta-12345.example.")
    req.answer = None
    Env("ta_sentinel", settings=settings).mod("ta_sentinel").layer.finish(req)
    assert req.answer is None


class _Secure(Layer):
    """Stands in for the validator: marks every answer secure, with AD."""

    name = "fake_validator"

    def answer_finalize(self, req):
        req.secure = True
        req.answer.flags |= dns.flags.AD


def test_through_the_resolver_after_answer_finalize():
    s = _settings(DS_20326)
    s.negative_trust_anchors = [dns.name.root]  # the fake network is unsigned: no validation
    env = Env("ta_sentinel", settings=s)
    zone = env.servers["1.2.3.4"].zones[0]
    for label in ("root-key-sentinel-is-ta-12345", "root-key-sentinel-is-ta-20326"):
        name = dns.name.from_text(f"{label}.example.cz.")
        zone.replace_rdataset(name, dns.rdataset.from_text("IN", "A", 300, "192.0.2.9"))
    env.resolver.layers.insert(0, _Secure())
    bad = env.ask("root-key-sentinel-is-ta-12345.example.cz.", use_edns=0, want_dnssec=True)
    assert is_servfail(bad)
    good = env.ask("root-key-sentinel-is-ta-20326.example.cz.", use_edns=0, want_dnssec=True)
    assert good.rcode() == dns.rcode.NOERROR and good.flags & dns.flags.AD and good.answer


def test_fast_path_consent():
    from native import parse_query
    lay = Env("ta_sentinel").mod("ta_sentinel").layer

    def pq(name, rdtype="A"):
        return parse_query(dns.message.make_query(name, rdtype).to_wire())
    assert lay.fast_ok(pq("www.example."))
    assert lay.fast_ok(pq("root-key-sentinel-is-ta-12345.example.", "MX"))
    assert not lay.fast_ok(pq("root-key-sentinel-is-ta-12345.example."))
    assert not lay.fast_ok(pq("root-key-sentinel-not-ta-12345.example.", "AAAA"))


def test_config_takes_no_options():
    m = Env("ta_sentinel").mod("ta_sentinel")
    assert m.config() is None and m.config(True) is None
    with pytest.raises(ValueError, match="ta_sentinel.*no configuration options"):
        m.config({"foo": 1})


engine_mod = pytest.importorskip("kresd.engine")


def test_loaded_by_default_in_the_lua_engine():
    from kresd.engine import FakeScheduler
    e = engine_mod.Engine(Settings(), scheduler=FakeScheduler())
    try:
        assert "ta_sentinel" in e.lua_eval("table.concat(modules.list(), ' ')").decode().split()
        e.load_config_text("modules.load('ta_sentinel')\nmodules = {'ta_sentinel'}\n")  # no-op
        with pytest.raises(engine_mod.ConfigError, match="no configuration options"):
            e.load_config_text("ta_sentinel.foo = 1\n")
        with pytest.raises(engine_mod.ConfigError, match="no configuration options"):
            e.load_config_text("modules = {ta_sentinel = {foo = 1}}\n")
        e.load_config_text("modules.unload('ta_sentinel')\n")
        assert e.registry.get("ta_sentinel") is None
    finally:
        e.stop()
