"""`cache` namespace: open, close, size (assignable), current_size, storage,
current_storage, backends, count, stats, clear, get, prune, min_ttl, max_ttl.

Owns: opening/reopening the LMDB cache (cache.api.Cache) in the rundir and
attaching it to the engine's resolver; kresd's clear() result shape.
Must not: know the key format (cache/ does).
"""
from __future__ import annotations

import os

import dns.exception
import dns.name
import dns.rdatatype

from kresd.errors import CacheError

from .bridge import LuaUsage

BACKENDS = ("lmdb",)
_COMMON_TYPES = ("A", "AAAA", "NS", "CNAME", "DNAME", "SOA", "MX", "TXT", "PTR", "SRV", "DS",
                 "DNSKEY", "NSEC", "NSEC3", "CAA")


def _storage_path(engine, storage) -> str:
    if storage is not None and (not isinstance(storage, str) or not storage.startswith("lmdb://")):
        raise LuaUsage("cache.open(max_size, ['lmdb://path']): only the lmdb backend exists")
    if getattr(engine, "check_dir", None):  # --check-config: never the real cache
        return engine.check_dir
    if storage is None:
        return engine.storage if getattr(engine, "storage", None) else engine.rundir
    if not isinstance(storage, str) or not storage.startswith("lmdb://"):
        raise LuaUsage("cache.open(max_size, ['lmdb://path']): only the lmdb backend exists")
    path = storage[len("lmdb://"):] or "."
    return path if os.path.isabs(path) else os.path.join(engine.rundir, path)


def open_cache(engine, size, storage=None) -> bool:
    from cache.api import Cache

    if not isinstance(size, (int, float)) or isinstance(size, bool) or size <= 0:
        raise LuaUsage("cache.open(max_size, ['lmdb://path']): max_size in bytes > 0")
    path = _storage_path(engine, storage)
    if engine.cache is not None:
        engine.cache.close()
        engine.cache = None
        engine.resolver.cache = None
    os.makedirs(path, exist_ok=True)
    s = engine.settings
    c = Cache(path, int(size), min_ttl=s.cache_min_ttl, max_ttl=s.cache_max_ttl, clock=engine.clock.time)
    try:
        c.open()
    except CacheError as e:
        raise LuaUsage(f"cache.open: can't open cache in '{path}': {e}") from None
    s.cache_size = int(size)
    engine.storage = path
    engine.cache = c
    engine.resolver.cache = c
    engine.registry.ctx.cache = c
    return True


def close(engine) -> bool:
    if engine.cache is None:
        return False
    engine.cache.close()
    engine.cache = None
    engine.resolver.cache = None
    engine.registry.ctx.cache = None
    return True


def _name(text) -> dns.name.Name:
    if isinstance(text, bytes):
        return dns.name.from_wire(text, 0)[0]
    try:
        return dns.name.from_text(text)
    except dns.exception.DNSException as e:
        raise LuaUsage(f"cache: invalid name '{text}': {e}") from None


def clear(engine, name=None, exact_name=False, rr_type=None, *_rest):
    """cache.clear([name, [exact_name]]) -> {count = N}; '*.sub' = subtree"""
    c = _need(engine)
    if name is None or name in (".", "*") and not exact_name:
        total = c.count()
        c.clear()
        return {"count": total}
    if not isinstance(name, (str, bytes)):
        raise LuaUsage("cache.clear([name, [exact_name]])")
    subtree = not exact_name
    if isinstance(name, str) and name.startswith("*."):
        name, subtree = name[2:], True
    n = c.clear(_name(name), subtree=subtree)
    out = {"count": n}
    if rr_type is not None:
        out["rr_type_ignored"] = True  # the facade clears whole names only
    return out


def get(engine, name=None, rtype=None):
    """cache.get(name[, type]) -> {TYPE = {ttl = , rdata = {...}}}"""
    c = _need(engine)
    if not isinstance(name, (str, bytes)):
        raise LuaUsage("cache.get(name[, type])")
    n = _name(name)
    types = _COMMON_TYPES if rtype is None else (rtype,)
    out = {}
    for t in types:
        try:
            code = dns.rdatatype.from_text(t) if isinstance(t, str) else int(t)
        except (ValueError, dns.exception.DNSException):
            raise LuaUsage(f"cache.get: unknown type {t}") from None
        hit = c.peek_rrset(n, code)
        if hit is not None:
            rr = hit.rrset
            out[dns.rdatatype.to_text(code)] = {"ttl": rr.ttl, "rank": int(hit.rank),
                                                 "rdata": [rd.to_text() for rd in rr]}
    return out


def prune(engine, *_a):
    c = _need(engine)
    keys = c.expired_keys()
    return {"pruned": c.delete_keys(keys)}


def _need(engine):
    if engine.cache is None:
        raise LuaUsage("cache is not open (cache.size = N or cache.open(N))")
    return engine.cache


_TTL_MAX = (1 << 31) - 1


def _ttl(engine, attr, value=None):
    """cache.min_ttl([s]) / cache.max_ttl([s]), with kresd 5.6's checks: an
    open cache, min <= max, min in 0..2^31-1, max in 1..2^31-1."""
    field = "cache_" + attr
    if engine.cache is None and not getattr(engine, "check_dir", None):
        raise LuaUsage("no cache is open yet, use cache.open() or cache.size, etc.")
    if value is not None:
        s = engine.settings
        ok = isinstance(value, (int, float)) and not isinstance(value, bool) and value == int(value)
        if attr == "min_ttl" and not (ok and 0 <= value <= min(s.cache_max_ttl, _TTL_MAX)):
            raise LuaUsage("min_ttl must be smaller than maximum TTL, and in range <0, ((1u << 31) - 1)>'")
        if attr == "max_ttl" and not (ok and max(1, s.cache_min_ttl) <= value <= _TTL_MAX):
            raise LuaUsage("max_ttl must be larger than minimum TTL, and in range <1, ((1u << 31) - 1)>'")
        value = int(value)
        setattr(engine.settings, field, value)
        if engine.cache is not None:
            setattr(engine.cache, attr, value)
    return getattr(engine.settings, field)


def stats(engine) -> dict:
    if engine.cache is None:
        return {}
    return {k: v for k, v in engine.cache.stats().items() if isinstance(v, (int, float, str))}


def install(engine) -> None:
    from . import namespace

    def getter(key):
        if key == "current_size":
            return engine.settings.cache_size if engine.cache is not None else 0
        if key == "current_storage":
            return f"lmdb://{engine.storage}" if engine.cache is not None else None
        if key == "size":
            return engine.settings.cache_size
        if key == "storage":
            return f"lmdb://{getattr(engine, 'storage', None) or engine.rundir}"
        return None

    def setter(key, value):
        if key == "size":
            return open_cache(engine, value, None)
        if key == "storage":
            return open_cache(engine, engine.settings.cache_size, value)
        raise LuaUsage(f"cache.{key}: no such property (size, storage)")

    engine.storage = None
    namespace(engine, "cache", {
        "open": lambda size=None, storage=None: open_cache(engine, size, storage),
        "close": lambda: close(engine),
        "backends": lambda: list(BACKENDS),
        "count": lambda: engine.cache.count() if engine.cache is not None else 0,
        "stats": lambda: stats(engine),
        "clear": lambda *a: clear(engine, *a),
        "get": lambda *a: get(engine, *a),
        "prune": lambda *a: prune(engine, *a),
        "min_ttl": lambda v=None: _ttl(engine, "min_ttl", v),
        "max_ttl": lambda v=None: _ttl(engine, "max_ttl", v),
    }, getter=getter, setter=setter)
