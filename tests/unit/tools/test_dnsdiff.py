"""tools/dnsdiff.py: the normal form two resolvers' answers are compared in."""
from __future__ import annotations

import dns.edns
import dns.flags
import dns.message
import dns.name
import dns.opcode
import dns.rdataclass
import dns.rdatatype
import dns.rrset

from tools import dnsdiff


def _reply(flags: int, ttl: int, order: list[str], ede: int | None = None) -> dns.message.Message:
    q = dns.message.make_query("www.secure.test.", "A", want_dnssec=True)
    r = dns.message.make_response(q)
    r.flags |= flags
    r.answer = [dns.rrset.from_text("www.secure.test.", ttl, "IN", "A", *order)]
    if ede is not None:
        r.use_edns(0, options=[dns.edns.EDEOption(ede, f"text {ttl}")])
    return r


def test_normal_form_ignores_ttl_order_and_ede_text():
    a = dnsdiff.normal_form(_reply(dns.flags.AD, 300, ["192.0.2.1", "192.0.2.2"], ede=6))
    b = dnsdiff.normal_form(_reply(dns.flags.AD, 17, ["192.0.2.2", "192.0.2.1"], ede=6))
    assert dnsdiff.differences(a, b) == []


def test_differences_name_flags_ede_and_records():
    a = dnsdiff.normal_form(_reply(dns.flags.AD, 300, ["192.0.2.1"], ede=6))
    b = dnsdiff.normal_form(_reply(0, 300, ["192.0.2.9"], ede=7))
    diffs = dnsdiff.differences(a, b)
    assert [d.split(":")[0] for d in diffs] == ["flags", "ede", "answer"], diffs
    assert "192.0.2.1" in diffs[2] and "192.0.2.9" in diffs[2]
    assert dnsdiff.differences(dnsdiff.normal_form(None), b)[0].startswith("rcode")


def test_ttl_above_the_zone_is_a_difference_below_is_not():
    zone = {(dns.name.from_text("www.secure.test."), dns.rdatatype.A): 300}
    limit = lambda name, rdtype: zone.get((name, rdtype))  # noqa: E731
    counted_down = dnsdiff.normal_form(_reply(0, 17, ["192.0.2.1"]), limit)
    fresh = dnsdiff.normal_form(_reply(0, 300, ["192.0.2.1"]), limit)
    too_long = dnsdiff.normal_form(_reply(0, 301, ["192.0.2.1"]), limit)
    assert dnsdiff.differences(counted_down, fresh) == []
    assert [d.split(":")[0] for d in dnsdiff.differences(too_long, fresh)] == ["ttl"]


def test_probe_builds_what_it_says():
    p = dnsdiff.Probe("version.bind.", "TXT", variant="-rd", rdclass="CH", rd=False, edns=1, do=True,
                      opcode=dns.opcode.NOTIFY)
    m = p.message()
    assert p.key == "version.bind. CH TXT -rd"
    assert not m.flags & dns.flags.RD and m.edns == 1 and m.ednsflags & dns.flags.DO
    assert m.opcode() == dns.opcode.NOTIFY and m.question[0].rdclass == dns.rdataclass.CH
    assert dnsdiff.Probe("a.", "A", edns=None).message().edns == -1


def test_check_splits_unknown_and_stale():
    results = [dnsdiff.Result("a.", "A", "plain", "", ["rcode"]), dnsdiff.Result("b.", "A", "plain", "")]
    unknown, stale = dnsdiff.check(results, {"b. A plain": "fixed since", "c. A plain": "gone"})
    assert [r.key for r in unknown] == ["a. A plain"] and stale == ["b. A plain", "c. A plain"]
