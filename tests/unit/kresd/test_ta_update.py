"""kresd/ta_update.py: the RFC 5011 refresh timer over fakes (which zones are due,
one refresh at a time, a DNSKEY query past the cache, failures retried sooner)."""
import asyncio

import dns.flags
import dns.message
import dns.name
import dns.rcode
import dns.rdatatype as T

from kresd import ta_update
from workers.dnssec import ta
from workers.settings import Settings

ROOT_DS = ". IN DS 20326 8 2 E06D44B80B8F1D39A95C0B0D7C65D08458E880409BBC683457104237C7F8EC8D"


class Clock:
    now = 1_800_000_000.0

    def time(self):
        return self.now


class Resolver:
    """Answers every query with `rcode` and AD as told, remembering queries and options."""

    def __init__(self, ad=True, rcode=dns.rcode.NOERROR):
        self.clock = Clock()
        self.ad, self.rcode = ad, rcode
        self.seen = []

    def resolve(self, q, client=None, tcp=False, on_request=None):
        class Req:
            class options:
                NO_CACHE = False
        req = Req()
        if on_request:
            on_request(req)
        self.seen.append((q.question[0].name, q.question[0].rdtype, req.options.NO_CACHE,
                          bool(q.ednsflags & dns.flags.DO)))
        ans = dns.message.make_response(q)
        ans.set_rcode(self.rcode)
        if self.ad:
            ans.flags |= dns.flags.AD
        return ans
        yield  # a generator, as the real driver


class Scheduler:
    def __init__(self):
        self.timers = []

    def call_later(self, delay, fn):
        self.timers.append((delay, fn))


class Engine:
    def __init__(self, resolver, loop, tmp_path):
        self.settings = Settings()
        keyfile = tmp_path / "root.keys"
        keyfile.write_text(ROOT_DS + "\n")
        ta.add_file(self.settings, str(keyfile))  # tracked: refreshed
        self.resolver = resolver
        self.scheduler = Scheduler()
        self.loop = loop

        async def transport(send):
            return None
        self.transport = transport


def test_due_zones_get_one_dnskey_query_past_the_cache(tmp_path):
    async def main():
        eng = Engine(Resolver(), asyncio.get_running_loop(), tmp_path)
        assert ta_update.refresh_due(eng) == [dns.name.root]  # the first refresh is due at once
        assert ta_update.refresh_due(eng) == []  # not started twice while it runs
        await asyncio.sleep(0)
        await asyncio.sleep(0)
        return eng
    eng = asyncio.run(main())
    assert eng.resolver.seen == [(dns.name.root, T.DNSKEY, True, True)]  # NO_CACHE, DO


def test_a_failed_refresh_is_retried_sooner(tmp_path):
    async def main(ad):
        eng = Engine(Resolver(ad=ad), asyncio.get_running_loop(), tmp_path)
        ok = await ta_update.refresh(eng, dns.name.root)
        ks = eng.settings.ta_store.keysets[dns.name.root]
        return ok, ks.next_refresh - eng.resolver.clock.now
    ok, wait = asyncio.run(main(ad=False))
    assert not ok and 3600 <= wait <= 86400  # RFC 5011 2.3: retry within a day, at least an hour


def test_arm_checks_periodically_not_at_start(tmp_path):
    eng = Engine(Resolver(), None, tmp_path)
    ta_update.arm(eng)
    (delay, tick), = eng.scheduler.timers
    assert delay == ta_update.CHECK_EVERY  # no query races the start-up (see the module docstring)
    tick()  # no loop yet: nothing sent, and the check re-arms itself
    assert len(eng.scheduler.timers) == 2 and eng.resolver.seen == []
