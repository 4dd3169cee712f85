"""kresd/miniconf.py: the temporary kresd-config subset and its errors."""
from __future__ import annotations

import dns.name
import pytest

from kresd import miniconf
from kresd.errors import ConfigError
from workers.settings import Endpoint, GlueMode, Settings

BENCH_CONF = """log_level('warning')
net.ipv6 = false
net.listen('127.0.0.1', 5300, { kind = 'dns' })
option('ALLOW_LOCAL', true)
modules.load('hints > iterate')
hints.root({ ['a.root-servers.net.'] = '127.0.0.2' })
trust_anchors.remove('.')
modules.load('stats')
cache.size = 1024 * MB
"""


def test_bench_config():
    s = Settings()
    conf = miniconf.loads(BENCH_CONF, s)
    assert conf.log_level == "warning"
    assert s.ipv6 is False and s.allow_local is True
    assert s.listen == [Endpoint("127.0.0.1", 5300, "dns")]
    assert s.root_hints == {dns.name.from_text("a.root-servers.net."): ["127.0.0.2"]}
    assert s.cache_size == 1024 * 1024 * 1024


def test_more_forms_multiline_and_comments():
    text = """-- a comment
--[[ a block
     comment ]]
option('NO_MINIMIZE', true); option("NO_0X20", false)
mode('strict')
net.listen({'127.0.10.1', '::1'}, 53)
net.listen('127.0.10.2')
net.bufsize(1400)
cache.size = 100*MB
cache.max_ttl(3600)
cache.min_ttl(0)
modules = { 'hints > iterate', 'stats' }
hints.root({
    ['a.root-servers.net.'] = { '127.0.10.1', '::1' },  -- two addresses
    ['b.root-servers.net.'] = '127.0.10.2',
})
verbose(true)
"""
    s = Settings()
    conf = miniconf.loads(text, s)
    assert s.no_minimize and not s.no_0x20 and s.glue_mode is GlueMode.STRICT
    assert [(e.addr, e.port) for e in s.listen] == [("127.0.10.1", 53), ("::1", 53), ("127.0.10.2", 53)]
    assert s.edns_bufsize == 1400 and s.cache_size == 100 * 1024**2
    assert s.cache_max_ttl == 3600 and s.cache_min_ttl == 0
    assert s.root_hints[dns.name.from_text("a.root-servers.net.")] == ["127.0.10.1", "::1"]
    assert len(s.root_hints) == 2 and conf.log_level == "debug"


@pytest.mark.parametrize("text, line", [
    ("option('ALLOW_LOCAL', true)\n\nif x then y() end\n", 3),
    ("policy.add(policy.all(policy.FORWARD('1.1.1.1')))", 1),
    ("\nmodules.load('view')", 2),
    ("option('FOO', true)", 1),
    ("option('ALLOW_LOCAL', 1)", 1),
    ("net.listen('eth0', 53)", 1),
    ("net.listen('127.0.0.1', 853, { kind = 'tls' })", 1),
    ("mode('lax')", 1),
    ("log_level('loud')", 1),
    ("local x = 5", 1),
    ("cache.size = 'big'", 1),
    ("x = 1\n", 1),
    ("net.listen('127.0.0.1', 53", 1),
    ("\n\nfoo = bar:baz()", 3),
    ("trust_anchors.remove('example.')", 1),
])
def test_unsupported_is_config_error_with_line(text, line):
    with pytest.raises(ConfigError) as e:
        miniconf.loads(text, Settings(), file="kresd.conf")
    assert e.value.file == "kresd.conf" and e.value.line == line
    assert str(e.value).startswith(f"kresd.conf:{line}: ")


def test_unsupported_message_names_the_lua_engine():
    with pytest.raises(ConfigError, match="not supported until the Lua engine lands"):
        miniconf.loads("policy.add(1)", Settings(), file="c")


def test_load_file_and_missing_file(tmp_path):
    p = tmp_path / "kresd.conf"
    p.write_text(BENCH_CONF)
    s = Settings()
    conf = miniconf.load(str(p), s)
    assert conf.files == [str(p)] and s.allow_local
    with pytest.raises(ConfigError, match="cannot read config"):
        miniconf.load(str(tmp_path / "nope.conf"), Settings())
