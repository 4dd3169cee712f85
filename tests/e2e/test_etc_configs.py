"""The example configs in etc/ are accepted by the daemon (and one serves for real).

config.personal.lua listens on 127.0.0.1@53 and ::1@53, which the tests must
not touch (127.0.0.1 belongs to the benchmark), so it is only parsed, by the
same engine the daemon uses (kresd/engine.py). config.e2e-hierarchy.lua is run for real against
the knotd hierarchy.
"""
from __future__ import annotations

from pathlib import Path

import pytest

from .hierarchy import CASES, check_case, query
from .resolver import Resolver

ETC = Path(__file__).resolve().parents[2] / "etc"


LISTEN = {
    "config.personal.lua": [("127.0.0.1", 53, "dns"), ("::1", 53, "dns")],
    "config.e2e-hierarchy.lua": [("127.0.10.1", 53, "dns")],
}


@pytest.mark.parametrize("name", sorted(LISTEN))
def test_config_is_accepted(name, tmp_path):
    from kresd.engine import Engine
    from workers.settings import Settings

    settings = Settings()
    eng = Engine(settings, rundir=str(tmp_path))
    try:
        eng.load_config(str(ETC / name))
        eng.post_config()
    finally:
        eng.stop()
    assert [(e.addr, e.port, e.kind) for e in settings.listen] == LISTEN[name]


@pytest.mark.e2e
@pytest.mark.root
def test_e2e_hierarchy_config_resolves(kresd_bin, hierarchy, tmp_path):
    """`kresd -n -c etc/config.e2e-hierarchy.lua RUNDIR`: the listener comes from the config."""
    r = Resolver(kresd_bin, "127.0.10.1", tmp_path / "rundir",
                 conf_file=ETC / "config.e2e-hierarchy.lua")
    try:
        r.start()
        for name in ("glue", "noglue", "cname"):
            case = CASES[name]
            check_case(query("127.0.10.1", case.qname, case.qtype, timeout=5), case)
    finally:
        r.stop()
        print(r.log_tail())
