"""The per-process control socket `rundir/tty/<PID>`: kresd's console protocol.

Owns: the socket file (the `tty/` directory is created if missing; a stale
socket with our name, or any socket in the directory that refuses
connections, is removed; ours is removed at `close()`), the asyncio unix
server, the line protocol and kresd's binary mode, the `__json` pseudo-command
used by map() (kresd/fanout.py), and logging each command.
Must not: evaluate Lua itself (the injected `eval_fn` does), block the loop
beyond one eval, or let an exception escape a connection callback.

Wire protocol (kresd 5.6 daemon/io.c, checked against /usr/sbin/kresd 5.6.0):
  on connect           server writes the prompt "> "
  "<line>\\n"          text mode: eval_fn(line) + "\\n" + "> " (an empty output
                       still gives "\\n> "). A trailing "\\r" is dropped.
  "__binary\\n"        no reply; from now on every reply is one frame:
                       4-byte big-endian unsigned length + the output bytes
                       (no newline, no prompt; an empty output is length 0).
  "__json <expr>\\n"   kresd-py only (map() transfer): the reply is a JSON object
                       {"id": worker_id, "pid": pid, "ok": true, "value": V}
                       or {"id": ..., "pid": ..., "ok": false, "error": "msg"},
                       V = json_fn(expr) made JSON-able (see `to_jsonable`):
                       framed in binary mode, a text line otherwise.
  "__id\\n"            kresd-py only: {"id": worker_id, "pid": pid, "count": n}.
A line longer than MAX_LINE closes the connection. A bad command returns its
error text (eval_fn's contract: returns text, never raises) and the process
keeps serving; any number of clients may be connected at once.

Logging: commands typed in text mode and their output are logged at notice
(an operator's console, as the issue asks); binary-mode commands (map() from
the leader, scripts) at debug, so a monitoring loop does not flood the log.
"""
from __future__ import annotations

import asyncio
import errno
import os
import socket
import struct
from typing import Any, Callable, Optional

from kresd import log

G = log.Group.CONTROL
CONTROL_DIR = "tty"  # issue 4 names rundir/tty/<PID>; kresd 5.6 itself uses control/<PID>
PROMPT = b"> "
BINARY = "__binary"
JSON_CMD = "__json"
ID_CMD = "__id"
MAX_LINE = 1 << 20
FRAME = struct.Struct(">I")

EvalFn = Callable[[str], str]
JsonFn = Callable[[str], Any]  # may raise: the error text goes back as "error"


def to_jsonable(value: Any, _depth: int = 0) -> Any:
    """Python/lupa values -> JSON-able: Lua tables with keys 1..n become lists,
    other tables dicts with string keys; unknown objects their str()."""
    if _depth > 64:
        raise ValueError("value nested too deeply")
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, bytes):
        return value.decode("utf-8", errors="replace")
    if isinstance(value, (list, tuple)):
        return [to_jsonable(v, _depth + 1) for v in value]
    items = getattr(value, "items", None)
    if callable(items):
        pairs = list(items())
        keys = [k for k, _ in pairs]
        if pairs and all(isinstance(k, int) and not isinstance(k, bool) for k in keys) \
                and sorted(keys) == list(range(1, len(keys) + 1)):
            return [to_jsonable(v, _depth + 1) for _, v in sorted(pairs, key=lambda kv: kv[0])]
        return {str(k): to_jsonable(v, _depth + 1) for k, v in pairs}
    return str(value)


def socket_path(rundir: str = ".", pid: Optional[int] = None, dirname: str = CONTROL_DIR) -> str:
    return os.path.join(os.path.abspath(rundir), dirname, str(os.getpid() if pid is None else pid))


def _connect_path(path: str) -> str:
    """A path short enough for sun_path (108 bytes): relative to the cwd when needed."""
    if len(os.fsencode(path)) < 100:
        return path
    return os.path.relpath(path)


def is_stale(path: str, timeout: float = 1.0) -> bool:
    """True if nobody accepts connections on the unix socket at path (refused/missing)."""
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(timeout)
    try:
        s.connect(_connect_path(path))
        return False
    except (ConnectionRefusedError, FileNotFoundError):
        return True
    except OSError as e:
        return e.errno in (errno.ECONNREFUSED, errno.ENOENT, errno.ENOTSOCK)
    finally:
        s.close()


def _pid_alive(name: str) -> bool:
    """True if `name` is the pid of a live process other than this one: its socket
    may refuse connections only because it is bound and not listening yet."""
    if not name.isdigit() or int(name) == os.getpid():
        return False
    try:
        os.kill(int(name), 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    except OverflowError:
        return False
    return True


def remove_stale(directory: str) -> list[str]:
    """Unlink every socket in directory that refuses connections and whose process
    (its name) is gone; returns the removed paths."""
    removed = []
    try:
        names = os.listdir(directory)
    except FileNotFoundError:
        return removed
    for name in names:
        path = os.path.join(directory, name)
        try:
            import stat

            if not stat.S_ISSOCK(os.lstat(path).st_mode):
                continue
        except OSError:
            continue
        if is_stale(path) and not _pid_alive(name):
            try:
                os.unlink(path)
                removed.append(path)
            except OSError:
                pass
    return removed


class ControlServer:
    """One process's console socket. `await start()` after the config, `await close()` at exit."""

    def __init__(self, eval_fn: EvalFn, rundir: str = ".", *, json_fn: Optional[JsonFn] = None,
                 worker_id: Optional[int] = None, worker_count: Optional[int] = None,
                 dirname: str = CONTROL_DIR, pid: Optional[int] = None, clean_stale: bool = True):
        self.eval_fn = eval_fn
        self.json_fn = json_fn
        self.worker_id = worker_id
        self.worker_count = worker_count
        self.pid = os.getpid() if pid is None else pid
        self.path = socket_path(rundir, self.pid, dirname)
        self.clean_stale = clean_stale
        self._server: Optional[asyncio.base_events.Server] = None
        self._conns: set[asyncio.Task] = set()

    def describe(self) -> dict:
        """The `net.list()` item, as kresd 5.6 prints its control socket."""
        return {"kind": "control", "transport": {"family": "unix", "path": self.path, "protocol": "stream"}}

    async def start(self) -> None:
        directory = os.path.dirname(self.path)
        os.makedirs(directory, mode=0o770, exist_ok=True)
        if self.clean_stale:
            for p in remove_stale(directory):
                log.info(G, "removed stale control socket %s", p)
        if os.path.lexists(self.path):
            if not is_stale(self.path):
                from kresd.errors import BootError

                raise BootError(f"control socket {self.path} is in use by another process")
            os.unlink(self.path)
        self._server = await asyncio.start_unix_server(self._client, path=_connect_path(self.path))
        log.debug(G, "control socket %s", self.path)

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
            for t in list(self._conns):
                t.cancel()
            if self._conns:
                await asyncio.gather(*self._conns, return_exceptions=True)
            try:
                await asyncio.wait_for(self._server.wait_closed(), 1.0)
            except Exception:  # noqa: BLE001 - closing anyway
                pass
            self._server = None
        try:
            os.unlink(self.path)
        except FileNotFoundError:
            pass
        except OSError as e:
            log.warning(G, "cannot remove control socket %s: %s", self.path, e)

    # -- protocol ----------------------------------------------------------------
    async def _client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        self._conns.add(task)
        try:
            writer.write(PROMPT)
            binary = False
            buf = b""
            while True:
                data = await reader.read(65536)
                if not data:
                    break
                buf += data
                while b"\n" in buf:
                    raw, buf = buf.split(b"\n", 1)
                    line = raw.decode("utf-8", errors="replace").rstrip("\r")
                    if line == BINARY:
                        binary = True
                        continue
                    out = self.execute(line, binary)
                    writer.write(self.frame(out, binary))
                if len(buf) > MAX_LINE:
                    log.warning(G, "control connection: line longer than %d bytes, closing", MAX_LINE)
                    break
                await writer.drain()
        except (ConnectionError, asyncio.CancelledError):
            pass
        except Exception as e:  # noqa: BLE001 - never kill the server for one client
            log.error(G, "control connection failed: %r", e)
        finally:
            self._conns.discard(task)
            try:
                writer.close()
            except Exception:  # noqa: BLE001
                pass

    @staticmethod
    def frame(out: str, binary: bool) -> bytes:
        data = out.encode("utf-8", errors="replace")
        if binary:
            return FRAME.pack(len(data)) + data
        return data + b"\n" + PROMPT

    def execute(self, line: str, binary: bool = False) -> str:
        """Run one console line (pseudo-commands included); never raises."""
        import json  # on the first command, not at boot

        cmd, _, rest = line.strip().partition(" ")
        if cmd == JSON_CMD:
            out = self.json_reply(rest.strip())
        elif cmd == ID_CMD and not rest.strip():
            out = json.dumps({"id": self.worker_id, "pid": self.pid, "count": self.worker_count})
        else:
            try:
                out = self.eval_fn(line)
            except Exception as e:  # noqa: BLE001 - eval_fn should not raise; be safe
                out = f"error: {e}"
            out = "" if out is None else str(out)
        level = log.debug if binary else log.notice
        level(G, "> %s", line)
        if out:
            level(G, "%s", out)
        return out

    def json_reply(self, expr: str) -> str:
        """The `__json <expr>` reply: envelope with id, pid and the value or error."""
        import json  # on the first command, not at boot

        env: dict[str, Any] = {"id": self.worker_id, "pid": self.pid}
        if self.json_fn is None:
            env.update(ok=False, error="map() transfer (__json) is not supported by this process")
            return json.dumps(env)
        try:
            value = to_jsonable(self.json_fn(expr))
            env.update(ok=True, value=value)
            return json.dumps(env)
        except Exception as e:  # noqa: BLE001 - the error goes back to the leader
            env.pop("value", None)
            env.update(ok=False, error=str(e) or type(e).__name__)
            return json.dumps(env)
