"""Module registry: load/unload/order modules and keep the resolver's layers.

Owns: the `Module` base class every built-in subclasses, `ModuleContext` (what
a module may use), the registry of built-in factories (`@builtin`), and the
ordered list of loaded modules whose `layer`s the driver walks
(`resolver.layers`). Ordering follows kresd's `modules.load('name < other')`
(before) and `'name > other'` (after); by default a module goes at the end.
Must not: know about Lua syntax (the engine turns Lua calls into these methods)
or about any particular module.

kresd's built-in pseudo-modules 'iterate', 'validate' and 'cache' are listed
(modules.list(), ordering anchors) but carry no Python layer: the driver
(workers/resolve.py) implements them.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any, Callable

from kresd.errors import ConfigError
from workers.layer import Layer

log = logging.getLogger("kresd.modules")

PSEUDO = ("iterate", "validate", "cache")


@dataclass
class ModuleContext:
    """What a module may touch. Fields the engine has not set yet are None."""

    settings: Any  # workers.settings.Settings
    resolver: Any = None  # workers.resolve.Resolver (its .layers are kept in sync)
    cache: Any = None  # cache.api.Cache
    lua: Any = None  # the engine's LuaBridge (kresd/engine.py): call Lua functions, patterns
    worker: dict = field(default_factory=lambda: {"id": 0, "count": 1, "pid": 0})
    registry: Any = None
    scheduler: Any = None  # the engine's timers (kresd/bindings/event.py): call_later(s, fn), cancel(h)


class Module:
    """A loadable module. Subclasses set `name` and may set `layer`.

    Lua face: `lua_api()` returns the table the engine publishes as the global
    `<name>`: str keys, values are Python callables (called with Lua arguments,
    a leading self-table from `name:fn()` already stripped), plain values or
    nested dicts. `lua_set(key, value)` handles `name.key = value` and
    `name[key] = value` (return True if handled; kresd's `module.key = value`
    sugar otherwise calls `config({key = value})`); `lua_get(key)` handles reads
    of keys that are not in lua_api (raise KeyError when absent).
    """

    name = "module"
    layer: Layer | None = None

    def __init__(self, ctx: ModuleContext):
        self.ctx = ctx

    def init(self) -> None:
        pass

    def deinit(self) -> None:
        pass

    def config(self, arg: Any = None) -> Any:
        return None

    def lua_api(self) -> dict:
        return {"config": self.config}

    def lua_set(self, key: Any, value: Any) -> bool:
        return False

    def lua_get(self, key: Any) -> Any:
        raise KeyError(key)


BUILTINS: dict[str, Callable[[ModuleContext], Module]] = {}


def builtin(cls):
    """Class decorator: register a built-in module under cls.name."""
    BUILTINS[cls.name] = cls
    return cls


# The files of the built-in modules (kresd/modules/<name>.py registers the
# module `name`). A file is imported when its module is first loaded, not at
# boot: the ones a config does not load cost no start-up time.
BUILTIN_FILES = ("hints", "stats", "policy", "view", "dns64", "renumber", "refuse_nord",
                 "workarounds", "priming", "ta_sentinel", "ta_signal_query", "bogus_log",
                 "ns_refresh", "http", "graphite", "nsid", "rebinding",
                 "edns_keepalive", "daf", "serve_stale", "predict", "rate_limiting", "prefill")


def builtin_factory(name: str) -> Callable[[ModuleContext], Module] | None:
    """The factory of the built-in module `name` (its file imported now if
    needed), or None when there is no such built-in."""
    if name not in BUILTINS and name in BUILTIN_FILES:
        import importlib

        try:
            importlib.import_module(f"kresd.modules.{name}")
        except ModuleNotFoundError as exc:
            if exc.name != f"kresd.modules.{name}":
                raise
    return BUILTINS.get(name)


def import_builtins() -> None:
    """Import every built-in module file now (before a privilege drop)."""
    for name in BUILTIN_FILES:
        builtin_factory(name)


class Registry:
    def __init__(self, ctx: ModuleContext, extra_loader: Callable[[str, ModuleContext], Module | None] | None = None):
        self.ctx = ctx
        ctx.registry = self
        self.order: list[str] = list(PSEUDO[:1])  # 'iterate' is always there
        self.loaded: dict[str, Module] = {}
        self.extra_loader = extra_loader  # the engine's Lua module finder

    def get(self, name: str) -> Module | None:
        return self.loaded.get(name)

    def list(self) -> list[str]:
        return list(self.order)

    def load(self, spec: str) -> Module | None:
        """Load 'name', 'name < other' or 'name > other'; loading twice is a no-op."""
        name, where, anchor = _parse_spec(spec)
        if name in PSEUDO:
            if name not in self.order:
                self.order.append(name)
            return None
        if name in self.loaded:
            return self.loaded[name]
        factory = builtin_factory(name)
        module = factory(self.ctx) if factory else None
        if module is None and self.extra_loader is not None:
            module = self.extra_loader(name, self.ctx)
        if module is None:
            raise ConfigError(f"module '{name}' not found (no built-in and no Lua module of that name)")
        module.init()
        self.loaded[name] = module
        self._insert(name, where, anchor)
        self._sync()
        return module

    def unload(self, name: str) -> bool:
        module = self.loaded.pop(name, None)
        if name in self.order:
            self.order.remove(name)
        if module is None:
            return False
        try:
            module.deinit()
        finally:
            self._sync()
        return True

    def _insert(self, name: str, where: str | None, anchor: str | None) -> None:
        if where and anchor in self.order:
            i = self.order.index(anchor)
            self.order.insert(i if where == "<" else i + 1, name)
        else:
            self.order.append(name)

    def layers(self) -> list[Layer]:
        return [self.loaded[n].layer for n in self.order if n in self.loaded and self.loaded[n].layer]

    def _sync(self) -> None:
        if self.ctx.resolver is not None:
            self.ctx.resolver.layers[:] = self.layers()


def _parse_spec(spec: str) -> tuple[str, str | None, str | None]:
    spec = spec.strip()
    for op in ("<", ">"):
        if op in spec:
            name, anchor = (x.strip() for x in spec.split(op, 1))
            return name, op, anchor
    return spec, None, None
