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


def install(engine) -> None:
    engine.lua.globals()[b"map"] = engine.lua_bridge.wrap(lambda *a: map_(engine, *a))
