"""The `kresd` command line, compatible with Knot Resolver 5.6.

Owns: the flags (kresd/options.py parses them) into a frozen `Args`, listen address syntax
(`addr`, `addr@port`, `addr#port`), the rundir (created if missing, then the
cwd), choosing config files (`-c`, repeatable, relative to the rundir as in
kresd; `-c -` skips defaults; without `-c`, `./config` if readable), and
turning errors into kresd-style messages and exit codes (kresd/errors.py),
and the process's fast exit (`entry`: the console script).
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
  Hidden `--leader-pid P` (set by the leader): the pid it follows; when that
  process dies, this one stops gracefully (kresd/supervisor.py follow_leader).

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
  rundir/tty are chowned to that user first. Everything the worker imports is
  imported before the drop. Then, as that user, kresd checks that it can still
  read what it needs later: the installation (the Python interpreter and every
  imported package, which a worker restarted by the leader executes as that
  user, as do modules loaded later) and, with -f N > 1, the config files and the
  rundir of such a restart; if not, it stops with EXIT_CONFIG and a message
  naming the user and the path.
"""
from __future__ import annotations

import errno
import grp
import ipaddress
import os
import pwd
import sys
from dataclasses import dataclass
from typing import NoReturn, Sequence

from kresd import log
from kresd.errors import (EXIT_BIND, EXIT_CONFIG, EXIT_FAILURE, EXIT_NOT_IMPLEMENTED, EXIT_OK, EXIT_USAGE,
                          BOUNDARY_ERRORS, BootError, ConfigError, NotImplementedYet)
from kresd.options import Opt, UsageError, at_least, convert, help_text, split, usage_exit
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
    leader_pid: int | None = None  # hidden: the leader a respawned worker follows
    cpu_map: object = None  # None (not given) | False (off) | {worker: (cpu, ...)}
    cpu_map_text: str | None = None
    keyfiles: tuple[str, ...] = ()  # -k: trust_anchors.add_file(keyfile), before the configs
    check_config: bool = False  # --check-config: load the config in a sandbox and exit


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


def _addr(default_port: int):
    return lambda text: parse_addr(text, default_port)


def parse_cpu_map_arg(text: str):
    """`--cpu-map`: PowerDNS syntax '0=0 1=1 2=2,3', or 'off'/'none' (no pinning)."""
    from kresd.supervisor import parse_cpu_map

    if text.strip().lower() in ("off", "none", "false"):
        return False
    return parse_cpu_map(text)


USAGE = "[parameters] [RUNDIR]"
ABOUT = """\
Knot Resolver (kresd-py): a caching recursive DNS resolver.

RUNDIR is the working directory (default: .).
"""
OPTIONS = (
    Opt("a", "addr", "addrs", "addr[@port]", "Server address (default: localhost@53).",
        multiple=True, convert=_addr(53)),
    Opt("t", "tls", "tls", "addr[@port]", "Server address for TLS (default: off). Not implemented yet.",
        multiple=True, convert=_addr(853)),
    Opt("S", "fd", "fds", "fd[:kind]", "Listen on given fd (handed out by supervisor, :kind is optional).",
        multiple=True, convert=parse_fd_spec),
    Opt("c", "config", "configs", "path",
        "Config file path (relative to [rundir]) (default: config). A subset of kresd's Lua for now.",
        multiple=True),
    Opt("k", "keyfile", "keyfiles", "keyfile", "Trust anchor key file, managed by RFC 5011 (kresd 3 "
        "option; same as trust_anchors.add_file(keyfile) before the config).", multiple=True),
    Opt("f", "forks", "forks", "N", "Start N forks sharing the configuration (implies -n when N > 1).",
        convert=at_least(1), default=1),
    Opt(None, "cpu-map", "cpu_map", "MAP", "Pin workers to CPUs: '0=0 1=1 2=2,3' (worker=cpu[,cpu]); "
        "'off' = no pinning. Default: worker id modulo the allowed CPUs, moved off a CPU that "
        "other load saturates (mapped workers never move).", convert=parse_cpu_map_arg),
    Opt(None, "worker-id", "worker_id", "N", convert=at_least(0), hidden=True),
    Opt(None, "leader-pid", "leader_pid", "PID", convert=at_least(1), hidden=True),
    Opt(None, "check-config", "check_config",
        help="Load the configuration in a sandbox and exit: no socket bound, the cache not opened, "
        "nothing written. Exit code 0 if it loads, 3 with file:line and the message if not."),
    Opt("n", "noninteractive", "noninteractive", help="Don't start the read-eval-print loop for stdin+stdout."),
    Opt("q", "quiet", "quiet", help="No command prompt in interactive mode."),
    Opt("v", "verbose", "verbose", help="Run in verbose mode (debug logs)."),
    Opt("V", "version", "version", help="Print version of the server."),
    Opt("h", "help", "help", help="Show this message and exit."),
)


def parse_args(argv: Sequence[str]) -> Args:
    """Args from the command line; -h/-V print and exit 0, a usage error
    prints click-style and exits EXIT_USAGE (SystemExit either way)."""
    try:
        raw, positional = split(argv, OPTIONS)
        if "help" in raw:
            sys.stdout.write(help_text("kresd", USAGE, ABOUT, OPTIONS))
            raise SystemExit(EXIT_OK)
        if "version" in raw:
            print(version_string())
            raise SystemExit(EXIT_OK)
        v = convert(raw, OPTIONS)
    except UsageError as e:
        usage_exit("kresd", USAGE, e)
    forks, cpu_map = v["forks"], v["cpu_map"]
    return Args(v["addrs"], v["tls"], v["fds"], v["configs"], forks, v["noninteractive"] or forks > 1,
                v["quiet"], v["verbose"], positional[0] if positional else ".", v["worker_id"],
                v["leader_pid"], cpu_map, cpu_map_text(cpu_map), v["keyfiles"], v["check_config"])


def main(argv: Sequence[str] | None = None) -> NoReturn:
    """The kresd program: parse the command line, run, exit with its code."""
    args = parse_args(sys.argv[1:] if argv is None else list(argv))
    sys.exit(run(args))


def entry() -> None:
    """The `kresd` console script and `python -m kresd`: main(), then a fast exit.

    Everything the daemon holds is released by then (sockets and control
    socket closed, modules unloaded, cache closed), so the interpreter's
    teardown of ~600 modules (~20 ms, part of a restart's silence) is skipped
    with os._exit once the standard streams and logging are flushed. Tests
    call `main` in-process and never come here.
    """
    try:
        main()
        code = 0
    except SystemExit as e:  # usage errors, -h/-V and run() exit this way
        if e.code is None:
            code = 0
        elif isinstance(e.code, int):
            code = e.code
        else:
            print(e.code, file=sys.stderr)
            code = 1
    import logging

    logging.shutdown()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):  # closed or broken pipe: nothing more to say
            pass
    os._exit(code)


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
                sockets: list[ListenSocket] | None = None, check_dir: str | None = None):
    """A configured Engine: the chosen config files, then kresd's post-config
    (cwd is the rundir already). `sockets` (inherited / pre-bound) are known to
    the engine first, so post-config adds no default address next to them."""
    from kresd.engine import Engine

    engine = Engine(settings, rundir=".", worker_id=worker_id, worker_count=args.forks)
    engine.check_dir = check_dir  # --check-config: the cache goes there (kresd/bindings/cache.py)
    if sockets:
        engine.listen_sockets = list(sockets)
    if args.keyfiles:
        from kresd.bindings.trust_anchors import add_keyfile
        for path in args.keyfiles:
            add_keyfile(engine, path)
    for path in config_files(args):
        engine.load_config(path)
        if engine.quit_requested is not None:
            return engine
    engine.post_config()
    return engine


def check_config(args: Args) -> int:
    """`kresd --check-config [-c file ...] [rundir]`: the config files are
    loaded as a worker would load them (from the rundir, which must exist),
    with the engine in sandbox mode: net.listen() records and never binds,
    cache.open()/cache.size and the post-config default cache go to a
    throwaway LMDB in a temporary directory (removed on exit), so the cache
    calls of the config behave as they will; no event runs, user() is not
    applied, nothing in the rundir is written. 0 and a line on stdout if the
    config loads; EXIT_CONFIG with `file:line: message` on stderr if not."""
    import tempfile

    if not os.path.isdir(args.rundir):
        return _fail(f"rundir '{args.rundir}': no such directory", EXIT_CONFIG)
    os.chdir(args.rundir)
    files = config_files(args)
    with tempfile.TemporaryDirectory(prefix="kresd-check-") as scratch:
        settings = Settings(listen=list(args.addrs), verbose=args.verbose)
        engine = None
        try:
            engine = load_config(args, settings, check_dir=scratch)
        except ConfigError as e:
            return _fail(str(e), EXIT_CONFIG)
        except BOUNDARY_ERRORS as e:
            return _fail(str(e), EXIT_CONFIG)
        finally:
            if engine is not None:
                engine.stop()
    what = ", ".join(files) if files else "no config file (the defaults)"
    print(f"configuration OK: {what}")
    return EXIT_OK


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


Need = tuple[str, int, str]  # (path, os.access mode, verb for the message)


def needs_after_drop(args: Args) -> list[Need]:
    """What this process and a worker restarted by its leader must still be able
    to use after user(): (path, os.access mode, verb) of paths that exist now.

    The interpreter (run by a restart) and its venv's pyvenv.cfg; every module
    imported so far and the directories it was found in (a restart imports the
    same, and so does a module loaded later); with -f N > 1, the config files
    and the rundir that a restart gets on its command line."""
    needs: list[Need] = [(sys.executable, os.X_OK, "run")]
    if sys.prefix != sys.base_prefix:
        needs.append((os.path.join(sys.prefix, "pyvenv.cfg"), os.R_OK, "read"))
    dirs: set[str] = set()
    for mod in list(sys.modules.values()):
        path = getattr(mod, "__file__", None)
        if not isinstance(path, str) or not os.path.isabs(path):
            continue
        needs.append((path, os.R_OK, "read"))
        dirs.add(os.path.dirname(path))
        if getattr(mod, "__path__", None) is not None:  # a package: found by listing its parent
            dirs.add(os.path.dirname(os.path.dirname(path)))
    needs += [(d, os.R_OK | os.X_OK, "read") for d in sorted(dirs)]
    if args.forks > 1:
        needs += [(os.path.abspath(c), os.R_OK, "read") for c in (*config_files(args), *args.keyfiles)]
        needs.append((os.getcwd(), os.X_OK, "enter"))
    return [need for need in dict.fromkeys(needs) if os.path.exists(need[0])]


def first_denied(needs: list[Need]) -> tuple[Need, str] | None:
    """(need, blocker) of the first need this process cannot use, where blocker
    is the first directory on the way it may not enter (or the path itself)."""
    for need in needs:
        path, mode, _ = need
        if os.access(path, mode):
            continue
        blocker = path
        parts = path.split(os.sep)
        for i in range(2, len(parts)):
            ancestor = os.sep.join(parts[:i])
            if not os.access(ancestor, os.X_OK):
                blocker = ancestor
                break
        return need, blocker
    return None


def _describe_path(path: str) -> str:
    try:
        st = os.stat(path)
    except OSError as e:
        return f"{path} ({e.strerror or e})"
    try:
        owner = pwd.getpwuid(st.st_uid).pw_name
    except KeyError:
        owner = str(st.st_uid)
    try:
        group = grp.getgrgid(st.st_gid).gr_name
    except KeyError:
        group = str(st.st_gid)
    return f"{path} (mode {st.st_mode & 0o7777:04o}, owner {owner}:{group})"


def check_after_drop(needs: list[Need], user: str, uid: int) -> None:
    """BootError(EXIT_CONFIG) naming the user and the path when this process,
    now running as `user`, cannot use one of `needs`."""
    denied = first_denied(needs)
    if denied is None:
        return
    (path, _, what), blocker = denied
    where = f"{path}, blocked at {_describe_path(blocker)}" if blocker != path else _describe_path(path)
    raise BootError(f"user('{user}'): user {user} (uid {uid}) cannot {what} {where}. After user() every "
                    f"kresd process runs as that user, and a worker restarted by the leader runs "
                    f"{sys.executable} -m kresd as that user (the installation, and with -f N the config "
                    f"files and the rundir, must be readable by it): install kresd where {user} can read it, "
                    f"or remove user() from the config", EXIT_CONFIG)


def drop_privileges(engine, needs: list[Need] | None = None) -> None:
    """user() from the config, after binding: chown the cache files and rundir/tty
    to the new user (so they stay usable and a respawn as that user can open
    them), then setgid/setuid. PermissionError -> BootError(EXIT_CONFIG).
    Then re-arm the leader's death signal (the drop clears it) and check, as the
    new user, that `needs` (needs_after_drop) are still usable: BootError(EXIT_CONFIG)
    naming the user and the path if not."""
    uid, gid = engine.pending_user
    engine.pending_user = None
    try:
        user = pwd.getpwuid(uid).pw_name
    except KeyError:
        user = str(uid)
    from kresd.control import CONTROL_DIR

    tty = os.path.abspath(CONTROL_DIR)
    os.makedirs(tty, mode=0o770, exist_ok=True)
    paths = [tty]
    storage = getattr(engine, "storage", None)
    if storage:
        paths.append(storage)
        from cache.generation import FILE as GENERATION

        paths += [os.path.join(storage, n) for n in os.listdir(storage)
                  if n.endswith(".mdb") or n == GENERATION]
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
    from kresd.supervisor import follow_leader_again

    follow_leader_again()
    check_after_drop(needs or [], user, uid)
    log.info(G, "running as uid %d gid %d", uid, gid)


def run(args: Args) -> int:
    """Everything after flag parsing; returns the process exit code."""
    log.setup("debug" if args.verbose else log.DEFAULT_LEVEL)
    if args.worker_id is not None:  # a respawned fork: follow the leader first
        from kresd.supervisor import follow_leader

        leader = args.leader_pid if args.leader_pid is not None else os.getppid()
        if not follow_leader(leader):
            log.notice(G, "worker %d: the leader (pid %d) is gone, not starting", args.worker_id, leader)
            return EXIT_OK
    try:
        check_implemented(args)
    except NotImplementedYet as e:
        return _fail(str(e), EXIT_NOT_IMPLEMENTED)
    if args.check_config:
        return check_config(args)
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


def group_exec_args(args: Args, rundir_abs: str) -> list[str]:
    """The arguments a group's exec'd workers (and its config check) get: the
    same config files, keys, verbosity and pinning, and the rundir."""
    exec_args = [*(a for c in args.configs for a in ("-c", c if c == "-" else os.path.abspath(c)))]
    exec_args += [a for k in args.keyfiles for a in ("-k", os.path.abspath(k))]
    exec_args += ["-v"] * args.verbose + ["-q"] * args.quiet
    if args.cpu_map_text is not None:
        exec_args += ["--cpu-map", args.cpu_map_text]
    exec_args.append(rundir_abs)
    return exec_args


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
    exec_args = group_exec_args(args, rundir_abs)
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
    if args.forks > 1:  # reload() (kresd/bindings/procmodel.py): what to check, whom to signal
        engine.reload_check = ([sys.executable, "-m", "kresd"], group_exec_args(args, os.getcwd()))
        engine.leader_pid = os.getpid() if arb is not None else (args.leader_pid or os.getppid())
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
        from workers.main import preload, run_worker

        if engine.pending_user is not None:
            # everything the worker imports, while this process can still read it all
            # (without user(), those modules are imported when first used, after the boot)
            preload(console=not args.noninteractive)
            import dns.dnssec  # deferred at boot (kresd/__init__.py): execute it while all is readable

            from kresd.modules.registry import import_builtins

            dns.dnssec.key_id  # noqa: B018 (the first attribute access loads it)
            import_builtins()  # the module files a later modules.load() needs (imported on first load)
            drop_privileges(engine, needs_after_drop(args))
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
    entry()
