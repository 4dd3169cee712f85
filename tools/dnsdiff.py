"""The comparison shared by the differential tools: one query to two resolvers, answers compared.

Owns: `Probe` (one query: name, type, class, opcode, RD/CD/AD, EDNS version,
DO, payload and options, UDP or TCP, whether a truncated answer is asked again
over TCP), building and sending it, the normal form an answer is compared in
(rcode; opcode; EDNS version; the AA, TC, RA, AD and CD flags; answer and
authority sections as sets of (owner, type, covered type, rdata) with TTLs and
order ignored; the EDE codes, their text ignored; and, when the caller knows
the TTLs the zones hold, every TTL above its zone's value), running the probes
against two resolvers in the same order, and the report (agreement rate and
every difference, known ones with their reason), and the tools' common
`main` (`tool_main`: start a hierarchy and both resolvers, run, report, stop).
Must not: import the resolver's own packages (it talks to the binaries only),
or know any zone or query list (tools/dnssec_diff.py and tools/edge_diff.py
own theirs).
"""
from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

import dns.edns
import dns.exception
import dns.flags
import dns.message
import dns.name
import dns.opcode
import dns.query
import dns.rcode
import dns.rdataclass
import dns.rdatatype

FLAGS = {"AD": dns.flags.AD, "AA": dns.flags.AA, "TC": dns.flags.TC, "RA": dns.flags.RA,
         "CD": dns.flags.CD}

#: (owner, type) -> the largest TTL the zones give it (None: not checked)
TtlLimit = Callable[[dns.name.Name, int], "int | None"]


@dataclass(frozen=True)
class Probe:
    """One query as a client sends it; `variant` names how it differs from a plain RD query."""

    qname: str
    qtype: str
    what: str = ""
    variant: str = "plain"
    rdclass: str = "IN"
    opcode: int = dns.opcode.QUERY
    rd: bool = True
    cd: bool = False
    ad: bool = False
    edns: int | None = 0  # EDNS version, None: no OPT at all
    do: bool = False
    payload: int = 1232
    options: tuple = ()  # dns.edns.Option
    tcp: bool = False
    retry_tcp: bool = True  # a TC=1 answer over UDP is asked again over TCP

    @property
    def key(self) -> str:
        cls = "" if self.rdclass == "IN" else f" {self.rdclass}"
        return f"{self.qname}{cls} {self.qtype} {self.variant}"

    def message(self) -> dns.message.Message:
        flags = (dns.flags.RD if self.rd else 0) | (dns.flags.CD if self.cd else 0) \
            | (dns.flags.AD if self.ad else 0)
        q = dns.message.make_query(self.qname, self.qtype, self.rdclass, flags=flags,
                                   use_edns=self.edns if self.edns is not None else False,
                                   payload=self.payload, want_dnssec=self.do,
                                   options=list(self.options) or None)
        q.set_opcode(self.opcode)
        return q


def ask(addr: str, probe: Probe, timeout: float = 5.0, port: int = 53) -> dns.message.Message:
    """Send the probe (UDP, or TCP when asked); a truncated UDP answer is asked again over TCP."""
    q = probe.message()
    if probe.tcp:
        return dns.query.tcp(q, addr, timeout=timeout, port=port)
    r = dns.query.udp(q, addr, timeout=timeout, port=port, ignore_unexpected=True)
    if probe.retry_tcp and r.flags & dns.flags.TC:
        r = dns.query.tcp(q, addr, timeout=timeout, port=port)
    return r


def _rrs(section) -> frozenset:
    out = set()
    for rrset in section:
        for rd in rrset:
            out.add((rrset.name.to_text(), dns.rdatatype.to_text(rrset.rdtype),
                     dns.rdatatype.to_text(rrset.covers) if rrset.covers else "", rd.to_text()))
    return frozenset(out)


def _ttl_over(msg: dns.message.Message, limit: TtlLimit | None) -> list[str]:
    """RRsets whose TTL is above what their zone gives (a cache may only count down)."""
    if limit is None:
        return []
    out = []
    for rrset in msg.answer + msg.authority:
        top = limit(rrset.name, rrset.rdtype)
        if top is not None and rrset.ttl > top:
            out.append(f"{rrset.name} {dns.rdatatype.to_text(rrset.rdtype)} {rrset.ttl} > {top}")
    return sorted(out)


def normal_form(msg: dns.message.Message | None, ttl_limit: TtlLimit | None = None) -> dict:
    """What is compared: rcode, opcode, EDNS version, flags, EDE codes, answer and authority
    as sets, TTLs above the zone's."""
    if msg is None:
        return {"rcode": "TIMEOUT"}
    return {
        "rcode": dns.rcode.to_text(msg.rcode()),
        "opcode": dns.opcode.to_text(msg.opcode()),
        "edns": msg.edns,
        "flags": sorted(n for n, f in FLAGS.items() if msg.flags & f),
        "ede": sorted(int(o.code) for o in msg.options if o.otype == dns.edns.OptionType.EDE),
        "ttl": _ttl_over(msg, ttl_limit),
        "answer": _rrs(msg.answer),
        "authority": _rrs(msg.authority),
    }


def _short(rr: tuple) -> str:
    """One record for the report: RRSIG signatures and DNSKEY keys left out."""
    owner, rdtype, covers, rdata = rr
    keep = {"RRSIG": 8, "DNSKEY": 3}.get(rdtype)
    if keep is not None:
        rdata = " ".join(rdata.split()[:keep]) + " ..."
    return " ".join(x for x in (owner, rdtype, rdata) if x)


def differences(ours: dict, ref: dict) -> list[str]:
    """Human-readable differences between two normal forms (empty: they agree)."""
    out = []
    for key in ("rcode", "opcode", "edns", "flags", "ede", "ttl"):
        if ours.get(key) != ref.get(key):
            out.append(f"{key}: ours {ours.get(key)} kresd5.6 {ref.get(key)}")
    for key in ("answer", "authority"):
        a, b = ours.get(key, frozenset()), ref.get(key, frozenset())
        if a != b:
            extra = "; ".join(_short(x) for x in sorted(a - b))
            missing = "; ".join(_short(x) for x in sorted(b - a))
            out.append(f"{key}: only ours [{extra}] only kresd5.6 [{missing}]")
    return out


@dataclass
class Result:
    qname: str
    qtype: str
    variant: str
    what: str
    diffs: list[str] = field(default_factory=list)
    key: str = ""

    def __post_init__(self):
        self.key = self.key or f"{self.qname} {self.qtype} {self.variant}"


def compare(ours_addr: str, ref_addr: str, probes: Iterable[Probe],
            ttl_limit: TtlLimit | None = None) -> list[Result]:
    """Every probe, to ours then to the reference; one Result each."""
    results = []
    for p in probes:
        forms = []
        for addr in (ours_addr, ref_addr):
            try:
                forms.append(normal_form(ask(addr, p), ttl_limit))
            except (OSError, dns.exception.DNSException) as e:
                forms.append({"rcode": f"no answer ({type(e).__name__})"})
        results.append(Result(p.qname, p.qtype, p.variant, p.what, differences(*forms), key=p.key))
    return results


def agreement(results: list[Result]) -> str:
    agree = sum(1 for r in results if not r.diffs)
    return f"{agree}/{len(results)} ({100.0 * agree / max(1, len(results)):.1f}%)"


def report(results: list[Result], known: dict[str, str] | None = None) -> str:
    """The agreement rate and every difference (known ones marked with their reason)."""
    known = known or {}
    lines = [f"agreement: {agreement(results)}"]
    for r in results:
        if r.diffs:
            tag = f"  [known: {known[r.key]}]" if r.key in known else ""
            lines.append(f"DIFF {r.key}  ({r.what}){tag}")
            lines.extend(f"    {d}" for d in r.diffs)
    return "\n".join(lines)


def check(results: list[Result], known: dict[str, str]) -> tuple[list[Result], list[str]]:
    """(differences not in `known`, known differences that no longer differ)."""
    unknown = [r for r in results if r.diffs and r.key not in known]
    stale = sorted(set(known) - {r.key for r in results if r.diffs})
    return unknown, stale


# --------------------------------------------------------------------------- the tools' main
@dataclass
class Setup:
    """What a differential tool brings: its hierarchy (not started yet), the resolver config
    for both binaries, and the run itself (ours_addr, ref_addr) -> results."""

    hierarchy: object  # start() / stop()
    config: Callable[[], str]  # called once the hierarchy is up
    run: Callable[[str, str], list[Result]]
    known: dict[str, str] = field(default_factory=dict)


def tool_main(prog: str, doc: str, argv: list[str] | None, addrs: tuple[str, str],
              setup: Callable[[Path], Setup]) -> int:
    """argparse, start the hierarchy and both resolvers, run, print the report, stop all.

    Exit status 0 when nothing differs beyond `known`, 1 otherwise, 2 when something
    could not be started."""
    ap = argparse.ArgumentParser(prog=f"python -m tools.{prog}", description=doc.split("\n")[0])
    ap.add_argument("--ours", type=Path, default=Path(sys.executable).parent / "kresd")
    ap.add_argument("--reference", type=Path, default=Path("/usr/sbin/kresd"))
    ap.add_argument("--keep", action="store_true")
    args = ap.parse_args(argv)
    root = Path(__file__).resolve().parents[1]
    if not (root / "tests" / "e2e" / "resolver.py").exists():
        print(f"{prog}: run it from a kresd-py checkout (needs tests/e2e)", file=sys.stderr)
        return 2
    sys.path.insert(0, str(root))
    from tests.e2e.resolver import Resolver

    for b in (args.ours, args.reference):
        if not b.exists():
            print(f"{prog}: {b} does not exist (tools/install.sh installs both)", file=sys.stderr)
            return 2
    base = Path(tempfile.mkdtemp(prefix=f"kresd-{prog}-"))
    started: list = []
    try:
        s = setup(base)
        started.append(s.hierarchy)
        s.hierarchy.start()
        for b, addr, name in ((args.ours, addrs[0], "ours"), (args.reference, addrs[1], "ref")):
            r = Resolver(b, addr, base / f"rundir-{name}", config=s.config())
            started.append(r)
            r.start()
        results = s.run(*addrs)
        print(report(results, s.known))
        unknown, _ = check(results, s.known)
        return 1 if unknown else 0
    except RuntimeError as e:
        print(f"{prog}: {e}", file=sys.stderr)
        return 2
    finally:
        for st in reversed(started):
            st.stop()
        if args.keep:
            print(f"{prog}: kept {base}", file=sys.stderr)
        else:
            shutil.rmtree(base, ignore_errors=True)
