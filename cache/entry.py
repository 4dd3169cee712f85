"""Cache entry values: fixed header + payload; pack and bounded, defensive unpack.

Owns: the byte layout of every value in the b"cache" DB (CACHE_KEY_DEF: the
format version in cache/keys.py covers this layout too; native/answer.c reads
the header and the positive payload).
Must not: touch LMDB, compute keys, decide freshness policy or ranks (cache/api.py
does), or raise anything but EntryError on bad input.

Layout (all integers big endian):

  header  (HEADER, 12 bytes)
      u32 inception   unix seconds when stashed
      u32 ttl         seconds, already clamped; fresh while now < inception + ttl
      u8  rank        kr_rank value (cache/api.py Rank)
      u8  flags       FLAG_RRSIGS | FLAG_NEGATIVE
      u16 type        the RR type of the key (0 for NXDOMAIN)

  positive payload (flags without FLAG_NEGATIVE), class IN only:
      u16 count, count x (u16 rdlen, rdata)     rdata uncompressed wire form
      if FLAG_RRSIGS: u16 count, count x (u16 rdlen, RRSIG rdata)

  negative payload (FLAG_NEGATIVE):
      u8 n (>= 1) x rrset, the first one the SOA:
          u8 owner_len, owner (uncompressed wire name), u16 type, u32 ttl,
          u16 count, count x (u16 rdlen, rdata)

Unpacking checks every length against the buffer, requires the payload to end
exactly at the end of the value, and turns any dnspython parse error into
EntryError, so a corrupted value is a miss, never a crash.
"""
from __future__ import annotations

import socket
import struct
from dataclasses import dataclass

import dns.name
import dns.rdata
import dns.rdataclass
import dns.rdatatype
import dns.rrset

HEADER = struct.Struct("!IIBBH")
FLAG_RRSIGS = 0x01
FLAG_NEGATIVE = 0x02
_KNOWN_FLAGS = FLAG_RRSIGS | FLAG_NEGATIVE
MAX_VALUE = 1 << 20  # bytes; nothing legitimate comes close (one message <= 64 KiB)
MAX_U32 = 0xFFFFFFFF

_U8 = struct.Struct("!B")
_U16 = struct.Struct("!H")
_RRHEAD = struct.Struct("!HIH")  # type, ttl, count
IN = dns.rdataclass.IN


class EntryError(ValueError):
    """A value that can not be packed or is not a valid entry."""


@dataclass(frozen=True, slots=True)
class Header:
    inception: int
    ttl: int
    rank: int
    flags: int
    rtype: int

    def remaining(self, now: float) -> int:
        """Seconds left at `now` (<= 0: expired); never above the stored TTL."""
        age = int(now) - self.inception
        return self.ttl - age if age > 0 else self.ttl

    @property
    def negative(self) -> bool:
        return bool(self.flags & FLAG_NEGATIVE)


# -- packing ---------------------------------------------------------------
def _u32(v: int) -> int:
    return min(max(int(v), 0), MAX_U32)


_A_TYPE, _AAAA_TYPE = dns.rdatatype.A, dns.rdatatype.AAAA


def rdata_wire(rd: dns.rdata.Rdata) -> bytes:
    """rd.to_wire() (uncompressed); addresses through the socket module's C
    parser (dnspython parses the text it holds in Python, ~5 µs)."""
    try:
        if rd.rdtype == _A_TYPE and rd.rdclass == IN:
            return socket.inet_aton(rd.address)
        if rd.rdtype == _AAAA_TYPE and rd.rdclass == IN:
            return socket.inet_pton(socket.AF_INET6, rd.address)
    except (OSError, AttributeError, TypeError):
        pass
    return rd.to_wire()


def _rdatas(parts: list[bytes], rdatas) -> None:
    _wires(parts, [rdata_wire(rd) for rd in rdatas])


def _wires(parts: list[bytes], wires) -> None:
    if len(wires) > 0xFFFF:
        raise EntryError("too many records")
    parts.append(_U16.pack(len(wires)))
    for w in wires:
        if len(w) > 0xFFFF:
            raise EntryError("rdata too long")
        parts.append(_U16.pack(len(w)))
        parts.append(w)


def _finish(parts: list[bytes]) -> bytes:
    value = b"".join(parts)
    if len(value) > MAX_VALUE:
        raise EntryError("entry too large")
    return value


def pack_rrset(rrset: dns.rrset.RRset, rrsigs: dns.rrset.RRset | None, *,
               inception: int, ttl: int, rank: int) -> bytes:
    """Value of an `E` entry. rrsigs, if given, must be RRSIGs (class IN)."""
    if rrset.rdclass != IN:
        raise EntryError("only class IN is cached")
    flags = 0
    if rrsigs is not None and len(rrsigs):
        if rrsigs.rdtype != dns.rdatatype.RRSIG or rrsigs.rdclass != IN:
            raise EntryError("rrsigs must be an IN RRSIG RRset")
        flags |= FLAG_RRSIGS
    parts = [HEADER.pack(_u32(inception), _u32(ttl), rank & 0xFF, flags, int(rrset.rdtype))]
    _rdatas(parts, rrset)
    if flags & FLAG_RRSIGS:
        _rdatas(parts, rrsigs)
    return _finish(parts)


def pack_rdatas(rtype: int, rdatas, *, inception: int, ttl: int, rank: int, rrsigs=()) -> bytes:
    """pack_rrset() of an IN RRset given as its rdata wires (uncompressed,
    in order, no duplicates), and its RRSIG rdata wires if any: the same bytes."""
    parts = [HEADER.pack(_u32(inception), _u32(ttl), rank & 0xFF, FLAG_RRSIGS if rrsigs else 0, rtype)]
    _wires(parts, rdatas)
    if rrsigs:
        _wires(parts, rrsigs)
    return _finish(parts)


def pack_negative(rtype: int, soa: dns.rrset.RRset, authority: list[dns.rrset.RRset], *,
                  inception: int, ttl: int, rank: int) -> bytes:
    """Value of an `N` (rtype) or `X` (rtype 0) entry: SOA first, then authority.
    A NODATA without SOA (soa None) is stored with no RRsets at all."""
    if soa is None:
        if authority:
            raise EntryError("authority RRsets without the SOA")
        rrsets = []
    elif soa.rdtype != dns.rdatatype.SOA:
        raise EntryError("negative entry needs the SOA RRset")
    else:
        rrsets = [soa, *authority]
    if len(rrsets) > 0xFF:
        raise EntryError("too many authority RRsets")
    parts = [HEADER.pack(_u32(inception), _u32(ttl), rank & 0xFF, FLAG_NEGATIVE, int(rtype)),
             _U8.pack(len(rrsets))]
    for rs in rrsets:
        if rs.rdclass != IN:
            raise EntryError("only class IN is cached")
        owner = rs.name.to_wire()
        parts.append(_U8.pack(len(owner)))
        parts.append(owner)
        parts.append(_U16.pack(int(rs.rdtype)))
        parts.append(struct.pack("!I", _u32(rs.ttl)))
        _rdatas(parts, rs)
    return _finish(parts)


# -- unpacking -------------------------------------------------------------
class _Reader:
    """Bounded cursor over a value; every read checks the remaining length."""

    __slots__ = ("buf", "pos")

    def __init__(self, buf: bytes, pos: int = 0):
        self.buf = buf
        self.pos = pos

    def take(self, n: int) -> bytes:
        end = self.pos + n
        if end > len(self.buf):
            raise EntryError("truncated entry")
        out = self.buf[self.pos:end]
        self.pos = end
        return out

    def u8(self) -> int:
        return _U8.unpack(self.take(1))[0]

    def u16(self) -> int:
        return _U16.unpack(self.take(2))[0]

    def rdatas(self, rtype: int) -> list[dns.rdata.Rdata]:
        count = self.u16()
        out = []
        for _ in range(count):
            rdlen = self.u16()
            out.append(_rdata(rtype, bytes(self.take(rdlen))))
        return out

    def done(self) -> None:
        if self.pos != len(self.buf):
            raise EntryError("trailing bytes in entry")


# Decoding an rdata with dnspython costs ~25 us; rdata objects are immutable, so
# the same stored bytes decode once per process. Bounded: cleared when full.
_RDATA_MEMO: dict[tuple[int, bytes], dns.rdata.Rdata] = {}
_RDATA_MEMO_MAX = 200_000


def _rdata(rtype: int, raw: bytes) -> dns.rdata.Rdata:
    key = (rtype, raw)
    rd = _RDATA_MEMO.get(key)
    if rd is None:
        rd = dns.rdata.from_wire(IN, rtype, raw, 0, len(raw))
        if len(_RDATA_MEMO) >= _RDATA_MEMO_MAX:
            _RDATA_MEMO.clear()
        _RDATA_MEMO[key] = rd
    return rd


def unpack_header(value: bytes) -> Header:
    if len(value) < HEADER.size:
        raise EntryError("entry shorter than its header")
    inception, ttl, rank, flags, rtype = HEADER.unpack_from(value, 0)
    if flags & ~_KNOWN_FLAGS:
        raise EntryError("unknown entry flags")
    return Header(inception, ttl, rank, flags, rtype)


def _rrset(name: dns.name.Name, rdatas: list[dns.rdata.Rdata], ttl: int) -> dns.rrset.RRset:
    if not rdatas:
        raise EntryError("empty RRset")
    return dns.rrset.from_rdata_list(name, ttl, rdatas)


def unpack_rrset(value: bytes, name: dns.name.Name, ttl: int = 0
                 ) -> tuple[Header, dns.rrset.RRset, dns.rrset.RRset | None]:
    """(header, rrset, rrsigs or None) of an `E` value; RRsets get `ttl`."""
    try:
        hdr = unpack_header(value)
        if hdr.negative:
            raise EntryError("negative entry where an RRset was expected")
        rd = _Reader(value, HEADER.size)
        rrset = _rrset(name, rd.rdatas(hdr.rtype), ttl)
        sigs = None
        if hdr.flags & FLAG_RRSIGS:
            sigs = _rrset(name, rd.rdatas(dns.rdatatype.RRSIG), ttl)
        rd.done()
        return hdr, rrset, sigs
    except EntryError:
        raise
    except Exception as exc:  # noqa: BLE001 - any parse failure of stored bytes is a miss
        raise EntryError(f"bad entry: {exc!r}") from exc


def unpack_negative(value: bytes, ttl: int = 0
                    ) -> tuple[Header, dns.rrset.RRset | None, list[dns.rrset.RRset]]:
    """(header, soa, authority) of an `N`/`X` value; RRsets get `ttl`.
    soa is None only for a NODATA that came without one."""
    try:
        hdr = unpack_header(value)
        if not hdr.negative:
            raise EntryError("positive entry where a negative one was expected")
        rd = _Reader(value, HEADER.size)
        n = rd.u8()
        rrsets = []
        for _ in range(n):
            olen = rd.u8()
            owner = dns.name.from_wire(rd.take(olen), 0)
            if owner[1] != olen:
                raise EntryError("bad owner name")
            rtype, _stored_ttl, _count = _RRHEAD.unpack(rd.take(_RRHEAD.size))
            rd.pos -= 2  # let rdatas() read the count itself
            rrsets.append(_rrset(owner[0], rd.rdatas(rtype), ttl))
        rd.done()
        if not rrsets:
            if hdr.rtype == 0:
                raise EntryError("NXDOMAIN entry without SOA")
            return hdr, None, []  # NODATA without SOA (cached for min_ttl)
        if rrsets[0].rdtype != dns.rdatatype.SOA:
            raise EntryError("first negative RRset is not a SOA")
        return hdr, rrsets[0], rrsets[1:]
    except EntryError:
        raise
    except Exception as exc:  # noqa: BLE001 - any parse failure of stored bytes is a miss
        raise EntryError(f"bad entry: {exc!r}") from exc
