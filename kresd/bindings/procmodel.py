"""`map(expr[, format])`: run one Lua expression on every kresd instance of the rundir.

Owns: the Lua face of kresd/fanout.py (kresd 5.6 sandbox.lua `map`): the
expression is compiled here before anything is sent, every live instance with
a control socket in `rundir/tty/` runs it (this one in-process), stale sockets
are skipped, an error on any instance is raised as a Lua error. The result is
a table ordered by worker id: `{[1] = value, [2] = value, ..., n = count}`.
`format`: 'luaobj' (default, kresd's name; values travel as JSON) or
'strings' (the printed console output of each instance).
Must not: talk to sockets itself (kresd/fanout.py does) or block beyond
fanout's per-socket timeout.
"""
from __future__ import annotations

from kresd.errors import KresdError

from .bridge import LuaUsage

MAP_USAGE = "map(expression, ['luaobj'|'strings'])"


def map_(engine, expr=None, fmt=None):
    if not isinstance(expr, str):
        raise LuaUsage(MAP_USAGE)
    mode = {None: "json", "luaobj": "json", "json": "json", "strings": "strings"}.get(fmt)
    if mode is None:
        raise LuaUsage(MAP_USAGE + ": format must be 'luaobj' or 'strings'")
    try:
        reply = engine.map_values(expr, mode)
    except KresdError as e:
        raise LuaUsage(str(e)) from None
    out = engine.lua.table()
    for i, value in enumerate(reply.values(), 1):
        out[i] = engine.lua_bridge.to_lua(value)
    out[b"n"] = reply.count
    return out


def reload_(engine):
    """kresd-py: reload() checks the config files of the group in a sandbox
    here (a bad one is refused with its file:line, nothing restarts), then
    asks the leader (SIGHUP) to replace every process one at a time
    (kresd/reload.py); returns at once, the replacing goes on in the leader."""
    import os
    import signal

    from kresd.reload import check_sync

    if engine.reload_check is None or engine.leader_pid is None:
        raise LuaUsage("reload() needs a kresd -f N group (its leader replaces the processes); "
                       "a single kresd is restarted by its supervisor (tools/supervisor.py: SIGHUP)")
    prefix, args = engine.reload_check
    if "-" in args:
        raise LuaUsage("reload(): the config was read from stdin (-c -); there is nothing to re-read")
    ok, out = check_sync(prefix, args)
    if not ok:
        raise LuaUsage(f"reload(): the new config is refused, nothing restarted: {out}")
    try:
        os.kill(engine.leader_pid, signal.SIGHUP)
    except OSError as e:
        raise LuaUsage(f"reload(): cannot signal the leader (pid {engine.leader_pid}): {e}") from None
    return f"config OK; the leader (pid {engine.leader_pid}) replaces the processes one at a time"


def install(engine) -> None:
    engine.lua.globals()[b"map"] = engine.lua_bridge.wrap(lambda *a: map_(engine, *a))
    engine.lua.globals()[b"reload"] = engine.lua_bridge.wrap(lambda *a: reload_(engine))
