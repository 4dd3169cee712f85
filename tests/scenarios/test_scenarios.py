"""pytest face of the replay harness: one test per scenario file and QMIN mode.

Owns: parametrizing over /work/shared/scenarios/resolver/*.rpl (or
$KRESD_SCENARIO_DIR) and applying expected_failures.txt: listed runs are
non-strict xfail, so a listed scenario that passes shows up as XPASS (take it
off the list); an unlisted failure fails the suite.
Must not: hold replay logic (replay.py) or its own scenario data.
Skips (not fails) while the resolution core cannot be imported.
"""
from __future__ import annotations

import functools
import os
from pathlib import Path

import pytest

from . import expected, replay, rpl

SCENARIO_DIR = Path(os.environ.get("KRESD_SCENARIO_DIR", "/work/shared/scenarios/resolver"))
TABLE = expected.load()


@functools.lru_cache(maxsize=None)
def _parse(path: Path) -> rpl.Scenario:
    return rpl.parse_file(path)  # runs never mutate a parsed Scenario


def _params():
    params = []
    for path in rpl.scenario_files(SCENARIO_DIR):
        scn = _parse(path)
        for qmin in replay.modes_for(scn, "both"):
            mode = "on" if qmin else "off"
            reason = expected.reason_for(TABLE, scn.name, qmin)
            marks = [pytest.mark.xfail(reason=reason, strict=False)] if reason else []
            params.append(pytest.param(path, qmin, id=f"{scn.name}[qmin={mode}]", marks=marks))
    return params


@pytest.fixture(scope="module")
def core():
    try:
        return replay.real_core()
    except replay.CoreUnavailable as exc:
        pytest.skip(str(exc))


@pytest.mark.parametrize("path,qmin", _params())
def test_scenario(path, qmin, core):
    outcome = replay.run_scenario(_parse(path), qmin, core)
    if not outcome.passed:
        pytest.fail(outcome.reason, pytrace=False)


def test_expected_list_names_real_runs():
    """Every line of expected_failures.txt names an existing scenario and mode."""
    runs = {}
    for path in rpl.scenario_files(SCENARIO_DIR):
        scn = _parse(path)
        runs[scn.name] = {"on" if q else "off" for q in replay.modes_for(scn, "both")}
    for name, mode in TABLE:
        assert name in runs, f"expected_failures.txt: no scenario {name}"
        assert mode is None or mode in runs[name], f"expected_failures.txt: {name} never runs qmin={mode}"
