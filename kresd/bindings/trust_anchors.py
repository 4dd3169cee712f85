"""`trust_anchors` namespace: add_file, add, remove, set_insecure, insecure,
keysets, summary.

Owns: storing DNSSEC trust anchors in settings.trust_anchors
(dns.name.Name -> list of DS/DNSKEY rdata) and negative trust anchors in
settings.negative_trust_anchors (list of dns.name.Name). kresd 5.6 starts with
the IANA root KSK-2017 anchor; `trust_anchors.remove('.')` drops it.
Must not: validate anything (the DNSSEC layer reads these settings).
"""
from __future__ import annotations

import dns.exception
import dns.name
import dns.rdatatype
import dns.zonefile

from .bridge import LuaUsage

ROOT_DS = ". 172800 IN DS 20326 8 2 E06D44B80B8F1D39A95C0B0D7C65D08458E880409BBC683457104237C7F8EC8D"


def _parse_line(line: str, where: str) -> list:
    """[(name, rdata)] of one zone-file line; a DS whose digest length does not
    fit its digest type is kept as written (kresd loads it; it never matches)."""
    try:
        rrsets = dns.zonefile.read_rrsets(line, origin=dns.name.root, relativize=False, rdclass=None,
                                          default_ttl=3600)
        return [(rr.name, rd, rr.rdtype) for rr in rrsets for rd in rr]
    except (dns.exception.DNSException, ValueError) as e:
        lenient = _lenient_ds(line)
        if lenient is None:
            raise LuaUsage(f"{where}: cannot parse trust anchor: {e}") from None
        return [lenient]


def _lenient_ds(line: str):
    import dns.dnssec
    import dns.rdataclass
    import dns.rdtypes.ANY.DS as DS

    toks = line.split(";", 1)[0].split()
    upper = [t.upper() for t in toks]
    if "DS" not in upper or len(toks) < upper.index("DS") + 5:
        return None
    i = upper.index("DS")
    try:
        alg = int(toks[i + 2]) if toks[i + 2].isdigit() else int(dns.dnssec.algorithm_from_text(toks[i + 2]))
        fields = dict(rdclass=dns.rdataclass.IN, rdtype=dns.rdatatype.DS, rdcomment=None,
                      key_tag=int(toks[i + 1]), algorithm=alg, digest_type=int(toks[i + 3]),
                      digest=bytes.fromhex("".join(toks[i + 4:])))
        name = dns.name.from_text(toks[0])
    except (ValueError, dns.exception.DNSException):
        return None
    rd = DS.DS.__new__(DS.DS)
    for k, v in fields.items():
        object.__setattr__(rd, k, v)
    return (name, rd, dns.rdatatype.DS)


def add_text(settings, text: str, where: str = "trust_anchors.add") -> int:
    """Parse zone-file lines of DS/DNSKEY records into settings.trust_anchors."""
    try:  # whole text first: records may span lines in parentheses
        rrsets = dns.zonefile.read_rrsets(text, origin=dns.name.root, relativize=False, rdclass=None,
                                          default_ttl=3600)
        parsed = [(rr.name, rd, rr.rdtype) for rr in rrsets for rd in rr]
    except (dns.exception.DNSException, ValueError):
        parsed = [x for line in text.splitlines() if line.split(";", 1)[0].strip()
                  for x in _parse_line(line, where)]
    n = 0
    if True:
        for name, rd, rdtype in parsed:
            if rdtype not in (dns.rdatatype.DS, dns.rdatatype.DNSKEY):
                raise LuaUsage(f"{where}: {name} {dns.rdatatype.to_text(rdtype)}: only DS or DNSKEY")
            known = settings.trust_anchors.setdefault(name, [])
            if rd not in known:
                known.append(rd)
                n += 1
    return n


def _name(text) -> dns.name.Name:
    try:
        if isinstance(text, bytes):
            return dns.name.from_wire(text, 0)[0]
        return dns.name.from_text(text)
    except dns.exception.DNSException as e:
        raise LuaUsage(f"trust_anchors: invalid name '{text}': {e}") from None


def install(engine) -> None:
    from . import namespace

    s = engine.settings
    if not s.trust_anchors:
        add_text(s, ROOT_DS)

    def add(text=None):
        """trust_anchors.add('. IN DS ...')"""
        if not isinstance(text, str):
            raise LuaUsage("trust_anchors.add(rr_string): a DS or DNSKEY record in zone-file form")
        add_text(s, text)
        return True

    def add_file(path=None, readonly=None):
        """trust_anchors.add_file(path[, readonly])"""
        if not isinstance(path, str):
            raise LuaUsage("trust_anchors.add_file(path[, readonly])")
        try:
            with open(path, encoding="utf-8") as f:
                text = f.read()
        except OSError as e:
            raise LuaUsage(f"trust_anchors.add_file: cannot read '{path}': {e.strerror or e}") from None
        if add_text(s, text, "trust_anchors.add_file") == 0:
            raise LuaUsage(f"trust_anchors.add_file: no trust anchors in '{path}'")
        return True

    def remove(zone=None):
        """trust_anchors.remove(zone) -> true if there was one"""
        if not isinstance(zone, (str, bytes)):
            raise LuaUsage("trust_anchors.remove(zone)")
        return s.trust_anchors.pop(_name(zone), None) is not None

    def set_insecure(names=None):
        """trust_anchors.set_insecure({'name', ...}): replaces the negative anchors"""
        if isinstance(names, dict) and not names:
            names = []
        if not isinstance(names, list):
            raise LuaUsage("trust_anchors.set_insecure({'name', ...})")
        s.negative_trust_anchors[:] = [_name(x) for x in names]
        return True

    def summary():
        lines = []
        for name, rds in s.trust_anchors.items():
            for rd in rds:
                lines.append(f"{name} {dns.rdatatype.to_text(rd.rdtype)} {rd.to_text()}")
        return "\n".join(lines)

    def getter(key):
        if key == "insecure":
            return [n.to_text() for n in s.negative_trust_anchors]
        if key == "keysets":
            return {n.to_wire(): [rd.to_text() for rd in rds] for n, rds in s.trust_anchors.items()}
        return None

    def setter(key, value):
        if key == "insecure":
            return set_insecure(value)
        if key in ("hold_down_time", "refresh_time", "keep_removed"):
            return None  # RFC 5011 tuning: accepted, no effect yet
        raise LuaUsage(f"trust_anchors.{key}: no such property")

    namespace(engine, "trust_anchors", {
        "add": add, "add_file": add_file, "remove": remove, "set_insecure": set_insecure,
        "summary": summary,
    }, getter=getter, setter=setter)
