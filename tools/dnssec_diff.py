"""`python -m tools.dnssec_diff`: our resolver against Debian's kresd 5.6 over a signed hierarchy.

Owns: the list of differential queries (secure, insecure, bogus, NSEC, NSEC3,
wildcard, CNAME/DNAME chains; each asked plain, +do, +ad, +cd and +do+cd).
The comparison itself (normal form, differences, report) is tools/dnsdiff.py,
shared with tools/edge_diff.py. `main()` brings up the signed hierarchy of
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

import sys
from pathlib import Path

from tools.dnsdiff import Probe, Result, Setup, compare, tool_main

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


def probes(queries=QUERIES, variants=VARIANTS) -> list[Probe]:
    """Every query in every variant (EDNS0, payload 1232, RD, the flags the variant asks)."""
    return [Probe(qname, qtype, what, vname, do=do, cd=cd, ad=ad)
            for qname, qtype, what in queries for vname, (do, cd, ad) in variants.items()]


def run(ours_addr: str, ref_addr: str, queries=QUERIES, variants=VARIANTS) -> list[Result]:
    """Every query in every variant, to ours then to the reference; one Result each."""
    return compare(ours_addr, ref_addr, probes(queries, variants))


def _setup(base: Path) -> Setup:
    from tests.e2e.signed_hierarchy import SignedHierarchy, config
    h = SignedHierarchy(base)
    return Setup(h, lambda: config(h.ta_file), run)


def main(argv: list[str] | None = None) -> int:
    return tool_main("dnssec_diff", __doc__, argv, (OURS_ADDR, REFERENCE_ADDR), _setup)


if __name__ == "__main__":
    sys.exit(main())
