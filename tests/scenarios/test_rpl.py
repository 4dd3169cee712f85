"""Unit tests of the replay harness itself: parser, MATCH rules, fake network, player.

Owns: checks that need no resolution core (a throw-away FakeResolver below
drives the player end to end).
Must not: import workers.resolve or cache.api.
"""
from __future__ import annotations

import dns.flags
import dns.message
import dns.name
import dns.rcode
import dns.rdatatype
import pytest

from workers.settings import GlueMode, Settings
from workers.transport import Send

from tests import shared_data

from . import config, expected, match, replay, responder, rpl

HEADER = """; a comment line
\tstub-addr: 193.0.14.129   # K.ROOT-SERVERS.NET.
do-ip6: no
"""

SIMPLE = HEADER + """CONFIG_END

SCENARIO_BEGIN simple delegation
RANGE_BEGIN 0 100
\tADDRESS 193.0.14.129
ENTRY_BEGIN
MATCH opcode qtype qname
ADJUST copy_id
REPLY QR NOERROR
SECTION QUESTION
www.example.com. IN A
SECTION AUTHORITY
example.com. IN NS ns.example.com.
SECTION ADDITIONAL
ns.example.com. IN A 1.2.3.4
ENTRY_END
RANGE_END

RANGE_BEGIN 0 100
\tADDRESS 1.2.3.4
ENTRY_BEGIN
MATCH opcode qtype qname
ADJUST copy_id
REPLY QR AA NOERROR
SECTION QUESTION
www.example.com. IN A
SECTION ANSWER
www.example.com. 300 IN A 10.20.30.40
ENTRY_END
RANGE_END

STEP 1 QUERY
ENTRY_BEGIN
REPLY RD
SECTION QUESTION
www.example.com. IN A
ENTRY_END

STEP 10 CHECK_ANSWER
ENTRY_BEGIN
MATCH all
REPLY QR RD RA NOERROR
SECTION QUESTION
www.example.com. IN A
SECTION ANSWER
www.example.com. IN A 10.20.30.40
ENTRY_END
SCENARIO_END
"""


def parse(text: str, name: str = "t_simple") -> rpl.Scenario:
    return rpl.parse_text(text, f"/x/{name}.rpl")


def query(name: str, rdtype: str = "A", *, want_dnssec: bool = False) -> dns.message.Message:
    msg = dns.message.make_query(name, rdtype, use_edns=0, payload=1232, want_dnssec=want_dnssec)
    msg.flags = 0
    return dns.message.from_wire(msg.to_wire())


def entry_of(body: str) -> rpl.Entry:
    scn = parse("CONFIG_END\nSCENARIO_BEGIN t\nSTEP 1 REPLY\nENTRY_BEGIN\n" + body
                + "ENTRY_END\nSCENARIO_END\n")
    return scn.steps[0].entry


# ---------------------------------------------------------------- header

def test_header_comments_quotes_and_values():
    scn = parse('stub-addr: "2001:dc3::35"\n; trust-anchor: ignored\n'
                "query-minimization: off ; trailing words\nCONFIG_END\nSCENARIO_BEGIN t\nSCENARIO_END\n")
    assert scn.header == [("stub-addr", "2001:dc3::35"),
                          ("query-minimization", "off ; trailing words")]
    assert config.context(scn).qmin is False


@pytest.mark.parametrize("word,value", [("yes", True), ("TRUE", True), ("On", True), ("1", True),
                                        ("no", False), ("off", False), ("0", False), ("x", False)])
def test_booleans(word, value):
    assert rpl.str2bool(word) is value


def test_unknown_header_key_is_an_error():
    with pytest.raises(rpl.RplError, match="unknown header key 'harden-referral-path'"):
        parse("harden-referral-path: no\nCONFIG_END\nSCENARIO_BEGIN t\nSCENARIO_END\n")


def test_features_and_feature_list():
    scn = parse("features: min_ttl = 5 ; max_ttl=10\nfeature-list: policy=a=b\n"
                "feature-list: policy=c\nCONFIG_END\nSCENARIO_BEGIN t\nSCENARIO_END\n")
    ctx = config.context(scn)
    assert ctx.features == {"min_ttl": "5", "max_ttl": "10", "policy": ["a=b", "c"]}


# ---------------------------------------------------------------- body

def test_simple_scenario_structure():
    scn = parse(SIMPLE)
    assert scn.title == "simple delegation"
    assert [(r.first, r.last, r.addresses) for r in scn.ranges] == [
        (0, 100, ["193.0.14.129"]), (0, 100, ["1.2.3.4"])]
    assert [(s.id, s.type) for s in scn.steps] == [(1, "QUERY"), (10, "CHECK_ANSWER")]
    q = scn.steps[0].entry.message
    assert q.flags == dns.flags.RD and q.edns == 0 and q.payload == 4096


def test_records_default_ttl_class_and_relative_names():
    entry = entry_of("SECTION ANSWER\nwww.example. IN CNAME target\nexample 7 NS ns\n"
                     "x. IN 60 A 1.2.3.4\nx. RRSIG A 8 1 300 20300101000000 20000101000000 "
                     "1 x. ( AAAA AAAA )\n")
    rrs = entry.message.answer
    assert rrs[0].ttl == rpl.DEFAULT_TTL and rrs[0][0].target == dns.name.from_text("target.")
    assert rrs[1].name == dns.name.from_text("example.") and rrs[1].ttl == 7
    assert rrs[2].ttl == 60
    assert rrs[3].covers == dns.rdatatype.A


def test_reply_line_flags_do_and_rcode():
    entry = entry_of("FLAGS QR AA DO NXDOMAIN\n")
    assert entry.message.flags & dns.flags.AA and entry.message.flags & dns.flags.QR
    assert entry.do_bit and entry.message.rcode() == dns.rcode.NXDOMAIN
    assert entry_of("REPLY BADVERS\n").message.rcode() == dns.rcode.BADVERS


def test_reply_line_unknown_word_is_an_error():
    with pytest.raises(rpl.RplError, match="unknown REPLY/FLAGS word"):
        entry_of("REPLY QR BOGUSFLAG\n")


def test_match_expansion_and_errors():
    assert entry_of("MATCH all\n").match == frozenset(rpl.MATCH_ALL)
    assert entry_of("MATCH question subdomain\n").match == {"qname", "qtype", "subdomain"}
    with pytest.raises(rpl.RplError, match="unknown MATCH"):
        entry_of("MATCH everything\n")


def test_raw_edns_and_mandatory():
    entry = entry_of("MANDATORY\nADJUST raw_id\nRAW\n0102 0304\n")
    assert entry.raw == b"\x01\x02\x03\x04" and entry.mandatory and entry.adjust == {"raw_id"}
    assert entry_of("EDNS 0 0\n").message.edns == -1
    assert entry_of("EDNS 0 512\n").message.payload == 512


def test_time_passes_and_missing_entry():
    scn = parse("CONFIG_END\nSCENARIO_BEGIN t\nSTEP 5 TIME_PASSES ELAPSE 30\nSCENARIO_END\n")
    assert scn.steps[0].elapse == 30
    with pytest.raises(rpl.RplError, match="needs an ENTRY"):
        parse("CONFIG_END\nSCENARIO_BEGIN t\nSTEP 5 QUERY\nSCENARIO_END\n")


def test_every_scenario_file_parses():
    files = shared_data.require_scenarios()  # skip without the shared data, fail when too few
    assert len(files) >= shared_data.MIN_SCENARIOS
    for path in files:
        scn = rpl.parse_file(path)
        assert scn.steps, path
        config.context(scn)  # header values convert too


# ---------------------------------------------------------------- MATCH

def test_qname_case_insensitive_qcase_not():
    exp = entry_of("MATCH qname qtype\nSECTION QUESTION\nexample.com. IN A\n")
    assert match.matches(exp, query("ExAmPlE.cOm."))
    exp_case = entry_of("MATCH qcase\nSECTION QUESTION\nexample.com. IN A\n")
    with pytest.raises(match.Mismatch, match="qcase"):
        match.check(exp_case, query("ExAmPlE.cOm."))
    assert not match.matches(exp, query("example.com.", "AAAA"))


def test_subdomain():
    exp = entry_of("MATCH subdomain\nSECTION QUESTION\nexample.com. IN NS\n")
    assert match.matches(exp, query("a.b.example.com."))
    assert match.matches(exp, query("example.com."))
    assert not match.matches(exp, query("com."))


def test_sections_are_multisets_ignoring_ttl():
    exp = entry_of("MATCH answer\nSECTION ANSWER\na. 5 A 1.1.1.1\nA. 7 A 2.2.2.2\n")
    got = dns.message.from_text("id 1\n;ANSWER\na. 99 IN A 2.2.2.2\na. 99 IN A 1.1.1.1\n")
    match.check(exp, got)
    extra = dns.message.from_text("id 1\n;ANSWER\na. 99 IN A 2.2.2.2\na. 99 IN A 3.3.3.3\n")
    with pytest.raises(match.Mismatch, match=r"missing \[a. A 1.1.1.1\], unexpected \[a. A 3.3.3.3\]"):
        match.check(exp, extra)


def test_flags_compare_header_flags_only():
    exp = entry_of("MATCH flags\nREPLY QR RD RA DO\n")
    got = dns.message.from_text("id 1\nflags QR RD RA\n")
    match.check(exp, got)
    with pytest.raises(match.Mismatch, match="flags: expected QR RD RA, got QR AA RD RA"):
        match.check(exp, dns.message.from_text("id 1\nflags QR AA RD RA\n"))


def test_rcode_and_additional_ignore_opt():
    exp = entry_of("MATCH rcode additional\nREPLY SERVFAIL\n")
    got = dns.message.make_response(query("x."))
    got.set_rcode(dns.rcode.SERVFAIL)
    match.check(exp, dns.message.from_wire(got.to_wire()))
    got.set_rcode(dns.rcode.NOERROR)
    with pytest.raises(match.Mismatch, match="rcode: expected SERVFAIL, got NOERROR"):
        match.check(exp, got)


# ---------------------------------------------------------------- ADJUST

def test_copy_id_copies_id_and_qname_case_and_edns():
    entry = entry_of("ADJUST copy_id\nREPLY QR\nSECTION QUESTION\nexample.com. IN A\n")
    q = query("ExAmple.COM.", want_dnssec=True)
    reply = dns.message.from_wire(match.make_reply(entry, q))
    assert reply.id == q.id and reply.question[0].name.labels == q.question[0].name.labels
    assert reply.ednsflags & dns.flags.DO


def test_copy_query_and_raw_id_and_do_not_answer():
    entry = entry_of("ADJUST copy_query\nREPLY QR\n")
    q = query("asked.")
    assert dns.message.from_wire(match.make_reply(entry, q)).question[0].name == q.question[0].name
    raw = entry_of("ADJUST raw_id\nRAW\nffff8180\n")
    assert match.make_reply(raw, q)[:2] == q.id.to_bytes(2, "big")
    assert match.make_reply(entry_of("ADJUST do_not_answer\n"), q) is None


# ---------------------------------------------------------------- fake network

NET = """CONFIG_END
SCENARIO_BEGIN net
RANGE_BEGIN 0 10
\tADDRESS 1.1.1.1
ENTRY_BEGIN
MATCH qname
ADJUST copy_id
REPLY QR
SECTION QUESTION
a. IN A
SECTION ANSWER
a. A 10.0.0.1
ENTRY_END
ENTRY_BEGIN
MATCH qname
ADJUST copy_id
REPLY QR
SECTION QUESTION
a. IN A
SECTION ANSWER
a. A 10.0.0.99
ENTRY_END
ENTRY_BEGIN
MATCH qname
ADJUST do_not_answer
MANDATORY
SECTION QUESTION
slow. IN A
ENTRY_END
RANGE_END
RANGE_BEGIN 11 20
\tADDRESS 2.2.2.2
ENTRY_BEGIN
MATCH qname
ADJUST copy_id
REPLY QR
SECTION QUESTION
a. IN A
SECTION ANSWER
a. A 10.0.0.2
ENTRY_END
RANGE_END
STEP 5 QUERY
ENTRY_BEGIN
SECTION QUESTION
x. IN A
ENTRY_END
STEP 8 REPLY
ENTRY_BEGIN
MATCH qname
ADJUST copy_id
REPLY QR
SECTION QUESTION
once. IN A
ENTRY_END
STEP 15 QUERY
ENTRY_BEGIN
SECTION QUESTION
x. IN A
ENTRY_END
SCENARIO_END
"""


def make_net(step_index: int = 0):
    scn = parse(NET, "t_net")
    clock = replay.FakeClock(1000)
    net = replay.FakeNetwork(scn, clock)
    net.begin_step(scn.steps[step_index])
    return net, clock


def ask(net, name: str, addr: str, tcp: bool = False):
    wire = net.transport(Send(addr, 53, query(name).to_wire(), tcp=tcp, timeout=0.8))
    return None if wire is None else dns.message.from_wire(wire)


def answer_addr(msg) -> str:
    return msg.answer[0][0].address


def test_first_matching_entry_of_eligible_range():
    net, _ = make_net()
    assert answer_addr(ask(net, "a.", "1.1.1.1")) == "10.0.0.1"
    assert ask(net, "a.", "2.2.2.2").rcode() == dns.rcode.SERVFAIL  # range 11-20 not yet eligible
    assert "a. A to 2.2.2.2 over udp" in net.undefined[0]
    net.begin_step(net.scn.steps[2])  # step 15
    assert answer_addr(ask(net, "a.", "2.2.2.2")) == "10.0.0.2"


def test_unknown_address_is_answered_by_any_eligible_range():
    net, _ = make_net()
    assert answer_addr(ask(net, "a.", "9.9.9.9")) == "10.0.0.1"


def test_reply_step_used_once_and_only_while_pending():
    net, _ = make_net()
    assert ask(net, "once.", "1.1.1.1").rcode() == dns.rcode.NOERROR
    assert ask(net, "once.", "1.1.1.1").rcode() == dns.rcode.SERVFAIL
    later, _ = make_net(step_index=2)  # step 15 > REPLY step 8
    assert ask(later, "once.", "1.1.1.1").rcode() == dns.rcode.SERVFAIL


def test_do_not_answer_times_out_and_fires_mandatory():
    net, clock = make_net()
    assert [e.line for e in net.unfired_mandatory()]
    before = clock.monotonic()
    assert ask(net, "slow.", "1.1.1.1") is None
    assert clock.monotonic() - before == pytest.approx(0.8)
    assert not net.unfired_mandatory()


def test_other_ports_time_out():
    net, clock = make_net()
    before = clock.monotonic()
    assert net.transport(Send("1.1.1.1", 5300, query("a.").to_wire(), timeout=0.5)) is None
    assert clock.monotonic() - before == pytest.approx(0.5)


def test_send_cap(monkeypatch):
    monkeypatch.setattr(responder, "MAX_SENDS_PER_QUERY", 3)
    net, _ = make_net()
    for _ in range(3):
        ask(net, "a.", "1.1.1.1")
    with pytest.raises(replay.TransportLimit):
        ask(net, "a.", "1.1.1.1")


def test_fake_clock():
    clock = replay.FakeClock(1000)
    mono = clock.monotonic()
    clock.advance(2)
    clock.jump(3600)
    assert clock.time() == 1000 + 2 + 3600 and clock.monotonic() == mono + 2


# ---------------------------------------------------------------- config

def test_config_maps_template_variables():
    scn = parse("stub-addr: 10.0.0.1\nstub-name: ns.\nharden-glue: off\n"
                "do-not-query-localhost: off\ndo-ip6: no\nfeatures: min_ttl=7\n"
                "val-override-date: 20200101000000\nCONFIG_END\nSCENARIO_BEGIN t\nSCENARIO_END\n")
    ctx = config.context(scn)
    assert config.qmin_modes(ctx) == (True, False) and not config.unsupported(ctx)
    settings = Settings()
    config.apply(settings, ctx, qmin=False)
    assert settings.root_hints == {dns.name.from_text("ns."): ["10.0.0.1"]}
    assert settings.no_minimize and settings.allow_local and not settings.ipv6 and settings.ipv4
    assert settings.glue_mode == GlueMode.PERMISSIVE and settings.cache_min_ttl == 7
    assert settings.outgoing_v4 == "127.127.0.2" and settings.edns_bufsize == 4096
    assert ctx.start_time == 1577836800


def test_config_defaults_and_unsupported():
    ctx = config.context(parse("CONFIG_END\nSCENARIO_BEGIN t\nSCENARIO_END\n"))
    settings = Settings()
    hints = dict(settings.root_hints)
    config.apply(settings, ctx, qmin=True)
    assert settings.root_hints == hints and settings.glue_mode == GlueMode.NORMAL
    assert not settings.no_minimize and not settings.allow_local
    ta = parse('trust-anchor: ". DS 1 8 2 AA"\nfeature-list: policy=x\nstub-addr: ::1\n'
               "CONFIG_END\nSCENARIO_BEGIN t\nSCENARIO_END\n")
    ctx = config.context(ta)
    assert config.unsupported(ctx) == ["trust-anchor", "features.policy"]
    assert ctx.family == 6 and ctx.client_addr == "fd00:dec::1"


def test_modes_for():
    assert replay.modes_for(parse(SIMPLE), "both") == (True, False)
    assert replay.modes_for(parse(SIMPLE), "off") == (False,)
    fixed = parse("query-minimization: on\n" + SIMPLE)
    assert replay.modes_for(fixed, "off") == (True,)


# ---------------------------------------------------------------- expected list

def test_expected_list_format(tmp_path):
    path = tmp_path / "x.txt"
    path.write_text("# c\nval_a DNSSEC missing\niter_b:off known kresd failure\n")
    table = expected.load(path)
    assert expected.reason_for(table, "val_a", True) == "DNSSEC missing"
    assert expected.reason_for(table, "iter_b", True) is None
    assert expected.classify(True, "x") == "XPASS" and expected.classify(False, None) == "FAIL"
    path.write_text("nameonly\n")
    with pytest.raises(expected.ListError):
        expected.load(path)


# ---------------------------------------------------------------- player with a fake core

class FakeResolver:
    """Throw-away iterative resolver: follows referrals with glue, retries TC over TCP."""

    def __init__(self, settings, cache, clock, rng=None):
        self.settings = settings

    def resolve(self, q: dns.message.Message, client=None, tcp=False):
        addr = next(iter(self.settings.root_hints.values()))[0]
        for _ in range(10):
            out = dns.message.make_query(q.question[0].name, q.question[0].rdtype)
            out.flags = 0
            reply = yield Send(addr, 53, out.to_wire())
            if reply is not None and dns.message.from_wire(reply).flags & dns.flags.TC:
                reply = yield Send(addr, 53, out.to_wire(), tcp=True)
            if reply is None:
                break
            msg = dns.message.from_wire(reply)
            if msg.answer or not msg.additional:
                return self._answer(q, msg)
            addr = msg.additional[0][0].address
        ans = dns.message.make_response(q)
        ans.set_rcode(dns.rcode.SERVFAIL)
        return ans

    @staticmethod
    def _answer(q, msg):
        ans = dns.message.make_response(q)
        ans.flags |= dns.flags.RA
        ans.answer = msg.answer
        ans.set_rcode(msg.rcode())
        return ans


FAKE_CORE = replay.Core(FakeResolver, None, Settings)


def test_player_passes_simple_scenario():
    outcomes = replay.run_modes(parse(SIMPLE), "both", FAKE_CORE)
    assert [(o.passed, o.mode) for o in outcomes] == [(True, "on"), (True, "off")], outcomes[0].reason
    assert [t.outcome.split()[0] for t in outcomes[0].trace] == ["answered", "answered"]


def test_player_reports_precise_check_failure():
    text = SIMPLE.replace("SECTION ANSWER\nwww.example.com. IN A 10.20.30.40\nENTRY_END\nSCENARIO_END",
                          "SECTION ANSWER\nwww.example.com. IN A 10.9.9.9\nENTRY_END\nSCENARIO_END")
    outcome = replay.run_scenario(parse(text), True, FAKE_CORE)
    assert not outcome.passed
    assert outcome.reason.startswith("step 10 CHECK_ANSWER (line ")
    assert "missing [www.example.com. A 10.9.9.9]" in outcome.reason


def test_player_reports_undefined_answers_and_unsupported():
    text = SIMPLE.replace("RANGE_BEGIN 0 100\n\tADDRESS 1.2.3.4", "RANGE_BEGIN 50 100\n\tADDRESS 1.2.3.4")
    outcome = replay.run_scenario(parse(text), True, FAKE_CORE)
    assert "does not define all necessary answers: step 1: www.example.com. A to 1.2.3.4" in outcome.reason
    ta = parse('trust-anchor: ". DS 1 8 2 AA"\n' + SIMPLE)
    assert replay.run_scenario(ta, True, FAKE_CORE).reason == "unsupported: trust-anchor"


def test_player_tc_retry_over_tcp():
    text = SIMPLE.replace("REPLY QR AA NOERROR", "REPLY QR AA TC NOERROR\nSECTION QUESTION\n"
                          "www.example.com. IN A\nENTRY_END\nENTRY_BEGIN\nMATCH opcode qtype qname\n"
                          "ADJUST copy_id\nREPLY QR AA NOERROR", 1)
    scn = parse(text)
    # all answers become one-shot REPLY steps, as in iter_tcbit
    tc_entry, full_entry = scn.ranges.pop(1).entries
    root_entry, = scn.ranges.pop(0).entries
    scn.steps[1:1] = [rpl.Step(id=i, type="REPLY", line=0, entry=e)
                      for i, e in enumerate((root_entry, tc_entry, full_entry), 2)]
    outcome = replay.run_scenario(scn, True, FAKE_CORE)
    assert outcome.passed, outcome.reason
    assert [t.tcp for t in outcome.trace] == [False, False, True]


def test_server_edges_are_used_when_given():
    seen = []

    def render(answer, query, settings, tcp):
        seen.append((query.id, settings.edns_bufsize, tcp))
        return answer.to_wire(), False

    def parse_query(wire):
        return dns.message.from_wire(wire), "RESOLVE"

    core = replay.Core(FakeResolver, None, Settings, parse_query, render)
    assert replay.run_scenario(parse(SIMPLE), True, core).passed
    assert [s[1:] for s in seen] == [(4096, False)]


def test_resolver_crash_is_a_failure():
    class Crashing(FakeResolver):
        def resolve(self, q, client=None, tcp=False):
            raise RuntimeError("boom")
            yield  # pragma: no cover

    outcome = replay.run_scenario(parse(SIMPLE), True, replay.Core(Crashing, None, Settings))
    assert outcome.reason.startswith("step 1 QUERY: resolver raised RuntimeError: boom")
