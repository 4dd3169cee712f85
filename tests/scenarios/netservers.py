"""Network-namespace plumbing and scripted servers on real sockets (binary runner).

Owns: turning the current (fresh, private) network namespace into Deckard's
test network (lo up, the harness/resolver addresses, every scenario address
as a /32 or /128 on lo), and `SocketServers`: UDP and TCP listeners on port
53 of those addresses, served by one selector thread that asks a
`responder.Responder` what to send.
Must not: decide answers (responder.py), start the resolver (nsdriver.py),
or run outside a private network namespace (`setup_namespace` refuses when
the namespace already has addresses besides lo's, so a mistake cannot touch
the host's network).

Which addresses get a server: every ADDRESS of the scenario plus every
address the scenario mentions elsewhere (stub-addr, forward-addr, A/AAAA
records in any entry), since the in-process network answers a query to an
address no range names from any eligible range (README), and scenarios made
only of REPLY steps name no ADDRESS at all. The resolver's and the harness's
own addresses never get a server.
"""
from __future__ import annotations

import errno
import ipaddress
import selectors
import socket
import struct
import subprocess
import threading
from typing import Optional

import dns.rdatatype

from .config import ADDRESSES, Context
from .rpl import Scenario

IP_CMD_TIMEOUT = 10.0
TCP_MAX_BUFFER = 70000


class NetnsError(Exception):
    """The namespace cannot be set up as the harness needs."""


def _ip_batch(lines: list) -> None:
    if not lines:
        return
    proc = subprocess.run(["ip", "-force", "-batch", "-"], input="\n".join(lines) + "\n",
                          capture_output=True, text=True, timeout=IP_CMD_TIMEOUT)
    if proc.returncode != 0:
        raise NetnsError(f"ip -batch failed: {proc.stderr.strip()}")


def _check_private() -> None:
    """Refuse to run where any interface but lo exists (the host's namespace)."""
    names = [name for _, name in socket.if_nameindex()]
    if names != ["lo"]:
        raise NetnsError(f"not a fresh network namespace (interfaces: {names}); refusing to touch it")


def scenario_addresses(scn: Scenario, ctx: Context) -> list:
    """Every unicast address the scenario mentions, ADDRESSes first, without duplicates."""
    found: list = []

    def add(text: Optional[str]) -> None:
        if not text:
            return
        try:
            ip = ipaddress.ip_address(text.strip())
        except ValueError:
            return
        if ip.is_multicast or ip.is_unspecified or ip.is_link_local:
            return  # link-local would need a scope id; nothing routes to it anyway
        if str(ip) not in found:
            found.append(str(ip))

    for rng in scn.ranges:
        for addr in rng.addresses:
            add(addr)
    add(ctx.root_addr)
    add(ctx.forward_addr)
    entries = [e for r in scn.ranges for e in r.entries] + [s.entry for s in scn.steps if s.entry]
    for entry in entries:
        msg = entry.message
        if msg is None:
            continue
        for section in (msg.answer, msg.authority, msg.additional):
            for rrset in section:
                if rrset.rdtype in (dns.rdatatype.A, dns.rdatatype.AAAA):
                    for rdata in rrset:
                        add(rdata.address)
    own = {ip for pair in ADDRESSES.values() for ip in pair}
    return [a for a in found if a not in own]


def setup_namespace(server_addrs: list) -> None:
    """lo up, the harness addresses (127.127.0.0/16, fd00:dec::/32) and every server address."""
    _check_private()
    lines = ["link set lo up"]
    for client, resolver in ADDRESSES.values():
        v6 = ":" in client
        lines.append(f"addr add {client}/{32 if v6 else 16} dev lo" + (" nodad" if v6 else ""))
        lines.append(f"addr add {resolver}/{128 if v6 else 32} dev lo" + (" nodad" if v6 else ""))
    for addr in server_addrs:
        ip = ipaddress.ip_address(addr)
        if ip.is_loopback:
            continue  # 127/8 and ::1 are lo's own once it is up (adding ::1 again is an error)
        lines.append(f"addr add {addr}/{ip.max_prefixlen} dev lo" + (" nodad" if ip.version == 6 else ""))
    _ip_batch(lines)


class _TcpConn:
    def __init__(self, sock: socket.socket, local: str):
        self.sock, self.local = sock, local
        self.inbuf = bytearray()
        self.outbuf = bytearray()


class SocketServers:
    """Scripted servers on port 53 (UDP and TCP) of `addrs`, one selector thread."""

    def __init__(self, responder, addrs: list, port: int = 53):
        self.responder, self.addrs, self.port = responder, list(addrs), port
        self.sel = selectors.DefaultSelector()
        self.socks: list = []
        self.failed: list = []  # (addr, error) that could not be bound
        self._stop_r, self._stop_w = socket.socketpair()
        self._thread: Optional[threading.Thread] = None
        self.crash: Optional[str] = None

    def start(self) -> None:
        self.bind()
        self.serve()

    def bind(self) -> None:
        """Open every listener (no thread yet: the daemon may still be forked safely)."""
        for addr in self.addrs:
            fam = socket.AF_INET6 if ":" in addr else socket.AF_INET
            try:
                udp = socket.socket(fam, socket.SOCK_DGRAM)
                udp.bind((addr, self.port))
                udp.setblocking(False)
                tcp = socket.socket(fam, socket.SOCK_STREAM)
                tcp.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                tcp.bind((addr, self.port))
                tcp.listen(64)
                tcp.setblocking(False)
            except OSError as exc:
                self.failed.append((addr, exc.strerror or str(exc)))
                continue
            self.socks += [udp, tcp]
            self.sel.register(udp, selectors.EVENT_READ, ("udp", addr))
            self.sel.register(tcp, selectors.EVENT_READ, ("listen", addr))
        self.sel.register(self._stop_r, selectors.EVENT_READ, ("stop", None))

    def serve(self) -> None:
        """Start answering in the selector thread."""
        self._thread = threading.Thread(target=self._run, name="scripted-servers", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        try:
            self._stop_w.send(b"x")
        except OSError:
            pass
        if self._thread is not None:
            self._thread.join(timeout=5)
        for key in list(self.sel.get_map().values()):
            key.fileobj.close()
        self.sel.close()
        self._stop_w.close()

    def _run(self) -> None:
        try:
            while True:
                for key, events in self.sel.select(timeout=1.0):
                    kind, data = key.data
                    if kind == "stop":
                        return
                    if kind == "udp":
                        self._udp(key.fileobj, data)
                    elif kind == "listen":
                        self._accept(key.fileobj, data)
                    else:
                        self._tcp(key.fileobj, data, events)
        except Exception as exc:  # noqa: BLE001 - reported as a harness failure
            self.crash = f"scripted servers crashed: {type(exc).__name__}: {exc}"

    def _udp(self, sock: socket.socket, addr: str) -> None:
        while True:
            try:
                wire, peer = sock.recvfrom(65535)
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                return  # e.g. ICMP errors queued on the socket
            if not self.responder.count_send():
                continue
            reply = self.responder.answer(wire, addr, False)
            if reply.wire is not None:
                try:
                    sock.sendto(reply.wire, peer)
                except OSError as exc:
                    self.responder.errors.append(f"UDP reply from {addr} to {peer} failed: {exc}")

    def _accept(self, lsock: socket.socket, addr: str) -> None:
        try:
            conn, _ = lsock.accept()
        except OSError:
            return
        conn.setblocking(False)
        self.sel.register(conn, selectors.EVENT_READ, ("tcp", _TcpConn(conn, addr)))

    def _close(self, conn: _TcpConn) -> None:
        try:
            self.sel.unregister(conn.sock)
        except (KeyError, ValueError):
            pass
        conn.sock.close()

    def _tcp(self, sock: socket.socket, conn: _TcpConn, events: int) -> None:
        if events & selectors.EVENT_READ:
            try:
                data = sock.recv(65535)
            except (BlockingIOError, InterruptedError):
                data = None
            except OSError:
                self._close(conn)
                return
            if data == b"":
                self._close(conn)
                return
            if data:
                conn.inbuf += data
                if len(conn.inbuf) > TCP_MAX_BUFFER:
                    self._close(conn)
                    return
                self._tcp_messages(conn)
        if conn.outbuf:
            try:
                sent = sock.send(conn.outbuf)
                del conn.outbuf[:sent]
            except (BlockingIOError, InterruptedError):
                pass
            except OSError:
                self._close(conn)
                return
        mask = selectors.EVENT_READ | (selectors.EVENT_WRITE if conn.outbuf else 0)
        self.sel.modify(sock, mask, ("tcp", conn))

    def _tcp_messages(self, conn: _TcpConn) -> None:
        while len(conn.inbuf) >= 2:
            (size,) = struct.unpack("!H", conn.inbuf[:2])
            if len(conn.inbuf) < 2 + size:
                return
            wire = bytes(conn.inbuf[2:2 + size])
            del conn.inbuf[:2 + size]
            if not self.responder.count_send():
                continue
            reply = self.responder.answer(wire, conn.local, True)
            if reply.wire is not None:
                conn.outbuf += struct.pack("!H", len(reply.wire)) + reply.wire


def wait_tcp(addr: str, port: int, deadline: float, clock, alive) -> bool:
    """Poll until something accepts TCP on addr:port; False at `deadline` or when not alive()."""
    import time
    fam = socket.AF_INET6 if ":" in addr else socket.AF_INET
    while clock() < deadline:
        if not alive():
            return False
        with socket.socket(fam, socket.SOCK_STREAM) as s:
            s.settimeout(max(0.05, min(0.5, deadline - clock())))
            try:
                s.connect((addr, port))
                return True
            except OSError as exc:
                if exc.errno not in (errno.ECONNREFUSED, errno.ETIMEDOUT, errno.EADDRNOTAVAIL, None):
                    raise
        time.sleep(0.01)  # the harness's own sleep: not under libfaketime
    return False
