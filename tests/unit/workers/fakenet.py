"""A tiny in-process authoritative network for resolver unit tests.

Each address serves one or more dnspython zones and answers like an
authoritative server: referrals with glue below delegations, answers, CNAMEs,
NXDOMAIN and NODATA with the SOA. Per-address behaviour switches simulate
broken servers (timeouts, REFUSED, TC over UDP, FORMERR to EDNS).

Signed zones (a DNSKEY at the apex, e.g. from tests/unit/workers/signedzones.py)
are served as a DNSSEC-aware server does to a DO query: RRSIGs with every
signed RRset, the DS (or the NSEC proving there is none) in referrals, and the
NSEC proofs of NXDOMAIN, NODATA and wildcard answers. Wildcards are expanded
(RFC 4592) in any zone; a DS query for a zone apex is answered from the parent
zone when the server also holds it (RFC 4035 3.1.4.1).
"""
from __future__ import annotations

import dns.exception
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


def _signed(z) -> bool:
    return z.get_rdataset(z.origin, T.DNSKEY) is not None


def _rrset(z, owner, rtype, covers=T.NONE, name=None):
    rds = z.get_rdataset(owner, rtype, covers)
    if rds is None:
        return None
    return dns.rrset.from_rdata_list(name or owner, rds.ttl, list(rds))


def _sig(z, owner, rtype, name=None):
    return _rrset(z, owner, T.RRSIG, rtype, name)


def _nsec_at(z, name):
    nsec = _rrset(z, name, T.NSEC)
    return [nsec, _sig(z, name, T.NSEC)] if nsec is not None else []


def _covering_nsec(z, name):
    """The NSEC RRset (and its RRSIG) whose owner precedes `name` most closely."""
    owners = sorted(n for n, node in z.nodes.items() if node.get_rdataset(dns.rdataclass.IN, T.NSEC))
    best = None
    for o in owners:
        if o < name:
            best = o
    return _nsec_at(z, best if best is not None else owners[-1]) if owners else []


def _exists(z, name) -> bool:
    """A node at `name`, or below it (an empty non-terminal)."""
    return any(n.is_subdomain(name) for n in z.nodes)


def _closest_encloser(z, qname):
    n = qname.parent()
    while n != z.origin and not _exists(z, n):
        n = n.parent()
    return n


def _wild(name):
    return dns.name.Name((b"*",) + name.labels)


class AuthServer:
    def __init__(self, *zone_texts: tuple[str, str], behaviour: str = "ok"):
        # each item is (origin, zone text) or an already built dns.zone.Zone
        self.zones = [zt if isinstance(zt, dns.zone.Zone) else
                      dns.zone.from_text(zt[1], origin=zt[0], relativize=False, check_origin=False)
                      for zt in zone_texts]
        self.behaviour = behaviour  # ok | timeout | refused | servfail | tc | noedns | garbage
        self.queries: list[tuple[dns.name.Name, int, bool]] = []  # names in plain (lower) case
        self.wire_names: list[dns.name.Name] = []  # the QNAMEs as sent (0x20 case)

    def _zone_for(self, qname):
        best = None
        for z in self.zones:
            if qname.is_subdomain(z.origin) and (best is None or len(z.origin) > len(best.origin)):
                best = z
        return best

    def answer(self, wire: bytes, tcp: bool) -> bytes | None:
        q = dns.message.from_wire(wire)
        qname, qtype = q.question[0].name, q.question[0].rdtype
        self.queries.append((qname.canonicalize(), qtype, tcp))
        self.wire_names.append(qname)
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
        if z is not None and qtype == T.DS and qname == z.origin and qname != dns.name.root:
            z = self._zone_for(qname.parent()) or z  # DS is the parent's data
        if z is None:
            r.set_rcode(dns.rcode.REFUSED)
            return r.to_wire()
        kind = self._fill(r, z, qname, qtype)
        if q.ednsflags & dns.flags.DO and _signed(z):
            self._dnssec(r, z, qname, qtype, *kind)
        if b == "tc" and not tcp:
            r.flags |= dns.flags.TC
            r.answer, r.authority, r.additional = [], [], []
        try:
            return r.to_wire(max_size=65535 if tcp else 0)
        except dns.exception.TooBig:  # over the client's UDP size: TC, as a server does
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
                return "referral", cut
        r.flags |= dns.flags.AA
        for owner in reversed(cuts):  # DNAME at an ancestor: DNAME + synthesised CNAME
            dn = z.get_node(owner)
            dname = dn.get_rdataset(dns.rdataclass.IN, T.DNAME) if dn else None
            if dname is not None and owner != qname:
                target = qname.relativize(owner).derelativize(dname[0].target)
                r.answer.append(dns.rrset.from_rdata_list(owner, dname.ttl, list(dname)))
                r.answer.append(dns.rrset.from_text(qname, dname.ttl, "IN", "CNAME", target.to_text()))
                return "dname", owner
        node = z.get_node(qname)
        soa = z.get_rdataset(z.origin, T.SOA)
        soa_rr = dns.rrset.from_rdata_list(z.origin, soa.ttl, list(soa))
        source = qname
        if node is None and not _exists(z, qname):  # RFC 4592: a wildcard at the closest encloser?
            wild = _wild(_closest_encloser(z, qname)) if qname != z.origin else None
            node = z.get_node(wild) if wild is not None else None
            source = wild
        if node is None:
            if _exists(z, qname):  # an empty non-terminal: NODATA
                r.authority.append(soa_rr)
                return "nodata", None
            r.set_rcode(dns.rcode.NXDOMAIN)
            r.authority.append(soa_rr)
            return "nxdomain", None
        rds = node.get_rdataset(dns.rdataclass.IN, qtype)
        if rds is not None:
            r.answer.append(dns.rrset.from_rdata_list(qname, rds.ttl, list(rds)))
            if qtype == T.NS:
                r.additional.extend(_glue(z, rds))
            return "answer", source
        cname = node.get_rdataset(dns.rdataclass.IN, T.CNAME)
        if cname is not None:
            r.answer.append(dns.rrset.from_rdata_list(qname, cname.ttl, list(cname)))
            return "answer", source
        r.authority.append(soa_rr)
        return "nodata", source

    def _dnssec(self, r, z, qname, qtype, kind, detail):
        """Add what a DO query gets from a signed zone (after _fill)."""
        for section in (r.answer, r.authority):
            for rr in list(section):
                if rr.rdtype == T.RRSIG:
                    continue
                owner = detail if kind == "answer" and rr.name == qname else rr.name
                sig = _sig(z, owner, rr.rdtype, name=rr.name)
                if sig is not None:
                    section.insert(section.index(rr) + 1, sig)
        extra = []
        if kind == "referral":
            ds = _rrset(z, detail, T.DS)
            extra = [ds, _sig(z, detail, T.DS)] if ds is not None else _nsec_at(z, detail)
        elif kind == "nxdomain":
            extra = _covering_nsec(z, qname)
            wild = _wild(_closest_encloser(z, qname))
            extra += [rr for rr in _covering_nsec(z, wild) if rr not in extra]
        elif kind == "nodata":
            if detail != qname:  # wildcard NODATA: qname covered, the wildcard's NSEC
                extra = _covering_nsec(z, qname) + _nsec_at(z, detail)
            elif z.get_node(qname) is None:  # an empty non-terminal
                extra = _covering_nsec(z, qname)
            else:
                extra = _nsec_at(z, qname)
        elif kind == "answer" and detail != qname:  # wildcard expansion: qname does not exist
            extra = _covering_nsec(z, qname)
        r.authority.extend(rr for rr in extra if rr is not None)


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
