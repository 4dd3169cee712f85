"""Binary runner: scenarios through the real `kresd` executable, the way Deckard runs it.

Owns: where the binary is (a full path: $KRESD_BINARY or the project's
.venv/bin/kresd, never a bare `kresd`, since Debian's /usr/sbin/kresd may be on
PATH), whether this host can run it (root or user namespaces, `ip`,
libfaketime), starting one `unshare -rn python -m tests.scenarios.nsdriver`
per scenario and QMIN mode (a fresh network namespace that dies with its
processes), the overall per-run timeout (the whole process group is killed),
parallel runs, and turning the driver's JSON line into a `replay.Outcome`.
Must not: play steps or answer queries (nsdriver.py, responder.py), or touch
the host's network namespace.
"""
from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Iterable, Iterator, Optional

from . import nsdriver, replay
from .responder import Exchange

PROJECT_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_KRESD = Path(os.environ.get("KRESD_BINARY", PROJECT_ROOT / ".venv" / "bin" / "kresd"))
RUN_TIMEOUT_BASE = 40.0  # start-up, stop and namespace setup
RUN_TIMEOUT_PER_QUERY = nsdriver.QUERY_TIMEOUT + 2.0
RUN_TIMEOUT_MAX = 600.0


class Unavailable(Exception):
    """This host cannot run the binary mode (reason in str())."""


_PREFIX: Optional[list] = None


def unshare_prefix() -> list:
    """`unshare -rn` when user namespaces work, else `unshare -n` as root."""
    global _PREFIX
    if _PREFIX is not None:
        return _PREFIX
    if shutil.which("unshare") is None:
        raise Unavailable("unshare(1) not found")
    candidates = [["unshare", "-rn"]] + ([["unshare", "-n"]] if os.geteuid() == 0 else [])
    errors = []
    for prefix in candidates:
        try:
            proc = subprocess.run(prefix + ["true"], capture_output=True, text=True, timeout=10)
        except (OSError, subprocess.TimeoutExpired) as exc:
            errors.append(f"{' '.join(prefix)}: {exc}")
            continue
        if proc.returncode == 0:
            _PREFIX = prefix
            return prefix
        errors.append(f"{' '.join(prefix)}: {proc.stderr.strip()}")
    raise Unavailable("cannot create a network namespace: " + "; ".join(errors))


def check_available(kresd: Path = DEFAULT_KRESD) -> None:
    """Raise Unavailable with a clear reason when binary mode cannot run here."""
    if not Path(kresd).is_absolute() or not os.access(kresd, os.X_OK):
        raise Unavailable(f"kresd binary {kresd} is not an executable absolute path")
    if shutil.which("ip") is None:
        raise Unavailable("ip(8) (iproute2) not found")
    if not os.path.exists(nsdriver.LIBFAKETIME):
        raise Unavailable(f"libfaketime not found at {nsdriver.LIBFAKETIME} (Debian package faketime)")
    unshare_prefix()


def run_timeout(n_queries: int) -> float:
    return min(RUN_TIMEOUT_MAX, RUN_TIMEOUT_BASE + RUN_TIMEOUT_PER_QUERY * n_queries)


def _outcome(data: dict) -> replay.Outcome:
    trace = [Exchange(**ex) for ex in data.get("trace", [])]
    return replay.Outcome(data["name"], data["qmin"], bool(data["passed"]), data.get("reason", ""),
                          trace, data.get("startup"), data.get("elapsed"), data.get("log_tail", ""))


def run_binary(path: Path, qmin: bool, kresd: Path = DEFAULT_KRESD, *, seed: int = 0,
               timeout: Optional[float] = None, keep: bool = False) -> replay.Outcome:
    """One scenario in one QMIN mode through the binary; never raises for failures."""
    from . import rpl  # noqa: PLC0415 - counting queries only
    name = Path(path).stem
    if timeout is None:
        try:
            queries = sum(1 for s in rpl.parse_file(path).steps if s.type == "QUERY")
        except rpl.RplError as exc:
            return replay.Outcome(name, qmin, False, f"scenario file error: {exc}")
        timeout = run_timeout(queries)
    cmd = unshare_prefix() + [sys.executable, "-m", "tests.scenarios.nsdriver", str(path),
                              "--qmin", "on" if qmin else "off", "--kresd", str(kresd),
                              "--seed", str(seed)] + (["--keep"] if keep else [])
    env = dict(os.environ, PYTHONPATH=str(PROJECT_ROOT), PYTHONDONTWRITEBYTECODE="1")
    started = time.monotonic()
    proc = subprocess.Popen(cmd, cwd=PROJECT_ROOT, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, start_new_session=True)
    try:
        stdout, stderr = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        _kill_group(proc)
        stdout, stderr = proc.communicate()
        return replay.Outcome(name, qmin, False, f"harness timeout: no result within {timeout:.0f}s "
                              "(namespace killed)", elapsed=time.monotonic() - started,
                              log_tail=stderr.decode(errors="replace")[-3000:])
    finally:
        _kill_group(proc)  # nothing of this run may outlive it (the daemon is in the group)
    lines = stdout.decode(errors="replace").strip().splitlines()
    try:
        return _outcome(json.loads(lines[-1]))
    except (IndexError, ValueError, KeyError) as exc:
        return replay.Outcome(name, qmin, False,
                              f"harness: driver exited {proc.returncode} without a result ({exc})",
                              log_tail=stderr.decode(errors="replace")[-3000:])


def _kill_group(proc: subprocess.Popen) -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


def run_many(jobs: Iterable[tuple], kresd: Path = DEFAULT_KRESD, workers: Optional[int] = None,
             seed: int = 0) -> Iterator[replay.Outcome]:
    """Run (path, qmin) jobs in parallel (each in its own namespace); outcomes in job order."""
    jobs = list(jobs)
    workers = workers or default_workers()
    with ThreadPoolExecutor(max_workers=workers) as pool:
        futures = [pool.submit(run_binary, path, qmin, kresd, seed=seed) for path, qmin in jobs]
        for fut in futures:
            yield fut.result()


def default_workers() -> int:
    """Runs are mostly waiting (start-up, timeouts): two per core, at least 2."""
    env = os.environ.get("KRESD_BINARY_JOBS")
    if env:
        return max(1, int(env))
    return max(2, 2 * (os.cpu_count() or 1))
