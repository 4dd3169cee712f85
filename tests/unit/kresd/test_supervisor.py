"""kresd/supervisor.py: cpu-map, rate limiter, and real process groups (procmodel_helper.py)."""
from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

from kresd import supervisor
from kresd.sockets import ListenSocket
from kresd.supervisor import (EXIT_RESPAWN_LIMIT, RestartLimiter, cpus_for, describe_exit,
                              parse_cpu_map)

HELPER = Path(__file__).with_name("procmodel_helper.py")
ROOT = Path(__file__).resolve().parents[3]
ALLOWED = sorted(psutil.Process().cpu_affinity())


# --- pure parts ---------------------------------------------------------------------


def test_parse_cpu_map():
    assert parse_cpu_map("0=0 1=1 2=2 3=3") == {0: (0,), 1: (1,), 2: (2,), 3: (3,)}
    assert parse_cpu_map("0=0,1 1=2") == {0: (0, 1), 1: (2,)}
    assert parse_cpu_map("") == {}
    for bad in ("0", "x=1", "0=", "0=a", "-1=0", "0=-2"):
        with pytest.raises(ValueError):
            parse_cpu_map(bad)


def test_cpus_for_wraps_and_map_overrides():
    assert [cpus_for(i, [0, 1]) for i in range(4)] == [[0], [1], [0], [1]]
    assert cpus_for(3, [4, 6, 8]) == [4]
    assert cpus_for(1, [0, 1], {1: (0,)}) == [0]
    assert cpus_for(2, [0, 1], {1: (0,)}) == [0]


def test_restart_limiter_fake_clock():
    now = [0.0]
    lim = RestartLimiter(3, 10.0, clock=lambda: now[0])
    assert all(lim.record() for _ in range(3))
    assert not lim.record()  # 4th within 10 s
    now[0] = 100.0
    assert lim.record()  # old deaths left the window


def test_describe_exit():
    assert describe_exit(3) == "exited with code 3"
    assert describe_exit(-9) == "killed by signal SIGKILL"


def test_exec_command_passes_fds_and_worker_id():
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as u, \
            socket.socket(socket.AF_INET, socket.SOCK_STREAM) as t:
        socks = [ListenSocket(u, "dns"), ListenSocket(t, "tls")]
        arb = supervisor.Arbiter(socks, 4, lambda w, s: 0, exec_prefix=["kresd"],
                                 exec_args=["-c", "config", "/rundir"], pin_cpus=False)
        assert arb.exec_command(2) == ["kresd", "-c", "config", "/rundir", "-S", str(u.fileno()),
                                       "-S", f"{t.fileno()}:tls", "-f", "4", "--worker-id", "2",
                                       "--leader-pid", str(os.getpid())]


@pytest.fixture
def sleepers():
    procs = []

    def make(n):
        procs.extend(subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
                     for _ in range(n))
        return [p.pid for p in procs[-n:]]

    yield make
    for p in procs:
        p.kill()
        p.wait()


def test_arbiter_moves_a_crowded_default_pinned_worker_and_brings_it_home(sleepers, caplog):
    """Arbiter.balance pins for real (two sleeping processes as workers 1 and 2 of a
    leader that does not serve); loads are given, as the sampler would measure them."""
    if len(ALLOWED) < 2:
        pytest.skip("moving a worker needs 2 allowed CPUs")
    a, b = ALLOWED[0], ALLOWED[1]
    p1, p2 = sleepers(2)
    arb = supervisor.Arbiter([], 3, lambda w, s: 0, leader_serves=False, cpu_map={2: (b,)})
    arb._allowed = [a, b]
    for wid, pid in ((1, p1), (2, p2)):
        arb.workers[wid] = supervisor.Worker(wid, pid, 0.0, arb.cpus(wid))
        supervisor.pin(pid, arb.cpus(wid))
    assert psutil.Process(p1).cpu_affinity() == [b]  # worker 1: home b (1 modulo 2)
    crowded = ({a: 0.3, b: 1.0}, {1: 0.2, 2: 0.1})  # b: 70 % not kresd's
    assert arb.balance(0.0, crowded) is None  # not sustained yet
    move = arb.balance(1.0, crowded)
    assert (move.wid, move.cpu) == (1, a)  # worker 2 has an explicit map entry: never moved
    assert psutil.Process(p1).cpu_affinity() == [a] and arb.workers[1].cpus == [a]
    assert psutil.Process(p2).cpu_affinity() == [b]
    assert arb.cpus(1) == [a]  # a respawn of worker 1 would start there too
    quiet = ({a: 0.5, b: 0.15}, {1: 0.2, 2: 0.1})  # only worker 2 left on b: 5 % foreign
    assert arb.balance(5.0, quiet) is None  # held
    move = arb.balance(1.0 + supervisor.cpubalance.HOLD, quiet)
    assert (move.wid, move.cpu, move.home) == (1, b, True)
    assert psutil.Process(p1).cpu_affinity() == [b] and arb.cpus(1) == [b]
    arb.balance(0.0, crowded)
    arb.set_pinning(None)  # a new cpu-map from the config: placement decided anew
    assert arb.balancer.crowded == {} and arb.balancer.away == {}


def test_arbiter_balance_skips_during_a_reload_and_with_pinning_off(sleepers):
    (p1,) = sleepers(1)
    arb = supervisor.Arbiter([], 2, lambda w, s: 0, leader_serves=False, pin_cpus=False)
    arb.workers[1] = supervisor.Worker(1, p1, 0.0, None)
    arb._allowed = ALLOWED[:2] * (2 if len(ALLOWED) < 2 else 1)
    crowded = ({c: 1.0 for c in ALLOWED}, {1: 0.0})
    assert [arb.balance(float(t), crowded) for t in range(4)] == [None] * 4  # pinning off
    arb.pin_cpus = True
    arb.replacing = {12345: None}
    assert [arb.balance(float(t), crowded) for t in range(4)] == [None] * 4  # a reload runs
    assert arb.balancer.crowded == {}


def test_arbiter_balance_failures(monkeypatch):
    """A worker that died meanwhile is forgotten; a pin refused for a live one stops
    the balancing, logged once, and the timer is not armed again."""
    arb = supervisor.Arbiter([], 2, lambda w, s: 0, leader_serves=False)
    arb._allowed = [0, 1]
    arb.workers[1] = supervisor.Worker(1, 424242, 0.0, [1])
    crowded = ({0: 0.3, 1: 1.0}, {1: 0.2})
    monkeypatch.setattr(supervisor, "pin", lambda pid, cpus: False)
    monkeypatch.setattr(supervisor, "_alive", lambda pid: False)
    arb.balance(0.0, crowded)
    assert arb.balance(1.0, crowded).cpu == 0 and arb.balancer.away == {}  # gone: forgotten
    monkeypatch.setattr(supervisor, "_alive", lambda pid: True)
    arb.balance(20.0, crowded)
    with pytest.raises(RuntimeError, match="cannot pin worker 1"):
        arb.balance(21.0, crowded)

    class Loop:
        armed = 0

        def call_later(self, delay, fn):
            Loop.armed += 1

    arb._loop = Loop()
    arb._balance_start()
    assert Loop.armed == 1
    monkeypatch.setattr(arb, "balance", lambda now: 1 / 0)
    arb._balance_tick()
    assert Loop.armed == 1  # stopped, not re-armed
    monkeypatch.setattr(arb, "balance", lambda now: None)
    arb._balance_tick()
    assert Loop.armed == 2


def test_follow_leader_false_when_the_parent_is_not_the_leader():
    try:
        assert supervisor.follow_leader(os.getppid() + 1) is False
        assert supervisor.follow_leader(os.getppid()) is True
        assert supervisor.followed_leader() == os.getppid()
    finally:  # pytest itself must not follow its parent
        supervisor._set_pdeathsig(0)
        supervisor._leader_pid = None


# A leader (this script) forks a worker that follows it, drops to nobody (which clears
# PR_SET_PDEATHSIG), re-arms it or not, says ready; the leader then exits. The worker
# prints TERM when the leader's death signal arrives (else SIGALRM ends it silently).
FOLLOW_AFTER_SETUID = r"""
import os, pwd, signal, sys
sys.path.insert(0, sys.argv[2])
from kresd import supervisor
r, w = os.pipe()
if os.fork() == 0:
    os.close(r)
    assert supervisor.follow_leader(os.getppid())
    signal.signal(signal.SIGTERM, lambda *a: (print("TERM", flush=True), os._exit(0)))
    signal.alarm(5)
    nobody = pwd.getpwnam("nobody")
    os.setgroups([]); os.setgid(nobody.pw_gid); os.setuid(nobody.pw_uid)
    if sys.argv[1] == "rearm":
        supervisor.follow_leader_again()
    os.write(w, b"R")
    while True:
        signal.pause()
os.close(w)
assert os.read(r, 1) == b"R"
os._exit(0)
"""


@pytest.mark.root
@pytest.mark.parametrize("mode", ["rearm", "no-rearm"])
def test_leader_death_signal_after_user_needs_rearming(mode):
    r = subprocess.run([sys.executable, "-c", FOLLOW_AFTER_SETUID, mode, str(ROOT)], capture_output=True,
                       text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    # the output pipe closes when the worker exits: TERM at once, or SIGALRM after 5 s
    assert ("TERM" in r.stdout) == (mode == "rearm"), (r.stdout, r.stderr)


# --- real process groups ------------------------------------------------------------


def start_helper(*args) -> subprocess.Popen:
    env = dict(os.environ, PYTHONPATH=str(ROOT), PYTHONUNBUFFERED="1")
    return subprocess.Popen([sys.executable, str(HELPER), *args], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, start_new_session=True)


def ask(addr, wait=2.0) -> tuple[int, int]:
    """One UDP echo -> (worker_id, pid)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.settimeout(wait)
        s.sendto(b"ping", addr)
        wid, pid, _ = s.recv(200).split(b" ", 2)
        return int(wid), int(pid)


def workers_seen(addr, want: int, deadline: float = 10.0) -> dict[int, int]:
    """Query (many source ports) until `want` worker ids answered: {wid: pid}."""
    seen: dict[int, int] = {}
    end = time.monotonic() + deadline
    while len(seen) < want and time.monotonic() < end:
        try:
            wid, pid = ask(addr, 0.5)
            seen[wid] = pid
        except OSError:
            time.sleep(0.02)
    return seen


def stop(p: subprocess.Popen, sig=signal.SIGTERM, timeout=15.0) -> int:
    if p.poll() is None:
        os.kill(p.pid, sig)
    try:
        return p.wait(timeout)
    finally:
        try:
            os.killpg(p.pid, signal.SIGKILL)  # never leave anything behind
        except ProcessLookupError:
            pass
        p.communicate()


def group_members(pgid: int) -> list[psutil.Process]:
    out = []
    for proc in psutil.process_iter(["pid"]):
        try:
            if os.getpgid(proc.pid) == pgid and proc.status() != psutil.STATUS_ZOMBIE:
                out.append(proc)
        except (ProcessLookupError, psutil.Error):
            pass
    return out


@pytest.fixture
def group(listen_addr):
    started = []

    def start(*args):
        addr, port = listen_addr
        p = start_helper("arbiter", "--addr", f"{addr}:{port}", *args)
        started.append(p)
        return p, (addr, port)

    yield start
    for p in started:
        stop(p, signal.SIGKILL, 5.0)


def test_four_workers_one_group_pinned_and_serving(group):
    p, addr = group("--count", "4", "--loop")
    seen = workers_seen(addr, 4)
    assert sorted(seen) == [0, 1, 2, 3]
    assert seen[0] == p.pid  # the leader serves as worker 0
    members = group_members(p.pid)
    assert sorted(m.pid for m in members) == sorted(seen.values())
    for wid, pid in seen.items():  # pinning wraps around the allowed CPUs
        assert psutil.Process(pid).cpu_affinity() == [ALLOWED[wid % len(ALLOWED)]]
    assert stop(p) == 0
    assert group_members(p.pid) == []


def test_cpu_map_overrides_and_pinning_off(group, listen_addr):
    if len(ALLOWED) < 2:
        pytest.skip("needs 2 CPUs")
    a, b = ALLOWED[0], ALLOWED[1]
    p, addr = group("--count", "2", "--loop", "--cpu-map", f"0={b} 1={a}")
    seen = workers_seen(addr, 2)
    assert psutil.Process(seen[0]).cpu_affinity() == [b]
    assert psutil.Process(seen[1]).cpu_affinity() == [a]
    assert stop(p) == 0


def test_pinning_can_be_disabled(group):
    p, addr = group("--count", "2", "--no-pin")
    seen = workers_seen(addr, 2)
    for pid in seen.values():
        assert psutil.Process(pid).cpu_affinity() == ALLOWED
    assert stop(p) == 0  # loop-less leader: SIGTERM -> 0


def test_kill9_fork_is_replaced_within_2s(group):
    p, addr = group("--count", "3", "--loop")
    seen = workers_seen(addr, 3)
    victim = seen[2]
    os.kill(victim, signal.SIGKILL)
    t0 = time.monotonic()
    new = None
    while time.monotonic() - t0 < 2.0:
        fresh = [c for c in psutil.Process(p.pid).children() if c.pid not in seen.values()]
        if fresh:
            try:
                if wid_of(fresh[0]) == 2:
                    new = fresh[0]
                    break
            except psutil.Error:
                pass
        time.sleep(0.02)
    assert new is not None, "no replacement within 2 s"
    assert os.getpgid(new.pid) == p.pid
    assert new.cpu_affinity() == [ALLOWED[2 % len(ALLOWED)]]
    # and it serves (the exec'd entry point adopted the inherited sockets)
    again = workers_seen(addr, 3)
    assert again[2] == new.pid and again[0] == p.pid and again[1] == seen[1]
    assert stop(p) == 0


def wid_of(proc: psutil.Process) -> int:
    cmd = proc.cmdline()
    return int(cmd[cmd.index("--worker-id") + 1])


def test_kill9_leader_forks_and_respawned_fork_exit(group):
    """PR_SET_PDEATHSIG: after kill -9 of the leader, every fork (start-up forks and
    a fork+exec respawn alike) gets SIGTERM, stops gracefully and exits."""
    p, addr = group("--count", "3", "--loop")
    seen = workers_seen(addr, 3)
    os.kill(seen[2], signal.SIGKILL)
    end = time.monotonic() + 10
    respawned = []
    while not respawned and time.monotonic() < end:
        respawned = [c.pid for c in psutil.Process(p.pid).children() if c.pid not in seen.values()]
        time.sleep(0.02)
    assert respawned, "no replacement fork"
    assert workers_seen(addr, 3)[2] == respawned[0]  # the respawn serves
    os.kill(p.pid, signal.SIGKILL)
    assert p.wait(10) == -signal.SIGKILL
    end = time.monotonic() + 15
    while group_members(p.pid) and time.monotonic() < end:
        time.sleep(0.05)
    assert group_members(p.pid) == [], "forks outlived their leader"


def test_kill_process_group_stops_all(group):
    p, addr = group("--count", "3", "--loop")
    workers_seen(addr, 3)
    os.killpg(p.pid, signal.SIGTERM)
    assert p.wait(15) == 0
    end = time.monotonic() + 5
    while group_members(p.pid) and time.monotonic() < end:
        time.sleep(0.05)
    assert group_members(p.pid) == []


def test_crash_loop_halts_with_distinct_code(group):
    p, _ = group("--count", "2", "--loop", "--crash", "1", "--max-restarts", "3", "--window", "60")
    assert p.wait(30) == EXIT_RESPAWN_LIMIT
    _, err = p.communicate()
    assert "crash loop" in err and "started worker 1 again" in err
    assert group_members(p.pid) == []


def test_boot_error_is_not_respawned(group):
    p, _ = group("--count", "3", "--crash", "2", "--crash-code", "3")
    assert p.wait(15) == 3  # EXIT_CONFIG, as the failing fork reported
    _, err = p.communicate()
    assert "failed to start" in err and "again" not in err
