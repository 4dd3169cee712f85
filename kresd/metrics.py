"""Metrics of a whole rundir: merging the instances' counters and rendering
them in the Prometheus text format with kresd 5.6's names.

Owns: kresd's key flattening (kres_modules/prometheus.lua getstats(): every
instance's `stats.list()`, `cache.stats()` prefixed `cache.` and
`worker.stats()` prefixed `worker.`, summed over instances; nested numeric
tables such as worker.stats().fastpath become `worker.fastpath.x`), kresd's
name transform (`answer.noerror` → `answer_noerror`, `answer.blocked;stype=A`
→ `answer_blocked{stype="A"}`), its latency histogram built from the
`answer.<N>ms` bands (`answer.slow` is +Inf, counted at 3000 ms in the sum),
the `namespace` prefix, a `# HELP` line for every family (kresd has none), the
types (kresd calls everything a counter; here sizes and levels are gauges),
and per-instance families (`instance_*{instance="<worker id>",pid="<pid>"}`).
Must not: talk to sockets (kresd/modules/http.py gathers the instances) or
know about HTTP.
"""
from __future__ import annotations

import math
import re
from typing import Any, Iterable

# worker.stats()/cache.stats() keys that are levels, not running totals
GAUGES = frozenset({
    "worker.concurrent", "worker.rconcurrent", "worker.rss",
    "worker.fastpath.bytes", "worker.fastpath.entries", "worker.fastpath.generation",
    "worker.fastpath.miss.inflight",
    "cache.entries", "cache.map_size", "cache.max_key_size", "cache.page_size",
    "cache.usage_bytes", "cache.used_bytes",
})

HELP = {
    "request": "Requests received from clients, by transport (total = all of them)",
    "answer": "Answers sent to clients, by rcode, flag or property",
    "query": "Requests with EDNS / with the DO bit",
    "cache": "The shared LMDB cache",
    "worker": "Worker process counters",
}
_BAND = re.compile(r"^answer\.(\d+)ms$")
_SLOW_MS = 3000.0


def flatten(value: Any, prefix: str, out: dict[str, float]) -> None:
    """Numeric leaves of nested dicts as `prefix + dotted.key`; the rest dropped."""
    if isinstance(value, bool):
        return
    if isinstance(value, (int, float)):
        out[prefix.rstrip(".")] = out.get(prefix.rstrip("."), 0) + value
        return
    if isinstance(value, dict):
        for k, v in value.items():
            flatten(v, f"{prefix}{k}.", out)


def instance_stats(stats: dict, cache: dict, worker: dict) -> dict[str, float]:
    """One instance's flat table, kresd's getstats() keys."""
    out: dict[str, float] = {}
    flatten(stats or {}, "", out)
    flatten(cache or {}, "cache.", out)
    flatten({k: v for k, v in (worker or {}).items() if k != "upstreams"}, "worker.", out)
    return out


def merge(instances: Iterable[dict[str, float]]) -> dict[str, float]:
    total: dict[str, float] = {}
    for inst in instances:
        for k, v in inst.items():
            total[k] = total.get(k, 0) + v
    return total


def metric_name(key: str) -> str:
    """kresd's get_metric(): dots become '_', `;k=v` pairs become labels."""
    name, _, tags = key.partition(";")
    name = re.sub(r"[^a-zA-Z0-9_:]", "_", name)
    if not tags:
        return name
    labels = []
    for pair in tags.split(";"):
        if not pair:
            continue
        k, _, v = pair.partition("=")
        v = v.replace("\\", "\\\\").replace('"', '\\"')
        labels.append(f'{re.sub(r"[^a-zA-Z0-9_]", "_", k)}="{v}"')
    return name + "{" + ",".join(labels) + "}"


def _help(key: str) -> str:
    head = key.split(".", 1)[0]
    return f"{HELP.get(head, 'kresd statistic')} ({key.split(';', 1)[0]})"


def _num(v: float) -> str:
    if isinstance(v, int) or (isinstance(v, float) and v.is_integer() and abs(v) < 2 ** 53):
        return str(int(v))
    return repr(float(v))


def render(merged: dict[str, float], instances: list[tuple[int | None, int, dict[str, float]]],
           namespace: str = "", upstreams: dict | None = None) -> str:
    """The /metrics text: every merged key as its own family, the latency
    histogram, per-instance request and RSS families, and the upstream
    servers' smoothed RTT and timeouts (`upstreams`: the server selection
    table, shared by the instances, as Selection.show() gives it)."""
    lines: list[str] = []
    bands: list[tuple[float, float]] = []
    families: dict[str, list[tuple[str, float, str]]] = {}
    for key in sorted(merged):
        m = _BAND.match(key)
        if m:
            bands.append((float(m.group(1)), merged[key]))
            continue
        if key == "answer.slow":
            bands.append((math.inf, merged[key]))
            continue
        if key == "answer.sum_ms":
            continue  # the histogram's _sum below is kresd's figure
        full = namespace + metric_name(key)
        family = full.split("{", 1)[0]
        families.setdefault(family, []).append((full, merged[key], key))
    for family, series in families.items():
        key = series[0][2]
        kind = "gauge" if key in GAUGES else "counter"
        lines.append(f"# HELP {family} {_help(key)}")
        lines.append(f"# TYPE {family} {kind}")
        for full, value, _ in series:
            lines.append(f"{full} {_num(value)}")
    lines += _histogram(bands, namespace)
    lines += _per_instance(instances, namespace)
    lines += _upstreams(upstreams or {}, namespace)
    return "\n".join(lines) + "\n"


def _histogram(bands: list[tuple[float, float]], namespace: str) -> list[str]:
    name = namespace + "latency"
    out = [f"# HELP {name} Time from a request to its answer, milliseconds (kresd's answer.<N>ms bands)",
           f"# TYPE {name} histogram"]
    count = total = 0.0
    for upper, n in sorted(bands):
        count += n
        total += n * min(upper, _SLOW_MS)
        le = "+Inf" if math.isinf(upper) else _num(upper)
        out.append(f'{name}_bucket{{le="{le}"}} {_num(count)}')
    if not any(math.isinf(u) for u, _ in bands):
        out.append(f'{name}_bucket{{le="+Inf"}} {_num(count)}')
    out.append(f"{name}_count {_num(count)}")
    out.append(f"{name}_sum {_num(total)}")
    return out


def _per_instance(instances, namespace: str) -> list[str]:
    out: list[str] = []
    for key, family, kind, help_text in (
            ("request.total", "instance_request_total", "counter", "Requests received by each instance"),
            ("request.udp", "instance_request_udp_total", "counter", "UDP requests received by each instance"),
            ("answer.total", "instance_answer_total", "counter", "Answers sent by each instance"),
            ("worker.rss", "instance_rss_bytes", "gauge", "Resident memory of each instance")):
        rows = [(wid, pid, inst[key]) for wid, pid, inst in instances if key in inst]
        if not rows:
            continue
        name = namespace + family
        out += [f"# HELP {name} {help_text}", f"# TYPE {name} {kind}"]
        for wid, pid, value in rows:
            out.append(f'{name}{{instance="{wid if wid is not None else ""}",pid="{pid}"}} {_num(value)}')
    return out


UPSTREAMS_MAX = 500  # servers listed at most (the lowest RTT first)


def _upstreams(table: dict, namespace: str) -> list[str]:
    rows = sorted(((addr, st) for addr, st in table.items() if isinstance(st, dict)),
                  key=lambda r: (r[1].get("srtt", 0), r[0]))[:UPSTREAMS_MAX]
    out = []  # the families are announced even before any server is known
    for field, family, kind, help_text in (
            ("srtt", "upstream_srtt_ms", "gauge", "Smoothed round-trip time of each upstream server (server selection)"),
            ("timeouts", "upstream_timeouts", "gauge", "Consecutive timeouts of each upstream server"),
            ("dead", "upstream_dead", "gauge", "1 while server selection considers the server dead")):
        name = namespace + family
        out += [f"# HELP {name} {help_text}", f"# TYPE {name} {kind}"]
        for addr, st in rows:
            value = st.get(field, 0)
            out.append(f'{name}{{server="{addr}"}} {_num(float(value) if not isinstance(value, bool) else int(value))}')
    return out
