"""Differential test: our kresd against Debian's kresd 5.6 at the edges, unsigned hierarchy.

tools/edge_diff.py owns the probes (the plain cases; meta-queries; other
classes and opcodes; CNAME chains at kresd's limit and over it; CNAME loops;
CNAMEs to NXDOMAIN/NODATA; DNAMEs, the overflowing one included; odd labels;
NS/SOA/DS at and below cuts; some without RD; EDNS variants) and
tools/dnsdiff.py the comparison (rcode, opcode, EDNS version, AA/TC/RA/AD/CD,
answer and authority as sets, EDE codes, TTLs never above the zones').
Plain A/AAAA misses below a cached cut are answered by our cache-miss fast
path (workers/fastmiss.py), so those answers are compared too (the test
checks that it answered some).
Both resolvers get the same config (tests/e2e/resolver.py CONFIG), a fresh
cache each and the same probes in the same order; every answer must agree
except the KNOWN_DIFFERENCES below, each with its reason. A known difference
that no longer differs fails too, so the list stays true. The report
(agreement, every difference) is printed.

Resolvers (port 53): 127.0.10.20 ours, 127.0.10.21 kresd56.
"""
from __future__ import annotations

from pathlib import Path

import pytest

from tools import dnsdiff, edge_diff

from .hierarchy import zone_ttls
from .resolver import Resolver
from .test_kresd_forks import tty_json

OURS_ADDR, REF_ADDR = "127.0.10.20", "127.0.10.21"
KRESD56 = Path("/usr/sbin/kresd")

_OPCODE = ("kresd 5.6 never looks at the opcode: it resolves a message of opcode {op} as if it were a "
           "QUERY. kresd-py answers NOTIMP, as RFC 1035 4.1.1 has it for a kind of query it "
           "does not implement (BIND and Unbound do the same)")
_BADVERS = ("kresd 5.6 ignores the EDNS version and answers an EDNS 1 query as an EDNS 0 one. "
            "RFC 6891 6.1.3: a responder that does not implement the VERSION MUST answer BADVERS; "
            "kresd-py does")

#: Probe key (tools/dnsdiff.Probe.key) -> why we answer differently
KNOWN_DIFFERENCES: dict[str, str] = {
    **{f"www.glue.test. A opcode-{op}": _OPCODE.format(op=op) for op in ("IQUERY", "STATUS", "NOTIFY")},
    "www.glue.test. A opcode-UPDATE": (
        _OPCODE.format(op="UPDATE") + "; its reply carries the A record in the update "
        "message's prerequisite section, which dnspython rejects as malformed. kresd-py "
        "answers FORMERR without a question (workers/server.py: the UPDATE message does not "
        "parse as a query)"),
    "www.glue.test. A edns1": _BADVERS,
    "www.glue.test. A edns1+do": _BADVERS,
}


def _start(kind: str, binary: Path, addr: str, rundir: Path):
    if not binary.exists():
        pytest.fail(f"{kind}: {binary} does not exist (tools/install.sh installs Debian's "
                    "knot-resolver)")
    r = Resolver(binary, addr, rundir)
    try:
        r.start()
    except RuntimeError as e:
        pytest.fail(f"{kind}: {e}")
    yield r
    r.stop()
    print(r.log_tail())


@pytest.fixture(scope="module")
def ours(kresd_bin, hierarchy, tmp_path_factory):
    yield from _start("ours", kresd_bin, OURS_ADDR, tmp_path_factory.mktemp("edge-ours") / "rundir")


@pytest.fixture(scope="module")
def kresd56(hierarchy, tmp_path_factory):
    yield from _start("kresd56", KRESD56, REF_ADDR, tmp_path_factory.mktemp("edge-kresd56") / "rundir")


@pytest.mark.e2e
@pytest.mark.root
def test_answers_agree_with_kresd56(ours, kresd56):
    ttls = zone_ttls()
    results = edge_diff.run(ours.addr, kresd56.addr, lambda name, rdtype: ttls.get((name, rdtype)))
    print(dnsdiff.report(results, KNOWN_DIFFERENCES))
    unknown, stale = dnsdiff.check(results, KNOWN_DIFFERENCES)
    print(f"ours vs kresd 5.6: agree {dnsdiff.agreement(results)}; "
          f"{len(KNOWN_DIFFERENCES) - len(stale)} known differences, {len(unknown)} unknown")
    assert len(results) == len(edge_diff.probes())
    assert not unknown, "answers differ from kresd 5.6:\n" + "\n".join(
        f"{r.key} ({r.what}): " + "; ".join(r.diffs) for r in unknown)
    assert not stale, f"known differences that no longer differ (remove them): {stale}"
    # some of the answers compared came from the cache-miss fast path (workers/fastmiss.py)
    miss = tty_json(ours.rundir / "tty" / str(ours.proc.pid), "worker.stats().fastpath.miss")
    assert miss["answered"] > 0, miss
