"""Server selection for iteration: which address of a zone cut to ask next.

Owns: per-address state shared by all requests of a worker (smoothed RTT,
consecutive timeouts with exponential back-off, servers that reject EDNS) and
the choice among candidate addresses (kresd lib/selection_iter.c, simplified):
fastest known server first, unknown servers explored, timed-out servers
avoided while their back-off lasts, random order among equals.
Must not: send anything or know about packets beyond the outcome enums.
"""
from __future__ import annotations

import enum
import ipaddress
import random
from dataclasses import dataclass
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


@dataclass
class AddrState:
    srtt: float | None = None
    timeouts: int = 0
    blocked_until: float = 0.0
    no_edns: bool = False


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

    def choose(self, candidates: Iterable[str], exclude: set[str]) -> str | None:
        """The best address to ask, or None if all were excluded."""
        now = self._now()
        best = None
        best_score = None
        for addr in candidates:
            if addr in exclude:
                continue
            st = self._state.get(addr)
            score = UNKNOWN_RTT if st is None or st.srtt is None else st.srtt
            if st is not None and st.blocked_until > now:
                score += 10_000.0 * st.timeouts
            score *= 1.0 + 0.3 * self._rng.random()
            if best_score is None or score < best_score:
                best, best_score = addr, score
        return best

    def report_rtt(self, addr: str, rtt: float) -> None:
        st = self.state(addr)
        ms = rtt * 1000.0
        st.srtt = ms if st.srtt is None else (1 - ALPHA) * st.srtt + ALPHA * ms
        st.timeouts = 0
        st.blocked_until = 0.0

    def report_error(self, addr: str, err: SelectionError) -> None:
        st = self.state(addr)
        if err == SelectionError.TIMEOUT:
            st.timeouts += 1
            st.blocked_until = self._now() + min(MAX_BACKOFF, 0.5 * 2 ** min(st.timeouts, 8))

    def set_no_edns(self, addr: str) -> None:
        self.state(addr).no_edns = True
