"""Profile the cache-miss path of a real `kresd -f 1` (a developer tool).

Owns: one run of the tools/bench miss workload inside a private network
namespace (so it never collides with a benchmark or a test on the shared
loopback): the knotd hierarchy of tools/bench, our kresd with the bench
config, dnsperf sending never-seen names; it prints the QPS and the server's
CPU per answer, and with --spy a py-spy sample of the worker aggregated by
function (self and inclusive share of the samples).
Must not: be used as the referee (tools/bench/run is, with kresd in the same
run), or touch anything outside its work directory and the bench state.

    tools/missprof_live.py [--seconds 8] [--spy] [--top 45] [--signed]   (as root)
"""
from __future__ import annotations

import argparse
import collections
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tools.bench import data  # noqa: E402
from tools.bench import run as bench  # noqa: E402


def _in_namespace() -> None:
    if os.environ.get("MISSPROF_NS") == "1":
        subprocess.run(["ip", "link", "set", "lo", "up"], check=True)
        return
    env = dict(os.environ, MISSPROF_NS="1")
    os.execvpe("unshare", ["unshare", "-n", sys.executable, *sys.argv], env)


def _times(pids) -> tuple[float, float]:
    """(user, system) CPU seconds of the processes."""
    user = system = 0.0
    for pid in pids:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        user += int(fields[11]) / os.sysconf("SC_CLK_TCK")
        system += int(fields[12]) / os.sysconf("SC_CLK_TCK")
    return user, system


def _aggregate(raw: Path, top: int) -> None:
    self_n: collections.Counter = collections.Counter()
    incl: collections.Counter = collections.Counter()
    total = 0
    for line in raw.read_text().splitlines():
        stack, _, n = line.rpartition(" ")
        if not stack:
            continue
        n = int(n)
        frames = [f.split(" (")[0] + " " + f.rsplit("/", 1)[-1].split(":")[0].rstrip(")")
                  for f in stack.split(";")]
        total += n
        self_n[frames[-1]] += n
        for f in set(frames):
            incl[f] += n
    print(f"\n{total} samples; self %:")
    for f, n in self_n.most_common(top):
        print(f"  {100 * n / total:5.1f}  {f}")
    print("\ninclusive %:")
    for f, n in incl.most_common(top):
        print(f"  {100 * n / total:5.1f}  {f}")


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=int, default=8)
    ap.add_argument("--spy", action="store_true")
    ap.add_argument("--top", type=int, default=45)
    ap.add_argument("--raw", default=os.path.join(tempfile.gettempdir(), "missprof-spy.txt"),
                    help="where py-spy's collapsed stacks go (kept for tools/spytree.py)")
    ap.add_argument("--kresd", default=str(ROOT / ".venv" / "bin" / "kresd"))
    ap.add_argument("--signed", action="store_true", help="the vmiss workload: validated misses")
    opts = ap.parse_args()
    workload = "vmiss" if opts.signed else "miss"
    signed = opts.signed
    _in_namespace()
    args = bench.parse_args(["--configs", "ours-1", "--workloads", workload,
                             "--duration", str(opts.seconds), "--kresd", opts.kresd]
                            + (["--signed"] if signed else []))
    layout = data.Layout(names=args.names, signed_names=args.signed_names,
                         root_addr=args.root_addr, zone_addr=args.zone_addr,
                         signed_addr=args.signed_addr)
    zonedir = data.prepare(args.state, layout, signed, log=bench.log)
    workdir = Path(tempfile.mkdtemp(prefix="missprof-"))
    auth = bench.start_hierarchy(layout, zonedir, workdir, signed)
    try:
        server = bench.start_resolver("ours-1", args, workdir, signed)
        try:
            print("sanity:", bench.sanity(args, signed))
            spy = None
            raw = Path(opts.raw)
            if opts.spy:
                if not (ROOT / ".venv" / "bin" / "py-spy").exists():
                    raise SystemExit("--spy needs py-spy in the venv: .venv/bin/pip install py-spy")
                spy = subprocess.Popen([str(ROOT / ".venv" / "bin" / "py-spy"), "record", "-r", "250",
                                        "--format", "raw", "-o", str(raw), "-d", str(opts.seconds),
                                        "-p", str(server.pids()[0])],
                                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                time.sleep(0.5)
            t0 = _times(server.pids())
            row = bench.measure(workload, server, auth, args, workdir)
            t1 = _times(server.pids())
            n = max(1, row["completed"])
            print(f"QPS {row['qps']:,.0f}  CPU/answer {row['cpu_us']:.1f} us "
                  f"(user {(t1[0] - t0[0]) / n * 1e6:.0f}, system {(t1[1] - t0[1]) / n * 1e6:.0f})  "
                  f"loss {row['loss_pct']:.2f} %")
            for tty in sorted(workdir.glob("rundir-ours-1*/tty/*")):
                out = subprocess.run([sys.executable, str(ROOT / "tools" / "kresc.py"), str(tty),
                                      "worker.stats().fastpath.miss"], capture_output=True, text=True)
                print("fast miss:", " ".join(out.stdout.split()))
            if spy is not None:
                spy.wait(60)
                _aggregate(raw, opts.top)
        finally:
            server.stop()
    finally:
        auth.stop()
        shutil.rmtree(workdir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
