"""Modules from Lua: user Lua modules in the pipeline, and the Lua face of Python modules."""
from __future__ import annotations

import dns.message
import dns.rcode
import pytest

from kresd.engine import Engine, FakeScheduler
from kresd.errors import ConfigError
from kresd.modules.registry import BUILTINS, Module
from tests.unit.workers.test_resolve import make_net
from workers.settings import Settings
from workers.transport import drive_sync

COUNTER = """
local M = {}
M.finished = 0
M.begun = 0
M.layer = {
    begin = function(state, req)
        M.begun = M.begun + 1
        M.last_qtype = req:resolved().stype
        return state
    end,
    finish = function(state, req)
        M.finished = M.finished + 1
        M.last_rcode = req.answer:rcode()
        M.last_qname = kres.dname2str(req.answer:qname())
        return state
    end,
}
function M.init(self) M.inited = true end
function M.deinit(self) counter_deinit = true end
function M.config(conf) M.conf = conf end
return M
"""


@pytest.fixture
def eng(tmp_path):
    e = Engine(Settings(), rundir=str(tmp_path), scheduler=FakeScheduler())
    e.settings.priming = False
    e.load_config_text("trust_anchors.remove('.')")  # the fake hierarchy is unsigned
    yield e
    e.stop()


def ask(eng, net, name, rdtype="A"):
    q = dns.message.make_query(name, rdtype)
    return drive_sync(eng.resolver.resolve(q, client=("127.0.0.1", 5000)), net)


def test_user_lua_module_counts_finish(eng, tmp_path):
    (tmp_path / "counter.lua").write_text(COUNTER)
    eng.load_config_text("modules = { counter = { limit = 3 } }\n")
    assert eng.eval("counter.inited") == "true"
    assert eng.eval("counter.conf.limit") == "3"
    assert "counter" in eng.registry.list()
    net, _ = make_net()
    for _ in range(3):
        assert ask(eng, net, "www.example.com.").rcode() == dns.rcode.NOERROR
    assert eng.eval("counter.finished") == "3"
    assert eng.eval("counter.begun") == "3"
    assert eng.eval("counter.last_qtype") == "1"
    assert eng.eval("counter.last_qname") == '"www.example.com."'
    assert eng.eval("counter.last_rcode") == "0"
    assert eng.eval("modules.unload('counter')") == "true"
    assert eng.eval("counter_deinit") == "true"
    ask(eng, net, "www.example.com.")
    assert eng.eval("counter") == "nil"


def test_lua_module_in_directory_and_ordering(eng, tmp_path):
    d = tmp_path / "answerer"
    d.mkdir()
    d.joinpath("init.lua").write_text("""
return { layer = { begin = function(state, req)
    req.answer:rcode(kres.rcode.NXDOMAIN)
    return kres.DONE
end } }
""")
    (tmp_path / "counter.lua").write_text(COUNTER)
    eng.load_config_text("modules.load('counter')\nmodules.load('answerer < counter')\n")
    order = eng.registry.list()
    assert order.index("answerer") < order.index("counter")
    net, _ = make_net()
    assert ask(eng, net, "www.example.com.").rcode() == dns.rcode.NXDOMAIN
    assert net.sent == 0
    assert eng.eval("counter.begun") == "0"  # DONE in begin stops the walk
    assert eng.eval("counter.finished") == "1"


def test_lua_module_errors(eng, tmp_path):
    (tmp_path / "broken.lua").write_text("return 42\n")
    (tmp_path / "syntax.lua").write_text("return {\n")
    for name, text in (("broken", "did not return a table"), ("syntax", "syntax"),
                       ("nonexistent_mod", "not found")):
        with pytest.raises(ConfigError) as ei:
            eng.load_config_text(f"modules.load('{name}')\n", name="c")
        assert text in ei.value.message and ei.value.line == 1


def test_failing_lua_hook_does_not_fail_request(eng, tmp_path):
    (tmp_path / "bad.lua").write_text("return { layer = { finish = function() error('oops') end } }\n")
    eng.load_config_text("modules.load('bad')\n")
    net, _ = make_net()
    assert ask(eng, net, "www.example.com.").rcode() == dns.rcode.NOERROR


class Dummy(Module):
    name = "dummy_test_mod"

    def __init__(self, ctx):
        super().__init__(ctx)
        self.configs = []
        self.added = []
        self.props = {}

    def config(self, arg=None):
        self.configs.append(arg)

    def add(self, rule=None):
        self.added.append(rule)
        return len(self.added)

    def lua_api(self):
        return {"config": self.config, "add": self.add, "VALUE": 5, "rules": {"x": 1}}

    def lua_set(self, key, value):
        if key == "prop":
            self.props[key] = value
            return True
        return False

    def lua_get(self, key):
        if key in self.props:
            return self.props[key]
        raise KeyError(key)


@pytest.fixture
def dummy():
    BUILTINS[Dummy.name] = Dummy
    yield
    BUILTINS.pop(Dummy.name, None)


def test_python_module_proxy(eng, dummy):
    eng.load_config_text(
        "modules.load('dummy_test_mod')\n"
        "dummy_test_mod.add('a')\n"
        "dummy_test_mod:add('b')\n"
        "dummy_test_mod.prop = 7\n"
        "dummy_test_mod.other = 'z'\n"
        "dummy_test_mod.add({1, 2, {k = 'v'}})\n")
    mod = eng.registry.get("dummy_test_mod")
    assert mod.added == ["a", "b", [1, 2, {"k": "v"}]]
    assert mod.props == {"prop": 7}
    assert mod.configs == [{"other": "z"}]
    assert eng.eval("dummy_test_mod.prop") == "7"
    assert eng.eval("dummy_test_mod.VALUE") == "5"
    assert eng.eval("dummy_test_mod.rules.x") == "1"
    assert eng.eval("dummy_test_mod.missing") == "nil"
    assert eng.eval("dummy_test_mod.add('c')") == "4"


def test_modules_table_sugar(eng, dummy):
    eng.load_config_text("modules = { dummy_test_mod = { a = 1 } }\n")
    assert eng.registry.get("dummy_test_mod").configs == [{"a": 1}]
    eng.load_config_text("modules = { 'dummy_test_mod' }\n")  # loading twice is a no-op
    assert eng.registry.list().count("dummy_test_mod") == 1


def test_bridge_helpers(eng):
    b = eng.lua_bridge
    assert b.find(b"\x03www\x07example\x03com\x00", "example") is True
    assert b.find(b"\x03www\x00", "^%z") is False
    fn = eng.lua.eval(b"function(a, b) return a + b, {x = a} end")
    assert b.call(fn, 2, 3) == (5, {"x": 2})
    t = b.table({"a": [1, 2]})
    assert b.to_py(t) == {"a": [1, 2]}
    assert b.to_py(eng.lua.eval(b"'\\3abc\\0'")) == b"\x03abc\x00"
    assert b.to_py(eng.lua.eval(b"'text'")) == "text"
