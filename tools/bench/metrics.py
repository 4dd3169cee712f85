"""Numbers from dnsperf output and /proc, and their summary over repetitions.

Owns: parsing dnsperf's final statistics and its `-v` per-query lines
(latency percentiles), reading the CPU time (utime+stime) and the resident
memory (VmRSS, the largest process) of a process tree from /proc, and
reducing repeated measurements to medians and ratios.
Must not: start processes or format reports (report.py does that).
"""
from __future__ import annotations

import os
import re
import statistics
from collections import Counter
from typing import Iterable

HZ = os.sysconf("SC_CLK_TCK")

_SUMMARY = {
    "sent": (r"Queries sent:\s+(\d+)", int),
    "completed": (r"Queries completed:\s+(\d+)", int),
    "lost": (r"Queries lost:\s+(\d+)", int),
    "runtime_s": (r"Run time \(s\):\s+([\d.]+)", float),
    "qps": (r"Queries per second:\s+([\d.]+)", float),
    "lat_avg_s": (r"Average Latency \(s\):\s+([\d.]+)", float),
}


def parse_summary(text: str) -> dict:
    """The statistics dnsperf prints at the end (keys of _SUMMARY; missing ones are absent)."""
    out: dict = {}
    for key, (pattern, cast) in _SUMMARY.items():
        m = re.search(pattern, text)
        if m:
            out[key] = cast(m.group(1))
    m = re.search(r"Response codes:\s+(.*)", text)
    if m:
        out["rcodes"] = {k: int(v) for k, v in re.findall(r"([A-Z]+) (\d+) \(", m.group(1))}
    return out


def latency_counts(lines: Iterable[bytes]) -> Counter:
    """Microsecond latency -> count, from dnsperf -v lines `> RCODE name type 0.000123`."""
    counts: Counter = Counter()
    for line in lines:
        if not line.startswith(b">"):
            continue
        try:
            counts[round(float(line[line.rindex(b" ") + 1:]) * 1e6)] += 1
        except ValueError:  # a timed-out query: "> T name type" (no latency)
            continue
    return counts


def percentiles(counts: Counter, qs=(0.50, 0.99)) -> dict[float, float]:
    """{q: latency in µs} with the nearest-rank method; {} without samples."""
    n = sum(counts.values())
    if not n:
        return {}
    out, acc = {}, 0
    pending = sorted(qs)
    for us in sorted(counts):
        acc += counts[us]
        while pending and acc >= pending[0] * n:
            out[pending.pop(0)] = float(us)
    return out


def stat_ticks(stat: str) -> int:
    """utime + stime (clock ticks) from the text of /proc/<pid>/stat (all threads)."""
    fields = stat[stat.rindex(")") + 2:].split()
    return int(fields[11]) + int(fields[12])


def stat_ppid(stat: str) -> int:
    return int(stat[stat.rindex(")") + 2:].split()[1])


def _read(path: str) -> str | None:
    try:
        with open(path) as f:
            return f.read()
    except OSError:
        return None


def process_tree(pids: Iterable[int], proc: str = "/proc") -> list[int]:
    """pids and all their descendants (forks of a kresd -f N leader)."""
    kids: dict[int, list[int]] = {}
    for d in os.listdir(proc):
        if d.isdigit():
            st = _read(f"{proc}/{d}/stat")
            if st:
                kids.setdefault(stat_ppid(st), []).append(int(d))
    out: list[int] = []
    todo = list(pids)
    while todo:
        p = todo.pop()
        if p not in out:
            out.append(p)
            todo.extend(kids.get(p, []))
    return out


def cpu_seconds(pids: Iterable[int], proc: str = "/proc") -> dict[int, float]:
    """{pid: CPU seconds so far} for pids and their descendants."""
    out = {}
    for pid in process_tree(pids, proc):
        st = _read(f"{proc}/{pid}/stat")
        if st:
            out[pid] = stat_ticks(st) / HZ
    return out


def vmrss_kib(status: str) -> int | None:
    """VmRSS (kB as the kernel prints it: KiB) from the text of /proc/<pid>/status;
    None when absent (a zombie, a kernel thread)."""
    for line in status.splitlines():
        if line.startswith("VmRSS:"):
            fields = line.split()
            if len(fields) >= 2 and fields[1].isdigit():
                return int(fields[1])
    return None


def rss_mib(pids: Iterable[int], proc: str = "/proc") -> float | None:
    """The largest VmRSS (MiB) among pids and their descendants (the resolver's
    processes: a kresd -f N leader and its forks); None if none could be read."""
    sizes = []
    for pid in process_tree(pids, proc):
        st = _read(f"{proc}/{pid}/status")
        kib = vmrss_kib(st) if st else None
        if kib is not None:
            sizes.append(kib)
    return round(max(sizes) / 1024, 1) if sizes else None


def rss_after(rows: list[dict]) -> dict[str, float]:
    """{config: worker RSS after the benchmark, MiB}: the reading taken after the
    last workload of each start (rows with `last_of_start`); the largest one of a
    rep (a --signed run starts each config twice), then the median over reps."""
    per_rep: dict[tuple[str, int], float] = {}
    for r in rows:
        if r.get("last_of_start") and r.get("rss_mib") is not None:
            key = (r["config"], r.get("rep", 0))
            per_rep[key] = max(per_rep.get(key, 0.0), r["rss_mib"])
    by_config: dict[str, list[float]] = {}
    for (config, _), v in per_rep.items():
        by_config.setdefault(config, []).append(v)
    return {c: statistics.median(v) for c, v in by_config.items()}


def cpu_delta(before: dict[int, float], after: dict[int, float]) -> float:
    """CPU seconds used between two cpu_seconds() snapshots (new processes count whole)."""
    return sum(max(0.0, v - before.get(pid, 0.0)) for pid, v in after.items())


def busy_seconds(stat: str) -> float:
    """CPU seconds all tasks used (user nice system irq softirq) from /proc/stat's first line."""
    v = [int(x) for x in stat.splitlines()[0].split()[1:]]
    return (v[0] + v[1] + v[2] + v[5] + v[6]) / HZ


def measurement(summary: dict, counts: Counter, server_cpu_s: float) -> dict:
    """One row: QPS, loss, CPU per answer and latency percentiles from one dnsperf run."""
    completed = summary.get("completed", 0)
    sent = summary.get("sent", 0)
    pct = percentiles(counts)
    return {
        "qps": summary.get("qps", 0.0),
        "sent": sent,
        "completed": completed,
        "loss_pct": 100.0 * summary.get("lost", 0) / sent if sent else 0.0,
        "cpu_us": 1e6 * server_cpu_s / completed if completed else None,
        "server_cpu_s": server_cpu_s,
        "p50_us": pct.get(0.50),
        "p99_us": pct.get(0.99),
    }


METRICS = ("qps", "cpu_us", "p50_us", "p99_us", "loss_pct", "rss_mib")


def summarize(rows: list[dict]) -> dict[tuple[str, str], dict]:
    """{(config, workload): {metric: median over reps, 'reps': n}} of the rows given."""
    groups: dict[tuple[str, str], list[dict]] = {}
    for r in rows:
        groups.setdefault((r["config"], r["workload"]), []).append(r)
    out = {}
    for key, rs in groups.items():
        s: dict = {"reps": len(rs)}
        for m in METRICS:
            vals = [r[m] for r in rs if r.get(m) is not None]
            s[m] = statistics.median(vals) if vals else None
        out[key] = s
    return out


def reference_of(config: str, configs: Iterable[str]) -> str | None:
    """The Debian kresd config a config of ours is compared with: ours-f2 -> kresd-2 if it ran."""
    configs = list(configs)
    if not config.startswith("ours"):
        return None
    if config.endswith("-2") and "kresd-2" in configs:
        return "kresd-2"
    return "kresd-1" if "kresd-1" in configs else None


def ratio(ours: float | None, ref: float | None) -> float | None:
    if ours is None or not ref:
        return None
    return ours / ref
