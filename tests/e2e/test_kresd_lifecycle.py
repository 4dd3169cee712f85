"""How a `kresd -f N` group ends (issue 11): the forks follow a dead leader, and a
crash loop halts `kresd -f N` and `tools/supervisor.py` with exit code 6.

Every kresd here is the installed entry point (`.venv/bin/kresd`) in its own
session, on an address of the 127.0.11.x pool with a free port. Waits are
bounded polls with generous limits (the machine is shared), never bare sleeps.
"""
from __future__ import annotations

import os
import signal
import socket
import struct
import subprocess
import sys
import threading
from pathlib import Path

import dns.exception
import dns.flags
import dns.message
import dns.rcode
import dns.rdatatype
import dns.rrset
import psutil
import pytest

from tests.conftest import alloc_test_addr

from .test_kresd_forks import LOCAL_CONFIG, Group, ask, recv_exact, socket_inodes, wait_for

pytestmark = pytest.mark.e2e
ROOT = Path(__file__).resolve().parents[2]

# kresd's forks (worker.id > 0) die 0.1 s after they started serving, as a crash
# would: no clean-up (C exit() from Lua), exit code 1, which is not a boot error.
FORKS_CRASH = LOCAL_CONFIG + "if worker.id > 0 then event.after(100, function() os.exit(1) end) end\n"
ALWAYS_CRASH = LOCAL_CONFIG + "event.after(100, function() os.exit(1) end)\n"


def gone(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def group_members(pgid: int) -> list[int]:
    out = []
    for proc in psutil.process_iter(["pid"]):
        try:
            if os.getpgid(proc.pid) == pgid and proc.status() != psutil.STATUS_ZOMBIE:
                out.append(proc.pid)
        except (ProcessLookupError, psutil.Error):
            pass
    return out


def tcp_listening_inodes() -> set[int]:
    out = set()
    for name in ("tcp", "tcp6"):
        try:
            lines = Path(f"/proc/net/{name}").read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            f = line.split()
            if f[3] == "0A":  # LISTEN
                out.add(int(f[9]))
    return out


def port_free(addr, port) -> bool:
    """Nothing holds addr:port any more (bind without SO_REUSEPORT, UDP and TCP)."""
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as u, \
                socket.socket(socket.AF_INET, socket.SOCK_STREAM) as t:
            u.bind((addr, port))
            t.bind((addr, port))
        return True
    except OSError:
        return False


class HeldUpstream:
    """A UDP DNS server that keeps every query until `release` is set, then answers
    all of them (and any later one) with `A 192.0.2.1`."""

    def __init__(self):
        self.addr = (alloc_test_addr(), 0)
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(self.addr)
        self.addr = self.sock.getsockname()
        self.sock.settimeout(0.05)
        self.release = threading.Event()
        self.stop = threading.Event()
        self.seen: list[str] = []
        self.held: list[tuple[dns.message.Message, tuple]] = []
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self):
        while not self.stop.is_set():
            try:
                data, peer = self.sock.recvfrom(4096)
                q = dns.message.from_wire(data)
                self.seen.append(str(q.question[0].name).lower())  # 0x20: the case is random
                self.held.append((q, peer))
            except (socket.timeout, dns.exception.DNSException):
                pass
            if self.release.is_set():
                while self.held:
                    q, peer = self.held.pop(0)
                    r = dns.message.make_response(q)
                    r.flags |= dns.flags.RA
                    r.answer.append(dns.rrset.from_text(q.question[0].name, 60, "IN", "A", "192.0.2.1"))
                    self.sock.sendto(r.to_wire(), peer)

    def close(self):
        self.stop.set()
        self.thread.join(5)
        self.sock.close()


def tcp_query(sock: socket.socket, name: str) -> None:
    wire = dns.message.make_query(name, "A").to_wire()
    sock.sendall(struct.pack(">H", len(wire)) + wire)


def tcp_answer(sock: socket.socket) -> dns.message.Message:
    (n,) = struct.unpack(">H", recv_exact(sock, 2))
    return dns.message.from_wire(recv_exact(sock, n))


def owner_of(conn: socket.socket, pids) -> int | None:
    """The pid among `pids` that holds the server side of the TCP connection `conn`."""
    mine = conn.getsockname()
    for pid in pids:
        try:
            for c in psutil.Process(pid).net_connections("tcp"):
                if c.raddr and tuple(c.raddr) == mine:
                    return pid
        except psutil.Error:
            pass
    return None


# --- the leader dies ------------------------------------------------------------------


def test_kill9_leader_forks_finish_in_flight_and_exit(kresd_bin, tmp_path, listen_addr):
    """kill -9 of the leader: every fork (a start-up fork and a respawned one alike)
    stops listening, answers the query it has in flight, removes its tty socket and
    exits; nothing serves the port afterwards."""
    up = HeldUpstream()
    config = LOCAL_CONFIG + f"policy.add(policy.all(policy.STUB('{up.addr[0]}@{up.addr[1]}')))\n"
    g = Group(kresd_bin, tmp_path / "rd", ["-f", "4", "-a", f"{listen_addr[0]}@{listen_addr[1]}"], config)
    conn = None
    try:
        g.start(4)
        leader = g.proc.pid
        # a respawned fork (fork+exec with --worker-id) must follow the leader too
        victim = [p for p in g.pids() if p != leader][0]
        os.kill(victim, signal.SIGKILL)
        wait_for(lambda: victim not in g.pids() and len(g.live()) == 4, 30, "a replacement fork")
        forks = [p for p in g.pids() if p != leader]
        assert len(forks) == 3
        respawned = [p for p in forks if "--worker-id" in psutil.Process(p).cmdline()]
        assert len(respawned) == 1, [psutil.Process(p).cmdline() for p in forks]
        assert ask(listen_addr).rcode() == dns.rcode.NXDOMAIN  # serving (policy DENY on test.)

        # a TCP query in flight in one of the forks (the upstream holds it)
        owner = None
        for attempt in range(40):
            conn = socket.create_connection(listen_addr, timeout=10)
            owner = wait_for(lambda: owner_of(conn, [leader, *forks]), 10, "the accepting process")
            if owner != leader:
                break
            conn.close()
            conn = None
        assert conn is not None and owner in forks, "no TCP connection landed on a fork"
        name = f"inflight-{attempt}.example."
        tcp_query(conn, name)
        wait_for(lambda: name in up.seen, 10, "the query to reach the upstream")

        os.kill(leader, signal.SIGKILL)
        assert g.proc.wait(10) == -signal.SIGKILL
        # the owner drains: it stops listening (its listening TCP sockets close)...
        wait_for(lambda: gone(owner) or not (socket_inodes(owner) & tcp_listening_inodes()), 20,
                 f"fork {owner} to stop listening after the leader's death")
        assert not gone(owner), "the fork exited without finishing its query in flight"
        # ...and still answers the query it had in flight
        up.release.set()
        r = tcp_answer(conn)
        assert r.rcode() == dns.rcode.NOERROR and r.answer, r
        assert r.answer[0].rdtype == dns.rdatatype.A and str(r.answer[0][0]) == "192.0.2.1"
        conn.close()
        conn = None
        for pid in forks:
            wait_for(lambda: gone(pid), 20, f"fork {pid} to exit after the leader's death")
        left = sorted(p.name for p in g.tty_dir.iterdir()) if g.tty_dir.exists() else []
        assert not [n for n in left if n.isdigit() and int(n) in forks], f"forks left tty sockets: {left}"
        # nothing answers on the port any more, and it can be bound again
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.settimeout(1.0)
            s.sendto(dns.message.make_query("x.test.", "A").to_wire(), listen_addr)
            with pytest.raises(OSError):  # timeout, or ICMP port unreachable
                s.recv(4096)
        assert port_free(*listen_addr)
    finally:
        if conn is not None:
            conn.close()
        up.close()
        g.stop(signal.SIGKILL)
        print(g.log_tail())


# --- crash loops ------------------------------------------------------------------------


def test_crash_loop_of_forks_halts_group_with_6(kresd_bin, tmp_path, listen_addr):
    """`kresd -f 4` whose forks die after start: 5 respawns, the 6th death in 10 s
    halts the whole group with exit code 6."""
    g = Group(kresd_bin, tmp_path / "rd", ["-f", "4", "-a", f"{listen_addr[0]}@{listen_addr[1]}"], FORKS_CRASH)
    try:
        with open(g.log, "ab") as log:
            g.proc = subprocess.Popen(g.argv, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                      start_new_session=True)
        code = g.proc.wait(90)
        text = g.log.read_text(errors="replace")
        assert code == 6, text[-3000:]
        assert "crash loop" in text, text[-3000:]
        assert text.count("started worker") == 5, text[-3000:]  # deaths 1-5 respawned, the 6th halts
        wait_for(lambda: not group_members(g.proc.pid), 20, "every process of the group to exit")
        assert port_free(*listen_addr)
    finally:
        g.stop(signal.SIGKILL)
        print(g.log_tail())


def test_crash_loop_under_supervisor_halts_with_6(kresd_bin, tmp_path, listen_addr):
    """`tools/supervisor.py -a addr -- <kresd args>`: kresd dies after each start;
    the supervisor restarts it 5 times and halts with exit code 6 at the 6th death."""
    rundir = tmp_path / "rd"
    conf = tmp_path / "crash.conf"
    conf.write_text(ALWAYS_CRASH)
    log_path = tmp_path / "supervisor.log"
    with open(log_path, "wb") as log:
        sup = subprocess.Popen([sys.executable, "-m", "tools.supervisor", "-a", f"{listen_addr[0]}@{listen_addr[1]}",
                                "--kresd", str(kresd_bin), "--", "-n", "-c", str(conf), str(rundir)],
                               env=dict(os.environ, PYTHONPATH=str(ROOT)), cwd=ROOT, stdout=log,
                               stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True)
    try:
        code = sup.wait(90)
        text = log_path.read_text(errors="replace")
        assert code == 6, text[-3000:]
        assert "crash loop" in text, text[-3000:]
        assert text.count("started kresd") == 6, text[-3000:]  # the first start and 5 restarts
        wait_for(lambda: not group_members(sup.pid), 20, "no kresd left behind")
        assert port_free(*listen_addr)
    finally:
        if sup.poll() is None:
            sup.kill()
            sup.wait(10)
        try:
            os.killpg(sup.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        print(log_path.read_text(errors="replace")[-3000:])
