"""What the resolver knows about one upstream IP, and how each outcome changes it.

Owns: `RttState` (smoothed RTT and its variance, consecutive timeouts, the
penalty of recent errors, dead-until, capability flags, created/updated
times) and the pure functions that update it, after kresd lib/selection.c:
  - `add_rtt`: RFC 6298 sec. 2 smoothing (srtt += (rtt - srtt)/8, var +=
    (|srtt - rtt| - var)/4; the first sample sets srtt = rtt, var = rtt/2);
    a reply ends a run of timeouts and halves the penalty (a dead server
    that answers keeps at most one timeout's penalty);
  - `add_timeout`: one more consecutive timeout (exponential back-off of the
    retransmission timeout); after DEAD_ROW of them the server is dead until
    a back-off interval has passed (kresd KR_NS_TIMEOUT_ROW_DEAD);
  - `add_error`: every other selection error (REFUSED, SERVFAIL, FORMERR,
    lame, bad reply...) adds to the penalty;
  - `timeout`: srtt + max(4 var, 20 ms), doubled per consecutive timeout
    (at most MAX_BACKOFF times), kept within [MIN_TIMEOUT, MAX_TIMEOUT]
    (kresd calc_timeout / back_off_timeout);
  - `score`: what the choice compares, srtt + the penalty, which decays with
    time (half-life PENALTY_HALF_LIFE) and halves with every reply, so a
    server hit by a transient loss earns its place back gradually.
An entry older than RESET_AGE (since it was created) counts as unknown: the
periodic reset of RTT and capability state that BIND and Unbound do.
All times are seconds of the monotonic clock (system-wide on Linux, so
shared by forks and restarts; a time in the future means the clock was
reset, e.g. a reboot, and the entry counts as unknown too). RTTs are ms.
Must not: know where the state is stored (workers/selection/table.py) or how
servers are chosen (workers/selection/iterate.py).
"""
from __future__ import annotations

from dataclasses import dataclass, replace

MIN_ADDITION = 20.0  # ms: least margin over srtt (kresd MINIMAL_TIMEOUT_ADDITION)
MIN_TIMEOUT = 0.2  # s: floor of the retransmission timeout: what a busy worker measures includes
#   its own event-loop latency, and a flood must not make it time out servers that did answer
MAX_TIMEOUT = 10.0  # s: cap of the retransmission timeout (kresd MAX_TIMEOUT)
MAX_BACKOFF = 5  # doublings of the timeout at most (kresd MAX_BACKOFF)
DEAD_ROW = 4  # consecutive timeouts that make a server dead (kresd KR_NS_TIMEOUT_ROW_DEAD)
DEAD_RETRY = 1.0  # s: first dead interval; doubled per further timeout
DEAD_RETRY_MAX = 60.0  # s
TIMEOUT_PENALTY = 100.0  # ms added to the score per timeout
ERROR_PENALTY = 50.0  # ms added per other selection error
MAX_PENALTY = 400.0  # ms
PENALTY_HALF_LIFE = 3.0  # s
RESET_AGE = 20 * 60.0  # s: entries older than this are unknown (BIND/Unbound: 15-30 min)
MAX_RTT = 60_000.0  # ms: larger stored values are garbage
MAX_TIMEOUTS = 10_000
MAX_TIME = 1e12  # s: larger stored times are garbage

# flags
HAVE_RTT = 1  # srtt/var hold a measurement
NO_EDNS = 2  # the server rejects EDNS (FORMERR/NOTIMP to an EDNS query)
TCP_ONLY = 4  # the server must be asked over TCP (it truncates every UDP answer)
ALL_FLAGS = HAVE_RTT | NO_EDNS | TCP_ONLY


@dataclass(frozen=True)
class RttState:
    srtt: float = 0.0  # ms
    var: float = 0.0  # ms
    penalty: float = 0.0  # ms, as of `updated`
    timeouts: int = 0  # consecutive
    flags: int = 0
    created: float = 0.0  # s, monotonic
    updated: float = 0.0  # s, monotonic
    dead_until: float = 0.0  # s, monotonic; meaningful when timeouts >= DEAD_ROW

    @property
    def known(self) -> bool:
        """kresd !no_rtt_info(): a reply or a timeout was seen."""
        return bool(self.flags & HAVE_RTT) or self.timeouts > 0

    @property
    def no_edns(self) -> bool:
        return bool(self.flags & NO_EDNS)

    @property
    def tcp_only(self) -> bool:
        return bool(self.flags & TCP_ONLY)

    @property
    def dead(self) -> bool:
        """Enough timeouts in a row to skip the server (until it is probed)."""
        return self.timeouts >= DEAD_ROW

    def valid(self) -> bool:
        """Plausible values (what a corrupt or foreign record fails; NaN fails
        every comparison, infinities the upper bounds)."""
        return (0.0 <= self.srtt <= MAX_RTT and 0.0 <= self.var <= MAX_RTT
                and 0.0 <= self.penalty <= MAX_PENALTY and 0.0 <= self.created <= self.updated <= MAX_TIME
                and 0.0 <= self.dead_until <= MAX_TIME and 0 <= self.timeouts <= MAX_TIMEOUTS
                and not self.flags & ~ALL_FLAGS)


UNKNOWN = RttState()


def current(st: RttState | None, now: float) -> RttState:
    """st as it counts at `now`: unknown when absent, implausible, reset by age
    or from the future (the clock restarted)."""
    if st is None or not st.valid() or st.updated > now + 1.0 or now - st.created > RESET_AGE:
        return UNKNOWN
    return st


def _fresh(st: RttState, now: float) -> RttState:
    """st, or a new entry created now."""
    return st if st.created or st != UNKNOWN else RttState(created=now)


def penalty_at(st: RttState, now: float) -> float:
    """The penalty decayed to `now`."""
    if st.penalty <= 0.0:
        return 0.0
    return st.penalty * 0.5 ** (max(0.0, now - st.updated) / PENALTY_HALF_LIFE)


def add_rtt(st: RttState, rtt_ms: float, now: float) -> RttState:
    """A reply after rtt_ms (RFC 6298 sec. 2, kresd calc_rtt_state)."""
    rtt_ms = min(max(rtt_ms, 0.0), MAX_RTT)
    st = _fresh(st, now)
    if not st.flags & HAVE_RTT:
        srtt, var = rtt_ms, rtt_ms / 2
    else:
        var = 0.75 * st.var + 0.25 * abs(st.srtt - rtt_ms)
        srtt = 0.875 * st.srtt + 0.125 * rtt_ms
    penalty = penalty_at(st, now) * 0.5
    if st.dead:  # back from the dead: on probation, as after one timeout
        penalty = min(penalty, TIMEOUT_PENALTY)
    # (the constructor, not dataclasses.replace: this runs for every reply)
    return RttState(srtt=srtt, var=var, penalty=penalty, timeouts=0, flags=st.flags | HAVE_RTT,
                    created=st.created, updated=now, dead_until=0.0)


def dead_interval(timeouts: int) -> float:
    return min(DEAD_RETRY_MAX, DEAD_RETRY * 2.0 ** min(max(timeouts - DEAD_ROW, 0), 16))


def add_timeout(st: RttState, now: float) -> RttState:
    """No reply in time: one more consecutive timeout (kresd cache_timeout)."""
    st = _fresh(st, now)
    timeouts = min(st.timeouts + 1, MAX_TIMEOUTS)
    dead_until = now + dead_interval(timeouts) if timeouts >= DEAD_ROW else 0.0
    return replace(st, timeouts=timeouts, penalty=min(MAX_PENALTY, penalty_at(st, now) + TIMEOUT_PENALTY),
                   updated=now, dead_until=dead_until)


def add_error(st: RttState, now: float, weight: float = ERROR_PENALTY) -> RttState:
    """A reply that was of no use (REFUSED, SERVFAIL, FORMERR, lame, malformed...)."""
    st = _fresh(st, now)
    return replace(st, penalty=min(MAX_PENALTY, penalty_at(st, now) + weight), updated=now)


def set_flags(st: RttState, flags: int, now: float) -> RttState:
    st = _fresh(st, now)
    return replace(st, flags=st.flags | flags, updated=max(st.updated, now))


def backoff(seconds: float, timeouts: int) -> float:
    return min(MAX_TIMEOUT, seconds * 2.0 ** min(max(timeouts, 0), MAX_BACKOFF))


def timeout(st: RttState, default: float) -> float:
    """Seconds to wait for a reply (kresd calc_timeout); `default` for a server
    never measured (backed off by its timeouts, as kresd does for unknown ones)."""
    if not st.flags & HAVE_RTT:
        return max(MIN_TIMEOUT, backoff(default, st.timeouts))
    base = (st.srtt + max(4.0 * st.var, MIN_ADDITION)) / 1000.0
    return max(MIN_TIMEOUT, backoff(base, st.timeouts))


def score(st: RttState, now: float, default_ms: float) -> float:
    """Lower is better: srtt (or default_ms, never measured) + the decayed penalty."""
    base = st.srtt if st.flags & HAVE_RTT else default_ms
    return base + penalty_at(st, now)
