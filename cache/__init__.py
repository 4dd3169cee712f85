"""The shared LMDB cache (kresd lib/cache): facade in cache.api.

Owns: re-exporting the public cache API.
Must not: open anything at import time (environments are opened after fork).
"""
from cache.api import (
    Cache,
    CachedNegative,
    CachedRRset,
    CacheError,
    Rank,
    Writer,
    is_answer_rank,
    is_usable_rank,
)

__all__ = ["Cache", "CachedNegative", "CachedRRset", "CacheError", "Rank", "Writer", "is_answer_rank",
           "is_usable_rank"]
