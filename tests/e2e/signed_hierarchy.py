"""A real DNSSEC-signed hierarchy served by Debian's knotd on loopback port 53.

Owns: the signed zones' data, their keys (made at run time in a temporary
directory with ``ldns-keygen``, never committed), signing bottom-up with
``ldns-signzone`` (child DS records go into the parent before the parent is
signed), the hostile variants that no tool makes (a tampered RRSIG, KeyTrap
key-tag collisions and piles of failing RRSIGs, made with dnspython), the root
trust-anchor file, a kresd config valid for both our binary and Debian's
/usr/sbin/kresd 5.6 (``kresd56``), and the session fixture ``signed_hierarchy``.
Must not: import the project packages (the e2e tests see the installed binary
only), send traffic outside 127.0.10.160-127.0.10.199, or keep keys anywhere
but the session's temporary directory.

The knotd processes are run by hierarchy.Hierarchy (given these servers).
Addresses (port 53):

  127.0.10.160  '.'                signed RSASHA256 (its KSK DS is the trust anchor);
                                   a.root-servers.net. A 127.0.10.160 (the hint)
  127.0.10.161  'test.'            signed RSASHA256, NSEC
  127.0.10.162  'secure.test.'     RSASHA256, NSEC; wildcard *.wild, in-zone and
                                   cross-zone CNAMEs, a DNAME to nsec3.test., an
                                   empty non-terminal (b.ent), the chain start
  127.0.10.163  'nsec3.test.'      RSASHA256, NSEC3 (0 iterations, no salt), wildcard
  127.0.10.164  'optout.test.'     RSASHA256, NSEC3 opt-out; sub.optout.test. is an
                                   unsigned delegation covered by opt-out
  127.0.10.165  'ecdsa.test.'      ECDSAP256SHA256
  127.0.10.166  'ed25519.test.'    ED25519
  127.0.10.167  'insecure.test.'   unsigned, delegated without DS; holds the middle
                                   of the CNAME chain secure -> insecure -> secure
  127.0.10.168  'broken.test.'     signed, DS in test., www A has a tampered RRSIG
  127.0.10.169  'expired.test.'    signed, every signature expired a day ago
  127.0.10.170  'sub.optout.test.' unsigned
  127.0.10.171  'keytrap.test.'    KeyTrap (CVE-2023-50387): DNSKEY set of KEYTRAP_KEYS
                                   RSASHA256 keys sharing the DS's key tag, signed only
                                   by KEYTRAP_SIGS RRSIGs of that tag, all invalid
  127.0.10.172  'sigtrap.test.'    DNSKEY set valid, plus KEYTRAP_KEYS ZSKs sharing one
                                   key tag; www A and the wildcard * A carry
                                   KEYTRAP_SIGS RRSIGs of that tag, all invalid
  127.0.10.173  'bomb.test.'       NSEC3 with BOMB_ITERATIONS iterations (CVE-2023-50868)
  127.0.10.174  'badkey.test.'     signed, DS in test., the RRSIG over its DNSKEY set tampered

Resolvers of the tests using it live in 127.0.10.180-127.0.10.199 (each module
documents its own).

Run ``python -m tests.e2e.signed_hierarchy`` (as root, in a network namespace,
from the project root) to bring it up by hand until ^C; it prints the trust
anchor file and a config for kresd.
"""
from __future__ import annotations

import datetime
import os
import shutil
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

import dns.dnssec
import dns.edns
import dns.exception
import dns.flags
import dns.message
import dns.name
import dns.query
import dns.rdata
import dns.rdataclass
import dns.rdataset
import dns.rdatatype
import dns.rdtypes.ANY.DNSKEY
import dns.zone
from cryptography.hazmat.primitives.asymmetric import rsa

from .hierarchy import Hierarchy
from .resolver import Resolver

try:  # the fixtures below are for pytest; tools/dnssec_diff.py uses the rest without it
    import pytest
except ImportError:  # pragma: no cover
    pytest = None

ROOT_ADDR = "127.0.10.160"
TTL = 3600
NEG_TTL = 900
KEYTRAP_KEYS = 50       # colliding DNSKEYs (one key tag, one algorithm)
KEYTRAP_SIGS = 50       # failing RRSIGs of that key tag on one RRset
BOMB_ITERATIONS = 2500  # NSEC3 iterations of bomb.test.
KRESD56 = Path("/usr/sbin/kresd")  # Debian's knot-resolver 5.6: the reference


def _soa(mname: str) -> str:
    return f"@ {TTL} IN SOA {mname} hostmaster 2024010101 3600 900 604800 {NEG_TTL}"


@dataclass
class Zone:
    """One zone: where it is served and how it is signed (alg None: unsigned)."""
    origin: str
    addr: str
    body: str
    alg: str | None = "RSASHA256"
    nsec3: bool = False
    optout: bool = False
    iterations: int = 0
    expired: bool = False
    tamper: list[tuple[str, str]] = field(default_factory=list)  # (owner, type) whose RRSIG is corrupted
    hostile: str | None = None                       # 'keytrap' | 'sigtrap': made in Python


ZONES: list[Zone] = [
    Zone(".", ROOT_ADDR, f"""{_soa('a.root-servers.net.')}
@                    86400 IN NS  a.root-servers.net.
a.root-servers.net.  86400 IN A   {ROOT_ADDR}
test.                86400 IN NS  ns.test.
ns.test.             86400 IN A   127.0.10.161
"""),
    Zone("test.", "127.0.10.161", f"""{_soa('ns')}
@             86400 IN NS ns
ns            86400 IN A  127.0.10.161
secure        86400 IN NS ns.secure
ns.secure     86400 IN A  127.0.10.162
nsec3         86400 IN NS ns.nsec3
ns.nsec3      86400 IN A  127.0.10.163
optout        86400 IN NS ns.optout
ns.optout     86400 IN A  127.0.10.164
ecdsa         86400 IN NS ns.ecdsa
ns.ecdsa      86400 IN A  127.0.10.165
ed25519       86400 IN NS ns.ed25519
ns.ed25519    86400 IN A  127.0.10.166
insecure      86400 IN NS ns.insecure
ns.insecure   86400 IN A  127.0.10.167
broken        86400 IN NS ns.broken
ns.broken     86400 IN A  127.0.10.168
expired       86400 IN NS ns.expired
ns.expired    86400 IN A  127.0.10.169
keytrap       86400 IN NS ns.keytrap
ns.keytrap    86400 IN A  127.0.10.171
sigtrap       86400 IN NS ns.sigtrap
ns.sigtrap    86400 IN A  127.0.10.172
bomb          86400 IN NS ns.bomb
ns.bomb       86400 IN A  127.0.10.173
badkey        86400 IN NS ns.badkey
ns.badkey     86400 IN A  127.0.10.174
"""),
    Zone("secure.test.", "127.0.10.162", f"""{_soa('ns')}
@        86400 IN NS    ns
ns       86400 IN A     127.0.10.162
www      {TTL} IN A     192.0.2.1
www      {TTL} IN TXT   "secure"
*.wild   {TTL} IN A     192.0.2.9
alias    {TTL} IN CNAME www
far      {TTL} IN CNAME www.nsec3.test.
chain    {TTL} IN CNAME chain.insecure.test.
dname    {TTL} IN DNAME nsec3.test.
a.b.ent  {TTL} IN A     192.0.2.10
"""),
    Zone("nsec3.test.", "127.0.10.163", f"""{_soa('ns')}
@        86400 IN NS    ns
ns       86400 IN A     127.0.10.163
www      {TTL} IN A     192.0.2.3
*.wild   {TTL} IN A     192.0.2.33
a.b.ent  {TTL} IN A     192.0.2.30
""", nsec3=True),
    Zone("optout.test.", "127.0.10.164", f"""{_soa('ns')}
@        86400 IN NS    ns
ns       86400 IN A     127.0.10.164
www      {TTL} IN A     192.0.2.4
sub      86400 IN NS    ns.sub
ns.sub   86400 IN A     127.0.10.170
""", nsec3=True, optout=True),
    Zone("ecdsa.test.", "127.0.10.165", f"""{_soa('ns')}
@        86400 IN NS    ns
ns       86400 IN A     127.0.10.165
www      {TTL} IN A     192.0.2.5
""", alg="ECDSAP256SHA256"),
    Zone("ed25519.test.", "127.0.10.166", f"""{_soa('ns')}
@        86400 IN NS    ns
ns       86400 IN A     127.0.10.166
www      {TTL} IN A     192.0.2.6
""", alg="ED25519"),
    Zone("insecure.test.", "127.0.10.167", f"""{_soa('ns')}
@        86400 IN NS    ns
ns       86400 IN A     127.0.10.167
www      {TTL} IN A     192.0.2.7
chain    {TTL} IN CNAME www.ecdsa.test.
""", alg=None),
    Zone("broken.test.", "127.0.10.168", f"""{_soa('ns')}
@        86400 IN NS    ns
ns       86400 IN A     127.0.10.168
www      {TTL} IN A     192.0.2.8
ok       {TTL} IN A     192.0.2.80
""", tamper=[("www.broken.test.", "A")]),
    Zone("badkey.test.", "127.0.10.174", f"""{_soa('ns')}
@        86400 IN NS    ns
ns       86400 IN A     127.0.10.174
www      {TTL} IN A     192.0.2.16
""", tamper=[("badkey.test.", "DNSKEY")]),
    Zone("expired.test.", "127.0.10.169", f"""{_soa('ns')}
@        86400 IN NS    ns
ns       86400 IN A     127.0.10.169
www      {TTL} IN A     192.0.2.11
""", expired=True),
    Zone("sub.optout.test.", "127.0.10.170", f"""{_soa('ns')}
@        86400 IN NS    ns
ns       86400 IN A     127.0.10.170
www      {TTL} IN A     192.0.2.12
""", alg=None),
    Zone("keytrap.test.", "127.0.10.171", f"""{_soa('ns')}
@        86400 IN NS    ns
ns       86400 IN A     127.0.10.171
www      {TTL} IN A     192.0.2.13
""", hostile="keytrap"),
    Zone("sigtrap.test.", "127.0.10.172", f"""{_soa('ns')}
@        86400 IN NS    ns
ns       86400 IN A     127.0.10.172
www      {TTL} IN A     192.0.2.14
*        {TTL} IN A     192.0.2.140
""", hostile="sigtrap"),
    Zone("bomb.test.", "127.0.10.173", f"""{_soa('ns')}
@        86400 IN NS    ns
ns       86400 IN A     127.0.10.173
www      {TTL} IN A     192.0.2.15
""", nsec3=True, iterations=BOMB_ITERATIONS),
]


def _server_name(origin: str) -> str:
    return "root" if origin == "." else origin.rstrip(".")


# --------------------------------------------------------------------------- signing
def _run(argv: list[str], cwd: Path) -> str:
    p = subprocess.run(argv, cwd=cwd, capture_output=True, text=True, timeout=60)
    if p.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)} failed ({p.returncode}):\n{p.stderr}")
    return p.stdout


def _need_tools() -> None:
    for tool, pkg in (("ldns-keygen", "ldnsutils"), ("ldns-signzone", "ldnsutils"),
                      ("knotd", "knot")):
        if shutil.which(tool) is None:
            raise RuntimeError(f"{tool} is not installed: run tools/install.sh (Debian package {pkg})")


def _keygen_all(zones: list[Zone], keydir: Path) -> dict[str, str]:
    """origin -> key base name (K<origin>+<alg>+<tag>), one CSK (SEP flag) per signed zone.
    The ldns-keygen runs go in parallel (RSA 2048 takes ~0.5 s each)."""
    procs = {}
    for z in zones:
        if z.alg is None or z.hostile:
            continue
        argv = ["ldns-keygen", "-a", z.alg, "-k"]
        if z.alg.startswith("RSA"):
            argv += ["-b", "2048"]
        procs[z.origin] = subprocess.Popen(argv + [z.origin], cwd=keydir, stdout=subprocess.PIPE,
                                           stderr=subprocess.PIPE, text=True)
    out = {}
    for origin, p in procs.items():
        stdout, stderr = p.communicate(timeout=60)
        if p.returncode != 0:
            raise RuntimeError(f"ldns-keygen for {origin} failed: {stderr}")
        out[origin] = stdout.strip()
    return out


def _stamp(t: datetime.datetime) -> str:
    return t.strftime("%Y%m%d%H%M%S")


def _corrupt(sig: bytes) -> bytes:
    b = bytearray(sig)
    b[len(b) // 2] ^= 0x5A
    return bytes(b)


def _tamper(text: str, origin: str, targets: list[tuple[str, str]]) -> str:
    """The signed zone text with the RRSIGs over each (owner, type) corrupted (a byte flipped)."""
    zone = dns.zone.from_text(text, origin, relativize=False, check_origin=False)
    for owner, rdtype in targets:
        covers = dns.rdatatype.from_text(rdtype)
        node = zone.find_node(owner)
        old = node.find_rdataset(dns.rdataclass.IN, dns.rdatatype.RRSIG, covers)
        new = dns.rdataset.Rdataset(dns.rdataclass.IN, dns.rdatatype.RRSIG, covers, old.ttl)
        for sig in old:
            new.add(sig.replace(signature=_corrupt(sig.signature)))
        node.replace_rdataset(new)
    return zone.to_text(relativize=False)


def _key_tag_fix(rdata: bytearray, pos: int, tag: int) -> None:
    """Set the 16-bit word at even offset pos of DNSKEY rdata so that its key tag is tag."""
    assert pos % 2 == 0
    rdata[pos:pos + 2] = b"\0\0"
    total = sum((rdata[i] << 8) + (rdata[i + 1] if i + 1 < len(rdata) else 0)
                for i in range(0, len(rdata), 2))
    for w in range(65536):
        t = total + w
        if (t + ((t >> 16) & 0xFFFF)) & 0xFFFF == tag:
            rdata[pos:pos + 2] = w.to_bytes(2, "big")
            return
    raise AssertionError("no word gives that key tag")


def colliding_keys(template: dns.rdtypes.ANY.DNSKEY.DNSKEY, tag: int, count: int,
                   flags: int = 256) -> list[dns.rdtypes.ANY.DNSKEY.DNSKEY]:
    """count distinct RSA DNSKEYs of template's algorithm, all with key tag tag: the modulus
    of template with bytes in its middle changed (valid-looking keys no signature fits)."""
    out = []
    base = template.replace(flags=flags)
    for i in range(count):
        wire = bytearray(base.to_digestable())
        # rdata: flags(2) proto(1) alg(1) key: exp-len(1) exp(3) modulus; stay inside the modulus
        wire[60] = i & 0xFF
        wire[61] = (i >> 8) | 0x80
        _key_tag_fix(wire, 64, tag)
        key = dns.rdata.from_wire(dns.rdataclass.IN, dns.rdatatype.DNSKEY, bytes(wire), 0, len(wire))
        assert dns.dnssec.key_id(key) == tag
        out.append(key)
    return out


def failing_sigs(real: dns.rdata.Rdata, tag: int, count: int) -> list[dns.rdata.Rdata]:
    """count RRSIGs like real (same type, algorithm, window) with key tag tag and random
    signatures below the modulus (so a verifier does the full RSA operation each time)."""
    out = []
    for _ in range(count):
        sig = bytearray(os.urandom(len(real.signature)))
        sig[0] &= 0x3F
        out.append(real.replace(key_tag=tag, signature=bytes(sig)))
    return out


def _hostile(z: Zone, inception: datetime.datetime, expiration: datetime.datetime) -> tuple[str, str]:
    """(signed zone text, DS text) of a KeyTrap zone, signed with dnspython."""
    priv = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    ksk = dns.dnssec.make_dnskey(priv.public_key(), dns.dnssec.Algorithm.RSASHA256, flags=257)
    tag = dns.dnssec.key_id(ksk)
    origin = dns.name.from_text(z.origin)
    zone = dns.zone.from_text(f"$ORIGIN {z.origin}\n$TTL {TTL}\n{z.body}", origin,
                              relativize=False)
    if z.hostile == "keytrap":
        # KEYTRAP_KEYS keys with the KSK's tag (the real one among them) ...
        fakes = colliding_keys(ksk, tag, KEYTRAP_KEYS - 1, flags=257)
    else:
        # a valid DNSKEY set, plus ZSKs sharing one other tag
        fakes = colliding_keys(ksk, (tag + 1) & 0xFFFF, KEYTRAP_KEYS)
    keys_rds = dns.rdataset.Rdataset(dns.rdataclass.IN, dns.rdatatype.DNSKEY, ttl=TTL)
    for k in fakes:
        keys_rds.add(k)
    with zone.writer() as txn:
        txn.add(origin, keys_rds)
    dns.dnssec.sign_zone(zone, keys=[(priv, ksk)], inception=inception, expiration=expiration,
                         dnskey_ttl=TTL)
    if z.hostile == "keytrap":
        # ... and the DNSKEY set signed only by failing RRSIGs of that tag
        targets, covers = [origin], dns.rdatatype.DNSKEY
        fake_tag = tag
    else:
        # www and the wildcard (so that every name costs a fresh validation)
        targets = [dns.name.from_text(n, origin) for n in ("www", "*")]
        covers = dns.rdatatype.A
        fake_tag = (tag + 1) & 0xFFFF
    for target in targets:
        node = zone.find_node(target)
        real = node.find_rdataset(dns.rdataclass.IN, dns.rdatatype.RRSIG, covers)
        new = dns.rdataset.Rdataset(dns.rdataclass.IN, dns.rdatatype.RRSIG, covers, real.ttl)
        for s in failing_sigs(next(iter(real)), fake_tag, KEYTRAP_SIGS):
            new.add(s)
        node.replace_rdataset(new)
    ds = dns.dnssec.make_ds(origin, ksk, "SHA256")
    return zone.to_text(relativize=False), f"{z.origin} 86400 IN DS {ds.to_text()}\n"


def build(base: Path) -> tuple[dict[str, tuple[str, str | None, str]], Path]:
    """Make keys, sign every zone (children first), write the root trust anchor file.

    Returns (servers for hierarchy.Hierarchy, path of the trust anchor file).
    """
    _need_tools()
    keydir = base / "keys"
    zonedir = base / "signing"
    keydir.mkdir(parents=True, exist_ok=True)
    zonedir.mkdir(parents=True, exist_ok=True)
    keys = _keygen_all(ZONES, keydir)
    now = datetime.datetime.now(datetime.timezone.utc).replace(microsecond=0)
    inception, expiration = now - datetime.timedelta(hours=1), now + datetime.timedelta(days=30)
    ds_of: dict[str, str] = {}  # origin -> DS lines for its parent
    signed: dict[str, str] = {}
    for z in sorted(ZONES, key=lambda z: -len(dns.name.from_text(z.origin).labels)):
        body = z.body + "".join(ds for child, ds in ds_of.items()
                                if dns.name.from_text(child).parent() == dns.name.from_text(z.origin))
        if z.alg is None:
            signed[z.origin] = body
            continue
        if z.hostile:
            signed[z.origin], ds_of[z.origin] = _hostile(z, inception, expiration)
            continue
        unsigned = zonedir / f"{_server_name(z.origin)}.zone"
        unsigned.write_text(f"$ORIGIN {z.origin}\n$TTL {TTL}\n{body}")
        out = zonedir / f"{_server_name(z.origin)}.signed"
        start, end = (now - datetime.timedelta(days=30), now - datetime.timedelta(days=1)) \
            if z.expired else (inception, expiration)
        argv = ["ldns-signzone", "-i", _stamp(start), "-e", _stamp(end), "-o", z.origin,
                "-f", str(out)]
        if z.nsec3:
            argv += ["-n", "-t", str(z.iterations)] + (["-p"] if z.optout else [])
        _run(argv + [str(unsigned), str(keydir / keys[z.origin])], zonedir)
        text = out.read_text()
        if z.tamper:
            text = _tamper(text, z.origin, z.tamper)
        signed[z.origin] = text
        ds_of[z.origin] = (keydir / f"{keys[z.origin]}.ds").read_text()
    ta = base / "root.keys"
    ta.write_text(ds_of["."])
    servers = {_server_name(z.origin): (z.addr, z.origin, signed[z.origin]) for z in ZONES}
    return servers, ta


class SignedHierarchy:
    """The signed zones, built in base and served by knotd (hierarchy.Hierarchy)."""

    def __init__(self, base: Path):
        self.base = Path(base)
        self.servers, self.ta_file = build(self.base)
        self.knot = Hierarchy(self.base / "knot", servers=self.servers)

    def start(self) -> "SignedHierarchy":
        self.knot.start()
        return self

    def stop(self) -> None:
        self.knot.stop()

    def running(self) -> bool:
        return self.knot.running()


# --------------------------------------------------------------------------- resolvers
def config(ta_file: Path, extra: str = "") -> str:
    """A config for both our kresd and Debian's 5.6: the root hint is our signed root, the only
    trust anchor its KSK (read-only key file), test. let through kresd's special-use rules."""
    return (
        "modules.load('hints > iterate')\n"
        "policy.add(policy.suffix(policy.PASS, {todname('test.')}))\n"
        "trust_anchors.remove('.')\n"
        f"trust_anchors.add_file('{ta_file}', true)\n"
        "option('ALLOW_LOCAL', true)\n"
        f"hints.root({{['a.root-servers.net.'] = '{ROOT_ADDR}'}})\n"
        + extra)


RESOLVER_KINDS = ["ours", "kresd56"]


def resolver_bin(kind: str, kresd_bin: Path) -> Path:
    """Our installed entry point, or Debian's /usr/sbin/kresd (RuntimeError when missing)."""
    if kind == "ours":
        return kresd_bin
    if not KRESD56.exists():
        raise RuntimeError(f"{KRESD56} is missing: run tools/install.sh (Debian package "
                           "knot-resolver, the kresd 5.6 reference)")
    return KRESD56


def start_resolver(kind: str, kresd_bin: Path, addr: str, rundir: Path, ta_file: Path,
                   extra: str = "") -> Resolver:
    """Our kresd or kresd56 on addr@53 with config(ta_file, extra), answering already."""
    return Resolver(resolver_bin(kind, kresd_bin), addr, rundir, config=config(ta_file, extra)).start()


# --------------------------------------------------------------------------- pytest
if pytest is not None:
    @pytest.fixture(scope="session")
    def signed_hierarchy(tmp_path_factory) -> SignedHierarchy:
        """The signed hierarchy, built and started once per session (test modules load this
        file with ``pytest_plugins``, so every module shares this one instance)."""
        try:
            h = SignedHierarchy(tmp_path_factory.mktemp("signed"))
            h.start()
        except RuntimeError as e:
            pytest.fail(str(e))
        yield h
        h.stop()

    def resolver_fixture(kind: str, kresd_bin: Path, addr: str, rundir: Path, ta_file: Path,
                         extra: str = ""):
        """Generator body for a fixture: start (pytest.fail on a missing binary), yield, stop
        and print the log tail (pytest shows it when a test failed)."""
        try:
            r = start_resolver(kind, kresd_bin, addr, rundir, ta_file, extra)
        except RuntimeError as e:
            pytest.fail(f"{kind}: {e}")
        r.kind = kind  # "ours" or "kresd56", for expectations that differ on purpose
        yield r
        r.stop()
        print(r.log_tail())


# --------------------------------------------------------------------------- DNS client
def ask(addr: str, qname: str, qtype: str = "A", *, do: bool = False, cd: bool = False,
        ad: bool = False, rd: bool = True, timeout: float = 5.0, port: int = 53
        ) -> dns.message.Message:
    """One query (EDNS0, payload 1232; DO/CD/AD as asked), retried over TCP when truncated."""
    flags = (dns.flags.RD if rd else 0) | (dns.flags.CD if cd else 0) | (dns.flags.AD if ad else 0)
    q = dns.message.make_query(qname, qtype, use_edns=0, payload=1232, want_dnssec=do, flags=flags)
    r = dns.query.udp(q, addr, timeout=timeout, port=port, ignore_unexpected=True)
    if r.flags & dns.flags.TC:
        r = dns.query.tcp(q, addr, timeout=timeout, port=port)
    return r


def ede_codes(msg: dns.message.Message) -> list[int]:
    return [int(o.code) for o in msg.options if o.otype == dns.edns.OptionType.EDE]


def has(msg: dns.message.Message, flag: int) -> bool:
    return bool(msg.flags & flag)


def rrsigs_cover(section, rdtype: int) -> bool:
    """Some RRSIG in section covers rdtype."""
    return any(r.rdtype == dns.rdatatype.RRSIG and r.covers == rdtype for r in section)


def types_in(section) -> set[int]:
    return {r.rdtype for r in section}


def main() -> None:
    import signal
    import tempfile
    base = Path(tempfile.mkdtemp(prefix="kresd-signed-"))
    t0 = time.monotonic()
    h = SignedHierarchy(base).start()
    print(f"signed hierarchy up in {base} ({time.monotonic() - t0:.1f}s); trust anchor {h.ta_file}")
    print("config:\n" + config(h.ta_file))
    try:
        signal.pause()
    except KeyboardInterrupt:
        pass
    finally:
        h.stop()


if __name__ == "__main__":
    main()
