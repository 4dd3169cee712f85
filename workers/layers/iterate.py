"""Iterator layer: what a scrubbed upstream reply means for the query.

Owns: classifying a reply (referral, answer, CNAME/DNAME chain, NXDOMAIN,
NODATA, lame), building the next zone cut from a referral with the glue
policy of kresd's mode(), and choosing what to stash with which rank
(kresd lib/layer/iterate.c: process_authority, update_cut, process_answer).
Must not: send anything, choose servers, or read the cache.
"""
from __future__ import annotations

import enum
from dataclasses import dataclass, field

import dns.flags
import dns.message
import dns.name
import dns.rcode
import dns.rdatatype as T
import dns.rrset

from ..request import Outcome, Result
from ..selection.iterate import SelectionError
from ..settings import GlueMode, Settings
from ..zonecut import ZoneCut
from .cache import ANSWER_RANK, NONAUTH_RANK, Stash


_AA = int(dns.flags.AA)


class Kind(enum.Enum):
    REFERRAL = "referral"  # a new, deeper zone cut
    FINAL = "final"  # the answer to the asked name (positive or negative)
    RETRY_FULL = "retry-full"  # minimised query hit something else: ask the full name
    LAME = "lame"  # this server can not help; try another


@dataclass
class Consumed:
    kind: Kind
    why: str = ""
    cut: ZoneCut | None = None
    result: Result | None = None
    stash: Stash = field(default_factory=Stash)
    error: SelectionError = SelectionError.OK  # for LAME: what to count against the server
    last: object = None  # FINAL: the name where the chain ends (a negative answer is about it)
    no_cache: set = field(default_factory=set)  # ids of CNAMEs synthesised from a DNAME


_RCODE_ERRORS = {
    dns.rcode.REFUSED: SelectionError.REFUSED,
    dns.rcode.SERVFAIL: SelectionError.SERVFAIL,
    dns.rcode.FORMERR: SelectionError.FORMERR,
    dns.rcode.NOTIMP: SelectionError.NOTIMPL,
}


def _bad_rcode(rcode: int) -> Consumed:
    """A reply with an rcode that is no answer (kresd resolve_error())."""
    return Consumed(Kind.LAME, f"rcode {dns.rcode.to_text(rcode)}",
                    error=_RCODE_ERRORS.get(rcode, SelectionError.OTHER_RCODE))


def _cname_loop() -> Consumed:
    """kresd iterate.c "cname chain loop": the reply is KR_SELECTION_BAD_CNAME."""
    return Consumed(Kind.LAME, "CNAME chain loop", error=SelectionError.BAD_CNAME)


def _find(section, name, rtype):
    for rr in section:
        if rr.rdtype == rtype and rr.name == name:
            return rr
    return None


def _referral(reply, cut: ZoneCut, sname, settings: Settings, stash: Stash) -> ZoneCut | None:
    """A deeper cut from the NS records in authority (or None if none is acceptable)."""
    ns_rrs = [rr for rr in reply.authority if rr.rdtype == T.NS]
    if not ns_rrs:
        return None
    rr = ns_rrs[0]
    owner = rr.name
    # New authority must be below the current cut and at/above the name asked.
    if owner == cut.name or not owner.is_subdomain(cut.name) or not sname.is_subdomain(owner):
        return None
    new = ZoneCut(owner)
    stash.add(rr, NONAUTH_RANK)
    for rd in rr:
        ns = rd.target
        glue: list[str] = []
        for sec in (reply.answer, reply.additional):
            for grr in sec:
                if grr.name != ns or grr.rdtype not in (T.A, T.AAAA):
                    continue
                if settings.glue_mode == GlueMode.STRICT:
                    ok = ns.is_subdomain(owner)
                elif settings.glue_mode == GlueMode.NORMAL:
                    ok = ns.is_subdomain(cut.name)
                else:
                    ok = True
                if ok:
                    glue.extend(g.address for g in grr)
                    stash.add(grr, NONAUTH_RANK)
        if not glue and ns.is_subdomain(owner):
            continue  # NS below the cut without glue can never be reached
        new.ns[ns] = glue
    if not new.ns:
        return None
    return new


def _covering_dname(answer, name):
    for rr in answer:
        if rr.rdtype == T.DNAME and name.is_subdomain(rr.name) and name != rr.name and len(rr) == 1:
            return rr
    return None


@dataclass
class _Chain:
    rrsets: list  # the chain and the data found, in order
    last: dns.name.Name  # where the chain ends inside this reply
    has_data: bool  # data of the asked type at `last`
    no_cache: set  # ids of synthesised CNAMEs (not cached, as kresd)
    loop: bool = False  # the chain comes back to a name it passed
    overflow: bool = False  # a DNAME substitution longer than 255 octets (YXDOMAIN)


def _follow_chain(reply, sname, stype) -> _Chain:
    """Follow CNAME/DNAME from sname inside the answer section.

    A CNAME under a DNAME is synthesised (or occluded) and is not cached, as
    kresd. A chain that comes back to a name it passed is a loop (consume
    hands it to the resolver's chain check, consume_forward fails the reply,
    KR_SELECTION_BAD_CNAME); a DNAME whose substitution would be longer than
    255 octets ends the chain with `overflow` (YXDOMAIN).
    """
    chain: list[dns.rrset.RRset] = []
    no_cache: set[int] = set()
    name = sname
    seen = {sname}
    for _ in range(16):
        dname = _covering_dname(reply.answer, name)  # a DNAME occludes data below it
        data = _find(reply.answer, name, stype) if dname is None else None
        if data is not None:
            chain.append(data)
            return _Chain(chain, name, True, no_cache)
        if stype == T.CNAME and dname is None:
            break
        cname = _find(reply.answer, name, T.CNAME)
        target = None
        if dname is not None:
            try:
                target = name.relativize(dname.name).derelativize(dname[0].target)
            except dns.name.NameTooLong:
                chain.append(dname)
                return _Chain(chain, name, False, no_cache, overflow=True)
            chain.append(dname)
            cname = dns.rrset.from_text(name, dname.ttl, "IN", "CNAME", target.to_text())
            chain.append(cname)
            no_cache.add(id(cname))
            if stype == T.CNAME:  # the synthesised CNAME is the answer
                return _Chain(chain, name, True, no_cache)
        elif cname is not None and len(cname) == 1:
            chain.append(cname)
            target = cname[0].target
        if target is None:
            break
        if target in seen:
            return _Chain(chain, name, False, no_cache, loop=True)
        seen.add(target)
        name = target
    return _Chain(chain, name, False, no_cache)


def _is_authoritative(reply, cut: ZoneCut, settings: Settings) -> bool:
    """kresd is_authoritative(): AA, an SOA at/below the cut, or permissive mode."""
    if int(reply.flags) & _AA:
        return True
    if any(rr.rdtype == T.SOA and rr.name.is_subdomain(cut.name) for rr in reply.authority):
        return True
    return settings.glue_mode == GlueMode.PERMISSIVE


def _rename_cut(reply, cut: ZoneCut, aa: bool, has_ns_auth: bool) -> ZoneCut:
    """kresd: an SOA below the cut in authority, or (AA, no NS in authority) an NS
    below the cut in the answer, moves the cut name down; the servers stay."""
    name = cut.name
    for rr in reply.authority:
        if rr.rdtype == T.SOA and rr.name != cut.name and rr.name.is_subdomain(cut.name):
            name = rr.name
    if aa and not has_ns_auth:
        for rr in reply.answer:
            if rr.rdtype == T.NS and rr.name != cut.name and rr.name.is_subdomain(cut.name):
                name = rr.name
    if name == cut.name:
        return cut
    return ZoneCut(name, dict(cut.ns), from_hints=cut.from_hints)


def consume(reply: dns.message.Message, sname, stype, qname, qtype, cut: ZoneCut,
            settings: Settings) -> Consumed:
    """Interpret a scrubbed reply to (qname, qtype) asked while resolving (sname, stype).

    Mirrors kresd's resolve() -> process_authority() -> process_answer().
    """
    rcode = reply.rcode()
    aa = bool(int(reply.flags) & _AA)
    stash = Stash()
    if rcode == dns.rcode.YXDOMAIN and qname == sname and qtype == stype:
        ch = _follow_chain(reply, sname, stype)
        if ch.overflow:  # RFC 6672 2.2: the DNAME and YXDOMAIN are the answer (not cached)
            return Consumed(Kind.FINAL, "DNAME substitution overflows", stash=stash, last=ch.last,
                            result=Result(Outcome.YXDOMAIN, ch.rrsets), no_cache=ch.no_cache)
    if rcode not in (dns.rcode.NOERROR, dns.rcode.NXDOMAIN):
        return _bad_rcode(rcode)
    raw_count = getattr(reply, "kr_orig_answer_count", len(reply.answer))
    has_ns_auth = any(rr.rdtype == T.NS for rr in reply.authority) or getattr(reply, "kr_bad_ns", False)

    # process_authority: referral or not? Servers that send a CNAME, or AA data
    # for the name, together with NS records are not referring us anywhere.
    first = reply.answer[0] if reply.answer else None
    skip_ns = raw_count > 0 and has_ns_auth and first is not None and (
        first.rdtype == T.CNAME or aa and first.rdtype == stype and first.name == sname)
    if not skip_ns:
        if getattr(reply, "kr_bad_ns", False) and raw_count == 0:
            return Consumed(Kind.LAME, "authority: NS outside bailiwick", error=SelectionError.LAME)
        new = _referral(reply, cut, sname, settings, stash)
        if new is not None:
            return Consumed(Kind.REFERRAL, cut=new, stash=stash)
    cut = _rename_cut(reply, cut, aa, has_ns_auth)

    # process_answer
    if qname != sname or qtype != stype:
        if rcode == dns.rcode.NOERROR and raw_count > 0 and qname == cut.name:
            return Consumed(Kind.REFERRAL, "continuing with qname minimization", cut=cut, stash=stash)
        return Consumed(Kind.RETRY_FULL, "retrying with non-minimized name")

    negative = rcode == dns.rcode.NXDOMAIN or raw_count == 0
    authoritative = _is_authoritative(reply, cut, settings)
    if negative and not authoritative:
        return Consumed(Kind.LAME, "lame response: non-auth sent negative response",
                        error=SelectionError.LAME)

    ch = _follow_chain(reply, sname, stype)
    if ch.loop or ch.overflow:
        # kresd 5.6 fails the request on a loop, with the chain so far in the answer
        # section: the resolver's chain check (resolve.py _chain) sees the CNAME come
        # back and does that. A DNAME overflowing without YXDOMAIN is answered as if
        # the server had said it. Neither is cached.
        outcome = Outcome.CNAME if ch.loop else Outcome.YXDOMAIN
        return Consumed(Kind.FINAL, "CNAME chain loop" if ch.loop else "DNAME substitution overflows",
                        result=Result(outcome, ch.rrsets, target=ch.rrsets[-1][0].target if ch.loop else None),
                        last=ch.last, no_cache=ch.no_cache)
    chain, last, has_data, no_cache = ch.rrsets, ch.last, ch.has_data, ch.no_cache
    for rr in chain:
        if id(rr) not in no_cache:
            stash.add(rr, ANSWER_RANK)  # kresd ranks answer records INITIAL|AUTH, AA or not
    soa = next((rr for rr in reply.authority if rr.rdtype == T.SOA), None)
    # Negative answers carry the whole (scrubbed) authority section, as kresd's
    # pick_authority() puts it on the wire: SOA, NS, NSEC*, RRSIG.
    authority = list(reply.authority)
    others = [rr for rr in authority if rr is not soa]
    def final(result):
        return Consumed(Kind.FINAL, result=result, stash=stash, last=last, no_cache=no_cache)
    if has_data:
        return final(Result(Outcome.ANSWER, chain))
    if rcode == dns.rcode.NXDOMAIN:
        if soa is not None:
            stash.add_negative(last, stype, "NXDOMAIN", soa, others, ANSWER_RANK)
        return final(Result(Outcome.NXDOMAIN, chain, authority))
    if chain and last != sname:
        # The chain leaves what this server answered: go on from the target.
        return final(Result(Outcome.CNAME, chain, target=last))
    if soa is not None:
        stash.add_negative(last, stype, "NODATA", soa, others, ANSWER_RANK)
    elif not authority:  # no SOA at all: remembered for min_ttl (as newer kresd)
        stash.add_negative(last, stype, "NODATA", None, [], ANSWER_RANK)
    return final(Result(Outcome.NODATA, chain, authority))


def consume_forward(reply: dns.message.Message, sname, stype) -> Consumed:
    """A reply from a forwarder (policy.FORWARD/STUB): no referrals, AA not needed.

    As kresd in FORWARD mode, a CNAME is not followed inside the packet: its
    target is asked from the forwarder again.
    """
    rcode = reply.rcode()
    if rcode not in (dns.rcode.NOERROR, dns.rcode.NXDOMAIN):
        return _bad_rcode(rcode)
    stash = Stash()
    data = _find(reply.answer, sname, stype)
    if data is not None:
        stash.add(data, ANSWER_RANK)
        return Consumed(Kind.FINAL, result=Result(Outcome.ANSWER, [data]), stash=stash, last=sname)
    if stype != T.CNAME:
        ch = _follow_chain(reply, sname, stype)
        if ch.loop:
            return _cname_loop()
        chain, last, no_cache = ch.rrsets, ch.last, ch.no_cache
        if chain and last != sname:
            head = chain[:2] if chain[0].rdtype == T.DNAME else chain[:1]
            for rr in head:
                if id(rr) not in no_cache:
                    stash.add(rr, ANSWER_RANK)
            target = head[-1][0].target
            return Consumed(Kind.FINAL, result=Result(Outcome.CNAME, head, target=target), stash=stash,
                            last=target, no_cache=no_cache)
    soa = next((rr for rr in reply.authority if rr.rdtype == T.SOA), None)
    authority = list(reply.authority)
    others = [rr for rr in authority if rr is not soa]
    kind = "NXDOMAIN" if rcode == dns.rcode.NXDOMAIN else "NODATA"
    if soa is not None:
        stash.add_negative(sname, stype, kind, soa, others, ANSWER_RANK)
    outcome = Outcome.NXDOMAIN if kind == "NXDOMAIN" else Outcome.NODATA
    return Consumed(Kind.FINAL, result=Result(outcome, [], authority), stash=stash, last=sname)


def consume_stub(reply: dns.message.Message) -> Consumed:
    """A reply from a policy.STUB target (kresd process_stub): the answer is
    taken as it comes, the whole (scrubbed) answer section, CNAME chains
    included and not followed; no referral, no iteration from it. Nothing is
    stashed: the data did not come from an authority we iterated to (and,
    once DNSSEC exists, it is not validated either).
    """
    rcode = reply.rcode()
    if rcode not in (dns.rcode.NOERROR, dns.rcode.NXDOMAIN):
        return _bad_rcode(rcode)
    answer = list(reply.answer)
    authority = list(reply.authority)
    if rcode == dns.rcode.NXDOMAIN:
        return Consumed(Kind.FINAL, result=Result(Outcome.NXDOMAIN, answer, authority))
    if not answer:
        return Consumed(Kind.FINAL, result=Result(Outcome.NODATA, [], authority))
    return Consumed(Kind.FINAL, result=Result(Outcome.ANSWER, answer))
