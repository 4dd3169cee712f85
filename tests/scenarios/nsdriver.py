"""In-namespace driver of the binary runner: one scenario, one QMIN mode, the real daemon.

    unshare -rn python -m tests.scenarios.nsdriver SCENARIO.rpl --qmin on --kresd /path/to/kresd

Owns, inside a fresh network namespace (binary.py starts it there): the
addresses (netservers.setup_namespace), the scripted servers on real sockets,
the working directory (rendered kresd.j2 as `config`, trust anchors under
`ta/`, the libfaketime timestamp file), starting `kresd -n` with cwd = the
working directory and libfaketime preloaded, the 5 s TCP-accept deadline,
playing the steps (QUERY over UDP from the harness address; CHECK_ANSWER as
in-process; TIME_PASSES rewrites the timestamp file atomically), SIGTERM and
the exit-code check. Prints one JSON line (the outcome) on stdout.
Must not: run in the host's namespace (netservers refuses), leave the daemon
running (it gets PR_SET_PDEATHSIG and is killed on every exit path), or use
any answer logic of its own (responder.py, match.py, replay.Player).
"""
from __future__ import annotations

import argparse
import ctypes
import datetime
import json
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import traceback
from pathlib import Path
from typing import Optional

from . import config, netservers, replay, rpl, template
from .responder import Responder
from .rpl import Step

LIBFAKETIME = "/usr/lib/x86_64-linux-gnu/faketime/libfaketimeMT.so.1"
STARTUP_TIMEOUT = 5.0  # README: accept TCP within 5 s of exec
QUERY_TIMEOUT = 12.0  # longer than the resolver's own 10 s limit per request
STOP_TIMEOUT = 5.0  # SIGTERM -> exit
LOG_TAIL_LINES = 40
PR_SET_PDEATHSIG = 1


def faketime_stamp(t: float) -> str:
    """libfaketime's absolute start format, local time (as Deckard writes it)."""
    return datetime.datetime.fromtimestamp(int(t)).strftime("@%Y-%m-%d %H:%M:%S")


class FakeTimeFile:
    """FAKETIME_TIMESTAMP_FILE: the scenario's start, rewritten at each TIME_PASSES."""

    def __init__(self, path: Path, start: float):
        self.path, self.now = Path(path), float(start)
        self.write()

    def write(self) -> None:
        tmp = self.path.with_name(self.path.name + ".next")
        tmp.write_text(faketime_stamp(self.now) + "\n", encoding="ascii")
        os.replace(tmp, self.path)  # atomic: the daemon never reads half a file

    def jump(self, seconds: float) -> None:
        self.now += float(seconds)
        self.write()


def daemon_env(timefile: Path, libfaketime: str = LIBFAKETIME) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("FAKETIME", "PYTHON", "LD_"))}
    env.update(LD_PRELOAD=libfaketime, FAKETIME_DONT_FAKE_MONOTONIC="1", FAKETIME_NO_CACHE="1",
               FAKETIME_TIMESTAMP_FILE=str(timefile))
    return env


def _pdeathsig() -> None:  # runs in the child between fork and exec
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)


class Daemon:
    """The real `kresd -n` under test."""

    def __init__(self, kresd: str, workdir: Path, env: dict):
        self.workdir = workdir
        self.log_path = workdir / "kresd.log"
        self._log = open(self.log_path, "wb")  # noqa: SIM115 - closed in stop()
        self.started = time.monotonic()
        self.proc = subprocess.Popen([kresd, "-n"], cwd=workdir, env=env, stdin=subprocess.DEVNULL,
                                     stdout=self._log, stderr=subprocess.STDOUT,
                                     preexec_fn=_pdeathsig)

    def alive(self) -> bool:
        return self.proc.poll() is None

    def stop(self, timeout: float = STOP_TIMEOUT) -> Optional[str]:
        """SIGTERM; None when it exits 0 in time, else what went wrong."""
        problem = None
        if self.proc.poll() is not None:
            problem = f"kresd had already exited with code {self.proc.returncode} before SIGTERM"
        else:
            self.proc.send_signal(signal.SIGTERM)
            try:
                code = self.proc.wait(timeout)
                if code != 0:
                    problem = f"kresd exited with code {code} on SIGTERM (expected 0)"
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
                problem = f"kresd did not exit within {timeout:.0f}s of SIGTERM (killed)"
        self._log.close()
        return problem

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                pass
        if not self._log.closed:
            self._log.close()

    def log_tail(self, lines: int = LOG_TAIL_LINES) -> str:
        try:
            text = self.log_path.read_text(encoding="utf-8", errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])


class BinaryPlayer(replay.Player):
    """replay.Player whose queries go over UDP to the daemon and whose clock is libfaketime's."""

    def __init__(self, scn, ctx, responder: Responder, timefile: FakeTimeFile, daemon: Daemon,
                 seed: int = 0, query_timeout: float = QUERY_TIMEOUT):
        super().__init__(scn, ctx, None, responder, None, seed)
        self.timefile, self.daemon, self.query_timeout = timefile, daemon, query_timeout

    def exchange(self, step: Step, wire: bytes, want_answer: bool) -> Optional[bytes]:
        fam = socket.AF_INET6 if ":" in self.ctx.self_addr else socket.AF_INET
        with socket.socket(fam, socket.SOCK_DGRAM) as sock:
            sock.bind((self.ctx.client_addr, 0))
            sock.connect((self.ctx.self_addr, 53))
            sock.send(wire)
            if not want_answer:
                return None  # Deckard reads no answer to RAW queries
            deadline = time.monotonic() + self.query_timeout
            while True:
                remaining = deadline - time.monotonic()
                if remaining <= 0 or not self.daemon.alive():
                    break
                sock.settimeout(min(remaining, 0.5))
                try:
                    data = sock.recv(65535)
                except socket.timeout:
                    continue
                except ConnectionRefusedError:
                    break
                # A late answer to an earlier query (a RAW one, whose socket
                # closed unread) can land on this socket when the kernel hands
                # out the same ephemeral port again: not ours unless the ID is.
                if data[:2] == wire[:2]:
                    return data
        if not self.daemon.alive():
            raise replay.StepFailed(f"step {step.id} QUERY: kresd exited with code "
                                    f"{self.daemon.proc.returncode} while resolving")
        return None  # CHECK_ANSWER reports "no answer from the preceding query"

    def step_time_passes(self, step: Step) -> None:
        self.timefile.jump(step.elapse)


def run(scn_path: Path, qmin: bool, kresd: str, workdir: Path, seed: int = 0,
        startup_timeout: float = STARTUP_TIMEOUT, query_timeout: float = QUERY_TIMEOUT) -> dict:
    """Play one scenario against the binary; the outcome as a JSON-able dict."""
    scn = rpl.parse_file(scn_path)
    ctx = config.context(scn)
    out = dict(name=scn.name, qmin=qmin, passed=False, reason="", trace=[], startup=None, log_tail="")
    t0 = time.monotonic()
    addrs = netservers.scenario_addresses(scn, ctx)
    netservers.setup_namespace(addrs)
    responder = Responder(scn)
    servers = netservers.SocketServers(responder, addrs)
    servers.bind()  # the thread starts after the daemon is forked (preexec_fn and threads)
    daemon = None
    try:
        named = set(responder.addresses())  # a range ADDRESS must be served; other mentions may not
        fatal = [(a, e) for a, e in servers.failed if a in named]
        if fatal:
            out["reason"] = f"harness: cannot serve on {fatal[0][0]}: {fatal[0][1]}"
            return out
        template.render(ctx, qmin, workdir)
        timefile = FakeTimeFile(workdir / ".time", ctx.start_time)
        daemon = Daemon(kresd, workdir, daemon_env(timefile.path))
        servers.serve()
        up = netservers.wait_tcp(ctx.self_addr, 53, daemon.started + startup_timeout,
                                 time.monotonic, daemon.alive)
        if not up:
            out["log_tail"] = daemon.log_tail()
            if not daemon.alive():
                out["reason"] = (f"kresd exited with code {daemon.proc.poll()} before accepting TCP on "
                                 f"{ctx.self_addr}:53")
            else:
                out["reason"] = (f"kresd did not accept TCP on {ctx.self_addr}:53 within "
                                 f"{startup_timeout:.0f}s of exec")
            return out
        out["startup"] = round(time.monotonic() - daemon.started, 3)
        player = BinaryPlayer(scn, ctx, responder, timefile, daemon, seed, query_timeout)
        failure = _play(player)
        stop_problem = daemon.stop()
        reasons = responder.reasons(failure)
        if servers.crash:
            reasons.append(servers.crash)
        if stop_problem:
            reasons.append(stop_problem)
        drops = udp_drops()
        if reasons and drops:
            reasons.append(f"the kernel dropped {drops} UDP datagrams in this namespace (a receive buffer "
                           "was full: the daemon drained its socket too slowly)")
        out.update(passed=not reasons, reason=" | ".join(reasons))
        if reasons:
            out["log_tail"] = daemon.log_tail()
        return out
    finally:
        if daemon is not None:
            daemon.kill()
        servers.stop()
        out["trace"] = [ex.to_dict() for ex in responder.trace]
        out["elapsed"] = round(time.monotonic() - t0, 3)


def udp_drops() -> int:
    """RcvbufErrors of this namespace's UDP stack: datagrams the kernel dropped (buffer full)."""
    try:
        lines = [ln.split() for ln in Path("/proc/net/snmp").read_text().splitlines() if ln.startswith("Udp:")]
        return int(dict(zip(lines[0][1:], lines[1][1:])).get("RcvbufErrors", 0))
    except (OSError, IndexError, ValueError):
        return 0


def _play(player: BinaryPlayer) -> Optional[str]:
    try:
        player.play()
    except replay.StepFailed as exc:
        return str(exc)
    return None


def _args(argv):
    parser = argparse.ArgumentParser(prog="python -m tests.scenarios.nsdriver")
    parser.add_argument("scenario", type=Path)
    parser.add_argument("--qmin", choices=("on", "off"), required=True)
    parser.add_argument("--kresd", required=True, help="full path of the kresd binary")
    parser.add_argument("--seed", type=int, default=random.randrange(1 << 30))
    parser.add_argument("--keep", action="store_true", help="keep the working directory")
    parser.add_argument("--startup-timeout", type=float, default=STARTUP_TIMEOUT)
    parser.add_argument("--query-timeout", type=float, default=QUERY_TIMEOUT)
    return parser.parse_args(argv)


def main(argv=None) -> int:
    args = _args(argv)
    workdir = Path(tempfile.mkdtemp(prefix=f"kresd-bin-{args.scenario.stem}-"))
    try:
        out = run(args.scenario, args.qmin == "on", args.kresd, workdir, args.seed,
                  args.startup_timeout, args.query_timeout)
    except Exception as exc:  # noqa: BLE001 - every harness problem becomes a reported failure
        out = dict(name=args.scenario.stem, qmin=args.qmin == "on", passed=False, trace=[],
                   reason=f"harness error: {type(exc).__name__}: {exc}",
                   log_tail=traceback.format_exc(limit=5))
    if args.keep:
        out["workdir"] = str(workdir)
    else:
        shutil.rmtree(workdir, ignore_errors=True)
    sys.stdout.write(json.dumps(out) + "\n")
    sys.stdout.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())
