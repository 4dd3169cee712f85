"""A tiny stand-in for kresd used by the process-model tests (not a test module).

Owns: a UDP+TCP echo worker that answers "<worker_id> <pid> <payload>" on
inherited or bound sockets, stops gracefully on SIGTERM (finishes the request
in hand, exits 0) and reports READY=1 through kresd/systemd.py; the entry
points the tests start:
  arbiter  --addr A:P --count N [--loop] [--cpu-map M] [--no-pin] [--crash W
           --crash-code C] [--max-restarts K --window T]
           binds A:P (UDP+TCP), runs kresd.supervisor.Arbiter; the leader
           serves too (with --loop on asyncio + attach, else loop-less and
           the leader only supervises); respawns exec this file's `worker`.
  worker   -S fd[:kind]... [-f N --worker-id W --leader-pid P] [same crash flags]
           the exec'd replacement / the program under tools/supervisor.py.
  activated  adopts systemd-style LISTEN_FDS (kresd/systemd.py) and serves.
Must not: import pytest, or serve anything but the echo.
"""
from __future__ import annotations

import argparse
import asyncio
import os
import selectors
import signal
import socket
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(HERE)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

from kresd import systemd  # noqa: E402
from kresd.sockets import ListenSocket, adopt_fds, parse_fd_spec  # noqa: E402
from kresd.sockets import bind as bind_sockets  # noqa: E402
from workers.settings import Endpoint  # noqa: E402


def reply(wid, data: bytes) -> bytes:
    return f"{wid} {os.getpid()} ".encode() + data


def crash_if_asked(args, wid: int) -> None:
    if args.crash is not None and wid == args.crash:
        os._exit(args.crash_code)


def serve_blocking(wid, socks: list[ListenSocket]) -> int:
    """selectors loop; SIGTERM/SIGINT -> finish the current request, exit 0."""
    stop = []
    r, w = os.pipe()
    os.set_blocking(w, False)

    def on_term(signum, frame):
        stop.append(signum)
        try:
            os.write(w, b"x")
        except OSError:
            pass

    signal.signal(signal.SIGTERM, on_term)
    signal.signal(signal.SIGINT, on_term)
    sel = selectors.DefaultSelector()
    sel.register(r, selectors.EVENT_READ, None)
    for ls in socks:
        ls.sock.setblocking(False)
        sel.register(ls.sock, selectors.EVENT_READ, ls)
    systemd.notify_ready()
    while not stop:
        for key, _ in sel.select(1.0):
            if key.data is None:
                continue
            handle(wid, key.data.sock)
    return 0


def handle(wid, sock: socket.socket) -> None:
    try:
        if sock.type == socket.SOCK_DGRAM:
            data, addr = sock.recvfrom(4096)
            sock.sendto(reply(wid, data), addr)
            return
        conn, _ = sock.accept()
    except (BlockingIOError, InterruptedError):
        return
    with conn:
        conn.settimeout(5.0)
        buf = b""
        try:
            while not buf.endswith(b"\n"):
                chunk = conn.recv(4096)
                if not chunk:
                    return
                buf += chunk
            conn.sendall(reply(wid, buf))
        except OSError:
            return


async def serve_async(wid, socks: list[ListenSocket], arb) -> int:
    loop = asyncio.get_running_loop()
    done = loop.create_future()

    def on_stop(code):
        if not done.done():
            done.set_result(code)

    arb.attach(loop, on_stop)
    for ls in socks:
        ls.sock.setblocking(False)
        loop.add_reader(ls.sock.fileno(), handle, wid, ls.sock)
    try:
        return await done
    finally:
        for ls in socks:
            loop.remove_reader(ls.sock.fileno())


def cmd_arbiter(args) -> int:
    from kresd.supervisor import Arbiter, parse_cpu_map

    addr, port = args.addr.rsplit(":", 1)
    socks = bind_sockets([Endpoint(addr, int(port))])
    crash = [] if args.crash is None else ["--crash", str(args.crash), "--crash-code", str(args.crash_code)]

    def worker_main(wid, socks):
        crash_if_asked(args, wid)
        return serve_blocking(wid, socks)

    arb = Arbiter(socks, args.count, worker_main, leader_serves=args.loop,
                  exec_prefix=[sys.executable, os.path.abspath(__file__), "worker"], exec_args=crash,
                  cpu_map=parse_cpu_map(args.cpu_map) if args.cpu_map else None, pin_cpus=not args.no_pin,
                  max_restarts=args.max_restarts, restart_window=args.window, stop_timeout=5.0)
    arb.start()  # children never return from here
    print(f"leader {os.getpid()} pgid {os.getpgrp()}", flush=True)
    if not args.loop:
        return arb.run(poll=0.5)
    loop = asyncio.new_event_loop()
    try:
        code = loop.run_until_complete(serve_async(0, socks, arb))
    finally:
        loop.close()
    return arb.shutdown(code)


def cmd_worker(args) -> int:
    if args.leader_pid is not None:  # as kresd's respawned worker: stop when the leader dies
        from kresd.supervisor import follow_leader

        if not follow_leader(args.leader_pid):
            return 0
    socks = adopt_fds(parse_fd_spec(s) for s in args.fds)
    wid = args.worker_id if args.worker_id is not None else 0
    crash_if_asked(args, wid)
    return serve_blocking(wid, socks)


def cmd_activated(args) -> int:
    specs = systemd.listen_fds()
    left = {k: os.environ.get(k) for k in ("LISTEN_PID", "LISTEN_FDS", "LISTEN_FDNAMES")}
    print("kinds " + ",".join(f"{s.fd}:{s.kind}" for s in specs), "env", left, flush=True)
    return serve_blocking(0, adopt_fds(specs))


def main(argv=None) -> int:
    p = argparse.ArgumentParser()
    sub = p.add_subparsers(dest="cmd", required=True)
    a = sub.add_parser("arbiter")
    a.add_argument("--addr", required=True)
    a.add_argument("--count", type=int, default=2)
    a.add_argument("--loop", action="store_true")
    a.add_argument("--cpu-map")
    a.add_argument("--no-pin", action="store_true")
    a.add_argument("--max-restarts", type=int, default=5)
    a.add_argument("--window", type=float, default=10.0)
    w = sub.add_parser("worker")
    w.add_argument("-S", dest="fds", action="append", default=[])
    w.add_argument("-f", type=int, default=1)
    w.add_argument("--worker-id", type=int)
    w.add_argument("--leader-pid", type=int)
    sub.add_parser("activated")
    for q in (a, w):
        q.add_argument("--crash", type=int)
        q.add_argument("--crash-code", type=int, default=1)
    args = p.parse_args(argv)
    from kresd import log

    log.setup("info")
    return {"arbiter": cmd_arbiter, "worker": cmd_worker, "activated": cmd_activated}[args.cmd](args)


if __name__ == "__main__":
    sys.exit(main())
