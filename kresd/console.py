"""The interactive console on stdin/stdout (kresd's tty REPL).

Owns: reading lines from a file descriptor without blocking the loop
(loop.add_reader), evaluating each with Engine.eval and printing the result,
the `> ` prompt (hidden with -q).
Must not: stop the daemon on EOF: when stdin closes (e.g. `kresd < /dev/null`
or a closed pipe) the console detaches and the worker keeps serving; quit()
or SIGTERM stop it. Bad commands print an error and the engine keeps working.
"""
from __future__ import annotations

import os
import sys


class Console:
    def __init__(self, engine, *, fd: int | None = None, out=None, prompt: bool = True):
        self.engine = engine
        self.fd = sys.stdin.fileno() if fd is None else fd
        self.out = out or sys.stdout
        self.prompt = prompt
        self.loop = None
        self._buf = b""
        self.closed = False

    def start(self, loop) -> None:
        self.loop = loop
        os.set_blocking(self.fd, False)
        loop.add_reader(self.fd, self._readable)
        self._show_prompt()

    def stop(self) -> None:
        if self.loop is not None and not self.closed:
            self.loop.remove_reader(self.fd)
        self.closed = True

    def _show_prompt(self) -> None:
        if self.prompt:
            self.out.write("> ")
            self.out.flush()

    def _readable(self) -> None:
        try:
            data = os.read(self.fd, 65536)
        except BlockingIOError:
            return
        except OSError:
            data = b""
        if not data:
            if self._buf.strip():
                self.feed_line(self._buf.decode("utf-8", "replace"))
            self._buf = b""
            self.stop()
            return
        self._buf += data
        while b"\n" in self._buf:
            line, self._buf = self._buf.split(b"\n", 1)
            self.feed_line(line.decode("utf-8", "replace"))
            self._show_prompt()

    def feed_line(self, line: str) -> str:
        """Evaluate one line and print the result (also used by tests)."""
        line = line.strip()
        if not line:
            return ""
        result = self.engine.eval(line)
        if result:
            self.out.write(result + "\n")
            self.out.flush()
        return result
