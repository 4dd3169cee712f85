"""kresd 5.x Lua namespaces, one module per namespace.

Owns: the list of binding modules and `install_all(engine)`, which publishes
each namespace as Lua globals in the engine's runtime.
Must not: hold engine state (each binding reads/writes Settings, the cache or
the registry through the engine it is given).

Every binding module exposes `install(engine)`. Bindings are plain Python
functions taking converted Lua arguments (kresd/bindings/bridge.py); a usage
error is `raise LuaUsage("usage text")`, which becomes a Lua error at the
caller's file:line.
"""
from __future__ import annotations

from . import cache, event, kres, misc, modules, net, procmodel, trust_anchors, upstreams, worker

BINDINGS = (kres, misc, net, cache, event, worker, trust_anchors, modules, procmodel, upstreams)


def install_all(engine) -> None:
    for mod in BINDINGS:
        mod.install(engine)


def namespace(engine, name: str, funcs: dict, *, getter=None, setter=None):
    """Create global `name`: a Lua table of wrapped functions/values, with
    optional __index(key) / __newindex(key, value) Python handlers."""
    lua = engine.lua
    b = engine.lua_bridge
    t = lua.table()
    for k, v in funcs.items():
        t[k.encode()] = b.wrap(v) if callable(v) else b.to_lua(v)
    if getter is not None or setter is not None:
        meta = lua.table()
        if getter is not None:
            meta[b"__index"] = engine.lua_eval("function(f) return function(_, k) return f(k) end end")(
                b.wrap(getter))
        if setter is not None:
            meta[b"__newindex"] = engine.lua_eval(
                "function(f) return function(_, k, v) return f(k, v) end end")(b.wrap(setter))
        engine.lua_eval("setmetatable")(t, meta)
    engine.lua.globals()[name.encode()] = t
    return t
