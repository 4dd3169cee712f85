"""CLI: replay .rpl scenarios in-process against the resolution core.

    cd /work/main && .venv/bin/python -m tests.scenarios.run [glob] [--qmin on|off|both] [-v]

Owns: choosing scenario files, printing one line per scenario and QMIN mode
(`PASS name [qmin=on]`, `FAIL name [qmin=off]: reason`, `XFAIL ...`,
`XPASS ...`) and the total line; exit status 1 when something failed
unexpectedly.
Must not: contain replay logic (replay.py) or list parsing (expected.py).
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from . import expected, replay, rpl

SCENARIO_DIR = Path("/work/shared/scenarios/resolver")


def _args(argv):
    parser = argparse.ArgumentParser(prog="python -m tests.scenarios.run", description=__doc__.split("\n")[0])
    parser.add_argument("glob", nargs="?", default="*", help="scenario name glob (without .rpl), default *")
    parser.add_argument("--qmin", choices=("on", "off", "both"), default="both",
                        help="QNAME minimisation mode(s) for scenarios whose header does not fix it")
    parser.add_argument("--dir", type=Path, default=SCENARIO_DIR, help="folder with .rpl files")
    parser.add_argument("--expected", type=Path, default=expected.LIST_PATH,
                        help="expected-failures list")
    parser.add_argument("-v", "--verbose", action="store_true",
                        help="print the upstream query trace of failing runs")
    return parser.parse_args(argv)


def _line(status: str, outcome: replay.Outcome, reason: str) -> str:
    text = f"{status} {outcome.name} [qmin={outcome.mode}]"
    return f"{text}: {reason}" if reason else text


def _print_trace(outcome: replay.Outcome) -> None:
    for ex in outcome.trace:
        proto = "tcp" if ex.tcp else "udp"
        print(f"    step {ex.step}: {ex.query} -> {ex.addr} {proto}: {ex.outcome}")


def main(argv=None) -> int:
    args = _args(argv)
    table = expected.load(args.expected)
    pattern = Path(args.glob).name.removesuffix(".rpl") + ".rpl"  # accepts names, globs, paths
    files = list(rpl.scenario_files(args.dir, pattern))
    if not files:
        print(f"no scenarios match {args.glob!r} in {args.dir}")
        return 2
    try:
        core = replay.real_core()
    except replay.CoreUnavailable as exc:
        print(f"cannot run: {exc}")
        return 2
    counts = dict.fromkeys(("PASS", "FAIL", "XFAIL", "XPASS"), 0)
    started = time.monotonic()
    for path in files:
        try:
            scn = rpl.parse_file(path)
        except rpl.RplError as exc:
            print(f"FAIL {path.stem}: scenario file error: {exc}")
            counts["FAIL"] += 1
            continue
        for outcome in replay.run_modes(scn, args.qmin, core):
            listed = expected.reason_for(table, outcome.name, outcome.qmin)
            status = expected.classify(outcome.passed, listed)
            counts[status] += 1
            reason = outcome.reason if not outcome.passed else (
                f"on the expected-failures list ({listed}): take it off" if listed else "")
            print(_line(status, outcome, reason), flush=True)
            if args.verbose and not outcome.passed:
                _print_trace(outcome)
    print(f"scenarios: {counts['PASS']} passed, {counts['FAIL']} failed, "
          f"{counts['XFAIL']} expected failures, {counts['XPASS']} unexpectedly passed "
          f"({time.monotonic() - started:.1f}s)")
    return 1 if counts["FAIL"] else 0


if __name__ == "__main__":
    sys.exit(main())
