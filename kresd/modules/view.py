"""view: kresd 5.6's per-client policy rules (modules/view/view.lua).

Owns: rules keyed by the client's TSIG key name (`view:tsig`, the key is only
matched by name, never verified, as in kresd), by the client's source subnet
(`view:addr`) and by the destination address the query arrived on
(`view:addr(subnet, rule, true)`), and their evaluation in `begin`.
Must not: do I/O or keep request state outside the Request.

Order as kresd: TSIG rules first, then source-subnet rules from the most
specific subnet to the least specific (insertion order among equals), then
destination rules; each matching rule's filter is tried, and the first
non-chain action ends the walk (chain actions such as FLAGS continue it).
"""
from __future__ import annotations

import ipaddress
import logging
from dataclasses import dataclass
from typing import Any

import dns.name

from workers.layer import Layer, State

from .policy import Evaluator, Rule, lua_seq, to_bytes, to_name, to_text
from .registry import Module, builtin

log = logging.getLogger("kresd.view")


@dataclass
class SubnetRule:
    network: ipaddress._BaseNetwork
    rule: Any  # a policy filter: (req, query) -> action | None

    @property
    def bitlen(self) -> int:
        return self.network.prefixlen


def _key_name(key: Any) -> dns.name.Name:
    """A TSIG key name: wire ('\\5mykey', terminator optional) or text."""
    if isinstance(key, (bytes, str)):
        raw = to_bytes(key)
        if raw and not raw.endswith(b"\x00") and raw[0] < 64:
            try:
                name, used = dns.name.from_wire(raw + b"\x00", 0)
                if used == len(raw) + 1:
                    return name
            except Exception:
                pass
    return to_name(key)


def _addr(text: str | None):
    if not text:
        return None
    try:
        return ipaddress.ip_address(text.split("%")[0])
    except ValueError:
        return None


class ViewLayer(Layer):
    name = "view"

    def __init__(self, module: "View"):
        self.m = module

    def fast_ok(self, pq):
        # TSIG-signed queries never take the fast path (their TSIG RR makes
        # them ineligible); source-subnet rules are fast_nets below.
        return not self.m.dst

    def fast_nets(self):
        """The clients the source-subnet rules are for always take the full
        path; destination rules would need the local address: every query."""
        if self.m.dst:
            from workers.fastpath import ALL

            return ALL
        return [r.network for r in self.m.src]

    def begin(self, req):
        if req.state and State(req.state) & State.FAIL:
            return None
        state = State(req.state) if req.state else State.CONSUME
        rules = self.m.matching(req)
        if not rules:
            return None
        res = self.m.evaluator.evaluate([Rule(-1, r) for r in rules], req, state)
        return None if res is None or res == state else res


@builtin
class View(Module):
    name = "view"

    def __init__(self, ctx):
        super().__init__(ctx)
        self.key: dict[dns.name.Name, list] = {}
        self.src: list[SubnetRule] = []
        self.dst: list[SubnetRule] = []
        self.evaluator = Evaluator(ctx)
        self.layer = ViewLayer(self)

    def matching(self, req) -> list:
        """The rules that apply to this request's client, in evaluation order."""
        out = []
        keyname = getattr(req.query, "keyname", None)
        if keyname is not None:
            out.extend(self.key.get(keyname.canonicalize(), []))
        src = _addr(req.qsource.addr)
        if src is not None:
            out.extend(r.rule for r in self.src if src.version == r.network.version and src in r.network)
        dst = _addr(req.qsource.dst_addr)
        if dst is not None:
            out.extend(r.rule for r in self.dst if dst.version == r.network.version and dst in r.network)
        return out

    # -- Lua face -----------------------------------------------------------

    def addr(self, subnets: Any, rule: Any, dst: Any = None):
        """view:addr(subnet | {subnets}, rule[, dst]): rule for clients in subnet."""
        if rule is None:
            raise ValueError("view:addr(subnet, rule): rule missing")
        added = []
        for subnet in lua_seq(subnets):
            text = to_text(subnet).strip()
            try:
                net = ipaddress.ip_network(text, strict=False)
            except ValueError:
                raise ValueError(f"[view] invalid subnet: {text}") from None
            entry = SubnetRule(net, rule)
            lst = self.dst if dst else self.src
            lst.append(entry)
            lst.sort(key=lambda r: -r.bitlen)  # stable: insertion order among equals
            added.append(entry)
        return added[0] if len(added) == 1 else added

    def tsig(self, key: Any, rule: Any):
        """view:tsig(keyname, rule): rule for queries signed with that key name."""
        if rule is None:
            raise ValueError("view:tsig(key, rule): rule missing")
        self.key.setdefault(_key_name(key).canonicalize(), []).append(rule)

    def config(self, arg: Any = None) -> Any:
        return None

    def lua_api(self) -> dict:
        return {"addr": self.addr, "tsig": self.tsig, "config": self.config}
