"""The `kres` table, packet/request objects for Lua, and `resolve()`.

Owns: kres.type/class/rcode/section/opcode constants, layer states
(kres.DONE... = workers.layer.State), dname2str/str2dname/rr2str, the Lua face
of a dns.message.Message (`pkt:qname()`, `pkt:section(n)`, ...) and of a
workers.request.Request (`req:resolved().zone_cut.name`, `req.qsource`,
`req.answer`, `req.vars`, `req.options`), and `resolve(name, type, class,
options, callback)`, run on the engine's loop (or synchronously with a
synchronous transport, for tests).
Must not: resolve by itself (the engine's Resolver does) or keep requests.
"""
from __future__ import annotations

import asyncio
import inspect
import logging

import dns.exception
import dns.flags
import dns.message
import dns.name
import dns.opcode
import dns.rcode
import dns.rdataclass
import dns.rdatatype
import dns.rrset

from workers.layer import State
from workers.transport import drive_async, drive_sync

from .bridge import LuaUsage
from .misc import name_to_wire

log = logging.getLogger("kresd.lua")
SECTIONS = {"ANSWER": 0, "AUTHORITY": 1, "ADDITIONAL": 2}
_FLAGS = {"qr": dns.flags.QR, "aa": dns.flags.AA, "tc": dns.flags.TC, "rd": dns.flags.RD,
          "ra": dns.flags.RA, "ad": dns.flags.AD, "cd": dns.flags.CD}

_OBJECT = b"""
local fns, fields = ...
local methods = {}
for k, f in pairs(fns) do
    methods[k] = function(self, ...) return f(rawget(self, '__h'), ...) end
end
local mt = {
    __index = function(self, k)
        local m = methods[k]
        if m then return m end
        local g = fields and fields[k]
        if g then return g(rawget(self, '__h')) end
        return nil
    end,
    __tostring = function(self) return fns.tostring(rawget(self, '__h')) end,
}
return function(h) return setmetatable({__h = h}, mt) end
"""


def dname2str(wire=None):
    if not isinstance(wire, (bytes, str)):
        raise LuaUsage("kres.dname2str(wire_name)")
    raw = wire if isinstance(wire, bytes) else wire.encode("latin-1")
    try:
        return dns.name.from_wire(raw, 0)[0].to_text()
    except dns.exception.DNSException as e:
        raise LuaUsage(f"kres.dname2str: bad wire name: {e}") from None


def str2dname(text=None):
    return name_to_wire(text, "kres.str2dname(name)")


def _rr_table(rrset: dns.rrset.RRset) -> list[dict]:
    return [{"owner": rrset.name.to_wire(), "ttl": rrset.ttl, "class": rrset.rdclass,
             "type": rrset.rdtype, "rdata": rd.to_wire()} for rd in rrset]


def rr2str(rr=None, *_a):
    if not isinstance(rr, dict) or "owner" not in rr or "type" not in rr:
        raise LuaUsage("kres.rr2str({owner=, ttl=, class=, type=, rdata=})")
    owner = dns.name.from_wire(_raw(rr["owner"]), 0)[0]
    rdclass = rr.get("class", 1)
    rd = dns.rdata.from_wire(rdclass, rr["type"], _raw(rr.get("rdata", b"")), 0,
                             len(_raw(rr.get("rdata", b""))))
    return (f"{owner}\t{rr.get('ttl', 0)}\t{dns.rdataclass.to_text(rdclass)}\t"
            f"{dns.rdatatype.to_text(rr['type'])}\t{rd.to_text()}")


def _raw(v) -> bytes:
    return v if isinstance(v, bytes) else str(v).encode("latin-1")


# -- packets -------------------------------------------------------------------------

def _section(msg, n):
    secs = (msg.answer, msg.authority, msg.additional)
    if not isinstance(n, int) or not 0 <= n <= 2:
        raise LuaUsage("pkt:section(kres.section.ANSWER|AUTHORITY|ADDITIONAL)")
    return secs[n]


def _flag(name):
    bit = _FLAGS[name]

    def fn(msg, value=None):
        if value is not None:
            msg.flags = (msg.flags | bit) if value else (msg.flags & ~bit)
        return bool(msg.flags & bit)
    return fn


def _rcode(msg, value=None):
    if value is not None:
        msg.set_rcode(int(value))
    return int(msg.rcode())


PACKET_METHODS = {
    "qname": lambda m: m.question[0].name.to_wire() if m.question else None,
    "qtype": lambda m: int(m.question[0].rdtype) if m.question else 0,
    "qclass": lambda m: int(m.question[0].rdclass) if m.question else 0,
    "id": lambda m, v=None: (setattr(m, "id", int(v)) if v is not None else None) or m.id,
    "opcode": lambda m: int(m.opcode()),
    "rcode": _rcode,
    "section": lambda m, n=None: [r for rr in _section(m, n) for r in _rr_table(rr)],
    "rrsets": lambda m, n=None: [{"owner": rr.name.to_wire(), "type": int(rr.rdtype), "ttl": rr.ttl,
                                  "class": int(rr.rdclass), "rdata": [rd.to_wire() for rd in rr],
                                  "text": rr.to_text()} for rr in _section(m, n)],
    "tostring": lambda m: m.to_text(),
    "towire": lambda m: m.to_wire(),
    "ancount": lambda m: sum(len(r) for r in m.answer),
    "nscount": lambda m: sum(len(r) for r in m.authority),
    "arcount": lambda m: sum(len(r) for r in m.additional),
    **{k: _flag(k) for k in _FLAGS},
}


# -- requests ------------------------------------------------------------------------

def _resolved(engine, req):
    cut = getattr(req, "cut_name", None) or dns.name.root
    return {"zone_cut": {"name": cut.to_wire()}, "sname": req.qname.to_wire(),
            "stype": int(req.qtype), "sclass": int(req.query.question[0].rdclass)}


def _qsource(req):
    qs = req.qsource
    return {"addr": qs.addr, "port": qs.port, "dst_addr": qs.dst_addr, "dst_port": qs.dst_port,
            "flags": {"tcp": bool(qs.tcp)}, "packet": None}


def make_wrappers(engine):
    lua = engine.lua
    b = engine.lua_bridge
    mk_pkt = lua.execute(_OBJECT, b.to_lua({k: b.wrap(f) for k, f in PACKET_METHODS.items()}), None)

    def wrap_packet(msg):
        return mk_pkt(msg) if msg is not None else None

    def req_vars(req):
        t = req.vars.get("__lua")
        if t is None:
            t = req.vars["__lua"] = lua.table()
        return t

    def req_options(req):
        opts = req.options
        return b.helpers.module_proxy(b"options", lua.table(), b.wrap(lambda _n, k: getattr(opts, k, None)),
                                      b.wrap(lambda _n, k, v: setattr(opts, k, bool(v))))

    def req_qsource(req):
        t = b.to_lua(_qsource(req))
        t[b"packet"] = wrap_packet(req.query)
        return t

    req_fns = {
        "resolved": lambda r: _resolved(engine, r),
        "current": lambda r: _resolved(engine, r),
        "tostring": lambda r: f"request {r.qname} {dns.rdatatype.to_text(r.qtype)}",
        "set_extended_error": lambda r, code=None, text=None: None,
    }
    fields = {
        "qsource": lambda r: req_qsource(r),
        "answer": lambda r: wrap_packet(r.answer),
        "vars": req_vars,
        "options": req_options,
        "state": lambda r: int(r.state),
        "uid": lambda r: r.uid,
    }
    mk_req = lua.execute(_OBJECT, b.to_lua({k: b.wrap(f) for k, f in req_fns.items()}),
                         lua.table_from({k.encode(): f for k, f in fields.items()}))

    def wrap_request(req):
        return mk_req(req) if req is not None else None

    b.wrap_packet_impl = wrap_packet
    b.wrap_request_impl = wrap_request


# -- resolve() -----------------------------------------------------------------------

def build_query(name, qtype=None, qclass=None, options=None) -> dns.message.Message:
    if not isinstance(name, str):
        raise LuaUsage("resolve(name, type[, class, options, callback])")
    try:
        rdtype = dns.rdatatype.from_text(qtype) if isinstance(qtype, str) else int(qtype or 1)
        rdclass = int(qclass or 1)
        q = dns.message.make_query(name, rdtype, rdclass, use_edns=0)
    except (dns.exception.DNSException, ValueError, TypeError) as e:
        raise LuaUsage(f"resolve: bad query: {e}") from None
    q.flags |= dns.flags.RD
    if isinstance(options, dict) and options.get("DNSSEC_WANT"):
        q.want_dnssec(True)
    return q


def _flagger(reqs: list, flags=()):
    """on_request: keep the Request and set the query flags asked for
    (resolve(name, type, class, {'NO_CACHE', ...}): the names of Options)."""
    def on_request(req):
        for f in flags:
            if isinstance(f, str) and f.isupper() and hasattr(req.options, f):
                setattr(req.options, f, True)
        reqs.append(req)
    return on_request


async def resolve_async(engine, query: dns.message.Message, flags=()):
    """(answer Message, Request or None) through the engine's resolver and transport."""
    reqs: list = []
    ans = await drive_async(engine.resolver.resolve(query, client=None, tcp=False,
                                                    on_request=_flagger(reqs, flags)), engine.transport)
    return ans, (reqs[0] if reqs else None)


def resolve_sync(engine, query: dns.message.Message, flags=()):
    reqs: list = []
    ans = drive_sync(engine.resolver.resolve(query, client=None, tcp=False, on_request=_flagger(reqs, flags)),
                     engine.transport)
    return ans, (reqs[0] if reqs else None)


def _finish(engine, callback, ans, req):
    if callback is None:
        return
    b = engine.lua_bridge
    try:
        b.call(callback, b.wrap_packet(ans), b.wrap_request(req))
    except Exception as e:  # noqa: BLE001 - a failing callback never stops the worker
        log.error("[system] resolve() callback failed: %s", e)


def resolve(engine, name=None, qtype=None, qclass=None, options=None, callback=None, init=None):
    if isinstance(name, dict):  # resolve{name=, type=, class=, options=, finish=}
        t = name
        return resolve(engine, t.get("name"), t.get("type"), t.get("class"), t.get("options"),
                       t.get("finish"), t.get("init"))
    query = build_query(name, qtype, qclass, options)
    flags = [f for f in options if isinstance(f, str)] if isinstance(options, list) else \
        [k for k, v in options.items() if v is True] if isinstance(options, dict) else []
    if engine.transport is None and engine.loop is None:
        def later():
            _start(engine, query, callback, flags)
        engine.scheduler.call_later(0, later)  # armed when the worker's loop starts
        return True
    _start(engine, query, callback, flags)
    return True


def _start(engine, query, callback, flags=()):
    if engine.transport is None:
        log.warning("[system] resolve(): no transport, query dropped")
        return
    if inspect.iscoroutinefunction(engine.transport) or engine.loop is not None:
        loop = engine.loop or asyncio.get_event_loop()

        async def run():
            ans, req = await resolve_async(engine, query, flags)
            _finish(engine, callback, ans, req)
        loop.create_task(run())
    else:
        ans, req = resolve_sync(engine, query, flags)
        _finish(engine, callback, ans, req)


def install(engine) -> None:
    b = engine.lua_bridge
    kres = {
        "type": {dns.rdatatype.to_text(t): int(t) for t in dns.rdatatype.RdataType},
        "class": {"IN": 1, "CH": 3, "HS": 4, "NONE": 254, "ANY": 255},
        "rcode": {dns.rcode.to_text(r): int(r) for r in dns.rcode.Rcode},
        "opcode": {dns.opcode.to_text(o): int(o) for o in dns.opcode.Opcode},
        "section": dict(SECTIONS),
        **{s.name: int(s) for s in State},
        "dname2str": dname2str, "str2dname": str2dname, "rr2str": rr2str,
    }
    g = engine.lua.globals()
    g[b"kres"] = b.to_lua(kres)
    g[b"resolve"] = b.wrap(lambda *a: resolve(engine, *a))
    make_wrappers(engine)
