"""Server selection for iteration: which address of a zone cut to ask next.

Owns: per-address state shared by all requests of a worker (smoothed RTT,
consecutive timeouts with exponential back-off, servers that reject EDNS);
the per-query state of kresd's lib/selection.c (`QuerySelection`: errors
counted against each address for this query, addresses found broken, the
query's NO_MINIMIZE retry flag); and the choice among candidate
addresses (kresd lib/selection_iter.c, simplified): broken and exhausted
addresses excluded, fewer errors first, then the fastest known server,
unknown servers explored, timed-out servers avoided while their back-off
lasts, random order among equals.
Must not: send anything or know about packets beyond the outcome enums.

What an error does to the address, for this query (kresd selection.c error()):
  TIMEOUT, TCP_CONNECT_FAILED   exhausted at this zone cut (and the shared
                                back-off of the worker-wide state)
  FORMERR                       broken if the question carried no EDNS (to an
                                EDNS one the server is asked again without it)
  REFUSED, SERVFAIL, LAME       the first time: the query stops minimising
                                (NO_MINIMIZE) and the address may be asked
                                again with the full name, after the others;
                                broken once NO_MINIMIZE is on (or the query
                                was not minimised anyway: asking again would
                                send the same question)
  NOTIMPL, OTHER_RCODE, BAD_CNAME, MALFORMED, MISMATCHED, TRUNCATED (over TCP),
  DNSSEC_ERROR (bogus data)
                                broken: never asked again by this query
Every error also counts (`errors`); choices prefer fewer errors. The state
lives as long as one query (one `Resolver._iterate`): it survives referrals
and the parent-side fallback, so a server found broken at one zone cut is not
asked again deeper down.
"""
from __future__ import annotations

import enum
import ipaddress
import random
from dataclasses import dataclass, field
from typing import Callable, Iterable

UNKNOWN_RTT = 400.0  # ms: the score of a server we have not heard from
MAX_BACKOFF = 30.0  # seconds
ALPHA = 0.3


class SelectionError(enum.Enum):
    """Why a server did not give a usable reply (kresd enum kr_selection_error)."""

    OK = 0
    TIMEOUT = 1
    TCP_CONNECT_FAILED = 2
    REFUSED = 3
    SERVFAIL = 4
    FORMERR = 5
    NOTIMPL = 6
    LAME = 7
    MALFORMED = 8
    MISMATCHED = 9
    TRUNCATED = 10
    BAD_CNAME = 11
    OTHER_RCODE = 12
    DNSSEC_ERROR = 13  # the reply failed validation (kresd KR_SELECTION_DNSSEC_ERROR)


#: errors after which the address is never asked again by this query
FATAL = frozenset({SelectionError.NOTIMPL, SelectionError.OTHER_RCODE, SelectionError.BAD_CNAME,
                   SelectionError.MALFORMED, SelectionError.MISMATCHED, SelectionError.TRUNCATED,
                   SelectionError.DNSSEC_ERROR})
#: errors that first turn minimisation off, then break the address
RETRY_FULL_NAME = frozenset({SelectionError.REFUSED, SelectionError.SERVFAIL, SelectionError.LAME})
#: errors that end the address's use at the current zone cut
EXHAUSTING = frozenset({SelectionError.TIMEOUT, SelectionError.TCP_CONNECT_FAILED})


@dataclass
class AddrState:
    srtt: float | None = None
    timeouts: int = 0
    blocked_until: float = 0.0
    no_edns: bool = False


@dataclass
class AddrLocal:
    """What one query learnt about one address (kresd struct address_state)."""

    errors: dict = field(default_factory=dict)  # SelectionError -> count
    error_count: int = 0
    broken: bool = False


class QuerySelection:
    """Per-query selection state (kresd kr_server_selection.local_state)."""

    def __init__(self, no_minimize: bool = False):
        self.addrs: dict[str, AddrLocal] = {}
        self.exhausted: set[str] = set()  # this zone cut only (timeouts)
        self.no_minimize = no_minimize
        self.last_error: SelectionError | None = None

    def local(self, addr: str) -> AddrLocal:
        st = self.addrs.get(addr)
        if st is None:
            st = self.addrs[addr] = AddrLocal()
        return st

    def usable(self, addr: str) -> bool:
        st = self.addrs.get(addr)
        return addr not in self.exhausted and (st is None or not st.broken)

    def errors(self, addr: str) -> int:
        st = self.addrs.get(addr)
        return 0 if st is None else st.error_count

    def only_timeouts(self) -> bool:
        """Every failure so far was a timeout (or a failed TCP connect)."""
        return all(err in EXHAUSTING for st in self.addrs.values() for err in st.errors)

    def new_cut(self) -> None:
        """The zone cut changed: timed-out addresses may be tried there."""
        self.exhausted.clear()

    def error(self, addr: str, err: SelectionError, *, minimized: bool = True,
              edns: bool = True) -> None:
        """Count `err` against addr for this query (see the module docstring).
        `minimized`: the failed question was a minimised one; `edns`: it
        carried EDNS."""
        if err is SelectionError.OK:
            return
        st = self.local(addr)
        st.errors[err] = st.errors.get(err, 0) + 1
        st.error_count += 1
        self.last_error = err
        if err in EXHAUSTING:
            self.exhausted.add(addr)
        elif err in FATAL:
            st.broken = True
        elif err is SelectionError.FORMERR:
            # to an EDNS question: the caller asks again without EDNS (and
            # remembers that per address, Selection.set_no_edns); without: broken
            if not edns:
                st.broken = True
        elif err in RETRY_FULL_NAME:
            if self.no_minimize or not minimized:
                st.broken = True
            else:
                self.no_minimize = True


def is_local_addr(addr: str) -> bool:
    """Addresses kresd never queries without ALLOW_LOCAL (lib/zonecut.c is_valid_addr)."""
    try:
        ip = ipaddress.ip_address(addr)
    except ValueError:
        return True
    if ip.version == 4:
        return ip.is_loopback or int(ip) == 0
    return ip.is_loopback or ip.is_unspecified or (ip.ipv4_mapped is not None and is_local_addr(str(ip.ipv4_mapped)))


class Selection:
    def __init__(self, clock_monotonic: Callable[[], float], rng: random.Random):
        self._now = clock_monotonic
        self._rng = rng
        self._state: dict[str, AddrState] = {}

    def state(self, addr: str) -> AddrState:
        st = self._state.get(addr)
        if st is None:
            if len(self._state) > 100_000:
                self._state.clear()
            st = self._state[addr] = AddrState()
        return st

    def choose(self, candidates: Iterable[str], query: QuerySelection) -> str | None:
        """The best address to ask, or None if none is usable for this query:
        fewest errors for this query first, then the best score."""
        now = self._now()
        best = None
        best_key = None
        for addr in candidates:
            if not query.usable(addr):
                continue
            st = self._state.get(addr)
            score = UNKNOWN_RTT if st is None or st.srtt is None else st.srtt
            if st is not None and st.blocked_until > now:
                score += 10_000.0 * st.timeouts
            score *= 1.0 + 0.3 * self._rng.random()
            key = (query.errors(addr), score)
            if best_key is None or key < best_key:
                best, best_key = addr, key
        return best

    def timeout(self, addr: str, default: float) -> float:
        """Seconds to wait for addr's reply (the retransmission timeout)."""
        return default

    def report_rtt(self, addr: str, rtt: float) -> None:
        st = self.state(addr)
        ms = rtt * 1000.0
        st.srtt = ms if st.srtt is None else (1 - ALPHA) * st.srtt + ALPHA * ms
        st.timeouts = 0
        st.blocked_until = 0.0

    def report_error(self, addr: str, err: SelectionError, query: QuerySelection, *,
                     minimized: bool = True, edns: bool = True) -> None:
        """An exchange with addr failed: count it for this query; a timeout
        also backs the address off for every request of this worker."""
        query.error(addr, err, minimized=minimized, edns=edns)
        if err in EXHAUSTING:
            st = self.state(addr)
            st.timeouts += 1
            st.blocked_until = self._now() + min(MAX_BACKOFF, 0.5 * 2 ** min(st.timeouts, 8))

    def set_no_edns(self, addr: str) -> None:
        self.state(addr).no_edns = True
