"""kresd/systemd.py: LISTEN_* parsing, sd_notify, and a real systemd-socket-activate run."""
from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from kresd import systemd
from kresd.sockets import FdSpec

HELPER = Path(__file__).with_name("procmodel_helper.py")
ROOT = Path(__file__).resolve().parents[3]


def env_for(pid, count, names=None):
    env = {"LISTEN_PID": str(pid), "LISTEN_FDS": str(count), "OTHER": "x"}
    if names is not None:
        env["LISTEN_FDNAMES"] = names
    return env


@pytest.fixture
def fds_3_4():
    """Make fds 3 and 4 real sockets for the duration of a test (restoring what was there)."""
    saved = {}
    for fd in (3, 4):
        try:
            saved[fd] = os.dup(fd)
        except OSError:
            saved[fd] = None
    a, b = socket.socketpair()
    os.dup2(a.fileno(), 3)
    os.dup2(b.fileno(), 4)
    a.close()
    b.close()
    yield
    for fd, old in saved.items():
        if old is None:
            os.close(fd)
        else:
            os.dup2(old, fd)
            os.close(old)


def test_kind_of():
    assert systemd.kind_of("dns") == "dns"
    assert systemd.kind_of("") == "dns" and systemd.kind_of("unknown") == "dns"
    assert systemd.kind_of("TLS") == "tls"
    assert systemd.kind_of("doh2") == "doh2" and systemd.kind_of("control") == "control"


def test_listen_fds_names_and_unset(fds_3_4):
    env = env_for(os.getpid(), 2, "dns:tls")
    assert systemd.listen_fds(environ=env) == [FdSpec(3, "dns"), FdSpec(4, "tls")]
    assert env == {"OTHER": "x"}  # unset, as sd_listen_fds(1)


def test_listen_fds_without_names_or_short_names(fds_3_4):
    assert systemd.listen_fds(environ=env_for(os.getpid(), 2)) == [FdSpec(3), FdSpec(4)]
    assert systemd.listen_fds(environ=env_for(os.getpid(), 2, "tls")) == [FdSpec(3, "tls"), FdSpec(4)]


def test_listen_fds_sets_cloexec(fds_3_4):
    os.set_inheritable(3, True)
    systemd.listen_fds(environ=env_for(os.getpid(), 1))
    assert not os.get_inheritable(3)


@pytest.mark.parametrize("env", [
    {},
    {"LISTEN_PID": "1", "LISTEN_FDS": "2"},  # for another process
    {"LISTEN_PID": "x", "LISTEN_FDS": "2"},
    {"LISTEN_FDS": "2"},
    {"LISTEN_PID": "{pid}", "LISTEN_FDS": "zero"},
    {"LISTEN_PID": "{pid}", "LISTEN_FDS": "0"},
])
def test_listen_fds_ignored(env):
    env = {k: v.format(pid=os.getpid()) for k, v in env.items()}
    assert systemd.listen_fds(environ=env) == []
    assert not any(k.startswith("LISTEN_") for k in env)
    env2 = dict(env_for(1, 1))
    systemd.listen_fds(unset_environment=False, environ=env2)
    assert "LISTEN_PID" in env2


def test_notify_plain_and_abstract(tmp_path):
    path = str(tmp_path / "notify")
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as s:
        s.bind(path)
        s.settimeout(2)
        assert systemd.notify_ready(environ={"NOTIFY_SOCKET": path})
        assert s.recv(100) == b"READY=1"
        assert systemd.notify_ready("serving", environ={"NOTIFY_SOCKET": path})
        assert s.recv(100) == b"READY=1\nSTATUS=serving"
    name = f"kresd-test-{os.getpid()}"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as s:
        s.bind("\0" + name)
        s.settimeout(2)
        env = {"NOTIFY_SOCKET": "@" + name}
        assert systemd.notify("STOPPING=1", unset_environment=True, environ=env)
        assert s.recv(100) == b"STOPPING=1" and env == {}
    assert not systemd.notify_ready(environ={})
    assert not systemd.notify_ready(environ={"NOTIFY_SOCKET": "relative"})
    assert not systemd.notify_ready(environ={"NOTIFY_SOCKET": str(tmp_path / "missing")})


@pytest.mark.skipif(shutil.which("systemd-socket-activate") is None, reason="systemd-socket-activate missing")
@pytest.mark.parametrize("datagram", [False, True])
def test_real_socket_activation(listen_addr, datagram):
    addr, port = listen_addr
    cmd = ["systemd-socket-activate", "-l", f"{addr}:{port}", "--fdname=dns"]
    if datagram:
        cmd.append("--datagram")
    cmd += ["-E", f"PYTHONPATH={ROOT}", sys.executable, str(HELPER), "activated"]
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        answer = None
        end = time.monotonic() + 10
        while answer is None and time.monotonic() < end:
            try:
                answer = query(addr, port, datagram)
            except OSError:
                time.sleep(0.05)
        assert answer is not None and answer.endswith(b"hello\n")
        p.terminate()
        out, err = p.communicate(timeout=10)
        assert "kinds 3:dns" in out, (out, err)
        assert "'LISTEN_PID': None" in out and "'LISTEN_FDNAMES': None" in out  # unset
    finally:
        if p.poll() is None:
            p.kill()
            p.communicate()


def query(addr, port, datagram) -> bytes:
    if datagram:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.settimeout(0.5)
            s.sendto(b"hello\n", (addr, port))
            return s.recv(200)
    with socket.create_connection((addr, port), timeout=2) as s:
        s.sendall(b"hello\n")
        return s.recv(200)


def _verify(unit_dir: Path, service: Path) -> None:
    """`systemd-analyze verify` of kresd@1.service (a link to `service`),
    kresd.socket and kresd.target: it must print nothing.

    (systemd 252 reports unknown keys/values, and an ExecStart that is not an
    executable, as warnings with exit code 0, so any output is a failure.)
    """
    assert shutil.which("systemd-analyze"), "systemd-analyze missing: tools/install.sh installs systemd"
    for name in ("kresd.socket", "kresd.target"):
        shutil.copy(ROOT / "etc" / name, unit_dir / name)
    if service.parent != unit_dir:
        shutil.copy(service, unit_dir / "kresd@.service")
    (unit_dir / "kresd@1.service").symlink_to("kresd@.service")
    units = [str(unit_dir / n) for n in ("kresd@1.service", "kresd.socket", "kresd.target")]
    r = subprocess.run(["systemd-analyze", "verify", "--man=no", *units], capture_output=True, text=True,
                       env=dict(os.environ, SYSTEMD_UNIT_PATH=f"{unit_dir}:"), timeout=60)
    assert r.returncode == 0 and r.stdout + r.stderr == "", r.stdout + r.stderr


def _exec_start(text: str) -> str:
    (line,) = [ln for ln in text.splitlines() if ln.startswith("ExecStart=")]
    return line.split("=", 1)[1].split()[0]


def test_filled_units_of_this_checkout_verify(tmp_path):
    """tools/install.sh wrote etc/kresd@.service from its template: ExecStart
    is this installation's kresd (the venv's, not Debian's /usr/sbin/kresd)."""
    service = ROOT / "etc" / "kresd@.service"
    assert service.exists(), "etc/kresd@.service missing: run tools/install.sh"
    kresd = Path(sys.executable).parent / "kresd"
    assert Path(_exec_start(service.read_text())) == kresd.absolute()
    assert service.read_text() == (ROOT / "etc" / "kresd@.service.in").read_text().replace(
        "@KRESD_BIN@", str(kresd.absolute()))
    _verify(tmp_path, service)


def test_units_filled_anywhere_verify(tmp_path):
    """The template filled by tools/units.py into another directory (as a
    clone elsewhere would be) verifies, and names the kresd it was given."""
    from tools import units
    out = tmp_path / "units"
    out.mkdir()
    kresd = units.default_kresd().absolute()
    (written,) = units.fill(ROOT / "etc", kresd, out)
    assert written == out / "kresd@.service"
    assert _exec_start(written.read_text()) == str(kresd)
    _verify(out, written)


def test_unit_template_is_a_template():
    from tools import units
    text = (ROOT / "etc" / "kresd@.service.in").read_text()
    assert units.PLACEHOLDER in text
    with pytest.raises(ValueError):
        units.render(text, Path("relative/kresd"))
    with pytest.raises(ValueError):
        units.render("no placeholder", Path("/x/kresd"))


def test_verify_catches_a_missing_binary(tmp_path):
    """The verification can fail: a unit whose ExecStart does not exist."""
    from tools import units
    bad = tmp_path / "kresd@.service"
    bad.write_text(units.render((ROOT / "etc" / "kresd@.service.in").read_text(),
                                tmp_path / "no" / "kresd"))
    with pytest.raises(AssertionError):
        _verify(tmp_path, bad)
