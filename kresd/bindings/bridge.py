"""LuaBridge: the one place Python values cross into Lua and back.

Owns: the LuaJIT runtime's value conversions (Lua tables <-> dict/list, Lua
strings <-> str/bytes), wrapping Python callables as Lua functions whose
failures are Lua errors at the caller's line (DESIGN example 10), calling Lua
functions from Python, Lua pattern matching (`find`), and `LuaUsage`, the
exception a binding raises to report a usage error.
Must not: know any Lua namespace (kresd/bindings/<ns>.py do) or the engine's
state.

String rule (the runtime uses encoding=None, so Lua strings are bytes):
a Lua string reaches Python as `str` when it is UTF-8 without control bytes
(other than TAB/LF/CR), otherwise as `bytes` (e.g. wire-format names from
todname(), which always end in NUL). Python str/bytes both become Lua strings.
Tables whose keys are exactly 1..n become lists, other tables dicts (an empty
table is an empty dict). Python callables become Lua functions; passed back to
Python they are the original callable again. Other Python objects travel as
opaque userdata and come back unchanged.
"""
from __future__ import annotations

import enum
import logging
from typing import Any

import lupa.luajit21 as luajit

from kresd.errors import BOUNDARY_ERRORS, KresdError

log = logging.getLogger("kresd.lua")

LuaError = luajit.LuaError
_CTRL = frozenset(b for b in range(32) if b not in (9, 10, 13))


class LuaUsage(KresdError):
    """A binding was called wrongly: the message is the usage text."""


class Multi(tuple):
    """Return several Lua values from a binding (`return Multi((a, b))`)."""


def lua_str(b: bytes) -> str | bytes:
    if any(c in _CTRL for c in b):
        return b
    try:
        return b.decode("utf-8")
    except UnicodeDecodeError:
        return b


class LuaBridge:
    """What modules and bindings use to talk to the engine's Lua runtime."""

    def __init__(self, runtime: "luajit.LuaRuntime"):
        self.runtime = runtime
        self._lua_type = runtime.eval("type")
        self.helpers: Any = None  # sandbox.lua's returned table (set by the engine)
        self._find = runtime.eval("function(s, p) return string.find(s, p) ~= nil end")

    # -- conversions ------------------------------------------------------------
    def to_py(self, v: Any, _depth: int = 0) -> Any:
        if isinstance(v, bytes):
            return lua_str(v)
        if _depth > 64:
            raise LuaUsage("table nesting too deep")
        if luajit.lua_type(v) == "table":
            items = [(self.to_py(k, _depth + 1), self.to_py(x, _depth + 1)) for k, x in v.items()]
            n = len(items)
            if n and all(isinstance(k, int) and not isinstance(k, bool) for k, _ in items):
                keys = sorted(k for k, _ in items)
                if keys == list(range(1, n + 1)):
                    d = dict(items)
                    return [d[i] for i in range(1, n + 1)]
            return dict(items)
        if luajit.lua_type(v) == "function" and self.helpers is not None:
            orig = self.helpers.unwrap(v)
            if orig is not None:
                return orig
        return v

    def to_lua(self, v: Any, _depth: int = 0) -> Any:
        if v is None or isinstance(v, (bool, bytes)):
            return v
        if isinstance(v, enum.Enum):
            return int(v.value) if isinstance(v.value, int) else str(v.value).encode()
        if isinstance(v, (int, float)):
            return v
        if isinstance(v, str):
            return v.encode("utf-8")
        if luajit.lua_type(v) is not None:
            return v
        if _depth > 64:
            raise LuaUsage("value nesting too deep")
        if isinstance(v, dict):
            return self.runtime.table_from({self.to_lua(k, _depth + 1): self.to_lua(x, _depth + 1)
                                            for k, x in v.items()})
        if isinstance(v, (list, tuple, set, frozenset)) and not isinstance(v, Multi):
            return self.runtime.table_from([self.to_lua(x, _depth + 1) for x in v])
        if callable(v) and self.helpers is not None:
            return self.helpers.wrap(v)
        return v

    def table(self, obj: Any) -> Any:
        """A Python dict/list as a Lua table (recursively)."""
        return self.to_lua(obj)

    # -- calls ------------------------------------------------------------------
    def invoke(self, fn, *args):
        """Trampoline for wrapped Python callables: (True, results...) or (False, message)."""
        try:
            res = fn(*[self.to_py(a) for a in args])
        except (LuaUsage, *BOUNDARY_ERRORS, ValueError, TypeError, KeyError, OSError) as e:
            return (False, _message(e).encode())
        except LuaError as e:  # a Lua callback failed inside the binding
            return (False, _message(e).encode())
        except Exception as e:  # a bug: report it as a Lua error, never kill the engine
            log.exception("binding %r failed", getattr(fn, "__name__", fn))
            return (False, f"internal error: {e!r}".encode())
        if isinstance(res, Multi):
            return (True, *[self.to_lua(x) for x in res])
        return (True, self.to_lua(res))

    def wrap(self, fn, strip=None):
        """A Lua function calling fn with converted arguments (see module docstring)."""
        return self.helpers.wrap(fn, strip)

    def call(self, lua_fn, *py_args):
        """Call a Lua function (or a Python callable) with Python values; Python result.

        Several Lua results come back as a tuple; Lua errors raise LuaError."""
        if luajit.lua_type(lua_fn) is None and callable(lua_fn):
            return lua_fn(*py_args)
        res = lua_fn(*[self.to_lua(a) for a in py_args])
        if isinstance(res, tuple):
            return tuple(self.to_py(x) for x in res)
        return self.to_py(res)

    def find(self, s: bytes | str, pattern: str | bytes) -> bool:
        """Lua string.find(s, pattern) ~= nil (policy.pattern over wire names)."""
        if isinstance(s, str):
            s = s.encode("utf-8")
        if isinstance(pattern, str):
            pattern = pattern.encode("utf-8")
        return bool(self._find(s, pattern))

    def lua_type(self, v: Any) -> str | None:
        return luajit.lua_type(v)

    # -- request / packet wrappers (kresd/bindings/kres.py fills them) ---------------
    wrap_request_impl = None
    wrap_packet_impl = None

    def wrap_request(self, req):
        return self.wrap_request_impl(req)

    def wrap_packet(self, msg):
        return self.wrap_packet_impl(msg)


def _message(e: BaseException) -> str:
    if isinstance(e, KeyError) and e.args:
        return f"unknown key: {e.args[0]}"
    if isinstance(e, OSError) and e.strerror:
        return e.strerror
    msg = str(e)
    if isinstance(e, LuaError):
        msg = msg.split("\nstack traceback:", 1)[0]
    return msg or type(e).__name__
