"""RRSIG checks (workers/dnssec/verify.py) on data signed here with dnspython
(keys of every supported algorithm from tests/unit/workers/signedzones.py)."""
import time

import dns.dnssec
import dns.name
import dns.rdata
import dns.rrset
import pytest
from cryptography.hazmat.primitives.asymmetric import ec, ed25519
from dns.dnssec import Algorithm

from workers.dnssec import Status
from workers.dnssec import verify as V

from .. import signedzones as sz
from ..signedzones import key, sign_rrset

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


# -- on the keys and zones of tests/unit/workers/signedzones.py: every algorithm,
# unsupported DS and anchors, colliding key tags counted at the crypto call ----------

ZONE = dns.name.from_text("example.test.")
T0 = 1_700_000_000
DAY = 86400
ALGORITHMS = [Algorithm.RSASHA1, Algorithm.RSASHA1NSEC3SHA1, Algorithm.RSASHA256, Algorithm.RSASHA512,
              Algorithm.ECDSAP256SHA256, Algorithm.ECDSAP384SHA384, Algorithm.ED25519, Algorithm.ED448]


def rrset(owner="www.example.test.", rtype="A", *rdatas):
    return dns.rrset.from_text(owner, 300, "IN", rtype, *(rdatas or ("192.0.2.1", "192.0.2.2")))


def signed(rr, keypair, inception=T0 - DAY, expiration=T0 + DAY, zone=ZONE):
    return sign_rrset(rr, zone, keypair, inception=inception, expiration=expiration)


def check(rr, sigs, keys, now=T0, budget=None, zone=ZONE):
    return V.verify_rrset(rr, sigs, keys, zone, now, budget or V.Budget())


def dnskey_rrset(*dnskeys):
    return dns.rrset.from_rdata_list(ZONE, 3600, list(dnskeys))


@pytest.mark.parametrize("alg", ALGORITHMS, ids=lambda a: a.name)
def test_secure_rrset_per_algorithm(alg):
    kp = key(alg)
    rr = rrset()
    verdict = check(rr, signed(rr, kp), [kp[1]])
    assert verdict.status is Status.SECURE and verdict.signer == ZONE and verdict.labels is None


@pytest.mark.parametrize("alg", ALGORITHMS, ids=lambda a: a.name)
def test_dnskey_set_against_its_ds_per_algorithm(alg):
    kp = key(alg)
    keys = dnskey_rrset(kp[1])
    ds = dns.dnssec.make_ds(ZONE, kp[1], "SHA256", policy=dns.dnssec.allow_all_policy)
    verdict = V.verify_dnskeys(ZONE, keys, signed(keys, kp), [ds], T0, V.Budget())
    assert verdict.status is Status.SECURE


def test_tampered_signature_is_bogus_ede_6():
    kp = key(Algorithm.ECDSAP256SHA256)
    rr = rrset()
    sigs = signed(rr, kp)
    other = rrset("www.example.test.", "A", "192.0.2.99")  # the data changed under the signature
    verdict = check(other, sigs, [kp[1]])
    assert verdict.status is Status.BOGUS and verdict.ede == 6
    rd = sigs[0]
    bad = dns.rrset.from_rdata_list(rr.name, rr.ttl, [rd.replace(signature=bytes(64))])
    verdict = check(rr, bad, [kp[1]])
    assert verdict.status is Status.BOGUS and verdict.ede == 6


def test_expired_signature_ede_7():
    kp = key(Algorithm.ECDSAP256SHA256)
    rr = rrset()
    sigs = signed(rr, kp, inception=T0 - 10 * DAY, expiration=T0 - DAY)
    verdict = check(rr, sigs, [kp[1]])
    assert verdict.status is Status.BOGUS and verdict.ede == 7
    assert check(rr, sigs, [kp[1]], now=T0 - 2 * DAY).status is Status.SECURE  # inside the window


def test_not_yet_valid_signature_ede_8():
    kp = key(Algorithm.ECDSAP256SHA256)
    rr = rrset()
    sigs = signed(rr, kp, inception=T0 + DAY, expiration=T0 + 10 * DAY)
    verdict = check(rr, sigs, [kp[1]])
    assert verdict.status is Status.BOGUS and verdict.ede == 8
    assert check(rr, sigs, [kp[1]], now=T0 + 2 * DAY).status is Status.SECURE


def test_no_rrsig_ede_10():
    kp = key(Algorithm.ECDSAP256SHA256)
    rr = rrset()
    assert check(rr, None, [kp[1]]).ede == 10
    # an RRSIG over another type is no RRSIG for this RRset
    sigs = signed(rrset("www.example.test.", "TXT", '"x"'), kp)
    verdict = check(rr, sigs, [kp[1]])
    assert verdict.status is Status.BOGUS and verdict.ede == 10


def test_no_matching_key_ede_9():
    kp, other = key(Algorithm.ECDSAP256SHA256, 0), key(Algorithm.ECDSAP256SHA256, 1)
    rr = rrset()
    verdict = check(rr, signed(rr, kp), [other[1]])
    assert verdict.status is Status.BOGUS and verdict.ede == 9


def test_signature_by_another_zone_does_not_count():
    kp = key(Algorithm.ECDSAP256SHA256)
    rr = rrset()
    sigs = signed(rr, kp, zone=dns.name.from_text("test."))
    assert check(rr, sigs, [kp[1]]).status is Status.BOGUS


def test_wildcard_expansion_reports_labels():
    kp = key(Algorithm.ECDSAP256SHA256)
    wild = rrset("*.example.test.")
    sigs = signed(wild, kp)
    expanded = rrset("a.b.example.test.")
    esigs = dns.rrset.from_rdata_list(expanded.name, 300, list(sigs))
    verdict = check(expanded, esigs, [kp[1]])
    assert verdict.status is Status.SECURE and verdict.labels == 2


def _ds(kp, **replace):
    ds = dns.dnssec.make_ds(ZONE, kp[1], "SHA256")
    return ds.replace(**replace) if replace else ds


@pytest.mark.parametrize("replace", [{"digest_type": 3}, {"algorithm": 12}, {"digest_type": 200},
                                     {"algorithm": 253}], ids=["gost-digest", "gost-alg", "digest-200",
                                                               "privatedns-alg"])
def test_ds_with_unsupported_algorithm_or_digest_is_insecure(replace):
    kp = key(Algorithm.ECDSAP256SHA256)
    keys = dnskey_rrset(kp[1])
    verdict = V.verify_dnskeys(ZONE, keys, signed(keys, kp), [_ds(kp, **replace)], T0, V.Budget())
    assert verdict.status is Status.INSECURE
    # with a supported DS next to it, the zone is checked against that one
    verdict = V.verify_dnskeys(ZONE, keys, signed(keys, kp), [_ds(kp, **replace), _ds(kp)], T0, V.Budget())
    assert verdict.status is Status.SECURE


def test_configured_anchor_with_unsupported_algorithm_is_not_insecure():
    kp = key(Algorithm.ECDSAP256SHA256)
    keys = dnskey_rrset(kp[1])
    for anchor in (_ds(kp, algorithm=12), _ds(kp, digest_type=3), kp[1].replace(algorithm=12)):
        verdict = V.verify_dnskeys(ZONE, keys, signed(keys, kp), [anchor], T0, V.Budget(), configured=True)
        assert verdict.status is Status.BOGUS, anchor


def test_ds_naming_no_key_is_bogus():
    kp, other = key(Algorithm.ECDSAP256SHA256, 0), key(Algorithm.ECDSAP256SHA256, 1)
    keys = dnskey_rrset(kp[1])
    verdict = V.verify_dnskeys(ZONE, keys, signed(keys, kp), [_ds(other)], T0, V.Budget())
    assert verdict.status is Status.BOGUS and verdict.ede == 9


def test_ds_key_must_sign_the_dnskey_set():
    """The key the DS names must sign the DNSKEY RRset itself (a ZSK's
    signature alone does not do)."""
    ksk, zsk = key(Algorithm.ECDSAP256SHA256, 0), key(Algorithm.ECDSAP256SHA256, 1, flags=256)
    keys = dnskey_rrset(ksk[1], zsk[1])
    verdict = V.verify_dnskeys(ZONE, keys, signed(keys, zsk), [_ds(ksk)], T0, V.Budget())
    assert verdict.status is Status.BOGUS
    assert V.verify_dnskeys(ZONE, keys, signed(keys, ksk), [_ds(ksk)], T0, V.Budget()).status is Status.SECURE


# -- revoked keys ---------------------------------------------------------------

def test_revoked_key_is_never_used():
    revoked = key(Algorithm.ECDSAP256SHA256, 2, flags=257 | V.REVOKE_FLAG)
    rr = rrset()
    verdict = check(rr, signed(rr, revoked), [revoked[1]])
    assert verdict.status is Status.BOGUS and verdict.ede == 9
    keys = dnskey_rrset(revoked[1])
    ds = dns.dnssec.make_ds(ZONE, revoked[1], "SHA256")
    verdict = V.verify_dnskeys(ZONE, keys, signed(keys, revoked), [ds], T0, V.Budget())
    assert verdict.status is Status.BOGUS
    # the same key without the revoke flag verifies: only the flag made the difference
    plain = key(Algorithm.ECDSAP256SHA256, 2, flags=257)
    assert check(rr, signed(rr, plain), [plain[1]]).status is Status.SECURE


def test_key_without_zone_flag_is_never_used():
    nozone = key(Algorithm.ECDSAP256SHA256, 3, flags=0)
    rr = rrset()
    verdict = check(rr, signed(rr, nozone), [nozone[1]])
    assert verdict.status is Status.BOGUS and verdict.ede == 9  # no usable key, not a bad signature


# -- KeyTrap (CVE-2023-50387) ------------------------------------------------------

def colliding_keys(count: int):
    """`count` distinct ECDSAP256 zone keys sharing one key tag, and the tag."""
    _, real = key(Algorithm.ECDSAP256SHA256, 4)
    keys = sz.colliding_keys(real, count)
    assert len({k.key for k in keys}) == count
    return keys, dns.dnssec.key_id(real)


def failing_sigs(rr, tag, count: int):
    """`count` RRSIGs over rr by ZONE with key tag `tag`, none of which verifies."""
    sigs = sz.failing_sigs(rr, ZONE, key(Algorithm.ECDSAP256SHA256, 4), count, T0 - DAY, T0 + DAY)
    assert {rd.key_tag for rd in sigs} == {tag} and len(sigs) == count
    return sigs


@pytest.fixture
def crypto_calls(monkeypatch):
    """Count the signature verifications that reach the cryptography (V._check)."""
    calls = []
    real = V._check

    def counting(*a, **kw):
        calls.append(1)
        return real(*a, **kw)
    monkeypatch.setattr(V, "_check", counting)
    return calls


def test_keytrap_per_rrset_cap(crypto_calls):
    keys, tag = colliding_keys(50)
    rr = rrset()
    sigs = failing_sigs(rr, tag, 50)
    budget = V.Budget()
    t0 = time.perf_counter()
    verdict = check(rr, sigs, keys, budget=budget)
    elapsed = time.perf_counter() - t0
    assert verdict.status is Status.BOGUS and verdict.ede == 6
    assert budget.used == len(crypto_calls) == V.MAX_FAILS_PER_RRSET  # not 50 * 50
    assert V.MAX_FAILS_PER_RRSET <= 16
    assert elapsed < 0.5


def test_keytrap_per_request_budget(crypto_calls):
    """Many hostile RRsets in one request: the request's budget stops the work."""
    keys, tag = colliding_keys(50)
    budget = V.Budget()
    t0 = time.perf_counter()
    with pytest.raises(V.BudgetExceeded):
        for i in range(50):
            rr = rrset(f"w{i}.example.test.")
            assert check(rr, failing_sigs(rr, tag, 50), keys, budget=budget).status is Status.BOGUS
    elapsed = time.perf_counter() - t0
    assert budget.used == len(crypto_calls) == V.MAX_SIG_CHECKS_PER_REQUEST
    assert V.MAX_SIG_CHECKS_PER_REQUEST <= 128
    assert elapsed < 1.0
    with pytest.raises(V.BudgetExceeded):  # spent: nothing more is checked
        check(rrset(), signed(rrset(), key(Algorithm.ECDSAP256SHA256, 4)), keys, budget=budget)
    assert len(crypto_calls) == V.MAX_SIG_CHECKS_PER_REQUEST


def test_keytrap_dnskey_set(crypto_calls):
    """A DNSKEY set of colliding keys signed only by failing RRSIGs of that tag,
    the DS naming the real key: bogus after a bounded number of checks."""
    keys, tag = colliding_keys(50)
    keyset = dnskey_rrset(*keys)
    ds = dns.dnssec.make_ds(ZONE, keys[0], "SHA256")
    budget = V.Budget()
    t0 = time.perf_counter()
    verdict = V.verify_dnskeys(ZONE, keyset, failing_sigs(keyset, tag, 50), [ds], T0, budget)
    assert verdict.status is Status.BOGUS
    assert budget.used == len(crypto_calls) <= min(V.MAX_FAILS_PER_RRSET, 16)
    assert time.perf_counter() - t0 < 0.5


def test_a_good_signature_among_colliding_keys_verifies():
    """Below the cap the search goes on: the real key sits last among three
    sharing its tag (a collision that happens in real zones) and its signature
    is found after a failing one of the same tag (3 + 2 failed checks)."""
    keys, tag = colliding_keys(3)
    rr = rrset()
    good = signed(rr, key(Algorithm.ECDSAP256SHA256, 4))
    sigs = dns.rrset.from_rdata_list(rr.name, rr.ttl, list(failing_sigs(rr, tag, 1)) + list(good))
    verdict = check(rr, sigs, list(reversed(keys)))
    assert verdict.status is Status.SECURE


def test_signatures_after_the_32_bit_wrap_verify():
    """Times are 32-bit serial numbers (RFC 4034 3.1.5): in 2106 a window stored
    as small numbers is current, and the check must not compare plain numbers."""
    priv, key = keypair()
    sig = sign(A, priv, key, inception=100, expiration=86400)  # 2106 + a day, stored wrapped
    v = V.verify_rrset(A, sigset(A, sig), [key], Z, 2**32 + 1000, V.Budget())
    assert v.status is Status.SECURE, v


# -- the memoised check against dnspython's own validate_rrsig -------------------

def _variants(rr, kp_sig, kp_other, zone=ZONE):
    """(rrset, rrsig, key) cases: good, other data, flipped signature byte,
    another key with the same algorithm."""
    sig = signed(rr, kp_sig)[0]
    bad = bytearray(sig.signature)
    bad[len(bad) // 2] ^= 0x01
    flipped = sig.replace(signature=bytes(bad))
    other = rrset(str(rr.name), "A", "192.0.2.77")
    return [(rr, sig, kp_sig[1], True), (other, sig, kp_sig[1], False),
            (rr, flipped, kp_sig[1], False), (rr, sig, kp_other[1], False)]


@pytest.mark.parametrize("alg", ALGORITHMS, ids=lambda a: a.name)
def test_check_agrees_with_dnspython(alg):
    """The check with memoised keys gives dnspython's verdict on every case,
    also when the memo already holds the key (second round)."""
    kp, other = key(alg, 1), key(alg, 2)
    for _ in range(2):
        for owner in ("www.example.test.", "*.example.test.", "a.b.example.test."):
            for rr, sig, dnskey, expected in _variants(rrset(owner), kp, other):
                got = V._check(rr, sig, dnskey, ZONE, T0)
                assert got == V._check_dnspython(rr, sig, dnskey, ZONE) == expected


def test_key_memo_is_bounded(monkeypatch):
    monkeypatch.setattr(V, "_MEMO_MAX", 4)
    V._tags.clear()
    for i in range(10):
        kp = key(Algorithm.ED25519, i)
        assert V.key_tag(kp[1]) == dns.dnssec.key_id(kp[1])
    assert len(V._tags) <= 4
