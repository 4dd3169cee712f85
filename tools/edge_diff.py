"""`python -m tools.edge_diff`: our resolver against Debian's kresd 5.6 at the edges, unsigned.

Owns: the list of edge probes over the unsigned knotd hierarchy of
tests/e2e/hierarchy.py: the plain cases, meta-queries (ANY, AXFR, IXFR,
MAILA/MAILB, TYPE0, RRSIG/NSEC asked directly, TSIG/TKEY/OPT), other classes
(CH version.bind, id.server, hostname.bind; HS, NONE, ANY) and opcodes,
CNAME chains at kresd's limit and one over it, CNAME loops, CNAMEs to
NXDOMAIN/NODATA, DNAME chains and the overflowing DNAME (YXDOMAIN), unusual
labels, NS/SOA/DS at and below zone cuts; some again without RD, and EDNS
variants (DO, CD, AD, version 1, no EDNS, an unknown option, payload 512).
The comparison is tools/dnsdiff.py (shared with tools/dnssec_diff.py), with
TTLs checked against the zones' (a resolver may only count them down).
`main()` brings up the hierarchy (knotd on 127.0.10.2-15) and both resolvers
(ours on 127.0.10.22, the reference on 127.0.10.23), runs the probes, prints
the report and stops everything it started.
Must not: import the resolver's own packages (it talks to the binaries only),
or send anything outside 127.0.10.0/24.

Run it from a checkout, as root, inside a network namespace of its own:

  unshare -n bash -c 'ip link set lo up && .venv/bin/python -m tools.edge_diff'

Options: --ours PATH (default: the kresd next to this Python, i.e. .venv/bin/kresd),
--reference PATH (default /usr/sbin/kresd), --keep (leave the temporary
directory with the zones and both resolvers' logs). Exit status 0 when every
answer agrees or differs as KNOWN_DIFFERENCES says, 1 otherwise, 2 when
something could not be started.
"""
from __future__ import annotations

import sys
from pathlib import Path

import dns.edns
import dns.opcode

from tools.dnsdiff import Probe, Result, Setup, TtlLimit, compare, tool_main

OURS_ADDR = "127.0.10.22"
REFERENCE_ADDR = "127.0.10.23"

# The odd names of tests/e2e/hierarchy.py's edge.test. zone (kept here as text: the
# tool imports nothing of the project at module level).
LABEL63 = "a" * 63
NAME255 = f"{'b' * 51}.{'c' * 63}.{'d' * 63}.{'e' * 63}.edge.test."
OVERFLOW_QNAME = f"{'x' * 49}.{'y' * 49}.overflow.edge.test."


def _plain(qname: str, qtype: str, what: str, rdclass: str = "IN") -> Probe:
    return Probe(qname, qtype, what, rdclass=rdclass)


#: Asked in this order, first with RD (the plain variant)
PLAIN: list[tuple[str, str, str]] = [
    # the hierarchy's cases
    ("www.glue.test.", "A", "delegation with glue"),
    ("www.noglue.test.", "A", "glueless delegation"),
    ("alias.glue.test.", "A", "CNAME to another zone"),
    ("nx.glue.test.", "A", "NXDOMAIN"),
    ("www.glue.test.", "AAAA", "NODATA"),
    ("www.lame.test.", "A", "one lame server"),
    ("big.glue.test.", "TXT", "answer > 1232 bytes (TC, then TCP)"),
    ("www.sub.nic.cz.", "A", "name below a non-cut"),
    # meta-queries
    ("www.glue.test.", "ANY", "ANY"),
    ("glue.test.", "AXFR", "AXFR"),
    ("glue.test.", "IXFR", "IXFR"),
    ("www.glue.test.", "MAILA", "MAILA"),
    ("www.glue.test.", "MAILB", "MAILB"),
    ("www.glue.test.", "TYPE0", "TYPE0"),
    ("www.glue.test.", "RRSIG", "RRSIG asked directly (unsigned zone)"),
    ("www.glue.test.", "NSEC", "NSEC asked directly (unsigned zone)"),
    ("www.glue.test.", "NSEC3", "NSEC3 asked directly"),
    ("www.glue.test.", "OPT", "OPT as a question"),
    ("www.glue.test.", "TSIG", "TSIG as a question"),
    ("www.glue.test.", "TKEY", "TKEY as a question"),
    ("www.glue.test.", "SIG", "SIG (a meta type for libknot)"),
    ("www.glue.test.", "TYPE65280", "private-use type, no data"),
    # CNAME chains: in the zone (one reply) and across zones (one query per link)
    ("l12.edge.test.", "A", "in-zone CNAME chain of 12"),
    ("l13.edge.test.", "A", "in-zone CNAME chain of 13 (KR_CNAME_CHAIN_LIMIT)"),
    ("l14.edge.test.", "A", "in-zone CNAME chain of 14"),
    ("x12.edge.test.", "A", "cross-zone CNAME chain of 12"),
    ("x13.edge.test.", "A", "cross-zone CNAME chain of 13"),
    ("x14.edge.test.", "A", "cross-zone CNAME chain of 14"),
    ("l13.edge.test.", "CNAME", "CNAME asked directly at a chain head"),
    ("l14-13.edge.test.", "A", "the last link of the long chain"),
    # CNAME loops
    ("self.edge.test.", "A", "CNAME to itself"),
    ("self.edge.test.", "CNAME", "CNAME to itself, type CNAME"),
    ("loop1.edge.test.", "A", "two-step CNAME loop in a zone"),
    ("xloop.edge.test.", "A", "CNAME loop across zones"),
    # CNAME to negative answers
    ("tonx.edge.test.", "A", "CNAME to NXDOMAIN in the zone"),
    ("tonodata.edge.test.", "AAAA", "CNAME to NODATA in the zone"),
    ("xtonx.edge.test.", "A", "CNAME to NXDOMAIN in another zone"),
    ("xtonodata.edge.test.", "AAAA", "CNAME to NODATA in another zone"),
    # wildcards, empty non-terminal
    ("foo.wild.edge.test.", "A", "wildcard"),
    ("foo.wild.edge.test.", "AAAA", "wildcard NODATA"),
    ("foo.wcname.edge.test.", "A", "wildcard CNAME"),
    ("ent.edge.test.", "A", "empty non-terminal"),
    # DNAME
    ("dname.edge.test.", "DNAME", "DNAME asked directly"),
    ("www.dname.edge.test.", "A", "DNAME to another zone"),
    ("www.dname.edge.test.", "CNAME", "DNAME, type CNAME: the synthesised CNAME"),
    ("nx.dname.edge.test.", "A", "DNAME to NXDOMAIN"),
    ("www.dchain.edge.test.", "A", "chain of two DNAMEs"),
    ("www.dx.edge.test.", "A", "DNAME to a DNAME in another zone"),
    ("a.overflow.edge.test.", "A", "DNAME that fits (NXDOMAIN at the long target)"),
    (OVERFLOW_QNAME, "A", "DNAME substitution over 255 octets (YXDOMAIN)"),
    ("a.grow.edge.test.", "A", "DNAME to below itself: grows until it overflows"),
    # unusual labels
    ("a\\.b.edge.test.", "A", "escaped dot in a label"),
    ("\\000\\255x.edge.test.", "A", "bytes 0 and 255 in a label"),
    (f"{LABEL63}.edge.test.", "A", "63-octet label"),
    (NAME255, "A", "255-octet name"),
    ("WwW.EdGe.TeSt.", "A", "mixed case"),
    # at and below zone cuts
    (".", "NS", "root NS"),
    (".", "SOA", "root SOA"),
    (".", "DS", "DS at the root"),
    ("test.", "DS", "DS of a TLD (unsigned root)"),
    ("test.", "NS", "TLD NS"),
    ("glue.test.", "NS", "NS at a cut"),
    ("glue.test.", "SOA", "SOA at a cut"),
    ("glue.test.", "DS", "DS at a cut (the parent answers NODATA)"),
    ("www.glue.test.", "NS", "NS below a cut"),
    ("www.glue.test.", "DS", "DS below a cut"),
    ("nx.glue.test.", "DS", "DS of a name that does not exist"),
    ("ns1.glue.test.", "A", "glue address, then from the child"),
    ("edge.test.", "DS", "DS at a cut not visited yet"),
    ("sub.nic.cz.", "NS", "NS at an empty non-terminal (no cut)"),
]

#: Other classes
CLASSES: list[tuple[str, str, str, str]] = [
    ("version.bind.", "TXT", "CH", "version.bind CH TXT"),
    ("version.server.", "TXT", "CH", "version.server CH TXT"),
    ("hostname.bind.", "TXT", "CH", "hostname.bind CH TXT"),
    ("id.server.", "TXT", "CH", "id.server CH TXT"),
    ("authors.bind.", "TXT", "CH", "authors.bind CH TXT"),
    ("www.glue.test.", "A", "CH", "class CH, IN data"),
    ("www.glue.test.", "A", "HS", "class HS"),
    ("www.glue.test.", "A", "NONE", "class NONE"),
    ("www.glue.test.", "A", "ANY", "class ANY"),
]


def probes() -> list[Probe]:
    out = [_plain(*q) for q in PLAIN]
    out += [_plain(n, t, w, rdclass=c) for n, t, c, w in CLASSES]
    for op in (dns.opcode.IQUERY, dns.opcode.STATUS, dns.opcode.NOTIFY, dns.opcode.UPDATE):
        name = dns.opcode.to_text(op)
        out.append(Probe("www.glue.test.", "A", f"opcode {name}", f"opcode-{name}", opcode=op))
    # Without RD: names now cached, one never asked, meta and CH queries
    for qname, qtype, what in [("www.glue.test.", "A", "cached"), ("l13.edge.test.", "A", "cached chain"),
                               ("www.edge.example.", "TXT", "never asked"),
                               ("www.glue.test.", "ANY", "ANY"), ("nx.glue.test.", "A", "cached NXDOMAIN")]:
        out.append(Probe(qname, qtype, f"no RD: {what}", "-rd", rd=False))
    out.append(Probe("version.bind.", "TXT", "no RD: CH", "-rd", rdclass="CH", rd=False))
    # EDNS and header flags
    for qname, qtype in [("www.glue.test.", "A"), ("nx.glue.test.", "A"), ("l13.edge.test.", "A")]:
        out.append(Probe(qname, qtype, "DO", "+do", do=True))
        out.append(Probe(qname, qtype, "CD", "+cd", cd=True))
        out.append(Probe(qname, qtype, "AD", "+ad", ad=True))
        out.append(Probe(qname, qtype, "no EDNS", "noedns", edns=None))
    out += [
        Probe("www.glue.test.", "A", "EDNS version 1 (BADVERS)", "edns1", edns=1),
        Probe("www.glue.test.", "A", "EDNS version 1 with DO", "edns1+do", edns=1, do=True),
        Probe("www.glue.test.", "A", "unknown EDNS option", "+opt65001",
              options=(dns.edns.GenericOption(65001, b"\x01\x02"),)),
        Probe("big.glue.test.", "TXT", "big answer, payload 512, no TCP retry", "bufsize512",
              payload=512, retry_tcp=False),
        Probe("big.glue.test.", "TXT", "big answer without EDNS, no TCP retry", "noedns-notcp",
              edns=None, retry_tcp=False),
        Probe("big.glue.test.", "TXT", "big answer over TCP", "tcp", tcp=True),
        Probe("www.glue.test.", "ANY", "ANY over TCP", "tcp", tcp=True),
        Probe("version.bind.", "TXT", "CH over TCP", "tcp", rdclass="CH", tcp=True),
        Probe(OVERFLOW_QNAME, "A", "YXDOMAIN with DO", "+do", do=True),
    ]
    return out


def run(ours_addr: str, ref_addr: str, ttl_limit: TtlLimit | None = None) -> list[Result]:
    return compare(ours_addr, ref_addr, probes(), ttl_limit)


def _setup(base: Path) -> Setup:
    from tests.e2e.hierarchy import Hierarchy, zone_ttls
    from tests.e2e.resolver import CONFIG
    ttls = zone_ttls()
    return Setup(Hierarchy(base), lambda: CONFIG,
                 lambda a, b: run(a, b, lambda n, t: ttls.get((n, t))), {})


def main(argv: list[str] | None = None) -> int:
    return tool_main("edge_diff", __doc__, argv, (OURS_ADDR, REFERENCE_ADDR), _setup)


if __name__ == "__main__":
    sys.exit(main())
