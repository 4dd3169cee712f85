"""The scripted upstream servers' logic, shared by the in-process and binary runners.

Owns: which entry answers an upstream query (README "Upstream queries"),
ADJUST through match.make_reply, one-shot REPLY steps, MANDATORY bookkeeping,
the per-step query count, the record of unanswerable queries and the trace.
Must not: open sockets, read or advance clocks, or know how the query arrived
(replay.FakeNetwork feeds it from the sans-I/O transport, netservers.py from
real UDP/TCP sockets in a network namespace).

Answering rule: the first matching entry of a range eligible at the current
step (step inside the range, and the address among its ADDRESSes; a query to
an address no range names may be answered by any range); else a pending REPLY
step (id >= current step) that matches, used once; else SERVFAIL, and the
scenario fails with "the scenario does not define all necessary answers".

Thread-safe: the binary runner's server thread calls `answer()` while the
player thread calls `begin_step()`.
"""
from __future__ import annotations

import ipaddress
import threading
from dataclasses import dataclass
from typing import Optional

import dns.exception
import dns.message
import dns.rdatatype

from . import match
from .rpl import Scenario, Step

MAX_SENDS_PER_QUERY = 2000  # hard cap per step: a looping resolver fails, not hangs


def ip_key(text: str):
    try:
        return ipaddress.ip_address(text)
    except ValueError:
        return text


def describe_query(query: dns.message.Message) -> str:
    if not query.question:
        return "<no question>"
    q = query.question[0]
    return f"{q.name} {dns.rdatatype.to_text(q.rdtype)}"


@dataclass
class Exchange:
    """One upstream query as the scripted servers saw it (for traces)."""

    step: int
    addr: str
    tcp: bool
    query: str
    outcome: str

    def to_dict(self) -> dict:
        return dict(step=self.step, addr=self.addr, tcp=self.tcp, query=self.query, outcome=self.outcome)


@dataclass
class Reply:
    """What the server does with one query: send `wire` (bytes) or nothing (None)."""

    wire: Optional[bytes]
    undefined: bool = False  # nobody defined an answer: SERVFAIL sent


class Responder:
    """The scripted servers of one scenario run."""

    def __init__(self, scn: Scenario):
        self.scn = scn
        self.step_id = 0
        self.sends_in_step = 0
        self.over_limit = False
        self.fired: dict[int, int] = {}  # id(entry) -> times used
        self.used_replies: set[int] = set()  # id(step) of consumed REPLY steps
        self.undefined: list[str] = []  # queries nobody answered
        self.errors: list[str] = []  # resolver misbehaviour seen on the wire
        self.trace: list[Exchange] = []
        self.known = {ip_key(a) for r in scn.ranges for a in r.addresses}
        self.lock = threading.RLock()

    def addresses(self) -> list:
        """Every ADDRESS of the scenario, in order of appearance, without duplicates."""
        seen = []
        for rng in self.scn.ranges:
            for addr in rng.addresses:
                if addr not in seen:
                    seen.append(addr)
        return seen

    def begin_step(self, step: Step) -> None:
        with self.lock:
            self.step_id, self.sends_in_step = step.id, 0

    def count_send(self) -> bool:
        """Count one upstream query; False once the per-step cap is exceeded."""
        with self.lock:
            self.sends_in_step += 1
            if self.sends_in_step > MAX_SENDS_PER_QUERY:
                self.over_limit = True
                return False
            return True

    # -- answering --------------------------------------------------------

    def eligible_ranges(self, addr: str) -> list:
        ip = ip_key(addr)
        anywhere = ip not in self.known
        return [r for r in self.scn.ranges if r.covers(self.step_id)
                and (anywhere or not r.addresses or ip in {ip_key(a) for a in r.addresses})]

    def find_entry(self, query: dns.message.Message, addr: str) -> tuple:
        """(entry, where) answering `query` sent to `addr`, or (None, None)."""
        for rng in self.eligible_ranges(addr):
            for entry in rng.entries:
                if match.matches(entry, query):
                    return entry, f"range {rng.first}-{rng.last} line {entry.line}"
        for step in self.scn.steps:
            if (step.type == "REPLY" and step.id >= self.step_id
                    and id(step) not in self.used_replies and match.matches(step.entry, query)):
                self.used_replies.add(id(step))
                return step.entry, f"REPLY step {step.id}"
        return None, None

    def answer(self, wire: bytes, addr: str, tcp: bool) -> Reply:
        """The reply to `wire` sent to `addr`:53 over UDP or TCP."""
        with self.lock:
            try:
                query = dns.message.from_wire(wire)
            except dns.exception.DNSException as exc:
                self.errors.append(f"step {self.step_id}: unparseable query to {addr} ({exc})")
                return Reply(None)
            entry, where = self.find_entry(query, addr)
            text = describe_query(query)
            if entry is None:
                self.undefined.append(f"step {self.step_id}: {text} to {addr} over {'tcp' if tcp else 'udp'}")
                self.log(addr, tcp, text, "SERVFAIL (undefined)")
                return Reply(match.servfail_reply(query), undefined=True)
            self.fired[id(entry)] = self.fired.get(id(entry), 0) + 1
            reply = match.make_reply(entry, query)
            self.log(addr, tcp, text, f"answered by {where}" if reply is not None else f"no answer ({where})")
            return Reply(reply)

    def log(self, addr: str, tcp: bool, text: str, outcome: str) -> None:
        with self.lock:
            self.trace.append(Exchange(self.step_id, addr, tcp, text, outcome))

    def unfired_mandatory(self) -> list:
        return [e for r in self.scn.ranges for e in r.entries
                if e.mandatory and not self.fired.get(id(e))]

    def reasons(self, failure: Optional[str]) -> list:
        """Why the run failed (empty list: it passed)."""
        reasons = []
        with self.lock:
            if self.undefined:
                more = f" (+{len(self.undefined) - 1} more)" if len(self.undefined) > 1 else ""
                reasons.append("the scenario does not define all necessary answers: "
                               f"{self.undefined[0]}{more}")
            reasons.extend(self.errors[:1])
            if self.over_limit and failure is None:
                reasons.append(f"more than {MAX_SENDS_PER_QUERY} upstream queries in one step (resolver loop?)")
            if failure:
                reasons.append(failure)
            if failure is None:
                for entry in self.unfired_mandatory():
                    reasons.append(f"MANDATORY {entry.describe()} was never used")
        return reasons
