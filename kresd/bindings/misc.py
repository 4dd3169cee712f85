"""Top-level kresd functions: option, mode, reorder_RR, verbose, log_level,
hostname, env, help, quit, user, todname, tojson, fromjson, logging helpers.

Owns: mapping kresd's query-flag names onto Settings fields (flags without a
Settings field are accepted and remembered in engine.options), privilege
dropping, JSON conversion, the help text.
Must not: touch sockets or the cache.
"""
from __future__ import annotations

import grp
import logging
import os
import pwd
import socket

import dns.exception
import dns.name

from kresd import log as klog
from workers.settings import GlueMode

from .bridge import LuaUsage

log = logging.getLogger("kresd.lua")

# kresd lib/rplan.h kr_qflags names; mapped ones change Settings.
_FLAG_FIELDS = {
    "NO_MINIMIZE": ("no_minimize", False), "ALLOW_LOCAL": ("allow_local", False),
    "NO_EDNS": ("no_edns", False), "NO_0X20": ("no_0x20", False),
    "NO_IPV4": ("ipv4", True), "NO_IPV6": ("ipv6", True),
}
KNOWN_FLAGS = frozenset(_FLAG_FIELDS) | frozenset((
    "NO_THROTTLE", "TCP", "RESOLVED", "AWAIT_IPV4", "AWAIT_IPV6", "AWAIT_CUT", "CACHED",
    "NO_CACHE", "EXPIRING", "DNSSEC_WANT", "DNSSEC_BOGUS", "DNSSEC_INSECURE", "DNSSEC_CD",
    "STUB", "ALWAYS_CUT", "DNSSEC_WEXPAND", "PERMISSIVE", "STRICT", "BADCOOKIE_AGAIN",
    "CNAME", "REORDER_RR", "TRACE", "DNSSEC_NODS", "DNSSEC_OPTOUT", "NONAUTH", "FORWARD",
    "DNS64_MARK", "CACHE_TRIED", "NO_NS_FOUND", "PKT_IS_SANE", "DNS64_DISABLE"))

HELP = """\
help()
    show this help
quit()
    quit
hostname([name])
    hostname
package_version()
    return package version
user(name[, group])
    change process user (and group)
verbose(true|false)
    toggle verbose mode
log_level(level)
    logging level (crit, err, warning, notice, info or debug)
option(opt[, new_val])
    get/set server option
mode(strict|normal|permissive)
    set resolver strictness level
reorder_RR([true|false])
    set/get reordering of RRs within RRsets
resolve(name, type[, class, flags, callback])
    resolve query, callback when it's finished
todname(name)
    convert name to wire format
tojson(val)
    convert value to JSON text
fromjson(str)
    convert JSON text to a value
net
    network configuration
cache
    network configuration
modules
    modules configuration
kres
    resolver services
trust_anchors
    configure trust anchors
debugging
    debug configuration
event
    timers and events
worker
    worker information and statistics"""


def _bool_arg(v, usage):
    if v is not None and not isinstance(v, bool):
        raise LuaUsage(usage)
    return v


def option(engine, name=None, value=None):
    """option(name[, true|false]) -> current value"""
    usage = "option(name[, true|false]): name is one of kresd's query flags, e.g. 'NO_MINIMIZE'"
    if not isinstance(name, str):
        raise LuaUsage(usage)
    name = name.upper()
    if name not in KNOWN_FLAGS:
        raise LuaUsage(f"option '{name}' does not exist; {usage}")
    _bool_arg(value, usage)
    s = engine.settings
    if name in _FLAG_FIELDS:
        field, negate = _FLAG_FIELDS[name]
        if value is not None:
            setattr(s, field, (not value) if negate else value)
        cur = getattr(s, field)
        return (not cur) if negate else bool(cur)
    if name in ("PERMISSIVE", "STRICT"):
        mode_ = GlueMode.PERMISSIVE if name == "PERMISSIVE" else GlueMode.STRICT
        if value is not None:
            s.glue_mode = mode_ if value else GlueMode.NORMAL
        return s.glue_mode == mode_
    if name == "REORDER_RR":
        return reorder_rr(engine, value)
    if value is not None:
        engine.options[name] = value
    return engine.options.get(name, False)


def mode(engine, value=None):
    """mode('strict'|'normal'|'permissive') -> current mode"""
    if value is not None:
        if not isinstance(value, str) or value.upper() not in GlueMode.__members__:
            raise LuaUsage("mode('strict'|'normal'|'permissive')")
        engine.settings.glue_mode = GlueMode[value.upper()]
    return engine.settings.glue_mode.name.lower()


def reorder_rr(engine, value=None):
    """reorder_RR([true|false])"""
    _bool_arg(value, "reorder_RR([true|false])")
    if value is not None:
        engine.settings.reorder_rr = bool(value)
    return bool(engine.settings.reorder_rr)


def verbose(engine, value=None):
    """verbose(true|false) -> current"""
    _bool_arg(value, "verbose(true|false)")
    if value is not None:
        engine.settings.verbose = value
        engine.log_level = "debug" if value else klog.DEFAULT_LEVEL
        klog.set_level(engine.log_level)
    return bool(engine.settings.verbose)


def log_level(engine, level=None):
    """log_level([level]) -> current level"""
    if level is not None:
        if not isinstance(level, str) or level not in klog.LEVELS:
            raise LuaUsage(f"log_level(level): level is one of {', '.join(klog.LEVELS)}")
        engine.log_level = level
        klog.set_level(level)
    return klog.get_level()


def user(engine, name=None, group=None):
    """user(name[, group]): drop privileges"""
    if not isinstance(name, str) or (group is not None and not isinstance(group, str)):
        raise LuaUsage("user(name[, group])")
    try:
        pw = pwd.getpwnam(name)
    except KeyError:
        raise LuaUsage("invalid user name") from None
    gid = pw.pw_gid
    if group is not None:
        try:
            gid = grp.getgrnam(group).gr_gid
        except KeyError:
            raise LuaUsage("invalid group name") from None
    if engine.loop is None:  # during config: the daemon drops after binding (workers/main.py)
        engine.pending_user = (pw.pw_uid, gid)
        return True
    try:
        if os.getgid() != gid or os.getegid() != gid:
            os.setgroups([])
            os.setgid(gid)
        if os.getuid() != pw.pw_uid:
            os.setuid(pw.pw_uid)
    except PermissionError:
        raise LuaUsage("Operation not permitted") from None
    from kresd.supervisor import follow_leader_again

    follow_leader_again()  # the credential change cleared the leader's death signal
    return True


def name_to_wire(name, usage: str) -> bytes:
    """Text name -> wire format, or a Lua usage error naming the caller."""
    if not isinstance(name, str):
        raise LuaUsage(f"{usage}: expected a domain name string")
    try:
        return dns.name.from_text(name).to_wire()
    except dns.exception.DNSException as e:
        raise LuaUsage(f"{usage}: invalid name '{name}': {e}") from None


def todname(name=None):
    """todname(name) -> wire-format name (Lua string)"""
    return name_to_wire(name, "todname(name)")


def tojson(value=None):
    """tojson(value) -> JSON text"""
    def clean(v):
        if isinstance(v, bytes):
            return v.decode("utf-8", "replace")
        if isinstance(v, dict):
            return {str(clean(k)): clean(x) for k, x in v.items()}
        if isinstance(v, list):
            return [clean(x) for x in v]
        if v is None or isinstance(v, (bool, int, float, str)):
            return v
        return str(v)
    import json  # on first use, not at boot

    return json.dumps(clean(value), separators=(",", ":"))


def fromjson(text=None):
    """fromjson(text) -> value"""
    if not isinstance(text, str):
        raise LuaUsage("fromjson(text)")
    import json  # on first use, not at boot

    try:
        return json.loads(text)
    except ValueError as e:
        raise LuaUsage(f"fromjson: {e}") from None


def _log_fn(level):
    def fn(*args):
        text = " ".join(str(a) for a in args)
        klog.logger(klog.Group.SYSTEM).log(getattr(logging, level), "%s", text)
    return fn


def install(engine) -> None:
    g = engine.lua.globals()
    b = engine.lua_bridge
    funcs = {
        "option": lambda *a: option(engine, *a),
        "mode": lambda *a: mode(engine, *a),
        "reorder_RR": lambda *a: reorder_rr(engine, *a),
        "verbose": lambda *a: verbose(engine, *a),
        "log_level": lambda *a: log_level(engine, *a),
        "user": lambda *a: user(engine, *a),
        "hostname": lambda name=None: socket.gethostname(),
        "help": lambda: HELP,
        "quit": lambda code=0: engine.quit(int(code or 0)),
        "todname": todname,
        "tojson": tojson,
        "fromjson": fromjson,
        "package_version": lambda: "5.6.0",
        "warn": _log_fn("WARNING"),
        "panic": _raise_panic,
        "log_error": _log_fn("ERROR"), "log_warn": _log_fn("WARNING"),
        "log_notice": _log_fn("INFO"), "log_info": _log_fn("INFO"), "log_debug": _log_fn("DEBUG"),
    }
    for name, fn in funcs.items():
        g[name.encode()] = b.wrap(fn)
    g[b"env"] = b.to_lua(dict(os.environ))


def _raise_panic(*args):
    raise LuaUsage(" ".join(str(a) for a in args))
