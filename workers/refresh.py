"""Background NS address refresh: the worker's side of `Resolver.take_refresh()`.

Owns: running the NS (name, type) lookups that the driver queued when a
referral gave glue (workers/resolve.py `_queue_refresh`) as internal requests
(no client) through the outbound transport, off every client's path: at most
MAX_RUNNING at a time, the rest dropped (the driver queues them again after its
retry interval). What they find is stashed like any authoritative answer
(validated where DNSSEC applies); closest_cut then prefers it to the glue, and
the driver falls back to the parent's glue when those addresses fail.
Must not: block the loop, raise out of a callback, or keep a client waiting.
"""
from __future__ import annotations

import asyncio

import dns.message
import dns.rdatatype as T

from kresd import log
from workers.transport import drive_async

G = log.Group.RESOLVER
MAX_RUNNING = 4


class Refresher:
    def __init__(self, resolver, transport):
        self.resolver = resolver
        self.transport = transport
        self.running: set[asyncio.Task] = set()
        self._scheduled = False
        self.done = 0  # lookups finished (tests, stats)

    def kick(self) -> None:
        """The driver queued work: start it once the current callback returns."""
        if self._scheduled:
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:  # no loop (a synchronous caller): nothing runs in the background
            self.resolver.take_refresh()
            return
        self._scheduled = True
        loop.call_soon(self._start)

    def _start(self) -> None:
        self._scheduled = False
        for name, rtype in self.resolver.take_refresh():
            if len(self.running) >= MAX_RUNNING:
                log.debug(G, "NS refresh of %s %s dropped (busy)", name, T.to_text(rtype))
                continue
            task = asyncio.get_running_loop().create_task(self._one(name, rtype))
            self.running.add(task)
            task.add_done_callback(self.running.discard)

    async def _one(self, name, rtype) -> None:
        try:
            query = dns.message.make_query(name, rtype)
            await drive_async(self.resolver.resolve(query), self.transport)
        except asyncio.CancelledError:
            raise
        except Exception as e:  # noqa: BLE001 - background work never takes the worker down
            log.debug(G, "NS refresh of %s %s failed: %r", name, T.to_text(rtype), e)
        finally:
            self.done += 1
