"""Scenarios through the real `kresd` binary (issue 3 acceptance), the way Deckard runs it.

Owns: one test per scenario and QMIN mode that is expected to pass in-process
(not on tests/scenarios/expected_failures.txt), run through
tests/scenarios/binary.py: a fresh network namespace per run, the rendered
kresd.j2 as `config`, `kresd -n` under libfaketime, the 5 s TCP-accept
deadline and exit code 0 on SIGTERM. Runs are started together in a thread
pool (each in its own namespace) when the first test asks for its result.
Runs listed in tests/scenarios/expected_failures_binary.txt (daemon-side
problems that only show through the binary) are strict xfail: one that passes
fails the suite, so the list only shrinks. At least MIN_RUNS runs must be
there, and every list entry must name one of them.
Must not: hold replay logic, or run anywhere but as root (skipped otherwise).

The scenarios are the shared data (tests/shared_data.py): without it every
test here is skipped, saying which path was looked for. The binary is
$KRESD_BINARY or the project's .venv/bin/kresd (refresh it with
`tools/install.sh --test` after code changes); never a bare `kresd`.
"""
from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor

import pytest

from tests import shared_data
from tests.scenarios import binary, expected, replay, rpl
from tests.scenarios.test_scenarios import stale_entries

pytestmark = [pytest.mark.e2e, pytest.mark.root]

TABLE = expected.load()
BINARY_TABLE = expected.load(expected.LIST_PATH.with_name("expected_failures_binary.txt"))
# runs expected to pass in-process: today 106 of the sample's 209 runs; the
# in-process list only shrinks, so fewer means lost scenarios or a grown list
MIN_RUNS = shared_data.MIN_SCENARIOS


def _jobs():
    jobs = []
    for path in shared_data.scenario_files():
        scn = rpl.parse_file(path)
        for qmin in replay.modes_for(scn, "both"):
            if expected.reason_for(TABLE, scn.name, qmin) is None:
                jobs.append((path, qmin, scn.name))
    return jobs


JOBS = _jobs()


def _params():
    if not shared_data.scenarios_present():
        return [shared_data.skipped_param(2)]
    params = []
    for path, qmin, name in JOBS:
        reason = expected.reason_for(BINARY_TABLE, name, qmin)
        marks = [pytest.mark.xfail(reason=reason, strict=True)] if reason else []
        params.append(pytest.param(path, qmin, id=f"{name}[qmin={'on' if qmin else 'off'}]", marks=marks))
    return params


@pytest.fixture(scope="module")
def runs():
    if os.geteuid() != 0:
        pytest.skip("binary scenarios need root (network namespaces, port 53); CI runs as root")
    try:
        binary.check_available(binary.DEFAULT_KRESD)
    except binary.Unavailable as exc:
        pytest.skip(f"binary scenarios cannot run here: {exc}")
    pool = ThreadPoolExecutor(max_workers=binary.default_workers())
    futures = {(path, qmin): pool.submit(binary.run_binary, path, qmin, binary.DEFAULT_KRESD)
               for path, qmin, _ in JOBS}
    yield futures
    for fut in futures.values():
        fut.cancel()
    pool.shutdown(wait=True)


@pytest.mark.parametrize("path,qmin", _params())
def test_scenario_binary(path, qmin, runs):
    outcome = runs[(path, qmin)].result()
    if not outcome.passed:
        tail = f"\n--- kresd output (tail) ---\n{outcome.log_tail}" if outcome.log_tail else ""
        pytest.fail(f"{outcome.reason}{tail}", pytrace=False)
    assert outcome.startup is not None and outcome.startup < 5.0


def test_enough_runs():
    """The shared scenarios are all there and most of them run through the binary."""
    shared_data.require_scenarios()
    assert len(JOBS) >= MIN_RUNS, (f"only {len(JOBS)} runs expected to pass in-process "
                                   f"(at least {MIN_RUNS}): scenarios lost, or expected_failures.txt grew")


def test_binary_list_names_real_runs():
    """Every line of expected_failures_binary.txt names a run this module executes
    (a run on the in-process list is never executed here, so it cannot be listed)."""
    shared_data.require_scenarios()
    runs: dict = {}
    for _, qmin, name in JOBS:
        runs.setdefault(name, set()).add("on" if qmin else "off")
    assert len(runs) >= MIN_RUNS // 2
    assert stale_entries(BINARY_TABLE, runs) == []
