"""Typed Python wrappers around the C leaf (native._native), and its result types.

Owns: the only import of the compiled module `native._native`; the Python
view of its results (Header, ParsedQuery, ParseError, Code, OptFlag) and the
two hot-path entry points:

    parse_query(wire: bytes) -> ParsedQuery
        Raises ParseError(code) for anything but a well-formed one-question
        query. `code` is a Code; `header` is the parsed Header (None only for
        Code.ESHORT); `query` is the whole ParsedQuery for Code.ETRAIL and
        Code.EBADOPT (everything was parsed; the caller decides). Hostile input
        never raises anything else (TypeError only for a non-bytes-like wire).
    cache_key(qname_wire: bytes, tag: bytes, rtype: int) -> bytes
        The exact cache key (CACHE_KEY_DEF, the same bytes as the twin
        native/pure.py key_from_wire).
        Raises ParseError(Code.EMALF) for a malformed or compressed name or
        bytes after its root label, ParseError(Code.EKEYLEN) for a key longer
        than MAX_KEY_LEN. ParseError is a ValueError, like key_from_wire's.
    answer(query_wire: bytes, parsed: ParsedQuery, value: bytes, now: int,
           bufsize: int, maxlen: int) -> bytes | None
        The whole answer to a query straight from a positive cache value
        (kn_answer, see kresd_native.h for the exact rules), or None when the
        fast path must not answer (query not eligible, value not usable,
        expired, or the answer longer than maxlen): the caller then takes the
        slow path. Never raises for hostile query/value bytes. `now` is unix
        seconds (clamped to u32), `bufsize` the OPT payload to advertise
        (0..65535, OverflowError otherwise), `maxlen` the size limit (clamped
        to 0..ANSWER_BUFSIZE). `parsed` must be parse_query(query_wire); the C
        wrapper does not read it: it re-runs kn_parse_query (about 1 us) into
        its own struct, so the answer depends only on query_wire and can
        never use a struct left over from another parse. The result is
        determined by the bytes; the pure twin behaves identically.
    rank_is_answer(rank: int) -> bool
        The one rule of which cache ranks may be served as an answer
        (kn_rank_is_answer); cache.api.is_answer_rank is this function.

It also wraps the packet cache and UDP batch (PacketCache, UdpBatch) and the
rate limit (RateLimit, over a table the caller maps: kresd/modules/
rate_limiting.py), each with its twin in native/pure.py.

Must not: hold Python objects in C, call back into Python, or keep state
beyond the preallocated buffers below. Those buffers (one struct kn_query, one
key buffer) are module-level and reused on every call, so the wrappers are
NOT thread-safe (cffi releases the GIL during the C call): each worker
process is single-threaded and must call them from its event-loop thread only.
Results are fresh Python objects, so nothing a caller holds aliases them.

If the extension is not built (e.g. a source checkout without
`python native/build.py`), the pure-Python twins in native/pure.py are used
and BACKEND is "pure" instead of "c"; results are identical, only slower.
"""
from __future__ import annotations

import enum
import os
import socket
import struct
import sys
from typing import NamedTuple


class Code(enum.IntEnum):
    """Return codes of the C functions (enum kn_rc in kresd_native.h)."""

    OK = 0
    ESHORT = -1  # < 12 bytes, header unreadable: drop
    EMALF = -2  # header readable, rest malformed: FORMERR
    ENOQ = -3  # QDCOUNT == 0: header only
    EQDCOUNT = -4  # QDCOUNT > 1: header only, FORMERR
    ETRAIL = -5  # bytes after the last record
    EBADOPT = -6  # bad OPT RR (see OptFlag): FORMERR per RFC 6891
    EKEYLEN = -7  # cache key longer than MAX_KEY_LEN
    ENOSPC = -8  # output buffer too small (never from the wrappers)
    ENOTELIG = -9  # kn_answer: query not eligible for the fast path
    EVALUE = -10  # kn_answer: cache value not usable


class OptFlag(enum.IntFlag):
    """Bits of ParsedQuery.opt_flags (enum kn_opt_flag)."""

    WRONG_SECTION = 1
    DUPLICATE = 2
    BAD_OWNER = 4
    MALFORMED = 8


QNAME_MAX = 255
MAX_KEY_LEN = 511  # CACHE_KEY_DEF, = cache.keys.MAX_KEY_LEN
KEY_BUFSIZE = 512
ANSWER_BUFSIZE = 65535
_U32_MAX = 0xFFFFFFFF


class Header(NamedTuple):
    """The fixed 12-byte header (plus opcode/rcode split out of flags)."""

    id: int
    flags: int  # raw second header word
    qdcount: int
    ancount: int
    nscount: int
    arcount: int
    opcode: int
    rcode: int


class ParsedQuery(NamedTuple):
    """One parsed query; field order = struct kn_query order (scalars, names).

    EDNS fields are 0 when has_opt is 0; has_opt and do_bit are 0 or 1.
    Offsets (question_end, opt_rdata_off, cookie_off) index the original wire.
    """

    id: int
    flags: int
    qdcount: int
    ancount: int
    nscount: int
    arcount: int
    opcode: int
    rcode: int
    qtype: int
    qclass: int
    qname_len: int
    question_end: int
    udp_size: int
    ext_rcode: int
    edns_version: int
    edns_flags: int
    has_opt: int
    do_bit: int
    opt_flags: int
    opt_rdata_off: int
    opt_rdata_len: int
    cookie_off: int
    cookie_len: int
    qname: bytes  # uncompressed wire form, as received
    qname_lower: bytes  # the same with ASCII A-Z lower-cased

    @property
    def header(self) -> Header:
        return Header._make(self[:8])


class ParseError(ValueError):
    """A query (or name) the C parser refused; `code` says why."""

    def __init__(
        self, code: int, header: Header | None = None, query: ParsedQuery | None = None
    ):
        self.code = Code(code)
        self.header = header
        self.query = query
        super().__init__(self.code.name)


PC_ANSWER_MAX = 4096  # KN_PC_ANSWER_MAX: longer answers are not kept in the packet cache
PC_TTLS_MAX = 255  # KN_PC_TTLS_MAX
PC_SLOTS = 1 << 16  # default index size (at most half used)
PC_ARENA = 8 << 20  # default arena bytes
BATCH_MAX = 64  # KN_BATCH_MAX
DGRAM_MAX = 4096  # KN_DGRAM_MAX: longer client datagrams are dropped by the batch
NETS_MAX = 16  # KN_NETS_MAX


class Kind(enum.IntFlag):
    """Bits of a packet-cache hit (enum kn_pc_kind)."""

    RCODE = 0x0F
    NODATA = 0x10
    AD = 0x20
    AA = 0x40
    TC = 0x80
    EDNS = 0x100
    DO = 0x200
    CD = 0x400
    RD = 0x800


class BatchCounts(NamedTuple):
    """What the packet cache answered in one UdpBatch.run, by kind."""

    hits: int = 0
    noerror: int = 0
    nxdomain: int = 0
    nodata: int = 0
    tc: int = 0
    edns: int = 0
    dobit: int = 0
    cd: int = 0
    ad: int = 0
    aa: int = 0
    rd: int = 0


RL_PASS, RL_TC, RL_DROP = 0, 1, 2  # enum kn_rl_verdict
RL_EXEMPT_MAX = 16
RL_INSTANT_MAX = 1_000_000


def _rl_args(table, nbuckets, rate, instant, slip, v4_bits, v6_bits, exempt, seed=0) -> None:
    """The checks RateLimit (C and twin) makes of its arguments."""
    if not 0 <= seed <= _U32_MAX:
        raise ValueError("seed: 0..2^32-1")
    if nbuckets < 1 or nbuckets & (nbuckets - 1):
        raise ValueError("nbuckets: a power of two")
    if len(memoryview(table)) < 8 * (nbuckets + 1):
        raise ValueError("table: 8 bytes of counters and 8 per bucket")
    for name, v, hi in (("rate", rate, _U32_MAX), ("instant", instant, RL_INSTANT_MAX),
                        ("slip", slip, _U32_MAX), ("v4_bits", v4_bits, 32), ("v6_bits", v6_bits, 128)):
        if not 0 <= v <= hi:
            raise ValueError(f"{name}: 0..{hi}")
    if len(list(exempt)) > RL_EXEMPT_MAX:
        raise ValueError(f"at most {RL_EXEMPT_MAX} exempt subnets")


def limit_datagram(rl, sock, data: bytes, addr, now_ms: int) -> tuple[bool, bool]:
    """kn_udp_batch's rate-limit step for one datagram read in Python (the
    twin's batch, and the server's fallback reader), with a RateLimit of
    either backend: (limited: TC=1 sent or dropped, the TC answer could not
    be sent)."""
    v = rl.check(sockaddr_bytes(addr), now_ms)
    if v == RL_PASS:
        return False, False
    tc = rl.tc(data) if v == RL_TC else None
    rl.count(tc is not None)
    if tc is None:
        return True, False
    try:
        sock.sendto(tc, addr)
    except OSError:
        return True, True
    return True, False


def sockaddr_bytes(addr) -> bytes:
    """The 28-byte struct sockaddr_in/in6 of a recvfrom address (inverse of sockaddr)."""
    host = str(addr[0]).split("%", 1)[0]
    port = int(addr[1]) if len(addr) > 1 else 0
    if ":" in host:
        raw = (socket.AF_INET6.to_bytes(2, sys.byteorder) + port.to_bytes(2, "big") + bytes(4)
               + socket.inet_pton(socket.AF_INET6, host) + bytes(4))
    else:
        raw = (socket.AF_INET.to_bytes(2, sys.byteorder) + port.to_bytes(2, "big")
               + socket.inet_pton(socket.AF_INET, host))
    return raw.ljust(28, b"\0")


def sockaddr(raw: bytes):
    """A struct sockaddr_in/in6 (28 bytes, native family field) as socket.recvfrom gives it."""
    fam = int.from_bytes(raw[0:2], sys.byteorder)
    port = int.from_bytes(raw[2:4], "big")
    if fam == socket.AF_INET:
        return socket.inet_ntop(socket.AF_INET, raw[4:8]), port
    if fam == socket.AF_INET6:
        return (socket.inet_ntop(socket.AF_INET6, raw[8:24]), port,
                int.from_bytes(raw[4:8], "big"), int.from_bytes(raw[24:28], sys.byteorder))
    return None


# KRESD_NATIVE=0 selects the pure-Python twins at run time (this is the only
# place that reads it: the choice of backend for the whole process).
if os.environ.get("KRESD_NATIVE", "1") == "0":
    _native = None
else:
    try:
        from native import _native
    except ImportError:  # not built: fall back to the pure-Python twins
        _native = None

if _native is not None:
    BACKEND = "c"
    _ffi = _native.ffi
    _lib = _native.lib
    _c_parse = _lib.kn_parse_query
    _c_key = _lib.kn_cache_key

    def _scalar_struct() -> tuple[struct.Struct, int, int]:
        """struct.Struct reading the scalar fields of kn_query in one call."""
        codes = {1: "B", 2: "H", 4: "I"}
        fmt, at = "=", 0
        qname_off = qlower_off = -1
        for name, field in _ffi.typeof("struct kn_query").fields:
            if name == "qname":
                qname_off = field.offset
                continue
            if name == "qname_lower":
                qlower_off = field.offset
                continue
            size = _ffi.sizeof(field.type)
            fmt += "x" * (field.offset - at)
            fmt += "x" * size if name == "reserved" else codes[size]
            at = field.offset + size
        return struct.Struct(fmt), qname_off, qlower_off

    _SCALARS, _QNAME_OFF, _QLOWER_OFF = _scalar_struct()
    assert len(_SCALARS.unpack_from(bytes(_SCALARS.size))) == len(ParsedQuery._fields) - 2
    _unpack = _SCALARS.unpack_from

    # Preallocated, reused per call (single-threaded worker; see docstring).
    _q = _ffi.new("struct kn_query *")
    _qbuf = _ffi.buffer(_q)
    _kbuf = _ffi.new("uint8_t[]", KEY_BUFSIZE)
    _kview = _ffi.buffer(_kbuf)
    _make = ParsedQuery._make
    _ETRAIL_OR_EBADOPT = (Code.ETRAIL, Code.EBADOPT)

    def parse_query(wire: bytes) -> ParsedQuery:
        """Parse a query (see module docstring for the error contract)."""
        if type(wire) is not bytes:
            wire = bytes(wire)
        rc = _c_parse(wire, len(wire), _q)
        if rc == 0:
            v = _unpack(_qbuf)
            n = v[10]  # qname_len
            return _make(
                v + (_qbuf[_QNAME_OFF : _QNAME_OFF + n], _qbuf[_QLOWER_OFF : _QLOWER_OFF + n])
            )
        if rc == Code.ESHORT:
            raise ParseError(rc)
        v = _unpack(_qbuf)
        query = None
        if rc in _ETRAIL_OR_EBADOPT:
            n = v[10]
            query = _make(
                v + (_qbuf[_QNAME_OFF : _QNAME_OFF + n], _qbuf[_QLOWER_OFF : _QLOWER_OFF + n])
            )
        raise ParseError(rc, Header._make(v[:8]), query)

    def cache_key(qname_wire: bytes, tag: bytes, rtype: int) -> bytes:
        """Exact cache key (CACHE_KEY_DEF); tag is one upper-case ASCII byte."""
        if len(tag) != 1:
            raise ValueError("cache key tag must be one byte")
        if type(qname_wire) is not bytes:
            qname_wire = bytes(qname_wire)
        n = _c_key(qname_wire, len(qname_wire), tag[0], rtype, _kbuf, KEY_BUFSIZE)
        if n < 0:
            raise ParseError(n)
        return _kview[:n]

    _c_rank = _lib.kn_rank_is_answer

    def rank_is_answer(rank: int) -> bool:
        """May data of this cache rank be served as an answer? (kn_rank_is_answer)"""
        return 0 <= rank <= 0xFF and _c_rank(rank) == 1

    _raw_new = _ffi.new_allocator(should_clear_after_alloc=False)
    _c_answer = _lib.kn_answer
    _aq = _ffi.new("struct kn_query *")  # answer()'s own parse, see docstring
    _abuf = _ffi.new("uint8_t[]", ANSWER_BUFSIZE)
    _aview = _ffi.buffer(_abuf)

    def answer(
        query_wire: bytes, parsed: ParsedQuery, value: bytes, now: int, bufsize: int, maxlen: int
    ) -> bytes | None:
        """Answer wire from a positive cache value, or None (take the slow path)."""
        if type(query_wire) is not bytes:
            query_wire = bytes(query_wire)
        if type(value) is not bytes:
            value = bytes(value)
        if _c_parse(query_wire, len(query_wire), _aq) != 0:
            return None
        now = int(now)
        if now < 0:
            now = 0
        elif now > _U32_MAX:
            now = _U32_MAX
        if maxlen > ANSWER_BUFSIZE:
            maxlen = ANSWER_BUFSIZE
        elif maxlen < 0:
            maxlen = 0
        n = _c_answer(
            query_wire, len(query_wire), _aq, value, len(value), now, bufsize, maxlen, _abuf,
            ANSWER_BUFSIZE,
        )
        if n <= 0:
            return None
        return _aview[:n]

    class PacketCache:
        """The per-process packet cache (fastpath.c kn_pc_*; twin: native.pure.PacketCache).

        insert(query, answer, now) -> 0 or a negative Code; answer(query, now,
        bufsize) -> (wire, kind) or None; flush(gen) empties it; the index
        and the arena are allocated here and owned by this object."""

        def __init__(self, nslots: int = PC_SLOTS, arena_size: int = PC_ARENA, gen: int = 0):
            if nslots < 4 or nslots & (nslots - 1) or arena_size % 8 or not 0 < arena_size <= 1 << 30:
                raise ValueError("nslots: a power of two >= 4; arena_size: a multiple of 8, <= 1 GiB")
            self._slots = _ffi.new("uint32_t[]", nslots)
            self._hashes = _ffi.new("uint32_t[]", nslots)
            # never read before written: left unzeroed, so the pages are only
            # resident once answers fill them (RSS grows with use)
            self._arena = _raw_new("uint8_t[]", arena_size)
            pc = self.c = _ffi.new("struct kn_pcache *")
            pc.nslots, pc.arena_size = nslots, arena_size
            pc.slots, pc.hashes, pc.arena = self._slots, self._hashes, self._arena
            _lib.kn_pc_flush(pc, gen)
            pc.flushes = 0
            self._out = _ffi.new("uint8_t[]", DGRAM_MAX)
            self._outview = _ffi.buffer(self._out)
            self._kind = _ffi.new("unsigned int *")
            self._key = _ffi.new("uint8_t[]", 260)

        gen = property(lambda self: self.c.gen)
        count = property(lambda self: self.c.count)
        used = property(lambda self: self.c.used)
        flushes = property(lambda self: self.c.flushes)

        def flush(self, gen: int | None = None) -> None:
            _lib.kn_pc_flush(self.c, self.c.gen if gen is None else gen)

        def key(self, query: bytes) -> bytes | None:
            """The packet-cache key of a query, None if it may not use the cache."""
            query = bytes(query)
            n = _lib.kn_pc_key(query, len(query), self._key, 260)
            return _ffi.buffer(self._key, n)[:] if n > 0 else None

        def insert(self, query: bytes, answer: bytes, now: int) -> int:
            query, answer = bytes(query), bytes(answer)
            return _lib.kn_pc_insert(self.c, query, len(query), answer, len(answer),
                                     min(max(int(now), 0), _U32_MAX))

        def answer(self, query: bytes, now: int, bufsize: int) -> tuple[bytes, int] | None:
            query = bytes(query)
            n = _lib.kn_pc_answer(self.c, query, len(query), min(max(int(now), 0), _U32_MAX),
                                  bufsize, self._out, DGRAM_MAX, self._kind)
            return (self._outview[:n], self._kind[0]) if n > 0 else None

    _BATCH_COUNTS = ("hits", "noerror", "nxdomain", "nodata", "tc", "edns", "dobit", "cd", "ad",
                     "aa", "rd")

    class UdpBatch:
        """kn_udp_batch on one socket (twin: native.pure.UdpBatch): run() reads
        up to BATCH_MAX datagrams, answers the packet-cache hits in C and
        returns (received, misses as [(bytes, address)]), address as
        socket.recvfrom gives it. What was answered accumulates until take()."""

        def __init__(self, pc: "PacketCache"):
            self.pc = pc
            b = self.b = _raw_new("struct kn_batch *")  # 530 KiB, mostly receive/send buffers
            b.now = b.bufsize = b.lookup = b.nnets = 0
            b.rl = _ffi.NULL
            self.limiter = None
            self.take()  # zeroes the cumulative counters
            self._rbuf = self.b.rbuf
            self._addr = self.b.addr
            self._pc_c = pc.c
            self._params = (0, 0, 0)  # (now, bufsize, lookup) last written to the struct

        def set_nets(self, nets) -> None:
            """Client subnets (ipaddress networks) whose queries always miss."""
            nets = list(nets)[:NETS_MAX]
            b = self.b
            for i, net in enumerate(nets):
                b.net_family[i] = net.version
                b.net_bits[i] = net.prefixlen
                packed = net.network_address.packed
                for j, byte in enumerate(packed):
                    b.net_addr[i][j] = byte
            b.nnets = len(nets)

        def set_limiter(self, limiter: "RateLimit | None") -> None:
            """Every datagram passes this rate limit first (None: no limit)."""
            self.limiter = limiter  # keeps its C struct and shared table alive
            self.b.rl = limiter.c if limiter is not None else _ffi.NULL

        def run(self, sock, now: int, bufsize: int, lookup: bool):
            b = self.b
            params = (now, bufsize, lookup)
            if params != self._params:  # the C struct's fields are set only when they change
                self._params = params
                b.now, b.bufsize, b.lookup = min(max(int(now), 0), _U32_MAX), bufsize, 1 if lookup else 0
            n = _lib.kn_udp_batch(sock.fileno(), self._pc_c, b)
            if n < 0:
                raise OSError(b.err, os.strerror(b.err))
            if not b.nmiss:
                return n, ()
            misses = []
            buf, rbuf, addr = _ffi.buffer, self._rbuf, self._addr
            for i in b.miss[0:b.nmiss]:
                misses.append((buf(rbuf[i], b.len[i])[:], sockaddr(buf(addr[i], 28)[:])))
            return n, misses

        def take(self) -> tuple["BatchCounts", int, int]:
            """(counts of the answers sent, answers not sent, datagrams too long)
            since the last take; zeroes them."""
            b = self.b
            counts = BatchCounts._make(getattr(b, f) for f in _BATCH_COUNTS)
            unsent, big = b.nunsent, b.nbig
            for f in _BATCH_COUNTS:
                setattr(b, f, 0)
            b.nunsent = b.nbig = b.nsent = 0
            return counts, unsent, big

        nrecv = property(lambda self: self.b.nrecv)

    class RateLimit:
        """A token bucket per client prefix (ratelimit.c kn_rl_*; twin:
        native.pure.RateLimit) over `table`, a writable buffer (an mmap shared
        by the forks): 8 bytes of shared counters, then nbuckets u64 buckets.
        check(sockaddr bytes, now_ms) -> RL_PASS, RL_TC or RL_DROP;
        tc(query) -> the TC=1 answer or None."""

        def __init__(self, table, nbuckets: int, rate: int, instant: int, slip: int,
                     v4_bits: int = 24, v6_bits: int = 56, exempt=(), dry_run: bool = False,
                     seed: int = 0):
            _rl_args(table, nbuckets, rate, instant, slip, v4_bits, v6_bits, exempt, seed)
            self._table = table
            base = _ffi.from_buffer("uint64_t[]", table)
            c = self.c = _ffi.new("struct kn_rl *")
            c.shared, c.buckets = base, base + 1
            c.nbuckets, c.rate, c.instant, c.slip = nbuckets, rate, instant, slip
            c.v4_bits, c.v6_bits, c.dry_run, c.seed = v4_bits, v6_bits, bool(dry_run), seed
            exempt = list(exempt)
            for i, net in enumerate(exempt):
                c.ex_family[i], c.ex_bits[i] = net.version, net.prefixlen
                for j, byte in enumerate(net.network_address.packed):
                    c.ex_addr[i][j] = byte
            c.nexempt = len(exempt)
            self._out = _ffi.new("uint8_t[]", DGRAM_MAX)

        def check(self, sa: bytes, now_ms: int) -> int:
            sa = bytes(sa).ljust(28, b"\0")
            return _lib.kn_rl_check(self.c, sa, now_ms & _U32_MAX)

        def tc(self, query: bytes) -> bytes | None:
            query = bytes(query)
            n = _lib.kn_rl_tc(query, len(query), self._out, DGRAM_MAX)
            return _ffi.buffer(self._out, n)[:] if n > 0 else None

        def counts(self) -> tuple[int, int, int]:
            """(limited, TC answers sent, dropped) in this process."""
            c = self.c
            return c.nlimited, c.ntc, c.ndrop

        def count(self, tc: bool) -> None:
            """A limited datagram handled outside kn_udp_batch: TC sent, or dropped."""
            if tc:
                self.c.ntc += 1
            else:
                self.c.ndrop += 1

    assert (_lib.KN_RL_PASS, _lib.KN_RL_TC, _lib.KN_RL_DROP, _lib.KN_RL_EXEMPT_MAX,
            _lib.KN_RL_INSTANT_MAX) == (RL_PASS, RL_TC, RL_DROP, RL_EXEMPT_MAX, RL_INSTANT_MAX)
    assert (_lib.KN_PC_ANSWER_MAX, _lib.KN_DGRAM_MAX, _lib.KN_BATCH_MAX, _lib.KN_NETS_MAX) == (
        PC_ANSWER_MAX, DGRAM_MAX, BATCH_MAX, NETS_MAX)

else:
    BACKEND = "pure"
    from native.pure import (  # noqa: F401  (re-export)
        PacketCache,
        RateLimit,
        UdpBatch,
        answer,
        cache_key,
        parse_query,
        rank_is_answer,
    )

from native.pure import REPLY_MAX, REPLY_RRSET_TYPES  # noqa: E402

if BACKEND == "c":
    assert _lib.KN_REPLY_MAX == REPLY_MAX
    _reply = _ffi.new("struct kn_reply *")

    def reply_rrset(raw: bytes, qid: int, qname: bytes, qtype: int, min_ttl: int, max_ttl: int,
                    sigs: bool = False) -> tuple[int, tuple[bytes, ...], tuple] | None:
        """The plainest upstream answer's (TTL, rdata wires, ((TTL, RRSIG rdata), ...))
        or None (kn_reply_rrset; twin: native.pure.reply_rrset)."""
        n = REPLY_RRSET_TYPES.get(qtype)
        if n is None or not 0 <= qid <= 0xFFFF:
            return None
        if type(raw) is not bytes:
            raw = bytes(raw)
        out = _reply
        if _lib.kn_reply_rrset(raw, len(raw), qid, qname, len(qname), qtype,
                               min(max(min_ttl, 0), _U32_MAX), min(max(max_ttl, 0), _U32_MAX),
                               1 if sigs else 0, out) != 0:
            return None
        rdatas = tuple([raw[o:o + n] for o in out.rd_off[0:out.nrd]])
        if not out.nsig:
            return out.ttl, rdatas, ()
        rrsigs = tuple([(out.sig_ttl[i], raw[out.sig_off[i]:out.sig_off[i] + out.sig_len[i]])
                        for i in range(out.nsig)])
        return out.ttl, rdatas, rrsigs
else:
    from native.pure import reply_rrset  # noqa: F401

__all__ = [
    "REPLY_RRSET_TYPES",
    "reply_rrset",
    "ANSWER_BUFSIZE",
    "BACKEND",
    "BATCH_MAX",
    "BatchCounts",
    "DGRAM_MAX",
    "Kind",
    "NETS_MAX",
    "PC_ANSWER_MAX",
    "PacketCache",
    "RateLimit",
    "RL_DROP",
    "RL_PASS",
    "RL_TC",
    "UdpBatch",
    "sockaddr",
    "Code",
    "Header",
    "KEY_BUFSIZE",
    "MAX_KEY_LEN",
    "OptFlag",
    "ParseError",
    "ParsedQuery",
    "QNAME_MAX",
    "answer",
    "cache_key",
    "parse_query",
    "rank_is_answer",
]
