"""`kresd-query [-C 'lua config'] [-c file] [-t TYPE] NAME [TYPE] [SCRIPT]`.

Owns: a one-shot run of the daemon's own engine and resolution path (Engine
configured from `-c` files then `-C` text, cache in a temporary rundir unless
--cachedir, the Resolver driven by `drive_async` with workers.outbound.query)
and, as kresd 3's scripts/kresd-query.lua, running SCRIPT (a Lua chunk) with
the globals `pkt` (the answer) and `req` (the request: `req:resolved()
.zone_cut.name` is the zone cut of the last upstream query) set.
Must not: bind listening sockets or keep state between runs.

Exit code: with SCRIPT, 0 when it runs without error (e.g. its assert()
holds), 1 otherwise (the error is printed); without SCRIPT the answer is
printed like dig and the exit code is 0 for NOERROR, 1 otherwise; 3 for a
config error, as kresd. A second positional argument that is not a DNS type
is the SCRIPT.
"""
from __future__ import annotations

import asyncio
import sys
import tempfile
import time

import click
import dns.exception
import dns.message
import dns.rcode
import dns.rdatatype

from kresd import log
from kresd.errors import BOUNDARY_ERRORS, EXIT_CONFIG, EXIT_FAILURE, ConfigError
from workers.settings import Settings


def build_query(name: str, rdtype: str, dnssec: bool) -> dns.message.Message:
    return dns.message.make_query(name, dns.rdatatype.from_text(rdtype), use_edns=0, want_dnssec=dnssec)


def make_engine(settings: Settings, rundir: str, configs=(), config_text=None):
    """An Engine configured as the daemon would be (ConfigError on bad config)."""
    from kresd.engine import Engine

    eng = Engine(settings, rundir=rundir)
    try:
        for path in configs:
            eng.load_config(path)
        if config_text:
            eng.load_config_text(config_text, name="-C")
        if eng.cache is None:
            from kresd.bindings.cache import open_cache

            open_cache(eng, settings.cache_size, None)
    except Exception:
        eng.stop()
        raise
    return eng


def resolve_with(eng, query: dns.message.Message, transport=None):
    """(answer, Request or None): one resolution on a fresh loop."""
    from kresd.bindings.kres import resolve_async
    from workers import outbound

    async def run():
        eng.start(asyncio.get_running_loop(), transport or outbound.query)
        return await resolve_async(eng, query)

    return asyncio.run(run())


def run_script(eng, script: str, answer, req) -> str | None:
    """Run SCRIPT with `pkt` and `req` set; the error text or None."""
    g = eng.lua.globals()
    g[b"pkt"] = eng.lua_bridge.wrap_packet(answer)
    g[b"req"] = eng.lua_bridge.wrap_request(req)
    try:
        eng.load_config_text(script, name="script")
    except ConfigError as e:
        return str(e)
    return None


def _split_args(rdtype, script, type_opt):
    if rdtype is not None and script is None:
        try:
            dns.rdatatype.from_text(rdtype)
        except dns.exception.DNSException:
            rdtype, script = None, rdtype
    return type_opt or rdtype or "A", script


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.argument("name")
@click.argument("rdtype", metavar="[TYPE]", required=False)
@click.argument("script", metavar="[SCRIPT]", required=False)
@click.option("-t", "--type", "type_opt", metavar="TYPE", help="Query type (default A).")
@click.option("-c", "--config", "configs", multiple=True, metavar="FILE", help="kresd config file (Lua).")
@click.option("-C", "config_text", metavar="LUA", help="kresd config as text, run after -c files.")
@click.option("--cachedir", metavar="DIR", help="Cache directory (default: a temporary one).")
@click.option("--dnssec", is_flag=True, help="Set the DO bit in the query.")
@click.option("-v", "--verbose", is_flag=True, help="Debug logs on stderr.")
def main(name, rdtype, script, type_opt, configs, config_text, cachedir, dnssec, verbose):
    """Resolve NAME (TYPE, default A) once, as kresd would; run SCRIPT on the result."""
    log.setup("debug" if verbose else log.DEFAULT_LEVEL)
    rdtype, script = _split_args(rdtype, script, type_opt)
    try:
        query = build_query(name, rdtype, dnssec)
    except (dns.exception.DNSException, ValueError) as e:
        raise click.BadParameter(str(e)) from None
    if cachedir:
        sys.exit(_run(Settings(verbose=verbose), cachedir, configs, config_text, query, script))
    with tempfile.TemporaryDirectory(prefix="kresd-query-") as tmp:
        code = _run(Settings(verbose=verbose), tmp, configs, config_text, query, script)
    sys.exit(code)


def _run(settings, rundir, configs, config_text, query, script, transport=None) -> int:
    try:
        eng = make_engine(settings, rundir, configs, config_text)
    except ConfigError as e:
        click.echo(f"[system] error: {e}", err=True)
        return EXIT_CONFIG
    except BOUNDARY_ERRORS as e:
        click.echo(f"[system] error: {e}", err=True)
        return EXIT_FAILURE
    try:
        started = time.monotonic()
        answer, req = resolve_with(eng, query, transport)
        elapsed = (time.monotonic() - started) * 1000
        if script:
            err = run_script(eng, script, answer, req)
            if err:
                click.echo(err, err=True)
                return EXIT_FAILURE
            return 0
        q = query.question[0]
        if answer is None:
            click.echo(f";; kresd-query {q.name} {dns.rdatatype.to_text(q.rdtype)}: no answer (dropped)")
            return EXIT_FAILURE
        click.echo(f";; kresd-query {q.name} {dns.rdatatype.to_text(q.rdtype)}: "
                   f"{dns.rcode.to_text(answer.rcode())}, {elapsed:.0f} ms")
        click.echo(answer.to_text())
        return 0 if answer.rcode() == dns.rcode.NOERROR else EXIT_FAILURE
    finally:
        eng.stop()


if __name__ == "__main__":  # pragma: no cover
    main()
