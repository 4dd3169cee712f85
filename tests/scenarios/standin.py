"""A stand-in `kresd -n` for testing the binary runner itself (not the daemon).

Owns: reading the few facts a rendered kresd.j2 states plainly (SELF_ADDR,
root hints, NO_MINIMIZE, ALLOW_LOCAL, mode, net.ipv4/ipv6, min/max TTL) with
regular expressions, and serving them with the resolution core through
workers.main.run_worker, exiting 0 on SIGTERM like kresd.
Must not: be mistaken for the daemon under test: it never evaluates Lua and
ignores every feature line (policy, view, modules), so only plain iterative
scenarios are meaningful with it. `write_launcher()` makes an executable
script for nsdriver's `--kresd`.

    python -m tests.scenarios.standin -n      # in a directory holding `config`
"""
from __future__ import annotations

import os
import re
import stat
import sys
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parents[2]


def settings_from_config(text: str):
    import dns.name
    from workers.settings import Endpoint, GlueMode, Settings

    self_addr = re.search(r"net = \{ '([^']+)' \}", text).group(1)
    settings = Settings(listen=[Endpoint(self_addr, 53)])
    if ":" in self_addr:
        settings.outgoing_v6 = self_addr
    else:
        settings.outgoing_v4 = self_addr
    settings.edns_bufsize = 4096
    settings.cache_size = 2 * 1024 * 1024
    settings.priming = False
    hint = re.search(r"hints\.root\(\{\['([^']+)'\] = '([^']*)'\}\)", text)
    if hint and hint.group(2):
        settings.root_hints = {dns.name.from_text(hint.group(1)): [hint.group(2)]}
    settings.no_minimize = "option('NO_MINIMIZE', true)" in text
    settings.allow_local = "option('ALLOW_LOCAL', true)" in text
    settings.glue_mode = GlueMode.PERMISSIVE if "mode('permissive')" in text else GlueMode.NORMAL
    settings.ipv4 = "net.ipv4 = false" not in text
    settings.ipv6 = "net.ipv6 = false" not in text
    for attr, pattern in (("cache_min_ttl", r"cache\.min_ttl\((\d+)\)"),
                          ("cache_max_ttl", r"cache\.max_ttl\((\d+)\)")):
        found = re.search(pattern, text)
        if found:
            setattr(settings, attr, int(found.group(1)))
    return settings


def main() -> int:
    from workers.main import run_worker
    from workers.server import bind_endpoints

    settings = settings_from_config(Path("config").read_text(encoding="utf-8"))
    return run_worker(settings, ".", sockets=bind_endpoints(settings.listen))


def write_launcher(path: Path, python: str = sys.executable) -> Path:
    """An executable that runs this stand-in (nsdriver strips PYTHONPATH from the daemon's env)."""
    path = Path(path)
    path.write_text(f"#!/bin/sh\nPYTHONPATH={PROJECT_ROOT} exec {python} -m tests.scenarios.standin \"$@\"\n",
                    encoding="utf-8")
    path.chmod(path.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    return path


if __name__ == "__main__":
    os.environ.setdefault("PYTHONDONTWRITEBYTECODE", "1")
    sys.exit(main())
