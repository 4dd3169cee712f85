"""workers/fastpath.py: cache hits answered from the cache bytes give what the
normal path gives, and everything unusual is left to the normal path."""
import dns.flags
import dns.message
import dns.name
import dns.rcode
import dns.rdatatype
import dns.rrset
import pytest

from cache.api import Cache, Rank
from workers.fastpath import FastPath
from workers.layer import Layer
from workers.resolve import Resolver
from workers.server import parse_client_query, render_answer
from workers.settings import Settings
from workers.transport import drive_sync


class Clock:
    def __init__(self):
        self.now = 1_700_000_000.0

    def time(self):
        return self.now

    def monotonic(self):
        return 0.0


class Neutral(Layer):
    def fast_ok(self, pq):
        return True


@pytest.fixture
def env(tmp_path):
    clock = Clock()
    settings = Settings()
    cache = Cache(str(tmp_path), 8 << 20, clock=clock.time)
    cache.open()
    resolver = Resolver(settings, cache, clock)
    resolver.layers.append(Neutral())
    yield FastPath(resolver, settings, clock), resolver, cache, clock
    cache.close()


def stash(cache, text, rank=Rank.INITIAL | Rank.AUTH):
    with cache.writer() as w:
        w.stash_rrset(dns.rrset.from_text(*text), rank)


def slow(resolver, wire):
    msg, _ = parse_client_query(wire)
    ans = drive_sync(resolver.resolve(msg, ("127.0.0.1", 1)), lambda send: None)
    return dns.message.from_wire(render_answer(ans, msg, resolver.settings, False)[0])


def same(a: dns.message.Message, b: dns.message.Message):
    assert (a.id, a.flags, a.rcode(), a.edns, a.ednsflags, a.payload) == \
           (b.id, b.flags, b.rcode(), b.edns, b.ednsflags, b.payload)
    assert a.question == b.question
    assert [(r.name, r.rdtype, r.ttl, sorted(x.to_text() for x in r)) for r in a.answer] == \
           [(r.name, r.rdtype, r.ttl, sorted(x.to_text() for x in r)) for r in b.answer]
    assert not a.authority and not b.authority


def records(msg: dns.message.Message) -> list:
    """The answer section as (owner as asked, type, TTL, sorted rdata texts)."""
    return [(rr.name.to_text(), dns.rdatatype.to_text(rr.rdtype), rr.ttl, sorted(x.to_text() for x in rr))
            for rr in msg.answer]


def answered(fast, q: dns.message.Message) -> dns.message.Message:
    """The fast path's answer to q, decoded (it must answer)."""
    wire = fast(q.to_wire())
    assert wire is not None, f"fast path declined {q.question[0]}"
    got = dns.message.from_wire(wire)
    assert got.id == q.id and got.question == q.question
    return got


@pytest.mark.parametrize("edns", [False, 0])
def test_hit_equals_normal_path(env, edns):
    fast, resolver, cache, clock = env
    stash(cache, ("www.example.", 300, "IN", "A", "192.0.2.1", "192.0.2.2"))
    clock.now += 100
    q = dns.message.make_query("WWW.Example.", "A", use_edns=edns)
    wire = fast(q.to_wire())
    assert wire is not None and fast.hits == 1
    got = dns.message.from_wire(wire)
    same(got, slow(resolver, q.to_wire()))
    assert records(got) == [("WWW.Example.", "A", 200, ["192.0.2.1", "192.0.2.2"])]
    assert got.id == q.id and got.rcode() == dns.rcode.NOERROR
    assert got.flags & dns.flags.QR and got.flags & dns.flags.RA
    for flag in (dns.flags.CD, dns.flags.AD):  # DNSSEC semantics: the full path's
        q2 = dns.message.make_query("www.example.", "A", use_edns=edns)
        q2.flags |= flag
        assert fast(q2.to_wire()) is None
    assert fast(dns.message.make_query("www.example.", "A", want_dnssec=True).to_wire()) is None


def test_everything_else_takes_the_normal_path(env):
    fast, resolver, cache, clock = env
    stash(cache, ("glue.example.", 300, "IN", "A", "192.0.2.1"), rank=Rank.TRY)
    stash(cache, ("alias.example.", 300, "IN", "CNAME", "www.example."))
    stash(cache, ("old.example.", 10, "IN", "A", "192.0.2.9"))
    clock.now += 20
    for name in ("glue.example.", "alias.example.", "old.example.", "missing.example."):
        assert fast(dns.message.make_query(name, "A").to_wire()) is None, name
    stash(cache, ("www.example.", 300, "IN", "A", "192.0.2.1"))
    nord = dns.message.make_query("www.example.", "A")
    nord.flags &= ~dns.flags.RD
    assert fast(nord.to_wire()) is None  # refuse_nord's business
    assert records(answered(fast, dns.message.make_query("www.example.", "A"))) == \
        [("www.example.", "A", 300, ["192.0.2.1"])]
    resolver.layers.append(Layer())  # a layer that did not agree (e.g. a Lua module)
    assert fast(dns.message.make_query("www.example.", "A").to_wire()) is None


def test_answer_too_big_for_udp_goes_slow(env):
    fast, resolver, cache, clock = env
    stash(cache, ("big.example.", 300, "IN", "TXT", *[f'"{"x" * 200}{i}"' for i in range(4)]))
    assert fast(dns.message.make_query("big.example.", "TXT", use_edns=False).to_wire()) is None
    got = answered(fast, dns.message.make_query("big.example.", "TXT", use_edns=0, payload=1232))
    assert records(got) == [("big.example.", "TXT", 300, sorted(f'"{"x" * 200}{i}"' for i in range(4)))]
    assert not got.flags & dns.flags.TC and got.payload == 1232


def test_switched_off(env):
    fast, resolver, cache, clock = env
    stash(cache, ("www.example.", 300, "IN", "A", "192.0.2.1"))
    resolver.settings.fastpath = False
    assert fast(dns.message.make_query("www.example.", "A").to_wire()) is None


def test_with_a_trust_anchor_only_validated_data_is_fast(env):
    """kresd get_lowest_rank(): where validation is on, unvalidated data is no
    answer; the fast path leaves such data to the full path, which applies the
    per-name rule (a name outside every anchor is answered there)."""
    fast, resolver, cache, clock = env
    resolver.settings.trust_anchors[dns.name.root] = ["anchor"]
    stash(cache, ("plain.example.", 300, "IN", "A", "192.0.2.1"))  # INITIAL|AUTH
    stash(cache, ("secure.example.", 300, "IN", "A", "192.0.2.2"), rank=Rank.AUTH | Rank.SECURE)
    stash(cache, ("insecure.example.", 300, "IN", "A", "192.0.2.3"), rank=Rank.AUTH | Rank.INSECURE)
    assert fast(dns.message.make_query("plain.example.", "A").to_wire()) is None
    for name in ("secure.example.", "insecure.example."):
        got = answered(fast, dns.message.make_query(name, "A"))
        assert not got.flags & dns.flags.AD  # no DO/AD asked: no AD, as the full path
    resolver.settings.trust_anchors.clear()
    assert fast(dns.message.make_query("plain.example.", "A").to_wire()) is not None


# -- the packet cache and the batch (workers/fastpath.py run/remember/sync/collect) -----------

import ipaddress  # noqa: E402
import socket  # noqa: E402

import native  # noqa: E402
from workers.server import ServerStats  # noqa: E402


def _answer_for(q: dns.message.Message) -> bytes:
    r = dns.message.make_response(q)
    r.flags |= dns.flags.RA
    r.answer.append(dns.rrset.from_text(q.question[0].name, 60, "IN", "A", "192.0.2.1"))
    return r.to_wire()


@pytest.fixture
def pair(test_addr):
    srv = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    srv.bind((test_addr, 0))
    srv.setblocking(False)
    cli = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    cli.bind((test_addr, 0))
    cli.settimeout(2)
    yield srv, cli
    srv.close()
    cli.close()


def test_remembered_answers_come_from_the_batch_and_are_counted(env, pair):
    fast, resolver, cache, clock = env
    srv, cli = pair
    stats = ServerStats()
    fast.attach(stats)
    q = dns.message.make_query("www.example.", "A")
    now = int(clock.now)
    fast.sync()
    assert fast.remember(q.to_wire(), _answer_for(q), cli.getsockname(), now)
    q2 = dns.message.make_query("WWW.example.", "A")
    cli.sendto(q2.to_wire(), srv.getsockname())
    cli.sendto(dns.message.make_query("other.example.", "A").to_wire(), srv.getsockname())
    import time as _time
    _time.sleep(0.05)
    n, misses = fast.run(srv)
    assert n == 2 and len(misses) == 1 and misses[0][1] == cli.getsockname()
    got = dns.message.from_wire(cli.recv(4096))
    assert got.id == q2.id and str(got.question[0].name) == "WWW.example." and got.answer
    assert stats.queries == 0  # counted lazily ...
    fast.collect()  # ... when read
    assert stats.queries == 1 and stats.udp == 1 and stats.answers[dns.rcode.NOERROR] == 1
    assert fast.stats()["packet_hits"] == 1


def test_consent_subnets_generation_and_epoch(env, pair):
    fast, resolver, cache, clock = env
    srv, cli = pair
    q = dns.message.make_query("www.example.", "A")
    now = int(clock.now)
    fast.sync()
    resolver.layers.append(Layer())  # a layer that does not consent: nothing is kept
    assert not fast.remember(q.to_wire(), _answer_for(q), cli.getsockname(), now)
    resolver.layers.pop()

    class Watcher(Neutral):  # wants to see the clients of one subnet
        def fast_nets(self):
            return [ipaddress.ip_network(cli.getsockname()[0] + "/32")]

    resolver.layers.append(Watcher())
    resolver.settings.epoch += 1  # a console command ran: consent is read again
    fast.sync()
    assert not fast.remember(q.to_wire(), _answer_for(q), cli.getsockname(), now)  # that client
    assert fast.remember(q.to_wire(), _answer_for(q), ("192.0.2.200", 53), now)  # another one
    cli.sendto(q.to_wire(), srv.getsockname())
    import time as _time
    _time.sleep(0.05)
    n, misses = fast.run(srv)
    assert n == 1 and len(misses) == 1  # the watched client takes the full path
    assert fast.pc.count == 1
    cache.clear()  # in any process: the shared generation moves on
    fast.sync()
    assert fast.pc.count == 0
    assert fast.remember(q.to_wire(), _answer_for(q), ("192.0.2.200", 53), now)
    resolver.settings.epoch += 1
    fast.sync()
    assert fast.pc.count == 0  # after a console command the packet cache starts empty
    assert not fast.remember(q.to_wire(), _answer_for(q), ("192.0.2.200", 53), now - 1)  # a second later


def test_rate_limiter_reaches_the_batch_and_its_counts_the_stats(env):
    """A layer offering `rate_limiter` (the rate_limiting module) has it handed
    to the batch at the next consent; worker.stats().fastpath (and so
    /metrics) shows its counts."""
    fast, resolver, _cache, _clock = env
    rl = native.RateLimit(bytearray(8 * 1025), 1024, 0, 1, 1)

    class Limiting(Neutral):
        rate_limiter = rl

    fast.sync()
    assert getattr(fast.batch, "limiter", None) is None and "ratelimited" not in fast.stats()
    resolver.layers.append(Limiting())
    fast.settings.epoch += 1
    fast.sync()
    assert fast.batch.limiter is rl
    rl.count(True)
    rl.count(False)
    st = fast.stats()
    assert (st["ratelimit_tc"], st["ratelimit_dropped"]) == (1, 1)
