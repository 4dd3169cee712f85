"""kresd/bindings/net.py: the TCP client limits, net.tcp_in_idle (kresd) and
net.tcp_max_clients (kresd-py)."""
from __future__ import annotations

import pytest

from kresd.engine import Engine, FakeScheduler
from kresd.errors import ConfigError
from workers.settings import Settings


@pytest.fixture
def eng(tmp_path):
    e = Engine(Settings(), rundir=str(tmp_path), scheduler=FakeScheduler())
    yield e
    e.stop()


def test_tcp_in_idle_milliseconds_as_kresd(eng):
    assert eng.eval("net.tcp_in_idle()") == "10000"  # kresd's default, 10 s
    assert eng.eval("net.tcp_in_idle(2500)") == "true"
    assert eng.settings.tcp_idle_timeout == 2.5
    assert eng.eval("net.tcp_in_idle()") == "2500"
    eng.load_config_text("net.tcp_in_idle(30000)\n", name="t")
    assert eng.settings.tcp_idle_timeout == 30.0


@pytest.mark.parametrize("bad", ["0", "-5", "'10s'", "true", "{}", "0.5"])
def test_tcp_in_idle_rejects_non_positive_and_non_numbers(eng, bad):
    with pytest.raises(ConfigError) as e:
        eng.load_config_text(f"net.tcp_in_idle({bad})\n", name="t")
    assert "tcp_in_idle" in str(e.value)
    assert eng.settings.tcp_idle_timeout == 10.0


def test_tcp_max_clients(eng):
    assert eng.eval("net.tcp_max_clients()") == "512"
    eng.load_config_text("net.tcp_max_clients(8)\n", name="t")
    assert eng.settings.tcp_max_clients == 8
    assert eng.eval("net.tcp_max_clients()") == "8"
    for bad in ("0", "-1", "'many'", "2.5"):
        with pytest.raises(ConfigError):
            eng.load_config_text(f"net.tcp_max_clients({bad})\n", name="t")
    assert eng.settings.tcp_max_clients == 8
