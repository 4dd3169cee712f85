"""Validator step: the chain of trust for a query, and the verdict on each reply.

Owns (kresd lib/layer/validate.c and lib/resolve.c trust_chain_check):
  * whether a (sub-)query wants DNSSEC: a trust anchor covers the name, no
    negative anchor stops the walk, the client did not set CD, not STUB;
  * `trust_check`: before a query is sent to a zone cut, the cut's keys: DS
    (from the trust anchor, the referral, the cache or a DS sub-query) then
    DNSKEY (a sub-query validated against the DS), or a proof that the zone is
    insecure (no DS, unsupported algorithms, negative anchor);
  * `validate`: after the iterator interpreted a reply and before anything is
    stashed: the signatures of the answer chain (wildcard expansions need a
    denial of the name), the DS of a referral or the proof that there is none,
    and the NSEC/NSEC3 proofs of negative answers; it sets the rank of every
    record to stash (SECURE, INSECURE or unvalidated) and the status of the
    result, or raises `Bogus` (the driver counts it against the server and
    tries another; SERVFAIL with the EDE when none is left);
  * the per-request signature budget (KeyTrap) and the RFC 5011 hook.
Must not: send anything itself: sub-queries go through the driver
(`Resolver._chain`, generators that yield `Send`), so the same code runs under
the daemon, the scenario replay and kresd-query.
"""
from __future__ import annotations

import logging

import dns.name
import dns.rdatatype as T
import dns.rrset

from cache.api import Rank

from ..dnssec import Status, ta
from ..dnssec.ta import closest_ta, is_negative
from ..dnssec.verify import (Budget, BudgetExceeded, Verdict, signer_of, supported_ds, verify_dnskeys,
                             verify_rrset)
from ..request import EDE, Outcome, ResolveFail
from . import aggressive
from .cache import INSECURE_RANK, SECURE_RANK, rank_status

log = logging.getLogger("kresd.valdtr")

INITIAL_RANK = Rank.AUTH
MAX_INSECURE_WALK = 6  # labels walked with DS queries to find an unsigned zone cut


class Bogus(ResolveFail):
    """Validation failed for data of `zone`."""

    def __init__(self, msg: str, ede: int = EDE.DNSSEC_BOGUS, zone: dns.name.Name | None = None,
                 server_fault: bool = True):
        super().__init__(msg, ede)
        self.zone = zone
        self.server_fault = server_fault  # the reply was bad (try another server), not the chain


def worst(a: Status, b: Status) -> Status:
    order = (Status.BOGUS, Status.INDETERMINATE, Status.INSECURE, Status.SECURE)
    return a if order.index(a) <= order.index(b) else b


def status_rank(status: Status) -> int:
    return {Status.SECURE: SECURE_RANK, Status.INSECURE: INSECURE_RANK}.get(status, INITIAL_RANK)


def proof_records(section) -> list:
    """The NSEC/NSEC3 records of a section with their RRSIGs (what a denial or a
    wildcard expansion carries to a DO client)."""
    return [rr for rr in section if rr.rdtype in (T.NSEC, T.NSEC3)
            or rr.rdtype == T.RRSIG and rr.covers in (T.NSEC, T.NSEC3)]


def find_sigs(section, name, rtype):
    for rr in section:
        if rr.rdtype == T.RRSIG and rr.covers == rtype and rr.name == name:
            return rr
    return None


class Validator:
    def __init__(self, resolver):
        self.r = resolver

    @property
    def settings(self):
        return self.r.settings

    def _now(self) -> int:
        return int(self.r.clock.time())

    # -- what wants validation ------------------------------------------------

    def wanted(self, req, name, rtype) -> bool:
        if req.cd or (req.forward is not None and req.forward.stub):
            return False
        return closest_ta(self.settings, name, rtype) is not None

    def cut_wanted(self, req, cut) -> bool:
        """kresd DNSSEC_WANT of a query at this cut (ns_fetch_cut and
        trust_chain_check): a trust anchor at or above the cut's name. Below an
        anchor that the iteration has not reached yet (an island of trust),
        replies are not validated, as kresd."""
        return self.wanted(req, cut.name, None)

    def budget(self, req) -> Budget:
        b = req.vars.get("_dnssec_budget")
        if b is None:
            b = req.vars["_dnssec_budget"] = Budget()
        return b

    def _verify(self, req, rrset, sigs, keys, zone) -> Verdict:
        return self._budgeted(req, zone, verify_rrset, rrset, sigs, keys, zone)

    def _verify_keys(self, req, zone, keys, sigs, anchors, configured) -> Verdict:
        return self._budgeted(req, zone, verify_dnskeys, zone, keys, sigs, anchors, configured=configured)

    def _budgeted(self, req, zone, check, *args, **kw) -> Verdict:
        """Run a signature check on the request's budget; over it, the request is
        bogus (KeyTrap bound), whatever server is asked next."""
        b = self.budget(req)
        try:
            return check(*args, now=self._now(), budget=b, **kw)
        except BudgetExceeded as e:
            raise Bogus(f"validation work limit: {e}", EDE.DNSSEC_BOGUS, zone, server_fault=False)
        finally:
            req.sig_checks = b.used

    # -- keys of a zone -------------------------------------------------------

    def zone_keys(self, req, zone: dns.name.Name, ds=None):
        """Generator -> (Status, DNSKEY RRset or None) for `zone`.
        SECURE: validated keys; INSECURE: proven unsigned; INDETERMINATE: no
        trust anchor covers it. Raises Bogus when the chain of trust is broken."""
        memo = req.vars.setdefault("_zone_keys", {})
        if zone in memo:
            return memo[zone]
        s = self.settings
        if closest_ta(s, zone) is None:
            return Status.INDETERMINATE, None
        pending = req.vars.setdefault("_keys_pending", set())
        if zone in pending:
            return Status.INDETERMINATE, None  # cycle: the caller proceeds unvalidated
        pending.add(zone)
        try:
            out = yield from self._zone_keys(req, zone, ds)
        finally:
            pending.discard(zone)
        memo[zone] = out
        return out

    def _zone_keys(self, req, zone, ds=None):
        s = self.settings
        cache = self.r._cache(req)
        if cache is not None:
            hit = cache.peek_rrset(zone, T.DNSKEY)
            if hit is not None and rank_status(hit.rank) is Status.SECURE:
                return Status.SECURE, hit.rrset
        configured = bool(s.trust_anchors.get(zone))
        if configured:
            anchors = list(s.trust_anchors[zone])
        elif ds:
            anchors = list(ds)
        else:
            st, anchors = yield from self.zone_ds(req, zone)
            if st is not Status.SECURE:
                return st, None
            if not anchors:
                raise Bogus(f"{zone} signs data but is no delegated zone (no DS, no NS)",
                            EDE.DNSSEC_BOGUS, zone)
        if not configured and not supported_ds(anchors):
            self.r._trace(req, "zone %s: no supported DS algorithm or digest: insecure", zone)
            return Status.INSECURE, None
        pending_ds = req.vars.setdefault("_key_prime", {})
        pending_ds[zone] = anchors
        try:
            res = yield from self.r._chain(req, zone, T.DNSKEY, key_prime=True)
        except Bogus:
            raise
        except ResolveFail as fail:
            raise Bogus(f"cannot fetch DNSKEY of {zone}: {fail}", EDE.DNSKEY_MISSING, zone,
                        server_fault=False) from None
        finally:
            pending_ds.pop(zone, None)
        keys = next((rr for rr in res.answer if rr.rdtype == T.DNSKEY and rr.name == zone), None)
        if keys is None:
            raise Bogus(f"no DNSKEY for {zone}", EDE.DNSKEY_MISSING, zone, server_fault=False)
        if res.status is Status.SECURE:
            self._observe_keys(zone, keys, find_sigs(res.answer, zone, T.DNSKEY))
            return Status.SECURE, keys  # validated by _key_prime (or before, from the cache)
        if res.status is Status.INSECURE:
            return Status.INSECURE, None
        sigs = find_sigs(res.answer, zone, T.DNSKEY)  # unvalidated, from the cache
        v = self._verify_keys(req, zone, keys, sigs, anchors, configured)
        if v.status is Status.INSECURE:
            return Status.INSECURE, None
        if v.status is not Status.SECURE:
            raise Bogus(f"DNSKEY of {zone}: {v.reason}", v.ede, zone, server_fault=False)
        self.r._trace(req, "zone %s: DNSKEY validated (%d keys)", zone, len(keys))
        self._stash_secure(req, keys, sigs)
        self._observe_keys(zone, keys, sigs)
        return Status.SECURE, keys

    def _observe_keys(self, zone, keys, sigs=None) -> None:
        """RFC 5011: a trust-anchor zone's DNSKEY set was validated."""
        if not self.settings.trust_anchors.get(zone):
            return
        try:
            ta.observe_dnskey(self.settings, zone, keys, self.r.clock.time(), sigs=sigs)
        except Exception:
            log.exception("[ta_update] RFC 5011 update of %s failed", zone)

    def _stash_secure(self, req, rrset, sigs) -> None:
        cache = self.r._cache(req)
        if cache is None:
            return
        try:
            with cache.writer() as w:
                w.stash_rrset(rrset, SECURE_RANK, sigs)
        except Exception as exc:
            log.warning("[cache] stash failed: %s", exc)

    def zone_ds(self, req, zone):
        """Generator -> (SECURE, DS rdatas) | (INSECURE, None): the DS of a zone
        from the cache or a DS sub-query validated in the parent zone."""
        cache = self.r._cache(req)
        if cache is not None:
            hit = cache.peek_rrset(zone, T.DS)
            if hit is not None:
                st = rank_status(hit.rank)
                if st is Status.SECURE:
                    return Status.SECURE, list(hit.rrset)
                if st is Status.INSECURE:
                    return Status.INSECURE, None
            neg = cache.peek_negative(zone, T.DS)
            if neg is not None and rank_status(neg.rank) is Status.INSECURE:
                return Status.INSECURE, None
            if neg is not None and rank_status(neg.rank) is Status.SECURE:
                auth = ([neg.soa] if neg.soa is not None else []) + list(neg.authority)
                return (Status.INSECURE, None) if _denies_delegated_ds(zone, auth) else (Status.SECURE, [])
        if (zone, T.DS) in req.resolving:
            return Status.INDETERMINATE, None
        req.resolving.add((zone, T.DS))
        try:
            res = yield from self.r._chain(req, zone, T.DS)
        except Bogus as b:
            raise Bogus(str(b), b.ede, b.zone, server_fault=False) from None
        except ResolveFail as fail:
            raise Bogus(f"cannot fetch DS of {zone}: {fail}", EDE.DNSSEC_BOGUS, zone,
                        server_fault=False) from None
        finally:
            req.resolving.discard((zone, T.DS))
        if res.status is Status.SECURE:
            ds = [rd for rr in res.answer if rr.rdtype == T.DS and rr.name == zone for rd in rr]
            if ds:
                return Status.SECURE, ds
            if res.outcome is Outcome.NODATA and _denies_delegated_ds(zone, res.authority):
                return Status.INSECURE, None  # a delegation without DS: the child is unsigned
            return Status.SECURE, []  # no delegation at the name: no zone cut there
        if res.status is Status.INSECURE:
            return Status.INSECURE, None
        return Status.INDETERMINATE, None

    # -- before sending: the cut's chain of trust -------------------------------

    def trust_check(self, req, q):
        """Generator: make sure q.cut knows its trust state (kresd trust_chain_check)."""
        cut = q.cut
        if cut.trust is not None or not q.want:
            return
        if is_negative(self.settings, cut.name):
            cut.trust = Status.INSECURE
            return
        if q.key_prime and q.sname == cut.name:
            return  # the DNSKEY fetch of this very zone: validated by zone_keys
        if q.stype == T.DS and q.sname == cut.name:
            return
        # a DS learnt from the validated referral names the keys (kresd's
        # zone_cut.trust_anchor); else zone_keys finds it (cache, DS sub-query)
        st, keys = yield from self.zone_keys(req, cut.name, cut.ds)
        if st is Status.INDETERMINATE:
            return  # cycle or no anchor: stays unknown, replies are checked by signer
        cut.trust, cut.keys = st, keys

    # -- after consume: the reply -----------------------------------------------

    def validate(self, req, q, c, reply):
        """Generator: check a consumed reply; set ranks and statuses, or raise Bogus."""
        from .iterate import Kind
        anchors = req.vars.get("_key_prime", {}).get(q.sname) if q.key_prime else None
        if q.cut.trust is Status.INSECURE:
            # a proven-insecure zone (kresd DNSSEC_INSECURE): nothing below it is checked
            if c.kind is Kind.REFERRAL:
                c.cut.trust = Status.INSECURE
            elif c.kind is Kind.FINAL:
                c.result.status = Status.INSECURE
                c.stash.rerank(lambda rr, r: INSECURE_RANK if r & Rank.AUTH else r, INSECURE_RANK)
            return
        if anchors is not None and c.kind is Kind.FINAL:
            self._key_prime(req, q, c, reply, anchors)
        elif c.kind is Kind.REFERRAL:
            self._referral(req, q, c, reply)
        elif c.kind is Kind.FINAL:
            yield from self._final(req, q, c, reply)

    def _key_prime(self, req, q, c, reply, anchors) -> None:
        """The DNSKEY RRset of the zone whose keys are being fetched, against
        its DS (or trust anchor): a bad one is this server's fault, so the
        driver asks another (kresd black_prime)."""
        zone = q.sname
        res = c.result
        keys = next((rr for rr in res.answer if rr.rdtype == T.DNSKEY and rr.name == zone), None)
        if keys is None:
            raise Bogus(f"no DNSKEY for {zone}", EDE.DNSKEY_MISSING, zone)
        sigs = find_sigs(reply.answer, zone, T.DNSKEY)
        configured = bool(self.settings.trust_anchors.get(zone))
        v = self._verify_keys(req, zone, keys, sigs, anchors, configured)
        if v.status is Status.BOGUS:
            raise Bogus(f"DNSKEY of {zone}: {v.reason}", v.ede, zone)
        res.status = v.status
        if v.status is Status.SECURE:
            _cap_ttl(keys, sigs, self._now())
        rank = status_rank(v.status)
        c.stash.rerank(lambda rr, r: rank if rr is keys else r)

    def _keys_for(self, req, q, signer):
        """Generator -> (Status, keys) of the zone that signed something."""
        cut = q.cut
        if cut is not None and signer == cut.name and cut.trust is Status.SECURE:
            return Status.SECURE, cut.keys
        return (yield from self.zone_keys(req, signer))

    def _referral(self, req, q, c, reply):
        cut, new = q.cut, c.cut
        if new.name == cut.name:
            return
        if cut.trust is not Status.SECURE:
            if cut.trust is Status.INSECURE:
                new.trust = Status.INSECURE
            return
        ds = next((rr for rr in reply.authority if rr.rdtype == T.DS and rr.name == new.name), None)
        if ds is not None:
            sigs = find_sigs(reply.authority, new.name, T.DS)
            v = self._verify(req, ds, sigs, cut.keys, cut.name)
            if v.status is not Status.SECURE:
                raise Bogus(f"DS of {new.name}: {v.reason}", v.ede, cut.name)
            new.ds = list(ds)
            c.stash.add(ds, SECURE_RANK, sigs)
            if not supported_ds(new.ds):
                new.trust = Status.INSECURE
            return
        proofs = self._denial_records(req, q, reply.authority, cut.name, cut.keys)
        if not proofs:
            return  # no DS and no proof: trust_check asks the parent for the DS
        mod = _denial(proofs)
        p = mod.referral_no_ds(new.name, cut.name, proofs)
        if not p.ok:
            raise Bogus(f"referral to {new.name} without DS: {p.reason}", EDE.NSEC_MISSING, cut.name)
        self.r._trace(req, "delegation %s proven insecure%s", new.name, " (opt-out)" if p.optout else "")
        new.trust = Status.INSECURE

    def _denial_records(self, req, q, section, zone, keys):
        """NSEC/NSEC3 RRsets of a section whose signatures verify with the zone's
        keys (stashed SECURE with the reply); a bad signature is bogus."""
        out = []
        for rr in section:
            if rr.rdtype not in (T.NSEC, T.NSEC3):
                continue
            sigs = find_sigs(section, rr.name, rr.rdtype)
            v = self._verify(req, rr, sigs, keys, zone)
            if v.status is not Status.SECURE:
                raise Bogus(f"{T.to_text(rr.rdtype)} {rr.name}: {v.reason}", v.ede, zone)
            out.append(rr)
        return out

    def _final(self, req, q, c, reply):
        res = c.result
        status = Status.SECURE
        no_cache = c.no_cache
        chain_status: dict[int, Status] = {}
        for rr in res.answer:
            if rr.rdtype == T.RRSIG:
                continue
            if id(rr) in no_cache:  # CNAME synthesised from a DNAME: as the DNAME
                continue
            st = yield from self._rrset_status(req, q, rr, reply)
            chain_status[id(rr)] = st
            status = worst(status, st)
        if res.outcome in (Outcome.NXDOMAIN, Outcome.NODATA):
            st = yield from self._negative(req, q, res, reply, c.last or q.sname)
            status = worst(status, st)
        elif not any(rr.rdtype != T.RRSIG for rr in res.answer):
            status = Status.INDETERMINATE
        res.status = status

        def rank(rr, old):  # of what is stashed (the driver adds the RRSIGs)
            st = chain_status.get(id(rr))
            return old if st is None or not old & Rank.AUTH else status_rank(st)
        c.stash.rerank(rank, status_rank(status))

    def _rrset_status(self, req, q, rr, reply):
        """Generator -> Status of one answer RRset (a wildcard expansion's proof
        is already in the result's authority: the driver put it there)."""
        sigs = find_sigs(reply.answer, rr.name, rr.rdtype)
        signer = signer_of(sigs)
        if signer is None or not rr.name.is_subdomain(signer):
            st = yield from self._unsigned_status(req, q, rr.name)
            if st is Status.SECURE:
                raise Bogus(f"no valid RRSIG for {rr.name} {T.to_text(rr.rdtype)}", EDE.RRSIGS_MISSING,
                            q.cut.name if q.cut else None)
            return st
        st, keys = yield from self._keys_for(req, q, signer)
        if st is not Status.SECURE:
            return st
        v = self._verify(req, rr, sigs, keys, signer)
        if v.status is not Status.SECURE:
            raise Bogus(f"{rr.name} {T.to_text(rr.rdtype)}: {v.reason}", v.ede, signer)
        _cap_ttl(rr, sigs, self._now())
        if v.labels is None:
            return Status.SECURE
        # wildcard expansion: the name itself must be proven absent
        proofs = self._denial_records(req, q, reply.authority, signer, keys)
        mod = _denial(proofs)
        p = mod.wildcard_answer(rr.name, v.labels, signer, proofs)
        if not p.ok:
            raise Bogus(f"wildcard answer {rr.name}: {p.reason}", EDE.NSEC_MISSING, signer)
        if p.status is Status.SECURE:  # RFC 8198: kept for aggressive use
            cache = self.r._cache(req)
            aggressive.remember(cache, signer, proofs, lambda x: find_sigs(reply.authority, x.name, x.rdtype), None)
            aggressive.remember_wildcard(cache, rr, sigs, v.labels)
        return Status.SECURE if p.status is Status.SECURE else Status.INSECURE

    def _unsigned_status(self, req, q, name):
        """Generator -> Status of the zone holding unsigned data at `name`: the
        cut's, unless a DS walk below the cut finds an insecure delegation."""
        cut = q.cut
        if cut is None or cut.trust is None:
            base = closest_ta(self.settings, name)
            if base is None:
                return Status.INDETERMINATE
            st, _ = yield from self.zone_keys(req, base)
        else:
            base, st = cut.name, cut.trust
        if st is not Status.SECURE or not name.is_subdomain(base):
            return st
        labels = name.relativize(base).labels if name != base else ()
        walk = base
        for lab in reversed(labels[-MAX_INSECURE_WALK:] if len(labels) > MAX_INSECURE_WALK else labels):
            walk = dns.name.Name((lab,) + walk.labels)
            dst, _ = yield from self.zone_ds(req, walk)
            if dst is Status.INSECURE:
                return Status.INSECURE
        return Status.SECURE

    def _negative(self, req, q, res, reply, last):
        """Generator -> Status of a NXDOMAIN/NODATA for `last` (proof checked)."""
        auth = reply.authority
        signed = [rr for rr in auth if rr.rdtype != T.RRSIG and find_sigs(auth, rr.name, rr.rdtype)]
        signer = None
        for rr in signed:
            signer = signer_of(find_sigs(auth, rr.name, rr.rdtype))
            if signer is not None:
                break
        if signer is None or not last.is_subdomain(signer):
            st = yield from self._unsigned_status(req, q, last)
            if st is Status.SECURE:
                raise Bogus(f"unsigned negative answer for {last}", EDE.NSEC_MISSING,
                            q.cut.name if q.cut else None)
            return st
        st, keys = yield from self._keys_for(req, q, signer)
        if st is not Status.SECURE:
            return st
        for rr in auth:
            if rr.rdtype == T.SOA:
                v = self._verify(req, rr, find_sigs(auth, rr.name, T.SOA), keys, signer)
                if v.status is not Status.SECURE:
                    raise Bogus(f"SOA {rr.name}: {v.reason}", v.ede, signer)
        proofs = self._denial_records(req, q, auth, signer, keys)
        if not proofs:
            raise Bogus(f"no NSEC/NSEC3 proof for {last}", EDE.NSEC_MISSING, signer)
        mod = _denial(proofs)
        if res.outcome is Outcome.NXDOMAIN:
            p = mod.nxdomain(last, signer, proofs)
        else:
            p = mod.nodata(last, q.stype, signer, proofs)
        if not p.ok:
            raise Bogus(f"denial of {last} {T.to_text(q.stype)}: {p.reason}", EDE.NSEC_MISSING, signer)
        if p.status is Status.SECURE:  # RFC 8198: kept for aggressive use, with the zone's SOA
            soa = next((rr for rr in auth if rr.rdtype == T.SOA and rr.name == signer), None)
            aggressive.remember(self.r._cache(req), signer, proofs, lambda x: find_sigs(auth, x.name, x.rdtype),
                                soa[0].minimum if soa else None, soa=soa,
                                soa_sigs=find_sigs(auth, signer, T.SOA) if soa else None)
        return Status.SECURE if p.status is Status.SECURE else Status.INSECURE


def _denies_delegated_ds(name, authority) -> bool:
    """Does this (already validated) DS denial show a delegation at `name`
    (NS bit without SOA, or NSEC3 opt-out)? Otherwise there is no zone cut."""
    proofs = [rr for rr in authority if rr.rdtype in (T.NSEC, T.NSEC3)]
    sigs = next((rr for rr in authority if rr.rdtype == T.RRSIG and rr.covers in (T.NSEC, T.NSEC3)), None)
    zone = signer_of(sigs)
    if not proofs or zone is None:
        return False
    p = _denial(proofs).nodata(name, T.DS, zone, proofs)
    return p.ok and p.delegation


def _denial(proofs):
    """The proof module for these records: NSEC3 when any is NSEC3."""
    from ..dnssec import nsec, nsec3
    return nsec3 if any(rr.rdtype == T.NSEC3 for rr in proofs) else nsec


def _cap_ttl(rr, sigs, now: int) -> None:
    """RFC 4035 5.3.3: TTL <= the RRSIG's original TTL and its remaining validity."""
    for rd in sigs or ():
        if rd.type_covered != rr.rdtype:
            continue
        left = (rd.expiration - now) & 0xFFFFFFFF
        cap = min(rd.original_ttl, left if left < 0x80000000 else 0)
        if rr.ttl > cap:
            rr.ttl = max(cap, 0)
        return

