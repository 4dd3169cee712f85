"""kresd-style logging: log groups, levels and the `[group] message` format.

Owns: the log group names (kresd 5.6 `lib/log.c` group table), the kresd log
levels (crit, err, warning, notice, info, debug) and their mapping onto the
stdlib `logging` levels, and the one stderr handler of the process.
Must not: log from signal handlers, or log per packet above debug level (the
callers' duty); read configuration itself (cli.py / the engine call `setup`
and `set_level`).

Format, as kresd 5.6 writes to stderr: `[group ] message`, the group name
left-aligned in six columns (`[system] ...`, `[net   ] ...`).
Default level is `notice`, as kresd; `-v` (or `log_level('debug')`) enables
debug messages.
"""
from __future__ import annotations

import enum
import logging
import sys
from typing import TextIO

NOTICE = 25  # kresd has a level between INFO and WARNING
logging.addLevelName(NOTICE, "NOTICE")

# kresd level name -> logging level
LEVELS: dict[str, int] = {
    "crit": logging.CRITICAL,
    "err": logging.ERROR,
    "warning": logging.WARNING,
    "notice": NOTICE,
    "info": logging.INFO,
    "debug": logging.DEBUG,
}
DEFAULT_LEVEL = "notice"


class Group(str, enum.Enum):
    """kresd 5.6 log groups (the strings are kresd's, so logs grep the same)."""

    SYSTEM = "system"
    CACHE = "cache"
    IO = "io"
    NETWORK = "net"
    TA = "ta"
    TLS = "tls"
    DNSSEC = "dnssec"
    HINT = "hint"
    PLAN = "plan"
    ITERATOR = "iterat"
    VALIDATOR = "valdtr"
    RESOLVER = "resolv"
    SELECTION = "select"
    ZCUT = "zoncut"
    STATISTICS = "statis"
    WORKER = "worker"
    POLICY = "policy"
    PRIMING = "primin"
    PREFILL = "prefil"
    CONTROL = "contrl"
    MODULE = "module"
    DEVEL = "devel"
    EDE = "exterr"


class _KresdFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        group = getattr(record, "kr_group", None) or record.name.rsplit(".", 1)[-1]
        return f"[{group:<6}] {record.getMessage()}"


_ROOT = logging.getLogger("kresd")
_handler: logging.Handler | None = None


def setup(level: str = DEFAULT_LEVEL, stream: TextIO | None = None) -> None:
    """Install the stderr handler (idempotent) and set the level."""
    global _handler
    if _handler is not None:
        _ROOT.removeHandler(_handler)
    _handler = logging.StreamHandler(stream if stream is not None else sys.stderr)
    _handler.setFormatter(_KresdFormatter())
    _ROOT.addHandler(_handler)
    set_level(level)


def reset() -> None:
    """Undo `setup` (tests): no handler, level inherited from the root logger."""
    global _handler
    if _handler is not None:
        _ROOT.removeHandler(_handler)
        _handler = None
    _ROOT.setLevel(logging.NOTSET)


def set_level(level: str) -> None:
    """Set the kresd log level by name ('crit' ... 'debug'); ValueError if unknown."""
    try:
        _ROOT.setLevel(LEVELS[level])
    except KeyError:
        raise ValueError(f"unknown log level '{level}', expected one of {', '.join(LEVELS)}") from None


def get_level() -> str:
    lvl = _ROOT.getEffectiveLevel()
    for name, value in LEVELS.items():
        if value == lvl:
            return name
    return DEFAULT_LEVEL


def logger(group: Group) -> logging.Logger:
    """The logger of one group (`kresd.<group>`)."""
    return _ROOT.getChild(group.value)


def debug_enabled(group: Group = Group.SYSTEM) -> bool:
    """Cheap guard for per-packet debug messages."""
    return logger(group).isEnabledFor(logging.DEBUG)


def crit(group: Group, msg: str, *args) -> None:
    logger(group).critical(msg, *args)


def error(group: Group, msg: str, *args) -> None:
    logger(group).error(msg, *args)


def warning(group: Group, msg: str, *args) -> None:
    logger(group).warning(msg, *args)


def notice(group: Group, msg: str, *args) -> None:
    logger(group).log(NOTICE, msg, *args)


def info(group: Group, msg: str, *args) -> None:
    logger(group).info(msg, *args)


def debug(group: Group, msg: str, *args) -> None:
    logger(group).debug(msg, *args)
