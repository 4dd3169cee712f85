"""Shared test helpers for the built-in modules: a fake Lua bridge, a small
authoritative network and an environment (Settings + Resolver + Registry)."""
from __future__ import annotations

import re

import dns.message
import dns.name

from kresd.modules.policy import lua_pattern_to_regex
from kresd.modules.registry import ModuleContext, Registry
from tests.unit.workers.fakenet import AuthServer, FakeNet
from workers.request import QSource
from workers.resolve import Resolver
from workers.settings import Settings
from workers.transport import drive_sync

ROOT = """
@ 3600 IN SOA a.root. nstld. 1 1800 900 604800 86400
@ 3600 IN NS a.root-servers.net.
a.root-servers.net. 3600 IN A 198.41.0.4
cz. 3600 IN NS ns.cz.
ns.cz. 3600 IN A 193.29.206.1
"""
CZ = """
@ 3600 IN SOA ns.cz. x. 1 1800 900 604800 300
@ 3600 IN NS ns.cz.
ns 3600 IN A 193.29.206.1
example 3600 IN NS ns.example
ns.example 3600 IN A 1.2.3.4
"""
EXAMPLE = """
@ 3600 IN SOA ns x. 1 1800 900 604800 300
@ 3600 IN NS ns
ns 3600 IN A 1.2.3.4
www 3600 IN A 1.2.3.5
www 3600 IN A 1.2.3.6
www6 3600 IN AAAA 2001:db8::1
mapped 3600 IN AAAA ::ffff:10.0.0.1
mapped 3600 IN A 10.0.0.1
cname 3600 IN CNAME www
dummy 3600 IN A 9.10.11.12
fake 3600 IN A 9.9.9.9
example0 3600 IN A 7.7.7.7
"""


class _LuaFunction:
    """Stands in for a lupa Lua function: the policy code routes it through ctx.lua."""

    def __init__(self, fn):
        self.fn = fn


class FakeLua:
    """The engine bridge: call(fn, *args) and find(subject, pattern)."""

    def __init__(self):
        self.calls = []

    def call(self, fn, *args):
        self.calls.append(fn)
        return fn.fn(*args)

    def find(self, subject, pattern):
        pat = pattern.decode("latin-1") if isinstance(pattern, bytes) else pattern
        return re.search(lua_pattern_to_regex(pat), subject.decode("latin-1")) is not None


def make_net():
    servers = {
        "198.41.0.4": AuthServer((".", ROOT)),
        "193.29.206.1": AuthServer(("cz.", CZ)),
        "1.2.3.4": AuthServer(("example.cz.", EXAMPLE)),
    }
    return FakeNet(servers), servers


class Env:
    def __init__(self, *modules, settings: Settings | None = None):
        self.settings = settings or Settings()
        self.settings.root_hints = {dns.name.from_text("a.root-servers.net."): ["198.41.0.4"]}
        self.settings.priming = False
        self.resolver = Resolver(self.settings, None)
        self.lua = FakeLua()
        self.ctx = ModuleContext(self.settings, resolver=self.resolver, lua=self.lua)
        self.registry = Registry(self.ctx)
        self.net, self.servers = make_net()
        for m in modules:
            self.registry.load(m)

    def mod(self, name):
        return self.registry.get(name)

    def ask(self, name, rdtype="A", client=("192.0.2.1", 5353), tcp=False, flags=None,
            dst=None, **kw):
        q = dns.message.make_query(name, rdtype, **kw)
        if flags is not None:
            q.flags = flags
        qs = QSource(client[0] if client else None, client[1] if client else 0,
                     dst_addr=dst, tcp=tcp)
        return drive_sync(self.resolver.resolve(q, client=client, tcp=tcp, qsource=qs), self.net)

    @property
    def upstream_count(self) -> int:
        return self.net.sent
