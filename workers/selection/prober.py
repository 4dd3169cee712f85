"""Re-asking dead upstream servers in the background, off the clients' path.

Owns: `Prober`, a task on the worker's loop that every INTERVAL seconds looks
at the servers this worker saw dead (`Selection.dead_seen`) and, for each
whose dead interval is over, sends one question (the last one it left
unanswered, or `. NS`; no EDNS, no recursion: any reply at all, even REFUSED,
proves the server is back; a question the server was already asked is also
one a scripted test network knows)
through the worker's outbound transport. A reply is reported as an RTT
sample, which ends the run of timeouts (the server is chosen again); no
reply is one more timeout (a longer dead interval). Before sending, the
prober moves dead_until forward in the shared table, so the other forks
that see the same dead server leave the probe to it (racy: at worst two
forks probe once each).
While a Prober runs, `Selection.probing` is True and choose() skips dead
servers even after their dead interval (kresd lets a client query through
instead).
Must not: block the loop, raise out of its task, or probe a server that is
not dead.
"""
from __future__ import annotations

import asyncio
import logging
import random
from dataclasses import replace

import dns.flags
import dns.message
import dns.name
import dns.rdatatype as T

from workers.transport import Send

from .iterate import Selection
from .table import key_of

log = logging.getLogger("kresd.select")

INTERVAL = 0.25  # s between looks at the dead list
PROBE_TIMEOUT = 1.0  # s


class Prober:
    def __init__(self, selection: Selection, transport, *, outgoing_v4=None, outgoing_v6=None,
                 rng: random.Random | None = None, interval: float = INTERVAL):
        self.selection = selection
        self.transport = transport  # async (Send) -> bytes | None (workers.outbound.query)
        self.outgoing_v4, self.outgoing_v6 = outgoing_v4, outgoing_v6
        self.rng = rng or random.SystemRandom()
        self.interval = interval
        self.probes = 0  # sent (stats)
        self.revived = 0  # probes that got a reply
        self._task: asyncio.Task | None = None
        self._inflight: set[str] = set()

    def start(self, loop: asyncio.AbstractEventLoop) -> None:
        self.selection.probing = True
        self._task = loop.create_task(self._run())

    def stop(self) -> None:
        self.selection.probing = False
        if self._task is not None:
            self._task.cancel()
            self._task = None

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self.interval)
            try:
                for addr in self.due():
                    self._inflight.add(addr)
                    asyncio.get_running_loop().create_task(self.probe(addr))
            except Exception:  # noqa: BLE001 - the prober must outlive a bug
                log.exception("[select] prober failed")

    def due(self) -> list[str]:
        """Dead servers whose dead interval is over; claims them in the table."""
        sel = self.selection
        now = sel._now()
        out = []
        for addr in list(sel.dead_seen):
            if addr in self._inflight:
                continue
            st = sel.state(addr)
            if not st.dead:  # revived by a reply (here or in another fork), or reset
                sel.dead_seen.discard(addr)
                continue
            if now < st.dead_until:
                continue
            # claim: the other forks see it dead for the probe's duration
            sel.table.put(key_of(addr), replace(st, dead_until=now + PROBE_TIMEOUT + 1.0))
            out.append(addr)
        return out

    async def probe(self, addr: str) -> bool:
        """Ask addr again the last question it left unanswered (`. NS` when
        none is known); True if anything came back."""
        sel = self.selection
        try:
            host, _, port = addr.partition("#")
            qid = self.rng.getrandbits(16)
            qname, qtype = sel.unanswered.get(addr, (dns.name.root, T.NS))
            query = dns.message.make_query(qname, qtype, use_edns=False, id=qid)
            query.flags = 0
            source = self.outgoing_v6 if ":" in host else self.outgoing_v4
            self.probes += 1
            t0 = sel._now()
            raw = await self.transport(Send(host, int(port or 53), query.to_wire(), timeout=PROBE_TIMEOUT,
                                            source=source))
            ok = raw is not None and _is_reply(raw, qid)
            if ok:
                sel.report_rtt(addr, sel._now() - t0)
                self.revived += 1
            else:
                sel.report_timeout(addr)
            log.debug("[select] probe of dead %s: %s", addr, "alive" if ok else "no reply")
            return ok
        except Exception:  # noqa: BLE001
            log.exception("[select] probe of %s failed", addr)
            return False
        finally:
            self._inflight.discard(addr)


def _is_reply(raw: bytes, qid: int) -> bool:
    try:
        msg = dns.message.from_wire(raw)
    except Exception:  # noqa: BLE001 - anything well-formed enough to parse counts
        return len(raw) >= 12 and int.from_bytes(raw[:2], "big") == qid
    return msg.id == qid and bool(msg.flags & dns.flags.QR)
