"""workers/fastmiss.py: a plain miss answered without a Request gives the
client the bytes the full path gives and the cache the bytes the full path
stashes; every other reply goes to the full path with that reply (no second
question), and what must not take this path does not."""
import asyncio

import dns.flags
import dns.message
import dns.name
import dns.rcode
import dns.rdatatype as T
import dns.rrset
import pytest

import native
from cache.api import Cache, Rank
from cache.keys import TAG_RRSET
from workers import fastmiss
from workers.fastpath import FastPath
from workers.layer import Layer
from workers.resolve import Resolver
from workers.server import ServerStats, parse_client_query, render_answer
from workers.settings import Settings
from workers.transport import drive_sync

NOW = 1_700_000_000
NS_ADDR = "192.0.2.53"


class Clock:
    def __init__(self):
        self.mono = 100.0

    def time(self):
        return float(NOW)

    def monotonic(self):
        return self.mono


class Neutral(Layer):
    fast_miss = True

    def fast_ok(self, pq):
        return True


class Server:
    """What FastMiss uses of workers/server.Server."""

    def __init__(self, loop):
        self._loop = loop
        self.stats = ServerStats()
        self.sent: list = []
        self.handed: list = []  # (data, preset)

    def _sendto(self, sock, wire, addr):
        self.sent.append(bytes(wire))

    def udp_full(self, sock, data, addr, preset=None):
        self.handed.append((data, preset))


def authority(reply_of):
    """An upstream: query wire -> reply wire (reply_of(query Message) -> Message)."""
    def answer(wire: bytes) -> bytes:
        q = dns.message.from_wire(wire)
        r = reply_of(q)
        return r if isinstance(r, bytes) else r.to_wire(want_shuffle=False)
    return answer


def positive(*rdatas, ttl=3600, extra=None):
    def reply_of(q):
        r = dns.message.make_response(q)
        r.flags |= dns.flags.AA
        name = q.question[0].name
        rtype = q.question[0].rdtype
        texts = rdatas or ("192.0.2.7",)
        if rtype == T.AAAA:
            texts = tuple("2001:db8::" + t.rsplit(".", 1)[-1] for t in texts)
        r.answer.append(dns.rrset.from_text(name, ttl, "IN", rtype, *texts))
        if extra:
            extra(r)
        return r
    return reply_of


def prepare(tmp_path, sub, clock, layers=None, settings=None):
    settings = settings or Settings()
    settings.reorder_rr = False
    cache = Cache(str(tmp_path / sub), 8 << 20, clock=clock.time)
    cache.open()
    with cache.writer() as w:  # the delegation of example. with glue, as a referral leaves it
        w.stash_rrset(dns.rrset.from_text("example.", 86400, "IN", "NS", "ns.example."), Rank.TRY)
        w.stash_rrset(dns.rrset.from_text("ns.example.", 86400, "IN", "A", NS_ADDR), Rank.TRY)
    resolver = Resolver(settings, cache, clock)
    resolver.layers.extend(layers if layers is not None else [Neutral()])
    return resolver, cache, settings


@pytest.fixture
def loop():
    lp = asyncio.new_event_loop()
    yield lp
    lp.close()


class Upstream:
    """outbound.send_udp replaced: the reply comes from `answer` at the next loop turn."""

    def __init__(self, loop, answer):
        self.loop, self.answer, self.sends = loop, answer, []

    def __call__(self, send):
        self.sends.append(send)
        fut = self.loop.create_future()
        reply = self.answer(send.wire) if self.answer is not None else None
        self.loop.call_soon(fut.set_result, reply)
        return fut


def fast_run(tmp_path, loop, monkeypatch, answer, queries, layers=None, settings=None, clock=None,
             keys=False):
    """The queries through FastPath + FastMiss: (server, cache, resolver, taken flags, upstream).
    keys: the zone's DNSKEY cached validated (signed_prepare)."""
    clock = clock or Clock()
    resolver, cache, settings = prepare(tmp_path, "fast", clock, layers, settings)
    if keys:
        signed_prepare(cache)
    up = Upstream(loop, answer)
    monkeypatch.setattr(fastmiss.outbound, "send_udp", up)
    server = Server(loop)
    fast = FastPath(resolver, settings, resolver.clock)
    fast.attach(server.stats, server)
    fast.sync()
    taken = []
    for q in queries:
        data = q.to_wire()
        assert fast(data, ("198.51.100.1", 5000)) is None
        pq = fast.miss_pq
        taken.append(pq is not None and fast.miss.start(None, data, ("198.51.100.1", 5000), pq))
    loop.run_until_complete(asyncio.sleep(0.01))
    fast.miss.flush()
    return server, cache, resolver, taken, up


def full_run(tmp_path, answer, query, sub="full", preset=None, settings=None, clock=None, keys=False):
    """The full path's answer wire, its cache, the questions it sent and
    the resolver, for the same upstream."""
    clock = clock or Clock()
    resolver, cache, settings = prepare(tmp_path, sub, clock, settings=settings)
    if keys:
        signed_prepare(cache)
    msg, _ = parse_client_query(query.to_wire())
    asked = []

    def transport(send):
        asked.append(send)
        return answer(send.wire)
    kw = {"preset": preset} if preset is not None else {}
    ans = drive_sync(resolver.resolve(msg, ("198.51.100.1", 5000), **kw), transport)
    return render_answer(ans, msg, settings, False)[0], cache, asked, resolver


def value(cache, name, rtype):
    return cache.peek_raw(native.cache_key(dns.name.from_text(name).to_wire(), TAG_RRSET, rtype))


def query(name, rtype="A", edns=-1, do=False, cd=False):
    q = dns.message.make_query(name, rtype, use_edns=edns, want_dnssec=do)
    if cd:
        q.flags |= dns.flags.CD
    return q


@pytest.mark.parametrize("q", [
    query("www.example."), query("WwW.ExAmple."), query("www.example.", edns=0),
    query("www.example.", "AAAA", edns=0),
], ids=["plain", "case", "edns", "aaaa"])
@pytest.mark.parametrize("reply", [
    positive(), positive("192.0.2.1", "192.0.2.2", "192.0.2.3", ttl=300),
    positive(extra=lambda r: r.use_edns(0, 0, 1232)),
    positive(extra=lambda r: setattr(r, "flags", r.flags & ~dns.flags.AA)),
], ids=["one", "three", "opt", "not-aa"])
def test_answer_and_stash_equal_the_full_path(tmp_path, loop, monkeypatch, q, reply):
    answer = authority(reply)
    server, cache, _, taken, up = fast_run(tmp_path, loop, monkeypatch, answer, [q])
    assert taken == [True] and len(up.sends) == 1
    assert not server.handed and len(server.sent) == 1
    want, full_cache, _, _ = full_run(tmp_path, answer, q)
    assert server.sent[0] == want
    rtype = q.question[0].rdtype
    assert value(cache, "www.example.", rtype) == value(full_cache, "www.example.", rtype) is not None


def test_the_upstream_question_is_the_full_paths(tmp_path, loop, monkeypatch):
    answer = authority(positive())
    _, _, _, _, up = fast_run(tmp_path, loop, monkeypatch, answer, [query("www.example.")])
    _, _, asked, _ = full_run(tmp_path, answer, query("www.example."))
    a, b = up.sends[0], asked[0]
    assert (a.addr, a.port, a.tcp, a.x20, a.source) == (b.addr, b.port, b.tcp, b.x20, b.source)
    qa, qb = dns.message.from_wire(a.wire), dns.message.from_wire(b.wire)
    assert (qa.flags, qa.question, qa.edns, qa.ednsflags, qa.payload) == \
           (qb.flags, qb.question, qb.edns, qb.ednsflags, qb.payload)  # (names compare without case)


def _cname(q):
    r = dns.message.make_response(q)
    r.flags |= dns.flags.AA
    r.answer.append(dns.rrset.from_text(q.question[0].name, 300, "IN", "CNAME", "other.example."))
    r.answer.append(dns.rrset.from_text("other.example.", 300, "IN", "A", "192.0.2.9"))
    return r


def _nxdomain(q):
    r = dns.message.make_response(q)
    r.flags |= dns.flags.AA
    r.set_rcode(dns.rcode.NXDOMAIN)
    r.authority.append(dns.rrset.from_text("example.", 300, "IN", "SOA", "ns.example. h.example. 1 2 3 4 300"))
    return r


def _referral(q):
    r = dns.message.make_response(q)
    r.authority.append(dns.rrset.from_text("www.example.", 300, "IN", "NS", "ns.www.example."))
    r.additional.append(dns.rrset.from_text("ns.www.example.", 300, "IN", "A", "192.0.2.54"))
    return r


def _servfail(q):
    r = dns.message.make_response(q)
    r.set_rcode(dns.rcode.SERVFAIL)
    return r


def _with_ns(q):
    r = positive()(q)
    r.authority.append(dns.rrset.from_text("example.", 300, "IN", "NS", "ns.example."))
    return r


def _duplicate(q):
    r = positive("192.0.2.7", "192.0.2.8")(q)
    r.use_edns(False)
    wire = bytearray(r.to_wire(want_shuffle=False))
    wire[-4:] = bytes([192, 0, 2, 7])  # the second record the same as the first
    return bytes(wire)


def _tiny_ttl(q):
    return positive(ttl=1)(q)


@pytest.mark.parametrize("reply", [_cname, _nxdomain, _referral, _servfail, _with_ns, _duplicate,
                                   _tiny_ttl])
def test_other_replies_go_to_the_full_path_with_the_reply(tmp_path, loop, monkeypatch, reply):
    answer = authority(reply)
    q = query("www.example.", edns=0)
    server, _, _, taken, up = fast_run(tmp_path, loop, monkeypatch, answer, [q])
    assert taken == [True] and len(up.sends) == 1 and not server.sent
    [(data, preset)] = server.handed
    assert data == q.to_wire() and preset is not None and preset.raw == answer(up.sends[0].wire)
    # the full path takes that reply instead of asking the same question again
    # (a referral or a CNAME asks on from there)
    got, _, asked, _ = full_run(tmp_path, answer, q, "handed", preset=preset)
    want, _, asked_plain, _ = full_run(tmp_path, answer, q, "plain")
    assert len(asked) == len(asked_plain) - 1
    assert dns.message.from_wire(got) == dns.message.from_wire(want)


def test_a_timeout_goes_to_the_full_path_and_counts(tmp_path, loop, monkeypatch):
    server, _, resolver, taken, _ = fast_run(tmp_path, loop, monkeypatch, None, [query("www.example.")])
    assert taken == [True] and len(server.handed) == 1 and server.handed[0][1] is None
    assert resolver.selection.state(NS_ADDR).timeouts == 1


def test_clients_asking_the_same_share_one_question(tmp_path, loop, monkeypatch):
    qs = [query("www.example."), query("WWW.example.", edns=0), query("www.example.", "AAAA")]
    server, _, _, taken, up = fast_run(tmp_path, loop, monkeypatch, authority(positive()), qs)
    assert taken == [True, True, True] and len(up.sends) == 2 and len(server.sent) == 3
    assert server.handed == []


def test_what_must_not_take_it(tmp_path, loop, monkeypatch):
    answer = authority(positive())
    qs = [query("www.example.", "MX"), query("a.b.example."), query("example.", "NS"), query("www.example."),
          query("www.example.", edns=0, do=True), query("www.example.", cd=True), query("www.example."),
          query("www.example.", "A", edns=1)]
    qs[3].flags &= ~dns.flags.RD
    qs[6].flags |= dns.flags.AD
    _, _, _, taken, up = fast_run(tmp_path, loop, monkeypatch, answer, qs)
    assert taken == [False] * len(qs) and not up.sends


def test_a_layer_without_consent_keeps_misses_on_the_full_path(tmp_path, loop, monkeypatch):
    class Watcher(Neutral):
        fast_miss = False
    _, _, _, taken, up = fast_run(tmp_path, loop, monkeypatch, authority(positive()), [query("www.example.")],
                                  layers=[Neutral(), Watcher()])
    assert taken == [False] and not up.sends


def test_a_trust_anchor_keeps_misses_on_the_full_path(tmp_path, loop, monkeypatch):
    settings = Settings()
    settings.trust_anchors[dns.name.root] = ["ta"]
    _, _, _, taken, up = fast_run(tmp_path, loop, monkeypatch, authority(positive()), [query("www.example.")],
                                  settings=settings)
    assert taken == [False] and not up.sends


def test_other_cached_data_for_the_name_keeps_it_on_the_full_path(tmp_path, loop, monkeypatch):
    clock = Clock()
    resolver, cache, settings = prepare(tmp_path, "c", clock)
    with cache.writer() as w:
        w.stash_rrset(dns.rrset.from_text("www.example.", 300, "IN", "CNAME", "x.example."), Rank.INITIAL | Rank.AUTH)
    server = Server(loop)
    fast = FastPath(resolver, settings, clock)
    fast.attach(server.stats, server)
    fast.sync()
    data = query("www.example.").to_wire()
    assert fast(data) is None
    assert fast.miss_pq is not None and not fast.miss.start(None, data, ("198.51.100.1", 1), fast.miss_pq)


def test_stats_count_what_the_full_path_counts(tmp_path, loop, monkeypatch):
    from kresd.modules.stats import Stats

    class Ctx:
        resolver = None
        settings = Settings()
    mods = []
    for sub in ("fast", "full"):
        ctx = Ctx()
        ctx.resolver = Resolver(Settings(), None, Clock())  # (its clock: the latency)
        mods.append(Stats(ctx))
    q = query("www.example.", edns=0)
    answer = authority(positive())
    fast_run(tmp_path, loop, monkeypatch, answer, [q], layers=[Neutral(), mods[0].layer])
    clock = Clock()
    resolver, _, settings = prepare(tmp_path, "full", clock, layers=[Neutral(), mods[1].layer])
    msg, _ = parse_client_query(q.to_wire())
    drive_sync(resolver.resolve(msg, ("198.51.100.1", 5000)), lambda send: answer(send.wire))
    fast_m, full_m = ({k: v for k, v in m.metrics.items() if v and k != "answer.sum_ms"} for m in mods)
    # (latency buckets compare too: both answered within the first one)
    assert fast_m == full_m
    assert list(mods[0].frequent_q) == list(mods[1].frequent_q)
    assert [a for a, _ in mods[0].upstreams] == [a for a, _ in mods[1].upstreams] == [NS_ADDR]


# -- validated misses ----------------------------------------------------------------

class SignedClock(Clock):
    def time(self):
        from .signedzones import START
        return float(START)


def signed_settings():
    from .signedzones import root_ds
    settings = Settings()
    settings.trust_anchors = {dns.name.root: [root_ds()]}
    return settings


def _zone_key():
    from dns.dnssec import Algorithm

    from .signedzones import key
    return key(Algorithm.ECDSAP256SHA256, n=7, flags=257)


def signed_reply(ttl=3600, signed_ttl=None, tamper=False, wildcard=False, expired=False, unsigned=False):
    from .signedzones import START, sign_rrset
    keypair = _zone_key()

    def reply_of(q):
        r = dns.message.make_response(q)
        r.flags |= dns.flags.AA
        name = q.question[0].name
        rr = dns.rrset.from_text(name, signed_ttl or ttl, "IN", "A", "192.0.2.7", "192.0.2.8")
        signer = dns.name.from_text("*.example.") if wildcard else name
        kw = {"inception": START - 7200, "expiration": START - 3600} if expired else {}
        sigs = sign_rrset(dns.rrset.from_rdata_list(signer, rr.ttl, list(rr)), dns.name.from_text("example."),
                          keypair, **kw)
        sigs = dns.rrset.from_rdata_list(name, rr.ttl, list(sigs))
        if tamper:
            rd = sigs[0]
            sigs = dns.rrset.from_rdata_list(name, rr.ttl, [rd.replace(signature=bytes(len(rd.signature)))])
        rr.ttl = ttl
        r.answer.append(rr)
        if not unsigned:
            r.answer.append(sigs)
        r.use_edns(0, dns.flags.DO, 1232)
        return r
    return reply_of


def signed_prepare(cache):
    from workers.layers.cache import SECURE_RANK
    _, dnskey = _zone_key()
    with cache.writer() as w:
        w.stash_rrset(dns.rrset.from_rdata_list(dns.name.from_text("example."), 3600, [dnskey]), SECURE_RANK)


def signed_fast_run(tmp_path, loop, monkeypatch, answer, queries, keys=True):
    return fast_run(tmp_path, loop, monkeypatch, answer, queries, settings=signed_settings(),
                    clock=SignedClock(), keys=keys)


def signed_full_run(tmp_path, answer, query, sub, preset=None):
    return full_run(tmp_path, answer, query, sub, preset, settings=signed_settings(), clock=SignedClock(),
                    keys=True)


@pytest.mark.parametrize("reply", [signed_reply(), signed_reply(ttl=3600, signed_ttl=300)],
                         ids=["plain", "ttl-capped"])
def test_validated_answer_and_stash_equal_the_full_path(tmp_path, loop, monkeypatch, reply):
    answer = authority(reply)
    q = query("www.example.", edns=0)
    server, cache, resolver, taken, up = signed_fast_run(tmp_path, loop, monkeypatch, answer, [q])
    assert taken == [True] and not server.handed and len(server.sent) == 1
    assert resolver.sig_checks == 1
    want, full_cache, _, full = signed_full_run(tmp_path, answer, q, "full")
    assert full.sig_checks == 1
    assert server.sent[0] == want
    v = value(cache, "www.example.", T.A)
    assert v == value(full_cache, "www.example.", T.A) is not None
    assert v[8] == int(Rank.AUTH | Rank.SECURE) and v[9] == 1  # secure, with its RRSIGs


@pytest.mark.parametrize("reply", [signed_reply(tamper=True), signed_reply(expired=True),
                                   signed_reply(unsigned=True), signed_reply(wildcard=True)],
                         ids=["bad-signature", "expired", "unsigned", "wildcard"])
def test_what_does_not_validate_goes_to_the_full_path_with_the_reply(tmp_path, loop, monkeypatch, reply):
    answer = authority(reply)
    q = query("www.example.", edns=0)
    server, cache, _, taken, up = signed_fast_run(tmp_path, loop, monkeypatch, answer, [q])
    assert taken == [True] and not server.sent and len(server.handed) == 1
    preset = server.handed[0][1]
    assert preset is not None and value(cache, "www.example.", T.A) is None
    got, _, asked, _ = signed_full_run(tmp_path, answer, q, "handed", preset=preset)
    want, _, asked_plain, _ = signed_full_run(tmp_path, answer, q, "plain")
    assert len(asked) == len(asked_plain) - 1
    assert dns.message.from_wire(got) == dns.message.from_wire(want)


def test_a_cut_without_validated_keys_stays_on_the_full_path(tmp_path, loop, monkeypatch):
    _, _, _, taken, up = signed_fast_run(tmp_path, loop, monkeypatch, authority(signed_reply()),
                                         [query("www.example.")], keys=False)
    assert taken == [False] and not up.sends


def test_the_cut_memo_ages_with_the_cache_clock(tmp_path, loop, monkeypatch):
    """The parent's cut is remembered, but not past its NS TTL on the clock
    the cache uses (a wall-clock jump ends it even when the monotonic clock
    stands still)."""
    clock = Clock()
    wall = [float(NOW)]
    clock.time = lambda: wall[0]
    resolver, cache, settings = prepare(tmp_path, "m", clock)
    with cache.writer() as w:  # a short delegation TTL for this test
        w.stash_rrset(dns.rrset.from_text("example.", 3, "IN", "NS", "ns.example."), Rank.TRY)
    monkeypatch.setattr(fastmiss.outbound, "send_udp", Upstream(loop, authority(positive())))
    server = Server(loop)
    fast = FastPath(resolver, settings, clock)
    fast.attach(server.stats, server)
    fast.sync()

    def start(name):
        data = query(name).to_wire()
        assert fast(data) is None
        return fast.miss.start(None, data, ("198.51.100.1", 1), fast.miss_pq)
    assert start("a.example.")
    wall[0] += 1
    assert start("b.example.")  # (from the memo)
    wall[0] += 10  # the NS expired: the full path goes to the parent for the delegation
    assert not start("c.example.")
    loop.run_until_complete(asyncio.sleep(0.01))


def test_debug_logging_keeps_misses_on_the_full_path(tmp_path, loop, monkeypatch):
    import logging
    resolv = logging.getLogger("kresd.resolv")
    old = resolv.level
    resolv.setLevel(logging.DEBUG)
    try:
        _, _, _, taken, up = fast_run(tmp_path, loop, monkeypatch, authority(positive()), [query("www.example.")])
    finally:
        resolv.setLevel(old)
    assert taken == [False] and not up.sends


def test_a_graceful_close_waits_for_the_fast_misses(tmp_path, loop, monkeypatch):
    """Server.close(grace) waits for questions the fast miss has in flight
    (no Task tracks them), answers them, and flushes their stash."""
    from workers.server import Server as RealServer

    clock = Clock()
    resolver, cache, settings = prepare(tmp_path, "g", clock)
    answers = []

    class Slow(Upstream):
        def __call__(self, send):  # the reply 0.1 s later
            self.sends.append(send)
            fut = self.loop.create_future()
            self.loop.call_later(0.1, fut.set_result, self.answer(send.wire))
            return fut
    monkeypatch.setattr(fastmiss.outbound, "send_udp", Slow(loop, authority(positive())))
    fast = FastPath(resolver, settings, clock)
    server = RealServer(settings, None, fast=fast)
    monkeypatch.setattr(server, "_sendto", lambda sock, wire, addr: answers.append(bytes(wire)))

    async def main():
        server._loop = asyncio.get_running_loop()
        fast.sync()
        data = query("www.example.").to_wire()
        assert fast(data) is None and fast.miss.start(None, data, ("198.51.100.1", 1), fast.miss_pq)
        await server.close(grace=2.0)
    loop.run_until_complete(main())
    assert len(answers) == 1 and dns.message.from_wire(answers[0]).answer
    assert value(cache, "www.example.", T.A) is not None


def test_an_answer_too_big_for_the_client_goes_to_the_full_path(tmp_path, loop, monkeypatch):
    """40 A records do not fit a client without EDNS (512 bytes): the full
    path answers with TC=1, from the reply the fast miss got."""
    answer = authority(positive(*[f"192.0.2.{i}" for i in range(1, 41)]))
    q = query("www.example.")
    server, cache, _, taken, up = fast_run(tmp_path, loop, monkeypatch, answer, [q])
    assert taken == [True] and len(up.sends) == 1 and not server.sent
    [(data, preset)] = server.handed
    assert preset is not None and preset.raw == answer(up.sends[0].wire)
    assert value(cache, "www.example.", T.A) is not None  # stashed all the same, as the full path does
    got, _, asked, _ = full_run(tmp_path, answer, q, "handed", preset=preset)
    assert not asked and dns.message.from_wire(got).flags & dns.flags.TC
