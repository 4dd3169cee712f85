"""Unit tests for workers/request.py: the client-side prechecks kresd does."""
import dns.flags
import dns.message
import dns.opcode
import dns.rcode

from workers.request import EDE, make_answer, precheck, resolvable, set_ede
from workers.settings import Settings


def q(name="example.com.", rdtype="A", rdclass="IN", rd=True, **kw):
    m = dns.message.make_query(name, rdtype, rdclass, **kw)
    if not rd:
        m.flags &= ~dns.flags.RD
    return m


def test_normal_query_passes():
    assert precheck(q(), Settings()) is None


def test_rd0_is_not_the_core_s_business():
    # RD=0 is refused by the refuse_nord module (kresd/modules/refuse_nord.py), not here
    assert precheck(q(rd=False), Settings()) is None


def test_meta_types_and_classes_pass_the_precheck():
    # kresd 5.6 fails them while resolving (after refuse_nord and policy saw them)
    for t in ("ANY", "AXFR", "IXFR", "TYPE0", "OPT"):
        assert precheck(q(rdtype=t), Settings()) is None, t
    assert precheck(q(rdclass="CH", rdtype="TXT"), Settings()) is None


def test_resolvable_as_kresd56():
    for t in ("ANY", "AXFR", "IXFR", "TYPE0", "OPT", "TSIG", "TKEY", "SIG"):
        assert not resolvable(q(rdtype=t).question[0]), t
    for t in ("A", "MAILA", "MAILB", "RRSIG", "NSEC", "TYPE65280"):
        assert resolvable(q(rdtype=t).question[0]), t
    for c in ("CH", "HS", "NONE", "ANY"):
        assert not resolvable(q(rdclass=c, rdtype="TXT").question[0]), c


def test_opcode_notimp():
    m = q()
    m.set_opcode(dns.opcode.STATUS)
    assert precheck(m, Settings()).rcode() == dns.rcode.NOTIMP


def test_badvers():
    m = q(use_edns=1)
    ans = precheck(m, Settings())
    assert ans.rcode() == dns.rcode.BADVERS


def test_edns_echoed_with_our_size():
    s = Settings()
    ans = make_answer(q(use_edns=0, payload=4096, want_dnssec=True), s)
    assert ans.edns == 0 and ans.payload == s.edns_bufsize and ans.ednsflags & dns.flags.DO
    ans = make_answer(q(use_edns=False), s)
    assert ans.edns == -1


def test_ede_only_with_edns():
    s = Settings()
    ans = make_answer(q(use_edns=0), s)
    set_ede(ans, EDE.NO_REACHABLE_AUTHORITY, "x")
    assert ans.options[0].code == EDE.NO_REACHABLE_AUTHORITY
    ans = make_answer(q(use_edns=False), s)
    set_ede(ans, EDE.NO_REACHABLE_AUTHORITY, "x")
    assert ans.edns == -1
