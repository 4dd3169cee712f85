"""Modules written in Lua: finding them on the module path and running their
`layer` hooks in the request pipeline.

Owns: `LuaModuleFinder` (the Registry's extra_loader: `<name>.lua` or
`<name>/init.lua` in the rundir, then the directories of package.path), and
`LuaModule` / `LuaLayer`, which call a Lua module table's init/deinit/config
and its kresd layer hooks `(state, req[, pkt])`, returning a State.
Must not: do I/O beyond reading the module file at load time, or let a Lua
error escape into the driver (a failing hook is logged; begin -> FAIL).
"""
from __future__ import annotations

import logging
import os

from kresd.errors import ConfigError
from kresd.modules.registry import Module, ModuleContext
from workers.layer import Layer, State

log = logging.getLogger("kresd.modules")

HOOKS = ("begin", "produce", "checkout", "consume", "answer_finalize", "finish")


class LuaLayer(Layer):
    """A workers.layer.Layer calling the Lua module's `layer` table."""

    def __init__(self, name: str, engine, layer_table):
        self.name = name
        self.engine = engine
        self.table = layer_table
        for hook in HOOKS:
            if layer_table[hook.encode()] is None:
                setattr(self, hook, getattr(Layer, hook).__get__(self))

    def _call(self, hook: str, req, pkt=None):
        fn = self.table[hook.encode()]
        if fn is None:
            return None
        b = self.engine.lua_bridge
        args = [int(req.state or 0), b.wrap_request(req)]
        if pkt is not None:
            args.append(b.wrap_packet(pkt))
        try:
            res = fn(*args)
        except Exception as e:  # noqa: BLE001 - a Lua bug costs this hook, never the request
            log.error("[%05d] module %s failed in %s: %s", getattr(req, "uid", 0), self.name, hook,
                      str(e).split("\nstack traceback:", 1)[0])
            return State.FAIL if hook == "begin" else None
        if isinstance(res, tuple):
            res = res[0] if res else None
        if isinstance(res, (int, float)) and not isinstance(res, bool):
            return State(int(res))
        return None

    def begin(self, req):
        return self._call("begin", req)

    def produce(self, req, query):
        return self._call("produce", req, query)

    def checkout(self, req, query, addr, tcp):
        return self._call("checkout", req, query)

    def consume(self, req, reply):
        return self._call("consume", req, reply)

    def answer_finalize(self, req):
        return self._call("answer_finalize", req)

    def finish(self, req):
        return self._call("finish", req)


class LuaModule(Module):
    """A registry Module backed by a Lua table (published as the global itself)."""

    def __init__(self, ctx: ModuleContext, name: str, engine, table):
        super().__init__(ctx)
        self.name = name
        self.engine = engine
        self.lua_table = table
        layer = table[b"layer"]
        self.layer = LuaLayer(name, engine, layer) if layer is not None else None

    def _hook(self, name: str, *args):
        fn = self.lua_table[name.encode()]
        if fn is None:
            return None
        return self.engine.lua_bridge.call(fn, *args)

    def init(self) -> None:
        self._hook("init", self.lua_table)

    def deinit(self) -> None:
        self._hook("deinit", self.lua_table)

    def config(self, arg=None):
        return self._hook("config", arg)

    def lua_api(self) -> dict:
        return {}


class LuaModuleFinder:
    """Registry extra_loader: find and run `<name>.lua` / `<name>/init.lua`."""

    def __init__(self, engine):
        self.engine = engine

    def search_path(self) -> list[str]:
        dirs = [self.engine.rundir]
        path = self.engine.lua.eval(b"package.path") or b""
        for pat in path.decode("utf-8", "replace").split(";"):
            if pat.endswith("?.lua"):
                d = os.path.dirname(pat) or "."
                if d not in dirs:
                    dirs.append(d)
        return dirs

    def find(self, name: str) -> str | None:
        if not name.replace("_", "").replace("-", "").isalnum():
            return None
        for d in self.search_path():
            for cand in (os.path.join(d, name + ".lua"), os.path.join(d, name, "init.lua")):
                if os.path.isfile(cand):
                    return cand
        return None

    def __call__(self, name: str, ctx: ModuleContext):
        path = self.find(name)
        if path is None:
            return None
        with open(path, "rb") as f:
            text = f.read()
        res = self.engine.lua.execute(b"""
            local text, source, env = ...
            local chunk, err = loadstring(text, source)
            if not chunk then return false, err end
            setfenv(chunk, env)
            local ok, mod = pcall(chunk)
            if not ok then return false, mod end
            return true, mod
        """, text, b"@" + path.encode(), self.engine.sandbox)
        ok, mod = res
        if not ok:
            raise ConfigError(f"module '{name}': {_text(mod)}")
        if mod is None:  # old style: the file defined a global of the module's name
            mod = self.engine.lua.globals()[name.encode()]
        if self.engine.lua_bridge.lua_type(mod) != "table":
            raise ConfigError(f"module '{name}' ({path}) did not return a table")
        return LuaModule(ctx, name, self.engine, mod)


def _text(v) -> str:
    return v.decode("utf-8", "replace") if isinstance(v, bytes) else str(v)
