"""CLI: replay .rpl scenarios in-process against the resolution core, or through the binary.

    .venv/bin/python -m tests.scenarios.run [glob] [--qmin on|off|both] [-v]
    .venv/bin/python -m tests.scenarios.run --binary [glob] [-j N] [--kresd PATH]

(from the project root). The scenarios are `<project root>/../shared/scenarios/
resolver/*.rpl`, or under $KRESD_SHARED_DIR (tests/shared_data.py); `--dir`
picks another folder of .rpl files (kresd.j2 is always the shared one).

`--binary` runs the real executable (default .venv/bin/kresd, by full path)
in one network namespace per scenario and mode (binary.py), N at a time;
`--only-passing` restricts it to runs that pass in-process (the acceptance
set: every scenario passing in-process also passes through the binary).

Owns: choosing scenario files, printing one line per scenario and QMIN mode
(`PASS name [qmin=on]`, `FAIL name [qmin=off]: reason`, `XFAIL ...`,
`XPASS ...`) and the total line; exit status 1 when something failed
unexpectedly or a listed run passed (take it off the list: it only shrinks),
2 when it cannot run (no scenarios, binary mode unavailable).
Must not: contain replay logic (replay.py) or list parsing (expected.py).
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from tests import shared_data

from . import binary, expected, replay, rpl


def _args(argv):
    parser = argparse.ArgumentParser(prog="python -m tests.scenarios.run", description=__doc__.split("\n")[0])
    parser.add_argument("glob", nargs="?", default="*", help="scenario name glob (without .rpl), default *")
    parser.add_argument("--qmin", choices=("on", "off", "both"), default="both",
                        help="QNAME minimisation mode(s) for scenarios whose header does not fix it")
    parser.add_argument("--dir", type=Path, default=None,
                        help=f"folder with .rpl files (default: scenarios/resolver of ${shared_data.ENV} "
                        "or of <project root>/../shared)")
    parser.add_argument("--expected", type=Path, default=expected.LIST_PATH,
                        help="expected-failures list")
    parser.add_argument("-v", "--verbose", action="store_true",
                        help="print the upstream query trace (and, binary mode, the daemon log tail) of failing runs")
    parser.add_argument("--binary", action="store_true", help="run the real kresd binary in network namespaces")
    parser.add_argument("--kresd", type=Path, default=binary.DEFAULT_KRESD, help="binary mode: kresd path")
    parser.add_argument("-j", "--jobs", type=int, default=None, help="binary mode: parallel runs")
    parser.add_argument("--only-passing", action="store_true",
                        help="binary mode: only runs that pass in-process")
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
    folder = args.dir or shared_data.scenario_dir()
    if not folder.is_dir():
        print(f"cannot run: {shared_data.missing_reason(folder)}")
        return 2
    pattern = Path(args.glob).name.removesuffix(".rpl") + ".rpl"  # accepts names, globs, paths
    files = list(rpl.scenario_files(folder, pattern))
    if not files:
        print(f"no scenarios match {args.glob!r} in {folder}")
        return 2
    if args.binary:
        return _main_binary(args, table, files)
    core = replay.real_core()  # a core that does not import is a crash, not a report
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
            _report(args, table, counts, outcome)
    return _total(counts, started)


def _report(args, table, counts, outcome: replay.Outcome) -> None:
    listed = expected.reason_for(table, outcome.name, outcome.qmin)
    status = expected.classify(outcome.passed, listed)
    counts[status] += 1
    reason = outcome.reason if not outcome.passed else (
        f"on the expected-failures list ({listed}): take it off" if listed else "")
    if outcome.startup is not None or outcome.elapsed is not None:
        reason += f" ({_timing(outcome)})" if reason else ""
    line = _line(status, outcome, reason)
    if outcome.passed and outcome.elapsed is not None:
        line += f" ({_timing(outcome)})"
    print(line, flush=True)
    if args.verbose and not outcome.passed:
        _print_trace(outcome)
        if outcome.log_tail:
            print("    daemon log tail:")
            for text in outcome.log_tail.splitlines()[-20:]:
                print("      " + text)


def _timing(outcome: replay.Outcome) -> str:
    startup = f"start-up {outcome.startup:.2f}s, " if outcome.startup is not None else ""
    return f"{startup}{outcome.elapsed or 0:.1f}s"


def _total(counts: dict, started: float, extra: str = "") -> int:
    print(f"scenarios: {counts['PASS']} passed, {counts['FAIL']} failed, "
          f"{counts['XFAIL']} expected failures, {counts['XPASS']} unexpectedly passed "
          f"({time.monotonic() - started:.1f}s){extra}")
    return 1 if counts["FAIL"] or counts["XPASS"] else 0


def binary_jobs(files, wanted: str, only_passing: bool) -> list:
    """(path, qmin) runs for binary mode; with only_passing, those passing in-process."""
    jobs = []
    core = replay.real_core() if only_passing else None
    for path in files:
        scn = rpl.parse_file(path)
        for qmin in replay.modes_for(scn, wanted):
            if only_passing and not replay.run_scenario(scn, qmin, core).passed:
                continue
            jobs.append((path, qmin))
    return jobs


def _main_binary(args, table, files) -> int:
    try:
        binary.check_available(args.kresd)
        jobs = binary_jobs(files, args.qmin, args.only_passing)
    except (binary.Unavailable, rpl.RplError) as exc:
        print(f"cannot run: {exc}")
        return 2
    binary_list = expected.LIST_PATH.with_name("expected_failures_binary.txt")
    table = {**table, **expected.load(binary_list)}  # daemon problems only the binary shows
    counts = dict.fromkeys(("PASS", "FAIL", "XFAIL", "XPASS"), 0)
    started = time.monotonic()
    startups = []
    for outcome in binary.run_many(jobs, args.kresd, args.jobs):
        _report(args, table, counts, outcome)
        if outcome.startup is not None:
            startups.append(outcome.startup)
    extra = ""
    if startups:
        startups.sort()
        extra = (f"; time to TCP accept: median {startups[len(startups) // 2]:.2f}s, "
                 f"max {startups[-1]:.2f}s over {len(startups)} starts")
    return _total(counts, started, extra)


if __name__ == "__main__":
    sys.exit(main())
