"""kresd/console.py: line evaluation over a pipe, errors, EOF."""
from __future__ import annotations

import asyncio
import io
import os

from kresd.console import Console
from kresd.engine import Engine, FakeScheduler
from workers.settings import Settings


def _engine(tmp_path):
    return Engine(Settings(), rundir=str(tmp_path), scheduler=FakeScheduler())


def test_console_over_pipe_survives_errors_and_eof(tmp_path):
    eng = _engine(tmp_path)
    r, w = os.pipe()
    out = io.StringIO()
    con = Console(eng, fd=r, out=out, prompt=True)
    loop = asyncio.new_event_loop()
    try:
        con.start(loop)
        os.write(w, b"nosuch_function()\nnet.listen('127.0.0.9', 5300)\n")
        os.write(w, b"net.list()[1].transport.ip\n1 +\nx = 1\nx + 1")
        os.close(w)
        loop.run_until_complete(asyncio.sleep(0.05))
        assert con.closed  # EOF detaches the console; nothing else stops
    finally:
        con.stop()
        loop.close()
        os.close(r)
        eng.stop()
    text = out.getvalue()
    assert text.startswith("> ")
    assert "error: " in text and "nosuch_function" in text
    assert '"127.0.0.9"' in text
    assert text.rstrip().endswith("2")  # last line without newline still evaluated
    assert eng.settings.listen[0].addr == "127.0.0.9"


def test_console_quiet_has_no_prompt(tmp_path):
    eng = _engine(tmp_path)
    out = io.StringIO()
    con = Console(eng, fd=0, out=out, prompt=False)
    assert con.feed_line("1 + 2") == "3"
    assert con.feed_line("   ") == ""
    assert out.getvalue() == "3\n"
    eng.stop()


def test_console_quit_calls_hook(tmp_path):
    eng = _engine(tmp_path)
    seen = []
    eng.on_quit = seen.append
    Console(eng, fd=0, out=io.StringIO()).feed_line("quit()")
    assert seen == [0] and eng.quit_requested == 0
    eng.stop()
