"""kresd/modules/daf.py: the rule language on a real engine's policy module."""
import pytest

from kresd.engine import Engine, FakeScheduler
from kresd.errors import ConfigError
from workers.settings import Settings


@pytest.fixture
def eng(tmp_path):
    e = Engine(Settings(), rundir=str(tmp_path), scheduler=FakeScheduler())
    e.load_config_text("modules.load('daf')\n", name="c")
    yield e
    e.stop()


def test_rules_are_policy_rules(eng):
    eng.load_config_text("a = daf.add('qname = example.com deny')\n"
                         "b = daf.add('src = 192.0.2.0/24 AND qname ~ %w+.example drop')\n"
                         "c = daf.add('qname = example.net OR dst = ::1 forward 192.0.2.53@5353')\n"
                         "d = daf.add('pass')\n", name="c")
    policy = eng.registry.get("policy")
    daf = eng.registry.get("daf")
    assert len(daf.rules) == 4
    assert {r.id for r in policy.rules.rules} >= {d["rule"].id for d in daf.rules}
    assert eng.eval("daf.add('qname = example.com deny').id == a.id") == "true"  # duplicates ignored
    assert eng.eval("#daf.rules") == "4"
    assert eng.eval("daf.disable(a.id)") == "true" and eng.eval("daf.get(a.id).active") == "false"
    assert eng.eval("daf.del(b.id)") == "true" and eng.eval("#daf.rules") == "3"


@pytest.mark.parametrize("rule,message", [
    ("", "empty rule"),
    ("qname = example.com", "no action"),
    ("qname example.com deny", "invalid operator"),
    ("src ~ 10.0.0.0/8 deny", 'only "=" operator'),
    ("src = nonsense deny", "not an address"),
    ("qname = a AND", "expected filter"),
    ("qname = a launch", 'invalid action "launch"'),
    ("qname = a mirror 192.0.2.1", "not available in kresd-py"),
])
def test_bad_rules_are_config_errors(eng, rule, message):
    with pytest.raises(ConfigError) as ei:
        eng.load_config_text(f"daf.add('{rule}')\n", name="c")
    assert message in str(ei.value) and ei.value.line == 1
