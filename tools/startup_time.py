"""Start-up time: from exec to the first answered UDP query, ours against kresd 5.6.

Owns: starting a resolver binary N times on a fresh rundir with a config that
answers one name locally (a hints entry: no upstream is needed), sending a
query every few milliseconds until one is answered, and reporting the time
from exec to that answer (median, min, max) per binary, the binaries
interleaved in the same run.
Must not: assert anything (it is a measuring tool, not a test), or run
outside a network namespace of its own when it binds port 53 (run it as
`unshare -n bash -c 'ip link set lo up && .venv/bin/python -m tools.startup_time'`).

    python -m tools.startup_time [-n 10] [--restart | --supervisor [--signal KILL|TERM]]
                                 [--addr 127.0.10.53] [--ours .venv/bin/kresd] [--kresd /usr/sbin/kresd]
                                 [--baseline OTHER/.venv/bin/kresd]

Modes (each binary started the same way, interleaved in one run):
- default: exec to the first answer of a cold start (first_answer);
- `--restart`: the silence of a SIGTERM + re-exec restart, the socket closed
  in between (restart_silence: systemd's Restart= without socket activation);
- `--supervisor`: the silence of a restart under tools/supervisor.py, which
  holds the socket: the kresd it started gets `--signal` (default KILL, a
  crash; TERM: a stop), the supervisor starts a new one, and the queries sent
  in between wait in the socket (supervised_silence).
`--baseline` adds another of our binaries to the same run (an install of an
earlier commit, e.g. a `git worktree` of main): before/after figures.
The time to the first answer bounds how long a restart (supervisor respawn,
systemd restart) leaves clients unanswered.

Example (the figures of issue 14):

    unshare -n bash -c 'ip link set lo up && .venv/bin/python -m tools.startup_time -n 20 --supervisor'
"""
from __future__ import annotations

import argparse
import os
import sys
import shutil
import signal
import socket
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

import dns.message
import dns.rdatatype

ROOT = Path(__file__).resolve().parent.parent
QNAME = "x.startup-probe."
ANSWER = "192.0.2.1"
CONFIG = f"""\
modules.load('hints > iterate')
hints['{QNAME.rstrip('.')}'] = '{ANSWER}'
cache.size = 10 * MB
"""
POLL = 0.002     # seconds between two probes
DEADLINE = 20.0  # give up on one start after this long


def probe(sock: socket.socket, addr: str) -> bool:
    """One query with a fresh ID; True if its own answer (not a late reply to
    an earlier probe) comes back within POLL seconds."""
    query = dns.message.make_query(QNAME, dns.rdatatype.A)
    try:
        sock.sendto(query.to_wire(), (addr, 53))
        deadline = time.monotonic() + POLL
        while True:
            sock.settimeout(max(deadline - time.monotonic(), 1e-4))
            reply = dns.message.from_wire(sock.recv(4096))
            if reply.id != query.id:
                continue  # a late answer to an earlier probe
            if not any(ANSWER in rr.to_text() for rr in reply.answer):
                raise RuntimeError(f"unexpected reply {reply}")
            return True
    except (socket.timeout, ConnectionRefusedError):
        return False


def first_answer(binary: str, addr: str, rundir: Path, config: Path) -> float:
    """Seconds from exec of `binary` to the first answer for QNAME on addr@53."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    t0 = time.monotonic()
    proc = subprocess.Popen([binary, "-n", "-q", "-a", f"{addr}@53", "-c", str(config), str(rundir)],
                            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        while time.monotonic() - t0 < DEADLINE:
            if proc.poll() is not None:
                raise RuntimeError(f"{binary} exited with {proc.returncode} before answering")
            if probe(sock, addr):
                return time.monotonic() - t0
        raise RuntimeError(f"{binary}: no answer within {DEADLINE} s")
    finally:
        sock.close()
        _stop(proc)


def _stop(proc: subprocess.Popen) -> None:
    """SIGTERM, SIGKILL after 5 s."""
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(5)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def restart_silence(binary: str, addr: str, rundir: Path, config: Path) -> float:
    """Seconds without an answer around a supervisor-style restart: a running
    `binary` gets SIGTERM, the same command is exec'd as soon as it has
    exited (as systemd's Restart= or a supervisor does), and a probe every
    POLL seconds measures from the last answer of the old process to the
    first answer of the new one."""
    cmd = [binary, "-n", "-q", "-a", f"{addr}@53", "-c", str(config), str(rundir)]
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)

    def answered() -> bool:
        return probe(sock, addr)

    old = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    new = None
    try:
        t0 = time.monotonic()
        while not answered():
            if time.monotonic() - t0 > DEADLINE:
                raise RuntimeError(f"{binary}: no answer within {DEADLINE} s")
        last = time.monotonic()
        old.send_signal(signal.SIGTERM)
        while old.poll() is None:  # the old one may still answer while it stops
            if answered():
                last = time.monotonic()
        new = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL)
        while not answered():
            if new.poll() is not None or time.monotonic() - last > DEADLINE:
                raise RuntimeError(f"{binary}: the restarted process did not answer")
        return time.monotonic() - last
    finally:
        sock.close()
        for proc in (old, new):
            if proc is not None and proc.poll() is None:
                _stop(proc)


def _children(pid: int) -> list[int]:
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as f:
            return [int(x) for x in f.read().split()]
    except OSError:
        return []


def _alive(pid: int) -> bool:
    """True while `pid` runs (a zombie not yet reaped counts as gone)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rpartition(")")[2].split()[0] != "Z"
    except OSError:
        return False


def supervised_silence(binary: str, addr: str, rundir: Path, config: Path, sig: int = signal.SIGKILL) -> float:
    """Seconds without an answer around a restart under tools/supervisor.py:
    the supervisor binds addr@53 and starts `binary ... -S fd`; once it
    answers, its kresd gets `sig`, the supervisor starts a new one, and the
    longest gap between two answers received (a probe every POLL seconds;
    probes sent in the gap wait in the supervisor's socket and count when the
    new kresd answers them) from the last answer before the signal to the
    first answer after the old process is gone is the silence."""
    sup = subprocess.Popen([sys.executable, "-m", "tools.supervisor", "-a", f"{addr}@53", "--kresd", binary,
                            "--max-restarts", "1000", "--", "-n", "-q", "-c", str(config), str(rundir)],
                           cwd=ROOT, stdin=subprocess.DEVNULL,  # no PYTHONPATH: kresd runs from its install
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        t0 = time.monotonic()
        while not probe(sock, addr):
            if sup.poll() is not None or time.monotonic() - t0 > DEADLINE:
                raise RuntimeError(f"{binary} under the supervisor: no answer")
        old = _children(sup.pid)
        if len(old) != 1:
            raise RuntimeError(f"supervisor has children {old}, expected one kresd")
        time.sleep(0.05)  # settle: the first answer may come before the rest of the boot
        while sock.setblocking(False) or True:  # drain late replies
            try:
                sock.recv(4096)
            except BlockingIOError:
                break
        sent: set[int] = set()
        answers: list[float] = []
        signalled = False
        gone = None  # when the old process was first seen gone
        deadline = time.monotonic() + DEADLINE
        while time.monotonic() < deadline:
            query = dns.message.make_query(QNAME, dns.rdatatype.A)
            sent.add(query.id)
            try:
                sock.sendto(query.to_wire(), (addr, 53))
            except ConnectionRefusedError:
                pass
            until = time.monotonic() + POLL
            while (left := until - time.monotonic()) > 0:
                sock.settimeout(left)
                try:
                    reply = dns.message.from_wire(sock.recv(4096))
                except (socket.timeout, ConnectionRefusedError):
                    break
                if reply.id in sent:
                    sent.discard(reply.id)
                    answers.append(time.monotonic())
            if not signalled and answers:
                answers = answers[-1:]  # the last answer before the signal
                os.kill(old[0], sig)
                signalled = True
            elif signalled and gone is None and not _alive(old[0]):
                gone = time.monotonic()
            elif gone is not None and answers[-1] > gone:  # answered by the new kresd
                return max(b - a for a, b in zip(answers, answers[1:]))
        raise RuntimeError(f"{binary} under the supervisor: no answer after the restart")
    finally:
        sock.close()
        sup.send_signal(signal.SIGTERM)
        try:
            sup.wait(10)
        except subprocess.TimeoutExpired:
            os.killpg(sup.pid, signal.SIGKILL)
            sup.wait()


def summary(times: list[float]) -> str:
    ms = sorted(t * 1000 for t in times)
    return f"median {statistics.median(ms):7.1f} ms   min {ms[0]:7.1f}   max {ms[-1]:7.1f}   (n={len(ms)})"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("-n", type=int, default=10, help="starts per binary")
    ap.add_argument("--addr", default="127.0.10.53")
    ap.add_argument("--ours", default=str(ROOT / ".venv" / "bin" / "kresd"))
    ap.add_argument("--kresd", default="/usr/sbin/kresd", help="reference binary ('' to skip)")
    ap.add_argument("--baseline", default="", help="another kresd-py binary to compare (e.g. main's install)")
    mode = ap.add_mutually_exclusive_group()
    mode.add_argument("--restart", action="store_true",
                      help="measure the silence of a SIGTERM + re-exec restart instead of a cold start")
    mode.add_argument("--supervisor", action="store_true",
                      help="measure the silence of a restart under tools/supervisor.py")
    ap.add_argument("--signal", default="KILL", choices=("KILL", "TERM"),
                    help="--supervisor: the signal that ends the running kresd")
    args = ap.parse_args(argv)
    binaries = {"kresd-py": args.ours}
    if args.baseline:
        binaries["baseline"] = args.baseline
    if args.kresd and os.path.exists(args.kresd):
        binaries["kresd 5.6"] = args.kresd
    results: dict[str, list[float]] = {name: [] for name in binaries}
    with tempfile.TemporaryDirectory(prefix="startup-") as tmp:
        config = Path(tmp) / "config"
        config.write_text(CONFIG)
        for i in range(args.n):
            for name, binary in binaries.items():  # interleaved: both see the same machine state
                rundir = Path(tmp) / f"run-{i}"
                shutil.rmtree(rundir, ignore_errors=True)
                rundir.mkdir()
                if args.supervisor:
                    took = supervised_silence(binary, args.addr, rundir, config,
                                              getattr(signal, "SIG" + args.signal))
                else:
                    took = (restart_silence if args.restart else first_answer)(binary, args.addr, rundir, config)
                results[name].append(took)
    if args.supervisor:
        print(f"restart silence under tools/supervisor.py (SIG{args.signal} to kresd; longest gap between answers)")
    elif args.restart:
        print("restart silence (last answer of the old process to first of the new)")
    else:
        print("exec to first answer")
    for name, times in results.items():
        print(f"{name:10s} {summary(times)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
