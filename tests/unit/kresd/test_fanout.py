"""kresd/fanout.py: map() over fake control servers (kresd/control.py) in a background loop."""
from __future__ import annotations

import asyncio
import os
import socket
import threading

import pytest

from kresd.control import ControlServer
from kresd.fanout import MapError, check_expr, control_sockets, map_expr


class Instances:
    """ControlServers with fake pids/worker ids, served by one loop in a thread."""

    def __init__(self, rundir: str):
        self.rundir = rundir
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.servers: list[ControlServer] = []

    def add(self, pid: int, wid: int, json_fn=None, eval_fn=None) -> ControlServer:
        srv = ControlServer(eval_fn or (lambda line, w=wid: f"printed {line} on {w}"), self.rundir,
                            json_fn=json_fn or (lambda e, w=wid, p=pid: {"expr": e, "id": w, "pid": p}),
                            worker_id=wid, worker_count=4, pid=pid, clean_stale=False)
        asyncio.run_coroutine_threadsafe(srv.start(), self.loop).result(5)
        self.servers.append(srv)
        return srv

    def close(self):
        for srv in self.servers:
            asyncio.run_coroutine_threadsafe(srv.close(), self.loop).result(5)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)
        self.loop.close()


@pytest.fixture
def inst(tmp_path):
    i = Instances(str(tmp_path))
    yield i
    i.close()


def stale_socket(rundir, name):
    os.makedirs(os.path.join(rundir, "tty"), exist_ok=True)
    s = socket.socket(socket.AF_UNIX)
    s.bind(os.path.join(rundir, "tty", name))
    s.close()


def lua_compile(expr):
    return "unexpected symbol near '<eof>'" if expr.endswith("(") else None


def test_map_ordered_by_worker_id_skipping_stale(inst, tmp_path):
    inst.add(1003, 3)
    inst.add(1001, 1)
    inst.add(1002, 2)
    stale_socket(str(tmp_path), "1000")  # a dead fork's leftover
    (tmp_path / "tty" / "readme").write_text("ignored")
    reply = map_expr("worker.id", str(tmp_path), compile_fn=lua_compile)
    assert reply.count == 3
    assert [(r.worker_id, r.pid) for r in reply.results] == [(1, 1001), (2, 1002), (3, 1003)]
    assert reply.values() == [{"expr": "worker.id", "id": w, "pid": 1000 + w} for w in (1, 2, 3)]
    assert control_sockets(str(tmp_path / "tty")) == [str(tmp_path / "tty" / n) for n in
                                                        ("1000", "1001", "1002", "1003")]


def test_map_runs_own_instance_locally(inst, tmp_path):
    inst.add(1001, 1)
    # our own socket: a server that would fail if it were contacted
    inst.add(os.getpid(), 0, json_fn=lambda e: (_ for _ in ()).throw(AssertionError("contacted")))
    reply = map_expr("stats", str(tmp_path), local_json=lambda e: {"local": e}, worker_id=0)
    assert [(r.worker_id, r.value) for r in reply.results] == [
        (0, {"local": "stats"}), (1, {"expr": "stats", "id": 1, "pid": 1001})]


def test_map_strings_mode(inst, tmp_path):
    inst.add(1002, 2)
    inst.add(1001, 1)
    reply = map_expr("net.list()", str(tmp_path), mode="strings")
    assert [(r.worker_id, r.pid, r.value) for r in reply.results] == [
        (1, 1001, "printed net.list() on 1"), (2, 1002, "printed net.list() on 2")]


def test_map_error_names_the_instance(inst, tmp_path):
    inst.add(1001, 1)

    def bad(expr):
        raise RuntimeError("attempt to index a nil value")

    inst.add(1002, 2, json_fn=bad)
    with pytest.raises(MapError, match=r"pid 1002 .*attempt to index a nil value"):
        map_expr("x.y", str(tmp_path))


def test_map_compile_check_happens_before_sending(inst, tmp_path):
    seen = []
    inst.add(1001, 1, json_fn=lambda e: seen.append(e))
    with pytest.raises(MapError, match="failure when compiling map\\(\\) command: unexpected symbol"):
        map_expr("worker.id(", str(tmp_path), compile_fn=lua_compile)
    assert seen == []


def test_check_expr():
    for bad in ("", "   ", "a\nb"):
        with pytest.raises(MapError):
            check_expr(bad)
    check_expr("worker.id")


def test_map_no_sockets(tmp_path):
    with pytest.raises(MapError, match="no control sockets"):
        map_expr("1", str(tmp_path))
    stale_socket(str(tmp_path), "77")
    assert map_expr("1", str(tmp_path)).count == 0  # only stale ones: nothing ran


def test_map_hung_instance_times_out(tmp_path):
    os.makedirs(tmp_path / "tty")
    hung = socket.socket(socket.AF_UNIX)
    hung.bind(str(tmp_path / "tty" / "1234"))
    hung.listen()  # accepts (backlog) but never answers
    try:
        with pytest.raises(MapError, match="timed out"):
            map_expr("1", str(tmp_path), timeout=0.3)
    finally:
        hung.close()
