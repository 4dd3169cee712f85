"""Server selection for iteration: which address of a zone cut to ask next.

Owns: `Selection`, the choice among candidate addresses (kresd
lib/selection.c select_transport, see the class docstring) over the per-IP
state of workers/selection/rtt.py kept in a workers/selection/table.py
Table (shared by the forks and restarts of a rundir once attached): smoothed
RTT, penalties for every error, back-off and dead servers, capabilities (no
EDNS, TCP only); and the per-query state of kresd's lib/selection.c
(`QuerySelection`: errors counted against each address for this query,
addresses found broken or exhausted, the query's NO_MINIMIZE retry flag).
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

from . import rtt
from .rtt import RttState
from .table import Table, addr_of, key_of

UNKNOWN_RTT = 400.0  # ms: the score of a server we have not heard from


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
    """The worker's view of every upstream address (kresd kr_server_selection
    with its rtt_state in the cache): RttState records in a Table, per
    address (IP and port), shared by all zones served from that address and,
    once `attach()`ed to the file next to the cache, by all forks and
    restarts of the rundir.

    choose() among the usable candidates of the query with the fewest errors:
      1. an unknown server first (kresd: no RTT info sorts first);
      2. dead servers (DEAD_ROW timeouts in a row) are skipped; when all
         are dead, the first to come back is let through once its dead
         interval is over, as kresd does, and before that none is asked while
         a prober re-asks them in the background (`probing`);
      3. with probability EPSILON, explore: the least recently updated of the
         others (a penalised server earns its place back gradually);
      4. else the best score (srtt + decayed penalty), except that half of
         these picks go to another server within SPREAD_MS of it (spreading
         the load over servers of similar speed).
    """

    EPSILON = 0.05  # kresd EPSILON_NOMIN / EPSILON_DENOM
    SPREAD_MS = 20.0
    UNKNOWN_MS = UNKNOWN_RTT

    def __init__(self, clock_monotonic: Callable[[], float], rng: random.Random,
                 table: Table | None = None):
        self._now = clock_monotonic
        self._rng = rng
        self.table = table if table is not None else Table(slots=1024)
        self.probing = False  # a Prober re-asks dead servers (workers/selection/prober.py)
        self.dead_seen: set[str] = set()  # addresses this worker saw dead (the prober's list)
        self.unanswered: dict = {}  # address -> the last (qname, qtype) it did not answer

    def attach(self, table: Table) -> None:
        """Use `table` (the shared file) from now on."""
        old, self.table = self.table, table
        if old is not table and old.path is None:
            old.close()

    # -- state --------------------------------------------------------------------
    def state(self, addr: str) -> RttState:
        """What is known about addr now (unknown: an all-zero RttState)."""
        return rtt.current(self.table.get(key_of(addr)), self._now())

    def _update(self, addr: str, fn, *args) -> RttState:
        now = self._now()
        key = key_of(addr)
        slot, old = self.table.find(key)
        st = fn(rtt.current(old, now), *args, now)
        self.table.put(key, st, slot)
        return st

    def is_dead(self, st: RttState, now: float) -> bool:
        if not st.dead:
            return False
        return self.probing or now < st.dead_until

    # -- the choice ---------------------------------------------------------------
    def choose(self, candidates: Iterable[str], query: QuerySelection) -> str | None:
        """The address to ask, or None if none is usable for this query."""
        now = self._now()
        usable = [(a, self.state(a)) for a in candidates if query.usable(a)]
        if not usable:
            return None
        alive = [(a, st) for a, st in usable if not self.is_dead(st, now)]
        if not alive:
            for a, _ in usable:
                self.dead_seen.add(a)
            first = min(usable, key=lambda x: (query.errors(x[0]), x[1].dead_until))
            if self.probing and first[1].dead_until > now:
                return None  # the prober asks them again, off the clients' path
            # the one that comes back first, let through once its dead interval
            # is over (kresd), or at once when no prober runs
            return first[0]
        if len(alive) == 1:
            return alive[0][0]  # (the one candidate: nothing to weigh)
        least = min(query.errors(a) for a, _ in alive)
        tier = [(a, st) for a, st in alive if query.errors(a) == least]
        unknown = [a for a, st in tier if not st.known]
        if unknown:
            return self._rng.choice(unknown)
        scored = sorted(((rtt.score(st, now, self.UNKNOWN_MS), self._rng.random(), a, st)
                         for a, st in tier))
        best_score, _, best, _ = scored[0]
        others = scored[1:]
        if not others:
            return best
        if self._rng.random() < self.EPSILON:  # explore the stalest of the others
            stalest = min(st.updated for _, _, _, st in others)
            return self._rng.choice([a for _, _, a, st in others if st.updated == stalest])
        near = [a for sc, _, a, _ in others if sc <= best_score + self.SPREAD_MS]
        if near and self._rng.random() < 0.5:
            return self._rng.choice(near)
        return best

    def timeout(self, addr: str, default: float, st: RttState | None = None) -> float:
        """Seconds to wait for addr's reply (the retransmission timeout); `st`:
        its state as the caller just read it (state(addr)), if it has it."""
        return rtt.timeout(self.state(addr) if st is None else st, default)

    # -- outcomes -----------------------------------------------------------------
    def report_rtt(self, addr: str, rtt_s: float) -> None:
        """A reply came from addr after rtt_s seconds."""
        self._update(addr, rtt.add_rtt, rtt_s * 1000.0)
        self.dead_seen.discard(addr)

    def report_error(self, addr: str, err: SelectionError, query: QuerySelection, *,
                     minimized: bool = True, edns: bool = True, question=None) -> None:
        """An exchange with addr failed: count it for this query, and penalise
        the address for everyone (a timeout also backs it off). `question`
        (qname, qtype) of a timeout is what the prober re-asks if addr dies."""
        query.error(addr, err, minimized=minimized, edns=edns)
        if err is SelectionError.OK:
            return
        if err in EXHAUSTING:
            if question is not None:
                if len(self.unanswered) > 4096:
                    self.unanswered.clear()
                self.unanswered[addr] = question
            self.report_timeout(addr)
        else:
            self._update(addr, rtt.add_error)

    def report_timeout(self, addr: str) -> None:
        """No reply from addr in time (also the prober's failed probes)."""
        st = self._update(addr, rtt.add_timeout)
        if st.dead:
            self.dead_seen.add(addr)

    def set_no_edns(self, addr: str) -> None:
        self._update(addr, lambda st, flags, now: rtt.set_flags(st, flags, now), rtt.NO_EDNS)

    def set_tcp_only(self, addr: str) -> None:
        self._update(addr, lambda st, flags, now: rtt.set_flags(st, flags, now), rtt.TCP_ONLY)

    # -- introspection (upstreams.show / reset) -------------------------------------
    def show(self) -> dict[str, dict]:
        """Every known address: srtt, var, timeout, timeouts, dead, no_edns, tcp_only, age."""
        now = self._now()
        out = {}
        for key, raw in self.table.items():
            addr = addr_of(key)
            st = rtt.current(raw, now)
            if addr is None or st is rtt.UNKNOWN:
                continue
            out[addr] = {"srtt": round(st.srtt, 1), "var": round(st.var, 1),
                         "timeout": round(rtt.timeout(st, 0.8) * 1000.0, 1),
                         "penalty": round(rtt.penalty_at(st, now), 1),
                         "timeouts": st.timeouts, "dead": self.is_dead(st, now),
                         "no_edns": st.no_edns, "tcp_only": st.tcp_only,
                         "age": round(now - st.updated, 1)}
        return out

    def reset(self, addr: str | None = None) -> None:
        """Forget addr (every address when None)."""
        if addr is None:
            self.table.clear()
            self.dead_seen.clear()
        else:
            self.table.delete(key_of(addr))
            self.dead_seen.discard(addr)
