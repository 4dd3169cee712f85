"""tools/bench: a benchmark an operator can run with one command (`tools/bench/run`).

Owns: a loopback DNS hierarchy of Debian knotd servers (data.py writes its
zones and query files), dnsperf workloads against our kresd (-f 1, -f 2) and
Debian's kresd 5.6 in the same run (run.py), the parsing of dnsperf output and
/proc CPU counters (metrics.py), and the report: a text table, a Markdown table
and an SVG chart (report.py).
Must not: bind anything outside its loopback addresses (default 127.0.30.1-4;
the shared referee benchmark owns 127.0.0.1-3, the tests 127.0.10-19.x), or
import the resolver's packages: it measures the installed binary only.
bench.conf / bench-val.conf here are the configs the shared referee benchmark
(../shared/bench) runs our kresd with; this tool writes its own.
"""
