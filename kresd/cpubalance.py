"""Default CPU pinning that gives way: move a pinned worker off a CPU that other load saturates.

Owns: the decision (`Balancer.decide`, pure: loads in, at most one move out) and
the sampling behind it (`Sampler`: per-CPU busy time from /proc/stat and each
worker's CPU time, through psutil). kresd/supervisor.py's Arbiter runs both
from the leader's loop every ~INTERVAL seconds and pins.
Must not: pin (the Arbiter does), touch a worker with an explicit cpu-map entry,
or block (psutil reads /proc files only).

Why. `kresd -f N` pins worker i to CPU i (DESIGN: "pin CPUs"), which keeps a
worker where its caches are and off the scheduler's migrations. But SO_REUSEPORT
keeps sending a worker its share of the queries wherever it runs, so a worker
whose CPU is saturated by something else (a load generator, an authoritative
server, a noisy neighbour) answers its share late while another CPU may sit idle;
unpinned processes would just move away. Measured with ../shared/bench
(dnsperf pinned to CPU 1 on 2 cores): `kresd -f 2` pinned 0-1 answered 1.03x the
hit QPS of two kresd 5.6 processes, with CPU 0 62 % idle; pinned 0-0 it answered
1.41x (same run).

The rule, per worker without an explicit cpu-map entry (its home is the CPU the
default pinning gives it):
  * crowded: its CPU was at least BUSY busy and at least FOREIGN of that was not
    kresd's (busy minus what this group's workers used there), in SUSTAIN
    consecutive samples -> it moves to the least busy other allowed CPU on which
    busy + what the worker used stays at most ROOM (none: it stays);
  * away from home for at least HOLD seconds and the load there that is not
    kresd's fell below BACK -> it goes home;
  * at most one move per sample, so every move is judged on loads that include the
    one before, and at most one move of a worker in HOLD seconds (no flapping).
An explicit cpu-map (`--cpu-map`, `worker.cpu_map`) is obeyed exactly and never
moved: that is how an operator keeps a placement fixed.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Mapping, Optional, Sequence

INTERVAL = 1.0  # seconds between samples
BUSY = 0.90  # a CPU at least this busy (fraction of one CPU) is saturated
FOREIGN = 0.30  # ... and a worker there is crowded out if this much of it is not kresd's
SUSTAIN = 2  # consecutive crowded samples before a worker moves (not for a short spike)
ROOM = 0.80  # a CPU may take a worker if its busy + the worker's use stays at most this
BACK = 0.20  # a moved worker goes home once the load there that is not kresd's is below this
HOLD = 10.0  # seconds a moved worker stays before it may go home


@dataclass(frozen=True)
class Load:
    """One sample interval: busy fraction per CPU, CPU fraction used per worker id,
    and where each serving worker is pinned (CPU lists)."""
    busy: Mapping[int, float]
    used: Mapping[int, float]
    placed: Mapping[int, Sequence[int]]

    def ours(self) -> dict[int, float]:
        """CPU fraction the group's workers used per CPU (a worker on several CPUs
        counts evenly on each)."""
        out: dict[int, float] = {}
        for wid, cpus in self.placed.items():
            if cpus:
                share = self.used.get(wid, 0.0) / len(cpus)
                for c in cpus:
                    out[c] = out.get(c, 0.0) + share
        return out

    def foreign(self) -> dict[int, float]:
        """Per CPU: busy time that was not this group's (other processes, interrupts, steal)."""
        ours = self.ours()
        return {c: max(0.0, b - ours.get(c, 0.0)) for c, b in self.busy.items()}


@dataclass(frozen=True)
class Move:
    wid: int
    cpu: int
    home: bool  # True: back to its home CPU
    why: str


@dataclass
class Balancer:
    """The moves of default-pinned workers (see the module docstring)."""
    away: dict[int, int] = field(default_factory=dict)  # wid -> the CPU it was moved to
    moved: dict[int, float] = field(default_factory=dict)  # wid -> when it last moved
    crowded: dict[int, int] = field(default_factory=dict)  # wid -> consecutive crowded samples

    def cpu(self, wid: int) -> Optional[int]:
        """Where a moved worker is (None: at home)."""
        return self.away.get(wid)

    def forget(self, wid: Optional[int] = None) -> None:
        """Drop what is known of one worker (or all): its placement is decided anew."""
        for d in (self.away, self.moved, self.crowded):
            if wid is None:
                d.clear()
            else:
                d.pop(wid, None)

    def _held(self, wid: int, now: float) -> bool:
        """Moved less than HOLD seconds ago: it may not move again yet."""
        return wid in self.moved and now - self.moved[wid] < HOLD

    def decide(self, load: Load, homes: Mapping[int, int], now: float) -> Optional[Move]:
        """At most one move for this sample; `homes`: worker id -> home CPU for the
        workers that may move (those without an explicit cpu-map entry). A worker
        moves at most once in HOLD seconds."""
        for wid in {*self.away, *self.moved, *self.crowded}:  # gone, or no longer movable
            if wid not in homes or wid not in load.placed:
                self.forget(wid)
        foreign = load.foreign()
        move = None
        for wid in sorted(self.away):
            home = homes[wid]
            if not self._held(wid, now) and foreign.get(home, 0.0) < BACK:
                move = Move(wid, home, True, f"load on CPU {home} from outside kresd fell to "
                                             f"{foreign.get(home, 0.0):.0%}")
                break
        for wid in sorted(homes):
            cpus = load.placed.get(wid)
            cur = cpus[0] if cpus and len(cpus) == 1 else None
            busy, other = load.busy.get(cur, 0.0), foreign.get(cur, 0.0)
            if cur is None or busy < BUSY or other < FOREIGN:
                self.crowded.pop(wid, None)
                continue
            self.crowded[wid] = self.crowded.get(wid, 0) + 1
            if move is not None or self.crowded[wid] < SUSTAIN:
                continue
            if self._held(wid, now):
                continue
            used = load.used.get(wid, 0.0)
            room = [c for c in load.busy if c != cur and load.busy[c] + used <= ROOM]
            if not room:
                continue
            to = min(room, key=lambda c: (load.busy[c], c))
            move = Move(wid, to, to == homes[wid],
                        f"CPU {cur} was {busy:.0%} busy, {other:.0%} of it outside kresd; "
                        f"CPU {to} was {load.busy[to]:.0%} busy")
        if move is not None:
            self.crowded.pop(move.wid, None)
            self.moved[move.wid] = now
            if move.home:
                self.away.pop(move.wid, None)
            else:
                self.away[move.wid] = move.cpu
        return move


class Sampler:
    """Busy fraction per CPU and CPU fraction per process between two calls (psutil)."""

    def __init__(self):
        self._cpu: Optional[list] = None
        self._procs: dict[int, object] = {}  # pid -> psutil.Process
        self._times: dict[int, float] = {}  # pid -> CPU seconds at the last sample
        self._at: Optional[float] = None

    @staticmethod
    def _total(t) -> float:  # guest time is counted in user/nice already
        return sum(t) - getattr(t, "guest", 0.0) - getattr(t, "guest_nice", 0.0)

    @classmethod
    def _busy(cls, t) -> float:
        return cls._total(t) - t.idle - getattr(t, "iowait", 0.0)

    def sample(self, pids: Mapping[int, int], now: float) -> Optional[tuple[dict[int, float], dict[int, float]]]:
        """(busy per CPU, used per worker id) since the last call, or None on the first
        call (a baseline). `pids`: worker id -> pid."""
        import psutil

        cpu = psutil.cpu_times(percpu=True)
        times: dict[int, float] = {}
        for wid, pid in pids.items():
            p = self._procs.get(pid)
            try:
                if p is None:
                    p = self._procs[pid] = psutil.Process(pid)
                t = p.cpu_times()
                times[pid] = t.user + t.system
            except (psutil.Error, OSError):
                self._procs.pop(pid, None)
        for pid in list(self._procs):
            if pid not in times:
                del self._procs[pid]
        prev, prev_times, at = self._cpu, self._times, self._at
        self._cpu, self._times, self._at = cpu, times, now
        if prev is None or at is None or now <= at or len(prev) != len(cpu):
            return None
        busy = {}
        for i, (a, b) in enumerate(zip(prev, cpu)):
            total = self._total(b) - self._total(a)
            busy[i] = min(1.0, max(0.0, (self._busy(b) - self._busy(a)) / total)) if total > 0 else 0.0
        span = now - at
        used = {wid: max(0.0, times[pid] - prev_times[pid]) / span
                for wid, pid in pids.items() if pid in times and pid in prev_times}
        return busy, used
