"""The expected-failures list (expected_failures.txt) and how results are classified.

Owns: reading `expected_failures.txt` (one `scenario[:on|off] reason` per
line, `#` comments) and turning an Outcome into PASS / FAIL / XFAIL / XPASS.
Must not: run scenarios or decide what counts as a failure (replay.py does).

README rule: a scenario not on the list that fails fails the suite; one on
the list that passes is reported (XPASS) so that it is taken off the list.
"""
from __future__ import annotations

from pathlib import Path
from typing import Optional

LIST_PATH = Path(__file__).with_name("expected_failures.txt")
MODES = ("on", "off")


class ListError(Exception):
    pass


def load(path=LIST_PATH) -> dict:
    """{(scenario, mode or None): reason}; mode None = every QMIN mode."""
    table = {}
    for no, raw in enumerate(Path(path).read_text(encoding="utf-8").splitlines(), 1):
        text = raw.split("#", 1)[0].strip()
        if not text:
            continue
        parts = text.split(None, 1)
        if len(parts) < 2:
            raise ListError(f"{path}:{no}: a reason is required: {raw!r}")
        name, _, mode = parts[0].partition(":")
        if mode and mode not in MODES:
            raise ListError(f"{path}:{no}: mode must be on or off: {raw!r}")
        if (name, mode or None) in table:
            raise ListError(f"{path}:{no}: duplicate entry {parts[0]}")
        table[(name, mode or None)] = parts[1].strip()
    return table


def reason_for(table: dict, name: str, qmin: bool) -> Optional[str]:
    mode = "on" if qmin else "off"
    return table.get((name, mode)) or table.get((name, None))


def classify(passed: bool, expected_reason: Optional[str]) -> str:
    if expected_reason is None:
        return "PASS" if passed else "FAIL"
    return "XPASS" if passed else "XFAIL"
