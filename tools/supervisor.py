"""An external supervisor for kresd: holds the listening sockets across restarts.

Owns: binding the listening sockets itself (`-a addr[@port]`, UDP+TCP,
SO_REUSEPORT) or adopting its own socket activation (LISTEN_FDS), starting
`<kresd> [kresd args] -S fd[:kind]...` with those fds, restarting it when it
exits (rate-limited; a boot-error exit code halts instead), SIGHUP = graceful
restart (start the new kresd, wait for its READY=1 on our NOTIFY_SOCKET or
`--ready-timeout`, then SIGTERM the old one), SIGTERM/SIGINT = stop kresd and
exit 0. Because the supervisor keeps the sockets open the whole time, queries
that arrive while no kresd reads them wait in the socket (UDP receive buffer,
TCP accept backlog) and the next kresd answers them.
Must not: run an event loop (blocking signal queue + waitpid, as gunicorn's
arbiter), touch DNS, or do anything in a signal handler but enqueue.

    python -m tools.supervisor [-a addr[@port]]... [--kresd CMD] [--ready-timeout S]
                               [--max-restarts K] [--restart-window T] [-- kresd args...]

`--kresd` is split like a shell word list; default: the `kresd` next to
sys.executable (the venv's entry point, never /usr/sbin/kresd).
"""
from __future__ import annotations

import argparse
import ipaddress
import os
import select
import shlex
import signal
import socket
import struct
import subprocess
import sys
import time
from dataclasses import dataclass
from typing import Optional, Sequence

from kresd import log, systemd
from kresd.errors import EXIT_OK, KresdError
from kresd.sockets import ListenSocket, adopt_fds, bind, fd_args, pass_fds
from kresd.supervisor import (BOOT_ERROR_CODES, EXIT_RESPAWN_LIMIT, RestartLimiter, SignalQueue,
                              describe_exit)
from workers.settings import Endpoint

G = log.Group.SYSTEM
UCRED = struct.Struct("iII")  # pid, uid, gid


def parse_addr(text: str, default_port: int = 53) -> Endpoint:
    """`addr`, `addr@port`, `addr#port` (kresd's -a syntax)."""
    addr, port = text, default_port
    for sep in ("@", "#"):
        if sep in text:
            addr, _, p = text.rpartition(sep)
            if not p.isdigit() or int(p) > 65535:
                raise ValueError(f"bad port in '{text}'")
            port = int(p)
            break
    addr = str(ipaddress.ip_address(addr.strip("[]")))
    return Endpoint(addr, port, "dns")


@dataclass
class Child:
    popen: subprocess.Popen
    started: float
    ready: bool = False
    retiring: bool = False  # SIGTERM sent after a graceful restart

    @property
    def pid(self) -> int:
        return self.popen.pid


class Supervisor:
    def __init__(self, command: Sequence[str], sockets: Sequence[ListenSocket], *,
                 ready_timeout: float = 10.0, max_restarts: int = 5, restart_window: float = 10.0,
                 stop_timeout: float = 10.0):
        self.command = list(command)
        self.sockets = list(sockets)
        self.ready_timeout = ready_timeout
        self.stop_timeout = stop_timeout
        self.limiter = RestartLimiter(max_restarts, restart_window)
        self.current: Optional[Child] = None  # the serving kresd
        self.starting: Optional[Child] = None  # its successor during a graceful restart
        self.retired: list[Child] = []
        self.exit_code: Optional[int] = None
        self.queue = SignalQueue((signal.SIGCHLD, signal.SIGTERM, signal.SIGINT, signal.SIGHUP))
        self.notify = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)
        self.notify.setsockopt(socket.SOL_SOCKET, socket.SO_PASSCRED, 1)
        self.notify.bind(f"\0kresd-supervisor-{os.getpid()}-{id(self)}")
        self.notify.setblocking(False)

    # -- children ------------------------------------------------------------------
    def spawn(self) -> Child:
        cmd = [*self.command, *fd_args(self.sockets)]
        env = dict(os.environ, NOTIFY_SOCKET="@" + self.notify.getsockname()[1:].decode())
        for var in ("LISTEN_PID", "LISTEN_FDS", "LISTEN_FDNAMES"):
            env.pop(var, None)
        p = subprocess.Popen(cmd, pass_fds=pass_fds(self.sockets), env=env, stdin=subprocess.DEVNULL)
        log.notice(G, "started kresd (pid %d): %s", p.pid, " ".join(cmd))
        return Child(p, time.monotonic())

    def children(self) -> list[Child]:
        return [c for c in (self.current, self.starting) if c is not None] + self.retired

    def reap(self) -> None:
        for child in self.children():
            try:
                pid, status = os.waitpid(child.pid, os.WNOHANG)
            except ChildProcessError:
                pid, status = child.pid, 0
            if pid == 0:
                continue
            code = os.waitstatus_to_exitcode(status)
            child.popen.returncode = code
            self.on_exit(child, code)

    def on_exit(self, child: Child, code: int) -> None:
        what = describe_exit(code)
        if child in self.retired:
            self.retired.remove(child)
            log.info(G, "old kresd (pid %d) %s", child.pid, what)
            return
        if child is self.starting:
            self.starting = None
            log.error(G, "error: new kresd (pid %d) %s before it was ready; keeping pid %d",
                      child.pid, what, self.current.pid if self.current else -1)
            if self.current is None:
                self._restart_after_death(code)
            return
        if child is self.current:
            self.current = None
            if self.exit_code is not None:
                return
            log.warning(G, "kresd (pid %d) %s", child.pid, what)
            self._restart_after_death(code)

    def _restart_after_death(self, code: int) -> None:
        if code in BOOT_ERROR_CODES:
            self.halt(code, f"kresd failed to start ({describe_exit(code)}); not restarting it")
        elif not self.limiter.record():
            self.halt(EXIT_RESPAWN_LIMIT, f"kresd died more than {self.limiter.max_restarts} times in "
                                          f"{self.limiter.window:g} s: crash loop, halting")
        else:
            self.current = self.spawn()

    def graceful_restart(self) -> None:
        if self.starting is not None:
            log.notice(G, "restart already in progress (pid %d)", self.starting.pid)
            return
        if self.current is None:
            self.current = self.spawn()
            return
        self.starting = self.spawn()

    def check_starting(self) -> None:
        """Promote the new kresd once ready (or after ready_timeout) and retire the old one."""
        new = self.starting
        if new is None:
            return
        if not new.ready and time.monotonic() - new.started < self.ready_timeout:
            return
        if not new.ready:
            log.warning(G, "new kresd (pid %d) sent no READY=1 within %g s; switching anyway",
                        new.pid, self.ready_timeout)
        old, self.current, self.starting = self.current, new, None
        if old is not None:
            old.retiring = True
            self.retired.append(old)
            self._kill(old, signal.SIGTERM)
            log.notice(G, "kresd restarted: pid %d serves, pid %d stopping", new.pid, old.pid)

    def read_notify(self) -> None:
        while True:
            try:
                data, anc, _, _ = self.notify.recvmsg(4096, socket.CMSG_SPACE(UCRED.size))
            except (BlockingIOError, InterruptedError):
                return
            pid = None
            for level, kind, blob in anc:
                if level == socket.SOL_SOCKET and kind == socket.SCM_CREDENTIALS:
                    pid = UCRED.unpack(blob[:UCRED.size])[0]
            if b"READY=1" in data.split(b"\n"):
                for child in (self.starting, self.current):
                    if child is not None and child.pid == pid:
                        child.ready = True
                        log.info(G, "kresd (pid %d) is ready", pid)

    @staticmethod
    def _kill(child: Child, sig: int) -> None:
        try:
            os.kill(child.pid, sig)
        except ProcessLookupError:
            pass

    # -- main loop -----------------------------------------------------------------
    def halt(self, code: int, message: str) -> None:
        log.error(G, "error: %s (exit code %d)", message, code)
        self.exit_code = code

    def run(self) -> int:
        self.queue.install()
        try:
            self.current = self.spawn()
            while self.exit_code is None:
                timeout = 1.0 if self.starting is None else 0.1
                try:
                    select.select([self.queue.fileno(), self.notify], [], [], timeout)
                except InterruptedError:
                    pass
                self.read_notify()
                for sig in self.queue.drain():
                    if sig in (signal.SIGTERM, signal.SIGINT):
                        log.notice(G, "%s received, stopping kresd", signal.Signals(sig).name)
                        self.exit_code = EXIT_OK
                    elif sig == signal.SIGHUP and self.exit_code is None:
                        log.notice(G, "SIGHUP received: graceful restart")
                        self.graceful_restart()
                self.reap()
                self.check_starting()
            return self.stop_all()
        finally:
            self.queue.uninstall()
            self.queue.close()
            self.notify.close()

    def stop_all(self) -> int:
        for child in self.children():
            self._kill(child, signal.SIGTERM)
        deadline = time.monotonic() + self.stop_timeout
        killed = False
        while self.children():
            self.reap_quiet()
            if not self.children():
                break
            if time.monotonic() > deadline:
                if killed:
                    break
                for child in self.children():
                    self._kill(child, signal.SIGKILL)
                killed, deadline = True, time.monotonic() + 5.0
            time.sleep(0.02)
        return self.exit_code or EXIT_OK

    def reap_quiet(self) -> None:
        for child in self.children():
            try:
                pid, status = os.waitpid(child.pid, os.WNOHANG)
            except ChildProcessError:
                pid, status = child.pid, 0
            if pid:
                child.popen.returncode = os.waitstatus_to_exitcode(status)
                log.info(G, "kresd (pid %d) %s", pid, describe_exit(child.popen.returncode))
                if child is self.current:
                    self.current = None
                elif child is self.starting:
                    self.starting = None
                else:
                    self.retired.remove(child)


def default_kresd() -> str:
    return os.path.join(os.path.dirname(sys.executable), "kresd")


def main(argv: Optional[Sequence[str]] = None) -> int:
    p = argparse.ArgumentParser(prog="supervisor", description=__doc__.split("\n")[0])
    p.add_argument("-a", "--addr", action="append", default=[], metavar="addr[@port]",
                   help="bind this address (UDP+TCP) and hand it to kresd")
    p.add_argument("--kresd", default=default_kresd(), help="kresd command (default: %(default)s)")
    p.add_argument("--ready-timeout", type=float, default=10.0)
    p.add_argument("--max-restarts", type=int, default=5)
    p.add_argument("--restart-window", type=float, default=10.0)
    p.add_argument("-v", "--verbose", action="store_true")
    p.add_argument("kresd_args", nargs=argparse.REMAINDER, help="arguments for kresd (after --)")
    args = p.parse_args(argv)
    log.setup("debug" if args.verbose else "info")
    kresd_args = args.kresd_args[1:] if args.kresd_args[:1] == ["--"] else args.kresd_args
    try:
        endpoints = [parse_addr(a) for a in args.addr]
    except ValueError as e:
        p.error(str(e))
    try:
        socks = adopt_fds(systemd.listen_fds()) + bind(endpoints)
    except KresdError as e:
        log.error(G, "error: %s", e)
        return getattr(e, "exit_code", 1)
    if not socks:
        p.error("nothing to listen on: give -a addr[@port] or start under socket activation")
    sup = Supervisor([*shlex.split(args.kresd), *kresd_args], socks, ready_timeout=args.ready_timeout,
                     max_restarts=args.max_restarts, restart_window=args.restart_window)
    return sup.run()


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
