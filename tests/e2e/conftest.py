"""Fixtures of the end-to-end tests: the knotd hierarchy and real resolver processes.

Addresses (port 53, inside 127.0.10.0/24; see hierarchy.py for the servers):
  127.0.10.1   the shared resolver of test_resolve.py
  127.0.10.11  the resolver killed and restarted by test_restart.py
  127.0.10.12  the resolver fed hostile input by test_hostile.py

The hierarchy is started once per session and stopped at its end; a module
that stops it (test_restart.py) leaves it to the next module's ``hierarchy``
fixture to start it again.
"""
from __future__ import annotations

import shutil

import pytest

from .hierarchy import Hierarchy
from .resolver import Resolver

RESOLVER_ADDR = "127.0.10.1"
RESTART_ADDR = "127.0.10.11"
HOSTILE_ADDR = "127.0.10.12"


@pytest.fixture(scope="session")
def _hierarchy_session(tmp_path_factory):
    if shutil.which("knotd") is None:
        pytest.fail("knotd is not installed: run tools/install.sh (Debian package knot)")
    h = Hierarchy(tmp_path_factory.mktemp("hierarchy"))
    yield h
    h.stop()


@pytest.fixture(scope="module")
def hierarchy(_hierarchy_session) -> Hierarchy:
    """The running hierarchy (started, or restarted if an earlier module stopped it)."""
    h = _hierarchy_session
    if not h.running():
        h.stop()  # reap whatever is left of an earlier run
        h.start()
    return h


@pytest.fixture
def start_resolver(kresd_bin, tmp_path):
    """Factory: start_resolver(addr, rundir=None, probe=(name, type)) -> running Resolver.

    Every resolver it started is stopped at the end of the test.
    """
    started: list[Resolver] = []

    def start(addr: str, rundir=None, probe=(".", "NS")) -> Resolver:
        r = Resolver(kresd_bin, addr, rundir or tmp_path / f"rundir-{addr}")
        started.append(r)
        return r.start(probe)

    yield start
    for r in started:
        r.stop()
        print(r.log_tail())  # shown by pytest when the test failed


@pytest.fixture(scope="module")
def resolver(kresd_bin, hierarchy, tmp_path_factory) -> Resolver:
    """One resolver on 127.0.10.1@53 shared by a module (cache warms up across its tests)."""
    r = Resolver(kresd_bin, RESOLVER_ADDR, tmp_path_factory.mktemp("resolver") / "rundir")
    r.start()
    yield r
    r.stop()
    print(r.log_tail())
