"""map(): run one expression on every kresd process sharing a rundir.

Owns: the leader's side of the map() transfer: checking the expression
(non-empty, one line, `compile_fn` says it compiles) before anything is sent,
finding the control sockets in `rundir/tty/`, skipping stale ones (connection
refused, vanished, not a socket), the exchange with each instance, running the
expression in-process for this process's own socket (connecting to itself
would deadlock its loop), ordering by worker id, and raising on any error.
Must not: evaluate Lua (the callables do), keep connections open, or retry.

Wire contract (the remote end is kresd/control.py):
  connect rundir/tty/<pid>; read the prompt "> " (2 bytes);
  send "__binary\\n"                       (no reply)
  mode 'json' (default, kresd's 'luaobj'):
    send "__json <expr>\\n"; read one frame (4-byte big-endian length + payload);
    payload = JSON {"id": worker_id, "pid": pid, "ok": true, "value": V}
              or {"id": ..., "pid": ..., "ok": false, "error": "msg"}
  mode 'strings' (kresd's map(cmd, 'strings')):
    send "__id\\n" -> frame JSON {"id", "pid", "count"}; send "<expr>\\n" -> frame with
    the printed output of the console eval (errors cannot be told from output).
On the engine side, `json_fn(expr)` evaluates the expression and returns its
value (lupa tables are fine: control.to_jsonable converts them; kresd 5.6 sends
krprint.serialize_lua text instead, see sandbox.lua _map_luaobj_call_wrapper);
it raises on a Lua error, whose message becomes "error".
Result order: by worker id (None last), then pid. The count is len(results).
Timeouts: `timeout` seconds per socket operation; a timeout is an error
(the instance is alive but does not answer), not a skip.
"""
from __future__ import annotations

import errno
import os
import socket
import stat
from dataclasses import dataclass
from typing import Any, Callable, Optional

from kresd import log
from kresd.control import CONTROL_DIR, FRAME, PROMPT, _connect_path, to_jsonable
from kresd.errors import KresdError

G = log.Group.SYSTEM
CompileFn = Callable[[str], Optional[str]]  # expr -> error message | None
_STALE = (errno.ECONNREFUSED, errno.ENOENT, errno.ENOTSOCK)


class MapError(KresdError):
    """map() failed: bad expression, an instance's error, or a broken exchange."""


@dataclass(frozen=True)
class MapResult:
    worker_id: Optional[int]
    pid: int
    value: Any  # JSON-decoded value (mode 'json') or the printed text (mode 'strings')
    path: str = ""


@dataclass(frozen=True)
class MapReply:
    results: list[MapResult]

    @property
    def count(self) -> int:
        return len(self.results)

    def values(self) -> list[Any]:
        return [r.value for r in self.results]


class _Stale(Exception):
    pass


def _recv_exact(s: socket.socket, n: int, path: str, what: str) -> bytes:
    buf = b""
    while len(buf) < n:
        chunk = s.recv(n - len(buf))
        if not chunk:
            raise MapError(f"map() error while communicating with {path}: connection closed ({what})")
        buf += chunk
    return buf


def _frame(s: socket.socket, path: str) -> bytes:
    (length,) = FRAME.unpack(_recv_exact(s, FRAME.size, path, "response length"))
    return _recv_exact(s, length, path, "response") if length else b""


def exchange(path: str, lines: list[str], timeout: float = 5.0) -> list[bytes]:
    """Send `__binary` then each line; one frame per line. _Stale if nobody listens."""
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(timeout)
    try:
        try:
            s.connect(_connect_path(path))
        except OSError as e:
            if e.errno in _STALE:
                raise _Stale(path) from e
            raise
        greeting = _recv_exact(s, len(PROMPT), path, "prompt")
        if greeting != PROMPT:
            raise MapError(f"map() error while communicating with {path}: unexpected greeting {greeting!r}")
        s.sendall(b"__binary\n")
        out = []
        for line in lines:
            s.sendall(line.encode() + b"\n")
            out.append(_frame(s, path))
        return out
    except socket.timeout:
        raise MapError(f"map() error while communicating with {path}: timed out after {timeout:g} s") from None
    except OSError as e:
        raise MapError(f"map() error while communicating with {path}: {e.strerror or e}") from e
    finally:
        s.close()


def check_expr(expr: str, compile_fn: Optional[CompileFn] = None) -> None:
    if not isinstance(expr, str) or not expr.strip():
        raise MapError("map() command must be a non-empty string")
    if "\n" in expr:
        raise MapError("map() command cannot contain literal \\n, escape it with \\010")
    if compile_fn is not None:
        err = compile_fn(expr)
        if err:
            raise MapError(f"failure when compiling map() command: {err}")


def control_sockets(directory: str) -> list[str]:
    """Socket files named by a PID in directory, sorted by PID."""
    try:
        names = os.listdir(directory)
    except FileNotFoundError:
        return []
    out = []
    for name in sorted((n for n in names if n.isdigit()), key=int):
        path = os.path.join(directory, name)
        try:
            if stat.S_ISSOCK(os.lstat(path).st_mode):
                out.append(path)
        except OSError:
            continue
    return out


def _decode_json(raw: bytes, path: str) -> dict:
    import json  # on the first map(), not at boot

    try:
        env = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        raise MapError(f"map() protocol error: {path} did not answer JSON: {raw[:200]!r}") from None
    if not isinstance(env, dict) or "pid" not in env:
        raise MapError(f"map() protocol error: {path} answered {raw[:200]!r}")
    return env


def _one(path: str, expr: str, mode: str, timeout: float) -> MapResult:
    if mode == "json":
        (raw,) = exchange(path, [f"__json {expr}"], timeout)
        env = _decode_json(raw, path)
        if not env.get("ok"):
            raise MapError(f"error when executing map() command on instance pid {env.get('pid')} "
                           f"({path}): {env.get('error')}")
        return MapResult(env.get("id"), int(env["pid"]), env.get("value"), path)
    raw_id, raw_out = exchange(path, ["__id", expr], timeout)
    ident = _decode_json(raw_id, path)
    return MapResult(ident.get("id"), int(ident["pid"]), raw_out.decode("utf-8", errors="replace"), path)


def _local(expr: str, mode: str, path: str, worker_id: Optional[int], local_json, local_eval) -> MapResult:
    pid = os.getpid()
    if mode == "json":
        if local_json is None:
            raise MapError("map(): no local evaluator for this instance")
        try:
            value = to_jsonable(local_json(expr))
        except Exception as e:  # noqa: BLE001 - reported like a remote error
            raise MapError(f"error when executing map() command on instance pid {pid} (this instance): {e}") from e
        return MapResult(worker_id, pid, value, path)
    if local_eval is None:
        raise MapError("map(): no local evaluator for this instance")
    return MapResult(worker_id, pid, local_eval(expr), path)


def map_expr(expr: str, rundir: str = ".", *, compile_fn: Optional[CompileFn] = None,
             mode: str = "json", timeout: float = 5.0, dirname: str = CONTROL_DIR,
             local_json: Optional[Callable[[str], Any]] = None,
             local_eval: Optional[Callable[[str], str]] = None,
             worker_id: Optional[int] = None) -> MapReply:
    """Run expr on every live instance with a socket in rundir/<dirname>/.

    This process's own socket (named by its PID) is not connected to: the
    expression runs through `local_json` / `local_eval` with `worker_id`.
    Raises MapError on a bad expression, an instance's error (its pid is in the
    message), or a broken exchange; stale sockets are skipped.
    """
    if mode not in ("json", "strings"):
        raise MapError("map() output format must be json or strings")
    check_expr(expr, compile_fn)
    directory = os.path.join(rundir, dirname)
    paths = control_sockets(directory)
    if not paths:
        raise MapError(f"no control sockets found in directory {os.path.abspath(directory)}")
    me = str(os.getpid())
    results = []
    for path in paths:
        if os.path.basename(path) == me:
            results.append(_local(expr, mode, path, worker_id, local_json, local_eval))
            continue
        log.debug(G, "executing map() on %s: %s", path, expr)
        try:
            results.append(_one(path, expr, mode, timeout))
        except _Stale:
            log.info(G, "map(): skipping stale control socket %s", path)
    results.sort(key=lambda r: (r.worker_id is None, r.worker_id if r.worker_id is not None else 0, r.pid))
    return MapReply(results)
