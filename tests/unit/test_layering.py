"""The package arrows point down: native/ <- cache/ <- workers/, kresd/.

Owns: a static check (ast, every import statement, also inside functions) that
the C leaf and its twins (native/) import nothing of cache/, workers/ or
kresd/, and that the cache library (cache/) imports nothing of kresd/ or
workers/ (DESIGN.md "Layering"; issue: one exception root).
"""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

FORBIDDEN = {
    "native": {"cache", "workers", "kresd", "tools"},
    "cache": {"kresd", "workers", "tools"},
}


def imported_top_packages(path: Path, root: Path = ROOT) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
    pkg = path.parent.relative_to(root).parts[0]
    out: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out.update(a.name.split(".")[0] for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # relative: stays inside this package unless it climbs out
                parts = path.parent.relative_to(root).parts
                if node.level > len(parts):
                    out.add("<outside>")
                else:
                    out.add(pkg)
            elif node.module:
                out.add(node.module.split(".")[0])
    return out


@pytest.mark.parametrize("package", sorted(FORBIDDEN))
def test_package_imports_point_down(package):
    files = sorted((ROOT / package).rglob("*.py"))
    assert files, f"no Python files under {package}/"
    bad = {}
    for f in files:
        hit = imported_top_packages(f) & (FORBIDDEN[package] | {"<outside>"})
        if hit:
            bad[str(f.relative_to(ROOT))] = sorted(hit)
    assert not bad, f"{package}/ must not import {sorted(FORBIDDEN[package])}: {bad}"


def test_checker_sees_forbidden_imports(tmp_path):
    """The check itself can fail: a function-level import, a relative climb."""
    (tmp_path / "cache" / "sub").mkdir(parents=True)
    probe = tmp_path / "cache" / "probe.py"
    probe.write_text("def f():\n    from kresd.errors import KresdError\n    return KresdError\n")
    assert "kresd" in imported_top_packages(probe, tmp_path)
    climb = tmp_path / "cache" / "sub" / "climb.py"
    climb.write_text("from ...kresd import errors\n")
    assert "<outside>" in imported_top_packages(climb, tmp_path)
