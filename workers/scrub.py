"""Sanitise an upstream reply before any resolver logic reads it.

Owns: dropping everything a server had no business telling us (Unbound
iterator/iter_scrub.c): records out of the zone cut's bailiwick, answer records
unrelated to the query's CNAME/DNAME chain, authority records other than
NS/SOA/DS/NSEC/NSEC3/RRSIG at relevant owners, additional records other than
addresses of listed nameservers, and records of other classes.
Must not: decide what the reply means (workers/layers/iterate.py does) or
apply the glue mode (it depends on the delegation; iterate does it).
"""
from __future__ import annotations

import dns.message
import dns.name
import dns.rdataclass
import dns.rdatatype as T
import dns.rrset

_AUTH_TYPES = {T.NS, T.SOA, T.DS, T.NSEC, T.NSEC3, T.RRSIG}
_ADDR_TYPES = {T.A, T.AAAA}
MAX_CHAIN = 16


def _covered(rrset: dns.rrset.RRset) -> int:
    return rrset.covers if rrset.rdtype == T.RRSIG else rrset.rdtype


def _chain_names(answer: list[dns.rrset.RRset], qname: dns.name.Name, cut: dns.name.Name):
    """Names of the in-bailiwick CNAME/DNAME chain starting at qname."""
    names = [qname]
    name = qname
    for _ in range(MAX_CHAIN):
        nxt = None
        for rr in answer:
            if rr.rdtype == T.CNAME and rr.name == name and len(rr) == 1:
                nxt = rr[0].target
                break
            if rr.rdtype == T.DNAME and name.is_subdomain(rr.name) and name != rr.name and len(rr) == 1:
                try:
                    nxt = name.relativize(rr.name).derelativize(rr[0].target)
                except dns.name.NameTooLong:
                    nxt = None
                break
        if nxt is None or nxt in names or not nxt.is_subdomain(cut):
            break
        names.append(nxt)
        name = nxt
    return names


def scrub(reply: dns.message.Message, qname: dns.name.Name, cut: dns.name.Name,
          keep_all_glue: bool = False) -> dns.message.Message:
    """Return `reply` with its sections cleaned in place (also returned)."""
    def in_zone(rr):
        return rr.rdclass == dns.rdataclass.IN and rr.name.is_subdomain(cut)

    reply.kr_orig_answer_count = len(reply.answer)  # kresd classifies on the raw count
    answer = [rr for rr in reply.answer if in_zone(rr)]
    chain = _chain_names(answer, qname, cut)
    chain_set = set(chain)
    kept = []
    for rr in answer:
        typ = _covered(rr)
        if rr.name in chain_set:
            kept.append(rr)
        elif typ == T.DNAME and any(n.is_subdomain(rr.name) and n != rr.name for n in chain):
            kept.append(rr)
    reply.answer = kept

    auth = []
    reply.kr_bad_ns = False  # NS outside the server's authority: kresd calls it lame
    for rr in reply.authority:
        typ = _covered(rr)
        if typ not in _AUTH_TYPES:
            continue
        above = any(n.is_subdomain(rr.name) for n in chain)
        if not in_zone(rr) or typ in (T.NS, T.SOA) and not above:
            # a delegation or SOA must be at/above the queried name, in bailiwick
            reply.kr_bad_ns |= rr.rdtype == T.NS
            continue
        auth.append(rr)
    reply.authority = auth

    ns_names = set()
    for rr in reply.authority + reply.answer:
        if rr.rdtype == T.NS:
            ns_names.update(rd.target for rd in rr)
    add = []
    for rr in reply.additional:
        if rr.rdclass != dns.rdataclass.IN or _covered(rr) not in _ADDR_TYPES:
            continue
        if rr.name not in ns_names:
            continue
        if not keep_all_glue and not rr.name.is_subdomain(cut):
            continue
        add.append(rr)
    reply.additional = add
    return reply
