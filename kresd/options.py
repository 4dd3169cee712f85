"""A getopt_long-style parser for the `kresd` command line (kresd 5.6 parses
its flags with getopt_long in daemon/main.c).

Owns: the option spec (`Opt`), parsing argv into `{dest: value}` (bundled
short flags `-nq`; a value attached, `-a127.0.0.1` / `--addr=x`, or the next
word, even one starting with `-`, as in `-c -`; options before and after the
positional argument; `--` ends the options), converting values after the
whole line parsed (a converter's ValueError is a usage error), the help text,
and usage errors in click's words and exit code (2; kresd-py used click).
Must not: know kresd's flags (kresd/cli.py declares them), or import more than
the standard library's basics: it runs first at every start, where click
cost ~12 ms of imports and parsing in a restart's silence.
"""
from __future__ import annotations

import sys
from typing import Any, Callable, NamedTuple, Sequence

EXIT_USAGE = 2  # kresd/errors.py EXIT_USAGE (not imported: that pulls in the cache package)


class UsageError(Exception):
    """A bad command line; the message follows 'Error: '."""


class Opt(NamedTuple):
    """One option: `-short`/`--long`; a flag when `metavar` is None."""

    short: str | None
    long: str
    dest: str
    metavar: str | None = None
    help: str = ""
    multiple: bool = False  # repeatable: a tuple of the values given, in order
    convert: Callable[[str], Any] | None = None  # raises ValueError with the reason
    default: Any = None
    hidden: bool = False

    def names(self) -> str:
        long = f"--{self.long}"
        return f"-{self.short}, {long}" if self.short else long

    def initial(self) -> Any:
        if self.multiple:
            return ()
        return False if self.metavar is None else self.default


def at_least(low: int) -> Callable[[str], int]:
    """A converter to int >= low (click's IntRange(min=low) message)."""
    def convert(text: str) -> int:
        try:
            n = int(text)
        except ValueError:
            raise ValueError(f"'{text}' is not a valid integer.") from None
        if n < low:
            raise ValueError(f"{n} is not in the range x>={low}.")
        return n
    return convert


def _take(opt: Opt, raw: dict[str, list[str]], value: str | None) -> None:
    raw.setdefault(opt.dest, []).append(value if opt.metavar is not None else "")


def _long(word: str, rest: Sequence[str], by_long: dict[str, Opt], raw: dict) -> int:
    """Handle `--name[=value]`; returns how many words of `rest` it consumed."""
    name, eq, value = word[2:].partition("=")
    opt = by_long.get(name)
    if opt is None:
        raise UsageError(f"No such option '--{name}'.")
    if opt.metavar is None:
        if eq:
            raise UsageError(f"Option '--{name}' does not take a value.")
        _take(opt, raw, None)
        return 0
    if eq:
        _take(opt, raw, value)
        return 0
    if not rest:
        raise UsageError(f"Option '--{name}' requires an argument.")
    _take(opt, raw, rest[0])
    return 1


def _short(word: str, rest: Sequence[str], by_short: dict[str, Opt], raw: dict) -> int:
    """Handle `-abc` / `-aVALUE` / `-a VALUE`; returns the words of `rest` consumed."""
    for j in range(1, len(word)):
        opt = by_short.get(word[j])
        if opt is None:
            raise UsageError(f"No such option '-{word[j]}'.")
        if opt.metavar is None:
            _take(opt, raw, None)
            continue
        if j + 1 < len(word):
            _take(opt, raw, word[j + 1:])
            return 0
        if not rest:
            raise UsageError(f"Option '-{word[j]}' requires an argument.")
        _take(opt, raw, rest[0])
        return 1
    return 0


def split(argv: Sequence[str], opts: Sequence[Opt], max_positional: int = 1) -> tuple[dict, list[str]]:
    """The raw strings of each option given ({dest: [value, ...]}, "" for a
    flag) and the positional arguments; UsageError on a bad word."""
    by_short = {o.short: o for o in opts if o.short}
    by_long = {o.long: o for o in opts}
    raw: dict[str, list[str]] = {}
    positional: list[str] = []
    i = 0
    while i < len(argv):
        word, rest = argv[i], argv[i + 1:]
        i += 1
        if word == "--":
            positional += rest
            break
        if word.startswith("--"):
            i += _long(word, rest, by_long, raw)
        elif word.startswith("-") and word != "-":
            i += _short(word, rest, by_short, raw)
        else:
            positional.append(word)
    if len(positional) > max_positional:
        raise UsageError(f"Got unexpected extra argument ({positional[max_positional]})")
    return raw, positional


def convert(raw: dict[str, list[str]], opts: Sequence[Opt]) -> dict[str, Any]:
    """{dest: value} for every option: converted, defaults for those not
    given, the last value of a non-repeatable option (as getopt)."""
    values = {}
    for opt in opts:
        given = raw.get(opt.dest)
        if given is None:
            values[opt.dest] = opt.initial()
            continue
        if opt.metavar is None:
            values[opt.dest] = True
            continue
        try:
            out = [opt.convert(v) if opt.convert else v for v in given]
        except ValueError as e:
            names = f"'-{opt.short}' / '--{opt.long}'" if opt.short else f"'--{opt.long}'"
            raise UsageError(f"Invalid value for {names}: {e}") from None
        values[opt.dest] = tuple(out) if opt.multiple else out[-1]
    return values


def help_text(prog: str, usage: str, about: str, opts: Sequence[Opt]) -> str:
    """Usage line, description and the visible options, wrapped to 79 columns."""
    import textwrap  # only for -h

    rows = [(o.names() + (f" {o.metavar}" if o.metavar else ""), o.help) for o in opts if not o.hidden]
    width = min(max(len(left) for left, _ in rows), 24) + 4
    lines = [f"Usage: {prog} {usage}", "", textwrap.indent(about.strip("\n"), "  "), "", "Options:"]
    for left, text in rows:
        body = textwrap.wrap(text, 79 - width) or [""]
        first = f"  {left}".ljust(width)
        if len(first) > width:  # a long name: the text starts on the next line
            lines.append(first.rstrip())
            first = " " * width
        lines.append(first + body[0])
        lines += [" " * width + b for b in body[1:]]
    return "\n".join(lines) + "\n"


def usage_exit(prog: str, usage: str, err: UsageError) -> None:
    """Print a usage error as click did and exit with EXIT_USAGE."""
    print(f"Usage: {prog} {usage}\nTry '{prog} -h' for help.\n\nError: {err}", file=sys.stderr)
    raise SystemExit(EXIT_USAGE)
