"""A DNSSEC-signed hierarchy for validator unit tests, served in-process by fakenet.

Owns: the signing keys of the tests (made with `cryptography` on first use and
kept for the session: `key()`), signing zone texts with dnspython
(`dns.dnssec.sign_zone`, NSEC, child DS records put into the parent before it
is signed), the hierarchy below (`hierarchy()`, built once per session), the
network of fakenet.AuthServer objects serving it (`make_net()`, fresh per
test so query counts are the test's own), and reply rewriters that make
broken servers (`Rewrite`, `strip_nsec`, `strip_nsec_from_referrals`, `wrong_nsec`).
Must not: touch the network or the disk, or depend on the resolver code: the
tests check the validator against what these zones are.

Signatures are valid around the real clock (the Resolver's default Clock):
from an hour before the session started to 30 days after it.

  198.41.0.4   '.'               ECDSAP256, a.root-servers.net. A 198.41.0.4;
                                 its key's DS is the trust anchor (`root_ds()`)
  192.0.2.1    'test.'           ECDSAP256, NSEC; delegations below
  192.0.2.2    'secure.test.'    ECDSAP256: www A/TXT, wildcard *.wild A, in-zone
                                 CNAME incname -> www, cname -> www.insecure.test.,
                                 ttl A served with TTL 86400 but signed with 300,
                                 soon A whose RRSIG expires 10 minutes after START,
                                 empty non-terminal ent (b.ent A), DNAME dn -> ent
  192.0.2.3    'insecure.test.'  unsigned, delegated without DS (NSEC proof)
  192.0.2.4    'broken.test.'    ns1: www A carries a tampered RRSIG
  192.0.2.5    'broken.test.'    ns2: the same zone, correctly signed
  192.0.2.6    'expired.test.'   ECDSAP256, every signature expired a day ago
  192.0.2.7    'keytrap.test.'   KeyTrap: DNSKEY set of 50 keys sharing one key tag,
                                 each named by a DS in test., signed only by 50
                                 failing RRSIGs of that tag
  192.0.2.8    'sigtrap.test.'   DNSKEY set valid, plus 50 ZSKs sharing one key tag;
                                 www A signed only by 50 failing RRSIGs of that tag
  192.0.2.99   a forwarder: holds every zone (broken.test. correctly signed)
"""
from __future__ import annotations

import functools
import time
from dataclasses import dataclass

import dns.dnssec
import dns.flags
import dns.message
import dns.name
import dns.rdataclass
import dns.rdataset
import dns.rdatatype as T
import dns.rrset
import dns.zone
from cryptography.hazmat.primitives.asymmetric import ec, ed448, ed25519, rsa
from dns.dnssec import Algorithm

from .fakenet import AuthServer, FakeNet

DAY = 86400
START = int(time.time())
INCEPTION = START - 3600
EXPIRATION = START + 30 * DAY

ROOT_ADDR = "198.41.0.4"
TEST_ADDR = "192.0.2.1"
SECURE_ADDR = "192.0.2.2"
INSECURE_ADDR = "192.0.2.3"
BROKEN_BAD_ADDR = "192.0.2.4"
BROKEN_GOOD_ADDR = "192.0.2.5"
EXPIRED_ADDR = "192.0.2.6"
KEYTRAP_ADDR = "192.0.2.7"
SIGTRAP_ADDR = "192.0.2.8"
FORWARDER_ADDR = "192.0.2.99"

ROOT_HINTS = {dns.name.from_text("a.root-servers.net."): [ROOT_ADDR]}


def N(text: str) -> dns.name.Name:
    return dns.name.from_text(text)


@functools.lru_cache(maxsize=None)
def private_key(alg: Algorithm, n: int = 0):
    """The n-th private key of an algorithm (session-wide; RSA keys are 1024
    bits, enough for tests and quick to make)."""
    if alg in (Algorithm.RSASHA1, Algorithm.RSASHA1NSEC3SHA1, Algorithm.RSASHA256, Algorithm.RSASHA512):
        return rsa.generate_private_key(public_exponent=65537, key_size=1024)
    if alg == Algorithm.ECDSAP256SHA256:
        return ec.generate_private_key(ec.SECP256R1())
    if alg == Algorithm.ECDSAP384SHA384:
        return ec.generate_private_key(ec.SECP384R1())
    if alg == Algorithm.ED25519:
        return ed25519.Ed25519PrivateKey.generate()
    if alg == Algorithm.ED448:
        return ed448.Ed448PrivateKey.generate()
    raise ValueError(f"no key for {alg}")


def key(alg: Algorithm = Algorithm.ECDSAP256SHA256, n: int = 0, flags: int = 257):
    """(private key, DNSKEY rdata) of the n-th key of `alg`, with these flags."""
    priv = private_key(alg, n)
    return priv, dns.dnssec.make_dnskey(priv.public_key(), alg, flags=flags)


def sign_rrset(rrset, zone, keypair, inception=INCEPTION, expiration=EXPIRATION):
    """The RRSIG RRset of `rrset` by `zone`'s key."""
    priv, dnskey = keypair
    rd = dns.dnssec.sign(rrset, priv, zone, dnskey, inception=inception, expiration=expiration,
                         policy=dns.dnssec.allow_all_policy)
    return dns.rrset.from_rdata_list(rrset.name, rrset.ttl, [rd])


def sign_zone(origin: str, text: str, keypair=None, inception=INCEPTION, expiration=EXPIRATION):
    """A dns.zone.Zone from text, signed with one key (its DNSKEY added), NSEC."""
    z = dns.zone.from_text(text, origin=origin, relativize=False, check_origin=False)
    keypair = keypair or _zone_keypair(origin)
    dns.dnssec.sign_zone(z, keys=[keypair], inception=inception, expiration=expiration,
                         dnskey_ttl=3600, policy=dns.dnssec.allow_all_policy)
    return z


_KEY_INDEX: dict[str, int] = {}


def _key_index(origin: str) -> int:
    return _KEY_INDEX.setdefault(origin, len(_KEY_INDEX))


def ds_text(origin: str, keypair=None) -> str:
    """The DS line (zone-file text) of a zone's key, for its parent."""
    _, dnskey = keypair or _zone_keypair(origin)
    return f"{origin} 3600 IN DS {dns.dnssec.make_ds(origin, dnskey, 'SHA256').to_text()}"


def colliding_keys(real, count: int) -> list:
    """`real` (a DNSKEY rdata) and count-1 other keys with the same key tag
    (KeyTrap, CVE-2023-50387): its public key bytes with two bytes of the same
    parity swapped (the key tag is a sum of 16-bit words, so it does not move).
    The others are no valid keys, as an attacker's need not be."""
    tag = dns.dnssec.key_id(real)
    out, seen = [real], {real.key}
    raw = bytearray(real.key)
    for step in (2, 4, 6, 8):
        for i in range(len(raw) - step):
            b = bytearray(raw)
            b[i], b[i + step] = b[i + step], b[i]
            if bytes(b) in seen:
                continue
            seen.add(bytes(b))
            k = real.replace(key=bytes(b))
            assert dns.dnssec.key_id(k) == tag
            out.append(k)
            if len(out) == count:
                return out
    raise ValueError("not enough colliding keys")


def failing_sigs(rr, zone, keypair, count: int, inception=INCEPTION, expiration=EXPIRATION):
    """`count` RRSIGs over rr by `zone` with keypair's key tag, none of which verifies."""
    good = sign_rrset(rr, zone, keypair, inception, expiration)[0]
    n = len(good.signature)
    return dns.rrset.from_rdata_list(rr.name, rr.ttl, [
        good.replace(signature=bytes([(i + j) % 256 for j in range(n)])) for i in range(count)])


def keytrap(z: dns.zone.Zone, keypair, count: int = 50) -> dns.zone.Zone:
    """z with a DNSKEY set of `count` keys sharing keypair's tag, signed only
    by `count` failing RRSIGs of that tag."""
    keys = dns.rrset.from_rdata_list(z.origin, 3600, colliding_keys(keypair[1], count))
    sigs = failing_sigs(keys, z.origin, keypair, count)
    z.replace_rdataset(z.origin, dns.rdataset.from_rdata_list(3600, list(keys)))
    z.replace_rdataset(z.origin, dns.rdataset.from_rdata_list(3600, list(sigs)))
    return z


def sigtrap(z: dns.zone.Zone, owner: dns.name.Name, rtype: int, count: int = 50) -> dns.zone.Zone:
    """z with `count` more ZSKs sharing one key tag in its DNSKEY set (signed
    as the zone's key signs it) and (owner, rtype) signed only by `count`
    failing RRSIGs of that tag."""
    zone_key = _zone_keypair(z.origin.to_text())
    zsk = key(Algorithm.ECDSAP256SHA256, _key_index("zsk." + z.origin.to_text()), flags=256)
    keys = dns.rrset.from_rdata_list(z.origin, 3600,
                                     list(z.get_rdataset(z.origin, T.DNSKEY)) + colliding_keys(zsk[1], count))
    z.replace_rdataset(z.origin, dns.rdataset.from_rdata_list(3600, list(keys)))
    z.replace_rdataset(z.origin, dns.rdataset.from_rdata_list(3600, list(sign_rrset(keys, z.origin, zone_key))))
    rds = z.get_rdataset(owner, rtype)
    data = dns.rrset.from_rdata_list(owner, rds.ttl, list(rds))
    z.replace_rdataset(owner, dns.rdataset.from_rdata_list(rds.ttl, list(failing_sigs(data, z.origin, zsk, count))))
    return z


def _zone_keypair(origin: str):
    return key(Algorithm.ECDSAP256SHA256, _key_index(origin))


def copy_zone(z: dns.zone.Zone) -> dns.zone.Zone:
    return dns.zone.from_text(z.to_text(relativize=False), origin=z.origin, relativize=False,
                              check_origin=False)


def tamper(z: dns.zone.Zone, owner: dns.name.Name, rtype: int) -> dns.zone.Zone:
    """A copy of z whose RRSIG over (owner, rtype) has a flipped signature byte."""
    z = copy_zone(z)
    node = z.get_node(owner)
    old = node.get_rdataset(dns.rdataclass.IN, T.RRSIG, rtype)
    new = dns.rdataset.Rdataset(dns.rdataclass.IN, T.RRSIG, rtype)
    for rd in old:
        sig = bytearray(rd.signature)
        sig[len(sig) // 2] ^= 0x55
        new.add(rd.replace(signature=bytes(sig)), old.ttl)
    node.replace_rdataset(new)
    return z


ROOT = """
. 86400 IN SOA a.root-servers.net. nstld. 1 1800 900 604800 86400
. 86400 IN NS a.root-servers.net.
a.root-servers.net. 86400 IN A 198.41.0.4
test. 86400 IN NS ns.test.
ns.test. 86400 IN A 192.0.2.1
"""
TEST = """
test. 3600 IN SOA ns.test. h.test. 1 1800 900 604800 300
test. 3600 IN NS ns.test.
ns.test. 3600 IN A 192.0.2.1
secure.test. 3600 IN NS ns.secure.test.
ns.secure.test. 3600 IN A 192.0.2.2
insecure.test. 3600 IN NS ns.insecure.test.
ns.insecure.test. 3600 IN A 192.0.2.3
broken.test. 3600 IN NS ns1.broken.test.
broken.test. 3600 IN NS ns2.broken.test.
ns1.broken.test. 3600 IN A 192.0.2.4
ns2.broken.test. 3600 IN A 192.0.2.5
expired.test. 3600 IN NS ns.expired.test.
ns.expired.test. 3600 IN A 192.0.2.6
keytrap.test. 3600 IN NS ns.keytrap.test.
ns.keytrap.test. 3600 IN A 192.0.2.7
sigtrap.test. 3600 IN NS ns.sigtrap.test.
ns.sigtrap.test. 3600 IN A 192.0.2.8
"""
SECURE = """
@ 3600 IN SOA ns h 1 1800 900 604800 300
@ 3600 IN NS ns
ns 3600 IN A 192.0.2.2
www 3600 IN A 192.0.2.80
www 3600 IN TXT "hello"
*.wild 3600 IN A 192.0.2.81
incname 3600 IN CNAME www
cname 3600 IN CNAME www.insecure.test.
ttl 300 IN A 192.0.2.82
b.ent 3600 IN A 192.0.2.83
dn 3600 IN DNAME ent.secure.test.
soon 3600 IN A 192.0.2.84
"""
INSECURE = """
@ 3600 IN SOA ns h 1 1800 900 604800 300
@ 3600 IN NS ns
ns 3600 IN A 192.0.2.3
www 3600 IN A 192.0.2.90
"""
BROKEN = """
@ 3600 IN SOA ns1 h 1 1800 900 604800 300
@ 3600 IN NS ns1
@ 3600 IN NS ns2
ns1 3600 IN A 192.0.2.4
ns2 3600 IN A 192.0.2.5
www 3600 IN A 192.0.2.100
"""
EXPIRED = """
@ 3600 IN SOA ns h 1 1800 900 604800 300
@ 3600 IN NS ns
ns 3600 IN A 192.0.2.6
www 3600 IN A 192.0.2.110
"""

KEYTRAP = """
@ 3600 IN SOA ns h 1 1800 900 604800 300
@ 3600 IN NS ns
ns 3600 IN A 192.0.2.7
www 3600 IN A 192.0.2.120
"""
SIGTRAP = KEYTRAP.replace("192.0.2.7", "192.0.2.8")


@dataclass(frozen=True)
class Hierarchy:
    root: dns.zone.Zone
    test: dns.zone.Zone
    secure: dns.zone.Zone
    insecure: dns.zone.Zone
    broken: dns.zone.Zone  # correctly signed
    broken_bad: dns.zone.Zone  # www A with a tampered RRSIG
    expired: dns.zone.Zone
    keytrap: dns.zone.Zone
    sigtrap: dns.zone.Zone


@functools.lru_cache(maxsize=None)
def hierarchy() -> Hierarchy:
    secure = sign_zone("secure.test.", SECURE)
    # served with a TTL above the RRSIG's original TTL (RFC 4035 5.3.3 caps it)
    secure.get_rdataset(N("ttl.secure.test."), T.A).ttl = 86400
    # soon A: its only RRSIG expires 10 minutes after the session started
    soon = dns.rrset.from_rdata_list(N("soon.secure.test."), 3600,
                                     list(secure.get_rdataset(N("soon.secure.test."), T.A)))
    secure.replace_rdataset(soon.name, dns.rdataset.from_rdata_list(3600, list(sign_rrset(
        soon, secure.origin, _zone_keypair("secure.test."), expiration=START + 600))))
    insecure = dns.zone.from_text(INSECURE, origin="insecure.test.", relativize=False)
    broken = sign_zone("broken.test.", BROKEN)
    expired = sign_zone("expired.test.", EXPIRED, inception=START - 30 * DAY, expiration=START - DAY)
    kt = keytrap(sign_zone("keytrap.test.", KEYTRAP), _zone_keypair("keytrap.test."))
    st = sigtrap(sign_zone("sigtrap.test.", SIGTRAP), N("www.sigtrap.test."), T.A)
    # a DS for every key of the trap: each one is trusted, 50 keys x 50 RRSIGs to try
    kt_ds = [f"keytrap.test. 3600 IN DS {dns.dnssec.make_ds('keytrap.test.', k, 'SHA256').to_text()}"
             for k in kt.get_rdataset(kt.origin, T.DNSKEY)]
    test = sign_zone("test.", TEST + "\n".join([ds_text(z) for z in (
        "secure.test.", "broken.test.", "expired.test.", "sigtrap.test.")] + kt_ds))
    root = sign_zone(".", ROOT + ds_text("test."))
    return Hierarchy(root, test, secure, insecure, broken, tamper(broken, N("www.broken.test."), T.A),
                     expired, kt, st)


def root_ds():
    """The trust anchor: the DS rdata of the root's key."""
    _, dnskey = _zone_keypair(".")
    return dns.dnssec.make_ds(dns.name.root, dnskey, "SHA256")


def trust_anchors() -> dict:
    hierarchy()
    return {dns.name.root: [root_ds()]}


class Rewrite:
    """A server whose replies pass through fn(dns.message.Message) (edited in place)."""

    def __init__(self, server, fn):
        self.server = server
        self.fn = fn

    @property
    def queries(self):
        return self.server.queries

    def answer(self, wire, tcp):
        raw = self.server.answer(wire, tcp)
        if raw is None:
            return None
        m = dns.message.from_wire(raw)
        self.fn(m)
        return m.to_wire()


def _is_nsec(rr) -> bool:
    return rr.rdtype in (T.NSEC, T.NSEC3) or rr.rdtype == T.RRSIG and rr.covers in (T.NSEC, T.NSEC3)


def strip_nsec(m: dns.message.Message) -> None:
    """Drop the NSEC/NSEC3 records (and their RRSIGs) from the authority section."""
    m.authority = [rr for rr in m.authority if not _is_nsec(rr)]


def strip_nsec_from_referrals(m: dns.message.Message) -> None:
    """strip_nsec, only in referrals (no AA): a DS query still gets its proof."""
    if not m.flags & dns.flags.AA:
        strip_nsec(m)


def wrong_nsec(z: dns.zone.Zone):
    """A rewriter replacing the NSEC records of negative answers by the apex's
    NSEC (validly signed, but covering only names before the first one)."""
    nsec = dns.rrset.from_rdata_list(z.origin, 300, list(z.get_rdataset(z.origin, T.NSEC)))
    rds = z.get_rdataset(z.origin, T.RRSIG, T.NSEC)
    sig = dns.rrset.from_rdata_list(z.origin, 300, list(rds))

    def fn(m):
        if any(_is_nsec(rr) for rr in m.authority):
            m.authority = [rr for rr in m.authority if not _is_nsec(rr)] + [nsec, sig]
    return fn


def make_net(broken: str = "mixed", wrap: dict | None = None):
    """(FakeNet, {addr: server}) over the hierarchy. broken: 'mixed' (ns1
    tampered, ns2 good), 'bad' (both tampered) or 'good' (both good). wrap:
    {addr: rewriter} makes that server's replies pass through it."""
    h = hierarchy()
    bad, good = {"mixed": (h.broken_bad, h.broken), "bad": (h.broken_bad, h.broken_bad),
                 "good": (h.broken, h.broken)}[broken]
    servers = {
        ROOT_ADDR: AuthServer(h.root),
        TEST_ADDR: AuthServer(h.test),
        SECURE_ADDR: AuthServer(h.secure),
        INSECURE_ADDR: AuthServer(h.insecure),
        BROKEN_BAD_ADDR: AuthServer(bad),
        BROKEN_GOOD_ADDR: AuthServer(good),
        EXPIRED_ADDR: AuthServer(h.expired),
        KEYTRAP_ADDR: AuthServer(h.keytrap),
        SIGTRAP_ADDR: AuthServer(h.sigtrap),
        FORWARDER_ADDR: AuthServer(h.root, h.test, h.secure, h.insecure, good, h.expired),
    }
    for addr, fn in (wrap or {}).items():
        servers[addr] = Rewrite(servers[addr], fn)
    return FakeNet(servers), servers
