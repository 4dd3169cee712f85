"""Request and query state, outcomes as enums, and answer construction.

Owns: `Request` (one client query in flight: limits, counters, the set of
sub-queries being resolved for cycle detection), `Options` (per-request query
flags), `EDE` codes, the client-side prechecks kresd does before any
resolution (EDNS version, opcode, header), what can be resolved at all (class
IN, no meta type) and building the final answer message.
Must not: do I/O, touch the cache or decide anything about upstream servers.
"""
from __future__ import annotations

import enum
from dataclasses import dataclass, field

import dns.edns
import dns.flags
import dns.message
import dns.name
import dns.opcode
import dns.rcode
import dns.rdataclass
import dns.rdatatype
import dns.rrset

from .dnssec import Status
from .selection.iterate import QuerySelection
from .settings import Settings
from .wire import opt_rrset


class EDE(enum.IntEnum):
    """Extended DNS Error codes (RFC 8914) used in SERVFAIL answers."""

    OTHER = 0
    STALE_ANSWER = 3
    DNSSEC_BOGUS = 6
    SIGNATURE_EXPIRED = 7
    SIGNATURE_NOT_YET_VALID = 8
    DNSKEY_MISSING = 9
    RRSIGS_MISSING = 10
    NO_ZONE_KEY_BIT = 11
    NSEC_MISSING = 12
    NOT_READY = 14
    PROHIBITED = 18
    NO_REACHABLE_AUTHORITY = 22
    NETWORK_ERROR = 23
    INVALID_DATA = 24


class Outcome(enum.Enum):
    """What a lookup for one (name, type) found."""

    ANSWER = "answer"  # data of the asked type at the name
    CNAME = "cname"  # the chain continues at `target`
    NXDOMAIN = "nxdomain"
    NODATA = "nodata"
    YXDOMAIN = "yxdomain"  # a DNAME substitution longer than 255 octets (RFC 6672 2.2)


@dataclass
class Result:
    outcome: Outcome
    answer: list[dns.rrset.RRset] = field(default_factory=list)  # chain + data, in order
    authority: list[dns.rrset.RRset] = field(default_factory=list)  # SOA for negative answers
    target: dns.name.Name | None = None  # next name of the CNAME chain
    aa: bool = False  # answer authoritatively (local data: hints NODATA)
    # DNSSEC status of everything in it (workers/dnssec Status; the validator
    # or the cache rank sets it; local data and unvalidated data: INDETERMINATE)
    status: Status = Status.INDETERMINATE
    expiring: bool = False  # from the cache, close to its expiry (kresd is_expiring; predict)


class ResolveFail(Exception):
    """Resolution failed; the client gets SERVFAIL with this EDE (None: no EDE, as kresd
    for a CNAME chain cut or looping) and `answer`, the part of the chain already
    followed (kresd keeps what it selected for the answer section)."""

    def __init__(self, msg: str, ede: EDE | None = EDE.OTHER, answer: list | None = None):
        super().__init__(msg)
        self.ede = ede
        self.answer = answer or []


@dataclass
class Options:
    """Per-request copies of kresd's query flags (lib/rplan.h kr_qflags), the
    ones modules may flip for one request (policy, view, workarounds)."""

    NO_MINIMIZE: bool = False
    ALLOW_LOCAL: bool = False
    NO_0X20: bool = False
    NO_EDNS: bool = False
    NO_CACHE: bool = False  # do not read the cache for this request (answers are still stashed, as kresd)
    NO_IPV4: bool = False
    NO_IPV6: bool = False
    DNS64_DISABLE: bool = False
    TRACE: bool = False  # DEBUG_ALWAYS: log this request's resolution

    @classmethod
    def from_settings(cls, s: Settings) -> "Options":
        return cls(NO_MINIMIZE=s.no_minimize, ALLOW_LOCAL=s.allow_local, NO_0X20=s.no_0x20,
                   NO_EDNS=s.no_edns, NO_IPV4=not s.ipv4, NO_IPV6=not s.ipv6)


@dataclass
class Forward:
    """policy.FORWARD / policy.STUB: ask these upstreams (RD=1) instead of iterating.

    FORWARD (stub=False) resolves through the forwarder: CNAME targets are
    asked again, answers are cached (and, with DNSSEC, validated).
    STUB (stub=True) takes the forwarder's answer as it comes
    (layers/iterate.py consume_stub): nothing is followed, stashed or
    validated.
    """

    targets: list  # [(addr, port)]
    stub: bool = False


@dataclass
class QSource:
    """Where the client query came from (kresd req.qsource)."""

    addr: str | None = None
    port: int = 0
    dst_addr: str | None = None
    dst_port: int = 0
    tcp: bool = False


@dataclass
class Request:
    """One client request in flight."""

    query: dns.message.Message
    client: tuple[str, int] | None
    tcp: bool
    started: float  # monotonic
    answer: dns.message.Message | None = None  # built at begin; layers may fill it
    options: Options = field(default_factory=Options)
    forward: Forward | None = None
    qsource: QSource = field(default_factory=QSource)
    vars: dict = field(default_factory=dict)  # per-request scratch space for modules
    drop: bool = False  # send no answer at all (policy.DROP / NO_ANSWER)
    state: int = 0  # last layer State
    cache_hits: int = 0  # (sub-)queries answered from the cache or local data
    cut_name: dns.name.Name | None = None  # zone cut of the last upstream query (req:resolved())
    upstream_queries: int = 0
    timeouts: dict = field(default_factory=dict)  # address -> timeouts in this request (all sub-queries)
    resolving: set = field(default_factory=set)  # (name, type) being resolved: cycle detection
    depth: int = 0
    uid: int = 0
    # Every address seen for a nameserver name during this request (parent glue
    # and child data): a server whose child-side address fails can still be
    # reached at its parent-side one.
    ns_addrs: dict = field(default_factory=dict)
    # DNSSEC outcome of the answer (workers/layers/validate.py fills them):
    # secure = every record of the answer was proven secure (AD is set when the
    # client sent DO or AD); bogus = (zone, reason, EDE) of the validation
    # failure that made the answer SERVFAIL (bogus_log reads it), else None.
    secure: bool = False
    bogus: tuple | None = None
    sig_checks: int = 0  # RRSIG verifications spent on this request (KeyTrap bound)
    # An upstream reply already received for this request's first question
    # (workers/fastmiss.py hands over a reply it does not answer from): the
    # first exchange that asks the same server the same question takes it
    # instead of sending (a workers.transport.Preset).
    preset: object = None

    def learn_addrs(self, ns, addrs) -> None:
        known = self.ns_addrs.setdefault(ns, [])
        for a in addrs:
            if a not in known:
                known.append(a)

    @property
    def qname(self) -> dns.name.Name:
        return self.query.question[0].name

    @property
    def cd(self) -> bool:
        """The client set CD: it gets data unvalidated (and no AD)."""
        return bool(int(self.query.flags) & 0x0010)  # dns.flags.CD

    @property
    def qtype(self) -> int:
        return self.query.question[0].rdtype


@dataclass
class Query:
    """One (sub-)query being iterated (kresd struct kr_query): what it asks,
    where it stands (zone cut with its DS/DNSKEY and trust state), its flags and
    its server-selection state. `state` names the step it is in, for the logs."""

    sname: dns.name.Name
    stype: int
    uid: int
    parent: "Query | None" = None
    cut: object = None  # workers.zonecut.ZoneCut (with ds, keys, trust)
    sel: QuerySelection = field(default_factory=QuerySelection)
    want: bool = False  # DNSSEC_WANT: a trust anchor covers it and the client did not set CD
    key_prime: bool = False  # the DNSKEY fetch of a zone's keys (validated against its DS)
    ns_tried: set = field(default_factory=set)  # NS names whose addresses were looked up
    ns_addr_lookups: int = 0  # NS address sub-queries since the last upstream query at this cut
    #   (kresd no_ns_addr_count; capped at NS_ADDR_LOOKUPS: the NXNSAttack mitigation)
    fell_back: set = field(default_factory=set)  # cut names already re-fetched from the parent
    last_bogus: object = None  # the last reply that failed validation (layers.validate.Bogus)
    state: str = "begin"

    def __str__(self) -> str:
        return f"{self.sname} {dns.rdatatype.to_text(self.stype)}"


# Types that are not data a resolver looks up (libknot knot_rrtype_is_metatype: SIG,
# OPT, TKEY, TSIG, IXFR, AXFR, ANY), and type 0. kresd 5.6 answers them SERVFAIL
# once the request is under way (after the begin layers: refuse_nord REFUSEs them
# first when RD=0); MAILA and MAILB are asked upstream like any type.
META_TYPES = frozenset({
    dns.rdatatype.NONE, dns.rdatatype.SIG, dns.rdatatype.OPT, dns.rdatatype.TKEY,
    dns.rdatatype.TSIG, dns.rdatatype.IXFR, dns.rdatatype.AXFR, dns.rdatatype.ANY,
})


def resolvable(question) -> bool:
    """Can the question (a dns.rrset.RRset of the question section) be resolved?
    Class IN only and no meta type, as kresd 5.6: anything else is SERVFAIL."""
    return question.rdclass == dns.rdataclass.IN and question.rdtype not in META_TYPES


def make_answer(query: dns.message.Message, settings: Settings) -> dns.message.Message:
    """An empty answer to `query`: id, question, QR RA, RD and CD copied, EDNS echoed."""
    ans = dns.message.Message(id=query.id)
    # QR RA, RD and CD copied, the opcode (ans.set_opcode(query.opcode())), in plain ints
    ans.flags = dns.flags.Flag(0x8080 | (int(query.flags) & (0x0100 | 0x0010 | 0x7800)))
    ans.question = list(query.question)
    if query.edns >= 0:  # = ans.use_edns(0, DO & query.ednsflags, bufsize)
        ans.opt = opt_rrset(settings.edns_bufsize, dns.flags.DO & query.ednsflags)
        ans.request_payload = settings.edns_bufsize
    return ans


def set_option(ans: dns.message.Message, code: int, data: bytes, payload: int = 1232) -> None:
    """Put EDNS option `code` with `data` in the answer's OPT (replacing one of
    that code; an OPT with `payload` is added when the answer has none)."""
    if ans.edns < 0:
        ans.use_edns(0, 0, payload)
    options = [o for o in ans.options if int(o.otype) != code]
    options.append(dns.edns.GenericOption(code, data))
    ans.use_edns(ans.edns, ans.ednsflags, ans.payload, options=options)


def set_ede(ans: dns.message.Message, code: EDE, text: str = "") -> None:
    if ans.edns >= 0:
        ans.use_edns(0, ans.ednsflags, ans.payload, options=[dns.edns.EDEOption(int(code), text or None)])


def precheck(query: dns.message.Message, settings: Settings) -> dns.message.Message | None:
    """Answer what kresd answers before resolving anything, or None to resolve."""
    if query.edns > 0:  # RFC 6891: unknown EDNS version
        ans = make_answer(query, settings)
        ans.use_edns(0, 0, settings.edns_bufsize)
        ans.set_rcode(dns.rcode.BADVERS)
        return ans
    if query.opcode() != dns.opcode.QUERY:
        ans = make_answer(query, settings)
        ans.set_rcode(dns.rcode.NOTIMP)
        return ans
    if len(query.question) != 1 or query.answer or query.authority:
        ans = make_answer(query, settings)
        if len(query.question) > 1:
            ans.question = []
        ans.set_rcode(dns.rcode.FORMERR)
        return ans
    if query.flags & dns.flags.QR:
        ans = make_answer(query, settings)
        ans.set_rcode(dns.rcode.FORMERR)
        return ans
    # Other classes and meta types are not refused here: kresd 5.6 lets the begin
    # layers see them (refuse_nord, policy) and fails them when resolving (resolvable()).
    return None
