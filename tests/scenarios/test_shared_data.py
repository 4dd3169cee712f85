"""tests/shared_data.py: where the shared scenarios are found, and skip versus fail.

Owns: the default (`<project root>/../shared`), the one override variable,
skipping with the path and the variable named when the data is absent, and
failing (never passing on nothing) when the folder is there but incomplete.
"""
from __future__ import annotations

import pytest

from tests import shared_data


def test_default_is_beside_the_project(monkeypatch):
    monkeypatch.delenv(shared_data.ENV, raising=False)
    assert shared_data.shared_dir() == shared_data.PROJECT_ROOT.parent / "shared"
    assert shared_data.scenario_dir() == shared_data.PROJECT_ROOT.parent / "shared" / "scenarios" / "resolver"
    assert shared_data.template_path().name == "kresd.j2"
    assert (shared_data.PROJECT_ROOT / "tests" / "shared_data.py").is_file()


def test_override_variable(monkeypatch, tmp_path):
    monkeypatch.setenv(shared_data.ENV, str(tmp_path))
    assert shared_data.scenario_dir() == tmp_path / "scenarios" / "resolver"
    assert shared_data.template_path() == tmp_path / "scenarios" / "kresd.j2"
    monkeypatch.setenv(shared_data.ENV, "")  # empty: the default
    assert shared_data.shared_dir() == shared_data.PROJECT_ROOT.parent / "shared"


def test_absent_data_skips_with_path_and_variable(monkeypatch, tmp_path):
    monkeypatch.setenv(shared_data.ENV, str(tmp_path))  # an empty directory
    assert shared_data.scenario_files() == []
    for call in (shared_data.require_scenarios, shared_data.require_template,
                 lambda: shared_data.require_scenario("iter_recurse.rpl")):
        with pytest.raises(pytest.skip.Exception) as info:
            call()
        assert str(tmp_path / "scenarios" / "resolver") in str(info.value)
        assert shared_data.ENV in str(info.value)


def test_present_but_incomplete_data_fails(monkeypatch, tmp_path):
    monkeypatch.setenv(shared_data.ENV, str(tmp_path))
    folder = tmp_path / "scenarios" / "resolver"
    folder.mkdir(parents=True)
    for i in range(3):
        (folder / f"s{i}.rpl").write_text("CONFIG_END\n")
    with pytest.raises(pytest.fail.Exception, match="only 3 scenario files"):
        shared_data.require_scenarios()
    assert shared_data.require_scenarios(minimum=3) == sorted(folder.glob("*.rpl"))
    with pytest.raises(pytest.fail.Exception, match="iter_recurse.rpl is missing"):
        shared_data.require_scenario("iter_recurse.rpl")
    with pytest.raises(pytest.fail.Exception, match="kresd.j2 is missing"):
        shared_data.require_template()


def test_skipped_param_carries_the_reason(monkeypatch, tmp_path):
    monkeypatch.setenv(shared_data.ENV, str(tmp_path))
    param = shared_data.skipped_param(2)
    assert param.values == (None, None) and param.id == "no-shared-data"
    assert str(tmp_path) in param.marks[0].kwargs["reason"]
