"""ns_refresh (kresd-py): background refresh of NS addresses from the child zone.

Owns: the switch only. Loading the module sets `settings.ns_refresh = True`,
unloading it sets it to False. While it is on, a referral with glue below a TLD
makes the driver (workers/resolve.py `_queue_refresh`) queue the child zone's
own A/AAAA of those NS names, which the worker fetches in the background
(workers/refresh.py); the cache then prefers them to the glue, and the driver
falls back to the glue when they fail.
Must not: send anything itself.

Off by default: kresd 5.6 sends no such queries, and a resolver that asks what
kresd does not ask fails conformance scenarios that script every upstream
query (Deckard).
"""
from __future__ import annotations

from .registry import Module, builtin


@builtin
class NsRefresh(Module):
    name = "ns_refresh"

    def init(self) -> None:
        self.ctx.settings.ns_refresh = True

    def deinit(self) -> None:
        self.ctx.settings.ns_refresh = False

    def lua_api(self) -> dict:
        return {}
