"""The arbiter of `kresd -f N`: fork the workers, pin them, reap and respawn them.

Owns: the process group of a kresd instance (the leader is its group leader,
so `kill -- -<pgid>` stops everything), the start-up forks, CPU pinning
(psutil; worker id modulo the allowed CPUs, a cpu-map overrides, pinning can
be off; a default-pinned worker crowded out of its CPU by other load is moved,
kresd/cpubalance.py), reaping through a self-pipe signal queue, respawning a dead fork by
fork+exec of the same entry point with the listening sockets passed as `-S`,
the restart rate limit, and the stop of all children.
Must not: bind sockets, create an event loop, a Lua state or an LMDB env, or
do anything but enqueue in a signal handler (gunicorn arbiter.py).

Ordering contract for the caller (kresd/cli.py), as kresd v5.7.4 daemon/main.c
and gunicorn: 1. parse flags, enter the rundir; 2. bind / adopt the listening
sockets (kresd/sockets.py, kresd/systemd.py); 3. `arb = Arbiter(...)`,
`arb.start()`: installs the signal queue, makes the group, pins the leader and
forks workers 1..N-1, each of which runs `worker_main(id, sockets)` and exits
with its return value (start() never returns in a child); 4. only now, in the
leader, `worker_main(0, sockets)` creates the Lua engine, loads the config,
opens the cache and creates the asyncio loop, on which it calls
`arb.attach(loop, on_stop)`; `on_stop(code)` must make that loop end;
5. after the loop: `code = arb.shutdown(code)` (SIGTERM to the children, wait,
SIGKILL after `stop_timeout`) and exit with `code`. No threads may run at step 3.

Signals in the leader: SIGCHLD, SIGTERM and SIGINT are caught by the arbiter
(handler = append to a deque + one byte to a self-pipe; the loop reader or
`run()` drains it and dispatches `handle_chld` / `handle_term`). If the worker
code installs its own SIGTERM handler (loop.add_signal_handler replaces ours),
it must call `arb.request_stop()` or just end its loop; `shutdown()` then stops
the children anyway (a fork respawned in between is stopped too).

Respawn: a dead fork is replaced by `exec_prefix + exec_args + ['-S', 'fd[:kind]']...
+ ['-f', N, '--worker-id', id]` (default exec_prefix: sys.executable -m kresd),
started with subprocess (fork immediately followed by exec, no Python in
between) inheriting the same fds, then pinned to the same CPU slot.
Exit codes of children: a boot error (EXIT_USAGE, EXIT_CONFIG, EXIT_BIND,
EXIT_NOT_IMPLEMENTED) is not respawned: the group halts with that code. Any
other death is respawned unless more than `max_restarts` deaths happened in
`restart_window` seconds: then the group halts with EXIT_RESPAWN_LIMIT.

The leader's death: every child follows its leader (`follow_leader`): right
after the fork (and, for a respawn, first thing after the exec, with the
leader's pid passed as `--leader-pid`) it asks the kernel for SIGTERM when its
parent dies (prctl PR_SET_PDEATHSIG), then checks that its parent is still the
leader, which closes the race with a leader that died before. SIGTERM is the
ordinary graceful stop of a worker (stop reading, finish the queries in
flight, remove tty/<PID>, exit). The kernel sends it when the parent *thread*
ends, so the leader forks and execs only from its main thread (it runs no
other thread). A credential change (setuid/setgid by `user()`) clears the
setting: `follow_leader_again()` re-arms it.
"""
from __future__ import annotations

import collections
import ctypes
import os
import signal
import subprocess
import sys
import threading
import time
import traceback
from dataclasses import dataclass, field
from typing import Callable, Optional, Sequence

from kresd import cpubalance, log
from kresd.errors import (EXIT_BIND, EXIT_CONFIG, EXIT_FAILURE, EXIT_NOT_IMPLEMENTED, EXIT_OK,
                          EXIT_RESPAWN_LIMIT, EXIT_USAGE)
from kresd.sockets import ListenSocket, fd_args, pass_fds

G = log.Group.SYSTEM
BOOT_ERROR_CODES = frozenset({EXIT_USAGE, EXIT_CONFIG, EXIT_BIND, EXIT_NOT_IMPLEMENTED})
WORKER_ID_FLAG = "--worker-id"
LEADER_PID_FLAG = "--leader-pid"
PR_SET_PDEATHSIG = 1  # <linux/prctl.h>

WorkerMain = Callable[[int, list[ListenSocket]], int]


# --- cpu pinning --------------------------------------------------------------------


def parse_cpu_map(text: str) -> dict[int, tuple[int, ...]]:
    """PowerDNS-style cpu-map: 'worker=cpu[,cpu...] ...', e.g. '0=0 1=1 2=2,3'."""
    out: dict[int, tuple[int, ...]] = {}
    for item in text.replace(";", " ").split():
        wid, sep, cpus = item.partition("=")
        try:
            if not sep:
                raise ValueError
            out[int(wid)] = tuple(int(c) for c in cpus.split(",") if c != "")
            if not out[int(wid)] or int(wid) < 0 or min(out[int(wid)]) < 0:
                raise ValueError
        except ValueError:
            raise ValueError(f"bad cpu-map item '{item}' (expected worker=cpu[,cpu...])") from None
    return out


def allowed_cpus() -> list[int]:
    """The CPUs this process may run on (sorted)."""
    import psutil

    return sorted(psutil.Process().cpu_affinity())


def cpus_for(worker_id: int, allowed: Sequence[int], cpu_map: Optional[dict] = None) -> list[int]:
    """The cpu-map entry, else allowed[worker_id % len(allowed)] (wraps with more workers)."""
    if cpu_map and worker_id in cpu_map:
        return list(cpu_map[worker_id])
    return [allowed[worker_id % len(allowed)]]


def _alive(pid: int) -> bool:
    import psutil

    return psutil.pid_exists(pid)


def pin(pid: int, cpus: Sequence[int]) -> bool:
    import psutil

    try:
        psutil.Process(pid).cpu_affinity(list(cpus))
        return True
    except (psutil.Error, OSError, ValueError) as e:
        log.warning(G, "cannot pin pid %d to CPU %s: %s", pid, ",".join(map(str, cpus)), e)
        return False


# --- pieces shared with tools/supervisor.py -----------------------------------------


class SignalQueue:
    """Self-pipe signal queue: handlers only append the signal number and write one byte."""

    def __init__(self, signals: Sequence[int]):
        self.signals = tuple(signals)
        self._pending: collections.deque[int] = collections.deque()
        self._r, self._w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        self._old: dict[int, object] = {}

    def fileno(self) -> int:
        return self._r

    def _handler(self, signum, frame) -> None:
        self._pending.append(signum)
        try:
            os.write(self._w, b"\0")
        except OSError:
            pass  # pipe full: a wakeup is pending anyway

    def install(self) -> None:
        import kresd

        for sig in self.signals:
            self._old[sig] = signal.signal(sig, self._handler)
        for sig in kresd.take_early_stops():  # arrived during the boot
            if sig in self.signals:
                self._handler(sig, None)

    def uninstall(self) -> None:
        for sig, old in self._old.items():
            try:
                signal.signal(sig, old)
            except (ValueError, TypeError):
                signal.signal(sig, signal.SIG_DFL)
        self._old.clear()

    def wait(self, timeout: float) -> None:
        """Block until a signal was queued or timeout (loop-less mode)."""
        import select

        if not self._pending:
            try:
                select.select([self._r], [], [], timeout)
            except InterruptedError:
                pass

    def drain(self) -> list[int]:
        try:
            while os.read(self._r, 4096):
                pass
        except (BlockingIOError, InterruptedError):
            pass
        out = []
        while self._pending:
            out.append(self._pending.popleft())
        return out

    def pending_stops(self) -> list[int]:
        """SIGTERM/SIGINT queued and not dispatched yet."""
        return [sig for sig in self._pending if sig in (signal.SIGTERM, signal.SIGINT)]

    def close(self, reset: bool = False) -> None:
        """Close the pipe; with reset, put the handlers from before install() back (fork child)."""
        if reset:
            self.uninstall()
        for fd in (self._r, self._w):
            try:
                os.close(fd)
            except OSError:
                pass


class RestartLimiter:
    """Allows at most `max_restarts` deaths within `window` seconds."""

    def __init__(self, max_restarts: int = 5, window: float = 10.0, clock=time.monotonic):
        self.max_restarts = max_restarts
        self.window = window
        self.clock = clock
        self._deaths: collections.deque[float] = collections.deque()

    def record(self) -> bool:
        """Record one death; False if this one exceeds the limit."""
        now = self.clock()
        self._deaths.append(now)
        while self._deaths and now - self._deaths[0] > self.window:
            self._deaths.popleft()
        return len(self._deaths) <= self.max_restarts


def describe_exit(code: int) -> str:
    """'exited with code 3' / 'killed by signal SIGKILL' from waitstatus_to_exitcode()."""
    if code < 0:
        try:
            return f"killed by signal {signal.Signals(-code).name}"
        except ValueError:
            return f"killed by signal {-code}"
    return f"exited with code {code}"


# --- following the leader -------------------------------------------------------------

_leader_pid: Optional[int] = None  # the leader this process follows (a fork or a respawn)


def _set_pdeathsig(sig: int) -> bool:
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        if libc.prctl(PR_SET_PDEATHSIG, ctypes.c_ulong(sig), ctypes.c_ulong(0), ctypes.c_ulong(0),
                      ctypes.c_ulong(0)) == 0:
            return True
        err = ctypes.get_errno()
        log.warning(G, "prctl(PR_SET_PDEATHSIG): %s", os.strerror(err))
    except (OSError, AttributeError) as e:
        log.warning(G, "prctl(PR_SET_PDEATHSIG) unavailable: %s", e)
    return False


def follow_leader(leader_pid: int) -> bool:
    """Get SIGTERM from the kernel when the parent (the leader `leader_pid`) dies.

    Returns False when the leader is gone already (the parent is not
    `leader_pid` any more): the caller must then stop at once, as the signal
    will never come.
    """
    global _leader_pid
    _leader_pid = leader_pid
    _set_pdeathsig(signal.SIGTERM)
    return os.getppid() == leader_pid


def follow_leader_again() -> None:
    """Re-arm the leader's death signal after a credential change (setuid and
    setgid clear it); if the leader died in between, SIGTERM ourselves."""
    if _leader_pid is None:
        return
    if not follow_leader(_leader_pid):
        log.notice(G, "the leader (pid %d) is gone: stopping", _leader_pid)
        os.kill(os.getpid(), signal.SIGTERM)


def followed_leader() -> Optional[int]:
    """The pid of the leader this process follows (None in the leader itself)."""
    return _leader_pid


# --- the arbiter --------------------------------------------------------------------


@dataclass
class Worker:
    id: int
    pid: int
    started: float
    cpus: Optional[list[int]] = None
    popen: Optional[subprocess.Popen] = field(default=None, repr=False)  # respawned by exec


class Arbiter:
    """Leader-side supervision of a kresd process group (see the module docstring)."""

    def __init__(self, sockets: Sequence[ListenSocket], count: int, worker_main: WorkerMain, *,
                 leader_serves: bool = True, exec_prefix: Optional[Sequence[str]] = None,
                 exec_args: Sequence[str] = (), cpu_map: Optional[dict[int, Sequence[int]]] = None,
                 pin_cpus: bool = True, max_restarts: int = 5, restart_window: float = 10.0,
                 stop_timeout: float = 10.0, new_group: bool = True,
                 slot_sockets: Optional[dict[int, Sequence[ListenSocket]]] = None):
        if count < 1:
            raise ValueError("worker count must be >= 1")
        self.sockets = list(sockets)  # shared by every worker (inherited / activation)
        # per worker id: sockets only that worker serves (kresd -f N -a: one SO_REUSEPORT
        # set per worker, so the kernel spreads queries); kept open here for its respawns
        self.slot_sockets = {k: list(v) for k, v in (slot_sockets or {}).items()}
        self.count = count
        self.worker_main = worker_main
        self.leader_serves = leader_serves
        self.exec_prefix = list(exec_prefix) if exec_prefix else [sys.executable, "-m", "kresd"]
        self.exec_args = list(exec_args)
        self.cpu_map = dict(cpu_map or {})
        self.pin_cpus = pin_cpus
        self.limiter = RestartLimiter(max_restarts, restart_window)
        self.stop_timeout = stop_timeout
        self.new_group = new_group
        self.workers: dict[int, Worker] = {}  # worker id -> child (never the leader)
        self.exit_code: Optional[int] = None  # set when the group halts
        self.stopping = False
        self._queue: Optional[SignalQueue] = None
        self._loop = None
        self._on_stop: Optional[Callable[[int], None]] = None
        self._stop_notified = False
        self._allowed = allowed_cpus()
        self.leader_pid = os.getpid()  # set again by start()
        # rolling reload (kresd/reload.py): new pid -> the Worker it replaces (None: the
        # leader's worker 0); old workers told to stop; replacements that died booting
        self.replacing: dict[int, Optional[Worker]] = {}
        self.retiring: dict[int, Worker] = {}
        self.replacing_dead: set[int] = set()
        self.retire_leader: Optional[Callable] = None  # set by the serving leader (workers/main.py)
        self._reload_task = None
        self.balancer = cpubalance.Balancer()  # default-pinned workers moved off crowded CPUs
        self._sampler: Optional[cpubalance.Sampler] = None
        self._balance_timer = None

    # -- start -------------------------------------------------------------------
    def start(self) -> int:
        """Install signals, become group leader, fork the workers; returns 0 in the leader.

        Children run worker_main and `os._exit` with its code: never returns there.
        """
        if threading.active_count() > 1:
            log.warning(G, "forking with %d threads alive", threading.active_count())
        if self.new_group and os.getpgrp() != os.getpid():
            try:
                os.setpgid(0, 0)
            except OSError as e:
                log.warning(G, "cannot become a process group leader: %s", e)
        self.leader_pid = os.getpid()
        self._queue = SignalQueue((signal.SIGCHLD, signal.SIGTERM, signal.SIGINT, signal.SIGHUP))
        self._queue.install()
        if self.leader_serves:
            self._pin_self(0)
        first = 1 if self.leader_serves else 0
        for wid in range(first, self.count):
            self._fork(wid)
        return 0

    def sockets_for(self, worker_id: int) -> list[ListenSocket]:
        return self.sockets + self.slot_sockets.get(worker_id, [])

    def set_pinning(self, cpu_map: Optional[dict[int, Sequence[int]]], pin_cpus: bool = True) -> None:
        """Change the cpu-map (e.g. learned from the leader's config) and re-pin the
        leader and every live child; with pin_cpus False, unpin (all allowed CPUs)."""
        if not self._allowed:
            self._allowed = allowed_cpus()
        self.cpu_map = dict(cpu_map or {})
        self.pin_cpus = pin_cpus
        self.balancer.forget()
        targets = [(0, os.getpid())] if self.leader_serves else []
        targets += [(w.id, w.pid) for w in self.workers.values()]
        for wid, pid in targets:
            cpus = self.cpus(wid)
            pin(pid, cpus if cpus is not None else self._allowed)
            if wid in self.workers:
                self.workers[wid].cpus = cpus

    def cpus(self, worker_id: int) -> Optional[list[int]]:
        if not self.pin_cpus or not self._allowed:
            return None
        moved = None if worker_id in self.cpu_map else self.balancer.cpu(worker_id)
        return [moved] if moved is not None else cpus_for(worker_id, self._allowed, self.cpu_map)

    # -- moving default-pinned workers off crowded CPUs (kresd/cpubalance.py) ------
    def serving(self) -> dict[int, int]:
        """Worker id -> pid of every serving process (the leader while it serves)."""
        out = {0: os.getpid()} if self.leader_serves else {}
        out.update((w.id, w.pid) for w in self.workers.values())
        return out

    def _balance_start(self) -> None:
        if self._loop is None or not self.pin_cpus or len(self._allowed) < 2:
            return
        import random

        self._balance_timer = self._loop.call_later(cpubalance.INTERVAL * random.uniform(0.9, 1.1),
                                                    self._balance_tick)

    def _balance_tick(self) -> None:
        self._balance_timer = None
        if self.stopping or self._loop is None:
            return
        try:
            self.balance(time.monotonic())
        except Exception as e:  # noqa: BLE001 - placement is an optimisation: never stop the leader
            log.warning(G, "moving workers off crowded CPUs stopped: %r", e)
            return  # (once: not a warning every second)
        self._balance_start()

    def balance(self, now: float, sample=None) -> Optional[cpubalance.Move]:
        """One sample of the loads and at most one move (see kresd/cpubalance.py).
        `sample`: (busy per CPU, used per worker id), measured when None."""
        if not self.pin_cpus or len(self._allowed) < 2:
            return None
        if self.replacing:  # a rolling reload is changing the processes: a fresh baseline after it
            self._sampler = None
            return None
        pids = self.serving()
        if sample is None:
            if self._sampler is None:
                self._sampler = cpubalance.Sampler()
            sample = self._sampler.sample(pids, now)
            if sample is None:
                return None
        busy, used = sample
        allowed = set(self._allowed)
        load = cpubalance.Load({c: b for c, b in busy.items() if c in allowed}, used,
                               {wid: self.cpus(wid) or [] for wid in pids})
        homes = {wid: cpus_for(wid, self._allowed)[0] for wid in pids if wid not in self.cpu_map}
        move = self.balancer.decide(load, homes, now)
        if move is None:
            return None
        pid = pids[move.wid]
        if pin(pid, [move.cpu]):
            if move.wid in self.workers:
                self.workers[move.wid].cpus = [move.cpu]
            if move.home:
                log.notice(G, "worker %d (pid %d) back on CPU %d: %s", move.wid, pid, move.cpu, move.why)
            else:
                log.notice(G, "worker %d (pid %d) moved to CPU %d: %s", move.wid, pid, move.cpu, move.why)
        elif _alive(pid):  # not allowed (e.g. another user's process): pin() logged why
            raise RuntimeError(f"cannot pin worker {move.wid} (pid {pid})")
        else:
            self.balancer.forget(move.wid)  # it died meanwhile: its replacement starts afresh
        return move

    def _pin_self(self, wid: int) -> None:
        cpus = self.cpus(wid)
        if cpus is not None:
            pin(os.getpid(), cpus)

    def _fork(self, wid: int) -> None:
        sys.stdout.flush()
        sys.stderr.flush()
        pid = os.fork()
        if pid == 0:
            self._child(wid)  # never returns
        self.workers[wid] = Worker(wid, pid, time.monotonic(), self.cpus(wid))
        log.info(G, "forked worker %d (pid %d)", wid, pid)

    def _child(self, wid: int) -> None:
        code = EXIT_FAILURE
        try:
            queue, self._queue = self._queue, None
            queue.close(reset=True)  # first: the leader's death signal must not land in its queue
            # a stop that reached this process in the queue's copy between fork
            # and here is this worker's: kept for its loop (kresd.take_early_stops)
            import kresd

            for sig in queue.pending_stops():
                kresd._remember_stop(sig, None)
            if not follow_leader(self.leader_pid):
                os._exit(EXIT_OK)  # the leader died before we could follow it: nothing to stop
            self.workers.clear()
            self._pin_self(wid)
            mine = self.sockets_for(wid)
            for other, socks in self.slot_sockets.items():
                if other != wid:
                    for ls in socks:
                        ls.close()
            code = self.worker_main(wid, mine)
        except SystemExit as e:
            code = e.code if isinstance(e.code, int) else EXIT_FAILURE
        except BaseException:  # noqa: BLE001 - the fork must exit, never return into the caller
            traceback.print_exc()
            code = EXIT_FAILURE
        finally:
            try:
                sys.stdout.flush()
                sys.stderr.flush()
            finally:
                os._exit(code if isinstance(code, int) else EXIT_FAILURE)

    def exec_command(self, worker_id: int) -> list[str]:
        """The command line that replaces a dead worker (fds as -S, same numbers)."""
        return [*self.exec_prefix, *self.exec_args, *fd_args(self.sockets_for(worker_id)),
                "-f", str(self.count), WORKER_ID_FLAG, str(worker_id), LEADER_PID_FLAG, str(self.leader_pid)]

    def _respawn(self, wid: int) -> None:
        if threading.current_thread() is not threading.main_thread():
            # the child's death signal would come when this thread ends, not the leader
            log.warning(G, "respawning worker %d from a thread other than the main one", wid)
        w = self.spawn(wid)
        if w is None:
            self.halt(EXIT_FAILURE, f"cannot start a replacement for worker {wid}")
            return
        log.notice(G, "started worker %d again (pid %d)", wid, w.pid)

    # -- event loop integration --------------------------------------------------
    def attach(self, loop, on_stop: Optional[Callable[[int], None]] = None) -> None:
        """Dispatch the signal queue from `loop` (add_reader on the self-pipe)."""
        self._loop = loop
        self._on_stop = on_stop
        loop.add_reader(self._queue.fileno(), self.dispatch)
        loop.call_soon(self.dispatch)  # anything queued before the loop existed
        self._balance_start()

    def detach(self) -> None:
        if self._balance_timer is not None:
            self._balance_timer.cancel()
            self._balance_timer = None
        if self._loop is not None and self._queue is not None:
            try:
                self._loop.remove_reader(self._queue.fileno())
            except Exception:  # noqa: BLE001 - loop already closed
                pass
        self._loop = None

    def run(self, poll: float = 1.0) -> int:
        """Loop-less mode: supervise until SIGTERM/SIGINT or a halt; returns the exit code."""
        while not self.stopping:
            self._queue.wait(poll)
            self.dispatch()
        return self.shutdown()

    # -- dispatch ----------------------------------------------------------------
    def dispatch(self) -> None:
        """Drain the queue; TERM/INT first, then reap (also reaps without a signal)."""
        if self._queue is None:
            return
        sigs = self._queue.drain()
        for sig in (signal.SIGTERM, signal.SIGINT):
            if sig in sigs:
                self.handle_term(sig)
        self.handle_chld()
        if signal.SIGHUP in sigs and not self.stopping:
            self.handle_hup()

    def handle_hup(self) -> None:
        """SIGHUP: a rolling reload of the group (kresd/reload.py), on the loop."""
        if self._loop is None:
            log.warning(G, "SIGHUP: a reload needs the serving leader's loop; ignored")
            return
        if self._reload_task is not None and not self._reload_task.done():
            log.notice(G, "SIGHUP: a reload is already running")
            return
        from kresd.reload import Reload

        log.notice(G, "SIGHUP received: reloading the configuration")
        self._reload_task = self._loop.create_task(Reload(self, self.retire_leader).run())

    def spawn(self, wid: int) -> Optional[Worker]:
        """Start a fresh process for worker `wid` (fork+exec with the inherited
        sockets); it becomes self.workers[wid]. None (logged) if it cannot start."""
        cmd = self.exec_command(wid)
        try:
            p = subprocess.Popen(cmd, pass_fds=pass_fds(self.sockets_for(wid)), close_fds=True,
                                 stdin=subprocess.DEVNULL)
        except OSError as e:
            log.error(G, "cannot start a process for worker %d: %s", wid, e)
            return None
        w = Worker(wid, p.pid, time.monotonic(), self.cpus(wid), p)
        if w.cpus is not None:
            pin(p.pid, w.cpus)
        self.workers[wid] = w
        return w

    def detach_sockets(self) -> None:
        """Give the group's sockets new descriptors (dups of the same sockets),
        so that this process's server may close its own socket objects and the
        sockets stay open for the workers started later."""
        import socket as _socket

        for ls in [*self.sockets, *(x for v in self.slot_sockets.values() for x in v)]:
            ls.sock = _socket.socket(fileno=os.dup(ls.sock.fileno()))

    def handle_term(self, sig: int) -> None:
        log.notice(G, "%s received, stopping %d worker(s)", signal.Signals(sig).name, len(self.workers))
        self.request_stop(EXIT_OK)

    def handle_chld(self) -> None:
        for pid in list(self.retiring):
            try:
                done, _ = os.waitpid(pid, os.WNOHANG)
            except ChildProcessError:
                done = pid
            if done:
                self.retiring.pop(pid, None)
        for wid, w in list(self.workers.items()):
            try:
                pid, status = os.waitpid(w.pid, os.WNOHANG)
            except ChildProcessError:
                pid, status = w.pid, 0  # reaped elsewhere: treat as a clean exit
            if pid == 0:
                continue
            code = os.waitstatus_to_exitcode(status)
            if w.popen is not None:
                w.popen.returncode = code
            del self.workers[wid]
            if w.pid in self.replacing:  # a reload's replacement died booting: kresd/reload.py decides
                self.replacing_dead.add(w.pid)
                log.warning(G, "worker %d (pid %d) %s while replacing it", w.id, w.pid, describe_exit(code))
                continue
            self._on_death(w, code)

    def _on_death(self, w: Worker, code: int) -> None:
        what = describe_exit(code)
        if self.stopping:
            log.info(G, "worker %d (pid %d) %s", w.id, w.pid, what)
            return
        if code in BOOT_ERROR_CODES:
            self.halt(code, f"worker {w.id} (pid {w.pid}) failed to start ({what}); not restarting it")
            return
        log.warning(G, "worker %d (pid %d) %s", w.id, w.pid, what)
        if not self.limiter.record():
            self.halt(EXIT_RESPAWN_LIMIT,
                      f"workers died more than {self.limiter.max_restarts} times in "
                      f"{self.limiter.window:g} s (last: worker {w.id}, pid {w.pid}, {what}): "
                      f"crash loop, halting")
            return
        self._respawn(w.id)

    # -- stopping ----------------------------------------------------------------
    def halt(self, code: int, message: str) -> None:
        """Stop the whole group with `code` (boot error or crash loop)."""
        log.error(G, "error: %s (exit code %d)", message, code)
        if self.exit_code is None:
            self.exit_code = code
        self.request_stop(code)

    def request_stop(self, code: int = EXIT_OK) -> None:
        """Begin stopping: SIGTERM to the children; on_stop(code) once (attach mode)."""
        self.stopping = True
        self._signal_all(signal.SIGTERM)
        if self._on_stop is not None and not self._stop_notified:
            self._stop_notified = True
            self._on_stop(self.exit_code if self.exit_code is not None else code)

    def _signal_all(self, sig: int) -> list[int]:
        """Send `sig` to every child; returns the pids that refused it (EPERM: the
        leader ran user() and a fork still runs as root, before its own user())."""
        return self._signal_pids([w.pid for w in self.workers.values()], sig)

    def _signal_pids(self, pids: Sequence[int], sig: int) -> list[int]:
        live = {w.pid for w in self.workers.values()}
        denied = []
        for pid in pids:
            if pid not in live:
                continue
            try:
                os.kill(pid, sig)
            except ProcessLookupError:
                pass
            except PermissionError:
                denied.append(pid)
        return denied

    def shutdown(self, code: int = EXIT_OK) -> int:
        """Stop and reap every child (SIGKILL after stop_timeout); returns the exit code.

        The group's halt code wins over `code`. Safe to call more than once.
        """
        self.stopping = True
        self.detach()
        denied = self._signal_all(signal.SIGTERM)
        for pid in list(self.retiring):  # old workers of a reload still finishing
            try:
                os.kill(pid, signal.SIGTERM)
            except (ProcessLookupError, PermissionError):
                pass
        deadline = time.monotonic() + self.stop_timeout
        killed = False
        while self.workers:
            self.handle_chld()
            if not self.workers:
                break
            if denied and not killed:  # until that fork has run user() too
                denied = self._signal_pids(denied, signal.SIGTERM)
            if time.monotonic() > deadline and not killed:
                log.warning(G, "%d worker(s) still running after %g s: SIGKILL",
                            len(self.workers), self.stop_timeout)
                if self._signal_all(signal.SIGKILL):
                    log.warning(G, "not allowed to signal some workers; they stop when this leader exits")
                killed = True
                deadline = time.monotonic() + 5.0
            elif killed and time.monotonic() > deadline:
                break  # unkillable (D state): give up waiting
            self._pause(0.05)
        if self._queue is not None:
            self._queue.drain()
            self._queue.uninstall()
            self._queue.close()
            self._queue = None
        return self.exit_code if self.exit_code is not None else code

    def _pause(self, timeout: float) -> None:
        """Wait for a signal (SIGCHLD) up to `timeout` s; select(), never time.sleep(),
        which fails under libfaketime (see tests/scenarios)."""
        if self._queue is not None:
            self._queue.wait(timeout)
            self._queue.drain()  # already stopping: a repeated TERM/INT changes nothing
        else:
            import select

            select.select([], [], [], timeout)

    def __enter__(self) -> "Arbiter":
        return self

    def __exit__(self, *exc) -> None:
        self.shutdown()
