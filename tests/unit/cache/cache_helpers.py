"""Small RRset builders for the cache tests (imported as a plain module)."""
from __future__ import annotations

import dns.name
import dns.rrset


def n(text: str) -> dns.name.Name:
    return dns.name.from_text(text)


def rrset(owner: str, ttl: int, rtype: str, *rdatas: str) -> dns.rrset.RRset:
    return dns.rrset.from_text(owner, ttl, "IN", rtype, *rdatas)


def soa(zone: str = "example.org.", ttl: int = 3600, minimum: int = 300) -> dns.rrset.RRset:
    return rrset(zone, ttl, "SOA", f"ns1.{zone} host.{zone} 2024010101 7200 3600 1209600 {minimum}")


def rrsig(owner: str, covered: str, ttl: int = 300) -> dns.rrset.RRset:
    return rrset(owner, ttl, "RRSIG",
                 f"{covered} 13 2 {ttl} 20300101000000 20200101000000 12345 example.org. "
                 "dGVzdHNpZ25hdHVyZWRhdGE=")
