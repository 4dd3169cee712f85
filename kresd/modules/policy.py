"""policy: kresd 5.6's query policy module (modules/policy/policy.lua).

Owns: the rule lists (`policy.add`/`policy.del`, begin rules and finish
postrules), the filters (all, suffix, suffix_common, pattern, domains and
custom Lua filter functions), the actions (PASS, DENY, DENY_MSG, DROP, REFUSE,
TC, NO_ANSWER, FORWARD, STUB, ANSWER, FLAGS, REROUTE, QTRACE, DEBUG_ALWAYS...
and custom Lua action functions), kresd's built-in rules for special-use and
locally-served names (RFC 6761/6303/7793/8375), and the small helpers every
built-in module uses to read Lua values (tables, wire names, addresses).
Must not: do I/O, resolve anything itself or reach into the driver: an action
only edits the Request (answer, options, forward, drop) and returns a State.

Semantics as kresd: rules run top-down in `begin`; a filter returns an action
or nil; a *chain* action (QTRACE, DEBUG_ALWAYS, FLAGS, ...) returns nil and the
walk goes on; any other action ends it (PASS ends it without changing
anything). When no rule ended the walk, the special-name rules run.
Postrules (`policy.add(rule, true)`) run the same way in `finish`.
"""
from __future__ import annotations

import ipaddress
import logging
import re
from dataclasses import dataclass, field
from typing import Any

import dns.flags
import dns.name
import dns.rcode
import dns.rdata
import dns.rdataclass
import dns.rdatatype as T
import dns.rrset

from workers.layer import Layer, State
from workers.request import EDE, Forward, set_ede

from .registry import Module, builtin

log = logging.getLogger("kresd.policy")

# RFC 8914 codes kresd's policy actions use (kres.extended_error.*)
EDE_FORGED = 4
EDE_BLOCKED = 15


# ----------------------------------------------------------- Lua value helpers

def is_lua_table(x: Any) -> bool:
    return type(x).__name__ == "_LuaTable"


def lua_items(x: Any) -> list:
    """(key, value) pairs of a Lua table, dict, list or tuple (lists keyed 1..n)."""
    if x is None:
        return []
    if isinstance(x, dict):
        return list(x.items())
    if isinstance(x, (list, tuple)):
        return list(enumerate(x, 1))
    if is_lua_table(x):
        return list(x.items())
    raise TypeError(f"expected a table, got {type(x).__name__}")


def lua_seq(x: Any) -> list:
    """Values of an array-like Lua table (ordered by integer key) or Python sequence;
    a scalar becomes a one-element list."""
    if isinstance(x, (str, bytes)) or not (isinstance(x, (list, tuple, dict)) or is_lua_table(x)):
        return [x]
    if isinstance(x, (list, tuple)):
        return list(x)
    items = lua_items(x)
    if all(isinstance(k, (int, float)) for k, _ in items):
        return [v for _, v in sorted(items, key=lambda kv: kv[0])]
    return [v for _, v in items]


def lua_get(t: Any, key: Any, default: Any = None) -> Any:
    if t is None:
        return default
    if isinstance(t, dict):
        v = t.get(key, default)
        return default if v is None else v
    if isinstance(t, (list, tuple)):  # the bridge turns tables keyed 1..n into lists
        if isinstance(key, (int, float)) and 1 <= key <= len(t) and key == int(key):
            return t[int(key) - 1]
        return default
    try:
        v = t[key]
    except (KeyError, IndexError, TypeError):
        return default
    return default if v is None else v


def to_bytes(x: Any) -> bytes:
    """A Lua string (bytes, or str if the engine decodes strings) as raw bytes."""
    if isinstance(x, (bytes, bytearray, memoryview)):
        return bytes(x)
    if isinstance(x, str):
        try:
            return x.encode("latin-1")
        except UnicodeEncodeError:
            return x.encode("utf-8")
    raise TypeError(f"expected a string, got {type(x).__name__}")


def to_text(x: Any) -> str:
    if isinstance(x, (bytes, bytearray)):
        return bytes(x).decode("utf-8", "replace")
    return str(x)


def _exact_wire(b: bytes) -> dns.name.Name | None:
    """b parsed as a complete wire-format name, or None."""
    if not b or b[-1] != 0:
        return None
    try:
        name, used = dns.name.from_wire(b, 0)
    except Exception:
        return None
    return name if used == len(b) else None


def to_name(x: Any) -> dns.name.Name:
    """A domain name from Lua: wire format (todname()) or text ('example.com')."""
    if isinstance(x, dns.name.Name):
        return x
    if isinstance(x, (bytes, bytearray, memoryview, str)):
        raw = to_bytes(x)
        wire = _exact_wire(raw)
        if wire is not None:
            return wire
        return dns.name.from_text(to_text(x))
    raise TypeError(f"expected a domain name, got {type(x).__name__}")


def todname(x: Any) -> bytes:
    """kres.str2dname: text name -> wire bytes."""
    return to_name(x).to_wire()


def split_addr(target: Any, default_port: int = 53) -> tuple[str, int]:
    """'addr', 'addr@port' or 'addr#port' -> (normalised addr, port); ValueError if bad."""
    text = to_text(target).strip()
    host, port = text, default_port
    for sep in ("@", "#"):
        if sep in text:
            host, _, p = text.rpartition(sep)
            try:
                port = int(p)
            except ValueError:
                raise ValueError(f"failed to parse address {text}") from None
            break
    try:
        addr = ipaddress.ip_address(host)
    except ValueError:
        raise ValueError(f"target '{text}' is not a valid IP address") from None
    if not 0 < port < 65536:
        raise ValueError(f"failed to parse address {text}")
    return str(addr), port


def to_state(x: Any) -> State | None:
    """A hook/action return value (State, Lua number, nil) -> State or None."""
    if x is None or x is False:
        return None
    if isinstance(x, State):
        return x
    if isinstance(x, (int, float)):
        return State(int(x))
    return None


# --------------------------------------------------------------- Lua patterns

_CLASSES = {"a": "A-Za-z", "d": "0-9", "l": "a-z", "s": r" \t\n\r\f\v", "u": "A-Z",
            "w": "A-Za-z0-9", "x": "0-9A-Fa-f", "p": re.escape("!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~"),
            "c": r"\x00-\x1f\x7f", "z": r"\x00"}


def _lua_class(c: str, in_set: bool) -> str:
    low = c.lower()
    if low in _CLASSES:
        body = _CLASSES[low]
        if c.isupper():
            return f"[^{body}]" if not in_set else ""  # negated class inside a set: unsupported
        return body if in_set else f"[{body}]"
    return re.escape(c)


def lua_pattern_to_regex(pat: str) -> str:
    """Translate a Lua 5.1 pattern (without %b, %f and captures' back-references) to `re`."""
    out, i, n = [], 0, len(pat)
    while i < n:
        c = pat[i]
        if c == "%" and i + 1 < n:
            out.append(_lua_class(pat[i + 1], False))
            i += 2
        elif c == "[":
            j, body = i + 1, []
            if j < n and pat[j] == "^":
                body.append("^")
                j += 1
            while j < n and (pat[j] != "]" or len(body) == 0 or body == ["^"]):
                if pat[j] == "%" and j + 1 < n:
                    body.append(_lua_class(pat[j + 1], True))
                    j += 2
                else:
                    body.append("\\" + pat[j] if pat[j] in "\\]^" and pat[j] != "^" else pat[j])
                    j += 1
            out.append("[" + "".join(body) + "]")
            i = j + 1
        elif c == "-":
            out.append("*?")
            i += 1
        elif c in "*+?":
            out.append(c)
            i += 1
        elif c == "^" and i == 0:
            out.append("^")
            i += 1
        elif c == "$" and i == n - 1:
            out.append(r"\Z")
            i += 1
        elif c == ".":
            out.append("(?s:.)")
            i += 1
        elif c in "()":
            out.append(c)
            i += 1
        else:
            out.append(re.escape(c))
            i += 1
    return "".join(out)


def lua_find(ctx, subject: bytes, pattern: Any) -> bool:
    """string.find(subject, pattern) through the engine's bridge, or a translation."""
    lua = getattr(ctx, "lua", None) if ctx is not None else None
    if lua is not None and hasattr(lua, "find"):
        return bool(lua.find(subject, pattern))
    pat = to_bytes(pattern).decode("latin-1")
    return re.search(lua_pattern_to_regex(pat), subject.decode("latin-1")) is not None


# ------------------------------------------------------------ query view (Lua)

class QueryView:
    """What kresd passes as `query` (struct kr_query) to filters: `query:name()`
    is the lower-cased wire qname; `.stype`, `.sclass`, `.sname` as in kresd."""

    def __init__(self, req):
        q = req.query.question[0]
        self._name = q.name
        self.stype = int(q.rdtype)
        self.sclass = int(q.rdclass)
        self._sname = None
        self._suffixes = None

    @classmethod
    def from_wire(cls, lower_wire: bytes, stype: int, sclass: int = 1) -> "QueryView":
        """A view of a query known only as its lower-cased wire qname (fast path)."""
        self = cls.__new__(cls)
        self._name = None
        self.stype, self.sclass = stype, sclass
        self._sname, self._suffixes = lower_wire, None
        return self

    @property
    def sname(self) -> bytes:
        if self._sname is None:
            self._sname = self._name.canonicalize().to_wire()
        return self._sname

    @property
    def suffixes(self) -> frozenset:
        """Lower-cased wire forms of the name and all its ancestors: the tails of
        the wire name at label boundaries (suffix filters test membership)."""
        if self._suffixes is None:
            wire = self.sname
            tails, i = [], 0
            while i < len(wire):
                tails.append(wire[i:])
                i += wire[i] + 1
            self._suffixes = frozenset(tails)
        return self._suffixes

    def name(self, *_):
        return self.sname

    @property
    def dname(self) -> dns.name.Name:
        return self._name


# ----------------------------------------------------------- answer builders

_SOA_TAIL = "nobody.invalid. 1 3600 1200 604800 10800"


def answer_clear(req):
    """Prepare an answer from scratch (kresd answer_clear): empty sections, no EDE."""
    ans = req.answer
    ans.answer, ans.authority, ans.additional = [], [], []
    if ans.edns >= 0:
        ans.use_edns(0, ans.ednsflags, ans.payload, options=[])
    return ans


def make_auth_header(ans) -> None:
    """kr_pkt_make_auth_header: AA on, AD off."""
    ans.flags = (ans.flags | dns.flags.AA) & ~dns.flags.AD


def auth_soa(owner: dns.name.Name, mname: dns.name.Name | None = None, ttl: int = 10800):
    """kresd's mkauth_soa: '<mname> nobody.invalid. 1 3600 1200 604800 10800'."""
    text = f"{(mname or owner).to_text()} {_SOA_TAIL}"
    return dns.rrset.from_text(owner, ttl, dns.rdataclass.IN, T.SOA, text)


def qname_of(req) -> dns.name.Name:
    return req.query.question[0].name


# ------------------------------------------------------------------- actions

class Action:
    """A built-in policy action: callable (state, req) -> State | None (chain)."""

    name = "ACTION"
    chain = False

    def __call__(self, state, req):
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"policy.{self.name}"


class _Fn(Action):
    def __init__(self, name: str, fn, chain: bool = False):
        self.name, self._fn, self.chain = name, fn, chain

    def __call__(self, state, req, *_):
        return self._fn(state, req)


def _pass(state, req):
    return state


def _deny_msg(msg: str | None, ede: int):
    def act(state, req):
        ans = answer_clear(req)
        make_auth_header(ans)
        ans.set_rcode(dns.rcode.NXDOMAIN)
        ans.authority = [auth_soa(qname_of(req))]
        if msg:
            ans.additional = [dns.rrset.from_text("explanation.invalid.", 10800, "IN", "TXT",
                                                  '"' + msg.replace("\\", "\\\\").replace('"', '\\"') + '"')]
        set_ede(ans, ede, "CR36")
        req.vars["policy.answered"] = True
        return State.DONE
    return act


def _drop(state, req):
    answer_clear(req)
    set_ede(req.answer, EDE.PROHIBITED, "U5KL")
    req.vars["policy.answered"] = True
    return State.FAIL


def _no_answer(state, req):
    req.drop = True
    req.vars["policy.answered"] = True
    return State.FAIL


def _refuse(state, req):
    ans = answer_clear(req)
    ans.set_rcode(dns.rcode.REFUSED)
    ans.flags &= ~dns.flags.AD
    set_ede(ans, EDE.PROHIBITED, "EIM4")
    req.vars["policy.answered"] = True
    return State.DONE


def _tc(state, req):
    if req.qsource.addr is None or req.qsource.tcp or req.tcp:
        return state
    ans = answer_clear(req)
    ans.flags = (ans.flags | dns.flags.TC) & ~dns.flags.AD
    req.vars["policy.answered"] = True
    return State.DONE


def _qtrace(state, req):
    req.options.TRACE = True
    return None


def _forward_action(targets: list, stub: bool):
    def act(state, req):
        req.forward = Forward(list(targets), stub=stub)
        if not stub:
            req.options.NO_MINIMIZE = True
        return state
    return act


def _parse_targets(target: Any, what: str) -> list:
    targets = [split_addr(t) for t in lua_seq(target)]
    if not targets:
        raise ValueError(f"{what}: no target address given")
    return targets


def _flags_action(opts_set: Any, opts_clear: Any):
    set_names = [to_text(n) for n in lua_seq(opts_set)] if opts_set is not None else []
    clear_names = [to_text(n) for n in lua_seq(opts_clear)] if opts_clear is not None else []

    def act(state, req):
        for names, value in ((set_names, True), (clear_names, False)):
            for n in names:
                if hasattr(req.options, n):
                    setattr(req.options, n, value)
                else:
                    req.vars.setdefault("qflags", {})[n] = value
        return None
    return act


def _rdatas(qtype: int, data: Any) -> list:
    raw = lua_get(data, "rdata")
    out = []
    for item in lua_seq(raw):
        if isinstance(item, dns.rdata.Rdata):
            out.append(item)
            continue
        wire = to_bytes(item)
        try:
            out.append(dns.rdata.from_wire(dns.rdataclass.IN, qtype, wire, 0, len(wire)))
        except Exception:
            out.append(dns.rdata.from_text(dns.rdataclass.IN, qtype, to_text(item)))
    return out


def _answer_action(rtable: Any, nodata: Any):
    nodata = bool(nodata)

    def act(state, req):
        q = req.query.question[0]
        data = lua_get(rtable, int(q.rdtype))
        if data is None and not nodata:
            return None
        ans = answer_clear(req)
        make_auth_header(ans)
        ttl = int(lua_get(data, "ttl", 1)) if data is not None else 1
        ans.set_rcode(dns.rcode.NOERROR)
        set_ede(ans, EDE_FORGED, "5DO5")
        req.vars["policy.answered"] = True
        if data is None:
            soa = lua_get(rtable, int(T.SOA))
            if soa is not None:
                rr = dns.rrset.from_rdata_list(q.name, int(lua_get(soa, "ttl", ttl)), _rdatas(T.SOA, soa)[:1])
            else:
                rr = auth_soa(q.name, ttl=ttl)
            ans.authority = [rr]
        else:
            ans.answer = [dns.rrset.from_rdata_list(q.name, ttl, _rdatas(q.rdtype, data))]
        return State.DONE
    return act


# ------------------------------------------------------------------- filters

class Filter:
    """A built-in filter: callable (req, query) -> action | None."""

    def __init__(self, action: Any, match, what: str):
        self.action, self._match, self.what = action, match, what

    def __call__(self, req, query, *_):
        return self.action if self._match(req, query) else None

    def __repr__(self) -> str:
        return f"policy.{self.what}({self.action!r})"


def _suffix_match(zones: list[dns.name.Name]):
    """Match when the query name is at or below one of `zones`: a set lookup of
    the name's wire-format ancestors (QueryView.suffixes), not a Name comparison
    per zone; other query objects (from Lua) fall back to Name.is_subdomain."""
    wires = frozenset(z.canonicalize().to_wire() for z in zones)

    def match(req, q):
        if isinstance(q, QueryView):
            return not q.suffixes.isdisjoint(wires)
        name = _qname(q)
        return any(name.is_subdomain(z) for z in zones)
    match.wires = wires
    return match


def _qname(query) -> dns.name.Name:
    if isinstance(query, QueryView):
        return query.dname
    return to_name(query.name())


# --------------------------------------------------------------- special names

_PRIVATE_ZONES = (
    [f"{n}.172.in-addr.arpa." for n in range(16, 32)]
    + ["10.in-addr.arpa.", "168.192.in-addr.arpa.", "0.in-addr.arpa.", "254.169.in-addr.arpa.",
       "2.0.192.in-addr.arpa.", "100.51.198.in-addr.arpa.", "113.0.203.in-addr.arpa.",
       "255.255.255.255.in-addr.arpa."]
    + [f"{n}.100.in-addr.arpa." for n in range(64, 128)]
    + ["0." * 32 + "ip6.arpa.", "d.f.ip6.arpa.", "8.e.f.ip6.arpa.", "9.e.f.ip6.arpa.",
       "a.e.f.ip6.arpa.", "b.e.f.ip6.arpa.", "8.b.d.0.1.0.0.2.ip6.arpa.", "home.arpa."]
)
_LOCALLY_SERVED_MSG = ("Blocking is mandated by standards, see references on "
                       "https://www.iana.org/assignments/locally-served-dns-zones/locally-served-dns-zones.xhtml")
_SPECIAL_USE_MSG = ("Blocking is mandated by standards, see references on "
                    "https://www.iana.org/assignments/special-use-domain-names/special-use-domain-names.xhtml")
_LOCALHOST = dns.name.from_text("localhost.")
_REV4_LOCALHOST = dns.name.from_text("1.0.0.127.in-addr.arpa.")
_REV4_APEX = dns.name.from_text("127.in-addr.arpa.")
_REV6_LOCALHOST = dns.name.from_text("1." + "0." * 31 + "ip6.arpa.")


def _localhost(state, req):
    """RFC 6303 sec. 3: the locally served localhost. zone."""
    q = req.query.question[0]
    ans = answer_clear(req)
    make_auth_header(ans)
    ans.set_rcode(dns.rcode.NOERROR)
    exact = q.name == _LOCALHOST
    if q.rdtype == T.AAAA:
        ans.answer = [dns.rrset.from_text(q.name, 900, "IN", "AAAA", "::1")]
    elif q.rdtype == T.A:
        ans.answer = [dns.rrset.from_text(q.name, 900, "IN", "A", "127.0.0.1")]
    elif exact and q.rdtype == T.SOA:
        ans.answer = [auth_soa(_LOCALHOST)]
    elif exact and q.rdtype == T.NS:
        ans.answer = [dns.rrset.from_text(_LOCALHOST, 900, "IN", "NS", "localhost.")]
    else:
        ans.authority = [auth_soa(_LOCALHOST)]
    return State.DONE


def _localhost_reversed(state, req):
    """127.in-addr.arpa. and ::1's reverse name, served locally (kresd localhost_reversed)."""
    q = req.query.question[0]
    name = q.name
    nonterm = False
    if name.is_subdomain(dns.name.from_text("ip6.arpa.")):
        exact = apex = True
    elif len(name.labels) == 4:  # 127.in-addr.arpa.
        exact, apex = False, True
    elif name == _REV4_LOCALHOST:
        exact, apex = True, False
    else:
        exact = apex = False
        nonterm = _REV4_LOCALHOST.is_subdomain(name)
    ans = answer_clear(req)
    make_auth_header(ans)
    ans.set_rcode(dns.rcode.NOERROR)
    if exact and q.rdtype == T.PTR:
        ans.answer = [dns.rrset.from_text(name, 900, "IN", "PTR", "localhost.")]
    elif apex and q.rdtype == T.SOA:
        ans.answer = [auth_soa(_REV4_APEX, _LOCALHOST)]
    elif apex and q.rdtype == T.NS:
        ans.answer = [dns.rrset.from_text(_REV4_APEX, 900, "IN", "NS", "localhost.")]
    else:
        if not nonterm:
            ans.set_rcode(dns.rcode.NXDOMAIN)
        ans.authority = [auth_soa(_REV4_APEX, _LOCALHOST)]
    return State.DONE


# -------------------------------------------------------------------- rules

@dataclass
class Rule:
    """kresd's rule descriptor {id, cb, count}; `suspended` skips it."""

    id: int
    cb: Any
    count: int = 0
    suspended: bool = False
    postrule: bool = False


@dataclass
class Rules:
    rules: list = field(default_factory=list)
    postrules: list = field(default_factory=list)
    special: list = field(default_factory=list)
    next_id: int = 0


class Evaluator:
    """Runs rule lists: filters and actions may be Python objects or Lua functions
    (called through the engine's bridge `ctx.lua.call`)."""

    def __init__(self, ctx):
        self.ctx = ctx

    def evaluate(self, rules: list, req, state: State) -> State | None:
        """Walk rules; the first non-chain action's state, or None."""
        query = QueryView(req)
        for rule in list(rules):
            if rule.suspended:
                continue
            action = self.apply_filter(rule.cb, req, query)
            if action is None or action is False:
                continue
            rule.count += 1
            nxt = self.run_action(action, state, req)
            if nxt is not None:
                return nxt
        return None

    def apply_filter(self, cb, req, query):
        if isinstance(cb, Filter) or not is_lua_function(cb):
            return cb(req, query)
        return self.ctx.lua.call(cb, req, query)

    def run_action(self, action, state: State, req) -> State | None:
        if isinstance(action, Action) or not is_lua_function(action):
            res = action(state, req)
        else:
            res = self.ctx.lua.call(action, int(state), req)
        if res is not None:
            log.debug("[%05d] policy action %r applied", req.uid, action)
        return to_state(res)


def is_lua_function(obj) -> bool:
    return type(obj).__module__.startswith("lupa") or type(obj).__name__.startswith("_Lua")


class PolicyLayer(Layer):
    name = "policy"
    # workers/fastmiss.py: begin() does nothing for a name fast_ok passes, and
    # finish() acts only with postrules (then fast_ok is False)
    fast_miss = True

    def __init__(self, module: "Policy"):
        self.module = module

    def begin(self, req):
        m = self.module
        state = State(req.state) if req.state else State.CONSUME
        res = m.evaluate(m.rules.rules, req, state)
        if res is None:
            res = m.evaluate(m.rules.special, req, state)
        return None if res is None or res == state else res

    def fast_ok(self, pq):
        """The rules leave this name's answer as the cache gives it: the user's
        rules are suffix filters that either do not match it or PASS it
        (which ends the walk without a change), and, when no rule PASSes it,
        no special-name rule of kresd's matches it. No postrules. (A fast
        answer does not add to a matching rule's `count`.)"""
        m = self.module
        if m.rules.postrules:
            return False
        tails = QueryView.from_wire(pq.qname_lower, pq.qtype, pq.qclass).suffixes
        for r in m.rules.rules:
            if r.suspended:
                continue
            wires = getattr(r.cb, "wires", None)
            if wires is None:
                return False  # a filter only a Request can decide
            if tails.isdisjoint(wires):
                continue
            action = getattr(r.cb, "action", None)
            return isinstance(action, _Fn) and action.name == "PASS" and not action.chain
        for r in m.rules.special:
            if r.suspended:
                continue
            wires = getattr(r.cb, "wires", None)  # suffix filters: one set test
            if wires is None or not tails.isdisjoint(wires):
                return False
        return True

    def finish(self, req):
        m = self.module
        if not m.rules.postrules or req.drop or req.answer is None:
            return None
        if req.answer.rcode() == dns.rcode.SERVFAIL:
            return None
        state = State(req.state) if req.state else State.DONE
        res = m.evaluate(m.rules.postrules, req, state)
        return None if res is None or res == state else res


@builtin
class Policy(Module):
    name = "policy"

    def __init__(self, ctx):
        super().__init__(ctx)
        self.rules = Rules()
        self.layer = PolicyLayer(self)
        self.evaluator = Evaluator(ctx)
        self.rules.special = [
            Rule(-1, self.suffix_common(self.DENY_MSG(_LOCALLY_SERVED_MSG), _PRIVATE_ZONES, "arpa.")),
            Rule(-2, self.suffix(self.DENY_MSG(_SPECIAL_USE_MSG), ["test.", "onion.", "invalid.", "local."])),
            Rule(-3, self.suffix(_Fn("localhost", _localhost), [_LOCALHOST])),
            Rule(-4, self.suffix_common(_Fn("localhost_reversed", _localhost_reversed),
                                        [_REV4_APEX, _REV6_LOCALHOST], "arpa.")),
        ]

    def evaluate(self, rules: list, req, state: State) -> State | None:
        return self.evaluator.evaluate(rules, req, state)

    # -- rule list ----------------------------------------------------------

    def add(self, rule, postrule=None):
        if rule is None or not callable(rule) and not is_lua_function(rule):
            raise ValueError("policy.add(rule[, postrule]): rule must be a filter function")
        desc = Rule(self.rules.next_id, rule, postrule=bool(postrule))
        self.rules.next_id += 1
        (self.rules.postrules if postrule else self.rules.rules).append(desc)
        return desc

    def delete(self, rule_id):
        rid = getattr(rule_id, "id", rule_id)
        for lst in (self.rules.rules, self.rules.postrules):
            for i, r in enumerate(lst):
                if r.id == int(rid):
                    del lst[i]
                    return True
        return False

    # -- filters ------------------------------------------------------------

    def all(self, action):
        return Filter(action, lambda req, q: True, "all")

    def suffix(self, action, zone_list):
        zones = [to_name(z) for z in lua_seq(zone_list)]
        match = _suffix_match(zones)
        f = Filter(action, match, "suffix")
        f.wires = match.wires
        return f

    def suffix_common(self, action, suffix_list, common_suffix=None):
        zones = [to_name(z) for z in lua_seq(suffix_list)]
        common = to_name(common_suffix) if common_suffix is not None else dns.name.root
        in_common, in_zones = _suffix_match([common]), _suffix_match(zones)
        f = Filter(action, lambda req, q: in_common(req, q) and in_zones(req, q), "suffix_common")
        f.wires = in_zones.wires if all(z.is_subdomain(common) for z in zones) else None
        return f

    def pattern(self, action, pattern):
        ctx = self.ctx
        return Filter(action, lambda req, q: lua_find(ctx, to_bytes(q.name()), pattern), "pattern")

    def domains(self, action, dname_list):
        names = {to_name(z) for z in lua_seq(dname_list)}
        return Filter(action, lambda req, q: _qname(q) in names, "domains")

    def rpz(self, action, path, watch=None):
        raise NotImplementedError("policy.rpz is not implemented in kresd-py")

    def slice(self, *args):
        raise NotImplementedError("policy.slice is not implemented in kresd-py")

    def todnames(self, names):
        if is_lua_table(names) or isinstance(names, (dict, list)):
            for k, v in lua_items(names):
                names[k if not isinstance(names, list) else k - 1] = todname(v)
            return names
        return [todname(v) for v in lua_seq(names)]

    # -- parametrised actions ---------------------------------------------------

    def DENY_MSG(self, msg=None, extended_error=None):
        if msg is not None and (not isinstance(msg, (str, bytes)) or len(msg) >= 255):
            raise ValueError("DENY_MSG: optional msg must be string shorter than 256 characters")
        ede = EDE_BLOCKED if extended_error is None else int(extended_error)
        return _Fn("DENY_MSG" if msg else "DENY", _deny_msg(to_text(msg) if msg else None, ede))

    def FORWARD(self, target):
        return _Fn("FORWARD", _forward_action(_parse_targets(target, "FORWARD"), stub=False))

    def STUB(self, target):
        return _Fn("STUB", _forward_action(_parse_targets(target, "STUB"), stub=True))

    def TLS_FORWARD(self, targets):
        raise NotImplementedError("policy.TLS_FORWARD is not implemented in kresd-py")

    def MIRROR(self, target):
        raise NotImplementedError("policy.MIRROR is not implemented in kresd-py")

    def ANSWER(self, rtable, nodata=None):
        return _Fn("ANSWER", _answer_action(rtable, nodata))

    def FLAGS(self, opts_set=None, opts_clear=None):
        return _Fn("FLAGS", _flags_action(opts_set, opts_clear), chain=True)

    def REROUTE(self, tbl, names=None):
        from .renumber import reroute_action
        return _Fn("REROUTE", reroute_action(tbl, bool(names)))

    def DEBUG_IF(self, test=None):
        return _Fn("DEBUG_IF", _qtrace, chain=True)

    # -- Lua face -----------------------------------------------------------

    def lua_api(self) -> dict:
        if "actions" in self.__dict__:
            return self.actions
        deny = self.DENY_MSG()
        qtrace = _Fn("QTRACE", _qtrace, chain=True)
        api = {
            "add": self.add, "del": self.delete, "evaluate": self._lua_evaluate,
            "all": self.all, "suffix": self.suffix, "suffix_common": self.suffix_common,
            "pattern": self.pattern, "domains": self.domains, "rpz": self.rpz, "slice": self.slice,
            "todnames": self.todnames,
            "PASS": _Fn("PASS", _pass), "DENY": deny, "DENY_MSG": self.DENY_MSG,
            "DROP": _Fn("DROP", _drop), "NO_ANSWER": _Fn("NO_ANSWER", _no_answer),
            "REFUSE": _Fn("REFUSE", _refuse), "TC": _Fn("TC", _tc),
            "FORWARD": self.FORWARD, "STUB": self.STUB, "TLS_FORWARD": self.TLS_FORWARD,
            "MIRROR": self.MIRROR, "ANSWER": self.ANSWER, "FLAGS": self.FLAGS, "REROUTE": self.REROUTE,
            "QTRACE": qtrace, "REQTRACE": _Fn("REQTRACE", _qtrace, chain=True),
            "IPTRACE": _Fn("IPTRACE", _qtrace, chain=True),
            "DEBUG_ALWAYS": _Fn("DEBUG_ALWAYS", _qtrace, chain=True),
            "DEBUG_CACHE_MISS": _Fn("DEBUG_CACHE_MISS", _qtrace, chain=True),
            "DEBUG_IF": self.DEBUG_IF,
        }
        self.actions = api
        return api

    def lua_get(self, key: Any) -> Any:
        """policy.rules / policy.postrules / policy.special_names, read live."""
        lists = {"rules": self.rules.rules, "postrules": self.rules.postrules,
                 "special_names": self.rules.special}
        if key in lists:
            return list(lists[key])
        raise KeyError(key)

    def _lua_evaluate(self, rules, req, query=None, state=None):
        lst = [r if isinstance(r, Rule) else Rule(-1, lua_get(r, "cb")) for r in lua_seq(rules)]
        return self.evaluate(lst, req, to_state(state) or State.CONSUME)

    # convenience for Python callers and tests: policy.DENY etc. as attributes
    def __getattr__(self, name):
        if name.isupper() or name in ("actions",):
            api = self.__dict__.get("actions") or self.lua_api()
            if name in api:
                return api[name]
        raise AttributeError(name)
