"""Entry point of one worker process (after any fork).

Owns: the order of a worker's start (kresd v5.7.4 `daemon/main.c`): clock,
cache opened here (after fork), resolver, listening sockets (bound here or
handed over already bound), the asyncio loop (only this module chooses it),
SIGTERM/SIGINT handling, the control socket `rundir/tty/<PID>`
(kresd/control.py, started after the config, removed on exit), READY=1 to
systemd once listening, and the clean shutdown: stop listening, let the
queries in flight finish (`grace`, 2 s), then close.
Must not: fork, parse the command line or configuration, or block the loop.
Signal handlers only set an Event through `loop.add_signal_handler`; in the
leader of `kresd -f N` the Arbiter (kresd/supervisor.py) owns SIGTERM/SIGINT
and SIGCHLD, and its `on_stop` ends this loop.
"""
from __future__ import annotations

import asyncio
import os
import signal
import socket
from typing import Callable, Optional

import kresd
from kresd import log
from kresd.errors import EXIT_FAILURE, EXIT_OK, BootError
from workers import outbound
from workers.fastpath import FastPath
from workers.server import Server, ServerStats, bind_endpoints
from workers.settings import Settings
from workers.transport import Clock, drive_async

G = log.Group.SYSTEM

# (settings, cache, clock) -> object with .resolve(msg, client=, tcp=) -> generator
ResolverFactory = Callable[[Settings, object, Clock], object]


def new_loop() -> asyncio.AbstractEventLoop:
    """The worker's event loop: uvloop (libuv) when installed, because a cache
    hit at low load costs one loop wakeup and uvloop's costs less CPU than the
    stdlib selector loop's (measured in tools/bench, hitlat); the stdlib loop
    with KRESD_LOOP=asyncio or when uvloop is absent."""
    if os.environ.get("KRESD_LOOP", "uvloop") != "asyncio":
        try:
            import uvloop
        except ImportError:
            pass
        else:
            return uvloop.new_event_loop()
    return asyncio.new_event_loop()


def make_resolve(resolver, transport=outbound.query):
    """The coroutine the server awaits per query: drive the core's generator.
    The resolver's background NS address refreshes run on the same transport."""
    from workers.refresh import Refresher

    if hasattr(resolver, "on_refresh"):
        resolver.refresher = Refresher(resolver, transport)
        resolver.on_refresh = resolver.refresher.kick

    async def resolve(query, client, tcp):
        return await drive_async(resolver.resolve(query, client=client, tcp=tcp), transport)

    def start(query, client, tcp, preset=None):
        """Run the resolution synchronously up to its first upstream query:
        (True, answer) when it needs none (cache hits, local answers: no Task),
        else (False, awaitable that finishes it). `preset`: Request.preset."""
        if preset is None:
            gen = resolver.resolve(query, client=client, tcp=tcp)
        else:
            gen = resolver.resolve(query, client=client, tcp=tcp, preset=preset)
        try:
            send = next(gen)
        except StopIteration as stop:
            return True, stop.value

        async def rest():
            pending = send
            try:
                while True:
                    pending = gen.send(await transport(pending))
            except StopIteration as stop:
                return stop.value
        return False, rest()

    resolve.start = start
    return resolve


def preload(console: bool = False) -> None:
    """Import now what a worker imports only later (control socket, sd_notify,
    the console, map(), the default core): kresd/cli.py calls this before
    `user()` drops privileges, while the process can still read its
    installation (the new user may not; kresd/cli.py checks what is left)."""
    import cache.api  # noqa: F401
    import kresd.control  # noqa: F401
    import kresd.fanout  # noqa: F401
    import kresd.systemd  # noqa: F401
    import workers.resolve  # noqa: F401

    if console:
        import kresd.console  # noqa: F401


def _default_factories():
    from cache.api import Cache  # late: the cache and core land in parallel
    from workers.resolve import Resolver

    return Cache, Resolver


def run_worker(
    settings: Settings,
    rundir: str,
    *,
    sockets: Optional[list[socket.socket]] = None,
    cache_factory=None,
    resolver_factory: Optional[ResolverFactory] = None,
    stats: Optional[ServerStats] = None,
    ready: Optional[Callable[[Server], None]] = None,
    engine=None,
    console: Optional[Callable] = None,
    listen_sockets: Optional[list] = None,
    arb=None,
    notify: bool = False,
    grace: float = 2.0,
    control: bool = True,
) -> int:
    """Serve until SIGTERM/SIGINT; returns the exit code (0).

    `sockets`: already bound listening sockets (the CLI/supervisor binds before
    fork); when None, `settings.listen` is bound here (BootError(EXIT_BIND) on
    failure). `ready(server)` is called once listening (tests, sd_notify later).
    `engine` (kresd.engine.Engine, configured): its resolver and cache serve,
    it is started on the loop with the outbound transport and stopped at the
    end; `console(loop)` (optional) attaches the stdin console.
    With an engine: `listen_sockets` (kresd.sockets.ListenSocket, for
    net.list()) instead of `sockets`; `arb` (kresd -f N leader) owns the
    signals; `notify` sends READY=1/STOPPING=1; `control` starts rundir/tty/<PID>;
    `grace`: seconds the queries in flight get after SIGTERM.
    """
    if engine is not None:
        if listen_sockets is not None:
            sockets = [ls.sock for ls in listen_sockets]
        opts = _Opts(arb=arb, notify=notify, grace=grace, control=control, rundir=rundir)
        return _run_with_engine(engine, settings, sockets, stats, ready, console, opts)
    if cache_factory is None or resolver_factory is None:
        default_cache, default_resolver = _default_factories()
        cache_factory = cache_factory or default_cache
        resolver_factory = resolver_factory or default_resolver
    socks = sockets if sockets is not None else bind_endpoints(settings.listen)
    clock = Clock()
    cache = None
    try:
        cache = cache_factory(rundir, settings.cache_size, min_ttl=settings.cache_min_ttl,
                              max_ttl=settings.cache_max_ttl, clock=clock.time)
        cache.open()
        resolver = resolver_factory(settings, cache, clock)
        server = Server(settings, make_resolve(resolver), stats, fast=FastPath(resolver, settings, clock))
        loop = new_loop()
        try:
            asyncio.set_event_loop(loop)
            loop.run_until_complete(_serve(server, socks, ready))
        finally:
            _close_loop(loop)
    finally:
        for s in socks:
            s.close()
        if cache is not None:
            try:
                cache.close()
            except Exception as e:  # noqa: BLE001 - shutting down anyway
                log.debug(G, "cache close: %r", e)
    return EXIT_OK


class _Opts:
    def __init__(self, arb=None, notify=False, grace=0.0, control=False, rundir="."):
        self.arb, self.notify, self.grace, self.control, self.rundir = arb, notify, grace, control, rundir
        self.code: Optional[int] = None  # exit code asked for by the Arbiter (halt) / quit()


def _run_with_engine(engine, settings: Settings, sockets, stats, ready, console, opts=None) -> int:
    opts = opts or _Opts()
    socks = sockets if sockets is not None else bind_endpoints(settings.listen)
    fast = FastPath(engine.resolver, settings, engine.clock)
    server = Server(settings, make_resolve(engine.resolver), stats, fast=fast)
    def worker_stats() -> dict:
        fastpath = fast.stats()  # folds the fast path's pending counts in first
        return dict(_stats_dict(server, outbound.stats()), sig_checks=engine.resolver.sig_checks,
                    upstreams=engine.resolver.selection.show(), fastpath=fastpath, **_usage())

    engine.worker.stats_provider = worker_stats
    loop = new_loop()
    prober = None
    try:
        asyncio.set_event_loop(loop)
        engine.start(loop, outbound.query)
        prober = _share_selection(engine, settings, loop, opts.rundir)
        from kresd import ta_update
        ta_update.arm(engine)  # RFC 5011: keep the trust anchors' keys up to date
        if console is not None:
            console(loop)
        loop.run_until_complete(_serve(server, socks, ready, engine, opts))
    except BootError as e:  # e.g. the control socket is in use
        log.error(G, "error: %s", e)
        opts.code = e.exit_code
    finally:
        if prober is not None:
            prober.stop()
        try:
            engine.stop()
        finally:
            _close_loop(loop)
            for s in socks:
                s.close()
    if opts.code is not None:
        return opts.code
    return engine.quit_requested or EXIT_OK


def _share_selection(engine, settings: Settings, loop, rundir: str):
    """Server selection state in the cache directory, shared by every fork and
    restart (workers/selection/shared.py); the prober of dead servers."""
    from workers.selection import shared

    cache_dir = getattr(engine, "storage", None) or rundir
    return shared.attach(engine.resolver.selection, cache_dir, outbound.query, loop,
                         outgoing_v4=settings.outgoing_v4, outgoing_v6=settings.outgoing_v6)


def _usage() -> dict:
    """kresd's worker.stats() resource fields (getrusage of this process)."""
    import resource

    ru = resource.getrusage(resource.RUSAGE_SELF)
    return {"rss": ru.ru_maxrss * 1024, "usertime": ru.ru_utime, "systime": ru.ru_stime,
            "pagefaults": ru.ru_majflt, "csw": ru.ru_nvcsw + ru.ru_nivcsw, "swaps": ru.ru_nswap}


def _stats_dict(server: Server, out: dict) -> dict:
    """kresd's worker.stats() fields: requests from clients (queries, concurrent,
    dropped) and queries sent upstream (udp, tcp, ipv4, ipv6, timeout)."""
    st = server.stats
    now = server.concurrent()
    return {"queries": st.queries, "concurrent": now, "rconcurrent": now, "dropped": st.dropped,
            "timeout": out["timeout"], "udp": out["udp"], "tcp": out["tcp"], "tls": 0,
            "ipv4": out["ipv4"], "ipv6": out["ipv6"], "err_udp": 0, "err_tcp": 0}


async def _serve(server: Server, socks: list[socket.socket], ready, engine=None, opts=None) -> None:
    from kresd import systemd

    opts = opts or _Opts()
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    arb = opts.arb
    if arb is not None:  # the Arbiter's queue owns SIGTERM/SIGINT/SIGCHLD in the leader

        def on_stop(code):
            if code:
                opts.code = code
            stop.set()

        arb.attach(loop, on_stop)
        arb.retire_leader = lambda: _retire(server, opts, engine, ctl_box)
    else:
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        if kresd.take_early_stops():  # a stop asked for during the boot
            stop.set()
    if engine is not None:
        engine.on_quit = (lambda code: arb.request_stop(code)) if arb is not None else (lambda code: stop.set())
    ctl = None
    ctl_box: list = []  # the control server, for a leader that retires (kresd/reload.py)
    try:
        await server.start(socks)
        kresd.boot_done()  # the garbage collector was paused for the boot (kresd/__init__.py)
        log.info(G, "listening on %d socket(s)", len(socks))
        if engine is not None and opts.control:
            from kresd.control import ControlServer

            ctl = ControlServer(engine.eval, opts.rundir, json_fn=engine.eval_value,
                                worker_id=engine.worker.id, worker_count=engine.worker.count)
            await ctl.start()
            engine.control = ctl
            ctl_box.append(ctl)
        if ready is not None:
            ready(server)
        if opts.notify:
            systemd.notify_ready(f"serving {len(socks)} socket(s)")
        await stop.wait()
        log.info(G, "quitting")
    finally:
        if arb is not None:
            arb.detach()
        else:
            # Already stopping: a repeated SIGTERM (the arbiter signals its forks
            # more than once) must not cut the drain short and leave tty/<PID>.
            # Blocked while the loop's handlers go (removing one restores SIG_DFL)
            # and SIG_IGN takes their place; one that came meanwhile is dropped.
            signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTERM})
            try:
                for sig in (signal.SIGTERM, signal.SIGINT):
                    loop.remove_signal_handler(sig)
                signal.signal(signal.SIGTERM, signal.SIG_IGN)
            finally:
                signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGTERM})
        if opts.notify:
            systemd.notify_stopping()
        try:
            await drain(server, opts.grace)
        finally:
            if ctl is not None and ctl in ctl_box:
                engine.control = None
                await ctl.close()


async def _retire(server: Server, opts, engine, ctl_box: list) -> None:
    """A reload replaced this leader's worker 0 (kresd/reload.py): stop serving
    (the queries in flight finish, up to the grace time), remove tty/<PID>;
    the loop goes on for the supervisor."""
    await server.close(grace=opts.grace)
    if ctl_box:
        ctl = ctl_box.pop()
        if engine is not None:
            engine.control = None
        await ctl.close()
    log.notice(G, "this process stopped serving: worker 0 runs in its own process now")


async def drain(server: Server, grace: float) -> None:
    """Stop listening and let in-flight queries finish (Server.close(grace))."""
    await server.close(grace=grace)


def _close_loop(loop: asyncio.AbstractEventLoop) -> None:
    try:
        pending = [t for t in asyncio.all_tasks(loop) if not t.done()]
        for t in pending:
            t.cancel()
        if pending:
            loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
        loop.run_until_complete(loop.shutdown_asyncgens())
    finally:
        asyncio.set_event_loop(None)
        loop.close()
