"""`kresd-query NAME [TYPE]`: resolve one name in-process and print the answer.

Owns: a one-shot run of the daemon's own resolution path (Settings from an
optional kresd config via kresd/miniconf.py, Cache, Resolver driven by
`drive_async` with workers.outbound.query), printed like dig.
Must not: bind listening sockets or keep state between runs (the cache lives
in a temporary directory unless --cachedir is given).

Exit code: 0 when the answer's RCODE is NOERROR, 1 otherwise (3 for a config
error, as kresd). `-C` (a Lua script run on the answer, kresd 3's
kresd-query) comes with the Lua engine.
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

from kresd import log, miniconf
from kresd.errors import EXIT_CONFIG, EXIT_FAILURE, ConfigError, KresdError
from workers.settings import Settings


def build_query(name: str, rdtype: str, dnssec: bool) -> dns.message.Message:
    return dns.message.make_query(name, dns.rdatatype.from_text(rdtype), use_edns=0, want_dnssec=dnssec)


def resolve_once(settings: Settings, query: dns.message.Message, cachedir: str) -> dns.message.Message:
    """One resolution through the worker's core, cache and outbound I/O."""
    from cache.api import Cache
    from workers import outbound
    from workers.resolve import Resolver
    from workers.transport import Clock, drive_async

    clock = Clock()
    cache = Cache(cachedir, settings.cache_size, min_ttl=settings.cache_min_ttl,
                  max_ttl=settings.cache_max_ttl, clock=clock.time)
    cache.open()
    try:
        resolver = Resolver(settings, cache, clock)
        gen = resolver.resolve(query, client=("127.0.0.1", 0), tcp=False)
        return asyncio.run(drive_async(gen, outbound.query))
    finally:
        cache.close()


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.argument("name")
@click.argument("rdtype", metavar="[TYPE]", required=False, default="A")
@click.option("-c", "--config", "configs", multiple=True, metavar="FILE",
              help="kresd config file (the subset kresd/miniconf.py understands).")
@click.option("--cachedir", metavar="DIR", help="Cache directory (default: a temporary one).")
@click.option("--dnssec", is_flag=True, help="Set the DO bit in the query.")
@click.option("-v", "--verbose", is_flag=True, help="Debug logs on stderr.")
def main(name, rdtype, configs, cachedir, dnssec, verbose):
    """Resolve NAME (TYPE, default A) once, as kresd would, and print the answer."""
    log.setup("debug" if verbose else log.DEFAULT_LEVEL)
    settings = Settings(verbose=verbose)
    try:
        conf = miniconf.MiniConfig()
        for path in configs:
            miniconf.load(path, settings, conf)
        if conf.log_level and not verbose:
            log.set_level(conf.log_level)
        query = build_query(name, rdtype, dnssec)
    except ConfigError as e:
        click.echo(f"[system] error: {e}", err=True)
        sys.exit(EXIT_CONFIG)
    except (dns.exception.DNSException, ValueError) as e:
        raise click.BadParameter(str(e)) from None
    started = time.monotonic()
    try:
        if cachedir:
            answer = resolve_once(settings, query, cachedir)
        else:
            with tempfile.TemporaryDirectory(prefix="kresd-query-") as tmp:
                answer = resolve_once(settings, query, tmp)
    except KresdError as e:
        click.echo(f"[system] error: {e}", err=True)
        sys.exit(EXIT_FAILURE)
    elapsed = (time.monotonic() - started) * 1000
    click.echo(f";; kresd-query {name} {rdtype.upper()}: {dns.rcode.to_text(answer.rcode())}, {elapsed:.0f} ms")
    click.echo(answer.to_text())
    sys.exit(0 if answer.rcode() == dns.rcode.NOERROR else EXIT_FAILURE)


if __name__ == "__main__":  # pragma: no cover
    main()
