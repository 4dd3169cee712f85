"""Replay harness for .rpl resolver scenarios (Unbound testbound / Deckard style).

rpl.py parses files, match.py holds MATCH/ADJUST semantics, responder.py the
scripted servers' answering logic (shared by both runners), config.py the
header -> template variables, template.py renders kresd.j2, replay.py plays a
scenario in-process (fake network and clock; the template loaded through the
Lua engine), binary.py + nsdriver.py + netservers.py run the real `kresd`
binary in a network namespace under libfaketime, expected.py reads the
expected-failures lists, run.py is the CLI. The core is imported lazily, so
the harness itself imports without it.
"""
