"""`python -m tools.dnssec_diff`: our resolver against Debian's kresd 5.6 over a signed hierarchy.

Owns: the list of differential queries (secure, insecure, bogus, NSEC, NSEC3,
wildcard, CNAME/DNAME chains; each asked plain, +do, +ad, +cd and +do+cd), the
normal form an answer is compared in (rcode; the AD, AA, TC, RA and CD flags;
answer and authority sections as sets of (owner, type, covered type, rdata)
with TTLs and order ignored; the EDE codes, their text ignored), running the
queries against two resolvers in the same order, and the report (agreement
rate and every difference). `main()` brings up the signed hierarchy of
tests/e2e/signed_hierarchy.py (knotd on 127.0.10.160-173) and both resolvers
(ours on 127.0.10.198, the reference on 127.0.10.199), runs the queries,
prints the report and stops everything it started.
Must not: import the resolver's own packages (it talks to the binaries only),
or send anything outside 127.0.10.0/24.

Run it from a checkout, as root, inside a network namespace of its own:

  unshare -n bash -c 'ip link set lo up && .venv/bin/python -m tools.dnssec_diff'

Options: --ours PATH (default: the kresd next to this Python, i.e. .venv/bin/kresd),
--reference PATH (default /usr/sbin/kresd), --keep (leave the temporary
directory, with the zones, keys and both resolvers' logs). Exit status 0 when
every answer agrees, 1 otherwise, 2 when something could not be started.
"""
from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

import dns.edns
import dns.exception
import dns.flags
import dns.message
import dns.rcode
import dns.rdatatype

OURS_ADDR = "127.0.10.198"
REFERENCE_ADDR = "127.0.10.199"

#: (qname, qtype, what it exercises)
QUERIES: list[tuple[str, str, str]] = [
    ("www.secure.test.", "A", "secure, RSASHA256"),
    ("www.secure.test.", "TXT", "secure"),
    ("secure.test.", "DNSKEY", "secure DNSKEY set"),
    ("secure.test.", "DS", "secure DS at the parent"),
    ("nx.secure.test.", "A", "NSEC NXDOMAIN"),
    ("www.secure.test.", "AAAA", "NSEC NODATA"),
    ("b.ent.secure.test.", "A", "NSEC empty non-terminal"),
    ("x.wild.secure.test.", "A", "NSEC wildcard expansion"),
    ("x.wild.secure.test.", "AAAA", "NSEC wildcard NODATA"),
    ("alias.secure.test.", "A", "in-zone CNAME"),
    ("far.secure.test.", "A", "CNAME secure -> secure (NSEC3 zone)"),
    ("chain.secure.test.", "A", "CNAME chain secure -> insecure -> secure"),
    ("www.dname.secure.test.", "A", "DNAME to nsec3.test."),
    ("nx.dname.secure.test.", "A", "DNAME then NSEC3 NXDOMAIN"),
    ("www.nsec3.test.", "A", "secure, NSEC3 zone"),
    ("nx.nsec3.test.", "A", "NSEC3 NXDOMAIN"),
    ("www.nsec3.test.", "AAAA", "NSEC3 NODATA"),
    ("b.ent.nsec3.test.", "A", "NSEC3 empty non-terminal"),
    ("x.wild.nsec3.test.", "A", "NSEC3 wildcard expansion"),
    ("www.optout.test.", "A", "secure in an opt-out zone"),
    ("nx.optout.test.", "A", "NSEC3 opt-out NXDOMAIN"),
    ("www.sub.optout.test.", "A", "unsigned delegation under opt-out"),
    ("www.ecdsa.test.", "A", "ECDSAP256SHA256"),
    ("nx.ecdsa.test.", "A", "ECDSA NXDOMAIN"),
    ("www.ed25519.test.", "A", "ED25519"),
    ("nx.ed25519.test.", "A", "ED25519 NXDOMAIN"),
    ("insecure.test.", "DS", "insecure delegation: NSEC proof of no DS"),
    ("www.insecure.test.", "A", "insecure"),
    ("nx.insecure.test.", "A", "insecure NXDOMAIN"),
    ("chain.insecure.test.", "A", "CNAME insecure -> secure"),
    ("www.broken.test.", "A", "bogus: tampered RRSIG"),
    ("ok.broken.test.", "A", "secure name in the zone with a tampered RRSIG"),
    ("www.expired.test.", "A", "bogus: expired signatures"),
    ("www.badkey.test.", "A", "bogus: tampered RRSIG over the DNSKEY set"),
]

#: name -> (DO, CD, AD)
VARIANTS: dict[str, tuple[bool, bool, bool]] = {
    "plain": (False, False, False),
    "+do": (True, False, False),
    "+ad": (False, False, True),
    "+cd": (False, True, False),
    "+do+cd": (True, True, False),
}

FLAGS = {"AD": dns.flags.AD, "AA": dns.flags.AA, "TC": dns.flags.TC, "RA": dns.flags.RA,
         "CD": dns.flags.CD}


def ask(addr: str, qname: str, qtype: str, do: bool, cd: bool, ad: bool,
        timeout: float = 5.0) -> dns.message.Message:
    """EDNS0 query (payload 1232), RD, the flags asked; over TCP again when truncated."""
    flags = dns.flags.RD | (dns.flags.CD if cd else 0) | (dns.flags.AD if ad else 0)
    q = dns.message.make_query(qname, qtype, use_edns=0, payload=1232, want_dnssec=do, flags=flags)
    r = dns.query.udp(q, addr, timeout=timeout, ignore_unexpected=True)
    if r.flags & dns.flags.TC:
        r = dns.query.tcp(q, addr, timeout=timeout)
    return r


def _rrs(section) -> frozenset:
    out = set()
    for rrset in section:
        for rd in rrset:
            out.add((rrset.name.to_text(), dns.rdatatype.to_text(rrset.rdtype),
                     dns.rdatatype.to_text(rrset.covers) if rrset.covers else "", rd.to_text()))
    return frozenset(out)


def normal_form(msg: dns.message.Message | None) -> dict:
    """What is compared: rcode, flags, EDE codes, answer and authority as sets."""
    if msg is None:
        return {"rcode": "TIMEOUT"}
    return {
        "rcode": dns.rcode.to_text(msg.rcode()),
        "flags": sorted(n for n, f in FLAGS.items() if msg.flags & f),
        "ede": sorted(int(o.code) for o in msg.options if o.otype == dns.edns.OptionType.EDE),
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
    for key in ("rcode", "flags", "ede"):
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
    diffs: list[str]

    @property
    def key(self) -> str:
        return f"{self.qname} {self.qtype} {self.variant}"


def run(ours_addr: str, ref_addr: str, queries=QUERIES, variants=VARIANTS) -> list[Result]:
    """Every query in every variant, to ours then to the reference; one Result each."""
    results = []
    for qname, qtype, what in queries:
        for vname, (do, cd, ad) in variants.items():
            forms = []
            for addr in (ours_addr, ref_addr):
                try:
                    forms.append(normal_form(ask(addr, qname, qtype, do, cd, ad)))
                except (OSError, dns.exception.DNSException) as e:
                    forms.append({"rcode": f"no answer ({type(e).__name__})"})
            results.append(Result(qname, qtype, vname, what, differences(*forms)))
    return results


def report(results: list[Result], known: dict[str, str] | None = None) -> str:
    """The agreement rate and every difference (known ones marked with their reason)."""
    known = known or {}
    agree = sum(1 for r in results if not r.diffs)
    lines = [f"agreement: {agree}/{len(results)} ({100.0 * agree / max(1, len(results)):.1f}%)"]
    for r in results:
        if r.diffs:
            tag = f"  [known: {known[r.key]}]" if r.key in known else ""
            lines.append(f"DIFF {r.key}  ({r.what}){tag}")
            lines.extend(f"    {d}" for d in r.diffs)
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m tools.dnssec_diff", description=__doc__.split("\n")[0])
    ap.add_argument("--ours", type=Path, default=Path(sys.executable).parent / "kresd")
    ap.add_argument("--reference", type=Path, default=Path("/usr/sbin/kresd"))
    ap.add_argument("--keep", action="store_true")
    args = ap.parse_args(argv)
    root = Path(__file__).resolve().parents[1]
    if not (root / "tests" / "e2e" / "signed_hierarchy.py").exists():
        print("dnssec_diff: run it from a kresd-py checkout (needs tests/e2e/signed_hierarchy.py)",
              file=sys.stderr)
        return 2
    sys.path.insert(0, str(root))
    from tests.e2e.resolver import Resolver
    from tests.e2e.signed_hierarchy import SignedHierarchy, config

    for b in (args.ours, args.reference):
        if not b.exists():
            print(f"dnssec_diff: {b} does not exist (tools/install.sh installs both)", file=sys.stderr)
            return 2
    base = Path(tempfile.mkdtemp(prefix="kresd-dnssec-diff-"))
    started = []
    try:
        h = SignedHierarchy(base)
        started.append(h)
        h.start()
        for b, addr, name in ((args.ours, OURS_ADDR, "ours"), (args.reference, REFERENCE_ADDR, "ref")):
            r = Resolver(b, addr, base / f"rundir-{name}", config=config(h.ta_file))
            started.append(r)
            r.start()
        results = run(OURS_ADDR, REFERENCE_ADDR)
        print(report(results))
        return 0 if all(not r.diffs for r in results) else 1
    except RuntimeError as e:
        print(f"dnssec_diff: {e}", file=sys.stderr)
        return 2
    finally:
        for s in reversed(started):
            s.stop()
        if args.keep:
            print(f"dnssec_diff: kept {base}", file=sys.stderr)
        else:
            shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
