"""`upstreams` namespace (kresd-py): what server selection learned per upstream IP.

  upstreams.show()        -- { ['192.0.2.1'] = {srtt=, var=, timeout=, penalty=,
                          --   timeouts=, dead=, no_edns=, tcp_only=, age=}, ... }
                          -- srtt/var/timeout/penalty in ms, age in s since the last update
  upstreams.show('192.0.2.1')   -- that address only (nil when unknown)
  upstreams.reset(['192.0.2.1'])  -- forget one address, or all of them

Addresses on another port than 53 read 'ip#port'. The state is shared by
all forks of the rundir (workers/selection/table.py): a reset in one is seen
by all of them. The same table is in worker.stats().upstreams.
Owns: argument checks and the conversion of Selection.show() for Lua.
Must not: change the selection logic (workers/selection/).
"""
from __future__ import annotations

import ipaddress

from .bridge import LuaUsage

SHOW_USAGE = "upstreams.show([ip])"
RESET_USAGE = "upstreams.reset([ip])"


def _addr(text, usage: str) -> str:
    if isinstance(text, bytes):
        text = text.decode("utf-8", "replace")
    if not isinstance(text, str):
        raise LuaUsage(usage)
    host, sep, port = text.partition("#")
    try:
        ipaddress.ip_address(host)
        if sep and not (port.isdigit() and 0 < int(port) <= 0xFFFF):
            raise ValueError(port)
    except ValueError:
        raise LuaUsage(f"{usage}: '{text}' is not an IP address") from None
    return host if port in ("", "53") else f"{host}#{port}"


def show(engine, ip=None):
    table = engine.resolver.selection.show()
    if ip is None:
        return table
    return table.get(_addr(ip, SHOW_USAGE))


def reset(engine, ip=None) -> bool:
    engine.resolver.selection.reset(None if ip is None else _addr(ip, RESET_USAGE))
    return True


def install(engine) -> None:
    from . import namespace

    namespace(engine, "upstreams", {"show": lambda ip=None: show(engine, ip),
                                    "reset": lambda ip=None: reset(engine, ip)})
