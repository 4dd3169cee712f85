"""Exception root and exit codes shared by the daemon and the supervisor.

Owns: the KresdError hierarchy, the documented exit codes, and
`BOUNDARY_ERRORS`, what the daemon's entry points catch and report.
Must not: import anything from the rest of the project but the cache
library's own error class (cache/ is a library below the daemon and must not
import kresd/, so its CacheError is not a KresdError; it is re-exported here,
and there is no other CacheError).
"""
from __future__ import annotations

from cache.errors import CacheError

# Exit codes (documented in README.md). The supervisor halts instead of
# respawning on the boot-error codes.
EXIT_OK = 0
EXIT_FAILURE = 1  # generic runtime failure
EXIT_USAGE = 2  # bad command line (click's own code)
EXIT_CONFIG = 3  # configuration error (file, line, message)
EXIT_BIND = 4  # no listening socket could be bound
EXIT_NOT_IMPLEMENTED = 5  # a flag or feature that a later release brings
EXIT_RESPAWN_LIMIT = 6  # kresd -f N / tools/supervisor.py: a child kept dying (crash loop), halted


class KresdError(Exception):
    """Root of all errors raised by kresd-py."""


class ConfigError(KresdError):
    """A configuration error, with the file and line where it happened."""

    def __init__(self, message: str, file: str | None = None, line: int | None = None):
        self.message = message
        self.file = file
        self.line = line
        where = ""
        if file:
            where = f"{file}:{line}: " if line else f"{file}: "
        super().__init__(where + message)


class BootError(KresdError):
    """Start-up failed (e.g. nothing could be bound)."""

    def __init__(self, message: str, exit_code: int = EXIT_BIND):
        self.exit_code = exit_code
        super().__init__(message)


class NotImplementedYet(KresdError):
    """A feature that is parsed but not implemented yet."""


#: What the daemon's entry points (cli, kresd-query, supervisor) turn into
#: an error message and an exit code: its own errors and the cache library's.
BOUNDARY_ERRORS = (KresdError, CacheError)

__all__ = [
    "BOUNDARY_ERRORS", "BootError", "CacheError", "ConfigError", "KresdError",
    "NotImplementedYet", "EXIT_OK", "EXIT_FAILURE", "EXIT_USAGE", "EXIT_CONFIG", "EXIT_BIND",
    "EXIT_NOT_IMPLEMENTED", "EXIT_RESPAWN_LIMIT",
]
