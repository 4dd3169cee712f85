"""kresd/modules/predict.py and the expiring test it relies on
(workers/layers/cache.py is_expiring, kresd's formula)."""
import dns.name
import pytest

from kresd.bindings.bridge import LuaUsage
from kresd.modules.predict import Predict
from kresd.modules.registry import ModuleContext
from workers.layers.cache import is_expiring
from workers.settings import Settings


@pytest.mark.parametrize("orig,ttl,expected", [
    (3600, 3600, False), (3600, 41, False), (3600, 40, True), (6, 5, True), (6, 6, False), (0, 1, False)])
def test_is_expiring(orig, ttl, expected):
    assert is_expiring(orig, ttl) is expected


def test_config_and_refresh_gap(monkeypatch):
    m = Predict(ModuleContext(Settings()))
    m.config({"window": 30, "period": 0})
    assert (m.window, m.period) == (30, 0)
    with pytest.raises(LuaUsage):
        m.config({"window": -1})
    calls = []

    class Lua:
        class runtime:
            @staticmethod
            def globals():
                return {b"resolve": lambda *a: calls.append(a)}

            @staticmethod
            def table_from(x):
                return x
    m.ctx.lua = Lua
    name = dns.name.from_text("a.example.")
    for _ in range(3):
        m.refresh(name, 1)
    assert len(calls) == 1 and calls[0][:3] == (b"a.example.", 1, 1)


class FakeScheduler:
    def __init__(self):
        self.timers = []

    def call_later(self, delay, fn):
        self.timers.append((delay, fn))
        return len(self.timers)

    def cancel(self, handle):
        pass


class FakeStats:
    def __init__(self):
        self.seen = []

    def frequent(self):
        return [{"name": n, "type": t, "count": 1} for n, t in self.seen]

    def clear_frequent(self):
        self.seen = []


class FakeRegistry:
    def __init__(self, stats):
        self.stats = stats

    def get(self, name):
        return self.stats if name == "stats" else None


def test_time_of_day_prediction():
    """kresd's predict.lua: names sampled in an epoch are prefetched when that
    epoch comes round again, and names seen at a regular interval are
    prefetched for the next epoch (generate())."""
    import time as _time

    clock = {"minute": 0}

    def localtime():
        m = clock["minute"]
        return _time.struct_time((2026, 1, 1, m // 60 % 24, m % 60, 0, 0, 1, 0))

    stats, sched, resolved = FakeStats(), FakeScheduler(), []

    class Lua:
        class runtime:
            @staticmethod
            def globals():
                return {b"resolve": lambda name, t, c, opts: resolved.append((name, t, opts))}

            @staticmethod
            def table_from(x):
                return x

    ctx = ModuleContext(Settings(), lua=Lua, registry=FakeRegistry(stats), scheduler=sched)
    m = Predict(ctx, localtime=localtime)
    m.config({"window": 10, "period": 6})  # 6 windows of 10 minutes, the hour repeats
    assert m.epoch() == 1 and sched.timers and 120 <= sched.timers[-1][0] <= 240
    stats.seen = [("daily.example.", 1)]
    m.process()  # epoch 1 samples daily.example
    assert m.log[1] == {(1, "daily.example.")} and not m.queue
    for minute in range(10, 60, 10):  # epochs 2..6 see nothing of it
        clock["minute"] = minute
        m.process()
    clock["minute"] = 60  # epoch 1 again: what it saw last time is queued and drained
    sched.timers.clear()
    m.process()
    assert m.queue == {(1, "daily.example.")}
    drain = [fn for d, fn in sched.timers if d == 0]
    assert drain
    drain[0]()
    assert resolved == [(b"daily.example.", 1, [b"NO_CACHE"])] and not m.queue
    # a regular pattern (kresd's generate(): for i in 1..period/2-1, names in
    # both epoch now-i-1 and now-2i-1): seen in epochs 1 and 3, it is queued
    # for epoch 5 (i = 2), not for epoch 4
    m.queue.clear()
    m.log = {3: {(28, "every-other.example.")}, 1: {(28, "every-other.example.")}}
    assert m.generate(4) == 0 and not m.queue
    assert m.generate(5) == 1 and m.queue == {(28, "every-other.example.")}


def test_prediction_off_with_period_one():
    m = Predict(ModuleContext(Settings(), scheduler=FakeScheduler()))
    m.config({"period": 1})
    assert m.epoch() is None and m.generate(None) == 0 and m.sample(None) == 0
