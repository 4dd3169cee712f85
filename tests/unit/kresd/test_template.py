"""Deckard's kresd.j2, rendered for every scenario, loads in the engine unchanged.

Each scenario's rendering (QMIN on and off where the header leaves it open)
is saved as `config` in a fresh working dir and loaded with Engine.load_config
+ post_config; the template's own self-check assertions must hold, and the
settings must say what the template asked for.
"""
from __future__ import annotations

from pathlib import Path

import pytest

from kresd.engine import Engine, FakeScheduler
from tests.scenarios import config as sconfig
from tests.scenarios import rpl, template
from workers.settings import GlueMode, Settings

SCENARIOS = sorted(Path("/work/shared/scenarios/resolver").glob("*.rpl"))


def _cases():
    for path in SCENARIOS:
        ctx = sconfig.context(rpl.parse_file(path))
        for qmin in sconfig.qmin_modes(ctx):
            yield pytest.param(path, qmin, id=f"{path.stem}-{'qmin' if qmin else 'noqmin'}")


@pytest.mark.skipif(not SCENARIOS, reason="no scenarios in /work/shared/scenarios/resolver")
@pytest.mark.parametrize("path, qmin", list(_cases()))
def test_template_loads(path, qmin, tmp_path, monkeypatch):
    ctx = sconfig.context(rpl.parse_file(path))
    template.render(ctx, qmin, tmp_path)
    monkeypatch.chdir(tmp_path)
    settings = Settings()
    sched = FakeScheduler()
    eng = Engine(settings, rundir=str(tmp_path), scheduler=sched)
    try:
        eng.load_config(str(tmp_path / "config"))
        eng.post_config()
        assert [e.addr for e in settings.listen] == [ctx.self_addr]
        assert settings.no_minimize is (not qmin)
        assert settings.allow_local is (not ctx.do_not_query_localhost)
        assert settings.glue_mode is (GlueMode.NORMAL if ctx.harden_glue else GlueMode.PERMISSIVE)
        assert (settings.ipv4, settings.ipv6) == (ctx.do_ip4, ctx.do_ip6)
        assert settings.edns_bufsize == 4096 and settings.cache_size == 2 * 1024 * 1024
        assert eng.cache is not None and eng.resolver.cache is eng.cache
        assert "priming" not in eng.registry.list()
        assert eng.lua.globals()[b"ev"] is not None
        assert sched.advance(0) >= 1  # event.after(0, ...) fires
        if ctx.trust_anchors:
            assert settings.trust_anchors
        else:
            assert not settings.trust_anchors  # trust_anchors.remove('.')
        assert len(settings.negative_trust_anchors) == len(ctx.negative_trust_anchors)
    finally:
        eng.stop()
