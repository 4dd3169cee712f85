"""`worker` namespace: id, count, pid, stats().

Owns: the worker's identity as Lua sees it and worker.stats(), which reads the
daemon's counters through engine.worker.stats_provider (set by
workers/main.py) or reports zeros before the server runs.
Must not: count anything itself.
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
        return None

    namespace(engine, "worker", {"stats": lambda: stats(engine)}, getter=getter)
