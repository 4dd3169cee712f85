"""kres-cache-gc: keep the shared cache below a usage threshold.

Owns: the periodic garbage-collection policy (usage threshold, expired first,
then soonest-expiring first), with a dry run that only reports.
Must not: define key/value formats, run on the request path (call it from a
timer or a separate process), or open the cache itself.
"""
from __future__ import annotations

from dataclasses import dataclass

from cache.api import Cache


@dataclass(frozen=True)
class GcResult:
    usage_before: float  # fraction of the map used by entry pages
    usage_after: float
    expired: int  # entries removed (or, in a dry run, that would be) as expired
    oldest: int  # entries removed as soonest expiring


def usage(cache: Cache) -> float:
    st = cache.stats()
    return st["used_bytes"] / st["map_size"] if st.get("map_size") else 0.0


def collect(cache: Cache, *, threshold: float = 0.8, fraction: float = 0.1,
            dry_run: bool = False, max_rounds: int = 20) -> GcResult:
    """If usage > threshold: drop expired entries, then the soonest-expiring `fraction`
    repeatedly until usage <= threshold (or max_rounds)."""
    before = usage(cache)
    if before <= threshold:
        return GcResult(before, before, 0, 0)
    expired = cache.expired_keys()
    if dry_run:
        return GcResult(before, before, len(expired), 0)
    n_exp = cache.delete_keys(expired)
    n_old = 0
    for _ in range(max_rounds):
        if usage(cache) <= threshold or cache.count() == 0:
            break
        n_old += cache.delete_keys(cache.soonest_expiring_keys(fraction))
    return GcResult(before, usage(cache), n_exp, n_old)
