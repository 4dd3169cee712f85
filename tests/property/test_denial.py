"""Property tests of the denial proofs (workers/dnssec/nsec.py, nsec3.py).

For random zones (names up to three labels deep, so with empty non-terminals,
and wildcards) with a full NSEC or NSEC3 chain over them, each proof holds
exactly when the zone says so: NXDOMAIN for names that do not exist and that no
wildcard covers; NODATA for existing names without the type and for names that
only a wildcard without the type would produce; a wildcard answer for names that
only the wildcard at their closest encloser produces. And hostile or garbled
NSEC/NSEC3 records never make a proof raise."""
from __future__ import annotations

import base64

import dns.dnssec
import dns.name
import dns.rdata
import dns.rdataclass
import dns.rdatatype as T
import dns.rdtypes.ANY.NSEC
import dns.rdtypes.ANY.NSEC3
import dns.rrset
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from workers.dnssec import NSEC3_MAX_ITERATIONS, Proof, Status, nsec, nsec3

IN = dns.rdataclass.IN
ZONE = dns.name.from_text("z.")
TYPES = [T.A, T.MX, T.TXT]
SALT, ITERATIONS = "aabbccdd", 2

label = st.sampled_from([b"a", b"b", b"c", b"aa"])
relname = st.lists(label, min_size=1, max_size=3).map(tuple)


class Zone:
    """A zone model: owners with their types, and what the RFCs say follows."""

    def __init__(self, names, types, wild_parents, wild_types):
        self.types = {ZONE: {T.SOA, T.NS}}
        for rel, ts in zip(names, types):
            self.types[dns.name.Name(rel + ZONE.labels)] = set(ts)
        for rel, ts in zip(wild_parents, wild_types):
            self.types[dns.name.Name((b"*",) + rel + ZONE.labels)] = set(ts)
        self.existing = set(self.types)
        for o in self.types:  # empty non-terminals exist too
            while o != ZONE:
                o = o.parent()
                self.existing.add(o)

    def encloser(self, q):
        while q not in self.existing:
            q = q.parent()
        return q

    def wildcard(self, q):
        """The wildcard that would produce q, or None."""
        if q in self.existing:
            return None
        w = dns.name.Name((b"*",) + self.encloser(q).labels)
        return w if w in self.types else None

    def nxdomain(self, q) -> bool:
        return q not in self.existing and self.wildcard(q) is None

    def nodata(self, q, t) -> bool:
        if q in self.existing:
            return t not in self.types.get(q, set())
        w = self.wildcard(q)
        return w is not None and t not in self.types[w]

    def nsec_chain(self):
        owners = sorted(self.types)
        return [dns.rrset.from_text(o, 300, "IN", "NSEC", " ".join(
            [owners[(i + 1) % len(owners)].to_text()] + [T.to_text(t) for t in sorted(self.types[o])]
            + ["RRSIG", "NSEC"])) for i, o in enumerate(owners)]

    def nsec3_chain(self):
        hashed = sorted((dns.dnssec.nsec3_hash(o, SALT, ITERATIONS, 1), o) for o in self.existing)
        out = []
        for i, (hh, o) in enumerate(hashed):
            ts = [T.to_text(t) for t in sorted(self.types.get(o, set()))]
            if o in self.types:
                ts.append("RRSIG")
            out.append(dns.rrset.from_text(f"{hh.lower()}.{ZONE}", 300, "IN", "NSEC3",
                                           f"1 0 {ITERATIONS} {SALT} {hashed[(i + 1) % len(hashed)][0]} "
                                           + " ".join(ts)))
        return out


@st.composite
def zones(draw):
    names = draw(st.lists(relname, min_size=1, max_size=10, unique=True))
    types = [draw(st.sets(st.sampled_from(TYPES), min_size=1)) for _ in names]
    wild_parents = draw(st.lists(st.one_of(st.just(()), relname), max_size=2, unique=True))
    wild_types = [draw(st.sets(st.sampled_from(TYPES), min_size=1)) for _ in wild_parents]
    return Zone(names, types, wild_parents, wild_types)


@st.composite
def zone_and_query(draw):
    z = draw(zones())
    q = draw(st.one_of(relname.map(lambda rel: dns.name.Name(rel + ZONE.labels)),
                       relname.map(lambda rel: dns.name.Name(rel + (b"c", b"a") + ZONE.labels)),
                       st.sampled_from(sorted(z.existing))))
    return z, q, draw(st.sampled_from(TYPES))


def check(mod, z, chain, q, t):
    p = mod.nxdomain(q, ZONE, chain)
    assert (p.status is Status.SECURE) == z.nxdomain(q), (q, p)
    if p.status is Status.SECURE:
        assert p.closest_encloser == z.encloser(q)
    p = mod.nodata(q, t, ZONE, chain)
    assert (p.status is Status.SECURE) == z.nodata(q, t), (q, T.to_text(t), p)
    w = z.wildcard(q)
    if w is not None:  # the RRSIG's labels field counts the wildcard's encloser
        p = mod.wildcard_answer(q, len(w.labels) - 2, ZONE, chain)
        assert p.status is Status.SECURE and p.closest_encloser == w.parent(), (q, p)
    if q in z.existing:  # an existing name is never a wildcard expansion
        for labels in range(len(q.labels) - 1):
            assert mod.wildcard_answer(q, labels, ZONE, chain).status is Status.BOGUS


@settings(max_examples=300, deadline=None)
@given(zone_and_query())
def test_nsec_proofs_follow_the_zone(zq):
    z, q, t = zq
    check(nsec, z, z.nsec_chain(), q, t)


@settings(max_examples=150, deadline=None)
@given(zone_and_query())
def test_nsec3_proofs_follow_the_zone(zq):
    z, q, t = zq
    check(nsec3, z, z.nsec3_chain(), q, t)


@settings(max_examples=100, deadline=None)
@given(zones(), st.data())
def test_nsec_delegations(z, data):
    """An owner turned into a delegation (NS without SOA) without DS is an
    unsigned child; with DS or as a plain name it is not."""
    owner = data.draw(st.sampled_from(sorted(o for o in z.types if o != ZONE and b"*" not in o.labels[0])))
    with_ds = data.draw(st.booleans())
    z.types[owner] = {T.NS} | ({T.DS} if with_ds else set())
    chain = z.nsec_chain()
    assert (nsec.referral_no_ds(owner, ZONE, chain).status is Status.SECURE) == (not with_ds)
    assert (nsec.nodata(owner, T.DS, ZONE, chain).status is Status.SECURE) == (not with_ds)
    assert nsec.nodata(owner, T.A, ZONE, chain).status is Status.BOGUS  # the parent side
    below = dns.name.Name((b"x",) + owner.labels)
    assert nsec.nxdomain(below, ZONE, chain).status is Status.BOGUS  # the child's name
    chain3 = z.nsec3_chain()
    assert (nsec3.referral_no_ds(owner, ZONE, chain3).status is Status.SECURE) == (not with_ds)
    assert nsec3.nxdomain(below, ZONE, chain3).status is Status.BOGUS


# -- garbled records

names = st.one_of(
    relname.map(lambda rel: dns.name.Name(rel + ZONE.labels)),
    st.sampled_from([ZONE, dns.name.root, dns.name.from_text("other."), dns.name.from_text("*.z."),
                     dns.name.from_text("a", None)]))
type_lists = st.lists(st.one_of(st.sampled_from(TYPES + [T.NS, T.SOA, T.DS, T.CNAME, T.DNAME]),
                                st.integers(1, 65535)), max_size=6)


def _windows(types):
    try:
        return dns.rdtypes.ANY.NSEC.NSEC(IN, T.NSEC, ZONE, types).windows
    except Exception:  # noqa: BLE001 - a type dnspython refuses in a bitmap
        return ()


@st.composite
def nsec_rdata(draw):
    kind = draw(st.sampled_from(["wire", "built", "generic"]))
    if kind == "wire":
        wire = draw(st.binary(max_size=40))
        try:
            return dns.rdata.from_wire(IN, T.NSEC, wire, 0, len(wire))
        except Exception:  # noqa: BLE001 - unparsable: keep it as unknown data
            kind = "generic"
    if kind == "generic":
        return dns.rdata.GenericRdata(IN, T.NSEC, draw(st.binary(max_size=20)))
    return dns.rdtypes.ANY.NSEC.NSEC(IN, T.NSEC, draw(names), _windows(draw(type_lists)))


@st.composite
def nsec3_rdata(draw):
    kind = draw(st.sampled_from(["wire", "built", "built", "generic"]))
    if kind == "wire":
        wire = draw(st.binary(max_size=60))
        try:
            return dns.rdata.from_wire(IN, T.NSEC3, wire, 0, len(wire))
        except Exception:  # noqa: BLE001
            kind = "generic"
    if kind == "generic":
        return dns.rdata.GenericRdata(IN, T.NSEC3, draw(st.binary(max_size=30)))
    return dns.rdtypes.ANY.NSEC3.NSEC3(
        IN, T.NSEC3, draw(st.sampled_from([0, 1, 1, 1, 2, 255])), draw(st.sampled_from([0, 1, 2, 0x81])),
        draw(st.sampled_from([0, 1, 12, NSEC3_MAX_ITERATIONS, NSEC3_MAX_ITERATIONS + 1, 65535])),
        draw(st.binary(max_size=8)), draw(st.binary(min_size=1, max_size=25)), _windows(draw(type_lists)))


@st.composite
def nsec3_owner(draw):
    first = draw(st.one_of(
        st.binary(min_size=0, max_size=25).map(lambda b: base64.b32hexencode(b).rstrip(b"=") or b"0"),
        st.binary(min_size=1, max_size=20)))
    rest = draw(st.sampled_from([ZONE.labels, (b"sub",) + ZONE.labels, ()]))
    try:
        return dns.name.Name((first,) + rest)
    except Exception:  # noqa: BLE001
        return ZONE


@st.composite
def garbled(draw):
    out = []
    for _ in range(draw(st.integers(0, 5))):
        if draw(st.booleans()):
            rr = dns.rrset.RRset(draw(names), IN, T.NSEC)
            rr.add(draw(nsec_rdata()))
        else:
            rr = dns.rrset.RRset(draw(nsec3_owner()), IN, T.NSEC3)
            rr.add(draw(nsec3_rdata()))
        out.append(rr)
    return out


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(garbled(), names, st.sampled_from(TYPES + [T.DS, T.NS, T.CNAME]), st.integers(0, 255),
       st.sampled_from([ZONE, dns.name.root]))
def test_garbled_records_never_raise(rrsets, q, t, labels, zone):
    for mod in (nsec, nsec3):
        for p in (mod.nxdomain(q, zone, rrsets), mod.nodata(q, t, zone, rrsets),
                  mod.referral_no_ds(q, zone, rrsets), mod.wildcard_answer(q, labels, zone, rrsets)):
            assert isinstance(p, Proof) and isinstance(p.status, Status)
    bomb = [rd for rr in rrsets if rr.rdtype == T.NSEC3 and len(rr.name) == len(zone) + 1
            and rr.name.is_subdomain(zone) for rd in rr
            if getattr(rd, "algorithm", None) == 1 and getattr(rd, "iterations", 0) > NSEC3_MAX_ITERATIONS]
    if bomb and q.is_subdomain(zone):
        assert nsec3.nxdomain(q, zone, rrsets).status is Status.INSECURE
