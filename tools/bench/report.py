"""The benchmark's report: a text table, a Markdown table and an SVG bar chart.

Owns: formatting the summary of metrics.summarize() (one row per workload and
server, with the ratio of our QPS and CPU per answer to Debian's kresd, and the
largest VmRSS of the server's processes after that workload), the line of
worker RSS after the benchmark per server (metrics.rss_after()), and a
hand-written SVG chart (QPS per workload; p99 latency at the fixed load) that can be pasted into a report.
Must not: measure anything or read files.
"""
from __future__ import annotations

from html import escape

from tools.bench.metrics import ratio, reference_of

WORKLOAD_TITLES = {
    "hit": "cache hits, saturating",
    "hitlat": "cache hits at a fixed offered load",
    "miss": "cache misses (unique names)",
    "vmiss": "validated misses (signed zone)",
}
CONFIG_TITLES = {
    "ours-1": "kresd-py -f 1",
    "ours-2": "kresd-py -f 2",
    "kresd-1": "kresd 5.6, 1 process",
    "kresd-2": "kresd 5.6, 2 processes",
}
COLUMNS = ("workload", "server", "QPS", "CPU/answer", "p50", "p99", "loss",
           "QPS vs kresd", "CPU vs kresd", "RSS")


def fmt_qps(v: float | None) -> str:
    if v is None:
        return "-"
    return f"{v / 1000:.1f}k" if v >= 10_000 else f"{v:,.0f}"


def fmt_us(v: float | None) -> str:
    if v is None:
        return "-"
    if v >= 10_000:
        return f"{v / 1000:.0f} ms"
    if v >= 1000:
        return f"{v / 1000:.2f} ms"
    return f"{v:.1f} µs" if v < 100 else f"{v:.0f} µs"


def fmt_mib(v: float | None) -> str:
    return "-" if v is None else f"{v:.1f} MiB"


def fmt_ratio(v: float | None, suffix: str = "") -> str:
    return "-" if v is None else f"{v:.2f}{suffix}"


def ordered(keys, order) -> list[str]:
    return sorted(set(keys), key=lambda k: (order.index(k) if k in order else len(order), k))


def rows(summary: dict) -> list[list[str]]:
    """Table rows in workload order, then server order; the ratios only on our rows."""
    configs = ordered((c for c, _ in summary), list(CONFIG_TITLES))
    workloads = ordered((w for _, w in summary), list(WORKLOAD_TITLES))
    out = []
    for w in workloads:
        for c in configs:
            s = summary.get((c, w))
            if s is None:
                continue
            ref = summary.get((reference_of(c, configs), w)) if reference_of(c, configs) else None
            q_ratio = ratio(s["qps"], ref["qps"]) if ref else None
            cpu_ratio = ratio(s["cpu_us"], ref["cpu_us"]) if ref else None
            out.append([w, CONFIG_TITLES.get(c, c), fmt_qps(s["qps"]), fmt_us(s["cpu_us"]),
                        fmt_us(s["p50_us"]), fmt_us(s["p99_us"]),
                        "-" if s["loss_pct"] is None else f"{s['loss_pct']:.2f} %",
                        fmt_ratio(q_ratio), fmt_ratio(cpu_ratio, "×"), fmt_mib(s.get("rss_mib"))])
    return out


def rss_line(rss: dict[str, float]) -> str:
    """'Worker RSS after the benchmark (...): kresd-py -f 1: 41.0 MiB; ...' in
    server order; '' without readings."""
    if not rss:
        return ""
    parts = [f"{CONFIG_TITLES.get(c, c)}: {fmt_mib(rss[c])}" for c in ordered(rss, list(CONFIG_TITLES))]
    return "Worker RSS after the benchmark (largest VmRSS of the server's processes): " + "; ".join(parts)


def markdown(summary: dict) -> str:
    lines = ["| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    lines += ["| " + " | ".join(r) + " |" for r in rows(summary)]
    return "\n".join(lines) + "\n"


def text_table(summary: dict) -> str:
    table = [list(COLUMNS)] + rows(summary)
    widths = [max(len(r[i]) for r in table) for i in range(len(COLUMNS))]
    return "\n".join("  ".join(cell.ljust(widths[i]) for i, cell in enumerate(r)).rstrip()
                     for r in table) + "\n"


PALETTE = {"ours-1": "#1f77b4", "ours-2": "#6baed6", "kresd-1": "#d62728", "kresd-2": "#ff9896"}


CHART_METRIC = {"hitlat": ("p99_us", "p99 latency", fmt_us)}  # every other workload: QPS


def svg_chart(summary: dict, title: str = "DNS resolver benchmark") -> str:
    """Horizontal bars, one panel per workload, each scaled to its own maximum.

    Bars show QPS, except for hitlat (every server gets the same offered load
    there) where they show the p99 latency.
    """
    configs = ordered((c for c, _ in summary), list(CONFIG_TITLES))
    workloads = ordered((w for _, w in summary), list(WORKLOAD_TITLES))
    width, label_w, bar_h, gap = 760, 190, 18, 4
    bar_w = width - label_w - 180
    y = 40
    parts = []
    for w in workloads:
        metric, what, fmt = CHART_METRIC.get(w, ("qps", "QPS", fmt_qps))
        present = [c for c in configs if (c, w) in summary]
        top = max((summary[(c, w)][metric] or 0 for c in present), default=0) or 1
        parts.append(f'<text x="10" y="{y + 14}" font-weight="bold">'
                     f'{escape(WORKLOAD_TITLES.get(w, w))}: {what}</text>')
        y += 22
        for c in present:
            v = summary[(c, w)][metric] or 0
            length = max(1.0, bar_w * v / top)
            ref = reference_of(c, configs)
            rs = summary.get((ref, w)) if ref else None
            r = ratio(v, rs[metric]) if rs else None
            note = fmt(v) + (f" ({r:.2f}× kresd)" if r is not None else "")
            parts.append(f'<text x="{label_w - 8}" y="{y + bar_h - 5}" text-anchor="end">'
                         f'{escape(CONFIG_TITLES.get(c, c))}</text>')
            parts.append(f'<rect x="{label_w}" y="{y}" width="{length:.1f}" height="{bar_h}" '
                         f'fill="{PALETTE.get(c, "#7f7f7f")}"><title>{escape(note)}</title></rect>')
            parts.append(f'<text x="{label_w + length + 6:.1f}" y="{y + bar_h - 5}">'
                         f'{escape(note)}</text>')
            y += bar_h + gap
        y += 14
    height = y + 10
    head = (f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
            f'viewBox="0 0 {width} {height}" font-family="sans-serif" font-size="12">\n'
            f'<rect width="100%" height="100%" fill="white"/>\n'
            f'<text x="10" y="22" font-size="15" font-weight="bold">{escape(title)}</text>\n')
    return head + "\n".join(parts) + "\n</svg>\n"
