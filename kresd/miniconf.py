"""A tiny, honest subset of kresd's Lua configuration (TEMPORARY).

Owns: reading a kresd config file of which only a few exact statement forms
are understood, and applying them to `workers.settings.Settings`.
Must not: evaluate Lua, guess, or silently ignore anything: any other
statement is a ConfigError "<file>:<line>: not supported until the Lua engine
lands" (exit code EXIT_CONFIG). The Lua engine (kresd/engine.py, issue 3)
replaces this module entirely; the settings it fills are the same.

Understood statements (one statement each; `;` separators, `--` comments and
tables spanning lines are fine):
    option('ALLOW_LOCAL'|'NO_MINIMIZE'|'NO_0X20'|'NO_EDNS', true|false)
    hints.root({ ['a.root-servers.net.'] = '192.0.2.1', ['b.'] = {'addr', 'addr'} })
    net.listen('addr'|{'addr', ...} [, port [, { kind = 'dns' }]])
    net.ipv4 = true|false          net.ipv6 = true|false
    net.bufsize(N)                 -- downstream EDNS payload (settings.edns_bufsize)
    cache.size = N * MB            -- numbers, kB/MB/GB, and products of them
    cache.min_ttl(N)               cache.max_ttl(N)
    mode('strict'|'normal'|'permissive')
    log_level('crit'|'err'|'warning'|'notice'|'info'|'debug')
    verbose(true|false)
    trust_anchors.remove('.')      -- no-op: there is no DNSSEC validation yet
    modules.load('hints > iterate'|'hints'|'stats')   -- no-op, built in
    modules = { 'hints > iterate', 'stats' }          -- same
"""
from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass, field
from typing import Any

import dns.exception
import dns.name

from kresd import log
from kresd.errors import ConfigError
from workers.settings import Endpoint, GlueMode, Settings

UNSUPPORTED = "not supported until the Lua engine lands"
UNITS = {"kB": 1024, "MB": 1024**2, "GB": 1024**3}
OPTIONS = {"ALLOW_LOCAL": "allow_local", "NO_MINIMIZE": "no_minimize", "NO_0X20": "no_0x20", "NO_EDNS": "no_edns"}
NOOP_MODULES = {"hints > iterate", "hints", "stats"}

_TOKEN = re.compile(
    r"""(?P<ws>[ \t\r]+)|(?P<nl>\n)|(?P<bcomment>--\[\[(?s:.*?)\]\])|(?P<comment>--[^\n]*)
    |(?P<str>'(?:[^'\\\n]|\\.)*'|"(?:[^"\\\n]|\\.)*")
    |(?P<num>\d+(?:\.\d+)?)|(?P<name>[A-Za-z_][A-Za-z0-9_]*)
    |(?P<op>[(){}\[\]=,;.*])""",
    re.VERBOSE,
)


_ESCAPE = re.compile(r"\\(.)")
_ESCAPES = {"n": "\n", "t": "\t", "r": "\r"}


def _unescape(m: re.Match) -> str:
    return _ESCAPES.get(m.group(1), m.group(1))


@dataclass
class Tok:
    kind: str  # str, num, name, op, eof
    value: Any
    line: int


@dataclass
class MiniConfig:
    """What a config file set besides Settings fields."""

    log_level: str | None = None
    files: list[str] = field(default_factory=list)


def tokenize(text: str, file: str) -> list[Tok]:
    toks, line, pos = [], 1, 0
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        if not m:
            raise ConfigError(f"unexpected character {text[pos]!r}; " + UNSUPPORTED, file, line)
        kind = m.lastgroup
        val = m.group()
        if kind == "nl":
            line += 1
        elif kind == "bcomment":
            line += val.count("\n")
        elif kind == "str":
            toks.append(Tok("str", _ESCAPE.sub(_unescape, val[1:-1]), line))
        elif kind == "num":
            toks.append(Tok("num", float(val) if "." in val else int(val), line))
        elif kind in ("name", "op"):
            toks.append(Tok(kind, val, line))
        pos = m.end()
    toks.append(Tok("eof", None, line))
    return toks


class _Parser:
    """Recursive descent over the tokens: statements are calls or assignments."""

    def __init__(self, toks: list[Tok], file: str):
        self.toks, self.i, self.file = toks, 0, file

    def peek(self) -> Tok:
        return self.toks[self.i]

    def next(self) -> Tok:
        tok = self.toks[self.i]
        self.i += 1
        return tok

    def fail(self, tok: Tok | None = None, msg: str = UNSUPPORTED):
        raise ConfigError(msg, self.file, (tok or self.peek()).line)

    def expect(self, value: str) -> Tok:
        tok = self.next()
        if tok.kind != "op" or tok.value != value:
            self.fail(tok)
        return tok

    def dotted(self) -> str:
        tok = self.next()
        if tok.kind != "name":
            self.fail(tok)
        parts = [tok.value]
        while self.peek().kind == "op" and self.peek().value == ".":
            self.next()
            t = self.next()
            if t.kind != "name":
                self.fail(t)
            parts.append(t.value)
        return ".".join(parts)

    def statement(self) -> tuple[str, str, list, int]:
        """('call'|'assign', target, args, line)."""
        start = self.peek()
        target = self.dotted()
        tok = self.next()
        if tok.kind == "op" and tok.value == "(":
            args = []
            if not (self.peek().kind == "op" and self.peek().value == ")"):
                args.append(self.expr())
                while self.peek().kind == "op" and self.peek().value == ",":
                    self.next()
                    args.append(self.expr())
            self.expect(")")
            return "call", target, args, start.line
        if tok.kind == "op" and tok.value == "=":
            return "assign", target, [self.expr()], start.line
        self.fail(start, f"statement '{target} ...' " + UNSUPPORTED)

    def expr(self) -> Any:
        value = self.atom()
        while self.peek().kind == "op" and self.peek().value == "*":
            op = self.next()
            rhs = self.atom()
            if not isinstance(value, (int, float)) or not isinstance(rhs, (int, float)):
                self.fail(op)
            value = value * rhs
        return value

    def atom(self) -> Any:
        tok = self.next()
        if tok.kind in ("str", "num"):
            return tok.value
        if tok.kind == "name" and tok.value in ("true", "false"):
            return tok.value == "true"
        if tok.kind == "name" and tok.value in UNITS:
            return UNITS[tok.value]
        if tok.kind == "op" and tok.value == "{":
            return self.table()
        self.fail(tok)

    def table(self) -> dict:
        """Lua table → dict; positional items get keys 1, 2, ..."""
        out: dict = {}
        n = 1
        while not (self.peek().kind == "op" and self.peek().value == "}"):
            tok = self.peek()
            if tok.kind == "op" and tok.value == "[":
                self.next()
                key = self.expr()
                self.expect("]")
                self.expect("=")
                out[key] = self.expr()
            elif tok.kind == "name" and self.toks[self.i + 1].kind == "op" and self.toks[self.i + 1].value == "=":
                self.next()
                self.next()
                out[tok.value] = self.expr()
            else:
                out[n] = self.expr()
                n += 1
            if self.peek().kind == "op" and self.peek().value in (",", ";"):
                self.next()
            elif not (self.peek().kind == "op" and self.peek().value == "}"):
                self.fail()
        self.next()
        return out

    def statements(self):
        while self.peek().kind != "eof":
            if self.peek().kind == "op" and self.peek().value == ";":
                self.next()
                continue
            yield self.statement()


def _positional(table: dict) -> list:
    return [table[k] for k in sorted(k for k in table if isinstance(k, int))]


def _ip(value: Any, err) -> str:
    try:
        return str(ipaddress.ip_address(value))
    except (ValueError, TypeError):
        err(f"'{value}' is not an IP address literal (interface names: {UNSUPPORTED})")


class _Applier:
    """Maps each understood statement onto Settings; anything else fails."""

    def __init__(self, settings: Settings, conf: MiniConfig, file: str):
        self.s, self.conf, self.file = settings, conf, file
        self.line = 0

    def err(self, msg: str):
        raise ConfigError(msg, self.file, self.line)

    def args(self, args: list, *types) -> None:
        def ok(a, t) -> bool:  # Lua booleans are not numbers (Python bools are ints)
            return isinstance(a, t) and (t is bool or not isinstance(a, bool))

        if len(args) != len(types) or not all(ok(a, t) for a, t in zip(args, types)):
            self.err("bad arguments; " + UNSUPPORTED)

    def apply(self, kind: str, target: str, args: list, line: int) -> None:
        self.line = line
        handler = getattr(self, f"{kind}_{target.replace('.', '_')}", None)
        if handler is None:
            self.err(f"'{target}' " + UNSUPPORTED)
        handler(args)

    def call_option(self, a):
        self.args(a, str, bool)
        if a[0] not in OPTIONS:
            self.err(f"option '{a[0]}' " + UNSUPPORTED)
        setattr(self.s, OPTIONS[a[0]], a[1])

    def call_hints_root(self, a):
        self.args(a, dict)
        hints: dict[dns.name.Name, list[str]] = {}
        for name, addrs in a[0].items():
            if not isinstance(name, str):
                self.err("hints.root: keys must be names")
            addrs = _positional(addrs) if isinstance(addrs, dict) else [addrs]
            try:
                hints[dns.name.from_text(name)] = [_ip(x, self.err) for x in addrs]
            except dns.exception.DNSException as e:
                self.err(f"hints.root: bad name '{name}': {e}")
        self.s.root_hints = hints

    def call_net_listen(self, a):
        if not 1 <= len(a) <= 3:
            self.err("net.listen(addr, [port], [{kind = 'dns'}])")
        addrs = _positional(a[0]) if isinstance(a[0], dict) else [a[0]]
        port = a[1] if len(a) > 1 else 53
        opts = a[2] if len(a) > 2 else {}
        if not isinstance(port, int) or not 0 <= port <= 65535 or not isinstance(opts, dict):
            self.err("net.listen: bad port or options")
        kind = opts.get("kind", "dns")
        if kind != "dns" or set(opts) - {"kind", "freebind"}:
            self.err(f"net.listen kind '{kind}' or options {sorted(opts)}: " + UNSUPPORTED)
        for addr in addrs:
            self.s.listen.append(Endpoint(_ip(addr, self.err), port, "dns"))

    def assign_net_ipv4(self, a):
        self.args(a, bool)
        self.s.ipv4 = a[0]

    def assign_net_ipv6(self, a):
        self.args(a, bool)
        self.s.ipv6 = a[0]

    def call_net_bufsize(self, a):
        self.args(a[:1], int)
        if not 512 <= a[0] <= 65535:
            self.err("net.bufsize: must be within 512..65535")
        self.s.edns_bufsize = a[0]

    def assign_cache_size(self, a):
        self.args(a, (int, float))
        self.s.cache_size = int(a[0])

    def call_cache_min_ttl(self, a):
        self.args(a, int)
        self.s.cache_min_ttl = a[0]

    def call_cache_max_ttl(self, a):
        self.args(a, int)
        self.s.cache_max_ttl = a[0]

    def call_mode(self, a):
        self.args(a, str)
        try:
            self.s.glue_mode = GlueMode[a[0].upper()]
        except KeyError:
            self.err(f"mode '{a[0]}': expected 'strict', 'normal' or 'permissive'")

    def call_log_level(self, a):
        self.args(a, str)
        if a[0] not in log.LEVELS:
            self.err(f"log_level '{a[0]}': expected one of {', '.join(log.LEVELS)}")
        self.conf.log_level = a[0]

    def call_verbose(self, a):
        self.args(a, bool)
        self.conf.log_level = "debug" if a[0] else "notice"
        self.s.verbose = a[0]

    def call_trust_anchors_remove(self, a):
        self.args(a, str)
        if a[0] != ".":
            self.err("trust_anchors.remove: only '.' " + UNSUPPORTED)

    def call_modules_load(self, a):
        self.args(a, str)
        if a[0] not in NOOP_MODULES:
            self.err(f"module '{a[0]}' " + UNSUPPORTED)

    def assign_modules(self, a):
        self.args(a, dict)
        for name in a[0].values():
            self.call_modules_load([name])


def load(path: str, settings: Settings, conf: MiniConfig | None = None) -> MiniConfig:
    """Apply the config file at `path` to `settings`; ConfigError(file, line) on anything else."""
    conf = conf or MiniConfig()
    try:
        with open(path, encoding="utf-8") as f:
            text = f.read()
    except OSError as e:
        raise ConfigError(f"cannot read config: {e.strerror or e}", path) from e
    except UnicodeDecodeError as e:
        raise ConfigError(f"config is not UTF-8: {e}", path) from e
    loads(text, settings, conf, path)
    conf.files.append(path)
    return conf


def loads(text: str, settings: Settings, conf: MiniConfig | None = None, file: str = "<string>") -> MiniConfig:
    """Apply config text to `settings` (see `load`)."""
    conf = conf or MiniConfig()
    parser = _Parser(tokenize(text, file), file)
    applier = _Applier(settings, conf, file)
    for kind, target, args, line in parser.statements():
        applier.apply(kind, target, args, line)
    return conf
