"""Fixtures and helpers shared by every test directory.

Owns:
  * ``kresd_bin``: the absolute path of the *installed* ``kresd`` entry point
    (next to the running interpreter, i.e. ``.venv/bin/kresd``). Never a bare
    ``kresd`` from PATH: Debian's knot-resolver package installs /usr/sbin/kresd.
  * The test loopback plan: tests use ONLY 127.0.10.0 - 127.0.19.255
    (the benchmark owns 127.0.0.1 - 127.0.0.3).
        127.0.10.0/24    the e2e DNS hierarchy (knotd on port 53) and the resolvers
                         started against it; see tests/e2e/hierarchy.py
        127.0.11.0 -
        127.0.19.255     handed out one at a time by ``alloc_test_addr`` /
                         the ``test_addr`` and ``listen_addr`` fixtures
  * Root handling: ``need_root`` (a skipif marker) and the ``root`` marker
    (declared in pyproject.toml), which is skipped automatically when not root.

Must not: import the project packages (unit tests import what they test; the
e2e tests talk to the installed binary only).
"""
from __future__ import annotations

import ipaddress
import itertools
import os
import socket
import sys
from pathlib import Path

import pytest

# --------------------------------------------------------------------------- the binary
KRESD_BIN = Path(sys.executable).parent / "kresd"


@pytest.fixture(scope="session")
def kresd_bin() -> Path:
    """Absolute path of the installed entry point (``tools/install.sh`` puts it there)."""
    if not KRESD_BIN.exists():
        pytest.fail(f"{KRESD_BIN} does not exist: run tools/install.sh --test first")
    return KRESD_BIN


# --------------------------------------------------------------------------- loopback plan
TEST_NET_FIRST = ipaddress.IPv4Address("127.0.10.0")
TEST_NET_LAST = ipaddress.IPv4Address("127.0.19.255")
E2E_NET = ipaddress.IPv4Network("127.0.10.0/24")  # reserved for tests/e2e
_POOL_FIRST = ipaddress.IPv4Address("127.0.11.1")
_pool = itertools.count(0)


def in_test_net(addr: str) -> bool:
    """True if addr is inside the loopback range the tests may use."""
    return TEST_NET_FIRST <= ipaddress.IPv4Address(addr) <= TEST_NET_LAST


def alloc_test_addr() -> str:
    """A loopback address from 127.0.11.1 up, never handed out twice in one session.

    Skips .0 and .255 so that the addresses never look like network/broadcast
    addresses to anyone reading logs.
    """
    while True:
        addr = _POOL_FIRST + next(_pool)
        if addr > TEST_NET_LAST:
            raise RuntimeError("test loopback pool 127.0.11.1-127.0.19.254 exhausted")
        if int(addr) & 0xFF not in (0, 255):
            return str(addr)


def free_port(addr: str) -> int:
    """A port that is free for both UDP and TCP on addr (bound and released)."""
    for _ in range(50):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as t:
            t.bind((addr, 0))
            port = t.getsockname()[1]
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as u:
                try:
                    u.bind((addr, port))
                except OSError:
                    continue
        return port
    raise RuntimeError(f"no port free for both UDP and TCP on {addr}")


@pytest.fixture
def test_addr() -> str:
    """A fresh loopback address of the test pool (nothing else uses it in this session)."""
    return alloc_test_addr()


@pytest.fixture
def listen_addr() -> tuple[str, int]:
    """(address, port) for a server under test: fresh address, port free for UDP+TCP."""
    addr = alloc_test_addr()
    return addr, free_port(addr)


# --------------------------------------------------------------------------- root
def can_bind_port_53() -> bool:
    """Binding port 53 needs root (or a lowered net.ipv4.ip_unprivileged_port_start)."""
    if os.geteuid() == 0:
        return True
    try:
        with open("/proc/sys/net/ipv4/ip_unprivileged_port_start") as f:
            return int(f.read()) <= 53
    except (OSError, ValueError):
        return False


IS_ROOT = os.geteuid() == 0
ROOT_REASON = "needs root: binds port 53 on 127.0.10.x (CI runs as root; run: sudo tools/test.sh)"

#: ``@need_root`` on a test or ``pytestmark = need_root`` in a module.
need_root = pytest.mark.skipif(not can_bind_port_53(), reason=ROOT_REASON)


def pytest_collection_modifyitems(config, items):
    """Tests marked ``@pytest.mark.root`` are skipped, with the reason, when not root."""
    if can_bind_port_53():
        return
    skip = pytest.mark.skip(reason=ROOT_REASON)
    for item in items:
        if "root" in item.keywords:
            item.add_marker(skip)
