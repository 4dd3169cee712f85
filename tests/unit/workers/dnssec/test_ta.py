"""workers/dnssec/ta.py: key-file parsing, the anchor queries the validator
uses, and RFC 5011 automated updates under a fake clock."""
from __future__ import annotations

import os

import dns.dnssec
import dns.name
import dns.rdata
import dns.rdataclass
import dns.rdatatype as T
import dns.rrset
import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from hypothesis import given, settings as hsettings, strategies as st

from tests import shared_data
from tests.scenarios import config as scn_config, rpl, template
from workers.dnssec import ta
from workers.settings import Settings

N = dns.name.from_text
ROOT = dns.name.root
DAY_S = 86400
T0 = 1_700_000_000  # the fake clock's day 0

# Debian dns-root-data /usr/share/dns/root.key (public IANA data): the keys the
# built-in DS records must name.
KSK_2017 = ("257 3 8 AwEAAaz/tAm8yTn4Mfeh5eyI96WSVexTBAvkMgJzkKTOiW1vkIbzxeF3+/4RgWOq7HrxRixHlFlExOLAJr5emL"
            "vN7SWXgnLh4+B5xQlNVz8Og8kvArMtNROxVQuCaSnIDdD5LKyWbRd2n9WGe2R8PzgCmr3EgVLrjyBxWezF0jLHwVN8e"
            "fS3rCj/EWgvIWgb9tarpVUDK/b58Da+sqqls3eNbuv7pr+eoZG+SrDK6nWeL3c6H5Apxz7LjVc1uTIdsIXxuOLYA4/il"
            "BmSVIzuDWfdRUfhHdY6+cn8HFRm+2hM8AnXGXws9555KrUB5qihylGa8subX2Nn6UwNR1AkUTV74bU=")
KSK_2024 = ("257 3 8 AwEAAa96jeuknZlaeSrvyAJj6ZHv28hhOKkx3rLGXVaC6rXTsDc449/cidltpkyGwCJNnOAlFNKF2jBosZBU5e"
            "eHspaQWOmOElZsjICMQMC3aeHbGiShvZsx4wMYSjH8e7Vrhbu6irwCzVBApESjbUdpWWmEnhathWu1jo+siFUiRAAxm9"
            "qyJNg/wOZqqzL/dL/q8PkcRU5oUKEpUge71M3ej2/7CPqpdVwuMoTvoB+ZOT4YeGyxMvHmbrxlFzGOHOijtzN+u1TQN"
            "atX2XBuzZNQ1K+s2CXkPIZo7s6JgZyvaBevYtxPvYLw4z9mR7K2vaF18UYH9Z9GNUUeayffKC73PYc=")


def fresh() -> Settings:
    s = Settings()
    s.trust_anchors, s.negative_trust_anchors = {}, []
    return s


class Key:
    """An ECDSA P-256 key of `zone` (fast to make and sign with)."""

    def __init__(self, zone=ROOT, flags=257):
        self.zone = zone
        self.priv = ec.generate_private_key(ec.SECP256R1())
        self.dnskey = dns.dnssec.make_dnskey(self.priv.public_key(), 13, flags=flags)

    @property
    def revoked(self):
        return self.dnskey.replace(flags=self.dnskey.flags | ta.REVOKE)

    def ds(self):
        return dns.dnssec.make_ds(self.zone, self.dnskey, "SHA256")


def keyset(zone, *rdatas, ttl=172800):
    return dns.rrset.from_rdata_list(zone, ttl, list(rdatas))


def sign(rrset, priv, key, now):
    return dns.dnssec.sign(rrset, priv, rrset.name, key, inception=now - 3600, expiration=now + 100 * DAY_S)


# -- built-in anchors ------------------------------------------------------------------

def test_builtin_root_anchors_name_the_iana_root_keys():
    s = fresh()
    ta.install_builtin(s)
    ds = s.trust_anchors[ROOT]
    assert sorted(d.key_tag for d in ds) == [20326, 38696]
    for text in (KSK_2017, KSK_2024):
        key = dns.rdata.from_text(dns.rdataclass.IN, T.DNSKEY, text)
        assert dns.dnssec.make_ds(ROOT, key, "SHA256") in ds
    assert ta.store(s).keysets[ROOT].managed is False


def test_builtin_anchors_equal_what_the_zone_file_parser_reads():
    """builtin_anchors() skips dns.zonefile (boot time) but yields what parse() does."""
    assert ta.builtin_anchors() == ta.parse("\n".join(ta.ROOT_ANCHORS))


# -- parsing ---------------------------------------------------------------------------

def test_parse_debian_root_key_and_deckard_lines():
    text = (f". IN DNSKEY {KSK_2017} ; keytag 20326\n"
            f".\t172800\tIN\tDNSKEY\t{KSK_2024}\n")
    got = ta.parse(text, "root.key")
    assert [a.key_tag for a in got] == [20326, 38696]
    assert [a.ttl for a in got] == [3600, 172800]
    assert all(a.state is ta.KeyState.VALID for a in got)
    deckard = ta.parse('example.com.\t\tIN DS 438 10 2 33F8133EB48EDB093839E985600EB7B7009EB5AC312D11CCA9007F6B '
                       '71D94D7B\nexample.com. DNSKEY 257 3 7 AwEAAcUlFV1vhmqx6NSOUOq2R/dsR7Xm3upJ ( '
                       'j7IommWSpJABVfW8Q0rOvXdM6kzt+TAu92L9 AbsUdblMFin8CVF3n4s= )\n')
    assert [a.rdtype for a in deckard] == [T.DS, T.DNSKEY]
    assert deckard[0].rdata.digest.hex().endswith("6b71d94d7b")


def test_parse_parentheses_across_lines_directives_and_blank_owner():
    got = ta.parse("$ORIGIN example.\n$TTL 60\n@ DS 1 8 2 (\n"
                   " E06D44B80B8F1D39A95C0B0D7C65D08458E880409BBC683457104237C7F8EC8D )\n"
                   "  DS 2 8 1 E06D44B80B8F1D39A95C0B0D7C65D08458E88040\n", "f")
    assert [(a.owner, a.ttl, a.key_tag) for a in got] == [(N("example."), 60, 1), (N("example."), 60, 2)]


@pytest.mark.parametrize("text,line,what", [
    ("; comment\n. IN DS 1 8 2 E06D\n. IN DS 3 8 xx E06D44B8\n", 3, "cannot parse"),
    (". IN DS 1 8 1 E06D44B80B8F1D39A95C0B0D7C65D08458E88040\nexample. IN A 192.0.2.1\n", 2, "DS or DNSKEY"),
    ("\n\n. IN DNSKEY 257 3 8 !!!!\n", 3, "cannot parse"),
    ("$INCLUDE /etc/passwd\n", 1, "unsupported directive"),
])
def test_bad_line_names_file_and_line(text, line, what):
    with pytest.raises(ta.TrustAnchorError) as ei:
        ta.parse(text, "keys.txt")
    assert f"keys.txt:{line}:" in str(ei.value) and what in str(ei.value)


def test_ds_with_digest_length_not_fitting_its_type_is_kept_as_kresd():
    a, = ta.parse(". IN DS 49060 8 1 E7B1EB56D7D5791B3D45630FEAA9C823DB84B385ACEEAC5F44DD08885C36700F")
    assert (a.rdata.key_tag, a.rdata.digest_type, len(a.rdata.digest)) == (49060, 1, 32)
    b, = ta.parse(". IN DS 3 8 2 E06D44B80B8F ; AddPend:12")
    assert (len(b.rdata.digest), b.state, b.timer) == (6, ta.KeyState.ADDPEND, 12)


def test_one_owner_per_keyset_and_not_empty():
    with pytest.raises(ta.TrustAnchorError, match="do not mix"):
        ta.read_keyset(ta.parse(". DS 1 8 1 E06D44B80B8F1D39A95C0B0D7C65D08458E88040\n"
                                "example. DS 1 8 1 E06D44B80B8F1D39A95C0B0D7C65D08458E88040\n"), "x")
    with pytest.raises(ta.TrustAnchorError, match="no trust anchors"):
        ta.read_keyset(ta.parse("; only a comment\n"), "x")


def test_commented_out_keys_with_a_state_are_read_back():
    text = ("; .                   \t100\tDS\t4 8 2 E06D44B80B8F1D39A95C0B0D7C65D08458E880409BBC683457104237C7F8EC8D"
            " ; AddPend:1700000000 ; KeyTag:4\n"
            "; . 100 DS 5 8 1 E06D44B80B8F1D39A95C0B0D7C65D08458E88040 ; no state here\n"
            ". 100 DS 6 8 1 E06D44B80B8F1D39A95C0B0D7C65D08458E88040 ; Missing:1700000099 ; KeyTag:6\n")
    got = ta.parse(text)
    assert [(a.key_tag, a.state, a.timer) for a in got] == [
        (4, ta.KeyState.ADDPEND, 1700000000), (6, ta.KeyState.MISSING, 1700000099)]


_digest = st.binary(min_size=1, max_size=64)
_ds = st.builds(lambda tag, alg, dt, d: (tag, alg, dt, d), st.integers(0, 65535), st.integers(1, 16),
                st.integers(1, 6), _digest)
_state = st.sampled_from(list(ta.KeyState)).filter(lambda x: x is not ta.KeyState.START)


@hsettings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(_ds, _state, st.one_of(st.none(), st.integers(0, 2**31))), min_size=1, max_size=5),
       st.integers(0, 2**31 - 1))
def test_written_keyset_reads_back_the_same(entries, ttl):
    """What RFC 5011 writes, parse reads back: records, TTLs, states and timers."""
    anchors = []
    for (tag, alg, dt, digest), state, timer in entries:
        text = f". {ttl} IN DS {tag} {alg} {dt} {digest.hex()}"
        a, = ta.parse(text)
        a.state, a.timer = state, timer
        anchors.append(a)
    back = ta.parse(ta.keyset_text(ta.Keyset(ROOT, anchors)))
    assert [(a.rdata, a.ttl, a.state, a.timer) for a in back] == \
        [(a.rdata, a.ttl, a.state, a.timer) for a in anchors]


@hsettings(max_examples=200, deadline=None)
@given(st.text(alphabet=st.sampled_from(list(" \t\n;()$.:ADSNKEYIabc0123456789+/=")), max_size=120))
def test_parse_fails_only_with_its_own_error(text):
    try:
        got = ta.parse(text, "fuzz")
    except ta.TrustAnchorError as e:
        assert str(e).startswith("fuzz:")
    else:
        assert all(a.rdtype in (T.DS, T.DNSKEY) for a in got)


def test_every_trust_anchor_of_the_shared_scenarios_loads_through_add_file(tmp_path):
    files = shared_data.require_scenarios()
    loaded = 0
    for path in files:
        ctx = scn_config.context(rpl.parse_file(path))
        if not ctx.trust_anchors:
            continue
        work = tmp_path / path.stem
        s = fresh()
        for keyfile in template.write_trust_anchors(ctx, work):
            ks = ta.add_file(s, keyfile)  # writable, as kresd.j2 loads them
            assert ks.managed and s.trust_anchors[ks.owner], (path.name, keyfile)
            loaded += 1
        ta.set_insecure(s, list(ctx.negative_trust_anchors))
    assert loaded >= 90  # 98 scenarios give trust anchors


# -- queries for the validator ---------------------------------------------------------

def test_closest_ta_walks_up_and_stops_at_negative_anchors():
    s = fresh()
    ds_root, ds_ex = Key().ds(), Key(N("example.")).ds()
    s.trust_anchors = {ROOT: [ds_root], N("example."): [ds_ex], N("empty."): []}
    assert ta.closest_ta(s, N("www.example.")) == N("example.")
    assert ta.closest_ta(s, N("example.")) == N("example.")
    assert ta.closest_ta(s, N("example."), T.DS) == ROOT  # DS is the parent's data
    assert ta.closest_ta(s, ROOT, T.DS) == ROOT
    assert ta.closest_ta(s, N("x.empty.")) == ROOT  # an empty list is no anchor
    s.negative_trust_anchors = [N("bad.example."), N("org.")]
    assert ta.closest_ta(s, N("a.bad.example.")) is None
    assert ta.closest_ta(s, N("www.org.")) is None
    assert ta.closest_ta(s, N("www.example.")) == N("example.")
    assert ta.is_negative(s, N("a.bad.example.")) and ta.is_negative(s, N("org."))
    assert not ta.is_negative(s, N("example.")) and not ta.is_negative(s, N("borg."))
    s.trust_anchors = {}
    assert ta.closest_ta(s, N("www.example.")) is None


def _closest_ta_walk(s, name, rtype=None):
    """closest_ta without its shortcuts: the plain walk up the name."""
    if rtype == T.DS and name != ROOT:
        name = name.parent()
    while True:
        if s.trust_anchors.get(name):
            return name
        if name in s.negative_trust_anchors or name == ROOT:
            return None
        name = name.parent()


@given(st.lists(st.sampled_from(["a", "b", "example", "org", "x-y"]), max_size=4),
       st.sampled_from([None, T.A, T.DS]), st.sampled_from(["none", "root", "root+ex", "root+nta"]))
def test_closest_ta_shortcuts_agree_with_the_walk(labels, rtype, anchors):
    s = fresh()
    ds = [Key().ds()]
    s.trust_anchors = {"none": {}, "root": {ROOT: ds}, "root+ex": {ROOT: ds, N("example."): ds},
                       "root+nta": {ROOT: ds}}[anchors]
    s.negative_trust_anchors = [N("org.")] if anchors == "root+nta" else []
    name = dns.name.Name([lab.encode() for lab in labels] + [b""])
    assert ta.closest_ta(s, name, rtype) == _closest_ta_walk(s, name, rtype)


def test_anchors_at_exactly_a_name_one_rrset_per_type():
    s = fresh()
    k = Key(N("example."))
    ta.add(s, f"example. 300 IN DS {ta.rdata_text(k.ds())}")
    assert [(r.rdtype, r.ttl, list(r)) for r in ta.anchors(s, N("example."))] == [(T.DS, 300, [k.ds()])]
    s.trust_anchors[N("example.")].append(k.dnskey)
    assert [r.rdtype for r in ta.anchors(s, N("example."))] == [T.DS, T.DNSKEY]
    assert ta.anchors(s, N("www.example.")) == []


def test_set_insecure_refuses_a_trust_anchor_and_replaces_the_list():
    s = fresh()
    ta.install_builtin(s)
    with pytest.raises(ta.TrustAnchorError, match="because it is TA"):
        ta.set_insecure(s, ["."])
    ta.set_insecure(s, ["bad.example", "x."])
    ta.set_insecure(s, ["y."])
    assert s.negative_trust_anchors == [N("y.")] and ta.store(s).insecure == ["y."]


def test_add_replaces_the_owner_set_as_kresd_and_remove_drops_it():
    s = fresh()
    ta.install_builtin(s)
    a, b = Key().ds(), Key().ds()
    ta.add(s, f". DS {ta.rdata_text(a)}")
    ta.add(s, f". DS {ta.rdata_text(b)}")
    assert s.trust_anchors[ROOT] == [b]  # kresd 5.6 publishes only the last add() of an owner
    assert ta.remove(s, ROOT) and ROOT not in s.trust_anchors and not ta.remove(s, ROOT)


def test_summary_text():
    s = fresh()
    assert ta.summary(s) == "No valid trust anchors, DNSSEC validation is disabled\n"
    ta.add(s, ". DS 2 8 2 E06D44B80B8F1D39A95C0B0D7C65D08458E880409BBC683457104237C7F8EC8D")
    ta.set_insecure(s, ["bad.example"])
    assert ta.summary(s) == (
        "bad.example. is negative trust anchor\n"
        ".                   \t3600\tDS\t2 8 2 E06D44B80B8F1D39A95C0B0D7C65D08458E880409BBC683457104237C7F8EC8D"
        " ; Valid: ; KeyTag:2\n")
    assert ta.summary(s, N("nothing.")) == "nothing. has no explicit trust anchors\n"


# -- add_file errors -------------------------------------------------------------------

def test_missing_key_file_says_which_and_what_to_do(tmp_path):
    s = fresh()
    path = str(tmp_path / "root.key")
    for readonly in (False, True):
        with pytest.raises(ta.TrustAnchorError) as ei:
            ta.add_file(s, path, readonly)
        msg = str(ei.value)
        assert path in msg and "does not exist" in msg and "root.key" in msg and "add_file(path, true)" in msg
        assert ("bootstrap" in msg) is (not readonly)
    assert not s.trust_anchors  # nothing half-installed, validation not silently off: the config fails


def test_unreadable_and_unwritable_key_files(tmp_path):
    s = fresh()
    with pytest.raises(ta.TrustAnchorError, match="cannot read trust anchor file"):
        ta.add_file(s, str(tmp_path), True)  # a directory
    with pytest.raises(ta.TrustAnchorError, match="write access needed"):
        ta.add_file(s, str(tmp_path / "no" / "dir" / "root.key"))
    f = tmp_path / "pending.key"
    f.write_text(f"; . 3600 DS {ta.rdata_text(Key().ds())} ; AddPend:1 ; KeyTag:1\n")
    with pytest.raises(ta.TrustAnchorError, match="no trust anchors|no trusted key"):
        ta.add_file(s, str(f))


# -- RFC 5011 --------------------------------------------------------------------------

@pytest.fixture
def managed(tmp_path):
    """A writable root key file holding the DS of KSK `old`."""
    old = Key()
    path = tmp_path / "root.key"
    path.write_text(f". 172800 IN DS {ta.rdata_text(old.ds())}\n")
    s = fresh()
    ta.add_file(s, str(path))
    return s, old, path


def states(s, zone=ROOT):
    return [(a.key_tag, a.state.value) for a in ta.store(s).keysets[zone].anchors]


def test_new_ksk_is_trusted_only_after_the_add_hold_down(managed):
    s, old, path = managed
    new, zsk = Key(), Key(flags=256)
    rrset = keyset(ROOT, old.dnskey, new.dnskey, zsk.dnskey)
    ta.observe_dnskey(s, ROOT, rrset, T0)
    # the DS is superseded by the key it names; the new KSK waits; the ZSK is no anchor
    assert states(s) == [(dns.dnssec.key_id(old.dnskey), "Valid"),
                         (dns.dnssec.key_id(new.dnskey), "AddPend")]
    assert s.trust_anchors[ROOT] == [old.dnskey]
    ta.observe_dnskey(s, ROOT, rrset, T0 + 29 * DAY_S)
    assert s.trust_anchors[ROOT] == [old.dnskey]
    assert f"AddPend:{T0 + 30 * DAY_S}" in path.read_text()
    ta.observe_dnskey(s, ROOT, rrset, T0 + 30 * DAY_S)
    assert s.trust_anchors[ROOT] == [old.dnskey, new.dnskey]
    # the file now holds both keys as Valid, and reads back to the same state
    again = fresh()
    ta.add_file(again, str(path))
    assert states(again) == states(s) and again.trust_anchors[ROOT] == s.trust_anchors[ROOT]


def test_pending_key_that_disappears_is_purged_and_starts_again(managed):
    s, old, path = managed
    new = Key()
    ta.observe_dnskey(s, ROOT, keyset(ROOT, old.dnskey, new.dnskey), T0)
    ta.observe_dnskey(s, ROOT, keyset(ROOT, old.dnskey), T0 + 10 * DAY_S)  # not continuous
    assert len(states(s)) == 1
    ta.observe_dnskey(s, ROOT, keyset(ROOT, old.dnskey, new.dnskey), T0 + 20 * DAY_S)
    ta.observe_dnskey(s, ROOT, keyset(ROOT, old.dnskey, new.dnskey), T0 + 31 * DAY_S)
    assert new.dnskey not in s.trust_anchors[ROOT]  # its hold-down restarted on day 20


def test_hold_down_time_is_configurable_in_milliseconds(managed):
    s, old, _ = managed
    ta.store(s).hold_down_time = 2 * 3600 * 1000
    new = Key()
    ta.observe_dnskey(s, ROOT, keyset(ROOT, old.dnskey, new.dnskey), T0)
    ta.observe_dnskey(s, ROOT, keyset(ROOT, old.dnskey, new.dnskey), T0 + 7200)
    assert new.dnskey in s.trust_anchors[ROOT]


def test_revoked_self_signed_key_stops_being_an_anchor(managed):
    s, old, path = managed
    new = Key()
    ta.store(s).hold_down_time = 0
    ta.observe_dnskey(s, ROOT, keyset(ROOT, old.dnskey, new.dnskey), T0)
    ta.observe_dnskey(s, ROOT, keyset(ROOT, old.dnskey, new.dnskey), T0 + 1)
    assert s.trust_anchors[ROOT] == [old.dnskey, new.dnskey]
    ta.store(s).hold_down_time = 30 * DAY_S * 1000
    rrset = keyset(ROOT, old.revoked, new.dnskey)
    sigs = [sign(rrset, old.priv, old.revoked, T0), sign(rrset, new.priv, new.dnskey, T0)]
    ta.observe_dnskey(s, ROOT, rrset, T0 + DAY_S, sigs)
    assert s.trust_anchors[ROOT] == [new.dnskey]
    assert (dns.dnssec.key_id(old.dnskey), "Revoked") in states(s)
    text = path.read_text()
    assert text.startswith("; ") and "; Revoked:" in text  # commented out, as kresd
    ta.observe_dnskey(s, ROOT, rrset, T0 + 31 * DAY_S + 1, sigs)  # RemTime: Removed
    assert (dns.dnssec.key_id(old.dnskey), "Removed") in states(s)
    ta.observe_dnskey(s, ROOT, rrset, T0 + 32 * DAY_S, sigs)  # purged (keep_removed = 0)
    assert states(s) == [(dns.dnssec.key_id(new.dnskey), "Valid")]
    assert "Revoked" not in path.read_text()


def test_keep_removed_keeps_removed_keys_in_the_file(managed):
    s, old, path = managed
    st = ta.store(s)
    st.keep_removed, st.hold_down_time = 1, 0
    new = Key()
    ta.observe_dnskey(s, ROOT, keyset(ROOT, old.dnskey, new.dnskey), T0)
    ta.observe_dnskey(s, ROOT, keyset(ROOT, old.dnskey, new.dnskey), T0 + 1)
    ta.observe_dnskey(s, ROOT, keyset(ROOT, old.revoked, new.dnskey), T0 + 2)
    ta.observe_dnskey(s, ROOT, keyset(ROOT, old.revoked, new.dnskey), T0 + 3)
    assert (dns.dnssec.key_id(old.dnskey), "Removed") in states(s)
    assert "; Removed:" in path.read_text()


def test_revoke_bit_without_the_keys_own_signature_is_ignored(managed):
    s, old, _ = managed
    new = Key()
    rrset = keyset(ROOT, old.revoked, new.dnskey)
    sigs = [sign(rrset, new.priv, new.dnskey, T0)]  # signed by another key only
    ta.observe_dnskey(s, ROOT, rrset, T0, sigs)
    assert old.ds() in s.trust_anchors[ROOT] or old.dnskey in s.trust_anchors[ROOT]


def test_missing_key_stays_trusted_then_goes_after_four_hold_downs(managed):
    s, old, _ = managed
    other = Key()
    ta.observe_dnskey(s, ROOT, keyset(ROOT, old.dnskey), T0)
    ta.observe_dnskey(s, ROOT, keyset(ROOT, other.dnskey), T0 + DAY_S)
    assert (dns.dnssec.key_id(old.dnskey), "Missing") in states(s)
    assert old.dnskey in s.trust_anchors[ROOT]  # Missing is still an anchor (RFC 5011 4.2)
    ta.observe_dnskey(s, ROOT, keyset(ROOT, old.dnskey), T0 + 2 * DAY_S)
    assert (dns.dnssec.key_id(old.dnskey), "Valid") in states(s)  # KeyPres
    ta.observe_dnskey(s, ROOT, keyset(ROOT, other.dnskey), T0 + 3 * DAY_S)
    ta.observe_dnskey(s, ROOT, keyset(ROOT, other.dnskey), T0 + 3 * DAY_S + 120 * DAY_S)
    assert old.dnskey not in (s.trust_anchors.get(ROOT) or [])


def test_failed_rename_leaves_the_old_file_and_no_temporary(managed, tmp_path):
    s, old, path = managed
    before = path.read_text()

    def crash(src, dst):
        raise OSError(5, "Input/output error")

    ta.store(s).rename = crash
    ta.observe_dnskey(s, ROOT, keyset(ROOT, old.dnskey, Key().dnskey), T0)
    assert path.read_text() == before
    assert sorted(os.listdir(tmp_path)) == ["root.key"]
    ta.store(s).rename = os.replace  # the next observation writes it
    ta.observe_dnskey(s, ROOT, keyset(ROOT, old.dnskey), T0 + 1)
    assert path.read_text() != before and "DNSKEY" in path.read_text()


def test_readonly_file_is_never_written(tmp_path, caplog):
    old = Key()
    path = tmp_path / "root.key"
    path.write_text(f". 172800 IN DS {ta.rdata_text(old.ds())}\n")
    os.utime(path, (1, 1))
    s = fresh()
    ta.add_file(s, str(path), True)
    ta.observe_dnskey(s, ROOT, keyset(ROOT, old.dnskey, Key().dnskey), T0)
    ta.observe_dnskey(s, ROOT, keyset(ROOT, Key().dnskey), T0 + 40 * DAY_S)
    assert os.stat(path).st_mtime == 1 and sorted(os.listdir(tmp_path)) == ["root.key"]
    assert s.trust_anchors[ROOT] == [old.ds()]
    assert "update package with trust anchors" in caplog.text and str(path) in caplog.text


def test_observe_ignores_zones_without_a_keyset():
    s = fresh()
    ta.observe_dnskey(s, ROOT, keyset(ROOT, Key().dnskey), T0)
    assert s.trust_anchors == {}


# -- refresh timing --------------------------------------------------------------------

def test_refresh_is_due_at_once_then_after_half_the_ttl_capped(managed):
    s, old, _ = managed
    assert ta.refresh_due(s, ROOT, T0) and ta.refresh_zones(s, T0) == [ROOT]
    ta.observe_dnskey(s, ROOT, keyset(ROOT, old.dnskey, ttl=172800), T0)
    assert not ta.refresh_due(s, ROOT, T0 + DAY_S - 1) and ta.refresh_due(s, ROOT, T0 + DAY_S)
    ta.observe_dnskey(s, ROOT, keyset(ROOT, old.dnskey, ttl=600), T0)
    assert ta.refresh_due(s, ROOT, T0 + 3600) and not ta.refresh_due(s, ROOT, T0 + 3599)  # at least 1 h
    ta.observe_dnskey(s, ROOT, keyset(ROOT, old.dnskey, ttl=100 * DAY_S), T0)
    assert not ta.refresh_due(s, ROOT, T0 + 15 * DAY_S - 1) and ta.refresh_due(s, ROOT, T0 + 15 * DAY_S)
    ta.refresh_failed(s, ROOT, T0)  # retry: min(1 day, TTL/10)
    assert ta.refresh_due(s, ROOT, T0 + DAY_S) and not ta.refresh_due(s, ROOT, T0 + DAY_S - 1)
    ta.store(s).refresh_time = 5000
    ta.observe_dnskey(s, ROOT, keyset(ROOT, old.dnskey), T0)
    assert ta.refresh_due(s, ROOT, T0 + 5)
    s.trust_anchors[ROOT] = []  # no published anchor (a test hierarchy without one): no refresh
    assert not ta.refresh_due(s, ROOT, T0 + 5)


def test_anchors_from_add_are_not_refreshed():
    s = fresh()
    ta.add(s, f". DS {ta.rdata_text(Key().ds())}")
    assert not ta.refresh_due(s, ROOT, T0) and ta.refresh_zones(s, T0) == []
    assert not ta.refresh_due(s, N("nothing."), T0)
