"""Upstream wire on the miss path: the question's bytes and the reply's parse.

Owns:
- `query_wire`: the bytes of an upstream question (header, QNAME as given,
  QTYPE/QCLASS, an OPT without options) built directly, the same bytes
  dnspython's `to_wire()` renders for such a message;
- `query_message` / `render_query`: the dns.message.Message module hooks
  (produce, checkout) see, and its bytes once they ran (`to_wire()` when a hook
  left anything the direct builder does not cover);
- 0x20 on the bytes: `x20` randomises the letter case of a QNAME's wire form,
  `plain_case` puts the plain case back into a reply's question (or tells a
  reply with another case apart);
- `parse_reply`: a bounded parser of upstream replies into the Message
  `dns.message.from_wire()` would build (same sections, RRset merging, TTLs,
  OPT, index), without its per-field overhead: names are shared through a
  small per-process cache keyed by their exact labels, rdatas of the types
  without names inside are memoised by their bytes. Whatever it does not
  handle (another opcode, QDCOUNT != 1, TSIG, an OPT out of place, a bad
  pointer, trailing bytes, any rdata error) goes to dnspython, which decides
  (and raises) as before.
Must not: do I/O, choose IDs, servers or the case (the core does), or judge
what a reply means (workers/scrub.py and the iterator do).
"""
from __future__ import annotations

import struct

import dns.flags
import dns.message
import dns.name
import dns.rdata
import dns.rdataclass
import dns.rdatatype
import dns.rdtypes.ANY.OPT
import dns.rrset

DNS_HEADER = 12
_HEADER = struct.Struct("!6H")
_QTAIL = struct.Struct("!HH")
_RR = struct.Struct("!HHIH")  # type, class, ttl, rdlength
_OPT_TAIL = struct.Struct("!HHIH")  # after the root owner: type 41, payload, flags, rdlength 0
_OPT = 41
_TSIG = 250
_IN = 1
_MAX_HOPS = 16  # dnspython's MAX_COMPRESSION_POINTER_CHAIN

# -- the question ------------------------------------------------------------------


def query_wire(qid: int, flags: int, qname_wire: bytes, qtype: int, opt: tuple[int, int] | None,
               qclass: int = _IN) -> bytes:
    """An upstream question: `opt` is (payload, EDNS flags) or None for no OPT."""
    if opt is None:
        return _HEADER.pack(qid, flags, 1, 0, 0, 0) + qname_wire + _QTAIL.pack(qtype, qclass)
    return (_HEADER.pack(qid, flags, 1, 0, 0, 1) + qname_wire + _QTAIL.pack(qtype, qclass)
            + b"\x00" + _OPT_TAIL.pack(_OPT, opt[0], opt[1], 0))


_OPT_RDATA: dict[int, dns.rdtypes.ANY.OPT.OPT] = {}


def query_message(qid: int, flags: int, qname_wire: bytes, qtype: int,
                  opt: tuple[int, int] | None) -> dns.message.QueryMessage:
    """The question as a Message (for module hooks), equal to what
    dns.message.make_query builds for it."""
    m = dns.message.QueryMessage(id=qid)
    m.flags = dns.flags.Flag(flags)
    name = _name(_labels(qname_wire))
    m.question.append(dns.rrset.RRset(name, dns.rdataclass.IN, _rdtype(qtype)))
    if opt is not None:
        payload, ednsflags = opt
        rd = _OPT_RDATA.get(payload)
        if rd is None:
            rd = _OPT_RDATA[payload] = dns.rdtypes.ANY.OPT.OPT(payload, dns.rdatatype.OPT, ())
        m.opt = dns.rrset.from_rdata(dns.name.root, ednsflags, rd)
        m.request_payload = payload
    return m


def render_query(m: dns.message.Message) -> bytes:
    """The wire of a question Message a hook may have changed."""
    if (len(m.question) != 1 or m.answer or m.authority or m.additional or m.pad
            or m.tsig is not None or m.keyring is not None or m.options):
        return m.to_wire()
    q = m.question[0]
    if not q.name.is_absolute():
        return m.to_wire()  # (dnspython raises)
    opt = (m.payload, m.ednsflags) if m.opt is not None else None
    return query_wire(m.id, int(m.flags) & 0xFFFF, q.name.to_wire(), int(q.rdtype), opt, int(q.rdclass))


def x20(qname_wire: bytes, rng) -> bytes:
    """The QNAME wire (in lower case) with each ASCII letter in random case
    (0x20, draft-vixie-dnsext-dns0x20). Length bytes are below 0x40, never letters."""
    bits = rng.getrandbits(len(qname_wire))
    out = bytearray(qname_wire)
    for i, c in enumerate(out):
        if 0x61 <= c <= 0x7A and bits >> i & 1:
            out[i] = c - 0x20
    return bytes(out)


def plain_case(raw: bytes, sent: bytes) -> bytes | None:
    """A reply to a question sent with QNAME wire `sent` (0x20 case): the reply
    with its question name in plain (lower) case, so that what the cache keeps
    and clients see does not depend on the random case (names compressed
    against it follow); None when the reply's question has the name in another
    case. Replies without that question (header-only errors, other names) are
    returned as they are, for the usual checks."""
    end = DNS_HEADER + len(sent)
    if len(raw) < end + 4 or raw[4:6] != b"\x00\x01":
        return raw
    got = raw[DNS_HEADER:end]
    if got == sent:
        return raw[:DNS_HEADER] + sent.lower() + raw[end:]
    if got.lower() == sent.lower():
        return None
    return raw


# -- names and types -----------------------------------------------------------------

_NAMES: dict[tuple, dns.name.Name] = {}
_NAMES_MAX = 8192
_TYPES: dict[int, dns.rdatatype.RdataType] = {}
_CLASSES: dict[int, dns.rdataclass.RdataClass] = {}


def _name(labels: tuple) -> dns.name.Name:
    """The Name of these exact labels (case kept), shared: Names are immutable."""
    n = _NAMES.get(labels)
    if n is None:
        n = dns.name.Name(labels)
        if len(_NAMES) >= _NAMES_MAX:
            _NAMES.clear()
        _NAMES[labels] = n
    return n


def _rdtype(t: int) -> dns.rdatatype.RdataType:
    e = _TYPES.get(t)
    if e is None:
        e = _TYPES[t] = dns.rdatatype.RdataType.make(t)
    return e


def _rdclass(c: int) -> dns.rdataclass.RdataClass:
    e = _CLASSES.get(c)
    if e is None:
        e = _CLASSES[c] = dns.rdataclass.RdataClass.make(c)
    return e


def _labels(qname_wire: bytes) -> tuple:
    """Labels of an uncompressed wire name (the caller built it)."""
    out = []
    pos = 0
    while qname_wire[pos]:
        n = qname_wire[pos]
        out.append(qname_wire[pos + 1:pos + 1 + n])
        pos += n + 1
    out.append(b"")
    return tuple(out)


class _Bad(Exception):
    """Not for the fast parser: dnspython decides."""


def _read_name(wire: bytes, pos: int) -> tuple[dns.name.Name, int]:
    """(name, position after it) with dnspython's rules: pointers only backwards,
    at most _MAX_HOPS, a pointer's target must end before the part pointing to it."""
    labels = []
    end = len(wire)
    start = biggest = pos
    after = -1
    hops = 0
    size = 1
    while True:
        if pos >= end:
            raise _Bad
        c = wire[pos]
        if c == 0:
            pos += 1
            break
        if c < 64:
            stop = pos + 1 + c
            if stop > end:
                raise _Bad
            labels.append(wire[pos + 1:stop])
            size += c + 1
            pos = stop
        elif c >= 192:
            if pos + 1 >= end:
                raise _Bad
            target = (c & 0x3F) << 8 | wire[pos + 1]
            if after < 0:
                after = pos + 2
            hops += 1
            if target >= biggest or hops > _MAX_HOPS:
                raise _Bad
            biggest = target
            end = start
            pos = start = target
        else:
            raise _Bad
    if size > 255:
        raise _Bad
    labels.append(b"")
    return _name(tuple(labels)), after if after >= 0 else pos


# -- the reply -------------------------------------------------------------------------

# Rdatas without names inside (no compression): the same class, type and bytes
# are the same immutable object. Bounded: cleared when full.
_NAME_FREE = frozenset({dns.rdatatype.A, dns.rdatatype.AAAA, dns.rdatatype.OPT})
_RDATA_MEMO: dict[tuple[int, int, bytes], dns.rdata.Rdata] = {}
_RDATA_MEMO_MAX = 50_000


def _rdata(rclass: int, rtype: int, wire: bytes, pos: int, rdlen: int) -> dns.rdata.Rdata:
    if rtype in _NAME_FREE:
        key = (rclass, rtype, wire[pos:pos + rdlen])
        rd = _RDATA_MEMO.get(key)
        if rd is None:
            rd = dns.rdata.from_wire(rclass, rtype, wire, pos, rdlen)
            if len(_RDATA_MEMO) >= _RDATA_MEMO_MAX:
                _RDATA_MEMO.clear()
            _RDATA_MEMO[key] = rd
        return rd
    return dns.rdata.from_wire(rclass, rtype, wire, pos, rdlen)


def parse_reply(wire: bytes) -> dns.message.Message:
    """dns.message.from_wire(wire), faster on what upstream replies hold
    (see the module docstring); raises what from_wire raises."""
    m = _parse_or_none(wire)
    return dns.message.from_wire(wire) if m is None else m


def _parse_or_none(wire: bytes) -> dns.message.Message | None:
    try:
        return _parse(wire)
    except Exception:  # noqa: BLE001 - not for the fast parser: dnspython decides
        return None


def _parse(wire: bytes) -> dns.message.Message | None:
    if len(wire) < DNS_HEADER:
        return None
    qid, flags, qdcount, ancount, nscount, arcount = _HEADER.unpack_from(wire)
    if qdcount != 1 or flags & 0x7800:  # one question, opcode QUERY
        return None
    m = dns.message.QueryMessage(id=qid)
    m.flags = dns.flags.Flag(flags)
    m.wire = wire
    name, pos = _read_name(wire, DNS_HEADER)
    if pos + 4 > len(wire):
        return None
    qtype, qclass = _QTAIL.unpack_from(wire, pos)
    pos += 4
    rrset = dns.rrset.RRset(name, _rdclass(qclass), _rdtype(qtype))
    m.question.append(rrset)
    m.index[(0, name, qclass, qtype, 0, None)] = rrset
    for section, count in ((1, ancount), (2, nscount), (3, arcount)):
        pos = _section(m, wire, pos, section, count)
    if pos != len(wire):
        return None  # trailing bytes: dnspython raises TrailingJunk
    return m


def _section(m: dns.message.Message, wire: bytes, pos: int, section: int, count: int) -> int:
    rrsets = m.sections[section]
    index = m.index
    for _ in range(count):
        name, pos = _read_name(wire, pos)
        if pos + 10 > len(wire):
            raise _Bad
        rtype, rclass, ttl, rdlen = _RR.unpack_from(wire, pos)
        pos += 10
        end = pos + rdlen
        if end > len(wire):
            raise _Bad
        if rtype == _TSIG:
            raise _Bad
        rd = _rdata(rclass, rtype, wire, pos, rdlen)
        pos = end
        if rtype == _OPT:
            if section != 3 or m.opt is not None or name != dns.name.root:
                raise _Bad  # dnspython: BadEDNS
            m.opt = dns.rrset.from_rdata(name, ttl, rd)
            continue
        covers = rd.covers()
        key = (section, name, rclass, rtype, covers, None)
        rrset = index.get(key)
        if rrset is None:
            rrset = dns.rrset.RRset(name, _rdclass(rclass), _rdtype(rtype), _rdtype(covers))
            rrsets.append(rrset)
            index[key] = rrset
        rrset.add(rd, 0 if ttl > 0x7FFFFFFF else ttl)
    return pos
