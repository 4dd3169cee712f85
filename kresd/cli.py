"""The `kresd` command line, compatible with Knot Resolver 5.6.

Owns: flag parsing (click) into a frozen `Args`, listen address syntax
(`addr`, `addr@port`, `addr#port`), the rundir (created if missing, then the
cwd), choosing config files (`-c`, repeatable, relative to the rundir as in
kresd; `-c -` skips defaults; without `-c`, `./config` if readable), and
turning errors into kresd-style messages and exit codes (kresd/errors.py).
Must not: resolve, serve or hold state (workers/main.py runs the worker).

    kresd [-a addr[@port]]... [-t addr[@port]]... [-S fd[:kind]]... [-c file]...
          [-f N] [--cpu-map MAP] [-n] [-q] [-v] [-V] [-h] [rundir]

Process model (`-f N`, issue 4; see README "Process model"):
- Inherited sockets: `-S fd[:kind]` (kresd 5.6) and systemd-style activation
  (LISTEN_PID/LISTEN_FDS/LISTEN_FDNAMES, detected by itself) are adopted first
  and served by every process of the group; with them, no default address is
  bound.
- `-f N` (N > 1, implies -n): the leader binds `-a` addresses before forking,
  one SO_REUSEPORT set per worker (the kernel spreads queries among them; the
  leader keeps them open so a respawned worker gets its own set back through
  `-S`), then kresd/supervisor.py's Arbiter forks workers 1..N-1 and pins
  them; only then does every process (the leader is worker 0) create its Lua
  engine, load the config, open the cache and its event loop.
- `net.listen()` in a config is learned after the fork, as in kresd 5.6: each
  process binds those addresses itself with SO_REUSEPORT (skipping any address
  it already serves through -a/-S). Consequence: after `user()` a respawned
  worker cannot bind a privileged config address; use -a or activation then.
- `--cpu-map '0=0 1=1'` (or `off`) wins over the config's `worker.cpu_map`.
- Hidden `--worker-id N`: this process is worker N of `-f COUNT`, started by
  the leader to replace a dead fork: no forking, no Arbiter, sockets from -S.

Differences from kresd 5.6, on purpose or for now:
- `-t/--tls` parses, then exits with EXIT_NOT_IMPLEMENTED; `-f 1` is accepted
  (kresd: same as `-n`).
- Config files run in the Lua engine (kresd/engine.py); a config error exits
  with EXIT_CONFIG and `file:line: message`. `quit()` in a config exits 0.
- A missing rundir is created (kresd refuses to start).
- Without `-n`, the console (kresd/console.py) reads commands from stdin;
  `-q` hides the `> ` prompt. EOF on stdin detaches the console and the
  daemon keeps serving (stop it with SIGTERM or quit()).
- `-v` wins over a config's `log_level()` (kresd applies the config last).
- Without any listen address (flags, config or inherited): 127.0.0.1@53 and
  ::1@53, as kresd's postconfig; ::1 is skipped with a warning where IPv6 is
  unavailable (kresd binds it with freebind).
- `user()` in a config takes effect after the sockets are bound (kresd binds
  inside net.listen(), so there it works in config order); the cache files and
  rundir/tty are chowned to that user first.
"""
from __future__ import annotations

import errno
import ipaddress
import os
import sys
from dataclasses import dataclass

import click

from kresd import log
from kresd.errors import (EXIT_BIND, EXIT_CONFIG, EXIT_FAILURE, EXIT_NOT_IMPLEMENTED, EXIT_USAGE,
                          BOUNDARY_ERRORS, BootError, ConfigError, NotImplementedYet)
from kresd.sockets import FdSpec, ListenSocket, parse_fd_spec
from workers.settings import Endpoint, Settings

KRESD_VERSION = "5.6.0"
G = log.Group.SYSTEM
DEFAULT_LISTEN = (Endpoint("127.0.0.1", 53), Endpoint("::1", 53))


def version_string() -> str:
    try:
        from importlib.metadata import version

        own = version("kresd-py")
    except Exception:  # noqa: BLE001 - not installed (source tree)
        own = "0.1.0"
    return f"Knot Resolver, version {KRESD_VERSION} (kresd-py {own})"


@dataclass(frozen=True)
class Args:
    addrs: tuple[Endpoint, ...] = ()
    tls: tuple[Endpoint, ...] = ()
    fds: tuple[FdSpec, ...] = ()
    configs: tuple[str, ...] = ()
    forks: int = 1
    noninteractive: bool = False
    quiet: bool = False
    verbose: bool = False
    rundir: str = "."
    worker_id: int | None = None  # hidden: a respawned worker of -f COUNT
    cpu_map: object = None  # None (not given) | False (off) | {worker: (cpu, ...)}
    cpu_map_text: str | None = None


def parse_addr(text: str, default_port: int = 53) -> Endpoint:
    """kresd's kr_straddr_split: `addr`, `addr@port`, `addr#port`; IP literals only."""
    addr, port = text, default_port
    for sep in ("@", "#"):
        if sep in text:
            addr, _, p = text.rpartition(sep)
            if not p.isdigit() or not 0 <= int(p) <= 65535:
                raise ValueError(f"bad port in '{text}'")
            port = int(p)
            break
    addr = addr.strip("[]")
    try:
        addr = str(ipaddress.ip_address(addr))
    except ValueError:
        raise ValueError(f"'{text}' is not an IP address (addr[@port])") from None
    return Endpoint(addr, port, "dns")


def _addr_list(default_port: int):
    def convert(ctx, param, values):
        try:
            return tuple(parse_addr(v, default_port) for v in values)
        except ValueError as e:
            raise click.BadParameter(str(e)) from None

    return convert


def _fd_list(ctx, param, values):
    try:
        return tuple(parse_fd_spec(v) for v in values)
    except ValueError as e:
        raise click.BadParameter(str(e)) from None


def parse_cpu_map_arg(text: str):
    """`--cpu-map`: PowerDNS syntax '0=0 1=1 2=2,3', or 'off'/'none' (no pinning)."""
    from kresd.supervisor import parse_cpu_map

    if text.strip().lower() in ("off", "none", "false"):
        return False
    return parse_cpu_map(text)


def _cpu_map(ctx, param, value):
    if value is None:
        return None
    try:
        return parse_cpu_map_arg(value)
    except ValueError as e:
        raise click.BadParameter(str(e)) from None


def _print_version(ctx, param, value):
    if value and not ctx.resilient_parsing:
        click.echo(version_string())
        ctx.exit(0)


@click.command(context_settings={"help_option_names": ["-h", "--help"]}, options_metavar="[parameters]")
@click.option("-a", "--addr", "addrs", multiple=True, callback=_addr_list(53), metavar="addr[@port]",
              help="Server address (default: localhost@53).")
@click.option("-t", "--tls", "tls", multiple=True, callback=_addr_list(853), metavar="addr[@port]",
              help="Server address for TLS (default: off). Not implemented yet.")
@click.option("-S", "--fd", "fds", multiple=True, metavar="fd[:kind]", callback=_fd_list,
              help="Listen on given fd (handed out by supervisor, :kind is optional).")
@click.option("-c", "--config", "configs", multiple=True, metavar="path",
              help="Config file path (relative to [rundir]) (default: config). A subset of kresd's Lua for now.")
@click.option("-f", "--forks", type=click.IntRange(min=1), default=1, metavar="N",
              help="Start N forks sharing the configuration (implies -n when N > 1).")
@click.option("--cpu-map", "cpu_map", default=None, callback=_cpu_map, metavar="MAP",
              help="Pin workers to CPUs: '0=0 1=1 2=2,3' (worker=cpu[,cpu]); 'off' = no pinning. "
                   "Default: worker id modulo the allowed CPUs.")
@click.option("--worker-id", "worker_id", type=click.IntRange(min=0), default=None, hidden=True)
@click.option("-n", "--noninteractive", is_flag=True, help="Don't start the read-eval-print loop for stdin+stdout.")
@click.option("-q", "--quiet", is_flag=True, help="No command prompt in interactive mode.")
@click.option("-v", "--verbose", is_flag=True, help="Run in verbose mode (debug logs).")
@click.option("-V", "--version", is_flag=True, expose_value=False, is_eager=True, callback=_print_version,
              help="Print version of the server.")
@click.argument("rundir", required=False, default=".")
def main(addrs, tls, fds, configs, forks, cpu_map, worker_id, noninteractive, quiet, verbose, rundir):
    """Knot Resolver (kresd-py): a caching recursive DNS resolver.

    RUNDIR is the working directory (default: .).
    """
    args = Args(addrs, tls, tuple(fds), tuple(configs), forks, noninteractive or forks > 1,
                quiet, verbose, rundir, worker_id, cpu_map, cpu_map_text(cpu_map))
    sys.exit(run(args))


def _fail(msg: str, code: int) -> int:
    log.error(G, "error: %s", msg)
    return code


def cpu_map_text(cpu_map) -> str | None:
    """The `--cpu-map` argument that reproduces a parsed value (for respawns)."""
    if cpu_map is None:
        return None
    if cpu_map is False:
        return "off"
    return " ".join(f"{k}={','.join(map(str, v))}" for k, v in sorted(cpu_map.items()))


def check_implemented(args: Args) -> None:
    if args.tls:
        raise NotImplementedYet("-t/--tls (DNS over TLS) is not implemented yet")


def enter_rundir(rundir: str) -> None:
    os.makedirs(rundir, exist_ok=True)
    os.chdir(rundir)


def config_files(args: Args) -> list[str]:
    """`-c` files in order (`-c -` loads none); without -c, ./config if readable."""
    files = [c for c in args.configs if c != "-"]
    if not args.configs and os.access("config", os.R_OK):
        files = ["config"]
    return files


def load_config(args: Args, settings: Settings, *, worker_id: int = 0,
                sockets: list[ListenSocket] | None = None):
    """A configured Engine: the chosen config files, then kresd's post-config
    (cwd is the rundir already). `sockets` (inherited / pre-bound) are known to
    the engine first, so post-config adds no default address next to them."""
    from kresd.engine import Engine

    engine = Engine(settings, rundir=".", worker_id=worker_id, worker_count=args.forks)
    if sockets:
        engine.listen_sockets = list(sockets)
    for path in config_files(args):
        engine.load_config(path)
        if engine.quit_requested is not None:
            return engine
    engine.post_config()
    return engine


def _covered(ep: Endpoint, stype: int, have: list[ListenSocket]) -> bool:
    import socket as _socket

    for ls in have:
        s = ls.sock
        if s.type != stype or s.family not in (_socket.AF_INET, _socket.AF_INET6):
            continue
        try:
            ip, port = s.getsockname()[:2]
        except OSError:
            continue
        if ip == ep.addr and port == ep.port:
            return True
    return False


def bind_missing(endpoints: list[Endpoint], have: list[ListenSocket], defaults: bool) -> list[ListenSocket]:
    """Bind (SO_REUSEPORT) what `endpoints` ask for and `have` does not serve yet
    (same address, port and protocol); with the built-in defaults, ::1 is optional."""
    import socket as _socket

    from workers.server import bind_endpoints

    wanted: list[Endpoint] = []
    for ep in endpoints:
        if ep.fd is not None:
            continue
        protos = {"dns": ("udp", "tcp"), "dns-udp": ("udp",), "dns-tcp": ("tcp",)}.get(ep.kind, ("udp", "tcp"))
        for proto in protos:
            stype = _socket.SOCK_DGRAM if proto == "udp" else _socket.SOCK_STREAM
            if _covered(ep, stype, have):
                log.debug(G, "%s@%d (%s): served through an inherited socket", ep.addr, ep.port, proto)
                continue
            wanted.append(Endpoint(ep.addr, ep.port, "dns-" + proto))
    out: list[ListenSocket] = []
    try:
        for ep in wanted:
            try:
                out += [ListenSocket(s) for s in bind_endpoints([ep])]
            except BootError as e:
                cause = e.__cause__
                optional = defaults and ep.addr == DEFAULT_LISTEN[1].addr
                if not optional or not isinstance(cause, OSError) \
                        or cause.errno not in (errno.EADDRNOTAVAIL, errno.EAFNOSUPPORT):
                    raise
                log.warning(G, "warning: %s (skipped)", e)
    except BaseException:
        for ls in out:
            ls.close()
        raise
    return out


def bind(settings: Settings, defaults: bool):
    """Bind settings.listen; with the built-in defaults, ::1 is optional (plain sockets)."""
    return [ls.sock for ls in bind_missing(settings.listen, [], defaults)]


def drop_privileges(engine) -> None:
    """user() from the config, after binding: chown the cache files and rundir/tty
    to the new user (so they stay usable and a respawn as that user can open
    them), then setgid/setuid. PermissionError -> BootError(EXIT_CONFIG)."""
    uid, gid = engine.pending_user
    engine.pending_user = None
    from kresd.control import CONTROL_DIR

    tty = os.path.abspath(CONTROL_DIR)
    os.makedirs(tty, mode=0o770, exist_ok=True)
    paths = [tty]
    storage = getattr(engine, "storage", None)
    if storage:
        paths.append(storage)
        paths += [os.path.join(storage, n) for n in os.listdir(storage) if n.endswith(".mdb")]
    try:
        if os.geteuid() == 0:
            for path in paths:
                os.chown(path, uid, gid)
        if os.getgid() != gid or os.getegid() != gid:
            os.setgroups([])
            os.setgid(gid)
        if os.getuid() != uid:
            os.setuid(uid)
    except OSError as e:
        raise BootError(f"user(): cannot change to uid {uid} gid {gid}: {e.strerror or e}", EXIT_CONFIG) from e
    log.info(G, "running as uid %d gid %d", uid, gid)


def run(args: Args) -> int:
    """Everything after flag parsing; returns the process exit code."""
    log.setup("debug" if args.verbose else log.DEFAULT_LEVEL)
    try:
        check_implemented(args)
    except NotImplementedYet as e:
        return _fail(str(e), EXIT_NOT_IMPLEMENTED)
    if args.worker_id is not None and args.worker_id >= args.forks:
        return _fail(f"--worker-id {args.worker_id} needs -f greater than it", EXIT_USAGE)
    rundir_abs = os.path.abspath(args.rundir)
    try:
        enter_rundir(args.rundir)
    except OSError as e:
        return _fail(f"rundir '{args.rundir}': {e.strerror or e}", EXIT_FAILURE)
    from kresd import systemd
    from kresd.sockets import adopt_fds

    try:
        specs = list(args.fds)
        if args.worker_id is None:
            specs += systemd.listen_fds()
        inherited = adopt_fds(specs)
    except BootError as e:
        return _fail(str(e), e.exit_code)
    if args.worker_id is not None:  # a respawned fork: its sockets came as -S
        return worker_main(args, args.worker_id, inherited)
    if args.forks == 1:
        return worker_main(args, 0, inherited)
    return run_group(args, inherited, rundir_abs)


def run_group(args: Args, inherited: list[ListenSocket], rundir_abs: str) -> int:
    """`-f N`: bind -a per worker slot, fork (kresd/supervisor.py), serve as worker 0."""
    from kresd.sockets import bind as bind_sockets
    from kresd.supervisor import Arbiter

    slots: dict[int, list[ListenSocket]] = {}
    try:
        for wid in range(args.forks):
            slots[wid] = bind_sockets(args.addrs) if args.addrs else []
    except BootError as e:
        for socks in slots.values():
            for ls in socks:
                ls.close()
        return _fail(str(e), e.exit_code)
    exec_args = [*(a for c in args.configs for a in ("-c", c if c == "-" else os.path.abspath(c)))]
    exec_args += ["-v"] * args.verbose + ["-q"] * args.quiet
    if args.cpu_map_text is not None:
        exec_args += ["--cpu-map", args.cpu_map_text]
    exec_args.append(rundir_abs)
    arb = Arbiter(inherited, args.forks, lambda wid, socks: worker_main(args, wid, socks),
                  exec_args=exec_args, cpu_map=args.cpu_map or None, pin_cpus=args.cpu_map is not False,
                  slot_sockets=slots)
    arb.start()  # forks: children run worker_main and exit, never return here
    code = EXIT_FAILURE
    try:
        code = worker_main(args, 0, arb.sockets_for(0), arb=arb)
    finally:
        code = arb.shutdown(code)
    return code


def worker_main(args: Args, wid: int, premade: list[ListenSocket], arb=None) -> int:
    """One serving process: engine + config, bind what is missing, drop
    privileges, serve (workers/main.py) until SIGTERM/SIGINT/quit()."""
    settings = Settings(listen=list(args.addrs) if args.worker_id is None else [], verbose=args.verbose)
    try:
        engine = load_config(args, settings, worker_id=wid, sockets=premade)
    except ConfigError as e:
        return _fail(str(e), EXIT_CONFIG)
    except BOUNDARY_ERRORS as e:  # e.g. CacheError at open
        return _fail(str(e), EXIT_FAILURE)
    if engine.quit_requested is not None:
        engine.stop()
        if arb is not None:
            arb.request_stop(engine.quit_requested)
        return engine.quit_requested
    if args.verbose:
        log.set_level("debug")
    if arb is not None and engine.cpu_map is not None:
        if args.cpu_map is not None:
            log.notice(G, "worker.cpu_map from the config ignored: --cpu-map given")
        else:
            arb.set_pinning(engine.cpu_map or None, engine.cpu_map is not False)
    try:
        own = bind_missing(settings.listen, premade, engine.default_listen)
        listen = list(premade) + own
        if not listen:
            raise BootError("nothing to listen on", EXIT_BIND)
        engine.listen_sockets = listen
        if engine.pending_user is not None:
            drop_privileges(engine)
        from workers.main import run_worker

        console = None if args.noninteractive else _console(engine, args.quiet)
        return run_worker(settings, ".", listen_sockets=listen, engine=engine, console=console, arb=arb,
                          notify=(wid == 0 and args.worker_id is None))
    except BootError as e:
        engine.stop()
        return _fail(str(e), e.exit_code)
    except BOUNDARY_ERRORS as e:
        engine.stop()
        return _fail(str(e), EXIT_FAILURE)


def _console(engine, quiet: bool):
    def attach(loop):
        from kresd.console import Console

        try:
            Console(engine, prompt=not quiet).start(loop)
        except (OSError, ValueError) as e:  # no usable stdin: serve without a console
            log.debug(G, "console unavailable: %s", e)
    return attach


if __name__ == "__main__":  # pragma: no cover
    main()
