"""A scripted authoritative root on loopback that races every reply with spoofed ones.

Owns: `SpoofingRoot`, one thread serving addr@53 over UDP and TCP. It is
authoritative for the whole tree: the root NS (a.root-servers.net at its own
address) and the names in its `records`; other names are NXDOMAIN, their
ancestors NODATA. For each UDP query it first sends spoofed copies of the real
reply in which every A record reads SPOOFED_A:
  - from a second socket on the same IP (wrong source port),
  - with a wrong ID,
  - when the QNAME carries an upper-case letter (0x20 on), with the QNAME case
    flipped (wrong case);
then, after `delay` seconds, the real reply. TCP gets the real reply only.
Every query is recorded (`seen`: the QNAME exactly as received, its type, and
"udp"/"tcp"), and so is every spoof sent (`spoofs`: kind -> count).
Must not: import the project packages (the e2e tests only see the binary).
"""
from __future__ import annotations

import heapq
import selectors
import socket
import struct
import threading
import time
from collections import Counter

import dns.flags
import dns.message
import dns.name
import dns.rcode
import dns.rdatatype
import dns.rrset

SPOOFED_A = "6.6.6.6"


class SpoofingRoot:
    def __init__(self, addr: str, records: dict[tuple[str, str], list[str]], delay: float = 0.1):
        """records: (owner, type text) -> rdata texts, all served with TTL 3600."""
        self.addr, self.delay = addr, delay
        self.records = {(dns.name.from_text(o), dns.rdatatype.from_text(t)): rd
                        for (o, t), rd in records.items()}
        self.records[(dns.name.root, dns.rdatatype.NS)] = ["a.root-servers.net."]
        self.records[(dns.name.from_text("a.root-servers.net."), dns.rdatatype.A)] = [addr]
        self.seen: list[tuple[bytes, str, str]] = []  # (raw QNAME text, type, transport)
        self.spoofs: Counter[str] = Counter()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._later: list[tuple[float, int, socket.socket, bytes, tuple]] = []  # heap of delayed sends
        self._seq = 0

    # ------------------------------------------------------------------ lifecycle
    def start(self) -> "SpoofingRoot":
        self.udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.udp.bind((self.addr, 53))
        self.other = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)  # the wrong source port
        self.other.bind((self.addr, 0))
        self.tcp = socket.socket()
        self.tcp.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.tcp.bind((self.addr, 53))
        self.tcp.listen(16)
        for s in (self.udp, self.tcp):
            s.setblocking(False)
        self.thread = threading.Thread(target=self._run, name="spoofing-root", daemon=True)
        self.thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self.thread.join(5)
        for s in (self.udp, self.other, self.tcp):
            s.close()

    def queries(self, qname: str, qtype: str = "A") -> list[tuple[bytes, str, str]]:
        """The recorded queries for qname/qtype (QNAME compared case-insensitively)."""
        want = dns.name.from_text(qname).to_text().lower().encode()
        with self._lock:
            return [q for q in self.seen if q[0].lower() == want and q[1] == qtype]

    # ------------------------------------------------------------------ answers
    def answer(self, query: dns.message.Message, spoofed: bool = False) -> bytes:
        """The real reply (or, spoofed, the same with every A record SPOOFED_A); the
        question is echoed byte for byte (dnspython keeps the case it parsed)."""
        r = dns.message.make_response(query)
        r.flags |= dns.flags.AA
        qname, qtype = query.question[0].name, query.question[0].rdtype
        rdatas = self.records.get((qname, qtype))
        if rdatas:
            if spoofed and qtype == dns.rdatatype.A:
                rdatas = [SPOOFED_A]
            r.answer.append(dns.rrset.from_text_list(qname, 3600, "IN", qtype, rdatas))
            if qtype == dns.rdatatype.NS and qname == dns.name.root:
                glue = SPOOFED_A if spoofed else self.addr
                r.additional.append(dns.rrset.from_text("a.root-servers.net.", 3600, "IN", "A", glue))
            return r.to_wire()
        if not any(owner.is_subdomain(qname) for owner, _t in self.records):
            r.set_rcode(dns.rcode.NXDOMAIN)
        r.authority.append(dns.rrset.from_text(".", 3600, "IN", "SOA",
                                               "a.root-servers.net. nobody.invalid. 1 3600 600 86400 3600"))
        return r.to_wire()

    # ------------------------------------------------------------------ the loop
    def _run(self) -> None:
        sel = selectors.DefaultSelector()
        sel.register(self.udp, selectors.EVENT_READ, self._on_udp)
        sel.register(self.tcp, selectors.EVENT_READ, self._on_tcp)
        while not self._stop.is_set():
            now = time.monotonic()
            while self._later and self._later[0][0] <= now:
                _t, _n, sock, data, dest = heapq.heappop(self._later)
                try:
                    sock.sendto(data, dest)
                except OSError:
                    pass
            wait = min(0.05, max(0.0, self._later[0][0] - now)) if self._later else 0.05
            for key, _ev in sel.select(wait):
                try:
                    key.data()
                except OSError:
                    pass
        sel.close()

    def _send_later(self, delay: float, sock: socket.socket, data: bytes, dest: tuple) -> None:
        self._seq += 1
        heapq.heappush(self._later, (time.monotonic() + delay, self._seq, sock, data, dest))

    def _parse(self, wire: bytes, transport: str) -> dns.message.Message | None:
        try:
            q = dns.message.from_wire(wire)
        except Exception:  # noqa: BLE001 - not ours to judge
            return None
        if not q.question:
            return None
        raw = dns.name.from_wire(wire, 12)[0].to_text().encode()  # the case as received
        with self._lock:
            self.seen.append((raw, dns.rdatatype.to_text(q.question[0].rdtype), transport))
        return q

    def _on_udp(self) -> None:
        wire, src = self.udp.recvfrom(65535)
        q = self._parse(wire, "udp")
        if q is None:
            return
        spoof = self.answer(q, spoofed=True)
        self.other.sendto(spoof, src)
        self.spoofs["port"] += 1
        self.udp.sendto(bytes([spoof[0] ^ 0x55, spoof[1] ^ 0xAA]) + spoof[2:], src)
        self.spoofs["id"] += 1
        n = len(q.question[0].name.to_wire())
        qname = spoof[12:12 + n]
        if qname != qname.lower():
            self.udp.sendto(spoof[:12] + qname.swapcase() + spoof[12 + n:], src)
            self.spoofs["case"] += 1
        self._send_later(self.delay, self.udp, self.answer(q), src)

    def _on_tcp(self) -> None:
        conn, _src = self.tcp.accept()
        threading.Thread(target=self._serve_tcp, args=(conn,), daemon=True).start()

    def _serve_tcp(self, conn: socket.socket) -> None:
        conn.settimeout(5)
        try:
            with conn:
                while True:
                    hdr = conn.recv(2, socket.MSG_WAITALL)
                    if len(hdr) < 2:
                        return
                    wire = conn.recv(struct.unpack("!H", hdr)[0], socket.MSG_WAITALL)
                    q = self._parse(wire, "tcp")
                    if q is None:
                        return
                    out = self.answer(q)
                    conn.sendall(struct.pack("!H", len(out)) + out)
        except OSError:
            pass
