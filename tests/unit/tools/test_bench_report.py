"""tools/bench/report.py: the Markdown table, the text table and the SVG chart."""
from __future__ import annotations

import xml.etree.ElementTree as ET

from tools.bench import report


def _s(qps, cpu, p50=100.0, p99=900.0, loss=0.0, rss=None):
    return {"qps": qps, "cpu_us": cpu, "p50_us": p50, "p99_us": p99, "loss_pct": loss, "rss_mib": rss,
            "reps": 1}


SUMMARY = {
    ("kresd-1", "hit"): _s(200_000, 4.0),
    ("ours-1", "hit"): _s(50_000, 20.0),
    ("ours-2", "hit"): _s(60_000, 22.0),
    ("kresd-2", "hit"): _s(240_000, 4.2),
    ("ours-1", "miss"): _s(2_000, 500.0, p50=80_000.0, loss=1.5, rss=61.25),
    ("kresd-1", "miss"): _s(40_000, 16.0),
}


def test_markdown_rows_are_ordered_and_carry_ratios_on_our_rows():
    md = report.markdown(SUMMARY).splitlines()
    assert md[0].startswith("| workload | server | QPS | CPU/answer | p50 | p99 | loss")
    assert md[1] == "|" + "---|" * len(report.COLUMNS)
    body = [line.split(" | ") for line in md[2:]]
    assert [(r[0].strip("| "), r[1]) for r in body] == [
        ("hit", "kresd-py -f 1"), ("hit", "kresd-py -f 2"), ("hit", "kresd 5.6, 1 process"),
        ("hit", "kresd 5.6, 2 processes"), ("miss", "kresd-py -f 1"),
        ("miss", "kresd 5.6, 1 process")]
    ours1_hit, ours2_hit, kresd1_hit = body[0], body[1], body[2]
    assert ours1_hit[2] == "50.0k" and ours1_hit[3] == "20.0 µs"
    assert ours1_hit[7] == "0.25" and ours1_hit[8].startswith("5.00×")  # against kresd-1
    assert ours2_hit[7] == "0.25"  # 60k against kresd-2's 240k, not kresd-1's 200k
    assert kresd1_hit[7] == "-" and kresd1_hit[8].startswith("-")
    miss = body[4]
    assert miss[2] == "2,000" and miss[4] == "80 ms" and miss[6] == "1.50 %"
    assert miss[7] == "0.05"
    assert miss[9] == "61.2 MiB |" and ours1_hit[9] == "- |"  # RSS after that workload, last column


def test_rss_line_in_server_order():
    line = report.rss_line({"kresd-1": 20.0, "ours-1": 45.25})
    assert line == ("Worker RSS after the benchmark (largest VmRSS of the server's processes): "
                    "kresd-py -f 1: 45.2 MiB; kresd 5.6, 1 process: 20.0 MiB")
    assert report.rss_line({}) == ""


def test_text_table_has_the_same_rows_aligned():
    lines = report.text_table(SUMMARY).splitlines()
    assert len(lines) == 1 + 6
    assert lines[0].split()[:3] == ["workload", "server", "QPS"]
    col = lines[0].index("QPS")
    assert all(line[col - 2:col] == "  " for line in lines[1:])


def test_formats():
    assert report.fmt_qps(None) == "-" and report.fmt_qps(9_999) == "9,999"
    assert report.fmt_qps(271_000) == "271.0k"
    assert report.fmt_us(3.7) == "3.7 µs" and report.fmt_us(500) == "500 µs"
    assert report.fmt_us(1_500) == "1.50 ms" and report.fmt_us(None) == "-"


def test_svg_chart_is_valid_xml_with_one_bar_per_measurement_scaled_per_workload():
    svg = report.svg_chart(SUMMARY)
    root = ET.fromstring(svg)
    ns = "{http://www.w3.org/2000/svg}"
    bars = [r for r in root.iter(f"{ns}rect") if r.get("fill") != "white"]
    assert len(bars) == len(SUMMARY)
    widths = [float(b.get("width")) for b in bars]
    # hit panel: kresd-2 (240k) is the longest; miss panel: kresd-1 (40k) as long as it
    assert max(widths[:4]) == widths[3] == widths[5]
    assert widths[0] < widths[1] < widths[2] < widths[3]
    texts = " ".join(t.text or "" for t in root.iter(f"{ns}text"))
    assert "cache hits, saturating" in texts and "cache misses" in texts
    assert "0.25× kresd" in texts
    assert int(root.get("width")) >= max(float(b.get("x")) + w for b, w in zip(bars, widths))


def test_svg_chart_shows_p99_latency_for_the_fixed_load():
    svg = report.svg_chart({("ours-1", "hitlat"): _s(10_000, 50.0, p99=400.0),
                            ("kresd-1", "hitlat"): _s(10_000, 17.0, p99=40.0)})
    root = ET.fromstring(svg)
    texts = " ".join(t.text or "" for t in root.iter("{http://www.w3.org/2000/svg}text"))
    assert "p99 latency" in texts and "400 µs (10.00× kresd)" in texts


def test_svg_chart_escapes_and_survives_zero_qps():
    svg = report.svg_chart({("ours-1", "hit"): _s(0, None)}, title="a < b & c")
    root = ET.fromstring(svg)
    assert root is not None and "a &lt; b &amp; c" in svg
