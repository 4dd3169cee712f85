"""kresd/log.py: kresd's `[group] message` format and levels."""
from __future__ import annotations

import io

import pytest

from kresd import log


@pytest.fixture
def stream():
    s = io.StringIO()
    log.setup("notice", stream=s)
    yield s
    log.reset()


def test_format_and_default_level(stream):
    log.notice(log.Group.SYSTEM, "hello %s", "world")
    log.info(log.Group.NETWORK, "not shown")
    log.debug(log.Group.NETWORK, "not shown")
    log.error(log.Group.NETWORK, "bad")
    assert stream.getvalue() == "[system] hello world\n[net   ] bad\n"


def test_debug_level(stream):
    log.set_level("debug")
    assert log.debug_enabled(log.Group.ITERATOR) and log.get_level() == "debug"
    log.debug(log.Group.ITERATOR, "x")
    assert stream.getvalue() == "[iterat] x\n"
    with pytest.raises(ValueError):
        log.set_level("loud")
