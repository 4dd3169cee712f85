"""RRSIG checks (workers/dnssec/verify.py) on data signed here with dnspython."""
import time

import dns.dnssec
import dns.name
import dns.rdata
import dns.rrset
import pytest
from cryptography.hazmat.primitives.asymmetric import ec, ed25519

from workers.dnssec import Status
from workers.dnssec import verify as V

Z = dns.name.from_text("example.")
NOW = 1_800_000_000


def keypair(alg=dns.dnssec.Algorithm.ECDSAP256SHA256):
    priv = ed25519.Ed25519PrivateKey.generate() if alg == dns.dnssec.Algorithm.ED25519 \
        else ec.generate_private_key(ec.SECP256R1())
    return priv, dns.dnssec.make_dnskey(priv.public_key(), alg, flags=257)


def sign(rrset, priv, key, inception=NOW - 3600, expiration=NOW + 3600, signer=Z):
    return dns.dnssec.sign(rrset, priv, signer, key, inception=inception, expiration=expiration)


def sigset(rrset, *rdatas):
    return dns.rrset.from_rdata_list(rrset.name, rrset.ttl, list(rdatas))


A = dns.rrset.from_text("www.example.", 300, "IN", "A", "192.0.2.1")


@pytest.mark.parametrize("alg", [dns.dnssec.Algorithm.ECDSAP256SHA256, dns.dnssec.Algorithm.ED25519])
def test_a_good_signature_is_secure(alg):
    priv, key = keypair(alg)
    v = V.verify_rrset(A, sigset(A, sign(A, priv, key)), [key], Z, NOW, V.Budget())
    assert v.status is Status.SECURE and v.labels is None


def test_failures_name_their_reason():
    priv, key = keypair()
    good = sign(A, priv, key)
    other = dns.rrset.from_text("www.example.", 300, "IN", "A", "192.0.2.99")
    cases = [
        (other, sigset(A, good), [key], 6),  # the data changed: bad signature
        (A, sigset(A, sign(A, priv, key, NOW - 7200, NOW - 3600)), [key], 7),  # expired
        (A, sigset(A, sign(A, priv, key, NOW + 3600, NOW + 7200)), [key], 8),  # not yet valid
        (A, None, [key], 10),  # no RRSIG
        (A, sigset(A, good), [keypair()[1]], 9),  # no key with its tag
    ]
    for rrset, sigs, keys, ede in cases:
        v = V.verify_rrset(rrset, sigs, keys, Z, NOW, V.Budget())
        assert v.status is Status.BOGUS and v.ede == ede, v


def test_revoked_and_non_zone_keys_are_never_used():
    priv, key = keypair()
    sig = sign(A, priv, key)
    for flags in (key.flags | V.REVOKE_FLAG, key.flags & ~V.ZONE_FLAG):
        bad = dns.rdata.from_text("IN", "DNSKEY", f"{flags} 3 {key.algorithm} {key.to_text().split(maxsplit=3)[3]}")
        assert V.verify_rrset(A, sigset(A, sig), [bad], Z, NOW, V.Budget()).status is Status.BOGUS


def test_validity_window_uses_serial_arithmetic():
    """RFC 4034 3.1.5: 32-bit serial arithmetic, so windows across 2106 work."""
    from types import SimpleNamespace

    sig = SimpleNamespace(inception=(2**32 - 100) & 0xFFFFFFFF, expiration=(2**32 + 100) & 0xFFFFFFFF)
    assert V._in_window(sig, 2**32 - 50) == ""
    assert V._in_window(sig, 2**32 + 10) == ""
    assert V._in_window(sig, 2**32 + 200) == "expired"
    assert V._in_window(sig, 2**32 - 200) == "notyet"


def test_keytrap_failed_checks_are_bounded():
    """Many RRSIGs with the right key tag that all fail: at most MAX_FAILS_PER_RRSET
    verifications for the RRset, and the request budget stops the rest."""
    priv, key = keypair()
    good = sign(A, priv, key)
    forged = [good.replace(signature=bytes(64 - 1) + bytes([i])) for i in range(50)]
    b = V.Budget()
    t0 = time.monotonic()
    v = V.verify_rrset(A, sigset(A, *forged), [key] * 50, Z, NOW, b)
    assert v.status is Status.BOGUS and b.used == V.MAX_FAILS_PER_RRSET
    assert time.monotonic() - t0 < 1.0
    small = V.Budget(limit=3)
    with pytest.raises(V.BudgetExceeded):
        V.verify_rrset(A, sigset(A, *forged), [key], Z, NOW, small)
    assert small.used == 3


def test_dnskeys_against_ds():
    priv, key = keypair()
    keys = dns.rrset.from_rdata_list(Z, 3600, [key])
    sigs = sigset(keys, sign(keys, priv, key))
    ds = dns.dnssec.make_ds(Z, key, "SHA256")
    assert V.verify_dnskeys(Z, keys, sigs, [ds], NOW, V.Budget()).status is Status.SECURE
    other = dns.dnssec.make_ds(Z, keypair()[1], "SHA256")
    v = V.verify_dnskeys(Z, keys, sigs, [other], NOW, V.Budget())
    assert v.status is Status.BOGUS and v.ede == 9
    # a DS with an unsupported digest makes the zone insecure, unless it is a configured anchor
    gost = dns.rdata.from_text("IN", "DS", f"{ds.key_tag} {ds.algorithm} 3 {'00' * 32}")
    assert V.verify_dnskeys(Z, keys, sigs, [gost], NOW, V.Budget()).status is Status.INSECURE
    assert V.verify_dnskeys(Z, keys, sigs, [gost], NOW, V.Budget(), configured=True).status is Status.BOGUS
