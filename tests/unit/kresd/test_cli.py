"""kresd/cli.py: flags, exit codes, and one real start/stop of `python -m kresd`."""
from __future__ import annotations

import contextlib
import io
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import NamedTuple

import dns.message
import dns.query
import dns.rcode
import pytest

from kresd import cli, log
from kresd.errors import EXIT_BIND, EXIT_CONFIG, EXIT_NOT_IMPLEMENTED
from workers.settings import Endpoint

ROOT = Path(__file__).resolve().parents[3]


@pytest.fixture(autouse=True)
def keep_cwd():
    cwd = os.getcwd()
    yield
    os.chdir(cwd)
    log.reset()


class Run(NamedTuple):
    exit_code: int
    output: str  # stdout
    stderr: str


def invoke(*argv) -> Run:
    """cli.main in-process, as the program runs it: exit code, stdout, stderr."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            cli.main(list(argv))
            code = 0
        except SystemExit as e:
            code = e.code if isinstance(e.code, int) else 1
    return Run(code, out.getvalue(), err.getvalue())


def test_version():
    r = invoke("-V")
    assert r.exit_code == 0 and r.output.startswith("Knot Resolver, version 5.6.0")
    assert invoke("--version").output == r.output


def test_help_and_bad_flag():
    r = invoke("-h")
    assert r.exit_code == 0 and "--noninteractive" in r.output and "rundir" in r.output.lower()
    assert invoke("--bogus").exit_code == 2
    assert invoke("-x").exit_code == 2
    assert invoke("-f", "0").exit_code == 2
    assert invoke("-a", "not-an-address").exit_code == 2
    assert invoke("-a", "127.0.0.1@99999").exit_code == 2


@pytest.mark.parametrize("argv", [("-t", "127.0.10.1@853"), ("--tls", "::1")])
def test_not_implemented_flags(argv, tmp_path):
    r = invoke(*argv, str(tmp_path / "rd"))
    assert r.exit_code == EXIT_NOT_IMPLEMENTED


@pytest.mark.parametrize("argv", [("-S", "x"), ("-S", "3:"), ("--fd", "-1"), ("--cpu-map", "0=a"),
                                  ("--worker-id", "-1")])
def test_bad_process_model_flags_are_usage_errors(argv, tmp_path):
    assert invoke(*argv, str(tmp_path / "rd")).exit_code == 2


def test_bad_inherited_fd_is_a_bind_error(tmp_path):
    r = invoke("-S", "250", "-n", str(tmp_path / "rd"))
    assert r.exit_code == EXIT_BIND


@pytest.mark.parametrize("text, want", [
    ("127.0.0.1", Endpoint("127.0.0.1", 53)),
    ("127.0.0.1@5353", Endpoint("127.0.0.1", 5353)),
    ("127.0.0.1#5353", Endpoint("127.0.0.1", 5353)),
    ("::1@5353", Endpoint("::1", 5353)),
    ("::1", Endpoint("::1", 53)),
    ("[::1]@53", Endpoint("::1", 53)),
    ("fe80:0::1#53", Endpoint("fe80::1", 53)),
])
def test_parse_addr(text, want):
    assert cli.parse_addr(text) == want


def test_config_error_exit_code_and_message(tmp_path, capsys):
    rundir = tmp_path / "rd"
    conf = tmp_path / "bad.conf"
    conf.write_text("option('ALLOW_LOCAL', true)\npolicy.add(x)\n")
    args = cli.Args(configs=(str(conf),), rundir=str(rundir))
    assert cli.run(args) == EXIT_CONFIG
    assert rundir.is_dir() and os.getcwd() == str(rundir)  # created, entered
    assert f"{conf}:2: " in capsys.readouterr().err


def test_config_relative_to_rundir_and_default_config(tmp_path):
    rundir = tmp_path / "rd"
    rundir.mkdir()
    (rundir / "config").write_text("mode('lax')\n")  # picked up without -c
    assert cli.run(cli.Args(rundir=str(rundir))) == EXIT_CONFIG
    (rundir / "my.conf").write_text("bogus()\n")
    assert cli.run(cli.Args(configs=("my.conf",), rundir=str(rundir))) == EXIT_CONFIG
    # `-c -` alone: no default config either -> proceeds to bind (fails: not local)
    args = cli.Args(configs=("-",), addrs=(Endpoint("192.0.2.77", 53),), rundir=str(rundir))
    assert cli.run(args) == EXIT_BIND


def test_bind_failure_exit_code(tmp_path, capsys):
    args = cli.Args(addrs=(Endpoint("192.0.2.77", 5353),), rundir=str(tmp_path))
    assert cli.run(args) == EXIT_BIND
    assert "192.0.2.77" in capsys.readouterr().err


def test_daemon_serves_and_stops_on_sigterm(listen_addr, tmp_path):
    """The real entry point: bind, answer (RD=0 -> REFUSED from the core, no network), SIGTERM -> 0."""
    addr, port = listen_addr
    conf = tmp_path / "kresd.conf"
    conf.write_text("option('ALLOW_LOCAL', true)\nmodules.load('hints > iterate')\n"
                    "hints.root({['a.root-servers.net.'] = '127.0.10.250'})\n")
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    proc = subprocess.Popen([sys.executable, "-m", "kresd", "-n", "-a", f"{addr}@{port}", "-c", str(conf),
                             str(tmp_path / "rundir")], cwd=ROOT, env=env,
                            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        query = dns.message.make_query("example.", "A")
        query.flags = 0  # RD=0: answered without any upstream
        reply = None
        deadline = time.monotonic() + 15
        while reply is None and time.monotonic() < deadline and proc.poll() is None:
            try:
                reply = dns.query.udp(query, addr, port=port, timeout=0.2)
            except dns.exception.Timeout:
                pass
        assert reply is not None, proc.stderr.read1().decode() if proc.poll() is not None else "no reply"
        assert reply.id == query.id and reply.rcode() == dns.rcode.REFUSED
        tcp_reply = dns.query.tcp(query, addr, port=port, timeout=5)
        assert tcp_reply.rcode() == dns.rcode.REFUSED
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=10) == 0
        assert (tmp_path / "rundir").is_dir()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        proc.stdout.close()
        proc.stderr.close()
