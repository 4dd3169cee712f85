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
