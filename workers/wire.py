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

import io
import random
import struct

import dns.exception
import dns.flags
import dns.ipv4
import dns.ipv6
import dns.message
import dns.name
import dns.rdata
import dns.rdataclass
import dns.rdatatype
import dns.rdtypes.IN.A
import dns.rdtypes.IN.AAAA
import dns.rrset

from cache.entry import rdata_wire

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


def query_message(qid: int, flags: int, qname_wire: bytes, qtype: int,
                  opt: tuple[int, int] | None) -> dns.message.QueryMessage:
    """The question as a Message (for module hooks), equal to what
    dns.message.make_query builds for it."""
    m = dns.message.QueryMessage(id=qid)
    m.flags = dns.flags.Flag(flags)
    name = _new_name(_labels(qname_wire))  # (a random case: not for the name cache)
    m.question.append(dns.rrset.RRset(name, dns.rdataclass.IN, _rdtype(qtype)))
    if opt is not None:
        payload, ednsflags = opt
        m.opt = _opt(payload, ednsflags)
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
    return x20_bits(qname_wire, rng.getrandbits(len(qname_wire)))


def x20_bits(qname_wire: bytes, bits: int) -> bytes:
    """x20() with the random bits given (bit i: the case of byte i)."""
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

_NAMES: dict[tuple, tuple[dns.name.Name, tuple]] = {}  # exact labels -> (Name, lower-cased labels)
_NAMES_MAX = 8192
_TYPES: dict[int, dns.rdatatype.RdataType] = {}
_CLASSES: dict[int, dns.rdataclass.RdataClass] = {}


def _name(labels: tuple) -> dns.name.Name:
    """The Name of these exact labels (case kept), shared: Names are immutable."""
    return _name_low(labels)[0]


def _new_name(labels: tuple) -> dns.name.Name:
    """Name(labels) for a tuple of bytes labels, through the pickle protocol
    (Name.__setstate__ validates them; __init__ converts and copies first)."""
    n = _NAME_NEW(dns.name.Name)
    n.__setstate__({"labels": labels})
    return n


_NAME_NEW = dns.name.Name.__new__


def _name_low(labels: tuple) -> tuple[dns.name.Name, tuple]:
    """(Name, its labels lower-cased: a cheap key that compares as Names do)."""
    hit = _NAMES.get(labels)
    if hit is None:
        hit = (_new_name(labels), tuple(label.lower() for label in labels))
        if len(_NAMES) >= _NAMES_MAX:
            _NAMES.clear()
        _NAMES[labels] = hit
    return hit


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


def _read_name(wire: bytes, pos: int) -> tuple[tuple, int]:
    """(exact labels, position after the name) with dnspython's rules: pointers
    only backwards, at most _MAX_HOPS, a pointer's target must end before the
    part pointing to it."""
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
    return tuple(labels), after if after >= 0 else pos


# -- client messages ----------------------------------------------------------------------


def query_from_parsed(wire: bytes, pq) -> dns.message.Message | None:
    """The Message dns.message.from_wire(wire) builds for a client query the
    native parser accepted (`pq`, native.ParsedQuery), when it is the usual
    shape: opcode QUERY, one question, no records but an OPT without options.
    None for anything else (the caller asks dnspython)."""
    if (pq.qdcount != 1 or pq.opcode != 0 or pq.ancount or pq.nscount or pq.arcount != pq.has_opt
            or pq.opt_rdata_len or pq.opt_flags):
        return None
    m = dns.message.QueryMessage(id=pq.id)
    m.flags = dns.flags.Flag(pq.flags)
    m.wire = wire
    m.index = None  # as parse_reply
    m.question.append(dns.rrset.RRset(_name(_labels(pq.qname)), _rdclass(pq.qclass), _rdtype(pq.qtype)))
    if pq.has_opt:
        ttl = pq.ext_rcode << 24 | pq.edns_version << 16 | pq.edns_flags
        m.opt = _opt(pq.udp_size, ttl)
    return m


def opt_rrset(payload: int, ednsflags: int) -> dns.rrset.RRset:
    """An OPT RRset without options, as Message.use_edns(0, ednsflags, payload) sets it."""
    return _opt(payload, ednsflags & 0xFF00FFFF)


_OPT_SETS: dict[tuple[int, bytes], dns.rrset.RRset] = {}  # (payload, options wire) -> RRset to copy


def _opt(payload: int, ttl: int, options: bytes = b"") -> dns.rrset.RRset:
    """dns.rrset.from_rdata(root, ttl, OPT rdata(payload, options)), as a copy
    of a template (the copy shares the immutable rdata: no parse, no hash)."""
    key = (payload, options)
    tmpl = _OPT_SETS.get(key)
    if tmpl is None:
        rd = dns.rdata.from_wire(payload, _OPT, options, 0, len(options))
        if len(_OPT_SETS) >= 256:
            _OPT_SETS.clear()
        tmpl = _OPT_SETS[key] = dns.rrset.from_rdata(dns.name.root, 0, rd)
    out = tmpl.copy()
    out.ttl = ttl
    return out


class _Compress:
    """dnspython's compression table protocol (get / [] = with Name keys) over
    ours (lower-cased label tuples -> offset), for the rdatas that compress the
    names inside them (NS, CNAME, MX, SOA...)."""

    __slots__ = ("table",)

    def __init__(self) -> None:
        self.table: dict[tuple, int] = {}

    def get(self, n: dns.name.Name, default=None):
        return self.table.get(tuple(label.lower() for label in n.labels), default)

    def __setitem__(self, n: dns.name.Name, pos: int) -> None:
        self.table[tuple(label.lower() for label in n.labels)] = pos


def _put_name(out, labels: tuple, table: dict) -> None:
    """Name.to_wire(out, compress): each suffix of two labels or more is looked
    up, and recorded while its offset fits a pointer."""
    low = tuple(label.lower() for label in labels)
    for i in range(len(labels) - 1):
        key = low[i:]
        pos = table.get(key)
        if pos is not None:
            out.write(_U16.pack(0xC000 | pos))
            return
        here = out.tell()
        if here <= 0x3FFF:
            table[key] = here
        out.write(_LABEL_LEN[len(labels[i])])
        out.write(labels[i])
    out.write(b"\x00")


_U16 = struct.Struct("!H")
_RRHEAD = struct.Struct("!HHI")
_LABEL_LEN = [bytes((i,)) for i in range(64)]


def render(m: dns.message.Message, max_size: int = 0, shuffle: bool = True) -> bytes:
    """m.to_wire(max_size=max_size, want_shuffle=shuffle): the same bytes (with
    the same compression) and dns.exception.TooBig when they do not fit; Messages
    with what it does not cover (TSIG, padding, an origin, relative names,
    empty or deleting RRsets, EDNS padding) go to dnspython."""
    if m.tsig is not None or m.keyring is not None or m.pad or m.origin is not None:
        return m.to_wire(max_size=max_size, want_shuffle=shuffle)
    try:
        out = _render(m, shuffle)
    except _Bad:
        return m.to_wire(max_size=max_size, want_shuffle=shuffle)
    if max_size == 0:
        max_size = m.request_payload or 65535
    max_size = min(max(max_size, 512), 65535)
    if len(out) > max_size:
        raise dns.exception.TooBig
    return out


def _render(m: dns.message.Message, shuffle: bool) -> bytes:
    out = io.BytesIO()
    out.write(b"\x00" * DNS_HEADER)
    comp = _Compress()
    table = comp.table
    counts = [0, 0, 0, 0]
    for q in m.question:
        if not q.name.is_absolute():
            raise _Bad
        _put_name(out, q.name.labels, table)
        out.write(_QTAIL.pack(q.rdtype, q.rdclass))
        counts[0] += 1
    for section in (1, 2, 3):
        for rrset in m.sections[section]:
            counts[section] += _put_rrset(out, rrset, comp, shuffle)
    if m.opt is not None:
        opt = m.opt
        if opt.name != dns.name.root or len(opt) != 1:
            raise _Bad
        out.write(b"\x00")
        out.write(_RRHEAD.pack(_OPT, opt.rdclass, opt.ttl))
        body = opt[0].to_wire()
        out.write(_U16.pack(len(body)))
        out.write(body)
        counts[3] += 1
    out.seek(0)
    out.write(_HEADER.pack(m.id, m.flags, *counts))
    return out.getvalue()


def _put_rrset(out, rrset: dns.rrset.RRset, comp: _Compress, shuffle: bool) -> int:
    if not len(rrset) or rrset.deleting is not None or not rrset.name.is_absolute():
        raise _Bad
    rds = list(rrset)
    if shuffle:
        random.shuffle(rds)
    labels = rrset.name.labels
    head = _RRHEAD.pack(rrset.rdtype, rrset.rdclass, rrset.ttl)
    address = rrset.rdtype in _NAME_FREE  # no names inside: bytes of their own
    for rd in rds:
        _put_name(out, labels, comp.table)
        out.write(head)
        if address:
            body = rdata_wire(rd)
            out.write(_U16.pack(len(body)))
            out.write(body)
            continue
        at = out.tell()
        out.write(b"\x00\x00")
        rd.to_wire(out, comp, None)
        end = out.tell()
        out.seek(at)
        out.write(_U16.pack(end - at - 2))
        out.seek(end)
    return len(rds)


# -- the reply -------------------------------------------------------------------------

# Rdatas without names inside (no compression): the same class, type and bytes
# are the same immutable object. Bounded: cleared when full.
_NAME_FREE = frozenset({dns.rdatatype.A, dns.rdatatype.AAAA})
_RDATA_MEMO: dict[tuple[int, int, bytes], dns.rdata.Rdata] = {}
_RDATA_MEMO_MAX = 50_000


# Addresses straight from their bytes: the rdata's pickle state (what
# __getstate__ gives and __setstate__ takes: class, type, comment, address as
# text) -- a quarter of dns.rdata.from_wire's cost, which adds a Parser, two
# context managers, enum conversions and a parse of the address text it made.
def _address_a(raw: bytes) -> dns.rdata.Rdata:
    rd = _A.__new__(_A)
    rd.__setstate__({"rdclass": dns.rdataclass.IN, "rdtype": dns.rdatatype.A, "rdcomment": None,
                     "address": dns.ipv4.inet_ntoa(raw)})
    return rd


def _address_aaaa(raw: bytes) -> dns.rdata.Rdata:
    rd = _AAAA.__new__(_AAAA)
    rd.__setstate__({"rdclass": dns.rdataclass.IN, "rdtype": dns.rdatatype.AAAA, "rdcomment": None,
                     "address": dns.ipv6.inet_ntoa(raw)})
    return rd


_A, _AAAA = dns.rdtypes.IN.A.A, dns.rdtypes.IN.AAAA.AAAA
_ADDRESS = {dns.rdatatype.A: (_address_a, 4), dns.rdatatype.AAAA: (_address_aaaa, 16)}


def _rdata(rclass: int, rtype: int, wire: bytes, pos: int, rdlen: int) -> dns.rdata.Rdata:
    if rtype in _NAME_FREE:
        key = (rclass, rtype, wire[pos:pos + rdlen])
        rd = _RDATA_MEMO.get(key)
        if rd is None:
            addr = _ADDRESS.get(rtype) if rclass == _IN else None
            if addr is not None and rdlen == addr[1]:
                rd = addr[0](key[2])
            else:
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
    # No index: find_rrset() then scans the sections (the same answers, and
    # right even after scrub replaced them); building it costs a Name hash per RR.
    m.index = None
    labels, pos = _read_name(wire, DNS_HEADER)
    if pos + 4 > len(wire):
        return None
    qtype, qclass = _QTAIL.unpack_from(wire, pos)
    pos += 4
    m.question.append(dns.rrset.RRset(_name(labels), _rdclass(qclass), _rdtype(qtype)))
    merge: dict[tuple, dns.rrset.RRset] = {}
    for section, count in ((1, ancount), (2, nscount), (3, arcount)):
        pos = _section(m, wire, pos, section, count, merge)
    if pos != len(wire):
        return None  # trailing bytes: dnspython raises TrailingJunk
    return m


_ROOT_LABELS = (b"",)


def _section(m: dns.message.Message, wire: bytes, pos: int, section: int, count: int, merge: dict) -> int:
    """Records of one section; RRs of the same owner (compared as Names are),
    class, type and covered type go into one RRset, as dnspython's find_rrset does."""
    rrsets = m.sections[section]
    for _ in range(count):
        labels, pos = _read_name(wire, pos)
        if pos + 10 > len(wire):
            raise _Bad
        rtype, rclass, ttl, rdlen = _RR.unpack_from(wire, pos)
        pos += 10
        end = pos + rdlen
        if end > len(wire):
            raise _Bad
        if rtype == _TSIG:
            raise _Bad
        if rtype == _OPT:
            if section != 3 or m.opt is not None or labels != _ROOT_LABELS:
                raise _Bad  # dnspython: BadEDNS
            m.opt = _opt(rclass, ttl, wire[pos:end])
            pos = end
            continue
        rd = _rdata(rclass, rtype, wire, pos, rdlen)
        pos = end
        name, low = _name_low(labels)
        covers = rd.covers()
        key = (section, low, rclass, rtype, covers)
        rrset = merge.get(key)
        if rrset is None:
            rrset = merge[key] = dns.rrset.RRset(name, _rdclass(rclass), _rdtype(rtype), _rdtype(covers))
            rrsets.append(rrset)
        rrset.add(rd, 0 if ttl > 0x7FFFFFFF else ttl)
    return pos
