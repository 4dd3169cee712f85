"""A real DNS hierarchy served by Debian's knotd on loopback port 53.

Owns: the zone data, one knotd process per authoritative server (each with its
own config, rundir, database and zone files under a temporary directory), their
readiness check and shutdown; and a small dnspython query helper.
Must not: start resolvers (see resolver.py) or send traffic outside 127.0.10.x.

Addresses (all 127.0.10.x, port 53; the rest of 127.0.10.0/24 is for resolvers):

  127.0.10.2  '.'            root; a.root-servers.net. A 127.0.10.2 (the hint)
  127.0.10.3  'test.'        TLD, glue in the root zone (ns.test.)
  127.0.10.4  'example.'     TLD, glue in the root zone (ns.example.);
                             also holds ns.hoster.example. A 127.0.10.6
  127.0.10.5  'glue.test.'   delegated WITH glue (ns1.glue.test. A 127.0.10.5)
  127.0.10.6  'noglue.test.' delegated WITHOUT glue to ns.hoster.example.: the
                             resolver must resolve that NS name in example. first
  127.0.10.7  (no zones)     ns1.lame.test.: lame, answers REFUSED to everything
  127.0.10.8  'lame.test.'   ns2.lame.test.: the working server of lame.test.
  127.0.10.9  'cz.'          TLD, glue in the root zone (ns.cz.)
  127.0.10.10 'nic.cz.'      delegated with glue; holds www.sub.nic.cz. (no cut at
                             sub.nic.cz.: kresd-query's seed example checks that)
  127.0.10.14 'edge.test.'   the edge cases of the differential test against kresd 5.6
                             (tests/e2e/test_differential.py): CNAME chains of 12, 13
                             (kresd's KR_CNAME_CHAIN_LIMIT) and 14 links in the zone and
                             across zones, CNAME loops (self, two-step, across zones),
                             CNAMEs to NXDOMAIN/NODATA, DNAME chains, a DNAME whose
                             substitution overflows 255 octets (YXDOMAIN), a growing
                             DNAME, wildcards, an empty non-terminal, odd labels
                             (escaped bytes, a 63-octet label, a 255-octet name)
  127.0.10.15 'edge.example.' the other side of the cross-zone chains, loops and DNAMEs

Cases (the names tests query, see CASES below):

  glue        www.glue.test. A       -> 192.0.2.1
  noglue      www.noglue.test. A     -> 192.0.2.2
  cname       alias.glue.test. A     -> CNAME www.example. -> 192.0.2.80
  nxdomain    nx.glue.test. A        -> NXDOMAIN, SOA glue.test. in authority
  nodata      www.glue.test. AAAA    -> NOERROR, empty answer, SOA glue.test.
  lame        www.lame.test. A       -> 192.0.2.3 (one of the two NS is lame)
  big         big.glue.test. TXT     -> 6 x 250-byte strings (> 1232 bytes):
                                        TC=1 over UDP, complete over TCP

Run ``python -m tests.e2e.hierarchy`` (as root, from the project root) to start
the hierarchy by hand and keep it up until ^C.
"""
from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

import dns.exception
import dns.flags
import dns.message
import dns.name
import dns.query
import dns.rcode
import dns.rdatatype
import dns.zone

ROOT_ADDR = "127.0.10.2"
TTL = 3600          # positive TTL of the leaf records
NEG_TTL = 900       # SOA minimum = negative-caching TTL
BIG_STRINGS = [f"{i}-".ljust(250, "abcdefghij"[i]) for i in range(6)]  # 6 x 250 bytes


def _soa(mname: str) -> str:
    return f"@ {TTL} IN SOA {mname} hostmaster 2024010101 3600 900 604800 {NEG_TTL}"


# --------------------------------------------------------------------------- edge cases
CNAME_LIMIT = 13    # kresd KR_CNAME_CHAIN_LIMIT
LABEL63 = "a" * 63  # the longest label
# A 255-octet name in edge.test. (11 octets): three 63-octet labels and one of 51.
NAME255 = f"{'b' * 51}.{'c' * 63}.{'d' * 63}.{'e' * 63}.edge.test."
# The DNAME target of overflow.edge.test.: 3 x 50-octet labels under edge.example.
# (167 octets); a query name with more than 88 octets before overflow.edge.test.
# substitutes to more than 255 octets: YXDOMAIN (RFC 6672 2.2).
OVERFLOW_TARGET = ".".join(c * 50 for c in "fgh") + ".edge.example."
OVERFLOW_QNAME = f"{'x' * 49}.{'y' * 49}.overflow.edge.test."  # 100 + 20 octets -> 267 after


def _in_zone_chain(head: str, links: int, end: str) -> str:
    """head -> head-1 -> ... -> head-(links-1) -> end: `links` CNAMEs in one zone."""
    names = [head] + [f"{head}-{i}" for i in range(1, links)] + [end]
    return "".join(f"{a:12s} {TTL} IN CNAME {b}\n" for a, b in zip(names, names[1:]))


def _cross_zone_chain(head: str, links: int) -> tuple[str, str]:
    """head.edge.test. -> head-1.edge.example. -> head-2.edge.test. -> ... ->
    www.edge.test.: `links` CNAMEs alternating between the two zones (one
    upstream query per link). Returns the records of (edge.test., edge.example.)."""
    zones = ["edge.test.", "edge.example."]
    names = [f"{head}.edge.test."] + [f"{head}-{i}.{zones[i % 2]}" for i in range(1, links)]
    names.append("www.edge.test.")
    out = ["", ""]
    for i, (a, b) in enumerate(zip(names, names[1:])):
        out[i % 2] += f"{a} {TTL} IN CNAME {b}\n"
    return out[0], out[1]


_XCHAINS = [_cross_zone_chain(f"x{n}", n) for n in (CNAME_LIMIT - 1, CNAME_LIMIT, CNAME_LIMIT + 1)]

EDGE_TEST = f"""
@          86400 IN NS    ns
ns         86400 IN A     127.0.10.14
www        {TTL} IN A     192.0.2.20
www        {TTL} IN TXT   "edge"
; CNAME chains in the zone: 12, 13 (the limit) and 14 links
""" + "".join(_in_zone_chain(f"l{n}", n, "www") for n in (CNAME_LIMIT - 1, CNAME_LIMIT, CNAME_LIMIT + 1)) \
    + "".join(t for t, _ in _XCHAINS) + f"""
; CNAME loops: self, two-step, across zones
self       {TTL} IN CNAME self
loop1      {TTL} IN CNAME loop2
loop2      {TTL} IN CNAME loop1
xloop      {TTL} IN CNAME xloop.edge.example.
; CNAME to NXDOMAIN / NODATA, in the zone and across zones
tonx       {TTL} IN CNAME nope
tonodata   {TTL} IN CNAME www
xtonx      {TTL} IN CNAME nope.edge.example.
xtonodata  {TTL} IN CNAME www.edge.example.
; DNAMEs: to another zone, a chain of two, one that overflows, one that grows
dname      {TTL} IN DNAME edge.example.
dchain     {TTL} IN DNAME dchain2.edge.test.
dchain2    {TTL} IN DNAME edge.example.
dx         {TTL} IN DNAME dx.edge.example.
overflow   {TTL} IN DNAME {OVERFLOW_TARGET}
grow       {TTL} IN DNAME x.grow.edge.test.
; wildcards and an empty non-terminal
*.wild     {TTL} IN A     192.0.2.21
*.wcname   {TTL} IN CNAME www
b.ent      {TTL} IN A     192.0.2.22
; unusual labels
a\\.b       {TTL} IN A     192.0.2.23
\\000\\255x  {TTL} IN A     192.0.2.24
{LABEL63}  {TTL} IN A     192.0.2.25
{NAME255} {TTL} IN A     192.0.2.26
"""

EDGE_EXAMPLE = f"""
@          86400 IN NS    ns
ns         86400 IN A     127.0.10.15
www        {TTL} IN A     192.0.2.30
xloop      {TTL} IN CNAME xloop.edge.test.
dx         {TTL} IN DNAME edge.test.
""" + "".join(e for _, e in _XCHAINS)


# name -> (address, zone origin or None for "no zones", zone text)
SERVERS: dict[str, tuple[str, str | None, str]] = {
    "root": (ROOT_ADDR, ".", f"""
{_soa('a.root-servers.net.')}
@                    86400 IN NS  a.root-servers.net.
a.root-servers.net.  86400 IN A   127.0.10.2
test.                86400 IN NS  ns.test.
ns.test.             86400 IN A   127.0.10.3
example.             86400 IN NS  ns.example.
ns.example.          86400 IN A   127.0.10.4
cz.                  86400 IN NS  ns.cz.
ns.cz.               86400 IN A   127.0.10.9
"""),
    "test": ("127.0.10.3", "test.", f"""
{_soa('ns')}
@          86400 IN NS  ns
ns         86400 IN A   127.0.10.3
; delegation with glue
glue       86400 IN NS  ns1.glue
ns1.glue   86400 IN A   127.0.10.5
; delegation without glue: the NS name lives in example.
noglue     86400 IN NS  ns.hoster.example.
; lame delegation: ns1 answers REFUSED, ns2 works
lame       86400 IN NS  ns1.lame
lame       86400 IN NS  ns2.lame
ns1.lame   86400 IN A   127.0.10.7
ns2.lame   86400 IN A   127.0.10.8
; the edge cases
edge       86400 IN NS  ns.edge
ns.edge    86400 IN A   127.0.10.14
"""),
    "example": ("127.0.10.4", "example.", f"""
{_soa('ns')}
@          86400 IN NS  ns
ns         86400 IN A   127.0.10.4
www        {TTL} IN A   192.0.2.80
ns.hoster  86400 IN A   127.0.10.6
edge       86400 IN NS  ns.edge
ns.edge    86400 IN A   127.0.10.15
"""),
    "glue.test": ("127.0.10.5", "glue.test.", f"""
{_soa('ns1')}
@          86400 IN NS    ns1
ns1        86400 IN A     127.0.10.5
www        {TTL} IN A     192.0.2.1
alias      {TTL} IN CNAME www.example.
""" + "".join(f'big        {TTL} IN TXT   "{s}"\n' for s in BIG_STRINGS)),  # > 1232 bytes
    "noglue.test": ("127.0.10.6", "noglue.test.", f"""
{_soa('ns.hoster.example.')}
@          86400 IN NS  ns.hoster.example.
www        {TTL} IN A   192.0.2.2
"""),
    "cz": ("127.0.10.9", "cz.", f"""
{_soa('ns')}
@          86400 IN NS  ns
ns         86400 IN A   127.0.10.9
nic        86400 IN NS  ns.nic
ns.nic     86400 IN A   127.0.10.10
"""),
    "nic.cz": ("127.0.10.10", "nic.cz.", f"""
{_soa('ns')}
@          86400 IN NS  ns
ns         86400 IN A   127.0.10.10
www.sub    {TTL} IN A   192.0.2.10
"""),
    "edge.test": ("127.0.10.14", "edge.test.", _soa("ns") + "\n" + EDGE_TEST),
    "edge.example": ("127.0.10.15", "edge.example.", _soa("ns") + "\n" + EDGE_EXAMPLE),
    "lame-ns1": ("127.0.10.7", None, ""),
    "lame.test": ("127.0.10.8", "lame.test.", f"""
{_soa('ns2')}
@          86400 IN NS  ns1
@          86400 IN NS  ns2
ns1        86400 IN A   127.0.10.7
ns2        86400 IN A   127.0.10.8
www        {TTL} IN A   192.0.2.3
"""),
}


@dataclass(frozen=True)
class Case:
    """One resolution case: what to ask and what a correct resolver answers."""
    qname: str
    qtype: str
    rcode: int = dns.rcode.NOERROR
    answer: dict[tuple[str, str], set[str]] = field(default_factory=dict)  # (name, type) -> rdata texts
    soa_zone: str | None = None  # negative answers: SOA owner expected in authority
    server: str = ""             # authoritative server address for the final answer


CASES: dict[str, Case] = {
    "glue": Case("www.glue.test.", "A", answer={("www.glue.test.", "A"): {"192.0.2.1"}},
                 server="127.0.10.5"),
    "noglue": Case("www.noglue.test.", "A", answer={("www.noglue.test.", "A"): {"192.0.2.2"}},
                   server="127.0.10.6"),
    "cname": Case("alias.glue.test.", "A",
                  answer={("alias.glue.test.", "CNAME"): {"www.example."},
                          ("www.example.", "A"): {"192.0.2.80"}},
                  server="127.0.10.5"),
    "nxdomain": Case("nx.glue.test.", "A", rcode=dns.rcode.NXDOMAIN, soa_zone="glue.test.",
                     server="127.0.10.5"),
    "nodata": Case("www.glue.test.", "AAAA", soa_zone="glue.test.", server="127.0.10.5"),
    "lame": Case("www.lame.test.", "A", answer={("www.lame.test.", "A"): {"192.0.2.3"}},
                 server="127.0.10.8"),
    "big": Case("big.glue.test.", "TXT",
                answer={("big.glue.test.", "TXT"): {f'"{s}"' for s in BIG_STRINGS}},
                server="127.0.10.5"),
}

KNOT_CONF = """# knotd config for the kresd-py e2e hierarchy (written by tests/e2e/hierarchy.py)
server:
    rundir: "{dir}"
    pidfile: "{dir}/knot.pid"
    listen: {addr}@53
    udp-workers: 1
    tcp-workers: 1
    background-workers: 1
log:
  - target: stderr
    any: info
database:
    storage: "{dir}/db"
template:
  - id: default
    storage: "{dir}/zones"
    zonefile-sync: -1
    zonefile-load: whole
    journal-content: none
"""


def zone_ttls(servers: dict[str, tuple[str, str | None, str]] | None = None) -> dict:
    """{(owner Name, type): TTL} of every RRset the zones hold: the most a resolver may give."""
    out: dict = {}
    for _, origin, text in (SERVERS if servers is None else servers).values():
        if origin:
            zone = dns.zone.from_text(f"$TTL {TTL}\n{text}", origin, relativize=False,
                                      check_origin=False)
            for name, rdataset in zone.iterate_rdatasets():
                key = (name, rdataset.rdtype)
                out[key] = max(out.get(key, 0), rdataset.ttl)  # parent and child copies
    return out


# --------------------------------------------------------------------------- DNS client
def query(addr: str, qname: str, qtype: str = "A", *, port: int = 53, tcp: bool = False,
          timeout: float = 3.0, payload: int | None = 1232, rd: bool = True) -> dns.message.Message:
    """One query with dnspython; payload=None sends no EDNS. Raises dns.exception.Timeout."""
    q = dns.message.make_query(qname, qtype, use_edns=0 if payload is not None else None,
                               payload=payload, flags=dns.flags.RD if rd else 0)
    if tcp:
        return dns.query.tcp(q, addr, timeout=timeout, port=port)
    return dns.query.udp(q, addr, timeout=timeout, port=port, ignore_unexpected=True)


def answer_map(msg: dns.message.Message) -> dict[tuple[str, str], set[str]]:
    """The answer section as {(owner, type): {rdata text}} for easy comparison."""
    out: dict[tuple[str, str], set[str]] = {}
    for rrset in msg.answer:
        key = (rrset.name.to_text(), dns.rdatatype.to_text(rrset.rdtype))
        out.setdefault(key, set()).update(rd.to_text() for rd in rrset)
    return out


def soa_owners(msg: dns.message.Message) -> list[str]:
    return [r.name.to_text() for r in msg.authority if r.rdtype == dns.rdatatype.SOA]


def check_case(msg: dns.message.Message, case: Case) -> None:
    """Assert that msg is a correct, complete answer for case."""
    assert msg.rcode() == case.rcode, \
        f"{case.qname} {case.qtype}: rcode {dns.rcode.to_text(msg.rcode())}\n{msg}"
    assert not msg.flags & dns.flags.TC, f"{case.qname} {case.qtype}: unexpected TC\n{msg}"
    assert answer_map(msg) == case.answer, f"{case.qname} {case.qtype}: wrong answer\n{msg}"
    if case.soa_zone:
        assert soa_owners(msg) == [case.soa_zone], f"{case.qname} {case.qtype}: no SOA\n{msg}"


# --------------------------------------------------------------------------- knotd
def port_53_free(addr: str) -> bool:
    """Nothing listens on addr:53 (SO_REUSEADDR: TIME_WAIT leftovers don't count, as for knotd)."""
    for kind in (socket.SOCK_DGRAM, socket.SOCK_STREAM):
        with socket.socket(socket.AF_INET, kind) as s:
            if kind == socket.SOCK_STREAM:
                s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                s.bind((addr, 53))
            except OSError:
                return False
    return True


class Hierarchy:
    """The knotd instances of SERVERS, started in base (a fresh directory)."""

    START_TIMEOUT = 20.0  # seconds for all servers to answer

    def __init__(self, base: Path, servers: dict[str, tuple[str, str | None, str]] | None = None):
        """servers: {name: (address, origin or None, zone text)}; SERVERS by default
        (signed_hierarchy.py passes its own signed zones)."""
        self.base = Path(base)
        self.servers = SERVERS if servers is None else servers
        self.procs: dict[str, subprocess.Popen] = {}

    def _write(self, name: str, addr: str, origin: str | None, text: str) -> Path:
        d = self.base / f"knot-{name}"
        (d / "db").mkdir(parents=True, exist_ok=True)
        (d / "zones").mkdir(exist_ok=True)
        conf = KNOT_CONF.format(dir=d, addr=addr)
        if origin:
            zfile = d / "zones" / f"{name}.zone"
            zfile.write_text(f"$ORIGIN {origin}\n$TTL {TTL}\n{text}")
            conf += f'zone:\n  - domain: "{origin}"\n    file: "{zfile}"\n'
        (d / "knot.conf").write_text(conf)
        return d

    def start(self) -> None:
        busy = [a for a, _, _ in self.servers.values() if not port_53_free(a)]
        if busy:
            raise RuntimeError(f"port 53 already in use on {busy} (stale knotd? see `ss -lunp`)")
        self.base.mkdir(parents=True, exist_ok=True)
        try:
            for name, (addr, origin, text) in self.servers.items():
                d = self._write(name, addr, origin, text)
                log = open(d / "knotd.log", "ab")
                # Foreground (no -d), own session so stop() can signal the group by its id.
                self.procs[name] = subprocess.Popen(
                    ["knotd", "-c", str(d / "knot.conf")], stdin=subprocess.DEVNULL,
                    stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
                log.close()
            self.wait_ready()
        except BaseException:
            self.stop()
            raise

    def wait_ready(self) -> None:
        """Until every server answers: its SOA, or REFUSED for the zone-less lame one."""
        deadline = time.monotonic() + self.START_TIMEOUT
        pending = dict(self.servers)
        while pending:
            for name, (addr, origin, _) in list(pending.items()):
                proc = self.procs[name]
                if proc.poll() is not None:
                    raise RuntimeError(f"knotd {name} exited with {proc.returncode}:\n"
                                       + self.log_tail(name))
                try:
                    r = query(addr, origin or "lame.test.", "SOA", timeout=0.3, rd=False)
                except (OSError, dns.exception.Timeout):
                    continue
                want = dns.rcode.NOERROR if origin else dns.rcode.REFUSED
                if r.rcode() == want and (r.answer or not origin):
                    del pending[name]
            if pending:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"knotd not ready after {self.START_TIMEOUT}s: "
                                       f"{sorted(pending)}\n" + "\n".join(
                                           self.log_tail(n) for n in pending))
                time.sleep(0.1)

    def log_tail(self, name: str, lines: int = 20) -> str:
        try:
            text = (self.base / f"knot-{name}" / "knotd.log").read_text(errors="replace")
        except OSError:
            return f"[no log for {name}]"
        return f"--- knotd {name} ---\n" + "\n".join(text.splitlines()[-lines:])

    def running(self) -> bool:
        return bool(self.procs) and all(p.poll() is None for p in self.procs.values())

    def stop(self) -> None:
        """SIGTERM each knotd (its own process group, by id), SIGKILL after 5 s."""
        for p in self.procs.values():
            if p.poll() is None:
                try:
                    os.killpg(p.pid, signal.SIGTERM)
                except ProcessLookupError:
                    pass
        deadline = time.monotonic() + 5
        for p in self.procs.values():
            try:
                p.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                try:
                    os.killpg(p.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                p.wait(5)
        self.procs = {}


def main() -> None:
    import tempfile
    base = Path(tempfile.mkdtemp(prefix="kresd-e2e-"))
    h = Hierarchy(base)
    h.start()
    print(f"hierarchy up in {base}; root hint a.root-servers.net. = {ROOT_ADDR}; ^C stops")
    for name, case in CASES.items():
        print(f"  {name:9s} {case.qname} {case.qtype}")
    try:
        signal.pause()
    except KeyboardInterrupt:
        pass
    finally:
        h.stop()


if __name__ == "__main__":
    main()
