"""The real `kresd` process model (issue 4): -f N, pinning, rundir/tty/, map(),
shared cache, respawn, socket activation, restarts under tools/supervisor.py.

Every kresd here is the installed entry point (`.venv/bin/kresd`) in its own
session; addresses come from the 127.0.11.x pool with free ports
(`listen_addr`), except that the upstream-resolving tests use the knotd
hierarchy of tests/e2e (root only: knotd on 127.0.10.x@53). Waits are bounded
polls, never bare sleeps.
"""
from __future__ import annotations

import json
import os
import pwd
import re
import shutil
import signal
import socket
import struct
import subprocess
import sys
import threading
import time
from pathlib import Path

import dns.message
import dns.query
import dns.rcode
import psutil
import pytest

from .hierarchy import CASES, ROOT_ADDR, check_case
from .resolver import CONFIG as HIERARCHY_CONFIG

pytestmark = pytest.mark.e2e
ROOT = Path(__file__).resolve().parents[2]
LOCAL_CONFIG = """modules.load('stats')
policy.add(policy.suffix(policy.DENY, {todname('test.')}))
"""


def ask(addr, name="x.test.", qtype="A", tcp=False, timeout=3.0):
    q = dns.message.make_query(name, qtype)
    fn = dns.query.tcp if tcp else dns.query.udp
    return fn(q, addr[0], port=addr[1], timeout=timeout)


def wait_for(pred, timeout, what):
    end = time.monotonic() + timeout
    while True:
        v = pred()
        if v:
            return v
        if time.monotonic() > end:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.02)


# --- the control socket client (kresd's console protocol, binary mode) -----------------


def tty(path, *lines, timeout=10.0) -> list[str]:
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.settimeout(timeout)
        s.connect(str(path))
        assert s.recv(2) == b"> "
        s.sendall(b"__binary\n")
        out = []
        for line in lines:
            s.sendall(line.encode() + b"\n")
            (n,) = struct.unpack(">I", recv_exact(s, 4))
            out.append(recv_exact(s, n).decode() if n else "")
        return out


def recv_exact(s, n):
    """Exactly n bytes from stream socket s (ConnectionError if it closes first)."""
    buf = b""
    while len(buf) < n:
        chunk = s.recv(n - len(buf))
        if not chunk:
            raise ConnectionError(f"connection closed after {len(buf)} of {n} bytes")
        buf += chunk
    return buf


def tty_json(path, expr):
    """The value of a Lua expression on one instance (the __json transfer map() uses)."""
    (raw,) = tty(path, f"__json {expr}")
    env = json.loads(raw)
    assert env["ok"], env
    return env["value"]


def map_json(path, expr):
    """map(expr) run by the instance at path: the ordered list of values
    (the Lua table {v1, v2, ..., n = count} arrives as a JSON object)."""
    res = tty_json(path, f"map({expr!r})")
    assert isinstance(res, dict) and "n" in res, res
    return [res[str(i)] for i in range(1, res["n"] + 1)]


# --- a kresd group -------------------------------------------------------------------------


class Group:
    def __init__(self, kresd_bin, rundir: Path, args, config=LOCAL_CONFIG, env=None):
        self.rundir = Path(rundir)
        self.rundir.mkdir(parents=True, exist_ok=True)
        self.conf = self.rundir.parent / f"{self.rundir.name}-{id(self)}.conf"
        self.conf.write_text(config)
        self.log = self.rundir.parent / f"{self.rundir.name}-{id(self)}.log"
        self.argv = [str(kresd_bin), *args, "-c", str(self.conf), str(self.rundir)]
        self.env = env
        self.proc = None

    @property
    def tty_dir(self) -> Path:
        return self.rundir / "tty"

    def start(self, n: int, popen_kw=None):
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen(self.argv, stdin=subprocess.DEVNULL, stdout=log,
                                         stderr=subprocess.STDOUT, start_new_session=True,
                                         env=self.env, **(popen_kw or {}))
        wait_for(lambda: self.proc.poll() is not None or len(self.live()) >= n, 20, f"{n} tty sockets")
        assert self.proc.poll() is None, self.log_tail()
        return self

    def pids(self) -> list[int]:
        """The leader and its children (psutil)."""
        me = psutil.Process(self.proc.pid)
        return [me.pid] + [c.pid for c in me.children()]

    def live(self) -> list[Path]:
        """Control sockets of this group's live processes."""
        try:
            pids = set(self.pids())
        except psutil.NoSuchProcess:
            return []
        return [p for p in sorted(self.tty_dir.glob("*")) if p.name.isdigit() and int(p.name) in pids]

    @property
    def leader_tty(self) -> Path:
        return self.tty_dir / str(self.proc.pid)

    def stop(self, sig=signal.SIGTERM) -> int:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, sig) if sig == signal.SIGKILL else self.proc.send_signal(sig)
        try:
            return self.proc.wait(20)
        finally:
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass

    def log_tail(self, n=40) -> str:
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-n:])

    def cpu_of(self, wid: int, allowed) -> int:
        """Where worker `wid` belongs: its default CPU (id modulo the allowed CPUs),
        unless the leader logged that it moved it off a crowded CPU (kresd/cpubalance.py)."""
        cpu = allowed[wid % len(allowed)]
        for m in re.finditer(rf"worker {wid} \(pid \d+\) (?:moved to|back on) CPU (\d+)",
                             self.log.read_text(errors="replace")):
            cpu = int(m.group(1))
        return cpu


@pytest.fixture
def group_factory(kresd_bin, tmp_path):
    groups: list[Group] = []

    def make(rundir, args, config=LOCAL_CONFIG, n=1, env=None, popen_kw=None):
        g = Group(kresd_bin, rundir, args, config, env)
        groups.append(g)
        return g.start(n, popen_kw)

    yield make
    for g in groups:
        if g.proc is not None:
            g.stop()
            print(g.log_tail())


@pytest.fixture(scope="module")
def four(kresd_bin, tmp_path_factory):
    """kresd -f 4 on a fresh address, shared by the tests that only look at it."""
    from tests.conftest import free_port

    addr = "127.0.10.41"  # fixed (module scope): the e2e range of tests/conftest.py, free port
    port = free_port(addr)
    g = Group(kresd_bin, tmp_path_factory.mktemp("four") / "rundir", ["-f", "4", "-a", f"{addr}@{port}"])
    g.addr = (addr, port)
    g.start(4)
    yield g
    code = g.stop()
    print(g.log_tail())
    assert code == 0
    left = sorted(p.name for p in g.tty_dir.iterdir()) if g.tty_dir.exists() else []
    assert left == [], f"a clean stop removes every tty socket, left: {left}"


def test_four_forks_one_group_pinned_tty_lists_them(four):
    pids = four.pids()
    assert len(pids) == 4
    assert {os.getpgid(p) for p in pids} == {four.proc.pid}
    assert sorted(int(p.name) for p in four.tty_dir.iterdir()) == sorted(pids)
    allowed = sorted(os.sched_getaffinity(0))
    ids = {}
    for p in pids:
        wid = tty_json(four.tty_dir / str(p), "{id = worker.id, count = worker.count, pid = worker.pid}")
        assert wid["count"] == 4 and wid["pid"] == p
        ids[wid["id"]] = p
        assert psutil.Process(p).cpu_affinity() == [four.cpu_of(wid["id"], allowed)]  # wraps
    assert sorted(ids) == [0, 1, 2, 3] and ids[0] == four.proc.pid


def test_4000_udp_queries_reach_every_fork(four):
    errors = []

    def client(n):
        for _ in range(n):
            try:
                with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:  # a new source port each
                    s.settimeout(3)
                    q = dns.message.make_query("x.test.", "A")
                    s.sendto(q.to_wire(), four.addr)
                    r = dns.message.from_wire(s.recv(4096))
                    assert r.id == q.id and r.rcode() == dns.rcode.NXDOMAIN
            except Exception as e:  # noqa: BLE001 - collected
                errors.append(repr(e))

    threads = [threading.Thread(target=client, args=(500,)) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert not errors, errors[:5]
    per_tty = {int(p.name): int(tty(p, "worker.stats().queries")[0]) for p in four.tty_dir.iterdir()}
    assert len(per_tty) == 4 and all(v > 0 for v in per_tty.values()), per_tty
    assert sum(per_tty.values()) >= 4000
    through_map = map_json(four.leader_tty, "worker.stats().queries")
    assert len(through_map) == 4 and all(v > 0 for v in through_map), through_map
    summed = tty_json(four.leader_tty, "stats.sum('request.')")
    assert summed["request.udp"] >= 4000
    assert tty(four.leader_tty, "map('worker.id').n")[0] == "4"


def test_bad_console_command_and_socat(four):
    path = four.tty_dir / str(four.pids()[2])
    out = tty(path, "this is not lua", "error('boom')", "1 + 1")
    assert out[0].startswith("error:") and "boom" in out[1] and out[2] == "2"
    assert ask(four.addr).rcode() == dns.rcode.NXDOMAIN
    with pytest.raises(AssertionError, match="boom"):
        map_json(four.leader_tty, "error('boom')")
    if shutil.which("socat") is None:
        pytest.skip("socat is not installed")
    r = subprocess.run(["socat", "-", f"UNIX-CONNECT:{path}"], input="worker.count\nfoo(\n",
                       capture_output=True, text=True, timeout=10)
    assert r.stdout.startswith("> 4\n> error:"), r.stdout


def test_kill9_fork_stale_socket_skipped_replacement_within_2s(four):
    victim = four.pids()[1]
    wid = tty_json(four.tty_dir / str(victim), "worker.id")
    os.kill(victim, signal.SIGKILL)
    t0 = time.monotonic()
    wait_for(lambda: victim not in four.pids(), 5, "the leader to reap the fork")
    stale = four.tty_dir / str(victim)
    values = map_json(four.leader_tty, "worker.pid")
    assert victim not in values and len(values) in (3, 4)
    if stale.exists():  # still there unless the replacement already cleaned it
        with socket.socket(socket.AF_UNIX) as s, pytest.raises(ConnectionRefusedError):
            s.connect(str(stale))
    wait_for(lambda: len(four.live()) == 4, max(0.1, 2.0 - (time.monotonic() - t0)),
             "the replacement in tty/ within 2 s of the kill")
    ids = {tty_json(p, "worker.id"): int(p.name) for p in four.live()}
    assert sorted(ids) == [0, 1, 2, 3] and ids[wid] != victim
    assert not stale.exists()  # the replacement removed the stale socket
    assert sorted(map_json(four.leader_tty, "worker.id")) == [0, 1, 2, 3]
    allowed = sorted(os.sched_getaffinity(0))
    assert psutil.Process(ids[wid]).cpu_affinity() == [four.cpu_of(wid, allowed)]
    assert ask(four.addr).rcode() == dns.rcode.NXDOMAIN


def logged(g: Group, pattern: str) -> None:
    try:
        wait_for(lambda: re.search(pattern, g.log.read_text(errors="replace")), 5, f"log line {pattern!r}")
    except AssertionError as e:
        raise AssertionError(f"{e}\n{g.log_tail()}") from None


def test_a_worker_crowded_out_of_its_cpu_moves_and_comes_back(group_factory, tmp_path, listen_addr):
    """A busy loop pinned to worker 1's CPU: the leader moves worker 1 to a free
    CPU within seconds (logged), it keeps serving, and once the loop ends it goes
    home after the hold time."""
    from kresd.cpubalance import HOLD, INTERVAL, SUSTAIN

    allowed = sorted(os.sched_getaffinity(0))
    if len(allowed) < 2:
        pytest.skip("moving a worker needs 2 allowed CPUs")
    g = group_factory(tmp_path / "rundir", ["-f", "2", "-a", f"{listen_addr[0]}@{listen_addr[1]}"], n=2)
    ids = {tty_json(p, "worker.id"): int(p.name) for p in g.live()}
    w1, home = ids[1], allowed[1]
    assert psutil.Process(w1).cpu_affinity() == [home]
    hog = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        psutil.Process(hog.pid).cpu_affinity([home])
        wait_for(lambda: psutil.Process(w1).cpu_affinity() != [home], INTERVAL * (SUSTAIN + 8),
                 "worker 1 to leave the CPU the busy loop saturates")
        (cpu,) = psutil.Process(w1).cpu_affinity()
        assert cpu in allowed and cpu != home
        moved = rf"worker 1 \(pid {w1}\) moved to CPU {cpu}: CPU {home} was \d+% busy, \d+% of it outside kresd"
        logged(g, moved)  # (the leader pins first, then logs: the line may lag the pin)
        assert psutil.Process(ids[0]).cpu_affinity() == [allowed[0]]  # the leader was not crowded
        for _ in range(20):  # both still serve
            assert ask(listen_addr).rcode() == dns.rcode.NXDOMAIN
    finally:
        hog.kill()
        hog.wait()
    wait_for(lambda: psutil.Process(w1).cpu_affinity() == [home], HOLD + INTERVAL * 4,
             "worker 1 to go home once the busy loop ended")
    # (usually "load on CPU 1 from outside kresd fell to N%"; if other load crowds the CPU it
    # was moved to first, the crowded rule may bring it home: "CPU 0 was N% busy, ...")
    logged(g, rf"worker 1 \(pid {w1}\) back on CPU {home}: (load on CPU {home} from outside "
              rf"kresd fell to \d+%|CPU \d+ was \d+% busy)")


# --- activation ------------------------------------------------------------------------------


def _listening_inodes() -> set[int]:
    """Inodes of every unconnected UDP and listening TCP inet socket on the host."""
    out = set()
    for name, want in (("udp", None), ("udp6", None), ("tcp", "0A"), ("tcp6", "0A")):
        try:
            lines = Path(f"/proc/net/{name}").read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            f = line.split()
            remote, state, inode = f[2], f[3], int(f[9])
            if want is None and set(remote.split(":")[1]) != {"0"}:
                continue  # a connected UDP socket (outbound query)
            if want is not None and state != want:
                continue
            out.add(inode)
    return out


def socket_inodes(pid) -> set[int]:
    """Inodes of the sockets a process holds (empty once it is gone)."""
    out = set()
    try:
        fds = os.listdir(f"/proc/{pid}/fd")
    except OSError:
        return out
    for fd in fds:
        try:
            link = os.readlink(f"/proc/{pid}/fd/{fd}")
        except OSError:
            continue
        if link.startswith("socket:["):
            out.add(int(link[8:-1]))
    return out


def test_socket_activation_two_forks_serve_inherited_sockets_without_bind(kresd_bin, tmp_path, listen_addr):
    udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    tcp = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    for s in (udp, tcp):
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind(listen_addr)
    tcp.listen(64)
    inherited = {os.fstat(udp.fileno()).st_ino, os.fstat(tcp.fileno()).st_ino}
    fds = (udp.fileno(), tcp.fileno())

    def to_3_4():
        os.dup2(fds[0], 3)
        os.dup2(fds[1], 4)

    env = dict(os.environ, LISTEN_FDS="2", LISTEN_FDNAMES="dns:dns")
    # LISTEN_PID must be kresd's own pid: a shell sets it to $$ and execs kresd
    kresd = Group(kresd_bin, tmp_path / "rd", ["-f", "2"], env=env)
    kresd.argv = ["sh", "-c", 'LISTEN_PID=$$ exec "$0" "$@"', *kresd.argv]
    try:
        kresd.start(2, {"preexec_fn": to_3_4, "pass_fds": (3, 4)})
        udp.close()
        tcp.close()  # only kresd holds them now
        errors = []

        def client(n, use_tcp):
            for _ in range(n):
                try:
                    assert ask(listen_addr, tcp=use_tcp).rcode() == dns.rcode.NXDOMAIN
                except Exception as e:  # noqa: BLE001
                    errors.append(repr(e))

        threads = [threading.Thread(target=client, args=(150, i % 2 == 1)) for i in range(6)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        assert not errors, errors[:5]
        served = map_json(kresd.leader_tty, "worker.stats()")
        assert len(served) == 2 and all(s["queries"] > 0 for s in served), served
        listening = _listening_inodes()
        for pid in kresd.pids():
            mine = socket_inodes(pid) & listening
            assert mine == inherited, (pid, mine, inherited)  # nothing bound by kresd itself
        kinds = tty_json(kresd.leader_tty, "net.list()")
        assert sorted(x["transport"]["protocol"] for x in kinds if x["kind"] == "dns") == ["tcp", "udp"]
    finally:
        code = kresd.stop()
        print(kresd.log_tail())
        udp.close()
        tcp.close()
    assert code == 0


# --- restarts under tools/supervisor.py -------------------------------------------------------


def test_tcp_stream_survives_restarts_under_supervisor(kresd_bin, tmp_path, listen_addr):
    rundir = tmp_path / "rd"
    rundir.mkdir()
    conf = tmp_path / "kresd.conf"
    conf.write_text(LOCAL_CONFIG)
    log = open(tmp_path / "supervisor.log", "wb")
    sup = subprocess.Popen([sys.executable, "-m", "tools.supervisor", "-a", f"{listen_addr[0]}@{listen_addr[1]}",
                            "--kresd", str(kresd_bin), "--ready-timeout", "10", "--",
                            "-n", "-c", str(conf), str(rundir)],
                           env=dict(os.environ, PYTHONPATH=str(ROOT)), cwd=ROOT, stdout=log,
                           stderr=subprocess.STDOUT, start_new_session=True)
    tty_dir = rundir / "tty"

    def kresd_pids():
        return sorted(int(p.name) for p in tty_dir.glob("[0-9]*")) if tty_dir.exists() else []

    stop = threading.Event()
    ok, failures = [0], []

    def stream():
        while not stop.is_set():
            try:
                r = ask(listen_addr, tcp=True, timeout=10)
                assert r.rcode() == dns.rcode.NXDOMAIN
                ok[0] += 1
            except Exception as e:  # noqa: BLE001
                failures.append(f"{phase[0]}: {e!r}")

    phase = ["start"]
    try:
        wait_for(lambda: len(kresd_pids()) == 1, 20, "kresd under the supervisor")
        threads = [threading.Thread(target=stream) for _ in range(3)]
        for t in threads:
            t.start()
        for how in ("SIGHUP", "SIGHUP", "SIGTERM to kresd"):
            old = kresd_pids()[0]
            before = ok[0]
            phase[0] = how
            if how == "SIGHUP":
                sup.send_signal(signal.SIGHUP)
            else:
                os.kill(old, signal.SIGTERM)
            wait_for(lambda: kresd_pids() and old not in kresd_pids(), 20, f"restart by {how}")
            wait_for(lambda: ok[0] > before + 20, 20, "answers after the restart")
            phase[0] = "after " + how
        stop.set()
        for t in threads:
            t.join(30)
        assert failures == [], failures[:5]
        assert ok[0] > 60
    finally:
        stop.set()
        if sup.poll() is None:
            sup.send_signal(signal.SIGTERM)
        try:
            code = sup.wait(30)
        finally:
            try:
                os.killpg(sup.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            log.close()
        print((tmp_path / "supervisor.log").read_text(errors="replace")[-3000:])
    assert code == 0


# --- shared cache, two groups, user() -------------------------------------------------------


@pytest.mark.root
def test_shared_cache_and_two_groups_on_one_rundir(hierarchy, group_factory, tmp_path, listen_addr):
    case = CASES["glue"]
    rundir = tmp_path / "rd"
    config = "modules.load('stats')\n" + HIERARCHY_CONFIG
    a = group_factory(rundir, ["-f", "2", "-a", f"{listen_addr[0]}@{listen_addr[1]}"], config, n=2)
    before = map_json(a.leader_tty, "stats.list('answer.')")
    check_case(ask(listen_addr, case.qname, case.qtype), case)  # resolved by one fork (cold)
    for _ in range(200):  # new source port each: both forks get some
        check_case(ask(listen_addr, case.qname, case.qtype), case)
    after = map_json(a.leader_tty, "stats.list('answer.')")
    delta = [{k: x[k] - y.get(k, 0) for k in ("answer.total", "answer.cached")} for x, y in zip(after, before)]
    assert all(d["answer.cached"] > 0 for d in delta), delta  # cache hits in both forks
    assert sum(d["answer.total"] - d["answer.cached"] for d in delta) <= 2, delta
    counts = map_json(a.leader_tty, "cache.count()")
    assert len(counts) == 2 and counts[0] == counts[1] > 0, counts

    b = group_factory(rundir, ["-f", "2", "-a", f"{listen_addr[0]}@{listen_addr[1]}"], config, n=2)
    assert len(map_json(b.leader_tty, "worker.pid")) == 4  # map covers both groups
    assert len(set(map_json(b.leader_tty, "cache.count()"))) == 1  # one cache, four readers
    a.stop(signal.SIGKILL)
    hierarchy.stop()  # from now on only the shared cache answers
    for _ in range(50):
        check_case(ask(listen_addr, case.qname, case.qtype), case)
    served = map_json(b.leader_tty, "worker.stats().queries")
    assert len(served) == 2 and sum(served) >= 50


@pytest.fixture
def request_cleanup():
    dirs: list[Path] = []
    yield dirs
    for d in dirs:
        shutil.rmtree(d, ignore_errors=True)


def interpreter_of(kresd_bin: Path) -> str:
    """The Python that runs the entry point (its #! line): a respawned worker runs it too."""
    with open(kresd_bin, "rb") as f:
        first = f.readline()
    return first[2:].decode().strip() if first.startswith(b"#!") else sys.executable


def user_can_import_kresd(python: str, user: str) -> tuple[bool, str]:
    """What user() really needs: `user` can run `python` and import the daemon
    and the worker from its installation (a respawned fork does exactly that)."""
    try:
        r = subprocess.run([python, "-c", "import kresd.cli, workers.main"], user=user, cwd="/",
                           capture_output=True, text=True, timeout=60)
    except PermissionError as e:
        return False, f"cannot run {python}: {e}"
    if r.returncode != 0:
        return False, f"{python} -c 'import kresd.cli, workers.main' fails: {r.stderr.strip()[-300:]}"
    return True, ""


@pytest.mark.root
def test_user_nobody_after_binding_cache_usable_and_respawn(request_cleanup, group_factory, listen_addr,
                                                            kresd_bin):
    import tempfile

    ok, why = user_can_import_kresd(interpreter_of(kresd_bin), "nobody")
    if not ok:  # e.g. a checkout inside a 0700 directory: kresd refuses user() there (next test)
        pytest.skip(f"'nobody' cannot read this installation ({why})")
    nobody = pwd.getpwnam("nobody")
    base = Path(tempfile.mkdtemp(prefix="kresd-user-"))  # pytest's tmp_path is 0700 root-only
    os.chmod(base, 0o755)
    rundir = base / "rd"
    rundir.mkdir()
    request_cleanup.append(base)
    g = group_factory(rundir, ["-f", "3", "-a", f"{listen_addr[0]}@{listen_addr[1]}"],
                      LOCAL_CONFIG + "user('nobody')\n", n=3)
    for pid in g.pids():
        assert psutil.Process(pid).uids().effective == nobody.pw_uid
    assert (rundir / "data.mdb").stat().st_uid == nobody.pw_uid
    assert (rundir / "tty").stat().st_uid == nobody.pw_uid
    assert ask(listen_addr).rcode() == dns.rcode.NXDOMAIN
    assert isinstance(tty_json(g.leader_tty, "cache.clear().count"), int)  # a write through the open env
    assert tty_json(g.leader_tty, "cache.count()") == 0
    before = g.pids()
    victim = before[1]
    os.kill(victim, signal.SIGKILL)
    wait_for(lambda: victim not in g.pids() and len(g.live()) == 3, 30, "a replacement running as nobody")
    new = [p for p in g.pids() if p not in before][0]
    assert psutil.Process(new).uids().real == nobody.pw_uid
    assert sorted(map_json(g.leader_tty, "worker.id")) == [0, 1, 2]
    assert map_json(g.leader_tty, "cache.count()") == [0, 0, 0]
    # the leader dies: both forks follow it, the respawned one and the start-up fork,
    # whose drop to nobody cleared the death signal set at fork time (set again after user())
    forks = [p for p in g.pids() if p != g.proc.pid]
    assert len(forks) == 2 and new in forks
    os.kill(g.proc.pid, signal.SIGKILL)
    assert g.proc.wait(10) == -signal.SIGKILL
    for pid in forks:
        wait_for(lambda: not psutil.pid_exists(pid) or psutil.Process(pid).status() == psutil.STATUS_ZOMBIE,
                 20, f"fork {pid} to follow its dead leader")
        assert not (rundir / "tty" / str(pid)).exists()


@pytest.mark.root
def test_user_nobody_with_unreadable_install_fails_at_start(kresd_bin, tmp_path, listen_addr):
    """An installation that user('nobody') cannot read (here: a copy of the venv in a
    0700 directory, as in a checkout made by `mktemp -d`): kresd -f 2 stops at
    start-up with EXIT_CONFIG (3), naming the user and the path, instead of forks
    that die with ModuleNotFoundError. Nothing keeps running or holds the port."""
    venv = Path(interpreter_of(kresd_bin)).parent.parent
    private = tmp_path / "private"
    private.mkdir(mode=0o700)
    copy = private / "venv"
    try:
        # hard links: fast, and the files keep their (world-readable) modes; only the
        # directory above them is closed to nobody
        r = subprocess.run(["cp", "-al", str(venv), str(copy)], capture_output=True, text=True)
        if r.returncode != 0:
            shutil.rmtree(copy, ignore_errors=True)
            shutil.copytree(venv, copy, symlinks=True)
        python = copy / "bin" / "python"
        assert not user_can_import_kresd(str(python), "nobody")[0]
        rundir = tmp_path / "rd"
        conf = tmp_path / "user.conf"
        conf.write_text(LOCAL_CONFIG + "user('nobody')\n")
        p = subprocess.run([str(python), "-m", "kresd", "-f", "2", "-a", f"{listen_addr[0]}@{listen_addr[1]}",
                            "-c", str(conf), str(rundir)], cwd=tmp_path, stdin=subprocess.DEVNULL,
                           capture_output=True, text=True, timeout=120, start_new_session=True)
        err = p.stderr
        assert p.returncode == 3, err[-3000:]
        assert "ModuleNotFoundError" not in err and "Traceback" not in err, err[-3000:]
        assert "user('nobody'): user nobody" in err and f"cannot run {python}" in err, err[-3000:]
        # the first directory on the way that nobody may not enter (this one, or one above)
        m = re.search(r"blocked at (\S+) \(mode ([0-7]{4}), owner (\S+)\)", err)
        assert m, err[-3000:]
        blocker = Path(m.group(1))
        assert blocker in python.parents and blocker in [private, *private.parents], m.group(0)
        assert int(m.group(2), 8) & 0o001 == 0 and m.group(3).split(":")[0] == "root", m.group(0)
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as u:
            u.bind(listen_addr)  # nothing left holding the port
        left = [n.name for n in (rundir / "tty").iterdir()] if (rundir / "tty").exists() else []
        assert left == [], left
    finally:
        shutil.rmtree(copy, ignore_errors=True)
