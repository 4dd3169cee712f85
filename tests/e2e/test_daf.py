"""The `daf` module against the knotd hierarchy, beside Debian's kresd 5.6
with the same rules: deny by name, drop by pattern (kresd 5.6 answers SERVFAIL to a DROPped query), TC by source subnet AND
name, and a name no rule matches (names under test. are PASSed by the e2e
config's first policy rule, so the rules aim elsewhere); then a rule disabled and deleted at run time."""
from __future__ import annotations

import dns.exception
import dns.flags
import dns.message
import dns.query
import dns.rcode
import pytest

from tests.conftest import alloc_test_addr

from .resolver import CONFIG, Resolver
from .signed_hierarchy import KRESD56
from .test_kresd_forks import tty

pytestmark = pytest.mark.e2e
RULES = """modules.load('daf')
deny_rule = daf.add('qname = hoster.example deny')
daf.add('qname ~ %w+.nic.cz drop')
daf.add('src = 127.0.0.0/8 AND qname = www.example tc')
"""


def outcome(addr, name):
    try:
        r = dns.query.udp(dns.message.make_query(name, "A"), addr, timeout=2)
    except dns.exception.Timeout:
        return "timeout"
    return (dns.rcode.to_text(r.rcode()), bool(r.flags & dns.flags.TC), len(r.answer))


def test_rules_as_kresd56(kresd_bin, hierarchy, tmp_path):
    started = []
    try:
        for name, binary in (("ours", kresd_bin), ("kresd56", KRESD56)):
            r = Resolver(binary, alloc_test_addr(), tmp_path / name, config=CONFIG + RULES)
            started.append(r)
            r.start(probe=("www.glue.test.", "A"))
        names = ("ns.hoster.example.", "www.sub.nic.cz.", "www.example.", "www.glue.test.")
        got = [[outcome(r.addr, n) for n in names] for r in started]
        assert got[0] == got[1], got
        assert got[0][0][0] == "NXDOMAIN" and got[0][1] == ("SERVFAIL", False, 0) and got[0][2][1] is True
        assert got[0][3] == ("NOERROR", False, 1)
        ours = started[0]
        path = ours.rundir / "tty" / str(ours.proc.pid)
        tty(path, "daf.disable(deny_rule.id)")
        assert outcome(ours.addr, "ns.hoster.example.") == ("NOERROR", False, 1)
        tty(path, "daf.enable(deny_rule.id)")
        assert outcome(ours.addr, "ns.hoster.example.")[0] == "NXDOMAIN"
        (out,) = tty(path, "daf.del(deny_rule.id)")
        assert "true" in out
        assert outcome(ours.addr, "ns.hoster.example.") == ("NOERROR", False, 1)
        (out,) = tty(path, "#daf.rules")
        assert out.strip() == "2"
    finally:
        for r in started:
            r.stop()
