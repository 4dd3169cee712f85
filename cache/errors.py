"""The cache library's one exception.

Owns: `CacheError`, raised when the cache can not be used (not open, opened
before a fork, a directory LMDB refuses). Everything the cache raises on
purpose is a CacheError; a value it can not read is a miss, never an error.
Must not: import anything of the daemon (kresd/) or the worker (workers/): the
cache is a library below them. The daemon re-exports this class from
kresd/errors.py and catches it at its boundaries beside its own KresdError.
"""
from __future__ import annotations


class CacheError(Exception):
    """The cache can not be used (not open, opened before a fork, bad dir)."""
