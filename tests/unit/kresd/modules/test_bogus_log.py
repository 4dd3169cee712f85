"""bogus_log module: one notice per bogus answer and the frequent bogus names."""
import logging

import dns.message
import dns.name
import dns.rcode
import dns.rdata
import pytest

from kresd.modules import bogus_log
from workers.request import EDE, Request
from workers.settings import Settings

from .helpers import Env

BROKEN = dns.name.from_text("broken.test.")


def bogus_req(name="www.broken.test.", rdtype="A", zone=BROKEN, reason="signature expired"):
    req = Request(dns.message.make_query(name, rdtype), ("192.0.2.1", 1), False, 0.0)
    req.bogus = (zone, reason, int(EDE.SIGNATURE_EXPIRED))
    return req


def test_one_notice_line_per_bogus_answer(caplog):
    m = Env("bogus_log").mod("bogus_log")
    with caplog.at_level(logging.DEBUG, logger="kresd.dnssec"):
        m.layer.finish(bogus_req())
        m.layer.finish(Request(dns.message.make_query("ok.test.", "A"), None, False, 0.0))  # not bogus
    recs = [r for r in caplog.records if r.name == "kresd.dnssec"]
    assert len(recs) == 1
    assert logging.getLevelName(recs[0].levelno) == "NOTICE"
    assert recs[0].getMessage() == "validation failure: www.broken.test. A (zone broken.test.: signature expired)"


def test_kresd_format_on_stderr():
    import io

    from kresd import log as klog
    buf = io.StringIO()
    klog.setup("notice", buf)
    try:
        Env("bogus_log").mod("bogus_log").layer.finish(bogus_req(rdtype="DNSKEY", name="broken.test."))
    finally:
        klog.reset()
    assert buf.getvalue().startswith("[dnssec] validation failure: broken.test. DNSKEY (zone broken.test.: ")


def test_frequent_counts_by_name_and_type_most_frequent_first():
    m = Env("bogus_log").mod("bogus_log")
    for _ in range(3):
        m.layer.finish(bogus_req("WWW.Broken.Test."))
    m.layer.finish(bogus_req("www.broken.test.", "AAAA"))
    m.layer.finish(bogus_req("mail.broken.test.", "MX"))
    m.layer.finish(bogus_req("mail.broken.test.", "MX"))
    assert m.frequent() == [
        {"name": "www.broken.test.", "type": "A", "count": 3},
        {"name": "mail.broken.test.", "type": "MX", "count": 2},
        {"name": "www.broken.test.", "type": "AAAA", "count": 1},
    ]


def test_frequent_table_is_bounded_and_drops_the_least_recently_seen(monkeypatch):
    monkeypatch.setattr(bogus_log, "FREQUENT_COUNT", 3)
    m = Env("bogus_log").mod("bogus_log")
    for n in ("a", "b", "c"):
        m.layer.finish(bogus_req(f"{n}.broken.test."))
    m.layer.finish(bogus_req("a.broken.test."))  # a seen again: b is now the oldest
    m.layer.finish(bogus_req("d.broken.test."))
    names = {f["name"] for f in m.frequent()}
    assert names == {"a.broken.test.", "c.broken.test.", "d.broken.test."}
    assert {f["name"]: f["count"] for f in m.frequent()}["a.broken.test."] == 2


def test_real_validation_failure_through_the_resolver(caplog):
    """The fake network is unsigned while the root has a trust anchor: the
    validator finds the chain broken, the client gets SERVFAIL, bogus_log logs it."""
    s = Settings()
    s.trust_anchors = {dns.name.root: [dns.rdata.from_text(
        "IN", "DS", "20326 8 2 E06D44B80B8F1D39A95C0B0D7C65D08458E880409BBC683457104237C7F8EC8D")]}
    env = Env("bogus_log", settings=s)
    with caplog.at_level(logging.DEBUG, logger="kresd.dnssec"):
        ans = env.ask("www.example.cz.", use_edns=0, want_dnssec=True)
    assert ans.rcode() == dns.rcode.SERVFAIL
    lines = [r.getMessage() for r in caplog.records
             if r.name == "kresd.dnssec" and r.getMessage().startswith("validation failure: ")]
    assert len(lines) == 1 and lines[0].startswith("validation failure: www.example.cz. A (zone ")
    assert env.mod("bogus_log").frequent() == [{"name": "www.example.cz.", "type": "A", "count": 1}]


def test_fast_path_consent_and_config():
    m = Env("bogus_log").mod("bogus_log")
    assert m.layer.fast_ok(None)
    assert m.config() is None
    with pytest.raises(ValueError, match="bogus_log.*no configuration options"):
        m.config({"size": 10})


engine_mod = pytest.importorskip("kresd.engine")


def test_lua_console_frequent_and_not_loaded_by_default():
    from kresd.engine import FakeScheduler
    e = engine_mod.Engine(Settings(), scheduler=FakeScheduler())
    try:
        assert e.registry.get("bogus_log") is None  # kresd 5.6 does not load it by default
        e.load_config_text("modules.load('bogus_log')\n")
        m = e.registry.get("bogus_log")
        m.layer.finish(bogus_req())
        m.layer.finish(bogus_req())
        out = e.lua_eval("(function() local f = bogus_log.frequent(); "
                         "return #f .. ' ' .. f[1].name .. ' ' .. f[1].type .. ' ' .. f[1].count end)()")
        assert out == b"1 www.broken.test. A 2"
        with pytest.raises(engine_mod.ConfigError, match="no configuration options"):
            e.load_config_text("bogus_log.size = 5\n")
        e.load_config_text("modules.unload('bogus_log')\n")
        assert e.lua_eval("bogus_log") is None
    finally:
        e.stop()
