"""workers/selection/prober.py: dead servers are re-asked off the clients'
path; a reply revives them, silence keeps them dead for longer."""
from __future__ import annotations

import asyncio
import random

import dns.message

from workers.selection.iterate import QuerySelection, Selection, SelectionError as E
from workers.selection.prober import Prober

DEAD = "192.0.2.1"


class Clock:
    now = 100.0

    def __call__(self):
        return self.now


def dead_selection():
    clock = Clock()
    sel = Selection(clock, random.Random(1))
    for _ in range(4):
        sel.report_error(DEAD, E.TIMEOUT, QuerySelection())
    return sel, clock


def test_a_reply_to_the_probe_revives_the_server():
    sel, clock = dead_selection()
    asked = []

    async def transport(send):
        asked.append(send)
        q = dns.message.from_wire(send.wire)
        r = dns.message.make_response(q)
        r.set_rcode(5)  # even REFUSED: the server is there
        return r.to_wire()

    p = Prober(sel, transport, rng=random.Random(2))
    assert p.due() == []  # still within its dead interval
    clock.now += 1.5
    due = p.due()
    assert due == [DEAD]
    assert p.due() == []  # claimed in the table: the other forks (and this one) wait
    assert sel.state(DEAD).dead_until > clock.now
    assert asyncio.run(p.probe(DEAD)) is True
    assert not sel.state(DEAD).dead and sel.state(DEAD).known
    assert asked[0].addr == DEAD and asked[0].port == 53
    q = dns.message.from_wire(asked[0].wire)
    assert q.question[0].name.to_text() == "." and q.edns < 0
    assert p.due() == [] and DEAD not in sel.dead_seen


def test_silence_keeps_it_dead_for_longer():
    sel, clock = dead_selection()

    async def transport(send):
        return None

    p = Prober(sel, transport)
    clock.now += 1.5
    assert p.due() == [DEAD]
    assert asyncio.run(p.probe(DEAD)) is False
    st = sel.state(DEAD)
    assert st.dead and st.timeouts == 5 and st.dead_until == clock.now + 2.0


def test_the_task_probes_on_its_own():
    sel, clock = dead_selection()
    clock.now += 1.5
    seen = asyncio.Event()

    async def transport(send):
        seen.set()
        return dns.message.make_response(dns.message.from_wire(send.wire)).to_wire()

    async def main():
        p = Prober(sel, transport, interval=0.01)
        p.start(asyncio.get_running_loop())
        assert sel.probing
        await asyncio.wait_for(seen.wait(), 2.0)
        await asyncio.sleep(0.05)
        p.stop()
        assert not sel.probing and p.revived == 1

    asyncio.run(main())
    assert not sel.state(DEAD).dead


def test_the_probe_asks_the_last_question_the_server_left_unanswered():
    """A question the server was already asked (a scripted test network such as
    Deckard's knows it; `. NS` may be one it does not)."""
    import dns.name
    import dns.rdatatype as T

    sel, clock = dead_selection()
    sel.report_error(DEAD, E.TIMEOUT, QuerySelection(), question=(dns.name.from_text("zone.test."), T.NS))
    asked = []

    async def transport(send):
        asked.append(dns.message.from_wire(send.wire))
        return None

    p = Prober(sel, transport)
    clock.now += 5.0
    assert p.due() == [DEAD]
    asyncio.run(p.probe(DEAD))
    assert asked[0].question[0].name.to_text() == "zone.test." and asked[0].question[0].rdtype == T.NS
