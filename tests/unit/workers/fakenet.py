"""A tiny in-process authoritative network for resolver unit tests.

Each address serves one or more dnspython zones and answers like an
authoritative server: referrals with glue below delegations, answers, CNAMEs,
NXDOMAIN and NODATA with the SOA. Per-address behaviour switches simulate
broken servers (timeouts, REFUSED, TC over UDP, FORMERR to EDNS).
"""
from __future__ import annotations

import dns.flags
import dns.message
import dns.name
import dns.rcode
import dns.rdatatype as T
import dns.rrset
import dns.zone


def _glue(z, ns_rdataset):
    """Address RRsets, from zone z, of the targets of an NS rdataset."""
    out = []
    for rd in ns_rdataset:
        node = z.get_node(rd.target) if rd.target.is_subdomain(z.origin) else None
        for t in (T.A, T.AAAA):
            rds = node.get_rdataset(dns.rdataclass.IN, t) if node else None
            if rds is not None:
                out.append(dns.rrset.from_rdata_list(rd.target, rds.ttl, list(rds)))
    return out


class AuthServer:
    def __init__(self, *zone_texts: tuple[str, str], behaviour: str = "ok"):
        self.zones = [dns.zone.from_text(text, origin=origin, relativize=False, check_origin=False)
                      for origin, text in zone_texts]
        self.behaviour = behaviour  # ok | timeout | refused | servfail | tc | noedns | garbage
        self.queries: list[tuple[dns.name.Name, int, bool]] = []

    def _zone_for(self, qname):
        best = None
        for z in self.zones:
            if qname.is_subdomain(z.origin) and (best is None or len(z.origin) > len(best.origin)):
                best = z
        return best

    def answer(self, wire: bytes, tcp: bool) -> bytes | None:
        q = dns.message.from_wire(wire)
        qname, qtype = q.question[0].name, q.question[0].rdtype
        self.queries.append((qname, qtype, tcp))
        b = self.behaviour
        if b == "timeout":
            return None
        if b == "garbage":
            return b"\x00\x01garbage"
        r = dns.message.make_response(q)
        r.flags &= ~dns.flags.RD
        if b in ("refused", "servfail"):
            r.set_rcode(dns.rcode.REFUSED if b == "refused" else dns.rcode.SERVFAIL)
            return r.to_wire()
        if b == "noedns" and q.edns >= 0:
            r = dns.message.make_response(q)
            r.use_edns(False)
            r.set_rcode(dns.rcode.FORMERR)
            return r.to_wire()
        z = self._zone_for(qname)
        if z is None:
            r.set_rcode(dns.rcode.REFUSED)
            return r.to_wire()
        self._fill(r, z, qname, qtype)
        if b == "tc" and not tcp:
            r.flags |= dns.flags.TC
            r.answer, r.authority, r.additional = [], [], []
        return r.to_wire()

    def _fill(self, r, z, qname, qtype):
        # delegation below the apex, on the way to qname?
        n = qname
        cuts = []
        while n != z.origin:
            cuts.append(n)
            n = n.parent()
        for cut in reversed(cuts):
            node = z.get_node(cut)
            ns = node.get_rdataset(dns.rdataclass.IN, T.NS) if node else None
            if ns is not None and not (cut == qname and qtype == T.DS):
                r.authority.append(dns.rrset.from_rdata_list(cut, ns.ttl, list(ns)))
                r.additional.extend(_glue(z, ns))
                return
        r.flags |= dns.flags.AA
        for owner in reversed(cuts):  # DNAME at an ancestor: DNAME + synthesised CNAME
            dn = z.get_node(owner)
            dname = dn.get_rdataset(dns.rdataclass.IN, T.DNAME) if dn else None
            if dname is not None and owner != qname:
                target = qname.relativize(owner).derelativize(dname[0].target)
                r.answer.append(dns.rrset.from_rdata_list(owner, dname.ttl, list(dname)))
                r.answer.append(dns.rrset.from_text(qname, dname.ttl, "IN", "CNAME", target.to_text()))
                return
        node = z.get_node(qname)
        soa = z.get_rdataset(z.origin, T.SOA)
        soa_rr = dns.rrset.from_rdata_list(z.origin, soa.ttl, list(soa))
        if node is None:
            r.set_rcode(dns.rcode.NXDOMAIN)
            r.authority.append(soa_rr)
            return
        rds = node.get_rdataset(dns.rdataclass.IN, qtype)
        if rds is not None:
            r.answer.append(dns.rrset.from_rdata_list(qname, rds.ttl, list(rds)))
            if qtype == T.NS:
                r.additional.extend(_glue(z, rds))
            return
        cname = node.get_rdataset(dns.rdataclass.IN, T.CNAME)
        if cname is not None:
            r.answer.append(dns.rrset.from_rdata_list(qname, cname.ttl, list(cname)))
            return
        r.authority.append(soa_rr)


class FakeNet:
    def __init__(self, servers: dict[str, AuthServer]):
        self.servers = servers
        self.sent = 0

    def __call__(self, send):
        self.sent += 1
        srv = self.servers.get(send.addr)
        if srv is None:
            return None
        return srv.answer(send.wire, send.tcp)
