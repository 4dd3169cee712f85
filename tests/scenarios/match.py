"""MATCH semantics and ADJUST: comparing a message with an entry, and making a reply.

Owns: what each MATCH element means (README "What a scenario holds", as
Deckard's pydnstest/matchpart.py), and how a range/REPLY entry becomes the
upstream reply bytes (ADJUST copy_id / copy_query / raw_id / do_not_answer).
Must not: pick which entry answers (replay.py), parse files (rpl.py), or
touch the resolver.

Semantics:
- names compare case-insensitively, except `qcase` (labels byte for byte);
- sections compare as multisets of single records (owner, class, type,
  rdata), TTL ignored; the OPT record is not part of `additional`;
- `flags` compares the header flags QR AA TC RD RA AD CD (not DO, like
  Deckard); `rcode` includes the extended rcode; `edns` compares the EDNS
  version and buffer size; `nsid` the NSID option;
- `subdomain`: the received qname is at or below the entry's qname.
"""
from __future__ import annotations

import collections
import struct
from typing import Optional

import dns.edns
import dns.flags
import dns.message
import dns.name
import dns.opcode
import dns.rcode
import dns.rdatatype
import dns.rrset

from .rpl import Entry


class Mismatch(Exception):
    """One MATCH element differs: str() says which and how."""


def _question(msg: dns.message.Message):
    if len(msg.question) > 1:
        raise Mismatch(f"more than one question record: {len(msg.question)}")
    return msg.question[0] if msg.question else None


def _q_pair(exp, got, element: str):
    eq, gq = _question(exp), _question(got)
    if eq is None and gq is None:
        return None, None
    if eq is None or gq is None:
        raise Mismatch(f"{element}: expected {_q_text(eq)}, got {_q_text(gq)}")
    return eq, gq


def _q_text(rrset) -> str:
    if rrset is None:
        return "<empty question>"
    return f"{rrset.name} {dns.rdatatype.to_text(rrset.rdtype)}"


def match_opcode(exp, got):
    if exp.opcode() != got.opcode():
        raise Mismatch(f"opcode: expected {dns.opcode.to_text(exp.opcode())}, "
                       f"got {dns.opcode.to_text(got.opcode())}")


def match_qtype(exp, got):
    eq, gq = _q_pair(exp, got, "qtype")
    if eq is not None and eq.rdtype != gq.rdtype:
        raise Mismatch(f"qtype: expected {dns.rdatatype.to_text(eq.rdtype)}, "
                       f"got {dns.rdatatype.to_text(gq.rdtype)}")


def match_qname(exp, got):
    eq, gq = _q_pair(exp, got, "qname")
    if eq is not None and eq.name != gq.name:
        raise Mismatch(f"qname: expected {eq.name}, got {gq.name}")


def match_qcase(exp, got):
    eq, gq = _q_pair(exp, got, "qcase")
    if eq is not None and eq.name.labels != gq.name.labels:
        raise Mismatch(f"qcase: expected {eq.name}, got {gq.name} (case-sensitive)")


def match_subdomain(exp, got):
    eq = _question(exp)
    if eq is None:
        return
    gq = _question(got)
    qname = gq.name if gq is not None else dns.name.root
    if not qname.is_subdomain(eq.name):
        raise Mismatch(f"subdomain: {qname} is not at or below {eq.name}")


def header_flags_text(flags: int) -> str:
    return dns.flags.to_text(flags) or "<none>"


def match_flags(exp, got):
    if header_flags_text(exp.flags) != header_flags_text(got.flags):
        raise Mismatch(f"flags: expected {header_flags_text(exp.flags)}, "
                       f"got {header_flags_text(got.flags)}")


def match_rcode(exp, got):
    if exp.rcode() != got.rcode():
        raise Mismatch(f"rcode: expected {dns.rcode.to_text(exp.rcode())}, "
                       f"got {dns.rcode.to_text(got.rcode())}")


def records(section) -> collections.Counter:
    """Multiset of (owner, class, type, rdata): TTL ignored, owner case-insensitive."""
    out = collections.Counter()
    for rrset in section:
        for rdata in rrset:
            out[(rrset.name, rrset.rdclass, rrset.rdtype, rdata)] += 1
    return out


def _record_text(key) -> str:
    name, _rdclass, rdtype, rdata = key
    return f"{name} {dns.rdatatype.to_text(rdtype)} {rdata}"


def compare_section(name: str, exp_section, got_section) -> None:
    exp, got = records(exp_section), records(got_section)
    if exp == got:
        return
    missing = sorted(_record_text(k) for k in (exp - got))
    extra = sorted(_record_text(k) for k in (got - exp))
    parts = []
    if missing:
        parts.append("missing [" + "; ".join(missing) + "]")
    if extra:
        parts.append("unexpected [" + "; ".join(extra) + "]")
    raise Mismatch(f"{name}: " + ", ".join(parts))


def match_answer(exp, got):
    compare_section("answer", exp.answer, got.answer)


def match_authority(exp, got):
    compare_section("authority", exp.authority, got.authority)


def match_additional(exp, got):
    compare_section("additional", exp.additional, got.additional)


def _types(section, skip_rrsigs: bool) -> set:
    return {(r.covers, 1) if r.rdtype == dns.rdatatype.RRSIG else (r.rdtype, 0)
            for r in section if not (skip_rrsigs and r.rdtype == dns.rdatatype.RRSIG)}


def match_answertypes(exp, got, skip_rrsigs: bool = True):
    if _types(exp.answer, skip_rrsigs) != _types(got.answer, skip_rrsigs):
        raise Mismatch(f"answer types: expected {sorted(_types(exp.answer, skip_rrsigs))}, "
                       f"got {sorted(_types(got.answer, skip_rrsigs))}")


def match_answerrrsigs(exp, got):
    match_answertypes(exp, got, skip_rrsigs=False)


def match_edns(exp, got):
    if (exp.edns, exp.payload if exp.edns >= 0 else 0) != (got.edns, got.payload if got.edns >= 0 else 0):
        raise Mismatch(f"edns: expected version {exp.edns} payload {exp.payload}, "
                       f"got version {got.edns} payload {got.payload}")


def _nsid(msg) -> Optional[bytes]:
    for opt in msg.options:
        if opt.otype == dns.edns.NSID:
            return opt.to_wire()
    return None


def match_nsid(exp, got):
    if _nsid(exp) != _nsid(got):
        raise Mismatch(f"nsid: expected {_nsid(exp)!r}, got {_nsid(got)!r}")


def match_ignored(exp, got):
    """`TCP` and `ttl` are accepted by Deckard's grammar but not compared."""


MATCHERS = {
    "opcode": match_opcode, "qtype": match_qtype, "qname": match_qname,
    "qcase": match_qcase, "subdomain": match_subdomain, "flags": match_flags,
    "rcode": match_rcode, "answer": match_answer, "authority": match_authority,
    "additional": match_additional, "answertypes": match_answertypes,
    "answerrrsigs": match_answerrrsigs, "edns": match_edns, "nsid": match_nsid,
    "TCP": match_ignored, "ttl": match_ignored,
}
# stable order so the first reported difference is the most telling one
ORDER = ("opcode", "qtype", "qname", "qcase", "subdomain", "rcode", "flags",
         "answer", "authority", "additional", "answertypes", "answerrrsigs",
         "edns", "nsid", "TCP", "ttl")


def check(entry: Entry, got: dns.message.Message) -> None:
    """Raise Mismatch for the first MATCH element of `entry` that `got` fails."""
    for element in ORDER:
        if element in entry.match:
            MATCHERS[element](entry.message, got)


def matches(entry: Entry, got: dns.message.Message) -> bool:
    try:
        check(entry, got)
    except Mismatch:
        return False
    return True


# ---------------------------------------------------------------- replies

def make_reply(entry: Entry, query: dns.message.Message) -> Optional[bytes]:
    """The bytes a scripted server sends for `query`, or None (do_not_answer)."""
    if "do_not_answer" in entry.adjust:
        return None
    if entry.raw is not None:
        wire = bytearray(entry.raw)
        if "raw_id" in entry.adjust and len(wire) >= 2:
            struct.pack_into("!H", wire, 0, query.id)
        return bytes(wire)
    reply = copy_message(entry.message)
    if entry.adjust & {"copy_id", "copy_query"}:
        reply.use_edns(query.edns, query.ednsflags, entry.message.payload,
                       options=entry.message.options)
        reply.set_rcode(entry.message.rcode())  # use_edns resets the extended rcode
    if "copy_id" in entry.adjust:
        reply.id = query.id
        if reply.question and query.question:
            reply.question[0].name = query.question[0].name  # letter case too
    if "copy_query" in entry.adjust:
        reply.question = [dns.rrset.RRset(q.name, q.rdclass, q.rdtype) for q in query.question]
    return reply.to_wire(max_size=65535)


def copy_message(msg: dns.message.Message) -> dns.message.Message:
    """A fresh Message with the same content, records kept one per RRset."""
    out = dns.message.Message(id=msg.id)
    out.flags = msg.flags
    out.use_edns(msg.edns, msg.ednsflags, msg.payload, options=msg.options)
    out.set_rcode(msg.rcode())
    for name in ("question", "answer", "authority", "additional"):
        setattr(out, name, [_copy_rrset(r) for r in getattr(msg, name)])
    return out


def _copy_rrset(rrset):
    out = dns.rrset.RRset(rrset.name, rrset.rdclass, rrset.rdtype, rrset.covers)
    for rdata in rrset:
        out.add(rdata, rrset.ttl)
    return out


def servfail_reply(query: dns.message.Message) -> bytes:
    reply = dns.message.make_response(query)
    reply.set_rcode(dns.rcode.SERVFAIL)
    return reply.to_wire(max_size=65535)
