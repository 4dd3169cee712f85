"""kresd-query, the installed one-shot resolver, against the knotd hierarchy.

The seed example of issue 3 runs literally: a Lua script gets `req` and checks
the zone cut of the last query (www.sub.nic.cz. lives in nic.cz., no cut at sub).
"""
from __future__ import annotations

import subprocess

import pytest

pytestmark = [pytest.mark.e2e, pytest.mark.root]

CONFIG = """
modules.load('hints > iterate')
trust_anchors.remove('.')
option('ALLOW_LOCAL', true)
hints.root({['a.root-servers.net.'] = '127.0.10.2'})
"""


def kresd_query(kresd_bin, tmp_path, *args):
    conf = tmp_path / "query.conf"
    conf.write_text(CONFIG)
    exe = kresd_bin.parent / "kresd-query"
    return subprocess.run([str(exe), "-c", str(conf), *args], cwd=tmp_path, capture_output=True,
                          text=True, timeout=60)


def test_seed_example_zone_cut(hierarchy, kresd_bin, tmp_path):
    ok = kresd_query(kresd_bin, tmp_path, "www.sub.nic.cz",
                     'assert(kres.dname2str(req:resolved().zone_cut.name) == "nic.cz.")')
    assert ok.returncode == 0, ok.stdout + ok.stderr
    wrong = kresd_query(kresd_bin, tmp_path, "www.sub.nic.cz",
                        'assert(kres.dname2str(req:resolved().zone_cut.name) == "sub.nic.cz.")')
    assert wrong.returncode != 0, "a failing assertion must fail the command"


def test_answer_printed_like_dig(hierarchy, kresd_bin, tmp_path):
    r = kresd_query(kresd_bin, tmp_path, "www.sub.nic.cz", "A")
    assert r.returncode == 0, r.stdout + r.stderr
    assert "192.0.2.10" in r.stdout and "NOERROR" in r.stdout
    nx = kresd_query(kresd_bin, tmp_path, "nothing.nic.cz", "A")
    assert nx.returncode != 0 and "NXDOMAIN" in nx.stdout
