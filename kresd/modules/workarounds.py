"""workarounds: kresd 5.6's workarounds for broken authoritative servers
(modules/workarounds/workarounds.lua).

Owns: the list of zones whose servers break on 0x20 (DVE-2017-0003 and
-0006: avqs/avts.mcafee.com, the panthercdn zones, magazine-fashion.net),
installed as a policy rule `suffix(FLAGS('NO_0X20'), zones)` when the module
is configured (kresd loads `policy` first if needed).
Must not: do I/O or reach into the driver beyond request options.
Not implemented: kresd's `produce` check disabling 0x20 for PTR queries sent
to rdnsN.turktelekom.com.tr / dns1.edatel.net.co: it needs the name of the
nameserver being asked, which the layer hooks do not receive.
"""
from __future__ import annotations

from .registry import Module, builtin

NO_0X20_ZONES = (
    "avqs.mcafee.com.", "avts.mcafee.com.",
    "cdnga.com.", "cdngc.com.", "cdngd.com.", "cdngl.com.", "cdngm.com.", "cdngc.net.",
    "panthercdn.com.", "magazine-fashion.net.",
)


@builtin
class Workarounds(Module):
    name = "workarounds"

    def __init__(self, ctx):
        super().__init__(ctx)
        self.rule = None

    def init(self) -> None:
        self.config()

    def config(self, arg=None):
        reg = self.ctx.registry
        policy = reg.get("policy") if reg is not None else None
        if policy is None and reg is not None:
            policy = reg.load("policy")
        if policy is None or self.rule is not None:
            return None
        self.rule = policy.add(policy.suffix(policy.FLAGS("NO_0X20"), list(NO_0X20_ZONES)))
        return None

    def deinit(self) -> None:
        reg = self.ctx.registry
        policy = reg.get("policy") if reg is not None else None
        if policy is not None and self.rule is not None:
            policy.delete(self.rule.id)
        self.rule = None

    def lua_api(self) -> dict:
        return {"config": self.config}
