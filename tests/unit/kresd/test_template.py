"""Deckard's kresd.j2, rendered for every scenario, loads in the engine unchanged.

Each scenario's rendering (QMIN on and off where the header leaves it open)
is saved as `config` in a fresh working dir and loaded with Engine.load_config
+ post_config; the template's own self-check assertions must hold, and the
settings must say what the template asked for.

The scenarios and the template are the shared data (tests/shared_data.py):
without them every case is skipped with the path looked for; with fewer
scenarios than the minimum, test_enough_scenarios fails.
"""
from __future__ import annotations

import dns.name
import pytest

from kresd.engine import Engine, FakeScheduler
from tests import shared_data
from tests.scenarios import config as sconfig
from tests.scenarios import rpl, template
from workers.settings import GlueMode, Settings, default_root_hints
from workers.zonecut import root_hints


def _cases():
    if not shared_data.scenarios_present():
        yield shared_data.skipped_param(2)
        return
    for path in shared_data.scenario_files():
        ctx = sconfig.context(rpl.parse_file(path))
        for qmin in sconfig.qmin_modes(ctx):
            yield pytest.param(path, qmin, id=f"{path.stem}-{'qmin' if qmin else 'noqmin'}")


def test_enough_scenarios():
    assert len(shared_data.require_scenarios()) >= shared_data.MIN_SCENARIOS
    shared_data.require_template()


@pytest.mark.parametrize("path, qmin", list(_cases()))
def test_template_loads(path, qmin, tmp_path, monkeypatch):
    shared_data.require_template()
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
        # hints.root({[ROOT_NAME] = ROOT_ADDR}); without stub-addr ('') the built-in set
        if ctx.root_addr:
            assert root_hints(settings) == {dns.name.from_text(ctx.root_name): [ctx.root_addr]}
        else:
            assert root_hints(settings) == default_root_hints()
    finally:
        eng.stop()
