"""Where the shared test data lives: `<project root>/../shared`, or $KRESD_SHARED_DIR.

Owns: the one rule for finding the data that is not part of the project (the
.rpl scenarios in `scenarios/resolver/` and Deckard's template
`scenarios/kresd.j2`), the one environment variable that overrides it, the
minimum number of scenarios a run must hold, and how a test reacts when the
data is missing: skip, naming the path looked for and the variable. When the
data is there but incomplete (fewer scenarios than the minimum, no template, a
named scenario gone) the test fails: it never passes on nothing.
Must not: import the project packages or pytest at module level (run.py and
the binary runner use it outside pytest).

The project lives in a development environment beside a `shared/` directory
(README); a clone elsewhere has no such directory, and then every test that
needs it is skipped with the reason.
"""
from __future__ import annotations

import os
from pathlib import Path

ENV = "KRESD_SHARED_DIR"
PROJECT_ROOT = Path(__file__).resolve().parents[1]
MIN_SCENARIOS = 100  # the sample holds 142; a smaller folder is a broken copy


def shared_dir() -> Path:
    """$KRESD_SHARED_DIR if set (and not empty), else `<project root>/../shared`."""
    env = os.environ.get(ENV)
    return Path(env).expanduser() if env else PROJECT_ROOT.parent / "shared"


def scenario_dir() -> Path:
    return shared_dir() / "scenarios" / "resolver"


def template_path() -> Path:
    return shared_dir() / "scenarios" / "kresd.j2"


def missing_reason(path: Path | None = None) -> str:
    """Why a test is skipped: what was looked for, and how to point elsewhere."""
    path = path or scenario_dir()
    where = f"${ENV}" if os.environ.get(ENV) else "<project root>/../shared"
    return (f"shared scenario data not found: {path} does not exist (looked under {where}; "
            f"set {ENV} to the directory holding scenarios/resolver/*.rpl and scenarios/kresd.j2)")


def scenarios_present() -> bool:
    return scenario_dir().is_dir()


def scenario_files(pattern: str = "*.rpl") -> list[Path]:
    """The scenario files, sorted; [] when the folder is missing."""
    folder = scenario_dir()
    return sorted(folder.glob(pattern)) if folder.is_dir() else []


def count_problem(files: list, minimum: int = MIN_SCENARIOS) -> str | None:
    """A failure message when the folder exists but holds too few scenarios."""
    if len(files) < minimum:
        return (f"only {len(files)} scenario files in {scenario_dir()} (at least {minimum} "
                f"expected): the shared data is incomplete, or {ENV} points at the wrong folder")
    return None


# ---------------------------------------------------------------- pytest helpers

def require_scenarios(minimum: int = MIN_SCENARIOS) -> list[Path]:
    """For a test: the scenario files; skip when the data is absent, fail when too few."""
    import pytest  # noqa: PLC0415 - only tests call this

    if not scenarios_present():
        pytest.skip(missing_reason())
    files = scenario_files()
    problem = count_problem(files, minimum)
    if problem:
        pytest.fail(problem, pytrace=False)
    return files


def require_scenario(name: str) -> Path:
    """One named scenario file (`iter_recurse.rpl`): skip when the data is absent,
    fail when the folder is there without it."""
    import pytest  # noqa: PLC0415

    if not scenarios_present():
        pytest.skip(missing_reason())
    path = scenario_dir() / name
    if not path.is_file():
        pytest.fail(f"{path} is missing from the shared scenarios", pytrace=False)
    return path


def require_template() -> Path:
    """kresd.j2: skip when the shared data is absent, fail when only the template is."""
    import pytest  # noqa: PLC0415

    path = template_path()
    if not scenarios_present() and not path.exists():
        pytest.skip(missing_reason())
    if not path.is_file():
        pytest.fail(f"{path} is missing beside the shared scenarios", pytrace=False)
    return path


def skipped_param(n_args: int = 1):
    """One skipped pytest.param standing for a parametrization over absent data
    (pytest would otherwise only say "got empty parameter set"), with the reason."""
    import pytest  # noqa: PLC0415

    return pytest.param(*([None] * n_args), id="no-shared-data",
                        marks=pytest.mark.skip(reason=missing_reason()))
