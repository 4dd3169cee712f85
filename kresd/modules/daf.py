"""daf: kresd 5.6's DNS Application Firewall (kres_modules/daf.lua), on the
policy module.

Owns: the rule language, `<filter> [AND|OR <filter>]... <action> [args]`:
  filters  `qname = example.com` (the name and below), `qname ~ <Lua pattern>`
           (matched against the query name's wire form after its first label
           length, as kresd's), `src = <addr or subnet>`, `dst = <addr or subnet>`;
           AND/OR combine left to right, as in kresd;
  actions  pass, deny, drop, tc | truncate, forward <addr[@port],...>,
           reroute <from-to>... (policy's REROUTE);
           `mirror` and `rewrite` answer with a clear error (kresd-py has no
           policy.MIRROR; rewrite is not implemented).
A rule without a filter applies to every query. Each rule becomes one policy
rule (policy.add), so policy's order, counters and suspension apply; the
module keeps kresd's descriptors {info, id, active, count} and its functions:
daf.add(rule), daf.del(id), daf.clear(), daf.get(id), daf.toggle(id, on),
daf.enable(id), daf.disable(id), daf.rules.
Must not: evaluate queries itself (policy does), or accept a rule it cannot
enforce.
"""
from __future__ import annotations

import ipaddress
from typing import Any, Callable

from kresd.bindings.bridge import LuaUsage

from .policy import Filter, lua_find, to_bytes, todname
from .registry import Module, builtin

Match = Callable[[Any, Any], bool]


def _subnet(text: str):
    try:
        return ipaddress.ip_network(text, strict=False)
    except ValueError:
        raise LuaUsage(f"daf: '{text}' is not an address or subnet") from None


def _in(net, addr) -> bool:
    if not addr:
        return False
    try:
        ip = ipaddress.ip_address(str(addr).split("%", 1)[0])
    except ValueError:
        return False
    return ip.version == net.version and ip in net


class _Parser:
    def __init__(self, text: str, module: "Daf"):
        self.tokens = text.split()
        self.pos = 0
        self.module = module

    def next(self) -> str | None:
        if self.pos >= len(self.tokens):
            return None
        tok = self.tokens[self.pos]
        self.pos += 1
        return tok

    def filter(self, tok: str | None, prev: str = "") -> Match:
        if tok is None:
            raise LuaUsage(f'daf: expected filter after "{prev}"')
        field = tok.lower()
        op, value = self.next(), self.next()
        if field not in ("qname", "src", "dst"):
            raise LuaUsage(f'daf: invalid filter "{tok}"')
        if value is None:
            raise LuaUsage(f'daf: "{tok} {op or ""}" needs a value')
        if field == "qname":
            if op == "=":
                wire = todname(value).lower()
                return lambda req, q: wire in q.suffixes
            if op == "~":
                pattern = todname(value)[1:]  # kresd: skip the leading label length
                ctx = self.module.ctx
                return lambda req, q: lua_find(ctx, to_bytes(q.name()), pattern)
            raise LuaUsage(f'daf: invalid operator "{op}" on qname')
        if op != "=":
            raise LuaUsage('daf: address supports only "=" operator')
        net = _subnet(value)
        if field == "src":
            return lambda req, q: _in(net, req.qsource.addr)
        return lambda req, q: _in(net, req.qsource.dst_addr)

    def rule(self) -> tuple[str, Match | None]:
        tok = self.next()
        if tok is None:
            raise LuaUsage("daf: empty rule is not allowed")
        if tok.lower() not in ("qname", "src", "dst"):
            return tok, None
        match = self.filter(tok)
        tok = self.next()
        while tok is not None and tok.lower() in ("and", "or"):
            left, right = match, self.filter(self.next(), tok)
            if tok.lower() == "and":
                match = (lambda a, b: lambda req, q: a(req, q) and b(req, q))(left, right)
            else:
                match = (lambda a, b: lambda req, q: a(req, q) or b(req, q))(left, right)
            tok = self.next()
        if tok is None:
            raise LuaUsage("daf: the rule has no action")
        return tok, match

    def action(self, name: str):
        policy = self.module.policy()
        api = policy.lua_api()
        name = name.lower()
        simple = {"pass": "PASS", "deny": "DENY", "drop": "DROP", "tc": "TC", "truncate": "TC"}
        if name in simple:
            return api[simple[name]]
        if name == "forward":
            arg = self.next()
            if arg is None:
                raise LuaUsage("daf: forward needs an address list (addr[@port],...)")
            return policy.FORWARD([a for a in arg.split(",") if a])
        if name == "reroute":
            rules = {}
            while (tok := self.next()) is not None:
                src, sep, dst = tok.partition("-")
                if not sep or not src or not dst:
                    raise LuaUsage(f"daf: reroute rule '{tok}' is not <from>-<to>")
                rules[src] = dst
            return policy.REROUTE(rules)
        if name in ("mirror", "rewrite"):
            raise LuaUsage(f'daf: action "{name}" is not available in kresd-py')
        raise LuaUsage(f'daf: invalid action "{name}"')


@builtin
class Daf(Module):
    name = "daf"

    def __init__(self, ctx):
        super().__init__(ctx)
        self.rules: list[dict] = []

    def policy(self):
        registry = self.ctx.registry
        policy = registry.get("policy") if registry is not None else None
        if policy is None:
            raise LuaUsage("daf needs the policy module (modules.load('policy'))")
        return policy

    def add(self, text: Any = None) -> dict:
        if isinstance(text, bytes):
            text = text.decode("utf-8", "replace")
        if not isinstance(text, str):
            raise LuaUsage("daf.add('<filter> [AND|OR <filter>...] <action> [args]')")
        for desc in self.rules:
            if desc["info"] == text:
                return self._info(desc)
        parser = _Parser(text, self)
        act_name, match = parser.rule()
        action = parser.action(act_name)
        cb = Filter(action, match or (lambda req, q: True), "daf")
        rule = self.policy().add(cb, act_name.lower() == "reroute" or None)
        desc = {"info": text, "rule": rule}
        self.rules.append(desc)
        return self._info(desc)

    @staticmethod
    def _info(desc: dict) -> dict:
        r = desc["rule"]
        return {"info": desc["info"], "id": r.id, "active": not r.suspended, "count": r.count}

    def delete(self, rid: Any = None) -> bool | None:
        for i, desc in enumerate(self.rules):
            if desc["rule"].id == rid:
                self.policy().delete(rid)
                del self.rules[i]
                return True
        return None

    def clear(self) -> bool:
        for desc in self.rules:
            self.policy().delete(desc["rule"].id)
        self.rules = []
        return True

    def get(self, rid: Any = None) -> dict | None:
        for desc in self.rules:
            if desc["rule"].id == rid:
                return self._info(desc)
        return None

    def toggle(self, rid: Any = None, on: Any = None) -> bool | None:
        for desc in self.rules:
            if desc["rule"].id == rid:
                desc["rule"].suspended = not on
                return True
        return None

    def lua_api(self) -> dict:
        return {"add": self.add, "del": self.delete, "clear": self.clear, "get": self.get,
                "toggle": self.toggle, "enable": lambda rid=None: self.toggle(rid, True),
                "disable": lambda rid=None: self.toggle(rid, False)}

    def lua_get(self, key: Any) -> Any:
        if key == "rules":
            return [self._info(d) for d in self.rules]
        raise KeyError(key)
