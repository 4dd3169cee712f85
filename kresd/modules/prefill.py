"""prefill: kresd 5.6's module that loads the root zone into the cache.

Owns: the configuration (`prefill.config({['.'] = {url = 'file:///...',
interval = 86400}})`, or `file = '/path'` instead of `url`), parsing the zone
file (dnspython), its verification as kresd's zone import (daemon/zimport.c)
does it, the import into the shared cache, and the refresh timer.

As kresd: only the root zone can be configured (same messages); `interval`
is at least 3600 s; the records are stored as if they came from an
authoritative answer arriving at the file's mtime (inception = mtime, so the
remaining TTL is the record's TTL, clamped by cache.max_ttl, minus the file's
age); the zone's own data gets rank AUTH|SECURE when a trust anchor covers
the root (the DNSKEY is checked against it and every authoritative RRset
against its RRSIGs: one failure fails the whole import) and AUTH|INSECURE
without trust anchors; the delegations and glue below the root get rank
OMIT (non-authoritative: usable for zone cuts, never an answer). NSEC/NSEC3
go to the aggressive-cache index, only when validated (kresd's stash skips
unvalidated NSEC). $INCLUDE is refused.
Differences, chosen: HTTPS download is not available in kresd-py (no
internet here): an https:// URL is refused with an error saying so, and the
file is read from `file://` (kresd's `ca_file` is accepted and unused). kresd
imports in every process; here only worker 0 does (the LMDB cache is shared,
so one import serves all forks), and it then bumps the cache generation so
that every fork drops its packet cache (workers/fastpath.py) and answers
from the imported data at once. The file is re-read every `interval`
seconds only when its mtime changed. The whole zone is written in one
transaction: a failed import writes nothing.
Cost: dnspython parses a zone of the real root's size (~28k records) in
~3.5 s on this machine, and the write takes ~1 s more (kresd: well under
1 s). The parse and the verification run in a thread of worker 0 (its loop
keeps answering, more slowly, as the thread holds the GIL while parsing);
only the write, one LMDB transaction, runs on the loop.
Must not: block the request path longer than one import (it runs on a loop
timer, never inside a request), or import anything but the root zone.
"""
from __future__ import annotations

import os
import threading
import time
import urllib.parse
from dataclasses import dataclass
from typing import Any

import dns.exception
import dns.name
import dns.rdataclass
import dns.rdatatype
import dns.rrset
import dns.zone

from cache.api import Rank
from kresd import log
from kresd.bindings.bridge import LuaUsage
from kresd.errors import KresdError
from workers.dnssec import Status
from workers.dnssec import ta as _ta
from workers.dnssec import verify as _verify

from .registry import Module, builtin

G = log.Group.PREFILL
T = dns.rdatatype.RdataType
ROOT = dns.name.root
DEFAULT_INTERVAL = 86400  # kresd rz_default_interval
INTERVAL_MIN = 3600  # kresd rz_interval_min
ERROR_INTERVAL = 600  # kresd rz_import_error_interval: retry after a failed import
FIRST_RETRY = 1  # kresd retries a first failed import after 1 s
NOT_OPEN_RETRY = 1  # the cache is not open yet (the config runs before it opens)
POLL = 0.1  # seconds between looks at a running parse
NSEC_TYPES = (T.NSEC, T.NSEC3)
SIG_BUDGET = 10 ** 9  # one import may verify every signature of the zone


class PrefillError(KresdError):
    """The zone file could not be read, parsed or verified."""


@dataclass(frozen=True)
class Imported:
    rrsets: int
    records: int
    secure: bool


# -- configuration ---------------------------------------------------------------

def zone_path(zone_cfg: Any) -> str:
    """The local file of a per-zone config table: `file = path` or
    `url = 'file:///path'`; an http(s) URL is refused with a clear message."""
    if not isinstance(zone_cfg, dict):
        raise LuaUsage("[prefil] configuration must be in table {owner name = {per-zone config}}")
    path, url = zone_cfg.get("file"), zone_cfg.get("url")
    if path is not None and url is not None:
        raise LuaUsage("[prefil] give either url or file, not both")
    if path is None:
        if not isinstance(url, str):
            raise LuaUsage("[prefil] option url must contain a file:// URL of a zone file "
                           "(or give file = '/path/to/root.zone')")
        scheme = url.split(":", 1)[0].lower() if ":" in url else ""
        if scheme in ("https", "http"):
            raise LuaUsage(f"[prefil] fetching the zone over {scheme.upper()} is not available in "
                           f"kresd-py: download it yourself and use url = 'file:///path/to/root.zone' "
                           f"(or file = '/path/to/root.zone')")
        if scheme != "file":
            raise LuaUsage("[prefil] option url must contain a file:// URL of a zone file")
        parts = urllib.parse.urlsplit(url)
        if parts.netloc not in ("", "localhost"):
            raise LuaUsage(f"[prefil] file:// URL with a host ({parts.netloc}) is not supported")
        path = urllib.parse.unquote(parts.path)
    if not isinstance(path, str) or not path:
        raise LuaUsage("[prefil] option file must be a path to a zone file")
    return path


def interval_of(zone_cfg: dict) -> int:
    value = zone_cfg.get("interval")
    if value is None:
        return DEFAULT_INTERVAL
    try:
        value = int(float(value))
    except (TypeError, ValueError):
        raise LuaUsage("[prefil] option interval must be a number of seconds") from None
    if value < INTERVAL_MIN:
        raise LuaUsage(f"[prefil] refresh interval {value} s is too short, "
                       f"minimal interval is {INTERVAL_MIN} s")
    return value


# -- parsing and import ----------------------------------------------------------

def parse_zone(path: str) -> dns.zone.Zone:
    """The root zone in `path` (absolute names; SOA and NS at the apex required)."""
    try:
        zone = dns.zone.from_file(path, origin=ROOT, relativize=False, allow_include=False)
    except OSError as exc:
        raise PrefillError(f"error opening zone file `{path}`: {exc.strerror or exc}") from None
    except dns.zone.NoSOA:
        raise PrefillError(f"zone file `{path}` doesn't contain SOA record") from None
    except dns.zone.NoNS:
        raise PrefillError(f"zone file `{path}` has no NS record at the apex") from None
    except (dns.exception.DNSException, ValueError, UnicodeError) as exc:
        raise PrefillError(f"error parsing zone file `{path}`: {exc}") from None
    if zone.origin != ROOT:
        raise PrefillError(f"zone file `{path}` is not the root zone")
    return zone


def _rrsets(zone: dns.zone.Zone):
    """(rrset, its RRSIG RRset or None) for every RRset but the RRSIGs."""
    for name, node in zone.nodes.items():
        sigs = {rds.covers: rds for rds in node.rdatasets if rds.rdtype == T.RRSIG}
        for rds in node.rdatasets:
            if rds.rdtype == T.RRSIG:
                continue
            rrset = dns.rrset.from_rdata_list(name, rds.ttl, list(rds))
            sig = sigs.get(rds.rdtype)
            yield rrset, (dns.rrset.from_rdata_list(name, sig.ttl, list(sig)) if sig else None)


def _is_auth(name: dns.name.Name, rtype: int, cuts: set) -> bool:
    """kresd zi_rrset_import: data at or below a delegation is not the zone's,
    except DS/NSEC/NSEC3 on the cut itself (parent side)."""
    n = name
    while n != ROOT:
        if n in cuts:
            return n == name and rtype in (T.DS, T.NSEC, T.NSEC3)
        n = n.parent()
    return True


def _keys(zone: dns.zone.Zone, settings, stamp: int) -> list | None:
    """The root's validated DNSKEYs, or None when no trust anchor covers the
    root (an insecure import, as kresd's kr_ta_closest() says)."""
    if _ta.closest_ta(settings, ROOT, T.DNSKEY) != ROOT:
        return None
    anchors = [rd for rrset in _ta.anchors(settings, ROOT) for rd in rrset]
    if not anchors:
        raise PrefillError("no DS found for `.`, fail")
    dnskey = zone.get_rdataset(ROOT, T.DNSKEY)
    if dnskey is None:
        raise PrefillError("no DNSKEY found for `.`, fail")
    sigs = zone.get_rdataset(ROOT, T.RRSIG, T.DNSKEY)
    if sigs is None:
        raise PrefillError("no RRSIGs for DNSKEY found for `.`, fail")
    keys = dns.rrset.from_rdata_list(ROOT, dnskey.ttl, list(dnskey))
    verdict = _verify.verify_dnskeys(ROOT, keys, list(sigs), anchors, stamp,
                                     _verify.Budget(SIG_BUDGET), configured=True)
    if verdict.status != Status.SECURE:
        raise PrefillError(f"failed to validate DNSKEY for `.`: {verdict.reason}")
    return [k for k in keys if _verify.key_usable(k)]


@dataclass
class Plan:
    """A verified zone, ready to write: (rrset, rank, its RRSIGs) in order."""

    rrsets: list
    soa_min: int | None
    secure: bool


def plan_zone(zone: dns.zone.Zone, settings, stamp: int) -> Plan:
    """Verify `zone` (if a trust anchor covers it) and rank its RRsets, as
    arrived at `stamp` (Unix time). CPU only, no I/O: it may run in a thread.
    Raises PrefillError when the zone does not validate."""
    keys = _keys(zone, settings, stamp)
    budget = _verify.Budget(SIG_BUDGET)
    cuts = {name for name, node in zone.nodes.items()
            if name != ROOT and node.get_rdataset(dns.rdataclass.IN, T.NS) is not None}
    soa = zone.get_rdataset(ROOT, T.SOA)
    plan = []
    for rrset, sigs in _rrsets(zone):
        if not _is_auth(rrset.name, rrset.rdtype, cuts):
            plan.append((rrset, Rank.OMIT, None))
            continue
        if keys is not None:
            verdict = _verify.verify_rrset(rrset, list(sigs) if sigs else [], keys, ROOT, stamp, budget)
            if verdict.status != Status.SECURE:
                raise PrefillError(f"validation failed for {rrset.name} "
                                   f"{dns.rdatatype.to_text(rrset.rdtype)}: {verdict.reason}")
        plan.append((rrset, Rank.AUTH | (Rank.SECURE if keys is not None else Rank.INSECURE), sigs))
    return Plan(plan, soa[0].minimum if soa is not None else None, keys is not None)


def write_plan(cache, plan: Plan, stamp: int) -> Imported:
    """Write a planned zone to `cache` in one transaction."""
    records = 0
    with cache.writer() as w:
        for rrset, rank, sigs in plan.rrsets:
            records += len(rrset)
            if rrset.rdtype in NSEC_TYPES:
                if rank & Rank.SECURE:  # kresd stashes only validated NSEC*
                    w.stash_nsec(ROOT, rrset, rank, sigs, plan.soa_min, inception=stamp)
                continue
            w.stash_rrset(rrset, rank, sigs, inception=stamp)
    return Imported(rrsets=len(plan.rrsets), records=records, secure=plan.secure)


def import_zone(cache, zone: dns.zone.Zone, settings, stamp: int) -> Imported:
    """Verify `zone` and write it to `cache` in one transaction (plan_zone,
    write_plan). Raises PrefillError and writes nothing when it does not validate."""
    return write_plan(cache, plan_zone(zone, settings, stamp), stamp)


class _Job:
    """parse_zone + plan_zone of one file version in a daemon thread. dnspython
    holds the GIL while it parses, so the loop answers more slowly meanwhile,
    but it answers; only write_plan (about a quarter of the time) blocks it."""

    def __init__(self, path: str, mtime: float, settings):
        self.path, self.mtime, self.settings = path, mtime, settings
        self.plan: Plan | None = None
        self.error: Exception | None = None
        self.started = time.monotonic()
        self.thread = threading.Thread(target=self._run, name="prefill", daemon=True)

    def _run(self) -> None:
        try:
            self.plan = plan_zone(parse_zone(self.path), self.settings, int(self.mtime))
        except (OSError, PrefillError) as exc:
            self.error = exc
        except Exception as exc:  # noqa: BLE001 - reported like a bad file, never lost in the thread
            self.error = PrefillError(f"{type(exc).__name__}: {exc}")


# -- the module ------------------------------------------------------------------

@builtin
class Prefill(Module):
    name = "prefill"

    def __init__(self, ctx):
        super().__init__(ctx)
        self.path: str | None = None
        self.interval = DEFAULT_INTERVAL
        self.ca_file: str | None = None
        self.mtime: float | None = None  # of the file last imported
        self.imported: Imported | None = None
        self.failures = 0
        self._timer = None
        self._job: _Job | None = None  # a parse + verification running in a thread

    def config(self, arg: Any = None) -> Any:
        if arg is None:
            return None  # e.g. just modules = { 'prefill' }
        if not isinstance(arg, dict):
            raise LuaUsage("[prefil] configuration must be in table {owner name = {per-zone config}}")
        root_cfg = None
        for owner, zone_cfg in arg.items():
            if owner != ".":
                raise LuaUsage("[prefil] only root zone can be imported at the moment")
            root_cfg = zone_cfg
        if root_cfg is None:
            raise LuaUsage("[prefil] this module version requires configuration for root zone")
        path = zone_path(root_cfg)
        self.interval = interval_of(root_cfg)
        self.ca_file = root_cfg.get("ca_file")
        if not os.path.isabs(path):  # kresd's relative names are relative to the rundir
            path = os.path.abspath(path)
        self.path, self.mtime, self.failures = path, None, 0
        self._arm(0)  # start now (after the config, on the loop)
        return None

    def _arm(self, delay: float) -> None:
        sched = self.ctx.scheduler
        if sched is None:
            return
        if self._timer is not None:
            sched.cancel(self._timer)
        self._timer = sched.call_later(delay, self.tick)

    def deinit(self) -> None:
        if self._timer is not None and self.ctx.scheduler is not None:
            self.ctx.scheduler.cancel(self._timer)
        self._timer = None
        self._job = None  # a running parse finishes in its daemon thread, unused

    def tick(self) -> None:
        """The timer: if the file changed, parse and verify it in a thread (the
        loop keeps answering), then write it from the loop; arm the next check."""
        self._timer = None
        if self.path is None:
            return
        if self.ctx.worker.get("id", 0) != 0:
            log.debug(G, "worker 0 imports the root zone into the shared cache")
            return
        cache = self.ctx.cache
        if cache is None or not getattr(cache, "is_open", False):
            self._arm(NOT_OPEN_RETRY)
            return
        if self._job is not None:  # a preparation is running: wait for it
            self._poll(cache)
            return
        try:
            mtime = self._changed()
        except OSError as exc:
            self._arm(self._failed(exc))
            return
        if mtime is None:
            self._arm(self.interval)
            return
        job = self._job = _Job(self.path, mtime, self.ctx.settings)
        job.thread.start()
        self._arm(POLL)

    def _poll(self, cache) -> None:
        job = self._job
        if job.thread.is_alive():
            self._arm(POLL)
            return
        self._job = None
        if job.error is not None:
            self._arm(self._failed(job.error))
            return
        self._arm(self._commit(cache, job.mtime, job.plan, job.started))

    def _changed(self) -> float | None:
        """The file's mtime when it changed since the last import, else None."""
        mtime = os.stat(self.path).st_mtime
        if mtime == self.mtime:
            log.info(G, "root zone file %s unchanged, next check in %d s", self.path, self.interval)
            return None
        if mtime > time.time():
            log.warning(G, "zone file `%s` comes from future", self.path)
        return mtime

    def _failed(self, exc: Exception) -> float:
        msg = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        self.failures += 1
        delay = FIRST_RETRY if self.failures == 1 else ERROR_INTERVAL
        log.error(G, "root zone import failed (%s), retry in %d s", msg, delay)
        return delay

    def _commit(self, cache, mtime: float, plan: Plan, t0: float) -> float:
        done = write_plan(cache, plan, int(mtime))
        self.mtime, self.imported, self.failures = mtime, done, 0
        generation = getattr(cache, "generation", None)
        if generation is not None:
            generation.bump()  # every fork drops its packet cache
        log.info(G, "root zone imported from %s: %d records in %d RRsets (%s) in %.3f s, "
                    "next check in %d s", self.path, done.records, done.rrsets,
                 "validated" if done.secure else "not validated: no trust anchor",
                 time.monotonic() - t0, self.interval)
        return self.interval

    def lua_api(self) -> dict:
        return {"config": self.config}

    def lua_get(self, key: Any) -> Any:
        if key == "imported":
            return self.imported.records if self.imported else 0
        raise KeyError(key)
