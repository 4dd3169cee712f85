"""`worker` namespace: id, count, pid, stats(), cpu_map (assignable).

Owns: the worker's identity as Lua sees it and worker.stats(), which reads the
daemon's counters through engine.worker.stats_provider (set by
workers/main.py) or reports zeros before the server runs.
`worker.cpu_map` (kresd-py, for `kresd -f N`; PowerDNS cpu-map syntax):
  worker.cpu_map = '0=0 1=1 2=2,3'   -- worker id = cpu[,cpu...]; others wrap (and may be moved
                                     -- off a crowded CPU: kresd/cpubalance.py); mapped ones never move
  worker.cpu_map = {[0] = 0, [1] = {1, 2}}
  worker.cpu_map = false             -- no pinning at all
The leader applies it after loading its config (re-pins itself and its forks;
respawns use it); `kresd --cpu-map` on the command line wins over it.
Must not: count anything itself, or pin (kresd/supervisor.py does).
"""
from __future__ import annotations

import os

ZERO_STATS = ("queries", "concurrent", "dropped", "timeout", "udp", "tcp", "tls", "ipv4", "ipv6",
              "err_udp", "err_tcp", "err_tls", "pkt_nocache", "rconcurrent")


def stats(engine) -> dict:
    provider = engine.worker.stats_provider
    out = dict.fromkeys(ZERO_STATS, 0)
    if provider is not None:
        out.update(provider())
    return out


CPU_MAP_USAGE = "worker.cpu_map = 'worker=cpu[,cpu...] ...' | {[worker] = cpu|{cpu, ...}} | false"


def parse_cpu_map_value(value):
    """Lua value -> False (off) | dict worker -> tuple of cpus; LuaUsage if malformed."""
    from kresd.supervisor import parse_cpu_map

    from .bridge import LuaUsage

    if value is False:
        return False
    if isinstance(value, str):
        if value.strip().lower() in ("off", "none", "false"):
            return False
        try:
            return parse_cpu_map(value)
        except ValueError as e:
            raise LuaUsage(f"{CPU_MAP_USAGE}: {e}") from None
    items = dict(enumerate(value)) if isinstance(value, list) else value  # to_py made {0=..} a dict
    if not isinstance(items, dict):
        raise LuaUsage(CPU_MAP_USAGE)
    out = {}
    for wid, cpus in items.items():
        cpus = cpus if isinstance(cpus, list) else [cpus]
        if not isinstance(wid, int) or wid < 0 or not cpus \
                or not all(isinstance(c, int) and not isinstance(c, bool) and c >= 0 for c in cpus):
            raise LuaUsage(CPU_MAP_USAGE)
        out[wid] = tuple(cpus)
    return out


def install(engine) -> None:
    from . import namespace

    w = engine.worker

    def getter(key):
        if key == "id":
            return w.id
        if key == "count":
            return w.count
        if key == "pid":
            return os.getpid()
        if key == "cpu_map":
            cm = engine.cpu_map
            if cm is None or cm is False:
                return cm
            return " ".join(f"{k}={','.join(map(str, v))}" for k, v in sorted(cm.items()))
        return None

    def setter(key, value):
        from .bridge import LuaUsage

        if key != "cpu_map":
            raise LuaUsage(f"worker.{key}: read-only (only worker.cpu_map is assignable)")
        engine.cpu_map = parse_cpu_map_value(value)
        return None

    namespace(engine, "worker", {"stats": lambda: stats(engine)}, getter=getter, setter=setter)
