"""One rule for "may this rank be served as an answer", and every path obeys it.

Owns: checking, for every rank byte (hypothesis over 0..255, and all 256
exhaustively), that
  * the rule's implementations agree: C kn_rank_is_answer (native.rank_is_answer),
    its twin native/pure.py rank_is_answer, and cache.is_answer_rank, and that
    they say what kresd's kr_rank semantics say (SPEC below, written out
    independently: AUTH set, not BOGUS, no bits outside kr_rank's 0x3F);
  * the three paths that serve cached data follow it for a record really
    stashed with that rank:
      1. cache/api.py: a positive RRset of an answer rank replaces an NXDOMAIN
         of the name (a non-answer rank leaves it),
      2. workers/layers/cache.py peek(): the normal path answers from it,
      3. workers/fastpath.py -> native.answer (C): the fast path answers it;
    and the NONAUTH rule (nameserver addresses) takes any rank but BOGUS.
Must not: depend on the network.
"""
from __future__ import annotations

import itertools
import types

import dns.message
import dns.name
import dns.rdatatype as T
import dns.rrset
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import cache as cache_pkg
import native
import native.pure as pure
from cache import Cache, Rank
from workers.fastpath import FastPath
from workers.layer import Layer
from workers.layers import cache as cache_layer
from workers.request import Outcome
from workers.settings import Settings

AUTH, SECURE, BOGUS = 16, 32, 5


def SPEC(rank: int) -> bool:
    """kr_rank: bits 0-3 a state (INITIAL..INSECURE), 16 AUTH, 32 SECURE."""
    if rank > 0x3F:
        return False
    state = rank & 0x0F
    return bool(rank & AUTH) and state != BOGUS


def SPEC_NONAUTH(rank: int) -> bool:
    return rank <= 0x3F and rank & 0x0F != BOGUS


def test_rank_values_are_the_c_ones():
    lib = native._native.lib
    for r in Rank:
        assert getattr(lib, f"KN_RANK_{r.name}") == int(r)


@settings(max_examples=300, deadline=None)
@given(st.integers(0, 255))
def test_rule_implementations_agree(rank):
    assert native.BACKEND == "c"
    want = SPEC(rank)
    assert native.rank_is_answer(rank) is want
    assert pure.rank_is_answer(rank) is want
    assert cache_pkg.is_answer_rank(rank) is want
    assert cache_pkg.is_answer_rank(Rank(rank)) is want
    assert cache_pkg.is_usable_rank(rank, nonauth=False) is want
    assert cache_pkg.is_usable_rank(rank, nonauth=True) is SPEC_NONAUTH(rank)


class _Clock:
    now = 1_700_000_000.0

    def time(self):
        return self.now

    def monotonic(self):
        return 0.0


class _Consent(Layer):
    def fast_ok(self, pq):
        return True


@pytest.fixture(scope="module")
def paths(tmp_path_factory):
    clock = _Clock()
    c = Cache(str(tmp_path_factory.mktemp("rank")), 16 << 20, clock=clock.time)
    c.open()
    resolver = types.SimpleNamespace(cache=c, layers=[_Consent()])
    fast = FastPath(resolver, Settings(), clock)
    yield c, fast
    c.close()


_seq = itertools.count()


def _paths_for(c: Cache, fast: FastPath, rank: int) -> dict:
    """Stash records of `rank` under fresh names; what each path does with them."""
    base = dns.name.from_text(f"r{rank}-{next(_seq)}.rank.test.")
    soa = dns.rrset.from_text("rank.test.", 300, "IN", "SOA", "ns. host. 1 2 3 4 300")
    with c.writer() as w:  # an NXDOMAIN first (rank INITIAL|AUTH) ...
        w.stash_negative(base, 0, "NXDOMAIN", soa, [], Rank.INITIAL | Rank.AUTH)
    with c.writer() as w:  # ... then data of `rank` at the same name
        w.stash_rrset(dns.rrset.from_text(base, 300, "IN", "A", "192.0.2.1"), rank)
        w.stash_negative(base, T.TXT, "NODATA", soa, [], rank)
    api_replaced_nx = c.peek_negative(base, T.MX) is None
    normal = cache_layer.peek(c, base, T.A)
    normal_nonauth = cache_layer.peek(c, base, T.A, nonauth=True)
    neg = cache_layer.peek(c, base, T.TXT)
    wire = dns.message.make_query(base, T.A).to_wire()
    fast_wire = fast(wire)
    return {
        "api": api_replaced_nx,
        "normal": normal is not None and normal.outcome is Outcome.ANSWER,
        "normal_negative": neg is not None and neg.outcome is Outcome.NODATA,
        "fast": fast_wire is not None,
        "nonauth": normal_nonauth is not None and normal_nonauth.outcome is Outcome.ANSWER,
    }


@settings(max_examples=120, deadline=None)
@given(st.integers(0, 255))
def test_three_paths_follow_the_rule(paths, rank):
    c, fast = paths
    got = _paths_for(c, fast, rank)
    want = SPEC(rank)
    assert got == {"api": want, "normal": want, "normal_negative": want, "fast": want,
                   "nonauth": SPEC_NONAUTH(rank)}, rank


def test_three_paths_every_rank(paths):
    c, fast = paths
    disagree = {}
    for rank in range(256):
        got = _paths_for(c, fast, rank)
        want = {"api": SPEC(rank), "normal": SPEC(rank), "normal_negative": SPEC(rank),
                "fast": SPEC(rank), "nonauth": SPEC_NONAUTH(rank)}
        if got != want:
            disagree[rank] = got
    assert not disagree
    # both outcomes really happen on every path
    assert sum(SPEC(r) for r in range(256)) == 30
