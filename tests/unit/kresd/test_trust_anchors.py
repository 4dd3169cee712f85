"""kresd/bindings/trust_anchors.py through the Lua engine, and `kresd -k`."""
from __future__ import annotations

import os

import dns.name
import pytest

from kresd import cli, log
from kresd.engine import Engine, FakeScheduler
from kresd.errors import EXIT_CONFIG, ConfigError
from tests.unit.kresd.test_cli import invoke
from workers.dnssec import ta
from workers.settings import Settings

N = dns.name.from_text
ROOT = dns.name.root
DS = ". IN DS 49060 8 2 E7B1EB56D7D5791B3D45630FEAA9C823DB84B385ACEEAC5F44DD08885C36700F"
DS_EX = "example. 3600 IN DS 1 8 2 E7B1EB56D7D5791B3D45630FEAA9C823DB84B385ACEEAC5F44DD08885C36700F"


@pytest.fixture
def eng(tmp_path):
    e = Engine(Settings(), rundir=str(tmp_path), scheduler=FakeScheduler())
    yield e
    e.stop()


def run(eng, text):
    eng.load_config_text(text, name="t")


def test_builtin_root_anchors_until_the_config_changes_them(eng, tmp_path):
    s = eng.settings
    assert sorted(rd.key_tag for rd in s.trust_anchors[ROOT]) == [20326, 38696]
    f = tmp_path / "root.key"
    f.write_text(DS + "\n")
    run(eng, f"trust_anchors.add_file('{f}', true)\n")  # a file for '.' replaces the built-in ones
    assert [rd.key_tag for rd in s.trust_anchors[ROOT]] == [49060]
    run(eng, "assert(trust_anchors.remove('.') == true)\nassert(trust_anchors.remove('.') == false)\n")
    assert ROOT not in s.trust_anchors
    assert "No valid trust anchors, DNSSEC validation is disabled" in eng.eval("trust_anchors.summary()")


def test_add_set_insecure_and_getters(eng, tmp_path):
    s = eng.settings
    run(eng, "trust_anchors.remove('.')\n"
             f"trust_anchors.add('{DS_EX}')\n"
             "trust_anchors.set_insecure({'bad.example', 'worse.'})\n")
    assert [rd.key_tag for rd in s.trust_anchors[N("example.")]] == [1]
    assert s.negative_trust_anchors == [N("bad.example."), N("worse.")]
    assert eng.eval("trust_anchors.insecure[1]") == '"bad.example"'  # as given, as kresd
    run(eng, "trust_anchors.insecure = {'other.'}\n")
    assert s.negative_trust_anchors == [N("other.")]
    assert eng.eval("trust_anchors.keysets['\\7example\\0'][1].key_tag") == "1"
    assert eng.eval("trust_anchors.keysets['\\7example\\0'][1].state") == '"Valid"'
    assert eng.eval("trust_anchors.keysets['\\0'] == nil") == "true"
    assert "KeyTag:1" in eng.eval("trust_anchors.summary()")
    assert "example." in eng.eval("trust_anchors.summary('\\7example\\0')")


def test_usage_errors_fail_the_config_with_file_and_line(eng, tmp_path):
    for bad, what in [
        ("trust_anchors.add('example. IN A 192.0.2.1')", "DS or DNSKEY"),
        ("trust_anchors.add(1)", "trust_anchors.add(rr_string)"),
        ("trust_anchors.add_file()", "add_file(path[, readonly])"),
        ("trust_anchors.set_insecure('x')", "set_insecure"),
        ("trust_anchors.set_insecure({'.'})", "because it is TA"),
        ("trust_anchors.hold_down_time = 'soon'", "hold_down_time"),
        ("trust_anchors.nonsense = 1", "no such property"),
    ]:
        with pytest.raises(ConfigError) as ei:
            run(eng, "\n" + bad + "\n")
        assert ei.value.file == "t" and ei.value.line == 2 and what in ei.value.message, bad


def test_missing_key_file_fails_the_config_naming_file_and_remedy(eng, tmp_path):
    path = tmp_path / "root.key"
    for readonly in ("", ", true"):
        with pytest.raises(ConfigError) as ei:
            run(eng, f"trust_anchors.remove('.')\ntrust_anchors.add_file('{path}'{readonly})\n")
        assert ei.value.line == 2 and str(path) in ei.value.message
        assert "/usr/share/dns/root.key" in ei.value.message
    assert ROOT not in eng.settings.trust_anchors


def test_bad_line_in_key_file_names_its_line(eng, tmp_path):
    f = tmp_path / "k.key"
    f.write_text(DS + "\n. IN DS 1 8 2 nothex\n")
    with pytest.raises(ConfigError) as ei:
        run(eng, f"trust_anchors.add_file('{f}')\n")
    assert f"{f}:2:" in ei.value.message


def test_writable_file_is_managed_and_rfc5011_properties(eng, tmp_path):
    f = tmp_path / "root.key"
    f.write_text(DS + "\n")
    run(eng, f"trust_anchors.add_file('{f}')\n"
             "trust_anchors.hold_down_time = 2 * day\n"
             "trust_anchors.refresh_time = 12 * hour\n"
             "trust_anchors.keep_removed = 1\n")
    st = ta.store(eng.settings)
    assert st.keysets[ROOT].managed and st.keysets[ROOT].filename == str(f)
    assert (st.hold_down_time, st.refresh_time, st.keep_removed) == (2 * 86400000, 12 * 3600000, 1)
    assert eng.eval("trust_anchors.hold_down_time") == str(2 * 86400000)
    run(eng, "trust_anchors.refresh_time = nil\n")
    assert st.refresh_time is None
    run(eng, f"trust_anchors.add_file('{f}', true)\n")
    assert not st.keysets[ROOT].managed


def test_add_keeps_the_digest_length_kresd_accepts(eng):
    run(eng, "trust_anchors.add('. IN DS 49060 8 1 "
             "E7B1EB56D7D5791B3D45630FEAA9C823DB84B385ACEEAC5F44DD08885C36700F')\n")
    assert any(rd.digest_type == 1 for rd in eng.settings.trust_anchors[ROOT])


# -- kresd -k keyfile -------------------------------------------------------------------

@pytest.fixture
def keep_cwd():
    cwd = os.getcwd()
    yield
    os.chdir(cwd)
    log.reset()


def test_k_loads_a_managed_key_file_before_the_config(tmp_path, keep_cwd):
    f = tmp_path / "root.key"
    f.write_text(DS + "\n")
    conf = tmp_path / "config"
    conf.write_text("assert(#trust_anchors.keysets['\\0'] == 1)\n")
    os.chdir(tmp_path)
    s = Settings()
    eng = cli.load_config(cli.Args(configs=(str(conf),), keyfiles=(str(f),)), s)
    try:
        assert [rd.key_tag for rd in s.trust_anchors[ROOT]] == [49060]
        assert ta.store(s).keysets[ROOT].managed
    finally:
        eng.stop()


def test_k_with_a_missing_file_exits_with_the_config_error(tmp_path, keep_cwd):
    missing = tmp_path / "nope.key"
    r = invoke("-n", "-k", str(missing), "-c", "-", str(tmp_path / "rd"))
    assert r.exit_code == EXIT_CONFIG
    r = invoke("-h")
    assert "--keyfile" in r.output


def test_k_file_must_stay_readable_for_restarted_forks(tmp_path, keep_cwd):
    f = tmp_path / "root.key"
    f.write_text(DS + "\n")
    os.chdir(tmp_path)
    single = {p for p, _, _ in cli.needs_after_drop(cli.Args(keyfiles=("root.key",)))}
    group = {p: (m, v) for p, m, v in cli.needs_after_drop(cli.Args(keyfiles=("root.key",), forks=2))}
    assert str(f) not in single and group[str(f)] == (os.R_OK, "read")
