"""The `http` module: kresd 5.6's web management endpoints, for metrics.

Owns: the listeners asked for with `net.listen(addr, port, {kind = 'webmgmt'})`
(kresd 5.6's way; kresd/bindings/net.py hands them here) or `http.config{host
= , port = }`, each bound in every instance with SO_REUSEPORT (so any of a
rundir's processes may answer a request) once the worker's loop runs, served
by aiohttp on that loop; the endpoints:
  /metrics   Prometheus text format, kresd's names (kresd/metrics.py), summed
             over every instance of the rundir, plus per-instance families;
  /stats     the same sums as JSON (kresd's /stats);
  /frequent  stats.frequent() of this instance; /upstreams stats.upstreams();
  /health    200 "OK" while this instance serves;
and gathering the instances' counters without blocking the loop: this
instance's in-process, the others through their control sockets
(rundir/tty/<PID>, kresd/control.py's `__json`), asynchronously, so two
instances answering scrapes at the same moment never wait on each other.
`http.prometheus.namespace` (kresd's) prefixes every metric name.
Must not: parse HTTP itself (aiohttp does), serve TLS (plain HTTP only:
`tls = true` is refused with a clear error), or block the loop.
"""
from __future__ import annotations

import asyncio
import json
import os
import socket
from typing import Any

from kresd import log, metrics
from kresd.bindings.bridge import LuaUsage
from kresd.control import CONTROL_DIR, FRAME, to_jsonable
from kresd.fanout import control_sockets

from .registry import Module, builtin

G = log.Group.SYSTEM
# what each instance reports (one __json exchange per instance)
STATS_EXPR = "{stats = stats.list(), cache = cache.stats(), worker = worker.stats()}"
CONFIG_KEYS = {"host", "port", "tls", "cert", "key", "ephemeral", "endpoints", "snippets", "geoip"}


@builtin
class Http(Module):
    name = "http"

    def __init__(self, ctx):
        super().__init__(ctx)
        self.listen: list[tuple[str, int]] = []
        lua = getattr(self.ctx, "lua", None)
        # kresd's `http.prometheus.namespace = 'x'`: a Lua table the config writes into
        self.prometheus = lua.runtime.table_from({b"namespace": b""}) if lua is not None else {b"namespace": b""}
        self._runners: list = []
        self._started = False
        self._timer = None

    def init(self) -> None:
        registry = self.ctx.registry
        if registry is not None and registry.get("stats") is None:
            # the counters come from the stats module: loaded (and its Lua global
            # published) as modules.load('stats') in the config would
            lua = getattr(self.ctx, "lua", None)
            if lua is not None:
                lua.runtime.globals()[b"modules"][b"load"](b"stats")
            else:
                registry.load("stats")

    # -- configuration -----------------------------------------------------------
    def config(self, arg: Any = None) -> Any:
        if arg is None:
            return True
        if not isinstance(arg, dict):
            raise LuaUsage("http.config({host = addr, port = n, tls = false, ...})")
        unknown = set(arg) - CONFIG_KEYS
        if unknown:
            raise LuaUsage(f"http.config: unknown option(s) {', '.join(sorted(map(str, unknown)))}")
        if arg.get("tls"):
            raise LuaUsage("http.config: tls = true is not available in kresd-py (plain HTTP only)")
        if "port" in arg or "host" in arg:
            self.add_listener(arg.get("host", "127.0.0.1"), arg.get("port", 8453))
        return True

    def add_listener(self, addr: str, port: int) -> None:
        if not isinstance(port, int) or isinstance(port, bool) or not 0 < port <= 65535:
            raise LuaUsage("http: port must be 1-65535")
        if (addr, port) not in self.listen:
            self.listen.append((str(addr), port))
        scheduler = getattr(self.ctx, "scheduler", None)
        if scheduler is not None and self._timer is None:
            self._timer = scheduler.call_later(0, self._start_soon)

    def lua_api(self) -> dict:
        return {"config": self.config, "prometheus": self.prometheus}

    def namespace(self) -> str:
        ns = self.prometheus[b"namespace"] or ""
        return ns.decode("utf-8", "replace") if isinstance(ns, bytes) else str(ns)

    # -- serving -----------------------------------------------------------------
    def _start_soon(self) -> None:
        self._timer = None
        asyncio.get_event_loop().create_task(self._start())

    async def _start(self) -> None:
        from aiohttp import web

        app = web.Application()
        app.router.add_get("/metrics", self._metrics)
        app.router.add_get("/stats", self._stats)
        app.router.add_get("/frequent", self._frequent)
        app.router.add_get("/upstreams", self._upstreams)
        app.router.add_get("/health", self._health)
        for addr, port in self.listen:
            if any(r[1] == (addr, port) for r in self._runners):
                continue
            try:
                sock = _bind(addr, port)
            except OSError as e:
                log.error(G, "http: cannot listen on %s@%d: %s", addr, port, e.strerror or e)
                continue
            runner = web.AppRunner(app, access_log=None)
            await runner.setup()
            await web.SockSite(runner, sock).start()
            self._runners.append((runner, (addr, port)))
            log.info(G, "http: serving /metrics on %s@%d", addr, port)

    def deinit(self) -> None:
        runners, self._runners = self._runners, []
        if self._timer is not None and getattr(self.ctx, "scheduler", None) is not None:
            self.ctx.scheduler.cancel(self._timer)
        if not runners:
            return
        try:
            loop = asyncio.get_event_loop()
        except RuntimeError:
            return
        for runner, _ in runners:
            if loop.is_closed():
                break
            if loop.is_running():
                loop.create_task(runner.cleanup())
            else:
                loop.run_until_complete(runner.cleanup())

    async def gather(self) -> list[tuple[int | None, int, dict[str, float]]]:
        """(worker id, pid, flat stats) of every live instance, this one first."""
        me = os.getpid()
        own = self._local()
        out = [(self.ctx.worker.get("id"), me, own)]
        paths = [p for p in control_sockets(os.path.join(".", CONTROL_DIR))
                 if os.path.basename(p) != str(me)]
        results = await asyncio.gather(*(_remote(p) for p in paths), return_exceptions=True)
        for path, res in zip(paths, results):
            if isinstance(res, BaseException):
                log.debug(G, "http: no stats from %s: %r", path, res)
                continue
            out.append(res)
        out.sort(key=lambda r: (r[0] is None, r[0] if r[0] is not None else 0, r[1]))
        return out

    def _local(self) -> dict[str, float]:
        registry = self.ctx.registry
        stats = registry.get("stats") if registry is not None else None
        lua_stats = stats.list() if stats is not None else {}
        cache = self.ctx.cache.stats() if self.ctx.cache is not None else {}
        provider = self.ctx.worker.get("stats")
        worker = provider() if callable(provider) else {}
        return metrics.instance_stats(to_jsonable(lua_stats), to_jsonable(cache), to_jsonable(worker))

    async def _metrics(self, request):
        from aiohttp import web

        instances = await self.gather()
        selection = getattr(self.ctx.resolver, "selection", None)
        upstreams = selection.show() if selection is not None and hasattr(selection, "show") else {}
        text = metrics.render(metrics.merge(i[2] for i in instances), instances, self.namespace(), upstreams)
        return web.Response(text=text, content_type="text/plain", charset="utf-8",
                            headers={"X-Kresd-Instances": str(len(instances))})

    async def _stats(self, request):
        from aiohttp import web

        instances = await self.gather()
        return web.json_response(metrics.merge(i[2] for i in instances))

    async def _frequent(self, request):
        from aiohttp import web

        stats = self.ctx.registry.get("stats") if self.ctx.registry is not None else None
        return web.json_response(to_jsonable(stats.frequent()) if stats is not None else [])

    async def _upstreams(self, request):
        from aiohttp import web

        stats = self.ctx.registry.get("stats") if self.ctx.registry is not None else None
        return web.json_response(to_jsonable(stats.upstreams_list()) if stats is not None else {})

    async def _health(self, request):
        from aiohttp import web

        return web.Response(text="OK\n")


def _bind(addr: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in addr else socket.AF_INET
    s = socket.socket(family, socket.SOCK_STREAM)
    try:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        s.bind((addr, port))
        s.listen(128)
        s.setblocking(False)
    except BaseException:
        s.close()
        raise
    return s


async def _remote(path: str, timeout: float = 5.0):
    """One other instance's (worker id, pid, flat stats) over its control socket."""
    reader, writer = await asyncio.wait_for(asyncio.open_unix_connection(path), timeout)
    try:
        await asyncio.wait_for(reader.readexactly(2), timeout)  # the prompt
        writer.write(b"__binary\n__json " + STATS_EXPR.encode() + b"\n")
        await writer.drain()
        (n,) = FRAME.unpack(await asyncio.wait_for(reader.readexactly(FRAME.size), timeout))
        reply = json.loads(await asyncio.wait_for(reader.readexactly(n), timeout))
    finally:
        writer.close()
    if not reply.get("ok"):
        raise RuntimeError(reply.get("error", "error"))
    v = reply.get("value") or {}
    flat = metrics.instance_stats(v.get("stats") or {}, v.get("cache") or {}, v.get("worker") or {})
    return reply.get("id"), int(reply.get("pid", 0)), flat
