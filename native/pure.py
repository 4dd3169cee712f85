"""Pure-Python twins of the C functions in native/, built on dnspython.

Owns: parse_query() and cache_key() with exactly the results and error codes
of the C versions (kn_parse_query, kn_cache_key), and the twins of answer,
PacketCache, UdpBatch and RateLimit (ratelimit.c). They are the reference the
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
import time

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


# -- the packet cache (twin of fastpath.c) ------------------------------------

_F_QR, _F_OPCODE, _F_AA, _F_TC, _F_RD, _F_Z, _F_AD, _F_CD, _F_RCODE = (
    0x8000, 0x7800, 0x0400, 0x0200, 0x0100, 0x0040, 0x0020, 0x0010, 0x000F)
# -- the plain positive upstream reply (workers/fastmiss.py) --------------------------

#: the record types reply_rrset takes, with their fixed rdata length
REPLY_RRSET_TYPES = {1: 4, 28: 16}  # A, AAAA
REPLY_MAX = 64  # answer records taken (KN_REPLY_MAX)


def reply_rrset(raw: bytes, qid: int, qname: bytes, qtype: int, min_ttl: int, max_ttl: int,
                sigs: bool = False) -> tuple[int, tuple[bytes, ...], tuple] | None:
    """Twin of native.reply_rrset (kn_reply_rrset, reply.c).

    (TTL, rdata wires, RRSIGs) when `raw` is the plainest upstream answer
    to (qname, qtype IN) with ID qid: QR, opcode QUERY, not TC, RCODE NOERROR
    (also in the OPT), one question that is exactly `qname` (uncompressed,
    the case as compared by the caller) and qtype/IN, an answer section of
    1..REPLY_MAX records: 1+ distinct records of qtype/IN (a REPLY_RRSET_TYPES type, rdata of its
    fixed length) owned by the question name (a pointer to offset 12 or the
    name itself, any case) and, with `sigs`, distinct RRSIG/IN records of
    that owner covering qtype whose signer name is not compressed (RRSIGs
    are (TTL, rdata wire) in reply order; without `sigs` an RRSIG is
    refused), no authority section, an additional section of at most one
    OPT (root owner), nothing after it. The TTL is the smallest of the
    qtype records' (a TTL >= 2^31 counts as 0, RFC 2181 8) and must lie in
    [min_ttl, max_ttl]. Anything else is None: the full path
    (workers/wire.py parse_reply) decides about it."""
    rdlen_want = REPLY_RRSET_TYPES.get(qtype)
    n = len(raw)
    if rdlen_want is None or n < 12 or not qname:
        return None
    rid, flags, qd, an, ns, ar = _HEADER.unpack_from(raw)
    # QR set; opcode 0, TC 0, RCODE 0 (AA, RD, RA, AD, CD, Z may be anything)
    if rid != qid or flags & 0xFA0F != 0x8000 or qd != 1 or not an or an > REPLY_MAX or ns or ar > 1:
        return None
    qend = 12 + len(qname)
    if n < qend + 4 or raw[12:qend] != qname or raw[qend:qend + 4] != _U16_BE.pack(qtype) + b"\x00\x01":
        return None
    pos = qend + 4
    lname = qname.lower()
    ttl = None
    rdatas: list[bytes] = []
    rrsigs: list[tuple[int, bytes]] = []
    for _ in range(an):
        if pos + 2 <= n and raw[pos] == 0xC0 and raw[pos + 1] == 12:
            pos += 2
        elif raw[pos:pos + len(qname)].lower() == lname:
            pos += len(qname)
        else:
            return None
        if pos + 10 > n:
            return None
        rtype, rclass, rttl, rdlen = _RR.unpack_from(raw, pos)
        pos += 10
        if rclass != 1 or pos + rdlen > n:
            return None
        if rttl >> 31:
            rttl = 0  # RFC 2181 8 (as the full path's parser reads it)
        rd = raw[pos:pos + rdlen]
        pos += rdlen
        if rtype == qtype and rdlen == rdlen_want:
            if rd in rdatas:
                return None  # (dnspython merges duplicates: the full path decides)
            rdatas.append(rd)
            ttl = rttl if ttl is None or rttl < ttl else ttl
        elif rtype == _TYPE_RRSIG and sigs and rdlen > 19 and rd[:2] == _U16_BE.pack(qtype) \
                and _plain_name_end(rd, 18) < rdlen and all(rd != x for _, x in rrsigs):
            rrsigs.append((rttl, rd))
        else:
            return None
    if ar:
        if pos + 11 > n or raw[pos] != 0:
            return None
        rtype, _payload, rttl, rdlen = _RR.unpack_from(raw, pos + 1)
        pos += 11 + rdlen
        if rtype != _TYPE_OPT or rttl >> 24 or pos > n:
            return None  # (extended RCODE bits: not NOERROR)
    if pos != n or ttl is None or not min_ttl <= ttl <= max_ttl:
        return None
    return ttl, tuple(rdatas), tuple(rrsigs)


_TYPE_RRSIG = 46


def _plain_name_end(b: bytes, pos: int) -> int:
    """The end of the uncompressed name at b[pos:], or len(b) + 1 when there is none."""
    n = len(b)
    start = pos
    while pos < n:
        c = b[pos]
        if c == 0:
            return pos + 1
        if c & 0xC0 or pos + 1 + c > n or pos - start + c + 2 > 255:
            return n + 1
        pos += 1 + c
    return n + 1


_ENTRY_HDR = 20
_MIN_UDP = 512
_U32 = struct.Struct("!I")


def _pc_key_of(wire: bytes, pq: ParsedQuery | None) -> bytes | None:
    """fastpath.c key_of: the key of an eligible parsed query, else None."""
    if pq is None:
        return None
    if pq.flags & (_F_QR | _F_OPCODE | _F_AA | _F_TC | _F_Z | _F_RCODE):
        return None
    if not pq.flags & _F_RD or pq.qdcount != 1 or pq.ancount or pq.nscount or pq.arcount != pq.has_opt:
        return None
    if pq.has_opt and (pq.edns_version or pq.ext_rcode or pq.opt_flags or pq.opt_rdata_len):
        return None
    if pq.qclass != _IN or pq.qtype in (0, _TYPE_OPT) or 128 <= pq.qtype <= 255:
        return None
    n = pq.qname_len
    if not 1 <= n <= 255 or pq.question_end != 12 + n + 4 or pq.question_end > len(wire):
        return None
    bits = 1 | (2 if pq.flags & _F_CD else 0) | (4 if pq.flags & _F_AD else 0)
    bits |= (8 if pq.has_opt else 0) | (16 if pq.do_bit else 0)
    return pq.qname_lower + _U16_BE.pack(pq.qtype) + bytes([bits])


def _parse_ok(wire: bytes) -> ParsedQuery | None:
    try:
        return parse_query(wire)
    except ParseError:
        return None


def _skip_name(a: bytes, pos: int) -> int:
    """fastpath.c skip_name: the offset after a (possibly compressed) name, -1 if broken."""
    total = 0
    while True:
        if pos >= len(a):
            return -1
        b = a[pos]
        if b == 0:
            return pos + 1
        if b & 0xC0 == 0xC0:
            return pos + 2 if len(a) - pos >= 2 else -1
        if b & 0xC0:
            return -1
        total += b + 1
        if total > 255:
            return -1
        pos += b + 1


def _walk_answer(a: bytes, qend: int, has_opt: int):
    """fastpath.c walk_answer: (ttl offsets, smallest TTL, OPT offset) or None."""
    counts = _HEADER.unpack_from(a)[3:6]
    pos, offs, min_ttl, opt_off = qend, [], 0xFFFFFFFF, 0
    for sec, count in enumerate(counts):
        for _ in range(count):
            if opt_off:
                return None
            start = pos
            pos = _skip_name(a, pos)
            if pos < 0 or len(a) - pos < 10:
                return None
            rtype, _rclass, ttl, rdlen = _RR.unpack_from(a, pos)
            ttl_at = pos + 4
            pos += 10
            if rdlen > len(a) - pos:
                return None
            pos += rdlen
            if rtype == _TYPE_OPT:
                if sec != 2 or not has_opt or a[start] != 0 or rdlen or ttl >> 24:
                    return None
                opt_off = start
                continue
            if len(offs) >= 255:
                return None
            offs.append(ttl_at)
            min_ttl = min(min_ttl, ttl)
    if pos != len(a) or (has_opt and not opt_off) or not offs or min_ttl == 0:
        return None
    return offs, min_ttl, opt_off


def _kind_of(a: bytes, opt_off: int) -> int:
    fl = _U16_BE.unpack_from(a, 2)[0]
    k = fl & _F_RCODE
    if fl & _F_RCODE == 0 and _U16_BE.unpack_from(a, 6)[0] == 0:
        k |= 0x10
    k |= (0x20 if fl & _F_AD else 0) | (0x40 if fl & _F_AA else 0)
    k |= (0x400 if fl & _F_CD else 0) | (0x800 if fl & _F_RD else 0)
    if opt_off:
        k |= 0x100
        if _U16_BE.unpack_from(a, opt_off + 7)[0] & 0x8000:
            k |= 0x200
    return k


def _reply_ok(q: bytes, pq: ParsedQuery, a: bytes) -> bool:
    """fastpath.c check_reply."""
    qend = pq.question_end
    if len(a) < qend or _U16_BE.unpack_from(a, 0)[0] != pq.id or _U16_BE.unpack_from(a, 4)[0] != 1:
        return False
    fl = _U16_BE.unpack_from(a, 2)[0]
    if not fl & _F_QR or fl & (_F_OPCODE | _F_TC) or fl & _F_RCODE not in (0, 3):
        return False
    if fl & (_F_RD | _F_CD) != pq.flags & (_F_RD | _F_CD):
        return False
    return a[12:qend].translate(_LOWER) == q[12:qend].translate(_LOWER)


class PacketCache:
    """Twin of native.PacketCache (fastpath.c kn_pc_*): the same codes, bytes,
    hits, misses and flushes; a dict instead of the hash index, with the
    arena's byte accounting and the index's half-full rule reproduced."""

    def __init__(self, nslots: int = 1 << 16, arena_size: int = 8 << 20, gen: int = 0):
        if nslots < 4 or nslots & (nslots - 1) or arena_size % 8 or not 0 < arena_size <= 1 << 30:
            raise ValueError("nslots: a power of two >= 4; arena_size: a multiple of 8, <= 1 GiB")
        self.nslots, self.arena_size = nslots, arena_size
        self._entries: dict[bytes, tuple] = {}
        self.used = 0
        self.gen = gen
        self.flushes = 0

    @property
    def count(self) -> int:
        return len(self._entries)

    def flush(self, gen: int | None = None) -> None:
        self._entries.clear()
        self.used = 0
        self.gen = self.gen if gen is None else gen
        self.flushes += 1

    def key(self, query: bytes) -> bytes | None:
        query = bytes(query)
        return _pc_key_of(query, _parse_ok(query))

    def insert(self, query: bytes, answer: bytes, now: int) -> int:
        q, a = bytes(query), bytes(answer)
        pq = _parse_ok(q)
        key = _pc_key_of(q, pq)
        if key is None:
            return Code.ENOTELIG
        if len(a) > 4096:
            return Code.ENOSPC
        if not _reply_ok(q, pq, a):
            return Code.EVALUE
        walked = _walk_answer(a, pq.question_end, pq.has_opt)
        if walked is None:
            return Code.EVALUE
        offs, min_ttl, opt_off = walked
        size = (_ENTRY_HDR + 2 * len(offs) + len(key) + len(a) + 7) & ~7
        if size > self.arena_size:
            return Code.ENOSPC
        now = min(max(int(now), 0), 0xFFFFFFFF)
        old = key in self._entries
        if self.arena_size - self.used < size or (not old and len(self._entries) + 1 > self.nslots // 2):
            self.flush()
        expire = min(now + min_ttl, 0xFFFFFFFF)
        self._entries[key] = (expire, now, a, pq.question_end, opt_off, offs, _kind_of(a, opt_off))
        self.used += size
        return 0

    def answer(self, query: bytes, now: int, bufsize: int) -> tuple[bytes, int] | None:
        q = bytes(query)
        pq = _parse_ok(q)
        key = _pc_key_of(q, pq)
        if key is None or not self._entries:
            return None
        e = self._entries.get(key)
        now = min(max(int(now), 0), 0xFFFFFFFF)
        if e is None or now >= e[0]:
            return None
        _expire, inserted, a, qend, opt_off, offs, kind = e
        limit = max(_MIN_UDP, min(pq.udp_size, bufsize)) if pq.has_opt else _MIN_UDP
        limit = min(limit, 4096)
        if len(a) <= limit:
            out = bytearray(a)
            out[12:qend] = q[12:qend]
            age = now - inserted if now > inserted else 0
            for off in offs:
                _U32.pack_into(out, off, _U32.unpack_from(a, off)[0] - age)
            _U16_BE.pack_into(out, 0, pq.id)
            return bytes(out), kind
        opt = a[opt_off:] if opt_off else b""
        if qend + len(opt) > limit:
            return None
        flags = _U16_BE.unpack_from(a, 2)[0] | _F_TC
        head = _HEADER.pack(pq.id, flags, 1, 0, 0, 1 if opt_off else 0)
        return head + q[12:qend] + opt, kind | 0x80


class UdpBatch:
    """Twin of native.UdpBatch (kn_udp_batch) on a socket object: recvfrom up
    to 64 datagrams, answer the packet-cache hits with sendto, return the
    misses. Counts accumulate until take(), as the C batch keeps them."""

    _FIELDS = ("hits", "noerror", "nxdomain", "nodata", "tc", "edns", "dobit", "cd", "ad", "aa", "rd")

    def __init__(self, pc: PacketCache):
        self.pc = pc
        self.nets: list = []
        self.limiter: RateLimit | None = None
        self.nrecv = self.unsent = self.big = 0
        self._counts = dict.fromkeys(self._FIELDS, 0)

    def take(self):
        from native import BatchCounts

        out = (BatchCounts(**self._counts), self.unsent, self.big)
        self._counts = dict.fromkeys(self._FIELDS, 0)
        self.unsent = self.big = 0
        return out

    def set_nets(self, nets) -> None:
        self.nets = list(nets)[:16]

    def _count(self, k: int) -> None:
        c = self._counts
        c["hits"] += 1
        rcode = k & 0x0F
        for bit, name in ((0x80, "tc"), (0x10, "nodata"), (0x100, "edns"), (0x200, "dobit"),
                          (0x400, "cd"), (0x20, "ad"), (0x40, "aa"), (0x800, "rd")):
            if k & bit:
                c[name] += 1
        if rcode == 3:
            c["nxdomain"] += 1
        elif rcode == 0:
            c["noerror"] += 1

    def _in_nets(self, addr) -> bool:
        import ipaddress

        ip = ipaddress.ip_address(addr[0].split("%", 1)[0])
        return any(ip.version == n.version and ip in n for n in self.nets)

    def set_limiter(self, limiter) -> None:
        self.limiter = limiter

    def _limited(self, sock, data: bytes, addr, now_ms: int) -> bool:
        """kn_udp_batch's rate-limit step: True when the datagram was
        answered with TC=1 or dropped."""
        from native import limit_datagram

        limited, unsent = limit_datagram(self.limiter, sock, data, addr, now_ms)
        self.unsent += unsent
        return limited

    def run(self, sock, now: int, bufsize: int, lookup: bool):
        self.nrecv = 0
        misses = []
        limiter = self.limiter
        now_ms = int(time.monotonic() * 1000) & 0xFFFFFFFF
        for _ in range(64):
            try:
                data, addr = sock.recvfrom(65535)
            except (BlockingIOError, InterruptedError):
                break
            self.nrecv += 1
            if len(data) > 4096:
                self.big += 1
                continue
            if limiter is not None and self._limited(sock, data, addr, now_ms):
                continue
            hit = None
            if lookup and self.pc.count and not (self.nets and self._in_nets(addr)):
                hit = self.pc.answer(data, now, bufsize)
            if hit is None:
                misses.append((data, addr))
                continue
            self._count(hit[1])
            try:
                sock.sendto(hit[0], addr)
            except OSError:
                self.unsent += 1
        return self.nrecv, misses


_RL_MILLI = 1000


def _rl_prefix_hash(seed: int, family: int, addr: bytes, bits: int) -> int:
    bits = min(bits, 32 if family == 4 else 128)
    n = (bits + 7) // 8
    buf = bytearray([family]) + bytearray(addr[:n])
    if bits % 8:
        buf[n] &= (0xFF << (8 - bits % 8)) & 0xFF
    if seed:
        buf = bytearray(seed.to_bytes(4, "little")) + buf
    h = 2166136261
    for c in buf:
        h = ((h ^ c) * 16777619) & 0xFFFFFFFF
    return h


def _rl_step(old: int, now_ms: int, rate: int, instant: int) -> tuple[int, bool]:
    t, used = old >> 32, old & 0xFFFFFFFF
    elapsed = (now_ms - t) & 0xFFFFFFFF
    if elapsed > 0x80000000:
        used = 0
    else:
        used = max(0, used - elapsed * rate)
    if used + _RL_MILLI > instant * _RL_MILLI:
        return (now_ms << 32) | used, True
    return (now_ms << 32) | (used + _RL_MILLI), False


class RateLimit:
    """Twin of native.RateLimit (ratelimit.c): the same table layout, hash,
    bucket arithmetic and verdicts. Python has no atomic u64 update: the
    read-modify-write is plain (approximate under concurrent forks, which
    the limit tolerates: a lost update lets one more query through)."""

    def __init__(self, table, nbuckets: int, rate: int, instant: int, slip: int,
                 v4_bits: int = 24, v6_bits: int = 56, exempt=(), dry_run: bool = False,
                 seed: int = 0):
        from native import _rl_args

        _rl_args(table, nbuckets, rate, instant, slip, v4_bits, v6_bits, exempt, seed)
        self.seed = seed
        self._words = memoryview(table).cast("B")[: 8 * (nbuckets + 1)].cast("Q")
        self.nbuckets, self.rate, self.instant, self.slip = nbuckets, rate, instant, slip
        self.v4_bits, self.v6_bits = v4_bits, v6_bits
        self.exempt = list(exempt)
        self.dry_run = bool(dry_run)
        self.nlimited = self.ntc = self.ndrop = 0

    def _exempt(self, family: int, addr: bytes) -> bool:
        import ipaddress

        ip = ipaddress.ip_address(addr[:4] if family == 4 else addr[:16])
        return any(n.version == family and ip in n for n in self.exempt)

    def check(self, sa: bytes, now_ms: int) -> int:
        import socket
        import sys

        sa = bytes(sa).ljust(28, b"\0")
        fam = int.from_bytes(sa[0:2], sys.byteorder)
        if fam == socket.AF_INET:
            family, addr = 4, sa[4:8]
        elif fam == socket.AF_INET6:
            family, addr = 6, sa[8:24]
        else:
            return 0
        if self.exempt and self._exempt(family, addr):
            return 0
        h = _rl_prefix_hash(self.seed, family, addr, self.v4_bits if family == 4 else self.v6_bits)
        i = 1 + (h & (self.nbuckets - 1))
        instant = min(self.instant, 1_000_000)
        new, limited = _rl_step(self._words[i], now_ms & 0xFFFFFFFF, self.rate, instant)
        self._words[i] = new
        if not limited:
            return 0
        self.nlimited += 1
        if self.dry_run:
            return 0
        n = (self._words[0] + 1) & 0xFFFFFFFFFFFFFFFF
        self._words[0] = n
        return 1 if self.slip and n % self.slip == 0 else 2

    def tc(self, query: bytes) -> bytes | None:
        pq = _parse_ok(bytes(query))
        if pq is None or pq.flags & 0x8000:
            return None
        flags = 0x8000 | 0x0200 | (pq.flags & (0x7800 | 0x0100 | 0x0010))
        return struct.pack(">HHHHHH", pq.id, flags, 1, 0, 0, 0) + bytes(query[12:pq.question_end])

    def counts(self) -> tuple[int, int, int]:
        return self.nlimited, self.ntc, self.ndrop

    def count(self, tc: bool) -> None:
        if tc:
            self.ntc += 1
        else:
            self.ndrop += 1
