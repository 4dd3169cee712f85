"""Listening sockets of a kresd process group: bind, adopt inherited fds, describe.

Owns: the `ListenSocket` record (socket + kresd endpoint kind + where it came
from), `-S fd[:kind]` parsing with kresd 5.6 semantics, adopting inherited file
descriptors (from `-S`, systemd's LISTEN_FDS or a supervisor), binding
`Endpoint`s (through workers/server.py `bind_endpoints`, SO_REUSEPORT), the
`-S` arguments that hand the same sockets to an exec'd process, and the
`net.list()` description of a socket (kresd 5.6 table shape).
Must not: serve, fork, read the environment (kresd/systemd.py does) or log
per packet.

kresd 5.6 `-S fd[:kind]` (daemon/main.c, `kresd --help`: "Listen on given fd
(handed out by supervisor, :kind is optional)"):
  `N`        plain DNS; UDP or TCP is read from the socket itself (SO_TYPE)
  `N:tls`    DNS over TLS (case-insensitive)
  `N:<kind>` any other endpoint kind, passed on unchecked ('doh2', 'control', ...)
  anything else -> "incorrect value passed to '-S/--fd'" (a usage error).
An inherited stream socket that is not listening yet gets `listen()`.
"""
from __future__ import annotations

import os
import socket
from dataclasses import dataclass
from typing import Iterable, Sequence

from kresd.errors import EXIT_BIND, BootError
from workers.server import TCP_BACKLOG, bind_endpoints
from workers.settings import Endpoint

KIND_DNS = "dns"
KIND_TLS = "tls"
KIND_CONTROL = "control"


@dataclass(frozen=True)
class FdSpec:
    """One `-S fd[:kind]` argument (or one socket-activation fd)."""

    fd: int
    kind: str = KIND_DNS

    def arg(self) -> str:
        """The `-S` argument text: `N` for plain DNS (as kresd), else `N:kind`."""
        return str(self.fd) if self.kind == KIND_DNS else f"{self.fd}:{self.kind}"


@dataclass
class ListenSocket:
    """A bound (or inherited) listening socket and its kresd endpoint kind."""

    sock: socket.socket
    kind: str = KIND_DNS
    inherited: bool = False  # adopted from -S / LISTEN_FDS, not bound by this process

    def fileno(self) -> int:
        return self.sock.fileno()

    @property
    def protocol(self) -> str:
        return "udp" if self.sock.type == socket.SOCK_DGRAM else "tcp"

    def spec(self) -> FdSpec:
        return FdSpec(self.sock.fileno(), self.kind)

    def close(self) -> None:
        self.sock.close()


def parse_fd_spec(text: str) -> FdSpec:
    """kresd's `-S fd[:kind]`; ValueError with kresd's message on bad input."""
    num, sep, kind = text.partition(":")
    if not num.isdigit() or (sep and not kind):
        raise ValueError(f"incorrect value passed to '-S/--fd': {text}")
    if not sep:
        return FdSpec(int(num), KIND_DNS)
    if kind.lower() == KIND_TLS:
        kind = KIND_TLS
    return FdSpec(int(num), kind)


def adopt_fd(spec: FdSpec) -> ListenSocket:
    """Wrap an inherited fd (family and type are read from the fd); BootError if unusable.

    The socket takes ownership of the fd, is made non-blocking and close-on-exec
    (handing it on again goes through `pass_fds`, which clears that flag in the
    new process only). A stream socket is put into the listening state if needed.
    """
    try:
        sock = socket.socket(fileno=spec.fd)
    except OSError as e:
        raise BootError(f"-S {spec.arg()}: not a usable socket: {e.strerror or e}", EXIT_BIND) from e
    try:
        if sock.type == socket.SOCK_STREAM:
            if not sock.getsockopt(socket.SOL_SOCKET, socket.SO_ACCEPTCONN):
                sock.listen(TCP_BACKLOG)
        sock.setblocking(False)
        sock.set_inheritable(False)
    except OSError as e:
        sock.detach()  # leave the fd to its owner
        raise BootError(f"-S {spec.arg()}: {e.strerror or e}", EXIT_BIND) from e
    return ListenSocket(sock, spec.kind, inherited=True)


def adopt_fds(specs: Iterable[FdSpec]) -> list[ListenSocket]:
    """`adopt_fd` for each spec; on failure the ones adopted so far are released (not closed)."""
    out: list[ListenSocket] = []
    try:
        for spec in specs:
            out.append(adopt_fd(spec))
    except BaseException:
        for ls in out:
            ls.sock.detach()
        raise
    return out


def bind(endpoints: Sequence[Endpoint]) -> list[ListenSocket]:
    """Bind (SO_REUSEPORT) or adopt (ep.fd set) every endpoint; BootError(EXIT_BIND) on failure.

    Endpoint kinds 'dns', 'dns-udp', 'dns-tcp' all give sockets of kind 'dns'.
    """
    out: list[ListenSocket] = []
    try:
        for ep in endpoints:
            if ep.fd is not None:
                kind = KIND_DNS if ep.kind.startswith("dns") else ep.kind
                out.append(adopt_fd(FdSpec(ep.fd, kind)))
                continue
            for sock in bind_endpoints([ep]):
                out.append(ListenSocket(sock, KIND_DNS))
    except BaseException:
        for ls in out:
            (ls.sock.detach if ls.inherited else ls.sock.close)()
        raise
    return out


def fd_args(socks: Iterable[ListenSocket]) -> list[str]:
    """`-S` arguments handing these sockets (same fd numbers) to an exec'd kresd."""
    args: list[str] = []
    for ls in socks:
        args += ["-S", ls.spec().arg()]
    return args


def pass_fds(socks: Iterable[ListenSocket]) -> tuple[int, ...]:
    """The fd numbers to give `subprocess.Popen(pass_fds=...)`."""
    return tuple(ls.fileno() for ls in socks)


def _family_name(fam: int) -> str:
    return {socket.AF_INET: "inet4", socket.AF_INET6: "inet6", socket.AF_UNIX: "unix"}.get(fam, str(fam))


def describe(ls: ListenSocket) -> dict:
    """One `net.list()` item as kresd 5.6 prints it.

    {'kind': 'dns', 'transport': {'family': 'inet4', 'ip': '127.0.0.1',
     'port': 53, 'protocol': 'udp', 'freebind': False}}
    unix sockets: {'family': 'unix', 'path': ..., 'protocol': 'stream'|'dgram'}.
    """
    sock = ls.sock
    fam = sock.family
    transport: dict = {"family": _family_name(fam)}
    if fam == socket.AF_UNIX:
        name = sock.getsockname()
        transport["path"] = name.decode(errors="replace") if isinstance(name, bytes) else name
        transport["protocol"] = "dgram" if sock.type == socket.SOCK_DGRAM else "stream"
    else:
        addr = sock.getsockname()
        transport.update(ip=addr[0], port=addr[1], protocol=ls.protocol, freebind=_freebind(sock))
    return {"kind": ls.kind, "transport": transport}


def _freebind(sock: socket.socket) -> bool:
    opt = getattr(socket, "IP_FREEBIND", 15)
    try:
        level = socket.IPPROTO_IPV6 if sock.family == socket.AF_INET6 else socket.IPPROTO_IP
        if sock.family == socket.AF_INET6:
            opt = getattr(socket, "IPV6_FREEBIND", 78)
        return bool(sock.getsockopt(level, opt))
    except OSError:
        return False


def is_socket_fd(fd: int) -> bool:
    """True if fd is an open socket (cheap check before adopting)."""
    import stat

    try:
        return stat.S_ISSOCK(os.fstat(fd).st_mode)
    except OSError:
        return False
