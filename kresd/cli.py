"""The `kresd` command line, compatible with Knot Resolver 5.6.

Owns: flag parsing (click) into a frozen `Args`, listen address syntax
(`addr`, `addr@port`, `addr#port`), the rundir (created if missing, then the
cwd), choosing config files (`-c`, repeatable, relative to the rundir as in
kresd; `-c -` skips defaults; without `-c`, `./config` if readable), and
turning errors into kresd-style messages and exit codes (kresd/errors.py).
Must not: resolve, serve or hold state (workers/main.py runs the worker).

    kresd [-a addr[@port]]... [-t addr[@port]]... [-S fd[:kind]]... [-c file]...
          [-f N] [-n] [-q] [-v] [-V] [-h] [rundir]

Differences from kresd 5.6, on purpose or for now:
- `-t/--tls`, `-S/--fd` and `-f N` with N > 1 parse, then exit with
  EXIT_NOT_IMPLEMENTED; `-f 1` is accepted (kresd: same as `-n`).
- Config files run in the Lua engine (kresd/engine.py); a config error exits
  with EXIT_CONFIG and `file:line: message`. `quit()` in a config exits 0.
- A missing rundir is created (kresd refuses to start).
- Without `-n`, the console (kresd/console.py) reads commands from stdin;
  `-q` hides the `> ` prompt. EOF on stdin detaches the console and the
  daemon keeps serving (stop it with SIGTERM or quit()).
- `-v` wins over a config's `log_level()` (kresd applies the config last).
- Without any listen address (flags or config): 127.0.0.1@53 and ::1@53, as
  kresd's postconfig; ::1 is skipped with a warning where IPv6 is unavailable
  (kresd binds it with freebind).
"""
from __future__ import annotations

import errno
import ipaddress
import os
import sys
from dataclasses import dataclass

import click

from kresd import log
from kresd.errors import (EXIT_CONFIG, EXIT_FAILURE, EXIT_NOT_IMPLEMENTED, BootError, ConfigError,
                          KresdError, NotImplementedYet)
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
    fds: tuple[str, ...] = ()
    configs: tuple[str, ...] = ()
    forks: int = 1
    noninteractive: bool = False
    quiet: bool = False
    verbose: bool = False
    rundir: str = "."


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


def _print_version(ctx, param, value):
    if value and not ctx.resilient_parsing:
        click.echo(version_string())
        ctx.exit(0)


@click.command(context_settings={"help_option_names": ["-h", "--help"]}, options_metavar="[parameters]")
@click.option("-a", "--addr", "addrs", multiple=True, callback=_addr_list(53), metavar="addr[@port]",
              help="Server address (default: localhost@53).")
@click.option("-t", "--tls", "tls", multiple=True, callback=_addr_list(853), metavar="addr[@port]",
              help="Server address for TLS (default: off). Not implemented yet.")
@click.option("-S", "--fd", "fds", multiple=True, metavar="fd[:kind]",
              help="Listen on given fd (handed out by supervisor, :kind is optional). Not implemented yet.")
@click.option("-c", "--config", "configs", multiple=True, metavar="path",
              help="Config file path (relative to [rundir]) (default: config). A subset of kresd's Lua for now.")
@click.option("-f", "--forks", type=click.IntRange(min=1), default=1, metavar="N",
              help="Start N forks sharing the configuration (only 1 for now).")
@click.option("-n", "--noninteractive", is_flag=True, help="Don't start the read-eval-print loop for stdin+stdout.")
@click.option("-q", "--quiet", is_flag=True, help="No command prompt in interactive mode.")
@click.option("-v", "--verbose", is_flag=True, help="Run in verbose mode (debug logs).")
@click.option("-V", "--version", is_flag=True, expose_value=False, is_eager=True, callback=_print_version,
              help="Print version of the server.")
@click.argument("rundir", required=False, default=".")
def main(addrs, tls, fds, configs, forks, noninteractive, quiet, verbose, rundir):
    """Knot Resolver (kresd-py): a caching recursive DNS resolver.

    RUNDIR is the working directory (default: .).
    """
    args = Args(addrs, tls, tuple(fds), tuple(configs), forks, noninteractive,
                quiet, verbose, rundir)
    sys.exit(run(args))


def _fail(msg: str, code: int) -> int:
    log.error(G, "error: %s", msg)
    return code


def check_implemented(args: Args) -> None:
    if args.tls:
        raise NotImplementedYet("-t/--tls (DNS over TLS) is not implemented yet")
    if args.fds:
        raise NotImplementedYet("-S/--fd (inherited sockets) is not implemented yet")
    if args.forks > 1:
        raise NotImplementedYet(f"-f {args.forks}: multiple forks are not implemented yet (use -f 1)")


def enter_rundir(rundir: str) -> None:
    os.makedirs(rundir, exist_ok=True)
    os.chdir(rundir)


def config_files(args: Args) -> list[str]:
    """`-c` files in order (`-c -` loads none); without -c, ./config if readable."""
    files = [c for c in args.configs if c != "-"]
    if not args.configs and os.access("config", os.R_OK):
        files = ["config"]
    return files


def load_config(args: Args, settings: Settings):
    """A configured Engine: the chosen config files, then kresd's post-config
    (cwd is the rundir already)."""
    from kresd.engine import Engine

    engine = Engine(settings, rundir=".")
    for path in config_files(args):
        engine.load_config(path)
        if engine.quit_requested is not None:
            return engine
    engine.post_config()
    return engine


def bind(settings: Settings, defaults: bool):
    """Bind settings.listen; with the built-in defaults, ::1 is optional."""
    from workers.server import bind_endpoints

    if not defaults:
        return bind_endpoints(settings.listen)
    socks = bind_endpoints([DEFAULT_LISTEN[0]])
    try:
        socks += bind_endpoints([DEFAULT_LISTEN[1]])
    except BootError as e:
        cause = e.__cause__
        if not isinstance(cause, OSError) or cause.errno not in (errno.EADDRNOTAVAIL, errno.EAFNOSUPPORT):
            for s in socks:
                s.close()
            raise
        log.warning(G, "warning: %s (skipped)", e)
    return socks


def run(args: Args) -> int:
    """Everything after flag parsing; returns the process exit code."""
    log.setup("debug" if args.verbose else log.DEFAULT_LEVEL)
    try:
        check_implemented(args)
    except NotImplementedYet as e:
        return _fail(str(e), EXIT_NOT_IMPLEMENTED)
    try:
        enter_rundir(args.rundir)
    except OSError as e:
        return _fail(f"rundir '{args.rundir}': {e.strerror or e}", EXIT_FAILURE)
    settings = Settings(listen=list(args.addrs), verbose=args.verbose)
    try:
        engine = load_config(args, settings)
    except ConfigError as e:
        return _fail(str(e), EXIT_CONFIG)
    except KresdError as e:  # e.g. CacheError at open
        return _fail(str(e), EXIT_FAILURE)
    if engine.quit_requested is not None:
        engine.stop()
        return engine.quit_requested
    if args.verbose:
        log.set_level("debug")
    defaults = engine.default_listen
    try:
        socks = bind(settings, defaults)
        from workers.main import run_worker

        return run_worker(settings, ".", sockets=socks, engine=engine,
                          console=None if args.noninteractive else _console(engine, args.quiet))
    except BootError as e:
        engine.stop()
        return _fail(str(e), e.exit_code)
    except KresdError as e:
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
