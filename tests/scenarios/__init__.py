"""Replay harness for .rpl resolver scenarios (Unbound testbound / Deckard style).

rpl.py parses files, match.py holds MATCH/ADJUST semantics, config.py maps
headers onto Settings, replay.py plays a scenario against the core with a fake
network and clock, expected.py reads the expected-failures list, run.py is the
CLI. The core is imported lazily, so the harness itself imports without it.
"""
