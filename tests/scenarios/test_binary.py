"""Unit tests of the binary runner's pieces (not of the daemon).

Owns: template rendering for every scenario, trust-anchor files, the
libfaketime timestamp file, the address list, the scripted servers over real
sockets (UDP and TCP, on 127.0.0.1 and a free port: no namespace needed), and
one end-to-end run through a namespace with the stand-in resolver (root only).
Must not: test the real daemon (tests/e2e/test_scenarios_binary.py does).

Tests over the shared scenarios skip without them (tests/shared_data.py says
where it looked) and fail when the folder holds fewer than the minimum.
"""
from __future__ import annotations

import datetime
import os
import re
import socket
import struct
import subprocess
import sys

import dns.message
import dns.rcode
import pytest

from tests import shared_data

from . import binary, config, netservers, nsdriver, rpl, standin, template
from .responder import Responder

SIMPLE = """
stub-addr: 193.0.14.129
trust-anchor: ". IN DS 1 8 2 AAAA"
trust-anchor: "example.com. IN DS 2 8 2 BBBB"
trust-anchor: ". IN DS 3 8 2 CCCC"
feature-list: policy=policy.add(policy.all(policy.DENY))
features: min_ttl=10;static_hint_name=a.test.;static_hint_addr=1.2.3.4
CONFIG_END
SCENARIO_BEGIN t
RANGE_BEGIN 0 100
ADDRESS 193.0.14.129
ENTRY_BEGIN
MATCH opcode qtype qname
ADJUST copy_id
REPLY QR AA NOERROR
SECTION QUESTION
a. IN A
SECTION ANSWER
a. IN A 192.0.2.7
ENTRY_END
RANGE_END
STEP 1 QUERY
ENTRY_BEGIN
REPLY RD
SECTION QUESTION
a. IN A
ENTRY_END
SCENARIO_END
"""


def _ctx():
    return config.context(rpl.parse_text(SIMPLE))


def test_render_every_scenario(tmp_path):
    files = shared_data.require_scenarios()
    shared_data.require_template()
    rendered = 0
    for path in files:
        ctx = config.context(rpl.parse_file(path))
        for qmin in config.qmin_modes(ctx):
            text = template.render(ctx, qmin, tmp_path / f"{path.stem}-{qmin}")
            assert f"net = {{ '{ctx.self_addr}' }}" in text
            assert ("option('NO_MINIMIZE', true)" in text) == (not qmin)
            assert not re.search(r"\{\{\s*[A-Z_]", text) and "{%" not in text
            rendered += 1
    assert rendered >= len(files) >= shared_data.MIN_SCENARIOS


def test_render_variables(tmp_path):
    shared_data.require_template()
    text = template.render(_ctx(), True, tmp_path)
    assert (tmp_path / "config").read_text() == text
    assert "hints.root({['k.root-servers.net'] = '193.0.14.129'})" in text
    assert "policy.add(policy.all(policy.DENY))" in text
    assert "cache.min_ttl(10)" in text and "cache.max_ttl" not in text
    assert "hints['a.test.'] = '1.2.3.4'" in text
    assert "option('NO_MINIMIZE', false)" in text and "mode('normal')" in text


def test_trust_anchor_files_one_per_domain(tmp_path):
    shared_data.require_template()
    template.render(_ctx(), True, tmp_path)
    root = (tmp_path / "ta" / "..key").read_text().splitlines()
    assert root == [". IN DS 1 8 2 AAAA", ". IN DS 3 8 2 CCCC"]
    assert (tmp_path / "ta" / "example.com..key").read_text() == "example.com. IN DS 2 8 2 BBBB\n"
    assert f"trust_anchors.add_file('{tmp_path / 'ta' / '..key'}')" in (tmp_path / "config").read_text()


def test_faketime_file(tmp_path):
    start = 1700000000
    tf = nsdriver.FakeTimeFile(tmp_path / ".time", start)
    stamp = datetime.datetime.fromtimestamp(start).strftime("@%Y-%m-%d %H:%M:%S")
    assert (tmp_path / ".time").read_text() == stamp + "\n"
    tf.jump(3600)
    later = datetime.datetime.fromtimestamp(start + 3600).strftime("@%Y-%m-%d %H:%M:%S")
    assert (tmp_path / ".time").read_text() == later + "\n"
    assert not (tmp_path / ".time.next").exists()


def test_daemon_env(tmp_path):
    env = nsdriver.daemon_env(tmp_path / ".time")
    assert env["LD_PRELOAD"].endswith("libfaketimeMT.so.1")
    assert env["FAKETIME_DONT_FAKE_MONOTONIC"] == "1" and env["FAKETIME_NO_CACHE"] == "1"
    assert env["FAKETIME_TIMESTAMP_FILE"] == str(tmp_path / ".time")
    assert "PYTHONPATH" not in env


def test_scenario_addresses():
    scn = rpl.parse_text(SIMPLE)
    assert netservers.scenario_addresses(scn, config.context(scn)) == ["193.0.14.129", "192.0.2.7"]


def _query(name="a.", tcp=False, port=0):
    q = dns.message.make_query(name, "A")
    wire = q.to_wire()
    if tcp:
        with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
            s.sendall(struct.pack("!H", len(wire)) + wire)
            size = struct.unpack("!H", s.recv(2))[0]
            data = b""
            while len(data) < size:
                data += s.recv(size - len(data))
            return q, dns.message.from_wire(data)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.settimeout(5)
        s.sendto(wire, ("127.0.0.1", port))
        return q, dns.message.from_wire(s.recv(65535))


def test_socket_servers_udp_tcp():
    scn = rpl.parse_text(SIMPLE.replace("ADDRESS 193.0.14.129", "ADDRESS 127.0.0.1"))
    resp = Responder(scn)
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    servers = netservers.SocketServers(resp, ["127.0.0.1"], port=port)
    servers.start()
    try:
        assert not servers.failed
        for tcp in (False, True):
            q, a = _query(tcp=tcp, port=port)
            assert a.id == q.id and str(a.answer[0][0]) == "192.0.2.7"
        _, a = _query("b.", port=port)
        assert a.rcode() == dns.rcode.SERVFAIL and resp.undefined
        assert [ex.tcp for ex in resp.trace] == [False, True, False]
    finally:
        servers.stop()
    assert servers.crash is None


def _root_or_skip():
    if os.geteuid() != 0:
        pytest.skip("binary mode needs root (network namespaces); CI runs as root")
    try:
        binary.check_available(binary.DEFAULT_KRESD)
    except binary.Unavailable as exc:
        pytest.skip(str(exc))


def test_standin_end_to_end(tmp_path):
    """Namespace, addresses, servers, faketime and SIGTERM with a stand-in resolver."""
    _root_or_skip()
    launcher = standin.write_launcher(tmp_path / "kresd")
    outcome = binary.run_binary(shared_data.require_scenario("iter_recurse.rpl"), True, launcher)
    assert outcome.passed, outcome.reason + "\n" + outcome.log_tail
    assert outcome.startup is not None and outcome.startup < nsdriver.STARTUP_TIMEOUT


def test_startup_failure_is_reported(tmp_path):
    _root_or_skip()
    fake = tmp_path / "kresd"
    fake.write_text("#!/bin/sh\necho 'config:1: boom' >&2\nexit 3\n")
    fake.chmod(0o755)
    outcome = binary.run_binary(shared_data.require_scenario("iter_recurse.rpl"), True, fake)
    assert not outcome.passed and "exited with code 3 before accepting TCP" in outcome.reason
    assert "boom" in outcome.log_tail


def test_namespace_accepts_loopback_server_addresses():
    """A scenario naming ::1 or 127.x (val_wild_pos_multi's `ns. AAAA ::1`) sets up:
    lo owns them once up, and adding ::1 again used to abort the run."""
    _root_or_skip()
    code = ("import socket\nfrom tests.scenarios import netservers\n"
            "netservers.setup_namespace(['::1', '127.0.0.5', '10.1.1.1', '::2'])\n"
            "for fam, addr in ((socket.AF_INET6, '::1'), (socket.AF_INET6, '::2'), "
            "(socket.AF_INET, '10.1.1.1'), (socket.AF_INET, '127.0.0.5')):\n"
            "    socket.socket(fam, socket.SOCK_DGRAM).bind((addr, 53))\n")
    proc = subprocess.run(binary.unshare_prefix() + [sys.executable, "-c", code],
                          cwd=binary.PROJECT_ROOT, capture_output=True, text=True, timeout=60,
                          env=dict(os.environ, PYTHONPATH=str(binary.PROJECT_ROOT)))
    assert proc.returncode == 0, proc.stderr
