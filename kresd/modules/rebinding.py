"""rebinding: kresd 5.6's protection from DNS rebinding (kres_modules/rebinding.lua).

Owns: the blacklist (kresd's: IANA special-purpose IPv4 nets and their
IPv4-mapped IPv6 forms, ::/128, ::1, fc00::/7, fe80::/10) and the `consume`
check of every upstream reply: an A or AAAA record inside it in any section
makes the reply unusable (not cached, not used). For the client's own
question the answer becomes kresd's: REFUSED, AA clear, and in the additional
section `explanation.invalid. 10800 TXT "blocked by DNS rebinding
protection"`; for a sub-query (e.g. a name server's address) only that
sub-query fails, as kresd's does. Queries with ALLOW_LOCAL (option or policy
flag) are not checked, and neither are cached answers, as in kresd.
Must not: look at anything but upstream replies, or do I/O.
"""
from __future__ import annotations

import ipaddress

import dns.flags
import dns.name
import dns.rcode
import dns.rdataclass
import dns.rdatatype
import dns.rrset

from kresd import log
from workers.layer import Layer, State

from .registry import Module, builtin

G = log.Group.SYSTEM
BLACKLIST = [ipaddress.ip_network(n) for n in (
    "0.0.0.0/8", "10.0.0.0/8", "100.64.0.0/10", "127.0.0.0/8", "169.254.0.0/16", "172.16.0.0/12",
    "192.168.0.0/16", "::/128", "::1/128", "fc00::/7", "fe80::/10")]
EXPLANATION = dns.name.from_text("explanation.invalid.")
MESSAGE = "blocked by DNS rebinding protection"


def blacklisted(address: str) -> bool:
    ip = ipaddress.ip_address(address)
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped  # kresd lists ::ffff:a.b.c.d/(96+n) for every IPv4 net
    return any(ip in net for net in BLACKLIST if net.version == ip.version)


def bad_record(reply) -> str | None:
    """The first A/AAAA record of the reply with a blacklisted address, as text."""
    for section in (reply.answer, reply.authority, reply.additional):
        for rrset in section:
            if rrset.rdtype not in (dns.rdatatype.A, dns.rdatatype.AAAA):
                continue
            for rd in rrset:
                if blacklisted(rd.address):
                    return f"{rrset.name} {dns.rdatatype.to_text(rrset.rdtype)} {rd.address}"
    return None


class RebindingLayer(Layer):
    name = "rebinding"

    def fast_ok(self, pq) -> bool:
        return True  # cached answers are never checked (kresd: flags.CACHED)

    def consume(self, req, reply):
        if getattr(req.options, "ALLOW_LOCAL", False):
            return None
        bad = bad_record(reply)
        if bad is None:
            return None
        q = reply.question[0] if reply.question else None
        if q is not None and q.name == req.qname and q.rdtype == req.qtype:
            req.vars["rebinding"] = bad  # the client's question: refused at answer_finalize
        log.info(G, "[%05d] rebinding: blocking blacklisted IP in RR '%s'", req.uid, bad)
        return State.FAIL  # the reply is not used, not cached

    def answer_finalize(self, req):
        if "rebinding" not in req.vars or req.answer is None:
            return None
        ans = req.answer
        ans.answer.clear()
        ans.authority.clear()
        ans.additional.clear()
        ans.set_rcode(dns.rcode.REFUSED)
        ans.flags &= ~(dns.flags.AA | dns.flags.AD)
        if ans.edns >= 0:  # no EDE of the failed resolution
            ans.use_edns(ans.edns, ans.ednsflags, ans.payload,
                         options=[o for o in ans.options if int(o.otype) != 15])
        ans.additional.append(dns.rrset.from_text(EXPLANATION, 10800, dns.rdataclass.IN,
                                                  dns.rdatatype.TXT, f'"{MESSAGE}"'))
        return None


@builtin
class Rebinding(Module):
    name = "rebinding"

    def __init__(self, ctx):
        super().__init__(ctx)
        self.layer = RebindingLayer()

    def lua_api(self) -> dict:
        return {}
