"""The Lua engine: one LuaJIT runtime per process, kresd 5.x configuration.

Owns: the `Engine` (runtime, sandbox, module registry, resolver, cache,
scheduler), loading config files/text with kresd's sugar and turning any
failure into ConfigError(message, file, line), kresd's post-config defaults,
console evaluation (`eval`), and attaching to/detaching from the worker's
event loop (`start`/`stop`).
Must not: bind sockets, fork, block, or read the clock other than through the
injected Clock; each Lua namespace lives in kresd/bindings/.

    eng = Engine(settings, rundir=".", clock=None, scheduler=None, worker_id=0,
                 worker_count=1, transport=None)
    eng.load_config(path) / eng.load_config_text(text, name="config")
    eng.post_config()            # listen defaults, cache, default modules
    eng.eval(line) -> str        # console command; errors come back as text
    eng.eval_value(expr)         # one expression's value (Python), KresdError on failure
    eng.map_values(expr)         # map(): fanout over rundir/tty/ (kresd/fanout.py)
    eng.start(loop, transport) / eng.stop()
    eng.resolver, eng.cache, eng.registry, eng.scheduler, eng.lua_bridge, eng.lua
"""
from __future__ import annotations

import logging
import os
import re

import lupa.luajit21 as luajit

from kresd.bindings import install_all
from kresd.bindings.bridge import LuaBridge, LuaError
from kresd.bindings.event import AsyncioScheduler, FakeScheduler, Scheduler  # noqa: F401 (API)
from kresd.errors import ConfigError
from kresd.modules.lua_adapter import LuaModuleFinder
from kresd.modules.registry import ModuleContext, Registry
from workers.resolve import Resolver
from workers.settings import Endpoint, Settings
from workers.transport import Clock

log = logging.getLogger("kresd.engine")

# kresd 5.6 sandbox.lua loads these at start (before the config); the ones
# that exist here are loaded the same way, so `if priming then modules.unload('priming') end` works.
DEFAULT_MODULES = ("ta_signal_query", "policy", "priming", "detect_time_skew", "detect_time_jump",
                   "ta_sentinel", "edns_keepalive", "refuse_nord", "watchdog", "extended_error")
DEFAULT_LISTEN = (("127.0.0.1", 53), ("::1", 53))
DEFAULT_CACHE_SIZE = 100 * 1024 * 1024
_POS = re.compile(r"^(?:\[string \"[^\"]*\"\]|[^\s:]+):\d+: ")

_TRACEBACK = """
local source = ...
return function(err)
    local line
    for level = 2, 64 do
        local info = debug.getinfo(level, 'Sl')
        if not info then break end
        if info.source == source and info.currentline and info.currentline > 0 then
            line = info.currentline
            break
        end
    end
    if type(err) ~= 'string' then err = tostring(err) end
    return {err, line}
end
"""


class Engine:
    def __init__(self, settings: Settings, *, rundir: str = ".", clock: Clock | None = None,
                 scheduler=None, worker_id: int = 0, worker_count: int = 1, transport=None):
        self.settings = settings
        self.rundir = rundir
        self.clock = clock or Clock()
        self.scheduler = scheduler if scheduler is not None else AsyncioScheduler(None)
        self.transport = transport
        self.loop = None
        self.cache = None
        self.quit_requested: int | None = None
        self.on_quit = None  # set by the worker: called with the exit code
        self.log_level: str | None = None  # set by verbose()/log_level()
        self.options: dict[str, bool] = {}  # query flags Settings has no field for
        self.listen_configured = bool(settings.listen)
        self.default_listen = False
        self.lua = luajit.LuaRuntime(unpack_returned_tuples=True, register_eval=False,
                                     register_builtins=False, encoding=None)
        self.lua.globals()[b"python"] = None
        self.lua_bridge = LuaBridge(self.lua)
        self.resolver = Resolver(settings, None, self.clock)
        self.worker = _WorkerInfo(worker_id, worker_count)
        # set by the daemon (workers/main.py): the sockets served (net.list()), the
        # control socket, user() deferred until after binding, cpu-map from config
        self.listen_sockets: list | None = None
        self.control = None
        self.pending_user: tuple[int, int] | None = None
        self.check_dir: str | None = None  # --check-config: a scratch directory for the cache
        self.reload_check = None  # (exec prefix, args) of the group's config check (kresd -f N)
        self.leader_pid: int | None = None  # the group's leader, which SIGHUP reloads
        self.cpu_map = None  # None: not configured; False: pinning off; dict: worker -> cpus
        ctx = ModuleContext(settings, resolver=self.resolver, lua=self.lua_bridge,
                            worker={"id": worker_id, "count": worker_count, "pid": os.getpid(),
                                    "map": self.map_values, "stats": self._worker_stats},
                            scheduler=self.scheduler)
        self.registry = Registry(ctx, extra_loader=LuaModuleFinder(self))
        self._install()
        for name in DEFAULT_MODULES:
            if _builtin(name):
                self.lua_bridge.call(self.lua.globals()[b"modules"][b"load"], name)

    # -- set-up -------------------------------------------------------------------
    def lua_eval(self, code: str):
        return self.lua.eval(code.encode())

    def _install(self) -> None:
        # next to this file (pip installs unpacked); not importlib.resources, ~6 ms of imports at boot
        with open(os.path.join(os.path.dirname(os.path.abspath(__file__)), "lua", "sandbox.lua"), "rb") as f:
            text = f.read()
        loader = self.lua.execute(b"return function(code, name) return assert(loadstring(code, name)) end")
        bridge_tbl = self.lua.table_from({b"invoke": self.lua_bridge.invoke, b"is_callable": callable})
        self.lua_bridge.helpers = loader(text, b"@sandbox.lua")(bridge_tbl)
        self.sandbox = self.lua_bridge.helpers[b"sandbox"]
        install_all(self)

    # -- configuration ------------------------------------------------------------
    def load_config(self, path: str) -> None:
        try:
            with open(path, "rb") as f:
                text = f.read()
        except OSError as e:
            raise ConfigError(f"cannot read config: {e.strerror or e}", path) from e
        self.load_config_text(text, name=path)

    def load_config_text(self, text: str | bytes, name: str = "config") -> None:
        if isinstance(text, str):
            text = text.encode("utf-8")
        err, line = self._run_chunk(text, name)
        if err is not None:
            raise ConfigError(err, name, line)
        if self.quit_requested is not None:
            log.info("quit() called from %s", name)

    def _run_chunk(self, text: bytes, name: str):
        """Run text in the sandbox; (None, None) or (message, line)."""
        source = b"@" + name.encode()
        runner = self.lua.execute(b"""
            local text, source, env, handler = ...
            local chunk, err = loadstring(text, source)
            if not chunk then return {err} end
            setfenv(chunk, env)
            local ok, res = xpcall(chunk, handler)
            if ok then return nil end
            return res
        """, text, source, self.sandbox, self.lua.execute(_TRACEBACK.encode(), source))
        if runner is None:
            return None, None
        msg = runner[1]
        msg = msg.decode("utf-8", "replace") if isinstance(msg, bytes) else str(msg)
        line = runner[2]
        # the source as Lua prints it: the path, or "...<its tail>" when longer than LUA_IDSIZE
        m = re.match(r"^(?:" + re.escape(name) + r"|\.\.\.[^\n]*?):(\d+): ", msg)
        if m:
            line = line or int(m.group(1))
        msg = _POS.sub("", msg.split("\nstack traceback:", 1)[0])
        return msg, line

    def post_config(self) -> None:
        """kresd's defaults after all configs: listeners and the cache."""
        if not self.settings.listen and not self.listen_sockets:  # -S / activation: no defaults
            self.default_listen = True  # the daemon may skip ::1 where IPv6 is missing
            for addr, port in DEFAULT_LISTEN:
                self.settings.listen.append(Endpoint(addr, port, "dns"))
        if self.cache is None:
            from kresd.bindings.cache import open_cache

            open_cache(self, self.settings.cache_size or DEFAULT_CACHE_SIZE, None)

    # -- console ------------------------------------------------------------------
    def changed(self) -> None:
        """Lua runs now and may change the configuration (policy rules, hints,
        modules): the fast path re-reads its consent data (Settings.epoch)."""
        self.settings.epoch += 1

    def eval(self, line: str) -> str:
        """One console command: `return <line>` if it compiles, else the statement."""
        self.changed()
        code = line.encode("utf-8") if isinstance(line, str) else line
        try:
            res = self.lua.execute(b"""
                local code, env, render = ...
                local chunk = loadstring('return ' .. code, '=console')
                if not chunk then
                    local err
                    chunk, err = loadstring(code, '=console')
                    if not chunk then return false, err end
                end
                setfenv(chunk, env)
                local function pack(...) return { n = select('#', ...), ... } end
                local r = pack(pcall(chunk))
                if not r[1] then return false, tostring(r[2]) end
                local out = {}
                for i = 2, r.n do
                    table.insert(out, render(r[i], 0, {}))
                end
                return true, table.concat(out, '\\n')
            """, code, self.sandbox, self.lua_bridge.helpers[b"render"])
        except LuaError as e:  # even a failing error handler must not escape
            return f"error: {e}"
        ok, text = res
        text = text.decode("utf-8", "replace") if isinstance(text, bytes) else str(text)
        return text if ok else "error: " + _POS.sub("", text.split("\nstack traceback:", 1)[0])

    def compile_error(self, expr: str) -> str | None:
        """None if expr compiles (as an expression or a statement), else the message."""
        code = expr.encode("utf-8") if isinstance(expr, str) else expr
        err = self.lua.execute(b"""
            local code = ...
            if loadstring('return ' .. code, '=map') then return nil end
            local _, err = loadstring(code, '=map')
            return err
        """, code)
        return None if err is None else err.decode("utf-8", "replace") if isinstance(err, bytes) else str(err)

    def eval_value(self, expr: str):
        """The (first) value of a Lua expression/statement as Python (lists/dicts/str);
        a compile or run-time error raises KresdError with the Lua message."""
        from kresd.errors import KresdError

        self.changed()
        code = expr.encode("utf-8") if isinstance(expr, str) else expr
        ok, val = self.lua.execute(b"""
            local code, env = ...
            local chunk, err = loadstring('return ' .. code, '=map')
            if not chunk then chunk, err = loadstring(code, '=map') end
            if not chunk then return false, err end
            setfenv(chunk, env)
            local ok, res = pcall(chunk)
            if not ok then return false, tostring(res) end
            return true, res
        """, code, self.sandbox)
        if not ok:
            msg = val.decode("utf-8", "replace") if isinstance(val, bytes) else str(val)
            raise KresdError(_POS.sub("", msg.split("\nstack traceback:", 1)[0]))
        return self.lua_bridge.to_py(val)

    def _worker_stats(self) -> dict:
        from kresd.bindings.worker import stats

        return stats(self)

    def map_values(self, expr: str, mode: str = "json"):
        """kresd's map(): run expr on every instance with a socket in rundir/tty/
        (this one in-process); a fanout.MapReply ordered by worker id."""
        from kresd.fanout import map_expr

        return map_expr(expr, self.rundir, compile_fn=self.compile_error, mode=mode,
                        local_json=self.eval_value, local_eval=self.eval, worker_id=self.worker.id)

    # -- runtime ------------------------------------------------------------------
    def start(self, loop, transport=None) -> None:
        """Attach to the worker's loop: arm timers set during config."""
        self.loop = loop
        if transport is not None:
            self.transport = transport
        if isinstance(self.scheduler, AsyncioScheduler):
            self.scheduler.attach(loop)

    def stop(self) -> None:
        from kresd.bindings.event import cancel_all

        cancel_all(self)
        for name in list(reversed(self.registry.list())):
            try:
                self.registry.unload(name)
            except Exception:  # noqa: BLE001 - shutting down anyway
                log.exception("unloading module %s", name)
        if self.cache is not None:
            try:
                self.cache.close()
            except Exception as e:  # noqa: BLE001
                log.debug("cache close: %r", e)
            self.cache = None
            self.resolver.cache = None
        self.loop = None

    def quit(self, code: int = 0) -> None:
        self.quit_requested = code
        if self.on_quit is not None:
            self.on_quit(code)


class _WorkerInfo:
    """worker.id/count/pid and the daemon's stats hook (worker.stats())."""

    def __init__(self, wid: int, count: int):
        self.id = wid
        self.count = count
        self.stats_provider = None  # callable -> dict, set by workers/main.py


def _builtin(name: str) -> bool:
    from kresd.modules.registry import builtin_factory

    return builtin_factory(name) is not None
