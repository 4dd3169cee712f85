"""tools/bench/data.py: zones, query files and knotd configs of the benchmark."""
from __future__ import annotations

import json

import dns.name
import dns.rdatatype
import dns.zone

from tools.bench import data

SMALL = data.Layout(names=5000, signed_names=100)


def test_hit_set_is_1000_distinct_names_with_2_percent_cnames_and_nxdomains():
    hit = data.hit_queries()
    assert len(hit) == len(set(hit)) == 1000
    assert sum(q.startswith("c") for q in hit) == 20
    assert sum(q.startswith("nx") for q in hit) == 20
    assert all(q.endswith(".perf. A") for q in hit)
    # interleaved: the special names are not bunched at the end
    assert any(q.startswith("nx") for q in hit[:100])


def test_miss_set_never_meets_the_hit_set_or_its_cname_targets():
    hit = set(data.hit_queries())
    miss = data.miss_queries("perf.", 5000, data.MISS_FIRST)
    assert len(miss) == len(set(miss)) == 5000 - data.MISS_FIRST
    assert not hit & set(miss)
    targets = {f"a{(i * 97) % 5000}.perf. A" for i in range(20)}  # c0..c19 of the hit set
    assert not targets & set(miss)


def test_zones_parse_and_delegate_to_the_layout_addresses():
    root = dns.zone.from_text(data.root_zone(SMALL, signed=True), origin=dns.name.root, relativize=False)
    assert root.find_rdataset("perf.", "NS")[0].target == dns.name.from_text("ns.perf.")
    assert root.find_rdataset("ns.perf.", "A")[0].address == SMALL.zone_addr
    assert root.find_rdataset("ns.sperf.", "A")[0].address == SMALL.signed_addr
    unsigned = dns.zone.from_text(data.root_zone(SMALL, signed=False), origin=dns.name.root, relativize=False)
    assert unsigned.get_node("sperf.") is None
    leaf = dns.zone.from_text(data.leaf_zone("perf.", SMALL.zone_addr, 5000), origin="perf.", relativize=False)
    assert leaf.find_rdataset("a4999.perf.", "A")[0].address == "10.0.19.135"
    assert leaf.find_rdataset("c1.perf.", "CNAME")[0].target == dns.name.from_text("a97.perf.")
    assert sum(1 for _ in leaf.iterate_rdatasets(dns.rdatatype.CNAME)) == 20
    assert data.a_rdata(5) == "10.0.0.5" and data.a_rdata(70000) == "10.1.17.112"


def test_knot_conf_serves_one_zone_on_the_address(tmp_path):
    conf = data.knot_conf(tmp_path / "knot", "127.0.30.2", tmp_path / "zones", ".", "root.zone")
    assert "listen: 127.0.30.2@53" in conf
    assert f'storage: "{tmp_path / "zones"}"' in conf
    assert 'domain: "."' in conf and 'file: "root.zone"' in conf


def test_prepare_writes_once_and_again_when_the_layout_changes(tmp_path):
    logs = []
    zones = data.prepare(tmp_path, SMALL, signed=False, log=logs.append)
    assert (zones / "perf.zone").exists() and (zones / "root.zone").exists()
    miss = (tmp_path / "queries" / "miss.txt").read_text().splitlines()
    assert miss[0] == f"a{data.MISS_FIRST}.perf. A" and miss[-1] == "a4999.perf. A"
    assert len((tmp_path / "queries" / "hit.txt").read_text().splitlines()) == 1000
    assert json.loads((tmp_path / "stamp.json").read_text())["layout"]["names"] == 5000
    data.prepare(tmp_path, SMALL, signed=False, log=logs.append)
    assert len(logs) == 1  # nothing rewritten
    data.prepare(tmp_path, data.Layout(names=6000), signed=False, log=logs.append)
    assert len(logs) == 2
    assert (tmp_path / "queries" / "miss.txt").read_text().splitlines()[-1] == "a5999.perf. A"
