"""Pure-Python twins of the C functions in native/, built on dnspython.

Owns: parse_query() and cache_key() with exactly the results and error codes
of the C versions (kn_parse_query, kn_cache_key). They are the reference the
property tests compare the C code against, and the fallback when the
extension is not built (native.BACKEND == "pure").
Must not: import native._native, or differ from the C code in any result:
a change here is a change of the C contract (kresd_native.h) and vice versa.

Names are read with dnspython's own wire parser (dns.wire.Parser.get_name,
decompress=True), so the C name rules (pointer rule, hop limit, 255 bytes,
label types) are checked against dnspython's, not against a copy of them.
Record walking (owner, fixed part, RDLENGTH-bounded RDATA, OPT option TLV
framing) mirrors pkt.c; RDATA content is not parsed, as in C.
The answer twin re-parses the query with parse_query (as the C wrapper does
with kn_parse_query), walks the value like answer.c and renders the message
with dns.renderer.Renderer; every record is a GenericRdata of the stored
bytes (one single-record RRset each, so duplicates are kept and nothing is
compressed inside RDATA, exactly like the C copy).
The cache_key twin builds the key bytes with key_from_wire below (the
lookup format of CACHE_KEY_DEF, specified in cache/keys.py, which uses these
functions) after the same strict name checks as key.c. rank_is_answer is the
twin of kn_rank_is_answer, the one rule of which ranks may be answered.
This module sees only bytes and ints: it imports nothing of cache/ (the
arrow points down: cache/ uses native/).
"""
from __future__ import annotations

import struct

import dns.exception
import dns.flags
import dns.name
import dns.rdata
import dns.renderer
import dns.rrset
import dns.wire

from native import ANSWER_BUFSIZE, MAX_KEY_LEN, Code, Header, OptFlag, ParsedQuery, ParseError

_HEADER = struct.Struct("!6H")
_RR = struct.Struct("!HHIH")
_OPT_HDR = struct.Struct("!HH")
_LOWER = bytes.maketrans(b"ABCDEFGHIJKLMNOPQRSTUVWXYZ", b"abcdefghijklmnopqrstuvwxyz")
_U16_BE = struct.Struct("!H")


# -- CACHE_KEY_DEF lookup format (spec: cache/keys.py) ------------------------

def _escape_label(label: bytes) -> bytes:
    label = label.translate(_LOWER)
    if b"\x00" in label or b"\x01" in label:
        label = label.replace(b"\x01", b"\x01\x02").replace(b"\x00", b"\x01\x01")
    return label


def lf_labels(labels: tuple[bytes, ...] | list[bytes]) -> bytes:
    """Lookup format from wire labels (root label b'' included or not)."""
    return b"\x00".join(_escape_label(lab) for lab in reversed(labels) if lab)


def lf_from_wire(wire: bytes) -> bytes:
    """Lookup format from an uncompressed wire-format name (not validated)."""
    labels = []
    pos = 0
    while True:
        n = wire[pos]
        if n == 0:
            break
        labels.append(wire[pos + 1 : pos + 1 + n])
        pos += 1 + n
    return lf_labels(labels)


def key_from_wire(wire: bytes, tag: bytes, rtype: int) -> bytes:
    """Exact key from a wire name, lenient: ValueError only if longer than MAX_KEY_LEN."""
    k = lf_from_wire(wire) + b"\x00" + tag + _U16_BE.pack(rtype)
    if len(k) > MAX_KEY_LEN:
        raise ValueError("cache key too long")
    return k


# -- ranks ---------------------------------------------------------------------

_RANK_AUTH, _RANK_SECURE, _RANK_BOGUS = 16, 32, 5


def rank_is_answer(rank: int) -> bool:
    """Twin of kn_rank_is_answer: no bits beyond 0x3F, AUTH, state not BOGUS."""
    if not 0 <= rank <= 0x3F or not rank & _RANK_AUTH:
        return False
    return (rank & ~(_RANK_AUTH | _RANK_SECURE)) != _RANK_BOGUS
_TYPE_OPT = 41
_EDNS_COOKIE = 10
_MAX_MSG_LEN = 65535


def _scan_options(wire: bytes, off: int, rdlen: int) -> tuple[bool, int, int]:
    """(well_formed, cookie_off, cookie_len) of OPT RDATA wire[off:off+rdlen]."""
    p, stop = off, off + rdlen
    cookie_off = cookie_len = 0
    while p < stop:
        if stop - p < 4:
            return False, cookie_off, cookie_len
        code, olen = _OPT_HDR.unpack_from(wire, p)
        p += 4
        if olen > stop - p:
            return False, cookie_off, cookie_len
        if code == _EDNS_COOKIE and cookie_off == 0:
            cookie_off, cookie_len = p, olen
        p += olen
    return True, cookie_off, cookie_len


def _walk(parser: dns.wire.Parser, counts: tuple[int, int, int]) -> dict[str, int]:
    """Walk the three record sections; returns the OPT fields (pkt.c take_opt)."""
    wire = parser.wire
    opt: dict[str, int] = {"has_opt": 0, "opt_flags": 0}
    for section, count in ((1, counts[0]), (2, counts[1]), (3, counts[2])):
        for _ in range(count):
            owner = parser.get_name(None, True)
            rtype, rclass, ttl, rdlen = parser.get_struct("!HHIH")
            rdoff = parser.current
            parser.get_bytes(rdlen)  # FormError if it runs past the end
            if rtype != _TYPE_OPT:
                continue
            if section != 3:
                opt["opt_flags"] |= OptFlag.WRONG_SECTION
            elif opt["has_opt"]:
                opt["opt_flags"] |= OptFlag.DUPLICATE
            else:
                good, cookie_off, cookie_len = _scan_options(wire, rdoff, rdlen)
                flags = opt["opt_flags"]
                if owner != dns.name.root:
                    flags |= OptFlag.BAD_OWNER
                if not good:
                    flags |= OptFlag.MALFORMED
                opt = {
                    "has_opt": 1,
                    "opt_flags": flags,
                    "udp_size": rclass,
                    "ext_rcode": ttl >> 24,
                    "edns_version": (ttl >> 16) & 0xFF,
                    "edns_flags": ttl & 0xFFFF,
                    "do_bit": 1 if ttl & 0x8000 else 0,
                    "opt_rdata_off": rdoff,
                    "opt_rdata_len": rdlen,
                    "cookie_off": cookie_off,
                    "cookie_len": cookie_len,
                }
    return opt


def parse_query(wire: bytes) -> ParsedQuery:
    """Twin of native.parse_query (kn_parse_query): same result, same codes."""
    wire = bytes(wire)
    if len(wire) < 12:
        raise ParseError(Code.ESHORT)
    qid, flags, qd, an, ns, ar = _HEADER.unpack_from(wire)
    header = Header(qid, flags, qd, an, ns, ar, (flags >> 11) & 0xF, flags & 0xF)
    if qd == 0:
        raise ParseError(Code.ENOQ, header)
    if qd > 1:
        raise ParseError(Code.EQDCOUNT, header)
    if len(wire) > _MAX_MSG_LEN:
        raise ParseError(Code.EMALF, header)
    parser = dns.wire.Parser(wire, 12)
    try:
        qname = parser.get_name(None, True).to_wire()
        qtype, qclass = parser.get_struct("!HH")
        question_end = parser.current
        opt = _walk(parser, (an, ns, ar))
    except dns.exception.FormError:
        raise ParseError(Code.EMALF, header) from None
    assert qname is not None
    query = ParsedQuery(
        *header,
        qtype=qtype,
        qclass=qclass,
        qname_len=len(qname),
        question_end=question_end,
        udp_size=opt.get("udp_size", 0),
        ext_rcode=opt.get("ext_rcode", 0),
        edns_version=opt.get("edns_version", 0),
        edns_flags=opt.get("edns_flags", 0),
        has_opt=opt["has_opt"],
        do_bit=opt.get("do_bit", 0),
        opt_flags=int(opt["opt_flags"]),
        opt_rdata_off=opt.get("opt_rdata_off", 0),
        opt_rdata_len=opt.get("opt_rdata_len", 0),
        cookie_off=opt.get("cookie_off", 0),
        cookie_len=opt.get("cookie_len", 0),
        qname=qname,
        qname_lower=qname.translate(_LOWER),
    )
    if parser.remaining() != 0:
        raise ParseError(Code.ETRAIL, header, query)
    if query.opt_flags:
        raise ParseError(Code.EBADOPT, header, query)
    return query


def check_name(qname_wire: bytes) -> None:
    """Raise ParseError(EMALF) unless qname_wire is exactly one uncompressed name."""
    try:
        parser = dns.wire.Parser(bytes(qname_wire))
        parser.get_name(None, False)
    except dns.exception.FormError:
        raise ParseError(Code.EMALF) from None
    if parser.remaining() != 0:
        raise ParseError(Code.EMALF)


def cache_key(qname_wire: bytes, tag: bytes, rtype: int) -> bytes:
    """Twin of native.cache_key (kn_cache_key): key_from_wire + strict name checks."""
    if len(tag) != 1:
        raise ValueError("cache key tag must be one byte")
    if not 0 <= rtype <= 0xFFFF:
        raise OverflowError("rtype out of range")
    check_name(qname_wire)
    try:
        return key_from_wire(bytes(qname_wire), tag, rtype)
    except ValueError:
        raise ParseError(Code.EKEYLEN) from None


assert MAX_KEY_LEN == 511  # CACHE_KEY_DEF: kresd_native.h KN_MAX_KEY_LEN


_VAL_HDR = struct.Struct("!IIBBH")
_U16 = struct.Struct("!H")
_FLAG_RRSIGS = 0x01
_IN = 1


def _eligible(wire: bytes, pq: ParsedQuery) -> bool:
    """answer.c query_ok, for a query parse_query accepted."""
    if pq.flags & 0x8000 or not pq.flags & 0x0100 or pq.opcode != 0:
        return False
    if pq.flags & 0x0030:  # AD or CD: DNSSEC semantics are the full path's
        return False
    if pq.qdcount != 1 or pq.ancount or pq.nscount or pq.arcount > pq.has_opt:
        return False
    if pq.has_opt and (pq.edns_version != 0 or pq.opt_flags or pq.edns_flags & 0x8000):
        return False
    if pq.qclass != _IN or pq.qtype in (0, _TYPE_OPT) or 128 <= pq.qtype <= 255:
        return False
    # uncompressed question (copied verbatim; records point at offset 12)
    return pq.question_end == 12 + pq.qname_len + 4 and wire[12 : 12 + pq.qname_len] == pq.qname


def _value_rdatas(value: bytes, qtype: int, now: int) -> tuple[int, list[bytes]] | None:
    """(remaining TTL, raw rdatas) of a usable positive value, else None."""
    if len(value) < _VAL_HDR.size + 2:
        return None
    inception, ttl, rank, flags, vtype = _VAL_HDR.unpack_from(value)
    if flags & ~_FLAG_RRSIGS or vtype != qtype:
        return None
    if not rank_is_answer(rank):
        return None
    remaining = ttl - (now - inception) if now > inception else ttl
    if remaining <= 0:
        return None
    pos = _VAL_HDR.size
    rdatas: list[bytes] = []
    sets = 2 if flags & _FLAG_RRSIGS else 1
    for i in range(sets):
        if len(value) - pos < 2:
            return None
        (count,) = _U16.unpack_from(value, pos)
        pos += 2
        if i == 0 and count == 0:
            return None
        for _ in range(count):
            if len(value) - pos < 2:
                return None
            (rdlen,) = _U16.unpack_from(value, pos)
            pos += 2
            if rdlen > len(value) - pos:
                return None
            if i == 0:
                rdatas.append(value[pos : pos + rdlen])
            pos += rdlen
    if pos != len(value):
        return None
    return remaining, rdatas


def answer(
    query_wire: bytes, parsed: ParsedQuery, value: bytes, now: int, bufsize: int, maxlen: int
) -> bytes | None:
    """Twin of native.answer (kn_answer): same bytes, same None cases."""
    if not 0 <= bufsize <= 0xFFFF:
        raise OverflowError("bufsize out of range")
    wire = bytes(query_wire)
    value = bytes(value)
    try:
        pq = parse_query(wire)
    except ParseError:
        return None
    if not _eligible(wire, pq):
        return None
    got = _value_rdatas(value, pq.qtype, min(max(int(now), 0), 0xFFFFFFFF))
    if got is None:
        return None
    remaining, raws = got
    limit = min(max(maxlen, 0), ANSWER_BUFSIZE)
    flags = dns.flags.QR | dns.flags.RA | (pq.flags & (dns.flags.RD | dns.flags.CD))
    r = dns.renderer.Renderer(pq.id, flags, ANSWER_BUFSIZE)
    qname = dns.name.from_wire(wire, 12)[0]
    try:
        r.add_question(qname, pq.qtype, _IN)
        for raw in raws:
            rrset = dns.rrset.RRset(qname, _IN, pq.qtype)
            rrset.add(dns.rdata.GenericRdata(_IN, pq.qtype, raw), remaining)
            r.add_rrset(dns.renderer.ANSWER, rrset)
        if pq.has_opt:
            r.add_edns(0, pq.edns_flags & dns.flags.DO, bufsize)
    except dns.exception.TooBig:
        return None
    r.write_header()
    out = r.get_wire()
    return out if len(out) <= limit else None
