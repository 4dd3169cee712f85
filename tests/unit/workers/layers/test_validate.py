"""The validator (workers/layers/validate.py) through Resolver.resolve() and the
sans-I/O driver, over the in-process signed hierarchy of signedzones.py with
the root's DS as the trust anchor."""
from __future__ import annotations

import dns.edns
import dns.flags
import dns.message
import dns.name
import dns.rcode
import dns.rdatatype as T
import pytest

from cache.api import Cache
from workers.layer import Layer
from workers.request import Forward
from workers.resolve import Resolver
from workers.settings import Settings
from workers.transport import drive_sync

from .. import signedzones as sz

N = dns.name.from_text


@pytest.fixture
def resolver(tmp_path):
    s = Settings()
    s.root_hints = sz.ROOT_HINTS
    s.trust_anchors = sz.trust_anchors()
    cache = Cache(str(tmp_path), 8 * 1024 * 1024)
    cache.open()
    yield Resolver(s, cache)
    cache.close()


def ask(resolver, net, name, rdtype="A", flags=0, do=True, edns=0, on_request=None):
    q = dns.message.make_query(name, rdtype, use_edns=edns, want_dnssec=do)
    q.flags |= flags
    return drive_sync(resolver.resolve(q, on_request=on_request), net)


def ask_req(resolver, net, name, rdtype="A", **kw):
    reqs = []
    a = ask(resolver, net, name, rdtype, on_request=reqs.append, **kw)
    return a, reqs[0]


def types(section):
    return [(rr.name.to_text(), T.to_text(rr.rdtype), T.to_text(rr.covers) if rr.rdtype == T.RRSIG else "")
            for rr in section]


def ede(answer):
    return [o.code for o in answer.options if isinstance(o, dns.edns.EDEOption)]


def asked(server, name, rdtype):
    return (N(name), rdtype) in [(q[0], q[1]) for q in server.queries]


def prefer(resolver, addr, other):
    """Make addr the server selection tries first (lowest smoothed RTT, no
    random exploration)."""
    resolver.selection.EPSILON = 0.0
    resolver.selection.report_rtt(addr, 0.0)
    resolver.selection.report_rtt(other, 0.1)


# -- secure answers -------------------------------------------------------------

def test_secure_answer_with_do_has_ad_and_rrsigs(resolver):
    net, _ = sz.make_net()
    a = ask(resolver, net, "www.secure.test.")
    assert a.rcode() == dns.rcode.NOERROR and a.flags & dns.flags.AD
    assert types(a.answer) == [("www.secure.test.", "A", ""), ("www.secure.test.", "RRSIG", "A")]


def test_ad_without_do_gets_ad_and_no_rrsigs(resolver):
    net, _ = sz.make_net()
    a = ask(resolver, net, "www.secure.test.", do=False, flags=dns.flags.AD)
    assert a.rcode() == dns.rcode.NOERROR and a.flags & dns.flags.AD
    assert types(a.answer) == [("www.secure.test.", "A", "")]


@pytest.mark.parametrize("edns", [0, -1])
def test_plain_query_gets_no_ad_and_no_rrsigs(resolver, edns):
    net, _ = sz.make_net()
    a = ask(resolver, net, "www.secure.test.", do=False, edns=edns)
    assert a.rcode() == dns.rcode.NOERROR and not a.flags & dns.flags.AD
    assert types(a.answer) == [("www.secure.test.", "A", "")]


def test_secure_answer_from_cache_keeps_ad(resolver):
    net, _ = sz.make_net()
    ask(resolver, net, "www.secure.test.")
    sent = net.sent
    a = ask(resolver, net, "www.secure.test.")
    assert net.sent == sent  # from the cache
    assert a.flags & dns.flags.AD
    assert types(a.answer) == [("www.secure.test.", "A", ""), ("www.secure.test.", "RRSIG", "A")]
    a = ask(resolver, net, "www.secure.test.", do=False, flags=dns.flags.AD)
    assert net.sent == sent and a.flags & dns.flags.AD and types(a.answer) == [("www.secure.test.", "A", "")]


def test_in_zone_cname_is_secure(resolver):
    net, _ = sz.make_net()
    a = ask(resolver, net, "incname.secure.test.")
    assert a.flags & dns.flags.AD
    assert [t for t in types(a.answer) if t[1] != "RRSIG"] == [("incname.secure.test.", "CNAME", ""),
                                                               ("www.secure.test.", "A", "")]


def test_cold_cache_upstream_queries_for_a_secure_name(resolver):
    net, _ = sz.make_net()
    a = ask(resolver, net, "www.secure.test.")
    assert a.flags & dns.flags.AD
    print(f"upstream queries for www.secure.test. A from a cold cache: {net.sent}")
    # priming, DNSKEY ., test. NS, DNSKEY test., secure.test. NS, DNSKEY secure.test., the A
    assert net.sent < 12


def test_ttl_capped_by_rrsig_original_ttl(resolver):
    net, servers = sz.make_net()
    a = ask(resolver, net, "ttl.secure.test.")
    assert a.flags & dns.flags.AD
    assert a.answer[0].rdtype == T.A and a.answer[0].ttl <= 300  # served with 86400
    # and so is what the cache keeps
    a = ask(resolver, net, "ttl.secure.test.", do=False)
    assert a.answer[0].ttl <= 300


# -- insecure ---------------------------------------------------------------------

def test_unsigned_delegation_is_insecure(resolver):
    net, servers = sz.make_net()
    a = ask(resolver, net, "www.insecure.test.")
    assert a.rcode() == dns.rcode.NOERROR and not a.flags & dns.flags.AD
    assert [rd.address for rd in a.answer[0]] == ["192.0.2.90"]
    # the referral's NSEC proved there is no DS: nobody was asked for it
    assert not any(q[1] == T.DS for s in servers.values() for q in s.queries)


def test_unsigned_delegation_without_proof_in_referral_asks_ds(resolver):
    net, servers = sz.make_net(wrap={sz.TEST_ADDR: sz.strip_nsec_from_referrals})
    a = ask(resolver, net, "www.insecure.test.")
    assert a.rcode() == dns.rcode.NOERROR and not a.flags & dns.flags.AD
    assert a.answer[0][0].address == "192.0.2.90"
    assert asked(servers[sz.TEST_ADDR], "insecure.test.", T.DS)


def test_cname_from_secure_to_insecure_zone_has_no_ad(resolver):
    net, _ = sz.make_net()
    a = ask(resolver, net, "cname.secure.test.")
    assert a.rcode() == dns.rcode.NOERROR and not a.flags & dns.flags.AD
    assert types(a.answer) == [("cname.secure.test.", "CNAME", ""), ("cname.secure.test.", "RRSIG", "CNAME"),
                               ("www.insecure.test.", "A", "")]


# -- bogus --------------------------------------------------------------------------

def test_bogus_signature_servfail_with_ede(resolver):
    net, servers = sz.make_net(broken="bad")
    a, req = ask_req(resolver, net, "www.broken.test.")
    assert a.rcode() == dns.rcode.SERVFAIL and not a.answer
    assert ede(a) == [6]  # DNSSEC Bogus
    assert req.bogus is not None and req.bogus[0] == N("broken.test.") and req.bogus[2] == 6
    assert asked(servers[sz.BROKEN_BAD_ADDR], "www.broken.test.", T.A)
    assert asked(servers[sz.BROKEN_GOOD_ADDR], "www.broken.test.", T.A)  # the other one too
    # bogus data is not cached as an answer: asked again, still SERVFAIL
    a = ask(resolver, net, "www.broken.test.", do=False)
    assert a.rcode() == dns.rcode.SERVFAIL


def test_bogus_server_is_left_for_a_good_one(resolver):
    net, servers = sz.make_net(broken="mixed")
    prefer(resolver, sz.BROKEN_BAD_ADDR, sz.BROKEN_GOOD_ADDR)
    a, req = ask_req(resolver, net, "www.broken.test.")
    assert asked(servers[sz.BROKEN_BAD_ADDR], "www.broken.test.", T.A)  # tried first
    assert a.rcode() == dns.rcode.NOERROR and a.flags & dns.flags.AD
    assert a.answer[0][0].address == "192.0.2.100" and req.bogus is None
    assert asked(servers[sz.BROKEN_GOOD_ADDR], "www.broken.test.", T.A)


def test_expired_signatures_servfail_ede_7(resolver):
    net, _ = sz.make_net()
    a, req = ask_req(resolver, net, "www.expired.test.")
    assert a.rcode() == dns.rcode.SERVFAIL and ede(a) == [7] and req.bogus is not None


def test_negative_trust_anchor_lets_bogus_through_without_ad(resolver):
    resolver.settings.negative_trust_anchors = [N("broken.test.")]
    net, _ = sz.make_net(broken="bad")
    a, req = ask_req(resolver, net, "www.broken.test.")
    assert a.rcode() == dns.rcode.NOERROR and not a.flags & dns.flags.AD
    assert a.answer[0][0].address == "192.0.2.100" and req.bogus is None
    # only below the anchor: the rest stays validated
    assert ask(resolver, net, "www.secure.test.").flags & dns.flags.AD


def test_cd_gets_bogus_data_unvalidated(resolver):
    net, _ = sz.make_net(broken="bad")
    a, req = ask_req(resolver, net, "www.broken.test.", flags=dns.flags.CD)
    assert a.rcode() == dns.rcode.NOERROR and not a.flags & dns.flags.AD
    assert types(a.answer) == [("www.broken.test.", "A", ""), ("www.broken.test.", "RRSIG", "A")]
    assert req.bogus is None
    # a validating client asking afterwards still gets SERVFAIL (CD data is not trusted)
    a = ask(resolver, net, "www.broken.test.")
    assert a.rcode() == dns.rcode.SERVFAIL


# -- denial of existence ---------------------------------------------------------

def test_nxdomain_with_nsec_proof(resolver):
    net, _ = sz.make_net()
    a = ask(resolver, net, "nope.secure.test.")
    assert a.rcode() == dns.rcode.NXDOMAIN and a.flags & dns.flags.AD
    auth = types(a.authority)
    assert ("secure.test.", "SOA", "") in auth and ("secure.test.", "RRSIG", "SOA") in auth
    assert ("incname.secure.test.", "NSEC", "") in auth  # covers nope.secure.test.
    assert ("incname.secure.test.", "RRSIG", "NSEC") in auth
    assert ("secure.test.", "NSEC", "") in auth  # covers *.secure.test.


def test_nodata_with_nsec_proof(resolver):
    net, _ = sz.make_net()
    a = ask(resolver, net, "www.secure.test.", "AAAA")
    assert a.rcode() == dns.rcode.NOERROR and not a.answer and a.flags & dns.flags.AD
    auth = types(a.authority)
    assert ("www.secure.test.", "NSEC", "") in auth and ("www.secure.test.", "RRSIG", "NSEC") in auth


def test_negative_answers_without_do_carry_no_nsec(resolver):
    net, _ = sz.make_net()
    a = ask(resolver, net, "nope.secure.test.", do=False, flags=dns.flags.AD)
    assert a.rcode() == dns.rcode.NXDOMAIN and a.flags & dns.flags.AD
    assert types(a.authority) == [("secure.test.", "SOA", "")]


def test_empty_non_terminal_nodata(resolver):
    net, _ = sz.make_net()
    a = ask(resolver, net, "ent.secure.test.")
    assert a.rcode() == dns.rcode.NOERROR and not a.answer and a.flags & dns.flags.AD


def test_nxdomain_whose_nsec_does_not_cover_the_name_is_bogus(resolver):
    h = sz.hierarchy()
    net, _ = sz.make_net(wrap={sz.SECURE_ADDR: sz.wrong_nsec(h.secure)})
    a = ask(resolver, net, "nope.secure.test.")
    assert a.rcode() == dns.rcode.SERVFAIL and ede(a)


def test_nxdomain_without_nsec_is_bogus(resolver):
    net, _ = sz.make_net(wrap={sz.SECURE_ADDR: sz.strip_nsec})
    a = ask(resolver, net, "nope.secure.test.")
    assert a.rcode() == dns.rcode.SERVFAIL and ede(a)


def test_wildcard_answer_with_proof_is_secure(resolver):
    net, _ = sz.make_net()
    a = ask(resolver, net, "x.wild.secure.test.")
    assert a.rcode() == dns.rcode.NOERROR and a.flags & dns.flags.AD
    assert a.answer[0][0].address == "192.0.2.81"
    auth = types(a.authority)
    assert ("*.wild.secure.test.", "NSEC", "") in auth and ("*.wild.secure.test.", "RRSIG", "NSEC") in auth


def test_cached_wildcard_answer_keeps_its_proof_without_asking_again(resolver):
    """A wildcard expansion from the cache goes to a DO client with its NSEC proof,
    rebuilt from the cached wildcard and NSEC (RFC 8198, as kresd): no upstream query."""
    net, _ = sz.make_net()
    ask(resolver, net, "x.wild.secure.test.")  # validated, cached
    sent = net.sent
    a = ask(resolver, net, "x.wild.secure.test.")
    assert net.sent == sent and a.flags & dns.flags.AD
    assert a.answer[0][0].address == "192.0.2.81"
    auth = types(a.authority)
    assert ("*.wild.secure.test.", "NSEC", "") in auth and ("*.wild.secure.test.", "RRSIG", "NSEC") in auth


def test_wildcard_answer_without_proof_is_bogus(resolver):
    net, _ = sz.make_net(wrap={sz.SECURE_ADDR: sz.strip_nsec})
    a = ask(resolver, net, "x.wild.secure.test.")
    assert a.rcode() == dns.rcode.SERVFAIL and ede(a)


# -- forwarding ----------------------------------------------------------------------

class Policy(Layer):
    name = "policy"

    def __init__(self, stub: bool):
        self.stub = stub

    def begin(self, req):
        req.forward = Forward([(sz.FORWARDER_ADDR, 53)], stub=self.stub)


def test_forward_validates(resolver):
    net, servers = sz.make_net()
    resolver.layers.append(Policy(stub=False))
    a = ask(resolver, net, "www.secure.test.")
    assert a.rcode() == dns.rcode.NOERROR and a.flags & dns.flags.AD
    assert net.sent == len(servers[sz.FORWARDER_ADDR].queries)  # nobody else was asked
    a = ask(resolver, net, "www.insecure.test.")
    assert a.rcode() == dns.rcode.NOERROR and not a.flags & dns.flags.AD


def test_forward_to_a_forwarder_with_bogus_data_servfails(resolver):
    h = sz.hierarchy()
    net, servers = sz.make_net()
    servers[sz.FORWARDER_ADDR] = sz.AuthServer(h.root, h.test, h.secure, h.insecure, h.broken_bad)
    resolver.layers.append(Policy(stub=False))
    a = ask(resolver, net, "www.broken.test.")
    assert a.rcode() == dns.rcode.SERVFAIL and ede(a) == [6]


def test_stub_does_not_validate(resolver):
    h = sz.hierarchy()
    net, servers = sz.make_net()
    servers[sz.FORWARDER_ADDR] = sz.AuthServer(h.root, h.test, h.secure, h.insecure, h.broken_bad)
    resolver.layers.append(Policy(stub=True))
    a = ask(resolver, net, "www.broken.test.")
    assert a.rcode() == dns.rcode.NOERROR and not a.flags & dns.flags.AD


# -- cache ---------------------------------------------------------------------------

def test_secure_negative_answers_from_cache_keep_ad_and_proof(resolver):
    net, _ = sz.make_net()
    first = ask(resolver, net, "nope.secure.test.")
    nodata = ask(resolver, net, "www.secure.test.", "AAAA")
    sent = net.sent
    a = ask(resolver, net, "nope.secure.test.")
    assert net.sent == sent and a.rcode() == dns.rcode.NXDOMAIN and a.flags & dns.flags.AD
    assert sorted(types(a.authority)) == sorted(types(first.authority))
    a = ask(resolver, net, "www.secure.test.", "AAAA")
    assert net.sent == sent and a.flags & dns.flags.AD
    assert sorted(types(a.authority)) == sorted(types(nodata.authority))


def test_cd_answer_in_cache_is_validated_for_the_next_client(resolver):
    """Data fetched for a CD client is not trusted as validated: a later
    validating client gets it checked (secure: AD; bogus: SERVFAIL)."""
    net, _ = sz.make_net(broken="bad")
    a = ask(resolver, net, "www.secure.test.", flags=dns.flags.CD)
    assert not a.flags & dns.flags.AD
    a = ask(resolver, net, "www.secure.test.")
    assert a.rcode() == dns.rcode.NOERROR and a.flags & dns.flags.AD
    assert ask(resolver, net, "www.broken.test.", flags=dns.flags.CD).rcode() == dns.rcode.NOERROR
    assert ask(resolver, net, "www.broken.test.").rcode() == dns.rcode.SERVFAIL


def test_later_names_of_a_zone_reuse_its_validated_keys(resolver):
    net, servers = sz.make_net()
    ask(resolver, net, "www.secure.test.")
    sent = net.sent
    a = ask(resolver, net, "ttl.secure.test.")
    assert a.flags & dns.flags.AD and net.sent == sent + 1  # only the A query itself


# -- KeyTrap (CVE-2023-50387) through the driver -----------------------------------

@pytest.mark.parametrize("name", ["www.keytrap.test.", "www.sigtrap.test."])
def test_keytrap_zone_is_bogus_within_the_request_budget(resolver, name):
    import time

    from workers.dnssec.verify import MAX_FAILS_PER_RRSET, MAX_SIG_CHECKS_PER_REQUEST
    net, _ = sz.make_net()
    ask(resolver, net, "www.secure.test.")  # the root and test. keys are in the cache
    t0 = time.perf_counter()
    a, req = ask_req(resolver, net, name)
    elapsed = time.perf_counter() - t0
    print(f"{name}: {req.sig_checks} signature checks, {elapsed * 1000:.0f} ms")
    assert a.rcode() == dns.rcode.SERVFAIL and ede(a) == [6] and req.bogus is not None
    assert 0 < req.sig_checks <= MAX_SIG_CHECKS_PER_REQUEST  # 50 keys x 50 RRSIGs would be 2500
    # the hostile RRset costs its failure cap, the honest ones (DS, DNSKEY) one check each
    assert req.sig_checks <= min(MAX_FAILS_PER_RRSET, 16) + 4
    assert elapsed < 1.0
    assert resolver.sig_checks >= req.sig_checks  # the worker-wide counter


def test_ttl_capped_by_signature_expiry(resolver):
    net, _ = sz.make_net()
    a = ask(resolver, net, "soon.secure.test.")
    assert a.flags & dns.flags.AD
    assert a.answer[0].rdtype == T.A and a.answer[0].ttl <= 600  # served with 3600


def test_dname_in_a_secure_zone_is_secure(resolver):
    net, _ = sz.make_net()
    a = ask(resolver, net, "b.dn.secure.test.")
    assert a.rcode() == dns.rcode.NOERROR and a.flags & dns.flags.AD
    assert [t for t in types(a.answer) if t[1] != "RRSIG"] == [
        ("dn.secure.test.", "DNAME", ""), ("b.dn.secure.test.", "CNAME", ""), ("b.ent.secure.test.", "A", "")]
    assert ("dn.secure.test.", "RRSIG", "DNAME") in types(a.answer)
