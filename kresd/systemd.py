"""systemd-style socket activation and readiness notification, stdlib only.

Owns: reading LISTEN_PID / LISTEN_FDS / LISTEN_FDNAMES (sd_listen_fds_with_names(3)
semantics: fds start at 3, the variables are honoured only when LISTEN_PID is
this process, and are removed from the environment so children do not inherit
them), mapping fd names to kresd endpoint kinds, and sd_notify(3) datagrams
to NOTIFY_SOCKET (READY=1, STOPPING=1, STATUS=..., MAINPID=...).
Must not: bind, serve or log per message; read any other environment variable.

fd names -> kinds (as kresd 4's socket units named them, FileDescriptorName=):
  'dns' (and systemd's default 'unknown', or no name) -> 'dns'
  'tls' -> 'tls'; 'doh2' -> 'doh2'; 'control' -> 'control'; any other name
  is passed on lower-cased as the kind. (kresd 5.6 itself dropped activation
  and only takes `-S fd[:kind]`; kresd-py accepts both, as issue 4 asks.)
"""
from __future__ import annotations

import fcntl
import os
import socket
from typing import MutableMapping, Optional

from kresd.sockets import FdSpec

SD_LISTEN_FDS_START = 3
_VARS = ("LISTEN_PID", "LISTEN_FDS", "LISTEN_FDNAMES")


def kind_of(name: str) -> str:
    """The kresd endpoint kind for a LISTEN_FDNAMES entry."""
    name = name.strip().lower()
    if name in ("", "unknown", "dns", "stored"):
        return "dns"
    return name


def listen_fds(unset_environment: bool = True,
               environ: Optional[MutableMapping[str, str]] = None,
               pid: Optional[int] = None) -> list[FdSpec]:
    """Sockets passed by systemd (or systemd-socket-activate), as FdSpecs with kinds.

    Returns [] when LISTEN_PID is missing or names another process, or LISTEN_FDS
    is missing/invalid. With `unset_environment`, the three variables are removed
    in every case (as sd_listen_fds(1)). The fds get FD_CLOEXEC.
    """
    env = os.environ if environ is None else environ
    try:
        listen_pid = env.get("LISTEN_PID", "")
        count_text = env.get("LISTEN_FDS", "")
        names_text = env.get("LISTEN_FDNAMES")
        if not listen_pid.isdigit() or int(listen_pid) != (os.getpid() if pid is None else pid):
            return []
        if not count_text.isdigit() or int(count_text) == 0:
            return []
        count = int(count_text)
        names = names_text.split(":") if names_text else []
        specs = []
        for i in range(count):
            fd = SD_LISTEN_FDS_START + i
            name = names[i] if i < len(names) else ""
            try:
                flags = fcntl.fcntl(fd, fcntl.F_GETFD)
                fcntl.fcntl(fd, fcntl.F_SETFD, flags | fcntl.FD_CLOEXEC)
            except OSError:
                continue  # not open: nothing to adopt
            specs.append(FdSpec(fd, kind_of(name)))
        return specs
    finally:
        if unset_environment:
            for var in _VARS:
                env.pop(var, None)


def notify(state: str, unset_environment: bool = False,
           environ: Optional[MutableMapping[str, str]] = None) -> bool:
    """Send `state` (e.g. 'READY=1') to NOTIFY_SOCKET; False when not set or on error.

    Abstract socket names ('@name') are supported, as in sd_notify(3).
    """
    env = os.environ if environ is None else environ
    addr = env.get("NOTIFY_SOCKET")
    if unset_environment:
        env.pop("NOTIFY_SOCKET", None)
    if not addr or addr[0] not in "@/" or len(addr) < 2:
        return False
    if addr[0] == "@":
        addr = "\0" + addr[1:]
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as s:
            s.connect(addr)
            s.sendall(state.encode())
        return True
    except OSError:
        return False


def notify_ready(status: Optional[str] = None,
                 environ: Optional[MutableMapping[str, str]] = None) -> bool:
    """READY=1 (with STATUS= if given), sent once the process serves."""
    msg = "READY=1" if status is None else f"READY=1\nSTATUS={status}"
    return notify(msg, environ=environ)


def notify_stopping(environ: Optional[MutableMapping[str, str]] = None) -> bool:
    return notify("STOPPING=1", environ=environ)
