"""tools/kresd_query.py: argument and config handling (resolution itself is the core's)."""
from __future__ import annotations

import dns.flags
import dns.name
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
    assert invoke("-t", "NOSUCHTYPE", "example.").exit_code == 2
    assert invoke().exit_code == 2


def test_config_error(tmp_path):
    conf = tmp_path / "q.conf"
    conf.write_text("policy.add(1)\n")
    r = invoke("-c", str(conf), "example.")
    assert r.exit_code == EXIT_CONFIG and f"{conf}:1:" in r.output


def test_build_query():
    q = kresd_query.build_query("Example.", "aaaa", dnssec=True)
    assert q.question[0].rdtype == 28 and q.edns == 0 and q.ednsflags & dns.flags.DO


# -- against an in-process hierarchy (root -> cz -> nic.cz) ------------------------------

ROOT_Z = """
@ 3600 IN SOA a.root-servers.net. x. 1 1800 900 604800 86400
@ 3600 IN NS a.root-servers.net.
a.root-servers.net. 3600 IN A 198.41.0.4
cz. 3600 IN NS a.ns.cz.
a.ns.cz. 3600 IN A 192.0.2.10
"""
CZ_Z = """
@ 3600 IN SOA a.ns.cz. x. 1 1800 900 604800 300
@ 3600 IN NS a.ns.cz.
a.ns 3600 IN A 192.0.2.10
nic 3600 IN NS a.ns.nic.cz.
a.ns.nic 3600 IN A 192.0.2.20
"""
NIC_Z = """
@ 3600 IN SOA a.ns x. 1 1800 900 604800 300
@ 3600 IN NS a.ns
a.ns 3600 IN A 192.0.2.20
www.sub 3600 IN A 192.0.2.80
www.sub 3600 IN AAAA 2001:db8::80
"""


def _transport():
    from tests.unit.workers.fakenet import AuthServer, FakeNet

    net = FakeNet({"198.41.0.4": AuthServer((".", ROOT_Z)), "192.0.2.10": AuthServer(("cz.", CZ_Z)),
                   "192.0.2.20": AuthServer(("nic.cz.", NIC_Z))})

    async def query(send):
        return net(send)
    return query


def _run(tmp_path, name, rdtype="A", script=None, configs=(), config_text=None):
    from workers.settings import Settings

    q = kresd_query.build_query(name, rdtype, False)
    try:
        s = Settings()
        s.trust_anchors[dns.name.root] = []  # the fake hierarchy is unsigned: no root anchor
        return kresd_query._run(s, str(tmp_path), configs, config_text, q, script,
                                transport=_transport())
    finally:
        log.reset()


def test_script_sees_zone_cut(tmp_path):
    ok = 'assert(kres.dname2str(req:resolved().zone_cut.name) == "nic.cz.")'
    assert _run(tmp_path, "www.sub.nic.cz", script=ok) == 0
    bad = 'assert(kres.dname2str(req:resolved().zone_cut.name) == "cz.")'
    assert _run(tmp_path, "www.sub.nic.cz", script=bad) == 1


def test_script_sees_answer_packet(tmp_path):
    script = ("assert(pkt:rcode() == kres.rcode.NOERROR)\n"
              "assert(pkt:qtype() == kres.type.AAAA)\n"
              "local rr = pkt:section(kres.section.ANSWER)[1]\n"
              "assert(rr.type == kres.type.AAAA)\n"
              "assert(kres.rr2str(rr):find('2001:db8::80'))\n")
    assert _run(tmp_path, "www.sub.nic.cz", "AAAA", script=script) == 0


def test_config_text_and_errors(tmp_path, capsys):
    assert _run(tmp_path, "www.sub.nic.cz", config_text="option('NO_MINIMIZE', true)",
                script="assert(option('NO_MINIMIZE'))") == 0
    assert _run(tmp_path, "www.sub.nic.cz", config_text="nosuch()") == EXIT_CONFIG
    assert "nosuch" in capsys.readouterr().err
    assert _run(tmp_path, "nothere.nic.cz") == 1  # NXDOMAIN


def test_positional_script_and_type_option():
    assert kresd_query._split_args("AAAA", None, None) == ("AAAA", None)
    assert kresd_query._split_args("assert(true)", None, None) == ("A", "assert(true)")
    assert kresd_query._split_args("MX", "x()", "TXT") == ("TXT", "x()")
