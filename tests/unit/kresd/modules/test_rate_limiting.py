"""kresd/modules/rate_limiting.py: the configuration (from Lua too), the
shared table file, and the limiter the fast path's batch gets."""
import os
from pathlib import Path

import pytest

import native
from kresd.bindings.bridge import LuaUsage
from kresd.modules.rate_limiting import RateLimiting, open_table, parse_config
from kresd.modules.registry import ModuleContext
from workers.fastpath import FastPath
from workers.settings import Settings

engine_mod = pytest.importorskip("kresd.engine")

ROOT = Path(__file__).resolve().parents[4]  # the project root


def test_defaults_and_ranges():
    conf = parse_config({"rate_limit": 100})
    assert conf["instant_limit"] == 50 and conf["slip"] == 2
    assert (conf["v4_prefix"], conf["v6_prefix"], conf["capacity"]) == (24, 56, 65536)
    for bad in ({}, {"rate_limit": 0}, {"rate_limit": 1.5}, {"rate_limit": True},
                {"rate_limit": 5, "v4_prefix": 33}, {"rate_limit": 5, "v6_prefix": -1},
                {"rate_limit": 5, "capacity": 0}, {"rate_limit": 5, "instant_limit": 0},
                {"rate_limit": 5, "slip": 101}, {"rate_limit": 1001, "instant_limit": 1},
                {"rate_limit": 5, "dry_run": 1},
                {"rate_limit": 5, "exempt": ["not a net"]}, {"rate_limit": 5, "bogus": 1},
                {"rate_limit": 5, "exempt": ["10.0.0.0/8"] * 17}, "rate_limit=5"):
        with pytest.raises(LuaUsage):
            parse_config(bad)
    assert parse_config({"rate_limit": 5, "capacity": 5000})["capacity"] == 8192  # rounded up
    assert parse_config({"rate_limit": 5, "capacity": 3})["capacity"] == 1024
    assert parse_config({"rate_limit": 5, "dry_run": True})["dry_run"] is True
    with pytest.raises(LuaUsage, match="log_period.*not implemented"):
        parse_config({"rate_limit": 5, "log_period": 1000})


def test_table_file_is_shared_and_sized(tmp_path):
    import subprocess
    import sys

    a, seed_a = open_table(str(tmp_path), 1024)
    # another fork opens it while this one has it mapped (a lock left held
    # by the mapping would hang it: bounded here)
    other = subprocess.run(
        [sys.executable, "-c", "import sys; from kresd.modules.rate_limiting import open_table; "
                               "print(open_table(sys.argv[1], 1024)[1])", str(tmp_path)],
        capture_output=True, text=True, timeout=30, cwd=ROOT)
    assert other.returncode == 0, other.stderr
    assert int(other.stdout) == seed_a
    b, seed_b = open_table(str(tmp_path), 1024)
    a[8:16] = b"\1" * 8
    assert b[8:16] == b"\1" * 8 and len(a) == 8 * 1026
    assert sorted(os.listdir(tmp_path)) == ["rate_limiting.1024"]
    # one random seed per table, the same for every fork that maps it
    assert seed_a == seed_b != 0 and open_table(str(tmp_path / ".."), 1024)[1] != 0
    other = tmp_path / "other"
    other.mkdir()
    assert open_table(str(other), 1024)[1] != seed_a  # (a 1 in 2^32 chance of a false failure)


def test_the_seed_moves_prefixes_between_buckets():
    """Unseeded, the bucket of a prefix is public (FNV-1a); seeded, two
    prefixes that shared a bucket no longer do, so nobody can pick prefixes
    that exhaust a victim's bucket without knowing the table's seed."""
    import socket
    import struct

    import native

    def sa(ip):
        return struct.pack("=H", socket.AF_INET) + b"\0\0" + socket.inet_aton(ip) + bytes(20)

    def sharing(seed):
        """The /24s (of 64) whose bucket is the victim's: limited once the
        victim took the bucket's only token."""
        out = []
        for i in range(64):
            rl = native.RateLimit(bytearray(8 * 17), 16, 1, 1, 0, seed=seed)
            rl.check(sa("192.0.2.1"), 1000)
            if rl.check(sa(f"198.51.{i}.1"), 1000) != native.RL_PASS:
                out.append(i)
        return out

    unseeded = sharing(0)
    assert unseeded and sharing(0) == unseeded
    assert any(sharing(seed) != unseeded for seed in (1, 2, 3, 12345))


def test_from_lua_and_into_the_batch(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    e = engine_mod.Engine(Settings())
    e.load_config_text("modules.load('rate_limiting')\n"
                       "rate_limiting.config{rate_limit = 7, instant_limit = 3, slip = 0,\n"
                       "  v4_prefix = 16, capacity = 1024, exempt = {'10.0.0.0/8', '::1/128'}}\n")
    assert os.listdir(tmp_path) == []  # the table is opened when the fast path asks
    fast = FastPath(e.resolver, e.settings, e.clock)
    fast.sync()
    rl = fast.batch.limiter
    assert rl is not None and os.listdir(tmp_path) == ["rate_limiting.1024"]
    assert [rl.check(native.sockaddr_bytes(("192.0.99.1", 1)), 0) for _ in range(4)] == [0, 0, 0, 2]
    assert rl.check(native.sockaddr_bytes(("192.0.200.1", 1)), 0) == 2  # the same /16
    assert rl.check(native.sockaddr_bytes(("10.0.200.1", 1)), 0) == 0  # exempt
    stats = e.eval_value("rate_limiting.stats()")
    assert stats["limited"] == 2 and stats["limited_all"] == 2
    assert e.eval_value("rate_limiting.config().v4_prefix") == 16
    e.load_config_text("modules.unload('rate_limiting')\n")
    e.settings.epoch += 1
    fast.sync()
    assert fast.batch.limiter is None


def test_unconfigured_module_limits_nothing():
    m = RateLimiting(ModuleContext(Settings()))
    assert m.limiter() is None and m.layer.rate_limiter is None
    assert m.layer.fast_ok(None)  # the packet cache stays on
    assert m.stats() == {"limited": 0, "tc": 0, "dropped": 0, "limited_all": 0}


def test_dry_run_counts_but_passes(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    m = RateLimiting(ModuleContext(Settings()))
    m.config({"rate_limit": 1, "instant_limit": 1, "dry_run": True, "capacity": 1024})
    rl = m.limiter()
    assert [rl.check(native.sockaddr_bytes(("192.0.2.1", 1)), 0) for _ in range(3)] == [0, 0, 0]
    assert m.stats()["limited"] == 2 and m.stats()["limited_all"] == 0
