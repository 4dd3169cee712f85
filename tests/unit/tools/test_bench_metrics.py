"""tools/bench/metrics.py: dnsperf output, /proc counters, medians and ratios."""
from __future__ import annotations

from collections import Counter

import pytest

from tools.bench import metrics

DNSPERF_TAIL = """\
> NOERROR a5.perf. A 0.000120
[Status] Testing complete (time limit)

Statistics:

  Queries sent:         285612
  Queries completed:    285600 (100.00%)
  Queries lost:         12 (0.00%)

  Response codes:       NOERROR 279888 (98.00%), NXDOMAIN 5712 (2.00%)
  Average packet size:  request 26, response 42
  Run time (s):         10.001234
  Queries per second:   28556.47

  Average Latency (s):  0.003461 (min 0.000041, max 0.012345)
  Latency StdDev (s):   0.000398
"""


def test_parse_summary_reads_the_final_statistics():
    s = metrics.parse_summary(DNSPERF_TAIL)
    assert s["sent"] == 285612 and s["completed"] == 285600 and s["lost"] == 12
    assert s["qps"] == pytest.approx(28556.47)
    assert s["runtime_s"] == pytest.approx(10.001234)
    assert s["lat_avg_s"] == pytest.approx(0.003461)
    assert s["rcodes"] == {"NOERROR": 279888, "NXDOMAIN": 5712}


def test_parse_summary_of_garbage_is_empty():
    assert metrics.parse_summary("dnsperf: invalid argument\n") == {}


def test_latency_counts_skip_timeouts_and_other_lines():
    lines = [b"> NOERROR a1.perf. A 0.000120\n", b"> NXDOMAIN nx1.perf. A 0.001000\n",
             b"> T a2.perf. A\n", b"[Status] Sending queries\n", b"> NOERROR a3.perf. A 0.000120\n"]
    assert metrics.latency_counts(lines) == Counter({120: 2, 1000: 1})


def test_percentiles_nearest_rank():
    counts = Counter({i: 1 for i in range(1, 101)})  # 1..100 µs, once each
    p = metrics.percentiles(counts, (0.5, 0.99))
    assert p == {0.5: 50.0, 0.99: 99.0}
    assert metrics.percentiles(Counter({7: 3})) == {0.5: 7.0, 0.99: 7.0}
    assert metrics.percentiles(Counter()) == {}


def test_stat_ticks_and_ppid_survive_a_command_with_spaces_and_parens():
    # pid (comm) state ppid ... field 14 utime, 15 stime
    fields = ["S", "42"] + ["0"] * 9 + ["150", "50"] + ["0"] * 30
    stat = "1234 (kres d) (x)) " + " ".join(fields)
    assert metrics.stat_ppid(stat) == 42
    assert metrics.stat_ticks(stat) == 200


def _fake_proc(tmp_path, procs):
    for pid, (ppid, ticks) in procs.items():
        d = tmp_path / str(pid)
        d.mkdir()
        fields = ["S", str(ppid)] + ["0"] * 9 + [str(ticks), "0"] + ["0"] * 30
        (d / "stat").write_text(f"{pid} (kresd) " + " ".join(fields))
    (tmp_path / "self").mkdir()


def test_cpu_seconds_covers_the_forks_of_a_leader(tmp_path):
    _fake_proc(tmp_path, {10: (1, 100), 11: (10, 300), 12: (11, 5), 20: (1, 999)})
    cpu = metrics.cpu_seconds([10], proc=str(tmp_path))
    assert set(cpu) == {10, 11, 12}
    assert sum(cpu.values()) == pytest.approx(405 / metrics.HZ)


def test_cpu_delta_counts_new_processes_whole_and_never_negative():
    assert metrics.cpu_delta({1: 2.0, 2: 1.0}, {1: 3.5, 3: 0.25}) == pytest.approx(1.75)


def test_busy_seconds_from_proc_stat():
    stat = f"cpu  {metrics.HZ * 1} 0 {metrics.HZ * 2} 999999 5 0 {metrics.HZ} 0 0 0\ncpu0 1 2 3\n"
    assert metrics.busy_seconds(stat) == pytest.approx(4.0)


def test_measurement_cpu_per_answer_and_loss():
    s = metrics.parse_summary(DNSPERF_TAIL)
    counts = Counter({100: 50, 200: 49, 5000: 1})
    row = metrics.measurement(s, counts, server_cpu_s=2.856)
    assert row["cpu_us"] == pytest.approx(10.0)
    assert row["loss_pct"] == pytest.approx(100 * 12 / 285612)
    assert (row["p50_us"], row["p99_us"]) == (100.0, 200.0)
    empty = metrics.measurement({}, Counter(), 0.0)
    assert empty["cpu_us"] is None and empty["qps"] == 0.0 and empty["p50_us"] is None


def test_summarize_takes_medians_per_config_and_workload():
    rows = [{"config": "ours-1", "workload": "hit", "qps": q, "cpu_us": c, "p50_us": 1.0,
             "p99_us": None, "loss_pct": 0.0} for q, c in ((10, 3.0), (30, 1.0), (20, 2.0))]
    rows.append({"config": "kresd-1", "workload": "hit", "qps": 100, "cpu_us": 0.5,
                 "p50_us": 1.0, "p99_us": 2.0, "loss_pct": 0.0})
    s = metrics.summarize(rows)
    assert s[("ours-1", "hit")]["qps"] == 20 and s[("ours-1", "hit")]["cpu_us"] == 2.0
    assert s[("ours-1", "hit")]["reps"] == 3 and s[("ours-1", "hit")]["p99_us"] is None
    assert s[("kresd-1", "hit")]["qps"] == 100


def test_reference_of_pairs_like_with_like():
    every = ["ours-1", "ours-2", "kresd-1", "kresd-2"]
    assert metrics.reference_of("ours-1", every) == "kresd-1"
    assert metrics.reference_of("ours-2", every) == "kresd-2"
    assert metrics.reference_of("ours-2", ["ours-2", "kresd-1"]) == "kresd-1"
    assert metrics.reference_of("ours-1", ["ours-1"]) is None
    assert metrics.reference_of("kresd-1", every) is None
    assert metrics.ratio(5.0, 20.0) == 0.25
    assert metrics.ratio(5.0, 0.0) is None and metrics.ratio(None, 1.0) is None


STATUS = """\
Name:\tkresd
Umask:\t0022
State:\tS (sleeping)
Pid:\t1234
PPid:\t1
VmPeak:\t  512000 kB
VmSize:\t  498000 kB
VmHWM:\t   61000 kB
VmRSS:\t   41472 kB
RssAnon:\t   30000 kB
Threads:\t1
"""


def test_vmrss_kib_reads_the_vmrss_line_only():
    assert metrics.vmrss_kib(STATUS) == 41472  # not VmHWM, not RssAnon
    zombie = "Name:\tkresd\nState:\tZ (zombie)\nThreads:\t1\n"  # no Vm* lines
    assert metrics.vmrss_kib(zombie) is None
    assert metrics.vmrss_kib("VmRSS:\t\n") is None


def test_rss_mib_is_the_largest_process_of_the_tree(tmp_path):
    _fake_proc(tmp_path, {10: (1, 0), 11: (10, 0), 12: (10, 0), 20: (1, 0)})
    for pid, kib in ((10, 20480), (11, 51712), (20, 999999)):  # 20 is not ours; 12 has no VmRSS
        (tmp_path / str(pid) / "status").write_text(STATUS.replace("41472", str(kib)))
    (tmp_path / "12" / "status").write_text("Name:\tkresd\nState:\tZ (zombie)\n")
    assert metrics.rss_mib([10], proc=str(tmp_path)) == 50.5  # 51712 KiB, the fork
    assert metrics.rss_mib([12], proc=str(tmp_path)) is None
    assert metrics.rss_mib([99], proc=str(tmp_path)) is None  # gone


def test_rss_after_takes_the_last_workload_of_each_start():
    def row(config, rep, wl, rss, last):
        return {"config": config, "rep": rep, "workload": wl, "rss_mib": rss, "last_of_start": last}
    rows = [row("ours-1", 0, "hit", 30.0, False), row("ours-1", 0, "miss", 45.0, True),
            row("ours-1", 0, "vmiss", 50.0, True),  # the validating start of the same rep: larger
            row("ours-1", 1, "hit", 31.0, False), row("ours-1", 1, "miss", 44.0, True),
            row("ours-1", 2, "miss", 46.0, True),
            row("kresd-1", 0, "miss", 20.0, True), row("kresd-1", 0, "hit", 90.0, False),
            row("ours-2", 0, "miss", None, True)]  # unreadable: no figure
    assert metrics.rss_after(rows) == {"ours-1": 46.0, "kresd-1": 20.0}  # median of 50, 44, 46
    s = metrics.summarize(rows)
    assert s[("ours-1", "miss")]["rss_mib"] == 45.0 and s[("ours-2", "miss")]["rss_mib"] is None
