"""The `graphite` module: push the counters to carbon, as kresd 5.6's does.

Owns: kresd's configuration (`graphite.config{host = addr | {addr, ...},
port = 2003, prefix = 'kresd.<hostname>.<worker id>', interval = 5 * sec,
tcp = false}`; the interval in milliseconds, kresd's `sec` unit), and every
`interval` the carbon plaintext lines `<prefix>.<key> <value> <unix time>`
of this instance's `cache.stats()` (under `<prefix>.cache`),
`worker.stats()` (under `<prefix>.worker`) and `stats.list()` (under
`<prefix>`), to each server over UDP (one datagram per line) or TCP (one
connection kept, re-made after an error). Each instance publishes its own
counters under its own prefix, as kresd's workers do.
Must not: block the loop (TCP goes through asyncio) or raise from a timer: a
server that cannot be reached is logged and tried again at the next interval.
"""
from __future__ import annotations

import asyncio
import socket
import time
from typing import Any

from kresd import log, metrics
from kresd.bindings.bridge import LuaUsage
from kresd.control import to_jsonable

from .registry import Module, builtin

G = log.Group.SYSTEM
USAGE = "graphite.config({host = addr | {addr, ...}, port = 2003, prefix = str, interval = ms, tcp = false})"


@builtin
class Graphite(Module):
    name = "graphite"

    def __init__(self, ctx):
        super().__init__(ctx)
        self.servers: list[dict] = []
        self.interval_ms = 5000
        self.prefix = f"kresd.{socket.gethostname()}.{ctx.worker.get('id', 0)}"
        self._timer = None

    def init(self) -> None:
        registry = self.ctx.registry
        lua = getattr(self.ctx, "lua", None)
        if registry is not None and registry.get("stats") is None and lua is not None:
            lua.runtime.globals()[b"modules"][b"load"](b"stats")  # kresd: if not stats then load

    def config(self, arg: Any = None) -> Any:
        if arg is None:
            return 0
        if not isinstance(arg, dict) or "host" not in arg:
            raise LuaUsage(USAGE)
        port = arg.get("port", 2003)
        if not isinstance(port, int) or isinstance(port, bool) or not 0 < port <= 65535:
            raise LuaUsage(USAGE + ": bad port")
        interval = arg.get("interval", self.interval_ms)
        if not isinstance(interval, (int, float)) or isinstance(interval, bool) or interval < 100:
            raise LuaUsage(USAGE + ": interval in ms, at least 100")
        self.interval_ms = interval
        if "prefix" in arg:
            self.prefix = str(arg["prefix"])
        hosts = arg["host"] if isinstance(arg["host"], list) else [arg["host"]]
        for host in hosts:
            if not isinstance(host, str):
                raise LuaUsage(USAGE + ": host is an address")
            self.servers.append({"host": host, "port": port, "tcp": bool(arg.get("tcp")), "writer": None})
        self._arm()
        return 0

    def lua_api(self) -> dict:
        return {"config": self.config, "publish": self.publish}

    def _arm(self) -> None:
        scheduler = getattr(self.ctx, "scheduler", None)
        if scheduler is None:
            return
        if self._timer is not None:
            scheduler.cancel(self._timer)
        self._timer = scheduler.call_later(self.interval_ms / 1000.0, self._tick)

    def _tick(self) -> None:
        self._timer = None
        try:
            self.publish()
        except Exception as e:  # noqa: BLE001 - a timer must not die
            log.info(G, "graphite: publishing failed: %r", e)
        self._arm()

    def lines(self, now: int | None = None) -> list[str]:
        """This instance's carbon lines."""
        now = int(time.time()) if now is None else now
        registry = self.ctx.registry
        stats = registry.get("stats") if registry is not None else None
        provider = self.ctx.worker.get("stats")
        tables = [(f"{self.prefix}.cache", self.ctx.cache.stats() if self.ctx.cache is not None else {}),
                  (f"{self.prefix}.worker", provider() if callable(provider) else {}),
                  (self.prefix, stats.list() if stats is not None else {})]
        out = []
        for prefix, table in tables:
            flat: dict[str, float] = {}
            metrics.flatten({k: v for k, v in to_jsonable(table).items() if k != "upstreams"}, "", flat)
            out += [f"{prefix}.{k} {v} {now}\n" for k, v in sorted(flat.items())]
        return out

    def publish(self) -> int:
        if not self.servers:
            raise LuaUsage("no graphite server configured")
        lines = self.lines()
        for server in self.servers:
            if server["tcp"]:
                asyncio.get_event_loop().create_task(self._send_tcp(server, lines))
            else:
                self._send_udp(server, lines)
        return 0

    def _send_udp(self, server: dict, lines: list[str]) -> None:
        family = socket.AF_INET6 if ":" in server["host"] else socket.AF_INET
        with socket.socket(family, socket.SOCK_DGRAM) as s:
            s.setblocking(False)
            for line in lines:
                try:
                    s.sendto(line.encode(), (server["host"], server["port"]))
                except OSError as e:
                    log.info(G, "graphite: %s@%d udp: %s", server["host"], server["port"], e.strerror or e)
                    return

    async def _send_tcp(self, server: dict, lines: list[str]) -> None:
        try:
            if server["writer"] is None or server["writer"].is_closing():
                _, server["writer"] = await asyncio.wait_for(
                    asyncio.open_connection(server["host"], server["port"]), self.interval_ms / 1000.0)
            server["writer"].write("".join(lines).encode())
            await asyncio.wait_for(server["writer"].drain(), self.interval_ms / 1000.0)
        except (OSError, asyncio.TimeoutError) as e:
            log.info(G, "graphite: %s@%d tcp: %r", server["host"], server["port"], e)
            if server["writer"] is not None:
                server["writer"].close()
            server["writer"] = None

    def deinit(self) -> None:
        scheduler = getattr(self.ctx, "scheduler", None)
        if self._timer is not None and scheduler is not None:
            scheduler.cancel(self._timer)
        self._timer = None
        for server in self.servers:
            if server.get("writer") is not None:
                server["writer"].close()
