"""Fill the example systemd units of etc/ for this installation.

Owns: turning the tracked templates (`etc/*.in`) into units an operator can
copy to /etc/systemd/system: `@KRESD_BIN@` becomes the absolute path of the
installed kresd-py entry point (the virtualenv's `bin/kresd`, never
/usr/sbin/kresd, which is Debian's Knot Resolver). tools/install.sh runs it,
so every clone has a filled `etc/kresd@.service` (git-ignored) next to its
template; `etc/kresd.socket` and `etc/kresd.target` need no filling.
Must not: write anywhere but the output directory, or name a path of the
machine in a tracked file (the filled units are not tracked).

    python tools/units.py [--etc DIR] [--kresd PATH] [--out DIR]
"""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

PLACEHOLDER = "@KRESD_BIN@"


def default_kresd() -> Path:
    """The kresd entry point next to the running interpreter (the venv's)."""
    return Path(sys.executable).parent / "kresd"


def render(template: str, kresd_bin: Path) -> str:
    if PLACEHOLDER not in template:
        raise ValueError(f"template has no {PLACEHOLDER}")
    kresd_bin = Path(kresd_bin)
    if not kresd_bin.is_absolute():
        raise ValueError(f"{kresd_bin}: the kresd path in a unit must be absolute")
    if any(c.isspace() for c in str(kresd_bin)):
        raise ValueError(f"{kresd_bin}: a path with white space can not go into ExecStart")
    return template.replace(PLACEHOLDER, str(kresd_bin))


def fill(etc: Path, kresd_bin: Path, out: Path | None = None) -> list[Path]:
    """Render every etc/*.in into out (default: etc itself); returns the files written."""
    out = out or etc
    written = []
    for tpl in sorted(etc.glob("*.in")):
        target = out / tpl.name[: -len(".in")]
        text = render(tpl.read_text(encoding="utf-8"), kresd_bin)
        tmp = target.with_name(target.name + ".tmp")
        tmp.write_text(text, encoding="utf-8")
        os.replace(tmp, target)
        written.append(target)
    return written


def main(argv: list[str] | None = None) -> int:
    here = Path(__file__).resolve().parents[1] / "etc"
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--etc", type=Path, default=here, help="directory of the templates (*.in)")
    p.add_argument("--kresd", type=Path, default=default_kresd(), help="installed kresd to run")
    p.add_argument("--out", type=Path, default=None, help="where to write (default: --etc)")
    a = p.parse_args(argv)
    if not a.kresd.exists():
        p.error(f"{a.kresd} does not exist: install kresd-py first (tools/install.sh)")
    for path in fill(a.etc, a.kresd.absolute(), a.out):
        print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
