"""dns64: kresd 5.6's DNS64 (RFC 6147) module (modules/dns64/dns64.lua).

Owns: the /96 prefix (default 64:ff9b::), the exclusion subnets (AAAA data
only in them counts as none: default ::ffff:0:0/96), and AAAA synthesis:
when the client's AAAA question (class IN) ends in NODATA (after any CNAME
chain), ask the A of the chain's last name through `Layer.more`, and in
`answer_finalize` answer with the chain plus AAAA = prefix + IPv4 for each A,
TTL bounded by the NODATA's SOA TTL (600 s without one).
Not synthesised, as kresd: NXDOMAIN, failures, requests with CD set, requests
with the DNS64_DISABLE option, and non-IN classes.
Must not: do I/O or touch the cache (the driver resolves the A sub-query).
Not implemented: PTR synthesis for the prefix's ip6.arpa subtree (kresd
answers it with a CNAME into in-addr.arpa that the iterator follows; the
driver has no hook for a begin-time CNAME yet).
"""
from __future__ import annotations

import ipaddress
import logging
from typing import Any

import dns.flags
import dns.name
import dns.rcode
import dns.rdatatype as T
import dns.rrset

from workers.layer import Layer
from workers.request import Outcome, Result

from .policy import lua_get, lua_seq, to_text
from .registry import Module, builtin

log = logging.getLogger("kresd.dns64")

DEFAULT_PREFIX = "64:ff9b::"
DEFAULT_EXCLUDE = ("::ffff:0:0/96",)


def _chain_end(qname: dns.name.Name, answer: list) -> dns.name.Name:
    """Follow the CNAMEs of an answer section from qname to the last name."""
    name, seen = qname, set()
    cnames = {rr.name: rr for rr in answer if rr.rdtype == T.CNAME}
    while name in cnames and name not in seen:
        seen.add(name)
        name = cnames[name][0].target
    return name


class Dns64Layer(Layer):
    name = "dns64"

    def __init__(self, module: "Dns64"):
        self.m = module

    def _eligible(self, req) -> bool:
        q = req.query.question[0]
        return (self.m.prefix is not None and q.rdtype == T.AAAA and q.rdclass == 1
                and not req.query.flags & dns.flags.CD and not req.options.DNS64_DISABLE)

    def more(self, req, result):
        if "dns64" in req.vars or not self._eligible(req) or not isinstance(result, Result):
            return []
        if result.outcome is Outcome.ANSWER:
            q = req.query.question[0]
            end = _chain_end(q.name, result.answer)
            aaaa = [rd for rr in result.answer if rr.rdtype == T.AAAA and rr.name == end for rd in rr]
            if aaaa and not all(self.m.excluded(rd.address) for rd in aaaa):
                return []
        elif result.outcome is not Outcome.NODATA:
            return []
        end = _chain_end(req.query.question[0].name, result.answer)
        req.vars["dns64"] = {"base": result, "name": end, "a": None}
        log.debug("[%05d] dns64: no AAAA found, querying for A of %s", req.uid, end)
        return [(end, T.A)]

    def subresult(self, req, name, rdtype, result):
        st = req.vars.get("dns64")
        if st is not None and rdtype == T.A and name == st["name"] and isinstance(result, Result):
            st["a"] = result

    def answer_finalize(self, req):
        st = req.vars.get("dns64")
        if not st or st["a"] is None or st["a"].outcome is not Outcome.ANSWER or req.answer is None:
            return None
        base, a_res = st["base"], st["a"]
        max_ttl = 600
        for rr in base.authority:
            if rr.rdtype == T.SOA:
                max_ttl = rr.ttl
        synth = []
        for rr in a_res.answer:
            if rr.rdtype != T.A or rr.name != st["name"]:
                continue
            addrs = [self.m.synthesize(rd.address) for rd in rr]
            synth.append(dns.rrset.from_text_list(rr.name, min(rr.ttl, max_ttl), "IN", "AAAA", addrs))
        if not synth:
            return None
        chain = [rr for rr in base.answer if rr.rdtype == T.CNAME]
        chain += [rr for rr in a_res.answer if rr.rdtype == T.CNAME and rr not in chain]
        ans = req.answer
        ans.answer = chain + synth
        ans.authority = []
        ans.set_rcode(dns.rcode.NOERROR)
        return None


@builtin
class Dns64(Module):
    name = "dns64"

    def __init__(self, ctx):
        super().__init__(ctx)
        self.prefix: bytes | None = None
        self.rev_ttl = 60
        self.exclude = [ipaddress.ip_network(n) for n in DEFAULT_EXCLUDE]
        self.layer = Dns64Layer(self)
        self.config(None)

    def config(self, conf: Any = None) -> Any:
        """dns64.config('prefix') or dns64.config({prefix=..., rev_ttl=..., exclude_subnets={...}})."""
        if conf is None or isinstance(conf, (str, bytes)):
            prefix, rev_ttl, exclude = conf, None, None
        else:
            prefix = lua_get(conf, "prefix")
            rev_ttl = lua_get(conf, "rev_ttl")
            exclude = lua_get(conf, "exclude_subnets")
        text = to_text(prefix) if prefix is not None else DEFAULT_PREFIX
        try:
            ip = ipaddress.ip_address(text.split("/")[0])
        except ValueError:
            ip = None
        if ip is None or ip.version != 6:
            raise ValueError(f'[dns64] "{text}" is not a valid IPv6 address')
        self.prefix = ip.packed[:12]
        self.rev_ttl = int(rev_ttl) if rev_ttl is not None else 60
        if exclude is not None:
            try:
                self.exclude = [ipaddress.ip_network(to_text(n), strict=False) for n in lua_seq(exclude)]
            except ValueError as exc:
                raise ValueError(f"[dns64] bad exclude_subnets: {exc}") from None
        return None

    def synthesize(self, ipv4: str) -> str:
        return str(ipaddress.IPv6Address(self.prefix + ipaddress.IPv4Address(ipv4).packed))

    def excluded(self, ipv6: str) -> bool:
        a = ipaddress.ip_address(ipv6)
        return any(a in n for n in self.exclude)

    def lua_api(self) -> dict:
        return {"config": self.config}
