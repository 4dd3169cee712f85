"""kresd/modules/rebinding.py: kresd's blacklist, IPv4-mapped forms included."""
import dns.message
import dns.rrset

from kresd.modules.rebinding import bad_record, blacklisted


def test_blacklist():
    for a in ("10.1.2.3", "127.0.0.1", "192.168.1.1", "172.31.0.1", "100.64.0.1", "169.254.1.1", "0.1.2.3",
              "::1", "::", "fd00::1", "fe80::1", "::ffff:10.0.0.1", "::ffff:127.0.0.1"):
        assert blacklisted(a), a
    for a in ("192.0.2.1", "8.8.8.8", "172.32.0.1", "2001:db8::1", "::ffff:8.8.8.8"):
        assert not blacklisted(a), a


def test_any_section_counts():
    r = dns.message.make_response(dns.message.make_query("a.example.", "A"))
    r.answer.append(dns.rrset.from_text("a.example.", 60, "IN", "A", "192.0.2.1"))
    assert bad_record(r) is None
    r.additional.append(dns.rrset.from_text("ns.example.", 60, "IN", "AAAA", "fe80::1"))
    assert bad_record(r) == "ns.example. AAAA fe80::1"
