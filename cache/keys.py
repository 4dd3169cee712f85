"""Cache key format: the single specification (CACHE_KEY_DEF) and its pure-Python twin.

Owns: how a (name, tag, type) triple becomes an LMDB key, and the subtree prefix
used by `cache.clear('*.name')`. native/key.c builds the same bytes in C; a
hypothesis test (tests/property/test_native_keys.py) checks that both agree.
Must not: touch LMDB or know about entries (cache/entry.py owns values).

CACHE_KEY_DEF (format version FORMAT_VERSION; bump it on any change here):

  lookup format  lf(name):
      the labels of the name, lower-cased (ASCII A-Z only), in reverse order
      (TLD first), joined with a single 0x00 byte; the root name is b"".
      Inside a label, byte 0x00 is written as 0x01 0x01 and byte 0x01 as
      0x01 0x02, so the separator stays unambiguous and the byte order of
      keys stays the canonical DNS order of names (RFC 4034 6.1).
      "www.Example.ORG." -> b"org\\x00example\\x00www"

  exact key      lf(name) + b"\\x00" + TAG (1 byte) + TYPE (2 bytes, big endian)
      TAG is an upper-case ASCII letter. Upper-case letters never occur in
      lf(), so a TAG byte right after the terminating 0x00 can not be mistaken
      for the first byte of a child label.
        b"E"  an RRset of TYPE (positive data, glue included, told apart by rank)
        b"N"  a negative answer (NODATA) for TYPE at the name
        b"X"  NXDOMAIN for the name (TYPE = 0)

  subtree prefix lf(name) + b"\\x00" for a non-root name (matches the name itself
      and everything below it); b"" for the root.

Maximum key length: a 255-byte wire name has at most 254 bytes of label data
and separators; escaping can double label bytes, so keys are below 600 bytes,
within LMDB's 511-byte default max key size only for names without 0x00/0x01
bytes. Names whose key would exceed MAX_KEY_LEN are not cached.
"""
from __future__ import annotations

import struct

import dns.name

# The byte-level twin lives below the cache, in native/ (C and its twins see
# only bytes; the arrow points down): kn_cache_key and native/pure.py build the
# lookup format specified here.
from native import MAX_KEY_LEN  # noqa: F401  (CACHE_KEY_DEF: 511, LMDB's default max key size)
from native.pure import key_from_wire, lf_from_wire, lf_labels  # noqa: F401  (re-export)

FORMAT_VERSION = 1  # CACHE_KEY_DEF

TAG_RRSET = b"E"
TAG_NODATA = b"N"
TAG_NXDOMAIN = b"X"


def lf(name: dns.name.Name) -> bytes:
    """Lookup format of a name (CACHE_KEY_DEF)."""
    return lf_labels(name.labels)


def key(name: dns.name.Name, tag: bytes, rtype: int) -> bytes:
    """Exact key (CACHE_KEY_DEF). Raises ValueError if longer than MAX_KEY_LEN."""
    k = lf(name) + b"\x00" + tag + struct.pack("!H", rtype)
    if len(k) > MAX_KEY_LEN:
        raise ValueError("cache key too long")
    return k


def subtree_prefix(name: dns.name.Name) -> bytes:
    """Prefix of every key at or below name (CACHE_KEY_DEF)."""
    base = lf(name)
    return base + b"\x00" if base else b""
