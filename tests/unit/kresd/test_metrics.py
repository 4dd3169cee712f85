"""kresd/metrics.py: kresd's key flattening and names, the merge, and the
Prometheus text (HELP and TYPE for every family, the latency histogram)."""
import re

from kresd import metrics as M


def test_metric_names_follow_kresd_get_metric():
    assert M.metric_name("answer.noerror") == "answer_noerror"
    assert M.metric_name("worker.ipv4") == "worker_ipv4"
    assert M.metric_name("answer.blocked;stype=A") == 'answer_blocked{stype="A"}'
    assert M.metric_name("a.b;x=1;y=2") == 'a_b{x="1",y="2"}'


def test_instance_stats_flattens_and_prefixes():
    flat = M.instance_stats({"request.udp": 3, "answer.total": 2},
                            {"hits": 5, "map_size": 100},
                            {"queries": 3, "fastpath": {"packet_hits": 1, "backend": "c"},
                             "upstreams": {"192.0.2.1": {"srtt": 5}}, "dead": True})
    assert flat == {"request.udp": 3, "answer.total": 2, "cache.hits": 5, "cache.map_size": 100,
                    "worker.queries": 3, "worker.fastpath.packet_hits": 1}


def test_merge_sums_instances():
    assert M.merge([{"a": 1, "b": 2}, {"a": 10}]) == {"a": 11, "b": 2}


def _families(text):
    types = dict(re.findall(r"^# TYPE (\S+) (\S+)$", text, re.M))
    helps = set(re.findall(r"^# HELP (\S+) ", text, re.M))
    return types, helps


def test_render_every_family_has_help_and_type_and_namespace():
    merged = {"request.udp": 7, "answer.noerror": 5, "answer.1ms": 3, "answer.10ms": 1,
              "answer.slow": 1, "answer.sum_ms": 99, "cache.entries": 4}
    inst = [(0, 100, {"request.total": 4, "request.udp": 4}), (1, 101, {"request.total": 3, "request.udp": 3})]
    text = M.render(merged, inst, "kresd_", {"192.0.2.1": {"srtt": 12.5, "timeouts": 0, "dead": False}})
    types, helps = _families(text)
    assert set(types) == helps
    assert all(name.startswith("kresd_") for name in types)
    assert types["kresd_request_udp"] == "counter" and types["kresd_cache_entries"] == "gauge"
    assert types["kresd_latency"] == "histogram"
    assert "kresd_request_udp 7\n" in text
    assert 'kresd_latency_bucket{le="1"} 3\n' in text
    assert 'kresd_latency_bucket{le="10"} 4\n' in text
    assert 'kresd_latency_bucket{le="+Inf"} 5\n' in text
    assert "kresd_latency_count 5\n" in text
    assert "kresd_latency_sum 3013\n" in text  # 3*1 + 1*10 + 1*3000 (slow counted at 3 s, as kresd)
    assert 'kresd_instance_request_udp_total{instance="1",pid="101"} 3\n' in text
    assert 'kresd_upstream_srtt_ms{server="192.0.2.1"} 12.5\n' in text
    assert "sum_ms" not in text


def test_histogram_without_slow_band_still_has_inf():
    text = M.render({"answer.1ms": 2}, [], "")
    assert 'latency_bucket{le="+Inf"} 2\n' in text
