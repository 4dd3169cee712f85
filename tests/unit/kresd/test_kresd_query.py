"""tools/kresd_query.py: argument and config handling (resolution itself is the core's)."""
from __future__ import annotations

import dns.flags
from click.testing import CliRunner

from kresd import log
from kresd.errors import EXIT_CONFIG
from tools import kresd_query


def invoke(*argv):
    try:
        return CliRunner().invoke(kresd_query.main, list(argv))
    finally:
        log.reset()


def test_bad_type_is_usage_error():
    assert invoke("example.", "NOSUCHTYPE").exit_code == 2
    assert invoke().exit_code == 2


def test_config_error(tmp_path):
    conf = tmp_path / "q.conf"
    conf.write_text("policy.add(1)\n")
    r = invoke("-c", str(conf), "example.")
    assert r.exit_code == EXIT_CONFIG and f"{conf}:1:" in r.output


def test_build_query():
    q = kresd_query.build_query("Example.", "aaaa", dnssec=True)
    assert q.question[0].rdtype == 28 and q.edns == 0 and q.ednsflags & dns.flags.DO
