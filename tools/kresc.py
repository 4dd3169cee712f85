"""`kresc`: the console client of kresd's control sockets.

    kresc RUNDIR|SOCKET [COMMAND ...]

Owns: finding the socket (a path to `rundir/tty/<PID>`, or a rundir whose
leader is asked: the process with worker id 0, found through the `__id`
pseudo-command of kresd/control.py), sending commands in kresd's binary
mode (one length-framed reply per command, so a multi-line answer is never
confused with the prompt), and the two ways to use it:
  * one command (the words after the socket, joined by spaces): its output on
    stdout, exit 0; a command that failed (kresd answers "error: ...") exits 1;
  * no command: an interactive console with readline editing and a history
    file ($XDG_STATE_HOME/kresc/history, else ~/.local/state/kresc/history);
    Ctrl-D or `exit` ends it.
`map '...'` goes through like any other command (the leader fans it out).
Must not: evaluate anything itself or change what kresd answers; a socket
that cannot be reached is a clear message and exit 2.
"""
from __future__ import annotations

import json
import os
import socket
import struct
import sys
from pathlib import Path

FRAME = struct.Struct(">I")
EXIT_OK, EXIT_COMMAND_FAILED, EXIT_UNREACHABLE = 0, 1, 2
USAGE = "usage: kresc RUNDIR|SOCKET [COMMAND ...]   (no command: interactive console)"


class Unreachable(Exception):
    """No control socket could be reached."""


class Console:
    """One connection to a control socket, in binary mode."""

    def __init__(self, path: str, timeout: float = 30.0):
        self.path = path
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(timeout)
        try:
            self.sock.connect(path)
            self._read_prompt()
            self.sock.sendall(b"__binary\n")
        except OSError as e:
            self.sock.close()
            raise Unreachable(f"{path}: {e.strerror or e}") from None

    def _read_prompt(self) -> None:
        got = b""
        while not got.endswith(b"> "):
            chunk = self.sock.recv(2 - len(got) if len(got) < 2 else 1)
            if not chunk:
                raise OSError("connection closed before the prompt")
            got += chunk

    def _recv_exact(self, n: int) -> bytes:
        buf = bytearray()
        while len(buf) < n:
            chunk = self.sock.recv(n - len(buf))
            if not chunk:
                raise OSError("connection closed by kresd")
            buf += chunk
        return bytes(buf)

    def run(self, command: str) -> str:
        line = command.replace("\n", " ").encode("utf-8")
        self.sock.sendall(line + b"\n")
        (n,) = FRAME.unpack(self._recv_exact(FRAME.size))
        return self._recv_exact(n).decode("utf-8", "replace")

    def close(self) -> None:
        self.sock.close()


def _ident(path: str) -> dict | None:
    try:
        c = Console(path, timeout=3.0)
    except Unreachable:
        return None
    try:
        return json.loads(c.run("__id"))
    except (OSError, ValueError):
        return None
    finally:
        c.close()


def find_socket(target: str) -> str:
    """The socket to talk to: `target` itself, or the leader's in a rundir."""
    p = Path(target)
    if p.is_socket():
        return str(p)
    tty = p / "tty" if (p / "tty").is_dir() else p
    if not tty.is_dir():
        raise Unreachable(f"{target}: neither a control socket nor a rundir with tty/")
    best = None
    for sock in sorted(tty.iterdir()):
        if not sock.is_socket():
            continue
        ident = _ident(str(sock))
        if ident is None:
            continue  # stale: its process is gone
        if best is None or ident.get("id", 1 << 30) < best[0]:
            best = (ident.get("id", 1 << 30), str(sock))
        if best[0] == 0:
            break
    if best is None:
        raise Unreachable(f"{target}: no live control socket in {tty}")
    return best[1]


def history_file() -> Path:
    state = os.environ.get("XDG_STATE_HOME") or os.path.join(os.path.expanduser("~"), ".local", "state")
    return Path(state) / "kresc" / "history"


def interactive(console: Console) -> int:
    import readline

    hist = history_file()
    try:
        hist.parent.mkdir(parents=True, exist_ok=True)
        readline.read_history_file(hist)
    except OSError:
        pass
    readline.set_history_length(1000)
    prompt = "> " if sys.stdin.isatty() else ""
    try:
        while True:
            try:
                line = input(prompt)
            except EOFError:
                break
            except KeyboardInterrupt:
                print()
                continue
            if line.strip() in ("exit", "quit"):
                break
            if not line.strip():
                continue
            out = console.run(line)
            if out:
                print(out)
    except OSError as e:
        print(f"kresc: {e}", file=sys.stderr)
        return EXIT_UNREACHABLE
    finally:
        try:
            readline.write_history_file(hist)
        except OSError:
            pass
    return EXIT_OK


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if not argv or argv[0] in ("-h", "--help"):
        print(USAGE, file=sys.stderr if not argv else sys.stdout)
        return EXIT_OK if argv else EXIT_UNREACHABLE
    try:
        console = Console(find_socket(argv[0]))
    except Unreachable as e:
        print(f"kresc: {e}", file=sys.stderr)
        return EXIT_UNREACHABLE
    try:
        if len(argv) == 1:
            return interactive(console)
        try:
            out = console.run(" ".join(argv[1:]))
        except OSError as e:
            print(f"kresc: {console.path}: {e}", file=sys.stderr)
            return EXIT_UNREACHABLE
        if out:
            print(out)
        return EXIT_COMMAND_FAILED if out.startswith("error: ") else EXIT_OK
    finally:
        console.close()


if __name__ == "__main__":
    sys.exit(main())
