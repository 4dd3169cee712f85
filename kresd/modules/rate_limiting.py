"""rate_limiting: per-client-subnet rate limiting of UDP answers, shared by all forks.

Owns: the configuration (kresd 6's `rate-limiting` names, with underscores as
a Lua table takes them; dnsdist's MaxQPSIPRule is the same idea):

    modules.load('rate_limiting')
    rate_limiting.config{
        rate_limit = 100,     -- queries per second per prefix (required)
        instant_limit = 50,   -- queries at once per prefix (the bucket size)
        slip = 2,             -- every 2nd limited query gets TC=1, the others are dropped;
                              -- 0: drop all, 1: TC=1 to all
        v4_prefix = 24,       -- an IPv4 client's bucket is its /24
        v6_prefix = 56,       -- an IPv6 client's bucket is its /56
        capacity = 65536,     -- buckets in the table (rounded up to a power of two;
                              -- hashed: prefixes may share one, which only limits sooner)
        exempt = {'127.0.0.0/8', '::1/128'},  -- never limited (at most 16 subnets)
        dry_run = false,      -- count limited queries in stats(), limit nothing
    }
    rate_limiting.stats()   -- {limited=, tc=, dropped=} of this fork, limited_all of every fork

the shared table: the file `rate_limiting.<capacity>` in the rundir (the
working directory of every fork), MAP_SHARED, 8 bytes of counters, one
u64 bucket per slot and the hash seed (random, written by the first fork);
the buckets are updated in C with atomic operations and no lock
(native/ratelimit.c, its twin native/pure.py RateLimit). The file is opened
when the fast path first asks for the limiter (so --check-config writes
nothing in the rundir); forks with the same capacity share one file.
The check runs in C on every UDP datagram before anything answers it
(kn_udp_batch: packet-cache hits and misses alike). TCP is never limited (as
kresd 6: a client limited over UDP retries over TCP after a TC=1).
Differences from kresd 6, kept: one bucket per configured prefix (kresd 6
tracks the address and several prefixes with fixed multipliers), drained
linearly (a token bucket, as dnsdist's MaxQPSIPRule; kresd 6 decays
exponentially); instant_limit at most 1000000. kresd 6's `log-period` is not
implemented: giving it is an error.
Must not: limit TCP, or change what an unlimited client gets.
"""
from __future__ import annotations

import fcntl
import ipaddress
import mmap
import os
import secrets
import sys
from typing import Any

import native
from kresd.bindings.bridge import LuaUsage
from workers.layer import Layer

from .registry import Module, builtin

USAGE = ("rate_limiting.config{rate_limit = N, instant_limit = N, slip = N, v4_prefix = 24, "
         "v6_prefix = 56, capacity = 65536, exempt = {'subnet', ...}, dry_run = false}")
FILE = "rate_limiting.{}"
DEFAULTS = {"instant_limit": 50, "slip": 2, "v4_prefix": 24, "v6_prefix": 56, "capacity": 1 << 16}
_RANGES = {"rate_limit": (1, 0xFFFFFFFF), "instant_limit": (1, native.RL_INSTANT_MAX),
           "slip": (0, 100), "v4_prefix": (0, 32), "v6_prefix": (0, 128),
           "capacity": (1, 1 << 24)}


class RateLimitLayer(Layer):
    """Consents to the fast path (the limit is applied before it, in C) and
    hands FastPath the limiter (workers/fastpath.py reads `rate_limiter`)."""

    name = "rate_limiting"
    fast_miss = True  # workers/fastmiss.py: the limit is applied in C before any fast path

    def __init__(self, module: "RateLimiting"):
        self.module = module

    def fast_ok(self, pq) -> bool:
        return True

    @property
    def rate_limiter(self):
        return self.module.limiter()


def _int(key: str, value: Any) -> int:
    lo, hi = _RANGES[key]
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value != int(value):
        raise LuaUsage(f"{USAGE}: {key} must be an integer")
    if not lo <= int(value) <= hi:
        raise LuaUsage(f"{USAGE}: {key} must be in {lo}..{hi}")
    return int(value)


def _nets(value: Any) -> list:
    items = list(value.values()) if isinstance(value, dict) else value
    if isinstance(items, str):
        items = [items]
    if not isinstance(items, (list, tuple)):
        raise LuaUsage(f"{USAGE}: exempt is a list of subnets")
    if len(items) > native.RL_EXEMPT_MAX:
        raise LuaUsage(f"{USAGE}: at most {native.RL_EXEMPT_MAX} exempt subnets")
    try:
        return [ipaddress.ip_network(str(n), strict=False) for n in items]
    except ValueError as e:
        raise LuaUsage(f"{USAGE}: exempt: {e}") from None


def parse_config(arg: Any) -> dict:
    """The validated configuration of a rate_limiting.config{...} table."""
    if not isinstance(arg, dict):
        raise LuaUsage(USAGE)
    for key in arg:
        if key in ("log_period", "log-period"):
            raise LuaUsage("rate_limiting: log_period (kresd 6) is not implemented")
        if key not in _RANGES and key not in ("exempt", "dry_run"):
            raise LuaUsage(f"{USAGE}: unknown key '{key}'")
    if "rate_limit" not in arg:
        raise LuaUsage(f"{USAGE}: rate_limit is required")
    conf = {k: _int(k, arg.get(k, DEFAULTS.get(k))) for k in _RANGES}
    if conf["rate_limit"] > 1000 * conf["instant_limit"]:
        raise LuaUsage(f"{USAGE}: rate_limit must be at most 1000 * instant_limit (as kresd 6)")
    conf["capacity"] = max(1024, 1 << (conf["capacity"] - 1).bit_length())  # as kresd 6: a power of two
    conf["exempt"] = _nets(arg.get("exempt", []))
    dry_run = arg.get("dry_run", False)
    if not isinstance(dry_run, bool):
        raise LuaUsage(f"{USAGE}: dry_run must be true or false")
    conf["dry_run"] = dry_run
    return conf


def open_table(directory: str, capacity: int) -> tuple[mmap.mmap, int]:
    """The shared table file of `capacity` buckets, mapped MAP_SHARED (created
    zeroed), and its hash seed: a random u32 in the word after the buckets,
    written once under an flock by the first fork, so every fork hashes alike
    and no client can choose prefixes that land in another's bucket."""
    size = 8 * (capacity + 2)
    path = os.path.join(directory, FILE.format(capacity))
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        if os.fstat(fd).st_size < size:
            os.ftruncate(fd, size)  # growing a file only adds zeros
        table = mmap.mmap(fd, size, mmap.MAP_SHARED, mmap.PROT_READ | mmap.PROT_WRITE)
        at = 8 * (capacity + 1)
        seed = int.from_bytes(table[at:at + 8], "little")
        if not seed:
            seed = secrets.randbelow(0xFFFFFFFF) + 1
            table[at:at + 8] = seed.to_bytes(8, "little")
        return table, seed & 0xFFFFFFFF
    finally:
        # unlock explicitly: the mapping holds a dup of fd, which would keep
        # an flock held until it is unmapped
        fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)


@builtin
class RateLimiting(Module):
    name = "rate_limiting"

    def __init__(self, ctx):
        super().__init__(ctx)
        self.conf: dict | None = None
        self._limiter = None
        self._table: mmap.mmap | None = None
        self.layer = RateLimitLayer(self)

    def config(self, arg: Any = None) -> Any:
        if arg is None:
            return self._conf_view()
        self.conf = parse_config(arg)
        self._limiter = None  # rebuilt with the new settings on the next use
        return self._conf_view()

    def _conf_view(self) -> Any:
        if self.conf is None:
            return None
        view = {k: v for k, v in self.conf.items() if k != "exempt"}
        view["exempt"] = [str(n) for n in self.conf["exempt"]]
        return view

    def limiter(self):
        """The native.RateLimit of the configuration (None until configured)."""
        conf = self.conf
        if conf is None:
            return None
        if self._limiter is None:
            self._table, seed = open_table(os.getcwd(), conf["capacity"])
            self._limiter = native.RateLimit(
                self._table, conf["capacity"], conf["rate_limit"], conf["instant_limit"],
                conf["slip"], conf["v4_prefix"], conf["v6_prefix"], conf["exempt"], conf["dry_run"],
                seed=seed)
        return self._limiter

    def stats(self) -> dict:
        rl = self._limiter
        if rl is None:
            return {"limited": 0, "tc": 0, "dropped": 0, "limited_all": 0}
        limited, tc, dropped = rl.counts()
        shared = int.from_bytes(self._table[0:8], sys.byteorder)
        return {"limited": limited, "tc": tc, "dropped": dropped, "limited_all": shared}

    def deinit(self) -> None:
        self._limiter = None  # the batch drops its reference at the next consent

    def lua_api(self) -> dict:
        return {"config": self.config, "stats": self.stats}
