"""ta_sentinel: kresd 5.6's root key trust anchor sentinel (RFC 8509,
modules/ta_sentinel/ta_sentinel.lua), loaded by default as in kresd 5.6.

Owns: the `finish` rewrite. When the client's A or AAAA question starts with
the label `root-key-sentinel-is-ta-<tag>` (29 octets) or
`root-key-sentinel-not-ta-<tag>` (30 octets), the answer is secure
(req.secure) and the client did not set CD, the key tag is compared with the
key tags of the root's trust anchors (DS key tag, or the key tag of a DNSKEY
anchor): "is-ta" with an unknown tag, or "not-ta" with a known one, turns the
answer into SERVFAIL with an empty payload (question only: no records and no
OPT, as kresd's pkt:clear_payload()) and AD cleared. Also `key_tags()`, the
key tags of a zone's trust anchors (ta_signal_query uses it) and
`no_options()`, the error of a module that takes no configuration.
Must not: change anything else, answer cache hits itself (fast_ok sends the
two sentinel label lengths to the full path instead), or do I/O.

As kresd: the tag is read with Lua's tonumber() (decimal, so "1e003" is
1000, a hex-only tag such as "4f66a" does not match), the name compared is
the end of the answer's CNAME chain (kresd's req:resolved()), and any secure
answer counts, negative ones included.
"""
from __future__ import annotations

import logging
import math
import re
from typing import Any

import dns.dnssec
import dns.flags
import dns.name
import dns.rcode
import dns.rdatatype as T

from workers.layer import Layer

from .registry import Module, builtin

log = logging.getLogger("kresd.tasent")  # kresd 5.6 log group LOG_GRP_TASENTINEL

IS_TA = b"root-key-sentinel-is-ta-"
NOT_TA = b"root-key-sentinel-not-ta-"
_LABEL = re.compile(rb"root-key-sentinel-(is|not)-ta-([0-9a-f]+)")
_LUA_NUMBER = re.compile(rb"[0-9]+(?:e[0-9]+)?")  # what tonumber() accepts of [0-9a-f]+


def key_tags(settings, zone: dns.name.Name) -> list[int]:
    """Key tags of the trust anchors of `zone`, in the order they were added:
    a DS anchor's key tag field, a DNSKEY anchor's computed key tag (RFC 4034 B)."""
    tags = []
    for rd in (getattr(settings, "trust_anchors", None) or {}).get(zone, ()):
        if rd.rdtype == T.DS:
            tags.append(int(rd.key_tag))
        elif rd.rdtype == T.DNSKEY:
            tags.append(int(dns.dnssec.key_id(rd)))
    return tags


def no_options(module: str, conf: Any) -> None:
    """config() of a module that has no options: only `nil` (or `true`) is accepted."""
    if conf is None or conf is True:
        return None
    raise ValueError(f"[{module}] this module has no configuration options (got {conf!r})")


def _lua_tonumber(digits: bytes) -> float | None:
    """Lua 5.1 tonumber() of a string of hex digits: decimal numbers only."""
    if not _LUA_NUMBER.fullmatch(digits):
        return None
    return float(digits)


def _chain_end(qname: dns.name.Name, answer: list) -> dns.name.Name:
    name, seen = qname, set()
    cnames = {rr.name: rr for rr in answer if rr.rdtype == T.CNAME}
    while name in cnames and name not in seen:
        seen.add(name)
        name = cnames[name][0].target
    return name


def sentinel(req) -> tuple[bool, int] | None:
    """(is_ta, key tag) when the request is a sentinel query whose answer the
    module must judge, else None (kresd's checks, cheapest first)."""
    ans = req.answer
    if ans is None or req.drop or not ans.question:
        return None
    q = ans.question[0]
    first = q.name.labels[0] if q.name.labels else b""
    if len(first) not in (len(IS_TA) + 5, len(NOT_TA) + 5):
        return None
    if q.rdtype not in (T.A, T.AAAA):
        return None
    if ans.rcode() == dns.rcode.SERVFAIL:  # kresd: the request state is FAIL
        return None
    name = _chain_end(q.name, ans.answer)
    if not name.labels:
        return None
    m = _LABEL.fullmatch(name.labels[0].lower())
    # kresd picks the pattern by the question's label length
    if m is None or (m.group(1) == b"is") != (len(first) == len(IS_TA) + 5):
        return None
    if not req.secure or ans.flags & dns.flags.CD:
        log.info("[%05d] name+type OK but not AD+CD conditions", req.uid)
        return None
    tag = _lua_tonumber(m.group(2))
    if tag is None or not math.isfinite(tag) or tag != math.floor(tag) or not 0 <= tag <= 0xFFFF:
        return None
    return m.group(1) == b"is", int(tag)


class TaSentinelLayer(Layer):
    name = "ta_sentinel"
    fast_miss = True  # workers/fastmiss.py: fast_ok keeps sentinel names on the full path

    def __init__(self, module: "TaSentinel"):
        self.m = module

    def fast_ok(self, pq):
        # A cache hit may be a sentinel answer to judge: those take the full path.
        return not (pq.qname[:1] and pq.qname[0] in (len(IS_TA) + 5, len(NOT_TA) + 5)
                    and pq.qtype in (T.A, T.AAAA))

    def finish(self, req):
        found = sentinel(req)
        if found is None:
            return None
        is_ta, tag = found
        log.info("[%05d] key tag: %d, sentinel: %s", req.uid, tag, "true" if is_ta else "false")
        trusted = tag in key_tags(self.m.ctx.settings, dns.name.root)
        log.info("[%05d] matching trusted TA found: %s", req.uid, "true" if trusted else "false")
        if is_ta != trusted:  # the expected key is not there, or an unexpected one is
            ans = req.answer
            ans.answer, ans.authority, ans.additional = [], [], []
            ans.use_edns(False)
            ans.set_rcode(dns.rcode.SERVFAIL)
            ans.flags &= ~dns.flags.AD
        return None


@builtin
class TaSentinel(Module):
    name = "ta_sentinel"

    def __init__(self, ctx):
        super().__init__(ctx)
        self.layer = TaSentinelLayer(self)

    def config(self, conf: Any = None) -> Any:
        return no_options(self.name, conf)
