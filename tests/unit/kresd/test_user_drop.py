"""kresd/cli.py user(): what must stay readable after the privilege drop, and the
check that names the first directory in the way (issue 11)."""
from __future__ import annotations

import os
import pwd
import shutil
import sys
import tempfile
from pathlib import Path

import pytest

from kresd import cli
from kresd.errors import EXIT_CONFIG, BootError


def test_needs_cover_interpreter_imported_modules_and_with_forks_config_and_rundir(tmp_path, monkeypatch):
    conf = tmp_path / "kresd.conf"
    conf.write_text("")
    monkeypatch.chdir(tmp_path)
    single = {p: (m, v) for p, m, v in cli.needs_after_drop(cli.Args(configs=(str(conf),)))}
    assert single[sys.executable] == (os.X_OK, "run")
    assert single[cli.__file__] == (os.R_OK, "read")  # an imported module's file...
    rx = (os.R_OK | os.X_OK, "read")
    assert single[os.path.dirname(cli.__file__)] == rx  # ...its package directory...
    assert single[os.path.dirname(os.path.dirname(cli.__file__))] == rx  # ...and where that is
    assert str(conf) not in single and str(tmp_path) not in single  # -f 1: no restart needs them
    group = {p: (m, v) for p, m, v in cli.needs_after_drop(cli.Args(configs=(str(conf),), forks=2))}
    assert group[str(conf)] == (os.R_OK, "read") and group[str(tmp_path)] == (os.X_OK, "enter")
    assert all(os.path.exists(p) for p in group)


def _as_nobody(fn):
    """Run fn() in a child that switched to nobody; its result comes back through a pipe."""
    nobody = pwd.getpwnam("nobody")
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        try:
            os.close(r)
            os.setgroups([])
            os.setgid(nobody.pw_gid)
            os.setuid(nobody.pw_uid)
            out = repr(fn())
        except BaseException as e:  # noqa: BLE001 - reported to the parent
            out = repr(("child failed", repr(e)))
        try:
            os.write(w, out.encode())
        finally:
            os._exit(0)
    os.close(w)
    with os.fdopen(r) as f:
        out = f.read()
    os.waitpid(pid, 0)
    return out


@pytest.fixture
def open_base():
    """A directory everyone may enter (pytest's tmp_path sits in a root-only one)."""
    base = Path(tempfile.mkdtemp(prefix="kresd-user-drop-"))
    base.chmod(0o755)
    yield base
    shutil.rmtree(base, ignore_errors=True)


@pytest.mark.root
def test_first_denied_and_the_message_name_the_closed_directory(open_base):
    nobody = pwd.getpwnam("nobody")
    closed = open_base / "closed"
    (closed / "venv" / "bin").mkdir(parents=True, mode=0o755)
    python = closed / "venv" / "bin" / "python"
    python.write_text("")
    python.chmod(0o755)
    closed.chmod(0o700)
    conf = open_base / "open.conf"
    conf.write_text("")
    conf.chmod(0o644)
    needs = [(str(conf), os.R_OK, "read"), (str(python), os.X_OK, "run")]
    assert _as_nobody(lambda: cli.first_denied(needs)) == repr((needs[1], str(closed)))
    assert _as_nobody(lambda: cli.first_denied(needs[:1])) == "None"

    def check():
        try:
            cli.check_after_drop(needs, "nobody", nobody.pw_uid)
        except BootError as e:
            return e.exit_code, str(e)
        return None

    code, msg = eval(_as_nobody(check))
    assert code == EXIT_CONFIG
    assert msg.startswith(f"user('nobody'): user nobody (uid {nobody.pw_uid}) cannot run {python}, "
                          f"blocked at {closed} (mode 0700, owner root:"), msg
