"""renumber: kresd 5.6's address renumbering (modules/renumber/renumber.lua).

Owns: prefix rules `{subnet, target}` ("target!" = replace the whole
address), name rules (for policy.REROUTE with names), and rewriting A/AAAA
records of the answer section in `finish`, as kresd does: the first matching
rule wins, the host bits of the original address are kept below the prefix
length, a rewritten answer keeps only its answer section without RRSIGs and
carries EDE "Forged Answer".
Must not: touch anything but req.answer, or do I/O.
"""
from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from typing import Any

import dns.name
import dns.rdata
import dns.rdataclass
import dns.rdatatype as T
import dns.rrset

from workers.layer import Layer, State
from workers.request import set_ede

from .policy import lua_items, lua_seq, to_name, to_text
from .registry import Module, builtin

EDE_FORGED = 4


@dataclass
class Rule:
    network: ipaddress._BaseNetwork | None  # None: match by owner name
    owner: dns.name.Name | None
    target: bytes  # packed address
    rdtype: int
    exact: bool

    @property
    def bitlen(self) -> int:
        return self.network.prefixlen if self.network is not None else len(self.target) * 8


def _target(addr: Any) -> tuple[bytes, int, bool]:
    text = to_text(addr).strip()
    exact = False
    if "!" in text:
        if not text.endswith("!") or text.count("!") > 1:
            raise ValueError('[renumber] "!" symbol in target is only accepted at the end of address')
        text, exact = text[:-1], True
    try:
        ip = ipaddress.ip_address(text)
    except ValueError:
        raise ValueError(f"[renumber] invalid address: {text}") from None
    return ip.packed, (T.AAAA if ip.version == 6 else T.A), exact


def prefix_rule(subnet: Any, addr: Any) -> Rule:
    target, rdtype, exact = _target(addr)
    try:
        net = ipaddress.ip_network(to_text(subnet).strip(), strict=False)
    except ValueError:
        raise ValueError(f"[renumber] invalid subnet: {to_text(subnet)}") from None
    return Rule(net, None, target, rdtype, exact)


def name_rule(name: Any, addr: Any) -> Rule:
    target, rdtype, _ = _target(addr)
    return Rule(None, to_name(name), target, rdtype, True)  # a name rule replaces the whole address


def _merge(net_bytes: bytes, host: bytes, bits: int) -> bytes:
    out = bytearray()
    for i in range(len(net_bytes)):
        if bits >= 8:
            out.append(net_bytes[i])
        elif bits <= 0:
            out.append(host[i])
        else:
            mask = (0xFF << (8 - bits)) & 0xFF
            out.append((net_bytes[i] & mask) | (host[i] & ~mask & 0xFF))
        bits -= 8
    return bytes(out)


def _renumber_one(rules: list, owner: dns.name.Name, rdtype: int, packed: bytes) -> bytes | None:
    for r in rules:
        if r.rdtype != rdtype:
            continue
        if r.network is not None:
            if len(packed) * 8 < r.network.prefixlen:
                continue
            addr = ipaddress.ip_address(packed)
            if addr.version != r.network.version or addr not in r.network:
                continue
        elif r.owner != owner:
            continue
        return r.target if r.exact or r.network is None else _merge(r.target, packed, r.network.prefixlen)
    return None


def rewrite_answer(rules: list, req) -> bool:
    """Rewrite A/AAAA in req.answer per rules; True if anything changed."""
    ans = req.answer
    if ans is None or not ans.answer:
        return False
    changed = False
    new_rrsets = []
    for rrset in ans.answer:
        if rrset.rdtype not in (T.A, T.AAAA):
            new_rrsets.append(rrset)
            continue
        rds = []
        for rd in rrset:
            packed = ipaddress.ip_address(rd.address).packed
            new = _renumber_one(rules, rrset.name, rrset.rdtype, packed)
            if new is not None:
                changed = True
                rd = dns.rdata.from_wire(dns.rdataclass.IN, rrset.rdtype, new, 0, len(new))
            rds.append(rd)
        new_rrsets.append(dns.rrset.from_rdata_list(rrset.name, rrset.ttl, rds))
    if not changed:
        return False
    ans.answer = [rr for rr in new_rrsets if rr.rdtype != T.RRSIG]
    ans.authority, ans.additional = [], []
    set_ede(ans, EDE_FORGED, "DUQR")
    return True


def reroute_action(tbl: Any, names: bool):
    """policy.REROUTE({from = to, ...}, names): an action rewriting the answer."""
    rules = [(name_rule if names else prefix_rule)(k, v) for k, v in lua_items(tbl)]

    def act(state, req):
        if state & State.FAIL:
            return state
        rewrite_answer(rules, req)
        return state
    return act


class RenumberLayer(Layer):
    name = "renumber"

    def __init__(self, module: "Renumber"):
        self.module = module

    def finish(self, req):
        if self.module.rules and not req.drop:
            rewrite_answer(self.module.rules, req)
        return None


@builtin
class Renumber(Module):
    name = "renumber"

    def __init__(self, ctx):
        super().__init__(ctx)
        self.rules: list[Rule] = []
        self.layer = RenumberLayer(self)

    def config(self, conf: Any = None) -> Any:
        """renumber.config({{'10.0.0.0/24', '192.168.1.0'}, ...}): add prefix rules."""
        if conf is None:
            return None
        pairs = lua_seq(conf)
        if not pairs or isinstance(pairs[0], (str, bytes)):
            raise ValueError("[renumber] expected { {prefix, target}, ... }")
        for pair in pairs:
            p = lua_seq(pair)
            if len(p) < 2:
                raise ValueError("[renumber] expected { {prefix, target}, ... }")
            self.rules.append(prefix_rule(p[0], p[1]))
        return None

    def lua_api(self) -> dict:
        return {"config": self.config, "prefix": prefix_rule, "name": name_rule}
