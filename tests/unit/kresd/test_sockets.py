"""kresd/sockets.py: -S parsing, adopting real inherited fds, binding, net.list() items."""
from __future__ import annotations

import os
import socket

import pytest

from kresd.errors import EXIT_BIND, BootError
from kresd.sockets import (FdSpec, ListenSocket, adopt_fd, adopt_fds, bind, describe, fd_args,
                           is_socket_fd, parse_fd_spec, pass_fds)
from workers.settings import Endpoint


def test_parse_fd_spec_kresd_semantics():
    assert parse_fd_spec("3") == FdSpec(3, "dns")
    assert parse_fd_spec("4:tls") == FdSpec(4, "tls")
    assert parse_fd_spec("4:TLS") == FdSpec(4, "tls")
    assert parse_fd_spec("5:doh2") == FdSpec(5, "doh2")
    assert parse_fd_spec("6:control") == FdSpec(6, "control")
    for bad in ("", "x", "3:", ":tls", "-1", "3x"):
        with pytest.raises(ValueError, match="incorrect value passed to '-S/--fd'"):
            parse_fd_spec(bad)
    assert FdSpec(3).arg() == "3" and FdSpec(4, "tls").arg() == "4:tls"


def test_bind_reuseport_twice_and_describe(listen_addr):
    addr, port = listen_addr
    a = bind([Endpoint(addr, port)])
    b = bind([Endpoint(addr, port)])  # SO_REUSEPORT: a second group binds too
    try:
        assert [ls.protocol for ls in a] == ["udp", "tcp"]
        assert all(ls.kind == "dns" and not ls.inherited for ls in a + b)
        assert describe(a[0]) == {"kind": "dns", "transport": {
            "family": "inet4", "ip": addr, "port": port, "protocol": "udp", "freebind": False}}
        assert describe(a[1])["transport"]["protocol"] == "tcp"
    finally:
        for ls in a + b:
            ls.close()


def test_bind_failure_is_boot_error():
    with pytest.raises(BootError) as e:
        bind([Endpoint("192.0.2.1", 53)])  # not a local address
    assert e.value.exit_code == EXIT_BIND


def test_adopt_inherited_udp_and_tcp(listen_addr):
    addr, port = listen_addr
    u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    u.bind((addr, port))
    t = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    t.bind((addr, port))  # bound but not listening: adopt_fd must listen()
    socks = adopt_fds([FdSpec(u.detach()), FdSpec(t.detach(), "tls")])
    try:
        assert [(ls.protocol, ls.kind, ls.inherited) for ls in socks] == [
            ("udp", "dns", True), ("tcp", "tls", True)]
        assert socks[1].sock.getsockopt(socket.SOL_SOCKET, socket.SO_ACCEPTCONN) == 1
        assert all(not ls.sock.getblocking() and not ls.sock.get_inheritable() for ls in socks)
        with socket.create_connection((addr, port), timeout=2) as c:
            socks[1].sock.setblocking(True)  # adopted sockets are non-blocking; wait here
            socks[1].sock.settimeout(2)
            conn, peer = socks[1].sock.accept()
            with conn:
                assert peer == c.getsockname()
                c.sendall(b"via the adopted tcp socket")
                assert conn.recv(100) == b"via the adopted tcp socket"
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as c:
            c.sendto(b"via the adopted udp socket", (addr, port))
            socks[0].sock.settimeout(2)
            data, peer = socks[0].sock.recvfrom(100)
            assert (data, peer[1]) == (b"via the adopted udp socket", c.getsockname()[1])
        assert fd_args(socks) == ["-S", str(socks[0].fileno()), "-S", f"{socks[1].fileno()}:tls"]
        assert pass_fds(socks) == (socks[0].fileno(), socks[1].fileno())
    finally:
        for ls in socks:
            ls.close()


def test_adopt_via_endpoint_fd_and_unix_socketpair():
    a, b = socket.socketpair(socket.AF_UNIX, socket.SOCK_DGRAM)
    try:
        (ls,) = bind([Endpoint("", 0, "dns", fd=a.detach())])
        assert ls.inherited and ls.sock.family == socket.AF_UNIX
        assert describe(ls)["transport"]["family"] == "unix"
        b.send(b"x")
        assert ls.sock.recv(10) == b"x"
        ls.close()
    finally:
        b.close()


def test_adopt_not_a_socket():
    r, w = os.pipe()
    try:
        assert not is_socket_fd(r)
        with pytest.raises(BootError) as e:
            adopt_fd(FdSpec(r))
        assert e.value.exit_code == EXIT_BIND
        os.fstat(r)  # the fd is left to its owner, not closed
    finally:
        os.close(r)
        os.close(w)


def test_adopt_closed_fd():
    r, w = os.pipe()
    os.close(r)
    os.close(w)
    with pytest.raises(BootError):
        adopt_fd(FdSpec(r))


def test_listen_socket_spec():
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        ls = ListenSocket(s, "dns")
        assert ls.spec() == FdSpec(s.fileno(), "dns") and is_socket_fd(s.fileno())
