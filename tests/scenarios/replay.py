"""In-process scenario replay: fake network, fake clock, and the step player.

Owns: `FakeClock` (wall clock starting at the scenario's date and jumping at
TIME_PASSES; monotonic clock advancing only on simulated time), `FakeNetwork`
(the scripted upstream servers: which entry answers a query, ADJUST, one-shot
REPLY steps, MANDATORY bookkeeping, the per-step query cap) and
`run_scenario()` which plays the steps against a resolver and returns an
`Outcome` with a precise reason.
Must not: open sockets, sleep, read the real clock, or import the resolution
core at module import time (it is loaded by `real_core()`, so the harness's
own unit tests run with fake cores). `real_core()` imports every piece or
raises: a core that does not import fails the suite, it never shrinks it
(no skip, no dnspython stand-in for the server edges, no config subset in
place of the Lua engine).

Answering rule (README "Upstream queries"): the first matching entry of a
range eligible at the current step (step inside the range, and the address
among its ADDRESSes; a query to an address no range names may be answered by
any range); else a pending REPLY step (id >= current step) that matches,
used once; else SERVFAIL, and the scenario fails with "the scenario does not
define all necessary answers".
"""
from __future__ import annotations

import inspect
import random
import tempfile
from pathlib import Path
import traceback
from dataclasses import dataclass, field
from typing import Callable, Optional

import dns.exception
import dns.message
import dns.rdatatype

from . import config, match
from .responder import MAX_SENDS_PER_QUERY, Exchange, Responder, describe_query  # noqa: F401 (re-exported)
from .rpl import Scenario, Step

ANSWER_DELAY = 0.001  # simulated RTT of an answered upstream query (seconds)
CLIENT_PORT = 5353


class TransportLimit(Exception):
    """The resolver sent more than MAX_SENDS_PER_QUERY queries in one step."""


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

class FakeNetwork(Responder):
    """The scripted servers behind the sans-I/O transport; `transport` is drive_sync's callback."""

    def __init__(self, scn: Scenario, clock: FakeClock):
        super().__init__(scn)
        self.clock = clock

    def transport(self, send) -> Optional[bytes]:
        if not self.count_send():
            raise TransportLimit(f"more than {MAX_SENDS_PER_QUERY} upstream queries in one step")
        if send.port != 53:  # scripted servers listen on port 53 only: nothing answers
            self.trace.append(Exchange(self.step_id, f"{send.addr}#{send.port}", send.tcp,
                                       "?", "no server on this port (timeout)"))
            self.clock.advance(send.timeout)
            return None
        reply = self.answer(send.wire, send.addr, send.tcp)
        self.clock.advance(ANSWER_DELAY if reply.wire is not None else send.timeout)
        return reply.wire


# ---------------------------------------------------------------- the core

@dataclass
class Core:
    """How to build a resolver and a cache: `real_core()` for every real run.

    Fakes (the harness's own unit tests, tests/scenarios/test_rpl.py) may leave
    the server edges and the engine out; then the player renders with
    dnspython and `config.apply` fills Settings. Only an explicitly built fake
    takes that path: `real_core()` always has all of them.
    """

    resolver_cls: object
    cache_cls: Optional[object]
    settings_cls: object
    # the server layer's client-side edges (workers/server.py):
    parse_query: Optional[Callable] = None  # wire -> (Message | None, action)
    render: Optional[Callable] = None  # (answer, query, settings, tcp) -> (wire, truncated)
    # kresd.engine.Engine: the rendered kresd.j2 configures the run
    engine_cls: Optional[object] = None
    scheduler_cls: Optional[object] = None


def real_core() -> Core:
    """The resolution core, the server edges and the Lua engine; ImportError propagates."""
    from cache.api import Cache
    from kresd.bindings.event import FakeScheduler
    from kresd.engine import Engine
    from workers.resolve import Resolver
    from workers.server import parse_client_query, render_answer
    from workers.settings import Settings
    return Core(Resolver, Cache, Settings, parse_client_query, render_answer, Engine, FakeScheduler)


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
    # binary runner only: seconds from exec to TCP accept, wall time of the run, daemon stderr tail
    startup: Optional[float] = None
    elapsed: Optional[float] = None
    log_tail: str = ""

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
        self.scheduler = None  # FakeScheduler of the engine, when there is one

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
        raw_answer = self.exchange(step, wire, entry.raw is None)
        if entry.raw is None and raw_answer is not None:  # Deckard reads no answer to RAW queries
            self.last_raw = raw_answer
            try:
                self.last_answer = dns.message.from_wire(raw_answer, one_rr_per_rrset=True)
            except dns.exception.DNSException as exc:
                raise StepFailed(f"step {step.id} QUERY: the answer does not parse: {exc}") from None

    def exchange(self, step: Step, wire: bytes, want_answer: bool) -> Optional[bytes]:
        """Send one client query; the answer's bytes or None. The binary runner overrides this."""
        query = self._parse_query(wire)
        if query is None:
            return None  # malformed client packet: the server layer answers FORMERR or drops it
        return self._resolve(step, query)

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
        if self.scheduler is not None:  # the engine's timers (event.after/recurrent)
            self.scheduler.advance(step.elapse)

    def step_reply(self, step: Step) -> None:
        """One-shot answers are used by FakeNetwork; the step itself does nothing."""

    def step_check_out_query(self, step: Step) -> None:
        """Ignored, as Deckard does."""


def _exc_text(exc: BaseException) -> str:
    frames = traceback.extract_tb(exc.__traceback__)
    where = f" at {frames[-1].filename.rsplit('/', 2)[-1]}:{frames[-1].lineno}" if frames else ""
    return f"{type(exc).__name__}: {exc}{where}"


def run_scenario(scn: Scenario, qmin: bool, core: Optional[Core] = None,
                 seed: int = 0) -> Outcome:
    """Play `scn` with QNAME minimisation `qmin`; never raises for scenario failures."""
    ctx = config.context(scn)
    core = core or real_core()
    if core.engine_cls is None:
        missing = config.unsupported(ctx)
        if missing:
            return Outcome(scn.name, qmin, False, "unsupported: " + ", ".join(missing))
    clock = FakeClock(ctx.start_time)
    net = FakeNetwork(scn, clock)
    with tempfile.TemporaryDirectory(prefix="kresd-rpl-") as tmp:
        setup = _EngineSetup(core, ctx, qmin, tmp, clock, seed) if core.engine_cls is not None \
            else _DirectSetup(core, ctx, qmin, tmp, clock, seed)
        try:
            resolver = setup.open()
        except Exception as exc:  # noqa: BLE001 - a broken core or config is reported, not raised
            setup.close()
            return Outcome(scn.name, qmin, False, f"setup failed: {_exc_text(exc)}")
        try:
            player = Player(scn, ctx, resolver, net, clock, seed, core, setup.settings)
            player.scheduler = setup.scheduler
            failure = _play(player)
        finally:
            setup.close()
    reasons = net.reasons(failure)
    return Outcome(scn.name, qmin, not reasons, " | ".join(reasons), net.trace)


class _DirectSetup:
    """Fake cores only (no engine): config.apply fills Settings from the context."""

    def __init__(self, core: Core, ctx, qmin: bool, tmp: str, clock: FakeClock, seed: int):
        self.core, self.tmp, self.clock, self.seed = core, tmp, clock, seed
        self.settings = core.settings_cls()
        config.apply(self.settings, ctx, qmin)
        self.cache = self.scheduler = None

    def open(self):
        self.cache = _open_cache(self.core, self.tmp, self.settings, self.clock)
        return _make_resolver(self.core, self.settings, self.cache, self.clock, self.seed)

    def close(self) -> None:
        if self.cache is not None:
            self.cache.close()
            self.cache = None


class _EngineSetup:
    """The rendered kresd.j2 loaded through kresd.engine.Engine, as `kresd -n` would."""

    def __init__(self, core: Core, ctx, qmin: bool, tmp: str, clock: FakeClock, seed: int):
        self.core, self.ctx, self.qmin, self.tmp, self.clock, self.seed = core, ctx, qmin, tmp, clock, seed
        self.settings = core.settings_cls()
        self.scheduler = core.scheduler_cls() if core.scheduler_cls is not None else None
        self.engine = None

    def open(self):
        from . import template
        from kresd.errors import ConfigError
        text = template.render(self.ctx, self.qmin, Path(self.tmp))
        self.engine = self.core.engine_cls(self.settings, rundir=self.tmp, clock=self.clock,
                                           scheduler=self.scheduler)
        try:
            self.engine.load_config_text(text, "config")
            self.engine.post_config()
        except ConfigError as exc:
            raise ConfigError(f"rendered kresd.j2 rejected: {exc}") from None
        resolver = self.engine.resolver
        rng = random.Random(self.seed)  # deterministic runs: the engine's resolver uses SystemRandom
        resolver.rng = rng
        if hasattr(resolver, "selection") and hasattr(resolver.selection, "_rng"):
            resolver.selection._rng = rng
        return resolver

    def close(self) -> None:
        if self.engine is not None:
            self.engine.stop()
            self.engine = None


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
