"""pytest face of the replay harness: one test per scenario file and QMIN mode.

Owns: parametrizing over the shared scenarios (tests/shared_data.py:
`<project root>/../shared/scenarios/resolver/*.rpl`, or under
$KRESD_SHARED_DIR) and applying expected_failures.txt: listed runs are
strict xfail, so a listed run that passes fails the suite (take it off the
list: it only shrinks) and an unlisted failure fails it too; the list's
entries must name runs that exist, and enough scenarios must have run.
Must not: hold replay logic (replay.py) or its own scenario data.

Without the shared data every test here is skipped, saying which path was
looked for. A resolution core that does not import is an error of every
test, never a skip.
"""
from __future__ import annotations

import functools
from pathlib import Path

import pytest

from tests import shared_data

from . import expected, replay, rpl

TABLE = expected.load()


@functools.lru_cache(maxsize=None)
def _parse(path: Path) -> rpl.Scenario:
    return rpl.parse_file(path)  # runs never mutate a parsed Scenario


def runs_of(files) -> dict:
    """{scenario name: {"on", "off"}}: the QMIN modes each scenario runs in."""
    runs = {}
    for path in files:
        scn = _parse(path)
        runs[scn.name] = {"on" if q else "off" for q in replay.modes_for(scn, "both")}
    return runs


def stale_entries(table: dict, runs: dict) -> list:
    """Entries of an expected-failures table that name no run: scenario or mode unknown."""
    bad = []
    for name, mode in table:
        if name not in runs:
            bad.append(f"{name}: no such scenario")
        elif mode is not None and mode not in runs[name]:
            bad.append(f"{name}:{mode}: the scenario never runs with qmin={mode}")
    return bad


def _params():
    if not shared_data.scenarios_present():
        return [shared_data.skipped_param(2)]
    params = []
    for path in shared_data.scenario_files():
        scn = _parse(path)
        for qmin in replay.modes_for(scn, "both"):
            mode = "on" if qmin else "off"
            reason = expected.reason_for(TABLE, scn.name, qmin)
            marks = [pytest.mark.xfail(reason=reason, strict=True)] if reason else []
            params.append(pytest.param(path, qmin, id=f"{scn.name}[qmin={mode}]", marks=marks))
    return params


@pytest.fixture(scope="module")
def core():
    return replay.real_core()  # ImportError: the core is broken, every run errors


@pytest.mark.parametrize("path,qmin", _params())
def test_scenario(path, qmin, core):
    outcome = replay.run_scenario(_parse(path), qmin, core)
    if not outcome.passed:
        pytest.fail(outcome.reason, pytrace=False)


def test_enough_scenarios():
    """The folder holds the scenarios (skipped without the shared data, failed when too few)."""
    files = shared_data.require_scenarios()
    assert len(files) >= shared_data.MIN_SCENARIOS


def test_expected_list_names_real_runs():
    """Every line of expected_failures.txt names an existing scenario and mode."""
    runs = runs_of(shared_data.require_scenarios())
    assert stale_entries(TABLE, runs) == []


def test_stale_entry_check_can_fail():
    runs = {"iter_a": {"on", "off"}, "val_b": {"off"}}
    table = {("iter_a", None): "x", ("val_b", "off"): "y", ("gone", None): "z", ("val_b", "on"): "w"}
    assert stale_entries(table, runs) == ["gone: no such scenario",
                                          "val_b:on: the scenario never runs with qmin=on"]


@pytest.mark.parametrize("module", ["workers.resolve", "workers.server", "kresd.engine", "cache.api"])
def test_broken_core_is_an_error_not_a_fallback(module, monkeypatch):
    """real_core() has no stand-in: a piece that does not import raises, so every
    scenario test errors instead of being skipped or run against a subset."""
    monkeypatch.setitem(__import__("sys").modules, module, None)  # `import module` -> ImportError
    with pytest.raises(ImportError):
        replay.real_core()


def test_listed_runs_are_strict_xfail():
    """Every run on expected_failures.txt is a strict xfail (a pass fails the suite)."""
    shared_data.require_scenarios()
    marked = [p for p in _params() if p.marks]
    listed = [p for p in _params() if expected.reason_for(TABLE, _parse(p.values[0]).name, p.values[1])]
    assert marked and len(marked) == len(listed)
    assert all(m.name == "xfail" and m.kwargs["strict"] is True for p in marked for m in p.marks)
