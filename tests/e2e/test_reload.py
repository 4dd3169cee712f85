"""Rolling reload of `kresd -f 4` (kresd/reload.py) on the real binary.

- a config that fails the check is refused on the console with file:line,
  and no process restarts (the same PIDs serve);
- a good config reaches all 4 processes (`map` shows the new value), each
  replaced by a new process one at a time, worker 0 included (the leader then
  only supervises);
- under dnsperf at 5k QPS during the reload, no query is lost;
- a worker killed after the reload is respawned, and a second reload works.
"""
from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import time

import pytest

from tests.conftest import alloc_test_addr, free_port

from .test_kresd_forks import LOCAL_CONFIG, Group, map_json, wait_for

pytestmark = pytest.mark.e2e
KRESC_ARGS = []


def kresc(kresd_bin, *args):
    return subprocess.run([str(kresd_bin.parent / "kresc"), *map(str, args)], capture_output=True, text=True,
                          timeout=90)


def serving(g) -> list[int]:
    return sorted(int(p.name) for p in g.tty_dir.iterdir() if p.name.isdigit())


def values(g, expr):
    return map_json(g.tty_dir / str(serving(g)[0]), expr)


@pytest.fixture
def group(kresd_bin, tmp_path):
    addr = alloc_test_addr()
    port = free_port(addr)
    g = Group(kresd_bin, tmp_path / "run", ["-f", "4", "-a", f"{addr}@{port}"],
              config=LOCAL_CONFIG + "answer_me = 1\n")
    g.dns = (addr, port)
    g.start(4)
    yield g
    assert g.stop() == 0
    print(g.log_tail())


def test_bad_config_changes_nothing(kresd_bin, group):
    before = serving(group)
    group.conf.write_text(LOCAL_CONFIG + "answer_me = 2\n\nbroken = = 1\n")
    r = kresc(kresd_bin, group.rundir, "reload()")
    assert r.returncode == 1 and re.search(r"\.conf:5: ", r.stdout), r
    time.sleep(1.0)
    assert serving(group) == before
    assert values(group, "answer_me") == [1, 1, 1, 1]


def test_reload_under_load_loses_nothing(kresd_bin, group, tmp_path):
    dnsperf = shutil.which("dnsperf")
    assert dnsperf, "dnsperf is installed by tools/install.sh"
    before = serving(group)
    names = tmp_path / "names"
    names.write_text("".join(f"r{i}.test. A\n" for i in range(500)))
    load = subprocess.Popen([dnsperf, "-s", group.dns[0], "-p", str(group.dns[1]), "-d", str(names),
                             "-l", "8", "-Q", "5000", "-c", "4", "-t", "5"],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    time.sleep(1.5)
    group.conf.write_text(LOCAL_CONFIG + "answer_me = 2\n")
    r = kresc(kresd_bin, group.rundir, "reload()")
    assert r.returncode == 0 and "config OK" in r.stdout, r
    wait_for(lambda: len(set(serving(group)) & set(before)) == 0 and len(serving(group)) == 4, 40,
             "4 new processes")
    out, _ = load.communicate(timeout=60)
    sent = int(re.search(r"Queries sent:\s+(\d+)", out).group(1))
    lost = int(re.search(r"Queries lost:\s+(\d+)", out).group(1))
    assert sent > 20000 and lost == 0, out
    assert values(group, "answer_me") == [2, 2, 2, 2]
    assert values(group, "worker.id") == [0, 1, 2, 3]
    assert group.proc.poll() is None and group.proc.pid not in serving(group)  # the leader supervises


def test_respawn_and_second_reload_after_a_reload(kresd_bin, group):
    group.conf.write_text(LOCAL_CONFIG + "answer_me = 2\n")
    assert kresc(kresd_bin, group.rundir, "reload()").returncode == 0
    wait_for(lambda: group.proc.pid not in serving(group) and len(serving(group)) == 4, 40, "the reload")
    victim = serving(group)[1]
    os.kill(victim, signal.SIGKILL)
    wait_for(lambda: victim not in serving(group) and len(serving(group)) == 4, 30, "a respawn")
    before = serving(group)
    group.conf.write_text(LOCAL_CONFIG + "answer_me = 3\n")
    assert kresc(kresd_bin, group.rundir, "reload()").returncode == 0
    wait_for(lambda: not set(serving(group)) & set(before) and len(serving(group)) == 4, 40, "a second reload")
    assert values(group, "answer_me") == [3, 3, 3, 3]
