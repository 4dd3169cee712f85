"""Server selection of the real binary against scripted authoritative servers
(issue 13): shares by RTT, recovery from loss, dead servers probed off the
clients' path, state per IP shared by zones, forks and restarts.

Addresses (port 53):
  127.0.13.1            the root: delegates ztest. to ns1/ns2/ns3.ztest. and
                        ztwo. to ns.ztwo. (the same IP as ns1.ztest.)
  127.0.13.11/12/13     ns1/ns2/ns3: answer after 10 / 50 / 200 ms, each
                        counts the names it was asked; loss is scripted
  127.0.13.100/101      the resolvers
Every client query asks a fresh name (`<tag><n>.ztest.`), so each goes upstream.
"""
from __future__ import annotations

import socket
import threading
import time
from collections import Counter

import dns.exception
import dns.flags
import dns.message
import dns.name
import dns.query
import dns.rcode
import dns.rdatatype as T
import dns.rrset
import pytest

from .test_kresd_forks import Group, tty_json, wait_for

pytestmark = pytest.mark.e2e

ROOT = "127.0.13.1"
FAST, MID, SLOW = "127.0.13.11", "127.0.13.12", "127.0.13.13"
DELAYS = {FAST: 0.010, MID: 0.050, SLOW: 0.200}
CONFIG = f"""modules.load('hints > iterate')
trust_anchors.remove('.')
option('ALLOW_LOCAL', true)
hints.root({{['a.root-servers.net.'] = '{ROOT}'}})
"""
Z, Z2 = dns.name.from_text("ztest."), dns.name.from_text("ztwo.")


def _rr(name, rdtype, *rdatas, ttl=3600):
    return dns.rrset.from_text_list(name, ttl, "IN", rdtype, list(rdatas))


class Auth:
    """One scripted server on addr:53 (a thread); `answer(query)` -> Message|None."""

    def __init__(self, addr: str, delay: float = 0.0):
        self.addr, self.delay = addr, delay
        self.asked: list[str] = []  # first label of every question, lower case
        self.probes: list[int] = []  # indexes into asked of questions without EDNS (the prober's)
        self.drop = 0  # drop the next n queries
        self.blackhole = False
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind((addr, 53))
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self):
        while True:
            try:
                wire, peer = self.sock.recvfrom(4096)
            except OSError:
                return
            try:
                q = dns.message.from_wire(wire)
            except Exception:  # noqa: BLE001
                continue
            self.asked.append(q.question[0].name.labels[0].decode().lower() if q.question[0].name.labels[0]
                              else ".")
            if q.edns < 0:
                self.probes.append(len(self.asked) - 1)
            if self.blackhole or self.drop:
                self.drop = max(0, self.drop - 1)
                continue
            r = self.answer(q)
            if r is not None:
                threading.Timer(self.delay, self._send, (r.to_wire(), peer)).start()

    def _send(self, wire, peer):
        try:
            self.sock.sendto(wire, peer)
        except OSError:
            pass

    def answer(self, q):
        name, rdtype = q.question[0].name, q.question[0].rdtype
        r = dns.message.make_response(q)
        r.flags |= dns.flags.AA
        zone = Z if name.is_subdomain(Z) else Z2 if name.is_subdomain(Z2) else None
        if zone is None:
            r.set_rcode(dns.rcode.REFUSED)
        elif rdtype == T.NS and name == zone:
            r.answer.append(_ns(zone)[0])
            r.additional.extend(_ns(zone)[1])
        elif rdtype == T.A:
            r.answer.append(_rr(name, "A", "192.0.2.1", ttl=60))
        else:
            r.authority.append(_rr(zone, "SOA", f"ns.{zone} h. 1 3600 600 86400 60"))
        return r

    def count(self, tag: str) -> int:
        return sum(1 for label in self.asked if label.startswith(tag))

    def close(self):
        self.sock.close()


def _ns(zone):
    if zone == Z:
        names = {f"ns{i}.ztest.": a for i, a in enumerate((FAST, MID, SLOW), 1)}
    else:
        names = {"ns.ztwo.": FAST}
    return (_rr(zone, "NS", *names), [_rr(n, "A", a) for n, a in names.items()])


class Root(Auth):
    def answer(self, q):
        name, rdtype = q.question[0].name, q.question[0].rdtype
        r = dns.message.make_response(q)
        if name == dns.name.root and rdtype == T.NS:
            r.flags |= dns.flags.AA
            r.answer.append(_rr(dns.name.root, "NS", "a.root-servers.net."))
            r.additional.append(_rr("a.root-servers.net.", "A", ROOT))
            return r
        for zone in (Z, Z2):
            if name.is_subdomain(zone):
                ns, glue = _ns(zone)
                r.authority.append(ns)
                r.additional.extend(glue)
                return r
        r.flags |= dns.flags.AA
        r.set_rcode(dns.rcode.NXDOMAIN)
        r.authority.append(_rr(dns.name.root, "SOA", "a.root-servers.net. h. 1 3600 600 86400 60"))
        return r


@pytest.fixture(scope="module")
def servers():
    root = Root(ROOT)
    auth = {a: Auth(a, d) for a, d in DELAYS.items()}
    yield auth
    root.close()
    for s in auth.values():
        s.close()


def ask(resolver_addr: str, name: str, timeout: float = 6.0):
    q = dns.message.make_query(name, "A")
    return dns.query.udp(q, resolver_addr, timeout=timeout)


def shares(servers, tag: str) -> Counter:
    return Counter({a: s.count(tag) for a, s in servers.items()})


def run(addr: str, tag: str, n: int, zone="ztest."):
    for i in range(n):
        r = ask(addr, f"{tag}{i}.{zone}")
        assert r.rcode() == dns.rcode.NOERROR, r


@pytest.fixture(scope="module")
def kresd(kresd_bin, tmp_path_factory, servers):
    g = Group(kresd_bin, tmp_path_factory.mktemp("sel") / "rundir", ["-n", "-a", "127.0.13.100@53"], CONFIG)
    g.start(1)
    wait_for(lambda: _answers("127.0.13.100"), 10, "the resolver")
    yield g
    g.stop()
    print(g.log_tail())


def _answers(addr):
    try:
        ask(addr, "warmup.ztest.", timeout=1.0)
        return True
    except Exception:  # noqa: BLE001
        return False


def show(g: Group, path=None) -> dict:
    return tty_json(path or g.leader_tty, "upstreams.show()") or {}


def test_most_queries_go_to_the_fastest_and_a_loss_is_forgiven(kresd, servers):
    run("127.0.13.100", "a", 200)
    got = shares(servers, "a")
    print(f"200 queries, servers at {DELAYS}: shares {dict(got)}")
    assert got[FAST] >= 0.8 * 200 and min(got.values()) >= 2, got
    table = show(kresd)
    assert table[FAST]["srtt"] < table[MID]["srtt"] < table[SLOW]["srtt"], table
    stats = tty_json(kresd.leader_tty, "worker.stats().upstreams")
    assert stats.keys() == table.keys()

    # three lost packets at the fastest, then it answers again
    fast = servers[FAST]
    fast.drop = 3
    n = 0
    while fast.drop and n < 400:
        run("127.0.13.100", f"b{n}-", 1)
        n += 1
    assert fast.drop == 0, f"only {3 - fast.drop} of the 3 packets were lost in {n} queries"
    before = shares(servers, "c")
    run("127.0.13.100", "c", 200)
    last = {f"c{i}" for i in range(150, 200)}  # its share at the end of the 200
    tail = Counter({a: sum(1 for lab in s.asked if lab in last) for a, s in servers.items()})
    assert sum(before.values()) == 0
    print(f"after 3 losses at the fastest: shares of the next 200 {dict(shares(servers, 'c'))}, "
          f"of queries 150-199 {dict(tail)}")
    assert tail[FAST] >= 0.8 * sum(tail.values()), (tail, shares(servers, "c"))


def test_two_zones_share_an_ip_and_a_dead_server_is_probed_back(kresd, servers):
    fast = servers[FAST]
    run("127.0.13.100", "d", 20)  # FAST is known and preferred (the test above taught it)
    assert show(kresd)[FAST]["timeouts"] == 0
    fast.blackhole = True
    try:
        # ztwo. is served by FAST's IP alone: its timeouts there kill FAST for ztest. too
        for i in range(4):
            try:
                ask("127.0.13.100", f"e{i}.ztwo.", timeout=3.0)
            except dns.exception.Timeout:
                pass
            if show(kresd)[FAST]["dead"]:
                break
        table = show(kresd)
        assert table[FAST]["dead"] and table[FAST]["timeouts"] >= 4, table
        asked = len(fast.asked)
        run("127.0.13.100", "f", 30)
        print(f"black-holed fastest, dead: 30 queries {dict(shares(servers, 'f'))}")
        assert shares(servers, "f")[FAST] == 0  # skipped while dead
        # the prober asks it again (the last question it left unanswered, without
        # EDNS), off the clients' path, and it stays dead
        wait_for(lambda: any(i >= asked for i in fast.probes), 5, "a probe of the dead server")
        assert show(kresd)[FAST]["dead"]
    finally:
        fast.blackhole = False
    wait_for(lambda: not show(kresd)[FAST]["dead"], 10, "the prober to revive the server")
    # used again: explored first, then preferred as its penalty fades
    n = 0
    while servers[FAST].count("g") < 10 and n < 200:
        run("127.0.13.100", f"g{n}-", 1)
        n += 1
    print(f"revived by the prober: {n} queries until it had 10 again, {dict(shares(servers, 'g'))}")
    assert servers[FAST].count("g") >= 10, (n, shares(servers, "g"), show(kresd))


def test_forks_share_and_a_restart_remembers(kresd_bin, tmp_path, servers):
    rundir = tmp_path / "rundir"
    g = Group(kresd_bin, rundir, ["-f", "2", "-a", "127.0.13.101@53"], CONFIG + "modules.load('stats')\n")
    try:
        g.start(2)
        one, two = g.live()
        tty_json(one, "upstreams.reset()")
        # fork one learns, through Lua resolve() on its own loop
        for batch in range(10):  # a few at a time: concurrency would inflate the RTTs it measures
            tty_json(one, f"(function() for i = 1, 4 do resolve('h{batch}-' .. i .. '.ztest.', kres.type.A) end end)()")
            wait_for(lambda: sum(shares(servers, f"h{batch}-").values()) >= 4, 5, "fork one's queries")
        try:
            wait_for(lambda: {FAST, MID, SLOW} <= show(g, one).keys(), 10, "three servers learned by fork one")
        except AssertionError as e:
            raise AssertionError(f"{e}: {shares(servers, 'h')} {show(g, one)}\n{g.log_tail()}") from None
        learned = show(g, two)  # fork two sees them in the shared table
        assert {FAST, MID, SLOW} <= learned.keys() and learned[FAST]["srtt"] < learned[MID]["srtt"]
        # fork two has asked nobody yet, and it does not explore unknown servers first
        tty_json(two, "(function() for i = 1, 20 do resolve('k' .. i .. '.ztest.', kres.type.A) end end)()")
        wait_for(lambda: sum(shares(servers, "k").values()) >= 20, 10, "fork two's queries")
        got = shares(servers, "k")
        print(f"fork two, after fork one learned: 20 queries {dict(got)}")
        assert got[FAST] >= 15, (got, learned)
    finally:
        g.stop()
    assert any(rundir.rglob("upstreams.tbl"))  # next to the cache
    g2 = Group(kresd_bin, rundir, ["-n", "-a", "127.0.13.101@53"], CONFIG)
    try:
        g2.start(1)
        before = show(g2)
        assert {FAST, MID, SLOW} <= before.keys(), before  # restarted with what it learned
        wait_for(lambda: _answers("127.0.13.101"), 10, "the restarted resolver")
        run("127.0.13.101", "m", 20)
        got = shares(servers, "m")
        print(f"restarted: 20 queries {dict(got)}")
        assert got[FAST] >= 16, got  # no unknown server to try first
    finally:
        g2.stop()
