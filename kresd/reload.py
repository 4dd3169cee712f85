"""Rolling reload of a `kresd -f N` group: a new config in every process,
one process at a time, without dropping a query.

Owns: the leader's side of a reload, started by SIGHUP to the leader (the
`reload()` console command sends it from any instance, after checking the
config there so that a bad one is refused on that console):
 1. the config is checked again in a sandbox (`kresd --check-config` with the
    group's own config files and rundir, a subprocess); a config that fails
    changes nothing and the error is logged;
 2. each worker process in turn is replaced: a fresh process of the same
    worker id is started (fork+exec with the inherited listening sockets,
    the respawn path of kresd/supervisor.py), and only once it serves (its
    `tty/<PID>` control socket exists) is the old one sent SIGTERM, which
    stops reading and finishes its queries in flight. The set serving a
    socket never drops below N-1... in fact never below N: both serve for a
    moment;
 3. the leader, which served as worker 0, is replaced the same way by a
    new worker-0 process; it then stops serving (its readers go, its
    sockets stay open for later respawns, its tty/<PID> is removed) and stays
    as the group's supervisor only, as Knot Resolver 6's manager is. A later
    reload replaces all N workers, worker 0 included.
A replacement that dies while booting ends the reload: the old process of
that worker id keeps serving, nothing after it is touched.
Must not: block the leader's loop (all waits are asyncio sleeps), or restart
anything before the check passed.
"""
from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import tempfile
import time
from typing import Callable, Optional

from kresd import log

G = log.Group.SYSTEM
READY_TIMEOUT = 30.0  # seconds a replacement may take to serve
STOP_TIMEOUT = 15.0  # seconds an old worker may take to finish its queries


def check_command(exec_prefix: list[str], exec_args: list[str]) -> list[str]:
    return [*exec_prefix, "--check-config", *exec_args]


def check_sync(exec_prefix: list[str], exec_args: list[str]) -> tuple[bool, str]:
    """Run the config check (blocking; the console command's own check)."""
    try:
        r = subprocess.run(check_command(exec_prefix, exec_args), capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired) as e:
        return False, f"config check could not run: {e}"
    out = (r.stderr or r.stdout).strip()
    return r.returncode == 0, out


class Reload:
    """One reload of the arbiter's group (kresd/supervisor.py Arbiter.reload)."""

    def __init__(self, arb, retire_leader: Optional[Callable] = None):
        self.arb = arb
        self.retire_leader = retire_leader  # async callable: the leader stops serving

    async def run(self) -> bool:
        arb = self.arb
        if "-" in arb.exec_args:
            log.error(G, "reload: the config was read from stdin (-c -); nothing to re-read")
            return False
        # (not asyncio's subprocess: uvloop's takes SIGCHLD from the arbiter's queue)
        with tempfile.TemporaryFile() as out:
            proc = subprocess.Popen(check_command(arb.exec_prefix, arb.exec_args), stdin=subprocess.DEVNULL,
                                    stdout=out, stderr=subprocess.STDOUT)
            while proc.poll() is None:
                await asyncio.sleep(0.02)
            out.seek(0)
            text = out.read().decode(errors="replace").strip()
        if proc.returncode != 0:
            log.error(G, "reload: the new config is refused, nothing restarted: %s", text)
            return False
        log.notice(G, "reload: config checked, replacing %d worker(s) one at a time",
                   len(arb.workers) + (1 if arb.leader_serves else 0))
        for wid in sorted(arb.workers):
            if arb.stopping or not await self.replace(wid):
                return False
        if arb.leader_serves and self.retire_leader is not None and not arb.stopping:
            if not await self.replace(0, leader=True):
                return False
        log.notice(G, "reload: done")
        return True

    async def replace(self, wid: int, leader: bool = False) -> bool:
        arb = self.arb
        old = None if leader else arb.workers.get(wid)
        if leader:
            arb.detach_sockets()  # the leader's server closes its own socket objects
        new = arb.spawn(wid)
        if new is None:
            return False
        arb.replacing[new.pid] = old
        ok = await self._ready(new.pid)
        arb.replacing.pop(new.pid, None)
        if not ok:
            log.error(G, "reload: the new worker %d (pid %d) did not start serving; "
                      "the old one keeps serving, reload stopped", wid, new.pid)
            try:
                os.kill(new.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            if old is not None:
                arb.workers[wid] = old
            else:
                arb.workers.pop(wid, None)
            return False
        if leader:
            await self.retire_leader()
            arb.leader_serves = False
            log.notice(G, "reload: worker 0 now runs as pid %d; the leader (pid %d) only supervises",
                       new.pid, os.getpid())
            return True
        arb.retiring[old.pid] = old
        try:
            os.kill(old.pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
        deadline = time.monotonic() + STOP_TIMEOUT
        while old.pid in arb.retiring and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
            arb.handle_chld()
        log.info(G, "reload: worker %d replaced (pid %d -> %d)", wid, old.pid, new.pid)
        return True

    async def _ready(self, pid: int) -> bool:
        """The new process serves: its control socket exists (created after its
        listeners started, workers/main.py). False if it died first."""
        path = os.path.join("tty", str(pid))
        deadline = time.monotonic() + READY_TIMEOUT
        while time.monotonic() < deadline:
            if os.path.exists(path):
                return True
            self.arb.handle_chld()
            if pid in self.arb.replacing_dead:
                return False
            await asyncio.sleep(0.05)
        return False
