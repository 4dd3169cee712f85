"""RFC 5011 refresh of trust anchors (kresd's ta_update timer).

Owns: the worker's periodic check of which trust-anchor zones are due for a
DNSKEY refresh (workers/dnssec/ta.py refresh_zones: key files loaded with
add_file and the built-in root, first refresh at once, then as RFC 5011 2.3
and kresd time it), and the refresh itself: a DNSKEY query for the zone
resolved past the cache (kresd uses NO_CACHE), so the validator sees the set
as published now and calls ta.observe_dnskey, which moves the RFC 5011 key
states and rewrites a managed key file. A failed refresh is retried sooner
(ta.refresh_failed).
Must not: decide key states (ta.py does) or validate (the resolver does).

Unlike kresd, the first check runs CHECK_EVERY seconds after start, not at
once: the validator already reports every DNSKEY set of an anchored zone it
validates (observe_dnskey), which the first query through that zone does;
and a query at start-up races the test harness (Deckard binds its fake
servers only once the resolver accepts TCP, so a retried start-up query
would meet a server that has no answer for it).
"""
from __future__ import annotations

import logging

import dns.flags
import dns.message
import dns.rcode
import dns.rdatatype as T

from workers.dnssec import ta
from workers.transport import drive_async

log = logging.getLogger("kresd.ta_update")

CHECK_EVERY = 60.0  # seconds between looks at what is due


def arm(engine) -> None:
    """Start the periodic check on the engine's scheduler (after engine.start)."""
    def tick():
        try:
            refresh_due(engine)
        except Exception:  # noqa: BLE001 - the timer must keep running
            log.exception("[ta_update] refresh check failed")
        finally:
            engine.scheduler.call_later(CHECK_EVERY, tick)

    engine.scheduler.call_later(CHECK_EVERY, tick)


def refresh_due(engine) -> list:
    """Start a refresh for every zone that is due; returns the zones."""
    s = engine.settings
    now = engine.resolver.clock.time()
    zones = ta.refresh_zones(s, now)
    if not zones or engine.loop is None or engine.transport is None:
        return []
    for zone in zones:
        ta.refresh_failed(s, zone, now)  # until it succeeds: no second start meanwhile
        engine.loop.create_task(refresh(engine, zone))
    return zones


async def refresh(engine, zone) -> bool:
    """Ask the zone's DNSKEY past the cache; True when it validated."""
    q = dns.message.make_query(zone, T.DNSKEY, want_dnssec=True)
    q.flags |= dns.flags.RD

    def no_cache(req):
        req.options.NO_CACHE = True

    try:
        ans = await drive_async(engine.resolver.resolve(q, client=None, tcp=False, on_request=no_cache),
                                engine.transport)
    except Exception:  # noqa: BLE001
        log.exception("[ta_update] refresh of %s failed", zone)
        ans = None
    ok = ans is not None and ans.rcode() == dns.rcode.NOERROR and bool(ans.flags & dns.flags.AD)
    if not ok:
        log.warning("[ta_update] refreshing the DNSKEY of %s failed; trying again later", zone)
        ta.refresh_failed(engine.settings, zone, engine.resolver.clock.time())
    return ok
