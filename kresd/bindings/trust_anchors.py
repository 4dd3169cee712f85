"""`trust_anchors` namespace: add_file, add, remove, set_insecure, insecure,
keysets, summary, hold_down_time, refresh_time, keep_removed.

Owns: the Lua edge of workers/dnssec/ta.py: argument checks and usage texts,
names from text or wire form, ta.TrustAnchorError -> LuaUsage (so a config
fails with file:line), installing the built-in root anchors when the engine
starts (kresd 5.6 loads its root key before the config; a config's
add_file/add for '.' replaces it, `trust_anchors.remove('.')` drops it), and
`-k keyfile` (`add_keyfile`).
Must not: parse key files, keep anchor state or validate anything
(workers/dnssec/ta.py and the validator do).
"""
from __future__ import annotations

import dns.exception
import dns.name

from kresd.errors import ConfigError
from workers.dnssec import ta

from .bridge import LuaUsage

_TIMING = {"hold_down_time", "refresh_time", "keep_removed"}


def _name(text) -> dns.name.Name:
    try:
        if isinstance(text, bytes):
            return dns.name.from_wire(text, 0)[0]
        return dns.name.from_text(text)
    except dns.exception.DNSException as e:
        raise LuaUsage(f"trust_anchors: invalid name '{text}': {e}") from None


def _usage(e: ta.TrustAnchorError) -> LuaUsage:
    return LuaUsage(f"[ta] {e}")


def add_keyfile(engine, path: str) -> None:
    """`kresd -k keyfile`: trust_anchors.add_file(keyfile) (writable, RFC 5011),
    before the config files, so a config may still remove or replace it."""
    try:
        ta.add_file(engine.settings, path)
    except ta.TrustAnchorError as e:
        raise ConfigError(f"-k {path}: {e}", "-k") from None


def _rr_table(a: ta.Anchor) -> dict:
    return {"owner": a.owner.to_wire(), "ttl": a.ttl, "type": int(a.rdtype), "key_tag": a.key_tag,
            "state": a.state.value, "timer": a.timer, "rdata": a.rdata.to_digestable(),
            "text": ta.anchor_line(a).lstrip("; ").rstrip("\n")}


def install(engine) -> None:
    from . import namespace

    s = engine.settings
    st = ta.store(s)
    if not s.trust_anchors and not st.keysets:
        ta.install_builtin(s)

    def add(text=None):
        """trust_anchors.add('. IN DS ...')"""
        if not isinstance(text, str):
            raise LuaUsage("trust_anchors.add(rr_string): a DS or DNSKEY record in zone-file form")
        try:
            ta.add(s, text)
        except ta.TrustAnchorError as e:
            raise _usage(e) from None
        return True

    def add_file(path=None, readonly=None):
        """trust_anchors.add_file(path[, readonly])"""
        if not isinstance(path, str) or not isinstance(readonly, (bool, type(None))):
            raise LuaUsage("trust_anchors.add_file(path[, readonly]): a key file with DS or DNSKEY "
                           "records of one domain; readonly = true: no RFC 5011 rewrites")
        try:
            ta.add_file(s, path, bool(readonly))
        except ta.TrustAnchorError as e:
            raise _usage(e) from None
        return True

    def remove(zone=None):
        """trust_anchors.remove(zone) -> true if there was one"""
        if not isinstance(zone, (str, bytes)):
            raise LuaUsage("trust_anchors.remove(zone)")
        return ta.remove(s, _name(zone))

    def set_insecure(names=None):
        """trust_anchors.set_insecure({'name', ...}): replaces the negative anchors"""
        if isinstance(names, dict) and not names:
            names = []
        if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
            raise LuaUsage("trust_anchors.set_insecure({'name', ...}): a list of domain names")
        try:
            ta.set_insecure(s, names)
        except ta.TrustAnchorError as e:
            raise _usage(e) from None
        return True

    def summary(owner=None):
        """trust_anchors.summary([owner]) -> text"""
        return ta.summary(s, None if owner is None else _name(owner))

    def getter(key):
        if key == "insecure":
            return list(st.insecure)
        if key == "keysets":
            return {n.to_wire(): [_rr_table(a) for a in ks.anchors] for n, ks in st.keysets.items()}
        if key in _TIMING:
            return getattr(st, key)
        return None

    def setter(key, value):
        if key == "insecure":
            return set_insecure(value)
        if key in ("hold_down_time", "keep_removed"):
            if not isinstance(value, (int, float)) or isinstance(value, bool) or value < 0:
                raise LuaUsage(f"trust_anchors.{key} = number >= 0"
                               + (" (milliseconds, e.g. 30 * day)" if key == "hold_down_time" else ""))
            return setattr(st, key, int(value))
        if key == "refresh_time":
            if value is not None and (not isinstance(value, (int, float)) or isinstance(value, bool)
                                      or value <= 0):
                raise LuaUsage("trust_anchors.refresh_time = milliseconds > 0 (e.g. 12 * hour) or nil")
            return setattr(st, key, None if value is None else int(value))
        raise LuaUsage(f"trust_anchors.{key}: no such property")

    namespace(engine, "trust_anchors", {
        "add": add, "add_file": add_file, "remove": remove, "set_insecure": set_insecure,
        "summary": summary,
    }, getter=getter, setter=setter)
