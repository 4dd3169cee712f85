"""No tracked file names a path of the machine it was written on.

Owns: scanning every tracked file (git ls-files; a walk of the tree when the
checkout is no git repository) for the absolute path of the project root and
of its parent directory, both computed at run time, so the check follows the
checkout wherever it lives. A clone elsewhere must work as it is: shared data
is found relative to the root (`<root>/../shared`), units are filled by
tools/install.sh.
Must not: scan what is generated and git-ignored (.venv, build, filled units).
"""
from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
_IGNORED_DIRS = {".git", ".venv", "build", "__pycache__", ".hypothesis", ".pytest_cache", "rundir"}


def tracked_files(root: Path) -> list[Path]:
    try:
        out = subprocess.run(["git", "-C", str(root), "ls-files", "-z"], capture_output=True,
                             check=True, timeout=60).stdout
        files = [root / f for f in out.decode().split("\0") if f]
        if files:
            return files
    except (OSError, subprocess.CalledProcessError):
        pass
    files = []
    for d, dirs, names in os.walk(root):
        dirs[:] = [x for x in dirs if x not in _IGNORED_DIRS and not x.endswith(".egg-info")]
        files.extend(Path(d) / n for n in names if not n.endswith((".so", ".pyc", ".o")))
    return files


def machine_paths(root: Path) -> list[str]:
    """The root and its parent, unless the parent is / (too short to mean anything)."""
    paths = [str(root)]
    if root.parent != root.parent.parent:  # not "/"
        paths.append(str(root.parent))
    return paths


def pattern(paths: list[str]) -> re.Pattern:
    # the path as a whole path: not a suffix of a longer one ("x/work"), not the
    # prefix of another name ("/workers")
    alts = "|".join(re.escape(p) for p in sorted(paths, key=len, reverse=True))
    return re.compile(rf"(?<![\w./-])(?:{alts})(?![\w.-])")


def offenders(files: list[Path], rx: re.Pattern) -> dict[str, list[int]]:
    bad: dict[str, list[int]] = {}
    for f in files:
        try:
            text = f.read_bytes().decode("utf-8", errors="replace")
        except (IsADirectoryError, FileNotFoundError):
            continue
        lines = [n for n, line in enumerate(text.splitlines(), 1) if rx.search(line)]
        if lines:
            bad[str(f.relative_to(ROOT) if f.is_relative_to(ROOT) else f)] = lines
    return bad


def test_no_tracked_file_names_this_machines_paths():
    files = tracked_files(ROOT)
    assert len(files) > 50, f"only {len(files)} files found under {ROOT}"
    bad = offenders(files, pattern(machine_paths(ROOT)))
    assert not bad, f"absolute paths of this checkout ({', '.join(machine_paths(ROOT))}) in: {bad}"


def test_the_scan_finds_a_path_put_back(tmp_path):
    """The check can fail: a file naming the root or its parent is caught,
    whatever the root is; look-alikes are not."""
    root = tmp_path / "somewhere" / "kresd-py"
    rx = pattern(machine_paths(root))
    hit = tmp_path / "hit.txt"
    hit.write_text(f"ExecStart={root}/.venv/bin/kresd\n")
    hit2 = tmp_path / "hit2.py"
    hit2.write_text(f'SCENARIOS = "{root.parent}/shared/scenarios"\n')
    fine = tmp_path / "fine.txt"
    fine.write_text(f"x{root}y and {root.parent}ward and relative/{root.name}\n")
    assert set(offenders([hit, hit2, fine], rx)) == {str(hit), str(hit2)}
