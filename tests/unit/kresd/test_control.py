"""kresd/control.py: tty/<PID> lifecycle, line mode, kresd's binary framing, __json, many clients."""
from __future__ import annotations

import asyncio
import json
import os
import socket
import struct

import pytest

from kresd.control import ControlServer, is_stale, remove_stale, socket_path, to_jsonable
from kresd.errors import BootError


def fake_eval(line: str) -> str:
    if line.strip() == "boom":
        return "[string \"boom\"]:1: attempt to call a nil value"
    if line.strip() == "print('x')":
        return ""
    return f"ok:{line}"


def fake_json(expr: str):
    if expr == "error()":
        raise RuntimeError("bad thing")
    return {"expr": expr, "list": (1, 2)}


async def read_exact(reader, n):
    return await asyncio.wait_for(reader.readexactly(n), 5)


async def frame(reader) -> bytes:
    (n,) = struct.unpack(">I", await read_exact(reader, 4))
    return await read_exact(reader, n) if n else b""


def run(coro):
    return asyncio.run(asyncio.wait_for(coro, 30))


def test_lifecycle_text_and_binary(tmp_path):
    async def main():
        srv = ControlServer(fake_eval, str(tmp_path), json_fn=fake_json, worker_id=2, worker_count=4)
        assert not (tmp_path / "tty").exists()
        await srv.start()
        assert srv.path == socket_path(str(tmp_path)) == str(tmp_path / "tty" / str(os.getpid()))
        assert os.path.exists(srv.path)
        assert srv.describe() == {"kind": "control", "transport": {
            "family": "unix", "path": srv.path, "protocol": "stream"}}
        r, w = await asyncio.open_unix_connection(srv.path)
        assert await read_exact(r, 2) == b"> "
        w.write(b"1+1\n")
        assert await r.readuntil(b"> ") == b"ok:1+1\n> "
        w.write(b"print('x')\r\n")  # empty output still gives a newline and a prompt
        assert await r.readuntil(b"> ") == b"\n> "
        w.write(b"boom\n")  # an error is text; the server keeps serving
        assert (await r.readuntil(b"> ")).startswith(b"[string")
        w.write(b"partial")
        await w.drain()
        w.write(b" line\n__binary\nworker.id\n")
        assert await r.readuntil(b"> ") == b"ok:partial line\n> "
        assert await frame(r) == b"ok:worker.id"
        w.write(b"print('x')\n__json 1+1\n__json error()\n__id\n")
        assert await frame(r) == b""  # length 0
        assert json.loads(await frame(r)) == {"id": 2, "pid": os.getpid(), "ok": True,
                                              "value": {"expr": "1+1", "list": [1, 2]}}
        assert json.loads(await frame(r)) == {"id": 2, "pid": os.getpid(), "ok": False, "error": "bad thing"}
        assert json.loads(await frame(r)) == {"id": 2, "pid": os.getpid(), "count": 4}
        w.close()
        await srv.close()
        assert not os.path.exists(srv.path)

    run(main())


def test_many_concurrent_clients(tmp_path):
    async def client(path, i):
        r, w = await asyncio.open_unix_connection(path)
        await read_exact(r, 2)
        w.write(b"__binary\n")
        for j in range(20):
            w.write(f"q{i}-{j}\n".encode())
        got = [await frame(r) for _ in range(20)]
        w.close()
        return got == [f"ok:q{i}-{j}".encode() for j in range(20)]

    async def main():
        srv = ControlServer(fake_eval, str(tmp_path))
        await srv.start()
        results = await asyncio.gather(*(client(srv.path, i) for i in range(30)))
        await srv.close()
        return results

    assert all(run(main()))


def test_stale_sockets_removed_live_one_kept(tmp_path):
    tty = tmp_path / "tty"
    tty.mkdir()
    stale = socket.socket(socket.AF_UNIX)
    stale.bind(str(tty / "999999"))
    stale.close()  # the file stays, nobody listens: a dead process's leftover
    live = socket.socket(socket.AF_UNIX)
    live.bind(str(tty / "1"))
    live.listen()
    (tty / "notes").write_text("not a socket")
    try:
        assert is_stale(str(tty / "999999")) and not is_stale(str(tty / "1"))
        assert is_stale(str(tty / "missing"))

        async def main():
            srv = ControlServer(fake_eval, str(tmp_path))
            await srv.start()
            names = sorted(os.listdir(tty))
            await srv.close()
            return names

        assert run(main()) == sorted(["1", "notes", str(os.getpid())])
        assert remove_stale(str(tty)) == []
    finally:
        live.close()


def test_own_stale_socket_replaced_live_one_refused(tmp_path):
    tty = tmp_path / "tty"
    tty.mkdir()
    path = tty / "4242"
    old = socket.socket(socket.AF_UNIX)
    old.bind(str(path))
    old.close()

    async def start_stop(clean):
        srv = ControlServer(fake_eval, str(tmp_path), pid=4242, clean_stale=clean)
        await srv.start()
        await srv.close()

    run(start_stop(False))  # stale file with our name: replaced
    live = socket.socket(socket.AF_UNIX)
    live.bind(str(path))
    live.listen()
    try:
        with pytest.raises(BootError):
            run(start_stop(False))
    finally:
        live.close()


def test_long_line_closes_connection(tmp_path):
    async def main():
        srv = ControlServer(fake_eval, str(tmp_path))
        await srv.start()
        r, w = await asyncio.open_unix_connection(srv.path)
        await read_exact(r, 2)
        w.write(b"x" * (2 << 20))
        try:
            rest = await asyncio.wait_for(r.read(), 5)
        except ConnectionResetError:  # closed with our data unread
            rest = b""
        # the server still serves others
        r2, w2 = await asyncio.open_unix_connection(srv.path)
        await read_exact(r2, 2)
        w2.write(b"y\n")
        line = await r2.readuntil(b"> ")
        w.close()
        w2.close()
        await srv.close()
        return rest, line

    rest, line = run(main())
    assert rest == b"" and line == b"ok:y\n> "


def test_to_jsonable():
    class LuaTable:  # what lupa gives: items() with 1-based int keys for arrays
        def __init__(self, d):
            self.d = d

        def items(self):
            return self.d.items()

    assert to_jsonable(LuaTable({1: "a", 2: LuaTable({"k": 1})})) == ["a", {"k": 1}]
    assert to_jsonable(LuaTable({1: "a", 3: "c"})) == {"1": "a", "3": "c"}
    assert to_jsonable(LuaTable({})) == {}
    assert to_jsonable(b"x") == "x" and to_jsonable(object()).startswith("<object")


def test_bound_not_yet_listening_socket_of_a_live_process_kept(tmp_path):
    """Another process of the group between bind() and listen() refuses connections
    for a moment: its socket (named by its live pid) is not stale."""
    tty = tmp_path / "tty"
    tty.mkdir()
    starting = socket.socket(socket.AF_UNIX)
    starting.bind(str(tty / str(os.getppid())))  # a live pid, not listening yet
    try:
        assert is_stale(str(tty / str(os.getppid())))
        assert remove_stale(str(tty)) == []
        assert (tty / str(os.getppid())).exists()
    finally:
        starting.close()
