"""kresd/engine.py: config loading, errors with file:line, post-config, console eval."""
from __future__ import annotations

import pytest

from cache import Cache
from kresd.engine import Engine, FakeScheduler
from kresd.errors import ConfigError
from workers.settings import Settings


@pytest.fixture
def eng(tmp_path):
    e = Engine(Settings(), rundir=str(tmp_path), scheduler=FakeScheduler())
    yield e
    e.stop()


def test_unknown_function_names_it_with_line(eng):
    with pytest.raises(ConfigError) as ei:
        eng.load_config_text("option('NO_MINIMIZE', true)\n\nfoo()\n", name="my.conf")
    e = ei.value
    assert (e.file, e.line) == ("my.conf", 3)
    assert "foo" in e.message and str(e).startswith("my.conf:3: ")


def test_syntax_error_line(eng):
    with pytest.raises(ConfigError) as ei:
        eng.load_config_text("x = 1\ny = = 2\n", name="c")
    assert ei.value.line == 2


def test_syntax_error_line_with_a_long_path(eng):
    """Lua shortens a long source name ("...<tail>") in its messages; the line stays."""
    name = "/tmp/" + "d" * 80 + "/kresd.conf"
    with pytest.raises(ConfigError) as ei:
        eng.load_config_text("x = 1\n\ny = = 2\n", name=name)
    assert ei.value.line == 3 and str(ei.value).startswith(name + ":3: ")


def test_binding_usage_error_points_at_config_line(eng):
    with pytest.raises(ConfigError) as ei:
        eng.load_config_text("-- comment\nnet.listen('127.0.0.1', 53)\nnet.listen(42)\n", name="c")
    assert ei.value.line == 3 and "net.listen(" in ei.value.message


def test_runtime_error_in_nested_function_reports_config_line(eng):
    text = "local function f()\n  option('NO_SUCH_FLAG', true)\nend\n\nf()\n"
    with pytest.raises(ConfigError) as ei:
        eng.load_config_text(text, name="c")
    assert ei.value.line == 2 and "NO_SUCH_FLAG" in ei.value.message


def test_load_config_file_and_missing_file(eng, tmp_path):
    p = tmp_path / "conf.lua"
    p.write_text("mode('permissive')\n")
    eng.load_config(str(p))
    assert eng.settings.glue_mode.name == "PERMISSIVE"
    with pytest.raises(ConfigError) as ei:
        eng.load_config(str(tmp_path / "nope"))
    assert "cannot read" in ei.value.message


def test_post_config_defaults(eng, tmp_path):
    eng.post_config()
    assert [(e.addr, e.port) for e in eng.settings.listen] == [("127.0.0.1", 53), ("::1", 53)]
    # kresd opens the default cache in the rundir when the config did not
    assert isinstance(eng.cache, Cache) and eng.cache.is_open and eng.resolver.cache is eng.cache
    assert (eng.cache.path, eng.cache.size) == (str(tmp_path), 100 * 1024 * 1024)  # kresd: 100 MB
    assert (tmp_path / "data.mdb").exists()


def test_post_config_keeps_configured(eng):
    eng.load_config_text("net = { '127.0.0.2' }\ncache.size = 3 * MB\n")
    cache = eng.cache
    eng.post_config()
    assert [e.addr for e in eng.settings.listen] == ["127.0.0.2"]
    assert eng.cache is cache and eng.settings.cache_size == 3 * 1024 * 1024


def test_constants(eng):
    assert eng.eval("sec, minute, hour, day") == "1000\n60000\n3600000\n86400000"
    assert eng.eval("kB, MB, GB") == f"1024\n{1024**2}\n{1024**3}"


def test_eval_errors_do_not_kill_engine(eng):
    assert eng.eval("nosuch()").startswith("error: ")
    assert "nosuch" in eng.eval("nosuch()")
    assert eng.eval("error('boom')") == "error: boom"
    assert eng.eval("(((").startswith("error: ")
    assert eng.eval("1 + 1") == "2"
    assert eng.eval("x = 5") == ""
    assert eng.eval("x") == "5"


def test_eval_table_printer(eng):
    out = eng.eval("{a = 1, b = {'x'}}")
    assert '["a"] = 1' in out and '"x"' in out


def test_globals_from_config_visible_in_console(eng):
    eng.load_config_text("answer = 42\nfunction double(n) return 2 * n end\n")
    assert eng.eval("double(answer)") == "84"


def test_python_not_reachable_from_lua(eng):
    assert eng.eval("python") == "nil"


def test_quit_in_config(eng):
    eng.load_config_text("quit()\n")
    assert eng.quit_requested == 0


def test_default_modules_loaded_before_config(eng):
    from kresd.modules.registry import BUILTINS

    for name in ("policy", "priming", "refuse_nord"):
        if name in BUILTINS:
            assert name in eng.registry.list()
    eng.load_config_text("if priming then modules.unload('priming') end\n")
    assert "priming" not in eng.registry.list()
    assert eng.eval("priming") == "nil"
