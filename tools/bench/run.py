"""The benchmark driver: `tools/bench/run` (as root, after tools/install.sh).

Owns: the command line, the run lock, starting and stopping the knotd
hierarchy and the resolvers under test (our .venv/bin/kresd with -f 1 and -f 2,
Debian's /usr/sbin/kresd with 1 and 2 processes), the sanity check and cache
warm-up of every start, the dnsperf workloads, the resolver's resident memory
after each workload (metrics.rss_mib), and writing the results: results.jsonl
(every measurement), summary.md (machine + Markdown table + the worker RSS
after the benchmark), chart.svg, and the same table on stdout.

  dnsperf (pinned to the last CPU) --UDP--> resolver 127.0.30.1:5300
      root hints: a.root-servers.net = 127.0.30.2
      knotd 127.0.30.2:53  '.'       delegates perf. (and sperf.)
      knotd 127.0.30.3:53  'perf.'   1,000,000 A names
      knotd 127.0.30.4:53  'sperf.'  signed, 200,000 A names (--signed only)

Every resolver start gets a fresh rundir (an empty cache). Per start: sanity
check, warm the hit set (each name twice), then hit, hitlat, miss in that
order; with --signed a second, validating start runs vmiss.
Must not: bind outside its addresses, stop processes it did not start (it
stops its own process groups by id), or import the resolver's packages.
"""
from __future__ import annotations

import argparse
import contextlib
import fcntl
import json
import os
import platform
import resource
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import dns.exception
import dns.flags
import dns.message
import dns.name
import dns.query
import dns.rcode
import dns.rdatatype

from tools.bench import data, metrics, report

ROOT = Path(__file__).resolve().parents[2]
OUR_KRESD = ROOT / ".venv" / "bin" / "kresd"
REF_KRESD = Path("/usr/sbin/kresd")
CONFIGS = ("ours-1", "ours-2", "kresd-1", "kresd-2")
WORKLOADS = ("hit", "hitlat", "miss", "vmiss")

KRESD_CONF = """-- written by tools/bench/run.py: the same for our kresd and Debian's
log_level('warning')
net.ipv6 = false
net.listen('{addr}', {port}, {{ kind = 'dns' }})
option('ALLOW_LOCAL', true)
modules.load('hints > iterate')
hints.root({{ ['a.root-servers.net.'] = '{root_addr}' }})
trust_anchors.remove('.')
{validation}
modules.load('stats')
cache.size = 1024 * MB
"""


def log(*a) -> None:
    print(time.strftime("%H:%M:%S"), *a, file=sys.stderr, flush=True)


# --------------------------------------------------------------------------- processes
class Group:
    """Processes this run started, each in its own session, stopped by process-group id."""

    def __init__(self, logdir: Path):
        self.logdir, self.procs = logdir, []

    def spawn(self, cmd: list[str], tag: str, cwd: Path | None = None) -> subprocess.Popen:
        with open(self.logdir / f"{tag}.log", "ab") as logf:
            p = subprocess.Popen(cmd, cwd=cwd, stdout=logf, stderr=subprocess.STDOUT,
                                 stdin=subprocess.DEVNULL, start_new_session=True)
        self.procs.append(p)
        return p

    def pids(self) -> list[int]:
        return [p.pid for p in self.procs if p.poll() is None]

    def alive(self) -> bool:
        return all(p.poll() is None for p in self.procs)

    def stop(self) -> None:
        for p in self.procs:
            if p.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(p.pid, signal.SIGTERM)
        deadline = time.monotonic() + 8
        for p in self.procs:
            try:
                p.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(p.pid, signal.SIGKILL)
                p.wait(5)
        self.procs = []


def ask(addr: str, port: int, name: str, rdtype=dns.rdatatype.A, timeout=1.0,
        dnssec=False) -> dns.message.Message | None:
    q = dns.message.make_query(dns.name.from_text(name), rdtype, want_dnssec=dnssec)
    try:
        return dns.query.udp(q, addr, port=port, timeout=timeout)
    except (OSError, dns.exception.DNSException):
        return None


def wait_for(pred, timeout: float, alive=lambda: True) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return True
        if not alive():
            return False
        time.sleep(0.1)
    return False


def start_hierarchy(layout: data.Layout, zonedir: Path, workdir: Path, signed: bool) -> Group:
    g = Group(workdir)
    zones = [("root", layout.root_addr, ".", "root.signed" if signed else "root.zone",
              "perf.", dns.rdatatype.NS),
             ("perf", layout.zone_addr, "perf.", "perf.zone", "a5.perf.", dns.rdatatype.A)]
    if signed:
        zones.append(("sperf", layout.signed_addr, "sperf.", "sperf.signed", "a5.sperf.",
                      dns.rdatatype.A))
    for tag, addr, zone, file, _, _ in zones:
        rundir = workdir / f"knot-{tag}"
        shutil.rmtree(rundir, ignore_errors=True)
        (rundir / "db").mkdir(parents=True)
        (rundir / "knot.conf").write_text(data.knot_conf(rundir, addr, zonedir, zone, file))
        g.spawn(["knotd", "-c", str(rundir / "knot.conf")], f"knot-{tag}")

    def up() -> bool:
        for _, addr, _, _, name, rdtype in zones:
            r = ask(addr, 53, name, rdtype, timeout=0.3)
            if r is None or r.rcode() != dns.rcode.NOERROR:
                return False
        return True

    if not wait_for(up, 120, g.alive):
        g.stop()
        raise SystemExit(f"knotd did not come up; see {workdir}/knot-*.log")
    return g


def start_resolver(config: str, args, workdir: Path, validating: bool) -> Group:
    """A fresh rundir and the config; ours-N is one `kresd -f N`, kresd-N is N processes."""
    name, n = config.rsplit("-", 1)
    rundir = workdir / f"rundir-{config}{'-val' if validating else ''}"
    shutil.rmtree(rundir, ignore_errors=True)
    rundir.mkdir(parents=True)
    validation = f"trust_anchors.add_file('{args.state / 'ta.ds'}', true)" if validating else ""
    conf = rundir.parent / f"{rundir.name}.conf"
    conf.write_text(KRESD_CONF.format(addr=args.addr, port=args.port, root_addr=args.root_addr,
                                      validation=validation))
    g = Group(workdir)
    if name == "ours":
        g.spawn([str(args.kresd), "-n", "-f", n, "-c", str(conf), str(rundir)], rundir.name,
                cwd=rundir)
    else:
        for i in range(int(n)):
            g.spawn([str(args.ref_kresd), "-n", "-c", str(conf), str(rundir)],
                    f"{rundir.name}.{i}", cwd=rundir)
            if i == 0 and int(n) > 1:
                time.sleep(0.5)  # let the first one create the cache
    probe = "ns.sperf." if validating else "ns.perf."
    if not wait_for(lambda: ask(args.addr, args.port, probe, timeout=0.5) is not None, 60,
                    g.alive):
        g.stop()
        raise SystemExit(f"{config} did not answer; see {workdir}/{rundir.name}*.log")
    if name == "kresd" and int(n) > 1:
        time.sleep(0.5)  # the second process is listening too by now
    return g


def sanity(args, validating: bool) -> dict:
    """The answers every workload relies on; recorded, and a failure is reported."""
    if validating:
        r = ask(args.addr, args.port, "a5.sperf.", timeout=3, dnssec=True)  # AD needs DO
        return {"ad": bool(r and r.rcode() == 0 and r.flags & dns.flags.AD and r.answer)}
    a = ask(args.addr, args.port, "a5.perf.", timeout=3)
    c = ask(args.addr, args.port, "c1.perf.", timeout=3)
    nx = ask(args.addr, args.port, "nx1.perf.", timeout=3)
    return {
        "a": bool(a and a.answer and a.answer[-1][0].address == data.a_rdata(5)),
        "cname": bool(c and any(rr.rdtype == dns.rdatatype.CNAME for rr in c.answer)),
        "nxdomain": bool(nx and nx.rcode() == dns.rcode.NXDOMAIN),
    }


# --------------------------------------------------------------------------- load
def dnsperf_cmd(workload: str, args) -> list[str]:
    q = args.state / "queries"
    base = ["taskset", "-c", str(args.loadgen_cpu), "dnsperf", "-s", args.addr,
            "-p", str(args.port), "-l", str(args.duration), "-t", str(args.timeout), "-v"]
    saturate = ["-c", str(args.clients), "-q", str(args.outstanding)]
    if workload == "hit":
        return base + ["-d", str(q / "hit.txt")] + saturate
    if workload == "hitlat":
        return base + ["-d", str(q / "hit.txt"), "-c", str(args.clients), "-Q", str(args.rate)]
    if workload == "miss":
        return base + ["-d", str(q / "miss.txt"), "-n", "1"] + saturate
    if workload == "vmiss":
        return base + ["-d", str(q / "vmiss.txt"), "-n", "1"] + saturate
    raise ValueError(workload)


def warm(args) -> None:
    subprocess.run(["dnsperf", "-s", args.addr, "-p", str(args.port), "-n", "2", "-c", "4",
                    "-q", "20", "-d", str(args.state / "queries" / "hit.txt")],
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=120)


def measure(workload: str, server: Group, auth: Group, args, workdir: Path) -> dict:
    """One dnsperf run; also the CPU the rest of the box used meanwhile (`other_cores`)."""
    vfile = workdir / f"dnsperf-{workload}.out"
    cpu0, auth0 = metrics.cpu_seconds(server.pids()), metrics.cpu_seconds(auth.pids())
    busy0, t0 = metrics.busy_seconds(Path("/proc/stat").read_text()), time.monotonic()
    ru0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    with open(vfile, "wb") as out:
        p = subprocess.run(dnsperf_cmd(workload, args), stdout=out, stderr=subprocess.PIPE,
                           timeout=args.duration + args.timeout + 60)
    cpu1, auth1 = metrics.cpu_seconds(server.pids()), metrics.cpu_seconds(auth.pids())
    busy1, wall = metrics.busy_seconds(Path("/proc/stat").read_text()), time.monotonic() - t0
    ru1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    loadgen = ru1.ru_utime - ru0.ru_utime + ru1.ru_stime - ru0.ru_stime
    with open(vfile, "rb") as f:
        counts = metrics.latency_counts(f)
        f.seek(max(0, vfile.stat().st_size - 4000))
        tail = f.read().decode(errors="replace")
    vfile.unlink()
    summary = metrics.parse_summary(tail)
    if p.returncode != 0 or "qps" not in summary:
        raise SystemExit(f"dnsperf failed ({p.returncode}): {p.stderr.decode()[-500:]}")
    row = metrics.measurement(summary, counts, metrics.cpu_delta(cpu0, cpu1))
    row["processes"] = len(cpu1)
    row["rss_mib"] = metrics.rss_mib(server.pids())  # after this workload (the last: after the benchmark)
    row["loadgen_cores"] = round(loadgen / wall, 2)
    row["auth_cpu_s"] = round(metrics.cpu_delta(auth0, auth1), 2)
    # softirq work of the loopback traffic counts as "other" too: a rough noise gauge
    row["other_cores"] = round(max(0.0, busy1 - busy0 - row["server_cpu_s"] - loadgen
                                   - row["auth_cpu_s"]) / wall, 2)
    return row


# --------------------------------------------------------------------------- the run
def machine() -> dict:
    model = "unknown"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    return {"cpu": model, "cores": os.cpu_count(), "kernel": platform.release()}


def versions(args) -> dict:
    out = {}
    for tag, cmd in (("kresd-py", [str(args.kresd), "-V"]), ("kresd", [str(args.ref_kresd), "-V"]),
                     ("knotd", ["knotd", "-V"])):
        with contextlib.suppress(OSError, subprocess.SubprocessError):
            out[tag] = subprocess.run(cmd, capture_output=True, text=True,
                                      timeout=30).stdout.strip().splitlines()[0]
    return out


def write_outputs(outdir: Path, rows: list[dict], meta: dict) -> str:
    summary = metrics.summarize(rows)
    table = report.markdown(summary)
    rss = report.rss_line(metrics.rss_after(rows))
    m = meta["machine"]
    md = (f"# kresd-py benchmark, {meta['date']}\n\n"
          f"Machine: {m['cpu']}, {m['cores']} cores, Linux {m['kernel']}. "
          f"{meta['duration']} s per measurement, {meta['reps']} rep(s), medians. "
          f"Versions: {'; '.join(meta['versions'].values())}.\n\n"
          f"{table}\n"
          + (f"{rss}.\n\n" if rss else "")
          + "CPU/answer: utime+stime of the server processes over the run / answers. "
          "p50/p99: dnsperf -v latencies. Ratios: kresd-py -f 1 to kresd 5.6 with 1 process, "
          "-f 2 to 2 processes (QPS: higher is better; CPU: lower is better). "
          "RSS: the largest VmRSS (/proc/<pid>/status) among the server's processes, read right "
          "after that workload (the workloads of a start run in --workloads order).\n\n"
          "![chart](chart.svg)\n")
    (outdir / "summary.md").write_text(md)
    (outdir / "chart.svg").write_text(report.svg_chart(summary))
    return report.text_table(summary) + (f"\n{rss}\n" if rss else "")


def parse_args(argv=None):
    ap = argparse.ArgumentParser(prog="tools/bench/run", description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--configs", default=",".join(CONFIGS),
                    help="servers, comma separated (default: %(default)s)")
    ap.add_argument("--workloads", default="hit,hitlat,miss",
                    help="hit,hitlat,miss (default) and vmiss (needs --signed)")
    ap.add_argument("--signed", action="store_true",
                    help="also sign a zone (ldns-signzone) and run vmiss: validated misses")
    ap.add_argument("--duration", type=int, default=10, help="seconds per measurement (10)")
    ap.add_argument("--reps", type=int, default=1, help="repetitions, interleaved (1)")
    ap.add_argument("--rate", type=int, default=10000, help="offered QPS of hitlat (10000)")
    ap.add_argument("--clients", type=int, default=20, help="dnsperf -c (20)")
    ap.add_argument("--outstanding", type=int, default=100, help="dnsperf -q (100)")
    ap.add_argument("--timeout", type=int, default=2, help="dnsperf -t: a later answer is lost (2)")
    ap.add_argument("--names", type=int, default=1_000_000, help="A names in perf. (1000000)")
    ap.add_argument("--signed-names", type=int, default=200_000,
                    help="A names in the signed zone sperf. (200000)")
    ap.add_argument("--outdir", type=Path, help="where reports go (default /tmp/kresd-bench/<time>)")
    ap.add_argument("--state", type=Path,
                    help="zones, queries, rundirs (default /dev/shm/kresd-bench, else /tmp)")
    ap.add_argument("--addr", default="127.0.30.1", help="resolver address (127.0.30.1)")
    ap.add_argument("--port", type=int, default=5300, help="resolver port (5300)")
    ap.add_argument("--root-addr", default="127.0.30.2")
    ap.add_argument("--zone-addr", default="127.0.30.3")
    ap.add_argument("--signed-addr", default="127.0.30.4")
    ap.add_argument("--kresd", type=Path, default=OUR_KRESD, help="our kresd (.venv/bin/kresd)")
    ap.add_argument("--ref-kresd", type=Path, default=REF_KRESD, help="Debian's (/usr/sbin/kresd)")
    ap.add_argument("--loadgen-cpu", type=int, default=(os.cpu_count() or 1) - 1,
                    help="CPU dnsperf is pinned to (the last one)")
    args = ap.parse_args(argv)
    args.configs = [c for c in args.configs.split(",") if c]
    args.workloads = [w for w in args.workloads.split(",") if w]
    if args.signed and "vmiss" not in args.workloads:
        args.workloads.append("vmiss")
    for c in args.configs:
        if c not in CONFIGS:
            ap.error(f"unknown config {c!r}; known: {', '.join(CONFIGS)}")
    for w in args.workloads:
        if w not in WORKLOADS:
            ap.error(f"unknown workload {w!r}; known: {', '.join(WORKLOADS)}")
    if "vmiss" in args.workloads and not args.signed:
        ap.error("vmiss needs --signed")
    if args.state is None:
        shm = Path("/dev/shm")
        args.state = (shm if shm.is_dir() else Path("/tmp")) / "kresd-bench"
    if args.outdir is None:
        args.outdir = Path("/tmp/kresd-bench") / time.strftime("%Y%m%d-%H%M%S")
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    if os.geteuid() != 0:
        print("tools/bench/run: must run as root (knotd binds port 53 on loopback)",
              file=sys.stderr)
        return 1
    for tool in ("knotd", "dnsperf", "taskset") + (("ldns-signzone",) if args.signed else ()):
        if shutil.which(tool) is None:
            print(f"tools/bench/run: {tool} is missing: run tools/install.sh", file=sys.stderr)
            return 1
    if any(c.startswith("ours") for c in args.configs) and not args.kresd.exists():
        print(f"tools/bench/run: {args.kresd} is missing: run tools/install.sh", file=sys.stderr)
        return 1
    args.state.mkdir(parents=True, exist_ok=True)
    lock = open(Path("/tmp") / f"kresd-bench-{args.addr}.lock", "w")
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        print(f"tools/bench/run: another run holds {lock.name}", file=sys.stderr)
        return 1
    args.outdir.mkdir(parents=True, exist_ok=True)
    layout = data.Layout(names=args.names, signed_names=args.signed_names,
                         root_addr=args.root_addr, zone_addr=args.zone_addr,
                         signed_addr=args.signed_addr)
    zonedir = data.prepare(args.state, layout, args.signed, log=log)
    workdir = args.state / "run"
    shutil.rmtree(workdir, ignore_errors=True)
    workdir.mkdir()
    meta = {"date": time.strftime("%Y-%m-%d %H:%M"), "machine": machine(),
            "versions": versions(args), "duration": args.duration, "reps": args.reps,
            "argv": sys.argv[1:]}
    (args.outdir / "meta.json").write_text(json.dumps(meta, indent=1))
    rows: list[dict] = []
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    auth = start_hierarchy(layout, zonedir, workdir, args.signed)
    log(f"hierarchy up on {args.root_addr}, {args.zone_addr}"
        + (f", {args.signed_addr}" if args.signed else ""))
    plain = [w for w in args.workloads if w != "vmiss"]
    try:
        with open(args.outdir / "results.jsonl", "w") as results:
            for rep in range(args.reps):
                for config in args.configs:
                    for validating, wls in ((False, plain), (True, ["vmiss"])):
                        if not wls or (validating and "vmiss" not in args.workloads):
                            continue
                        server = start_resolver(config, args, workdir, validating)
                        try:
                            check = sanity(args, validating)
                            if not all(check.values()):
                                log(f"WARNING {config}: sanity check failed: {check}")
                            if not validating:
                                warm(args)
                            for wl in wls:
                                row = measure(wl, server, auth, args, workdir)
                                row.update(config=config, workload=wl, rep=rep, sanity=check,
                                           last_of_start=wl == wls[-1])
                                rows.append(row)
                                results.write(json.dumps(row) + "\n")
                                results.flush()
                                log(f"{config:8} {wl:7} rep {rep}: {row['qps']:,.0f} QPS, "
                                    f"{(row['cpu_us'] or 0):.1f} µs CPU/answer, "
                                    f"loss {row['loss_pct']:.2f} %, RSS {report.fmt_mib(row['rss_mib'])}, "
                                    f"other load {row['other_cores']:.2f} cores")
                        finally:
                            server.stop()
    finally:
        auth.stop()
    print(write_outputs(args.outdir, rows, meta), end="")
    print(f"\nreport: {args.outdir}/summary.md, chart: {args.outdir}/chart.svg")
    return 0
