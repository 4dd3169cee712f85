"""In-process scenario replay: fake network, fake clock, and the step player.

Owns: `FakeClock` (wall clock starting at the scenario's date and jumping at
TIME_PASSES; monotonic clock advancing only on simulated time), `FakeNetwork`
(the scripted upstream servers: which entry answers a query, ADJUST, one-shot
REPLY steps, MANDATORY bookkeeping, the per-step query cap) and
`run_scenario()` which plays the steps against a resolver and returns an
`Outcome` with a precise reason.
Must not: open sockets, sleep, read the real clock, or import the resolution
core at module import time (it is loaded lazily by `real_core()`, so the
harness works with fakes before/without the core).

Answering rule (README "Upstream queries"): the first matching entry of a
range eligible at the current step (step inside the range, and the address
among its ADDRESSes; a query to an address no range names may be answered by
any range); else a pending REPLY step (id >= current step) that matches,
used once; else SERVFAIL, and the scenario fails with "the scenario does not
define all necessary answers".
"""
from __future__ import annotations

import inspect
import ipaddress
import random
import tempfile
import traceback
from dataclasses import dataclass, field
from typing import Callable, Optional

import dns.exception
import dns.message
import dns.rdatatype

from . import config, match
from .rpl import Entry, Scenario, Step

MAX_SENDS_PER_QUERY = 2000  # hard cap per QUERY step: a looping resolver fails, not hangs
ANSWER_DELAY = 0.001  # simulated RTT of an answered upstream query (seconds)
CLIENT_PORT = 5353


class TransportLimit(Exception):
    """The resolver sent more than MAX_SENDS_PER_QUERY queries in one step."""


class CoreUnavailable(Exception):
    """workers.resolve / cache.api cannot be imported yet."""


# ---------------------------------------------------------------- clock

class FakeClock:
    """Wall clock = start + TIME_PASSES jumps + simulated elapsed time."""

    def __init__(self, start: float):
        self._wall_base = float(start)
        self._mono0 = self._mono = 10_000.0

    def time(self) -> float:
        return self._wall_base + (self._mono - self._mono0)

    def monotonic(self) -> float:
        return self._mono

    def advance(self, seconds: float) -> None:
        """Simulated time passes (timeouts, RTT): both clocks move."""
        self._mono += max(0.0, float(seconds))

    def jump(self, seconds: float) -> None:
        """TIME_PASSES ELAPSE: only the wall clock jumps (libfaketime file)."""
        self._wall_base += float(seconds)


# ---------------------------------------------------------------- network

def _ip(text: str):
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
    """One upstream query as the fake network saw it (for traces)."""

    step: int
    addr: str
    tcp: bool
    query: str
    outcome: str


class FakeNetwork:
    """The scripted servers of one scenario run; `transport` is drive_sync's callback."""

    def __init__(self, scn: Scenario, clock: FakeClock):
        self.scn, self.clock = scn, clock
        self.step_id = 0
        self.sends_in_step = 0
        self.fired: dict[int, int] = {}  # id(entry) -> times used
        self.used_replies: set[int] = set()  # id(step) of consumed REPLY steps
        self.undefined: list[str] = []  # queries nobody answered
        self.errors: list[str] = []  # resolver misbehaviour seen on the wire
        self.trace: list[Exchange] = []
        self.known = {_ip(a) for r in scn.ranges for a in r.addresses}

    def begin_step(self, step: Step) -> None:
        self.step_id, self.sends_in_step = step.id, 0

    # -- answering --------------------------------------------------------

    def eligible_ranges(self, addr: str) -> list:
        ip = _ip(addr)
        anywhere = ip not in self.known
        return [r for r in self.scn.ranges if r.covers(self.step_id)
                and (anywhere or not r.addresses or ip in {_ip(a) for a in r.addresses})]

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

    def transport(self, send) -> Optional[bytes]:
        self.sends_in_step += 1
        if self.sends_in_step > MAX_SENDS_PER_QUERY:
            raise TransportLimit(f"more than {MAX_SENDS_PER_QUERY} upstream queries in one step")
        proto = "tcp" if send.tcp else "udp"
        if send.port != 53:  # scripted servers listen on port 53 only: nothing answers
            self.trace.append(Exchange(self.step_id, f"{send.addr}#{send.port}", send.tcp,
                                       "?", "no server on this port (timeout)"))
            self.clock.advance(send.timeout)
            return None
        try:
            query = dns.message.from_wire(send.wire)
        except dns.exception.DNSException as exc:
            self.errors.append(f"step {self.step_id}: unparseable query to {send.addr} ({exc})")
            self.clock.advance(send.timeout)
            return None
        entry, where = self.find_entry(query, send.addr)
        return self._answer(send, query, entry, where, proto)

    def _answer(self, send, query, entry: Optional[Entry], where, proto) -> Optional[bytes]:
        text = describe_query(query)
        if entry is None:
            self.undefined.append(f"step {self.step_id}: {text} to {send.addr} over {proto}")
            self._log(send, text, "SERVFAIL (undefined)")
            self.clock.advance(ANSWER_DELAY)
            return match.servfail_reply(query)
        self.fired[id(entry)] = self.fired.get(id(entry), 0) + 1
        wire = match.make_reply(entry, query)
        if wire is None:
            self._log(send, text, f"no answer ({where})")
            self.clock.advance(send.timeout)
            return None
        self._log(send, text, f"answered by {where}")
        self.clock.advance(ANSWER_DELAY)
        return wire

    def _log(self, send, text: str, outcome: str) -> None:
        self.trace.append(Exchange(self.step_id, send.addr, send.tcp, text, outcome))

    def unfired_mandatory(self) -> list:
        return [e for r in self.scn.ranges for e in r.entries
                if e.mandatory and not self.fired.get(id(e))]


# ---------------------------------------------------------------- the core

@dataclass
class Core:
    """How to build a resolver and a cache; tests pass fakes, run.py the real core."""

    resolver_cls: object
    cache_cls: Optional[object]
    settings_cls: object
    # the server layer's client-side edges, when importable (workers/server.py):
    parse_query: Optional[Callable] = None  # wire -> (Message | None, action)
    render: Optional[Callable] = None  # (answer, query, settings, tcp) -> (wire, truncated)


def real_core() -> Core:
    try:
        from cache.api import Cache
        from workers.resolve import Resolver
        from workers.settings import Settings
    except ImportError as exc:
        raise CoreUnavailable(f"resolution core not importable: {exc}") from None
    try:  # what a UDP client really receives: ID/flags fix-ups, truncation
        from workers.server import parse_client_query, render_answer
    except ImportError:
        parse_client_query = render_answer = None
    return Core(Resolver, Cache, Settings, parse_client_query, render_answer)


def _make_resolver(core: Core, settings, cache, clock, seed: int):
    params = inspect.signature(core.resolver_cls).parameters
    if "rng" in params:  # deterministic runs when the core accepts a Random
        return core.resolver_cls(settings, cache, clock, rng=random.Random(seed))
    return core.resolver_cls(settings, cache, clock)


# ---------------------------------------------------------------- the player

@dataclass
class Outcome:
    name: str
    qmin: bool
    passed: bool
    reason: str = ""
    trace: list = field(default_factory=list)

    @property
    def mode(self) -> str:
        return "on" if self.qmin else "off"


class StepFailed(Exception):
    pass


class Player:
    """Plays one scenario in one QMIN mode against one resolver instance."""

    def __init__(self, scn: Scenario, ctx: config.Context, resolver, net: FakeNetwork,
                 clock: FakeClock, seed: int, core: Optional[Core] = None, settings=None):
        self.scn, self.ctx, self.resolver, self.net, self.clock = scn, ctx, resolver, net, clock
        self.core, self.settings = core, settings
        self.ids = random.Random(seed)
        self.last_answer: Optional[dns.message.Message] = None
        self.last_raw: Optional[bytes] = None

    def play(self) -> None:
        for step in self.scn.steps:
            self.net.begin_step(step)
            handler = getattr(self, "step_" + step.type.lower())
            handler(step)

    def step_query(self, step: Step) -> None:
        entry = step.entry
        if entry.raw is not None:
            wire = entry.raw
        else:
            msg = match.copy_message(entry.message)
            msg.id = self.ids.randrange(65536)
            wire = msg.to_wire(max_size=65535)
        self.last_answer = self.last_raw = None
        query = self._parse_query(wire)
        if query is None:
            return  # malformed client packet: the server layer answers FORMERR or drops it
        raw_answer = self._resolve(step, query)
        if entry.raw is None and raw_answer is not None:  # Deckard reads no answer to RAW queries
            self.last_raw = raw_answer
            try:
                self.last_answer = dns.message.from_wire(raw_answer, one_rr_per_rrset=True)
            except dns.exception.DNSException as exc:
                raise StepFailed(f"step {step.id} QUERY: the answer does not parse: {exc}") from None

    def _parse_query(self, wire: bytes) -> Optional[dns.message.Message]:
        if self.core is not None and self.core.parse_query is not None:
            return self.core.parse_query(wire)[0]
        try:
            return dns.message.from_wire(wire)
        except dns.exception.DNSException:
            return None

    def _render(self, answer: dns.message.Message, query: dns.message.Message) -> bytes:
        if self.core is not None and self.core.render is not None:
            return self.core.render(answer, query, self.settings, False)[0]
        return answer.to_wire(max_size=65535)

    def _resolve(self, step: Step, query: dns.message.Message) -> Optional[bytes]:
        from workers.transport import drive_sync
        try:
            gen = self.resolver.resolve(query, client=(self.ctx.client_addr, CLIENT_PORT), tcp=False)
            answer = drive_sync(gen, self.net.transport)
        except TransportLimit as exc:
            raise StepFailed(f"step {step.id} QUERY: {exc} (resolver loop?)") from None
        except Exception as exc:  # noqa: BLE001 - any crash of the core is a failure to report
            raise StepFailed(f"step {step.id} QUERY: resolver raised {_exc_text(exc)}") from None
        if answer is None:
            return None
        try:
            return self._render(answer, query)
        except Exception as exc:  # noqa: BLE001
            raise StepFailed(f"step {step.id} QUERY: answer cannot be rendered: "
                             f"{_exc_text(exc)}") from None

    def step_check_answer(self, step: Step) -> None:
        entry, where = step.entry, f"step {step.id} CHECK_ANSWER (line {step.entry.line})"
        if entry.raw is not None:
            if self.last_raw != entry.raw:
                got = self.last_raw.hex() if self.last_raw is not None else None
                raise StepFailed(f"{where}: raw answer differs: expected {entry.raw.hex()}, got {got}")
            return
        if self.last_answer is None:
            raise StepFailed(f"{where}: no answer from the preceding query")
        try:
            match.check(entry, self.last_answer)
        except match.Mismatch as exc:
            raise StepFailed(f"{where}: {exc}") from None

    def step_time_passes(self, step: Step) -> None:
        self.clock.jump(step.elapse)

    def step_reply(self, step: Step) -> None:
        """One-shot answers are used by FakeNetwork; the step itself does nothing."""

    def step_check_out_query(self, step: Step) -> None:
        """Ignored, as Deckard does."""


def _exc_text(exc: BaseException) -> str:
    frames = traceback.extract_tb(exc.__traceback__)
    where = f" at {frames[-1].filename.rsplit('/', 2)[-1]}:{frames[-1].lineno}" if frames else ""
    return f"{type(exc).__name__}: {exc}{where}"


def _reasons(net: FakeNetwork, failure: Optional[str]) -> list:
    reasons = []
    if net.undefined:
        more = f" (+{len(net.undefined) - 1} more)" if len(net.undefined) > 1 else ""
        reasons.append("the scenario does not define all necessary answers: "
                       f"{net.undefined[0]}{more}")
    reasons.extend(net.errors[:1])
    if failure:
        reasons.append(failure)
    if failure is None:
        for entry in net.unfired_mandatory():
            reasons.append(f"MANDATORY {entry.describe()} was never used")
    return reasons


def run_scenario(scn: Scenario, qmin: bool, core: Optional[Core] = None,
                 seed: int = 0) -> Outcome:
    """Play `scn` with QNAME minimisation `qmin`; never raises for scenario failures."""
    ctx = config.context(scn)
    missing = config.unsupported(ctx)
    if missing:
        return Outcome(scn.name, qmin, False, "unsupported: " + ", ".join(missing))
    core = core or real_core()
    settings = core.settings_cls()
    config.apply(settings, ctx, qmin)
    clock = FakeClock(ctx.start_time)
    net = FakeNetwork(scn, clock)
    with tempfile.TemporaryDirectory(prefix="kresd-rpl-") as tmp:
        cache = None
        try:
            cache = _open_cache(core, tmp, settings, clock)
            resolver = _make_resolver(core, settings, cache, clock, seed)
        except Exception as exc:  # noqa: BLE001 - a broken core is reported, not raised
            if cache is not None:
                cache.close()
            return Outcome(scn.name, qmin, False, f"setup failed: {_exc_text(exc)}")
        try:
            failure = _play(Player(scn, ctx, resolver, net, clock, seed, core, settings))
        finally:
            if cache is not None:
                cache.close()
    reasons = _reasons(net, failure)
    return Outcome(scn.name, qmin, not reasons, " | ".join(reasons), net.trace)


def _play(player: Player) -> Optional[str]:
    try:
        player.play()
    except StepFailed as exc:
        return str(exc)
    return None


def _open_cache(core: Core, path: str, settings, clock: FakeClock):
    if core.cache_cls is None:
        return None
    cache = core.cache_cls(path, settings.cache_size, min_ttl=settings.cache_min_ttl,
                           max_ttl=settings.cache_max_ttl, clock=clock.time)
    cache.open()
    return cache


def run_modes(scn: Scenario, wanted: str = "both", core: Optional[Core] = None) -> list:
    """All runs of `scn`: the header fixes the mode, else `wanted` (on/off/both)."""
    return [run_scenario(scn, qmin, core) for qmin in modes_for(scn, wanted)]


def modes_for(scn: Scenario, wanted: str = "both") -> tuple:
    modes = config.qmin_modes(config.context(scn))
    if len(modes) == 1:
        return modes
    return {"both": (True, False), "on": (True,), "off": (False,)}[wanted]
