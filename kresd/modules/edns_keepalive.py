"""edns_keepalive: kresd 5.6's module (loaded by default) for the
edns-tcp-keepalive option (RFC 7828).

Owns: the `answer_finalize` hook: an answer over TCP to a query that carries
the option (code 11) gets it back with the server's idle timeout, in units of
100 ms (net.tcp_in_idle, settings.tcp_idle_timeout: kresd 5.6 answers
"10.0 secs" by default). Never over UDP (RFC 7828 3.2.1: a server MUST NOT
send it there).
Must not: change anything else in the answer.
"""
from __future__ import annotations

import struct

from workers.layer import Layer
from workers.request import set_option

from .registry import Module, builtin

KEEPALIVE = 11


class KeepaliveLayer(Layer):
    name = "edns_keepalive"
    fast_miss = True  # workers/fastmiss.py: it acts on TCP answers only

    def __init__(self, settings):
        self.settings = settings

    def fast_ok(self, pq) -> bool:
        return not pq.opt_rdata_len  # a query with the option carries it: full path

    def answer_finalize(self, req):
        if not req.tcp or req.query.edns < 0 or req.answer is None:
            return None
        if not any(int(o.otype) == KEEPALIVE for o in req.query.options):
            return None
        timeout = min(0xFFFF, int(round(self.settings.tcp_idle_timeout * 10)))
        set_option(req.answer, KEEPALIVE, struct.pack("!H", timeout), self.settings.edns_bufsize)
        return None


@builtin
class EdnsKeepalive(Module):
    name = "edns_keepalive"

    def __init__(self, ctx):
        super().__init__(ctx)
        self.layer = KeepaliveLayer(ctx.settings)

    def lua_api(self) -> dict:
        return {}
