"""DNSSEC primitives of the validator: trust anchors, signature checks, denial proofs.

Owns: the shared vocabulary of the DNSSEC modules: `Status` (the outcome of a
check, kresd's secure/insecure/bogus) and `Proof` (a denial-of-existence
verdict with its reason), plus the limits kresd 5.6 applies.
Must not: do I/O, send queries or touch the cache: these are pure functions
over dnspython objects; the validator step (workers/layers/validate.py) asks
for DS/DNSKEY sub-queries and decides ranks.

Modules:
  ta.py      trust anchors, negative trust anchors, RFC 5011 state
  verify.py  RRSIG checks against DNSKEYs/DS with a per-request work budget
  nsec.py    NSEC denial proofs (RFC 4035 5.4)
  nsec3.py   NSEC3 denial proofs (RFC 5155 8)
"""
from __future__ import annotations

import enum
from dataclasses import dataclass

# kresd lib/dnssec/nsec3.c: NSEC3 with more iterations is treated as insecure
NSEC3_MAX_ITERATIONS = 150


class Status(enum.Enum):
    SECURE = "secure"  # proven (signatures verified up to a trust anchor)
    INSECURE = "insecure"  # proven unsigned (no DS, opt-out, unknown algorithm, NTA)
    BOGUS = "bogus"  # should be signed and is not, or the proof does not hold
    INDETERMINATE = "indeterminate"  # no trust anchor covers it: nothing to check


@dataclass(frozen=True)
class Proof:
    """A denial-of-existence verdict.

    status: SECURE = proven; INSECURE = proven only with opt-out or with NSEC3
    parameters kresd refuses to check (too many iterations, unknown hash):
    the answer stands but is not secure; BOGUS = not proven (reason says why).
    """

    status: Status
    reason: str = ""
    optout: bool = False
    closest_encloser: object = None  # dns.name.Name when the proof names one
    # a NODATA for DS that shows a delegation there (NS without SOA, or opt-out):
    # the child is insecure; without it the name is simply no zone cut
    delegation: bool = False

    @property
    def ok(self) -> bool:
        return self.status is not Status.BOGUS
