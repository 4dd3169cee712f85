"""kresd/__init__.py: the short boot path (deferred dns.dnssec, dnspython
feature checks without importlib.metadata) and kresd/cli.py's entry()."""
from __future__ import annotations

import gc
import subprocess
import sys
import types

import dns._features

import kresd
from kresd import _feature_without_metadata, lazy_module


def run_py(code: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)


def test_feature_answers_agree_with_dnspython_metadata_checks():
    for feature, reqs in dns._features._requirements.items():
        answer = _feature_without_metadata(list(reqs))
        if answer is not None:
            by_metadata = all(dns._features._version_check(r) for r in reqs)
            assert answer == by_metadata, feature


def test_a_missing_package_is_answered_false_without_metadata():
    assert _feature_without_metadata(["no_such_package_kresd_test>=1.0"]) is False


def test_boot_defers_cryptography_until_dns_dnssec_is_used():
    r = run_py("import sys, kresd.cli, kresd.engine, workers.main\n"
               "meta = sys.modules.get('importlib.metadata')\n"
               "print('cryptography.hazmat.primitives' in sys.modules, meta is not None and 'version' in vars(meta))\n"
               "import dns.dnssec\n"
               "print(dns.dnssec.key_id.__module__, 'cryptography.hazmat.primitives' in sys.modules)\n"
               "import dns.dnssec as again\n"
               "print(again is sys.modules['dns.dnssec'], type(again).__name__)")
    assert r.returncode == 0, r.stderr
    assert r.stdout.split("\n")[:3] == ["False False", "dns.dnssec True", "True module"]


def test_lazy_module_binds_at_once_and_executes_on_first_attribute():
    r = run_py("import sys, kresd\n"
               "assert 'json' not in sys.modules\n"
               "kresd.lazy_module('json')\n"
               "import json\n"
               "print(type(json).__name__, 'json.decoder' in sys.modules)\n"
               "print(json.dumps([1]), type(sys.modules['json']).__name__, json.loads('2'))")
    assert r.returncode == 0, r.stderr
    assert r.stdout.split("\n")[:2] == ["_Deferred False", "[1] module 2"]


def test_lazy_module_ignores_loaded_or_unknown_modules():
    import dns.name  # noqa: F401

    before = sys.modules["dns.name"]
    lazy_module("dns.name")
    assert sys.modules["dns.name"] is before
    lazy_module("no_such_module_kresd_test")
    assert "no_such_module_kresd_test" not in sys.modules
    assert isinstance(kresd, types.ModuleType)


def test_entry_exit_codes_and_output():
    ok = subprocess.run([sys.executable, "-m", "kresd", "-V"], capture_output=True, text=True, timeout=60)
    assert ok.returncode == 0 and "Knot Resolver, version 5.6.0" in ok.stdout
    bad = subprocess.run([sys.executable, "-m", "kresd", "--no-such-flag"], capture_output=True, text=True,
                         timeout=60)
    assert bad.returncode == 2 and "No such option" in bad.stderr


def run_as_kresd(tmp_path, code: str) -> subprocess.CompletedProcess:
    """Run `code` as a program named kresd (what kresd/__init__.py recognises)."""
    script = tmp_path / "kresd"
    script.write_text(code)
    return subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=60)


def test_the_kresd_program_boots_with_gc_paused_until_boot_done(tmp_path):
    r = run_as_kresd(tmp_path, "import gc, kresd, kresd.cli\n"
                               "print(gc.isenabled(), gc.get_freeze_count() > 0)\n"
                               "kresd.boot_done()\n"
                               "print(gc.isenabled(), gc.get_freeze_count() > 0)\n"
                               "kresd.boot_done()\n"
                               "print(gc.isenabled())\n")
    assert r.returncode == 0, r.stderr
    assert r.stdout.split("\n")[:3] == ["False False", "True True", "True"]


def test_other_programs_importing_kresd_keep_gc_on():
    r = run_py("import gc, kresd, kresd.cli\n"
               "print(gc.isenabled())\n"
               "kresd.boot_done()\n"
               "print(gc.isenabled(), gc.get_freeze_count())\n")
    assert r.returncode == 0, r.stderr
    assert r.stdout.split("\n")[:2] == ["True", "True 0"]
    assert gc.isenabled()  # and pytest's own process, which imported kresd


def test_builtin_module_files_are_imported_when_first_loaded():
    r = run_py("import sys\n"
               "from kresd.engine import Engine\n"
               "from workers.settings import Settings\n"
               "e = Engine(Settings())\n"
               "print('kresd.modules.stats' in sys.modules, 'kresd.modules.policy' in sys.modules)\n"
               "e.load_config_text(\"modules.load('stats')\")\n"
               "print('kresd.modules.stats' in sys.modules, 'stats' in e.registry.list())\n"
               "from kresd.modules.registry import BUILTIN_FILES, import_builtins, builtin_factory\n"
               "import_builtins()\n"
               "print(all(f'kresd.modules.{n}' in sys.modules for n in BUILTIN_FILES),\n"
               "      builtin_factory('no_such_module') is None)\n")
    assert r.returncode == 0, r.stderr
    assert r.stdout.split("\n")[:3] == ["False True", "True True", "True True"]
