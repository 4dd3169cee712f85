"""priming: kresd 5.6's RFC 8109 root priming module (modules/priming/).

Owns: the switch only. Loading the module sets `settings.priming = True`,
unloading it sets it to False; the core (workers/resolve.py `_prime`) asks
". NS" of the root hints before it first needs the root zone cut.
Must not: send anything itself (kresd's module does the query from a timer;
here the driver primes on first use).
"""
from __future__ import annotations

from .registry import Module, builtin


@builtin
class Priming(Module):
    name = "priming"

    def init(self) -> None:
        self.ctx.settings.priming = True

    def deinit(self) -> None:
        self.ctx.settings.priming = False

    def lua_api(self) -> dict:
        return {}
