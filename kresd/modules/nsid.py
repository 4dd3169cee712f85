"""nsid: kresd 5.6's module for the Name Server Identifier (RFC 5001).

Owns: the identifier (`nsid.name('instance 1')` sets it, `nsid.name()`
returns it, nil while unset; kresd's module has no other function) and the
`answer_finalize` hook: a client query carrying an NSID option (code 3) gets
an NSID option with the identifier in its answer's OPT, as kresd answers.
Nothing is added while no identifier is set, or for a query without EDNS.
Fast-path consent: a query with any EDNS option never takes the packet cache
(kresd_native.h kn_pc_key), and the LMDB tier is refused here for a query
with options, so every NSID request reaches this hook.
Must not: change anything else in the answer.
"""
from __future__ import annotations

from typing import Any

from kresd.bindings.bridge import LuaUsage
from workers.layer import Layer
from workers.request import set_option

from .registry import Module, builtin

NSID = 3  # RFC 5001 option code
NSID_MAX = 512  # kresd limits the configured identifier too; an OPT option can hold 65535


class NsidLayer(Layer):
    name = "nsid"

    def __init__(self, module: "Nsid"):
        self.module = module

    def fast_ok(self, pq) -> bool:
        return not pq.opt_rdata_len  # an NSID query carries an option: full path

    def answer_finalize(self, req):
        value = self.module.value
        if value is None or req.query.edns < 0 or req.answer is None:
            return None
        if not any(int(o.otype) == NSID for o in req.query.options):
            return None
        set_option(req.answer, NSID, value)
        return None


@builtin
class Nsid(Module):
    name = "nsid"

    def __init__(self, ctx):
        super().__init__(ctx)
        self.value: bytes | None = None
        self.layer = NsidLayer(self)

    def name_fn(self, value: Any = None) -> Any:
        if value is None:
            return None if self.value is None else self.value.decode("utf-8", "replace")
        if isinstance(value, str):
            value = value.encode("utf-8")
        if not isinstance(value, bytes) or len(value) > NSID_MAX:
            raise LuaUsage(f"nsid.name('identifier'): a string of at most {NSID_MAX} bytes")
        self.value = value
        return self.name_fn()

    def config(self, arg: Any = None) -> Any:
        if arg is not None:
            self.name_fn(arg)
        return self.name_fn()

    def lua_api(self) -> dict:
        return {"name": self.name_fn, "config": self.config}
