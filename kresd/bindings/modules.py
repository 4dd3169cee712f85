"""`modules` namespace: load ('name', 'a < b', 'a > b'), unload, list; the
`modules = {...}` / `modules.name = cfg` sugar; publishing module globals.

Owns: turning a loaded registry Module into the Lua global `<name>`: Python
modules get a proxy table built from Module.lua_api() (functions callable
with `.` or `:`, other keys routed to lua_get / lua_set, falling back to
config({key = value}) as kresd does); Lua modules publish their own table.
Must not: know any particular module.
"""
from __future__ import annotations

from kresd.errors import ConfigError

from .bridge import LuaUsage


def publish(engine, name: str, module) -> None:
    g = engine.lua.globals()
    lua_table = getattr(module, "lua_table", None)
    if lua_table is not None:
        g[name.encode()] = lua_table
        return
    b = engine.lua_bridge
    fields = engine.lua.table()
    for k, v in module.lua_api().items():
        fields[k.encode() if isinstance(k, str) else k] = v if callable(v) else b.to_lua(v)
    g[name.encode()] = b.helpers.module_proxy(name.encode(), fields, engine._module_get,
                                              engine._module_set)


def load(engine, spec=None, cfg=None):
    """modules.load('name' | 'name < other' | 'name > other')"""
    if not isinstance(spec, str) or not spec.strip():
        raise LuaUsage("modules.load('name' | 'name < other' | 'name > other')")
    name = spec.replace("<", " ").replace(">", " ").split()[0]
    already = engine.registry.get(name) is not None
    try:
        module = engine.registry.load(spec)
    except ConfigError as e:
        raise LuaUsage(e.message) from None
    if module is not None and not already:
        publish(engine, name, module)
    if cfg is not None and module is not None:
        module.config(cfg)
    return True


def unload(engine, name=None):
    """modules.unload('name') -> true if it was loaded"""
    if not isinstance(name, str):
        raise LuaUsage("modules.unload('name')")
    done = engine.registry.unload(name)
    if done:
        engine.lua.globals()[name.encode()] = None
    return done


def install(engine) -> None:
    from . import namespace

    reg = engine.registry

    def module_get(name, key):
        mod = reg.get(name)
        if mod is None:
            return None
        try:
            return mod.lua_get(key)
        except KeyError:
            return None

    def module_set(name, key, value):
        mod = reg.get(name)
        if mod is None:
            raise LuaUsage(f"module '{name}' is not loaded")
        if not mod.lua_set(key, value):
            mod.config({key: value})

    engine._module_get = engine.lua_bridge.wrap(module_get)
    engine._module_set = engine.lua_bridge.wrap(module_set)

    def setter(key, value):
        if isinstance(key, int):  # modules = {'name', ...}
            return load(engine, value)
        if isinstance(key, str):  # modules = {name = cfg} / modules.name = cfg
            return load(engine, key, value if value not in (True,) else None)
        raise LuaUsage("modules = {'name', name = config, ...}")

    namespace(engine, "modules", {
        "load": lambda *a: load(engine, *a),
        "unload": lambda *a: unload(engine, *a),
        "list": lambda: reg.list(),
    }, setter=setter)
