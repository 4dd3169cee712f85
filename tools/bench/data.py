"""The benchmark's DNS data: zones, query files, trust anchor, knotd configs.

Owns: writing into a state directory
  zones/root.zone      '.'      delegates perf. (and sperf. with --signed)
  zones/perf.zone      'perf.'  N names a<i> A 10.x.y.z, N/1000 names c<i> CNAME a<j>;
                                nx<i>.perf. do not exist (NXDOMAIN)
  zones/sperf.zone     'sperf.' the same shape, signed with ldns-signzone (--signed only),
  zones/root.signed    the root signed with the DS of sperf. in it (--signed only),
  ta.ds                the root's DS, the trust anchor of validating runs,
  queries/hit.txt      1,000 distinct names: 96 % A, 2 % CNAME, 2 % NXDOMAIN,
  queries/miss.txt     A names of perf. from a2000 on (never cached by the hit set), each once,
  queries/vmiss.txt    the A names of sperf., each once (--signed only),
and the text of a knotd config for one zone. What was written is recorded in
`stamp.json`, so a second run with the same parameters writes nothing.
Must not: start processes other than the ldns tools, or bind anything.
"""
from __future__ import annotations

import json
import os
import subprocess
import time
from dataclasses import asdict, dataclass
from pathlib import Path

TTL = 86400
HIT_NAMES = 1000
MISS_FIRST = 2000  # above the hit set and the targets of its CNAMEs (c<i> -> a<97 i>)
SIGNATURE_MAX_AGE_S = 7 * 86400  # ldns-signzone signs for 4 weeks: re-sign after one


@dataclass(frozen=True)
class Layout:
    """Sizes and the loopback addresses of the hierarchy (they go into the zones)."""
    names: int = 1_000_000          # A names in perf.
    signed_names: int = 200_000     # A names in sperf. (signing time grows with it)
    root_addr: str = "127.0.30.2"
    zone_addr: str = "127.0.30.3"   # perf.
    signed_addr: str = "127.0.30.4"  # sperf.

    @property
    def cnames(self) -> int:
        return max(20, self.names // 1000)


def a_rdata(i: int) -> str:
    """The A record of a<i>: 10.x.y.z from the index (unique up to 2**24 names)."""
    return f"10.{(i >> 16) & 255}.{(i >> 8) & 255}.{i & 255}"


def root_zone(layout: Layout, signed: bool) -> str:
    lines = [
        f"$TTL {TTL}",
        f".  IN SOA a.root-servers.net. hostmaster.root. 1 1800 900 604800 3600",
        ".  IN NS a.root-servers.net.",
        f"a.root-servers.net.  IN A {layout.root_addr}",
        "perf.  IN NS ns.perf.",
        f"ns.perf.  IN A {layout.zone_addr}",
    ]
    if signed:
        lines += ["sperf.  IN NS ns.sperf.", f"ns.sperf.  IN A {layout.signed_addr}"]
    return "\n".join(lines) + "\n"


def leaf_zone(origin: str, ns_addr: str, names: int) -> str:
    """perf. or sperf.: `names` A records, names//1000 (at least 20) CNAMEs spread over them."""
    head = [f"$ORIGIN {origin}", f"$TTL {TTL}",
            f"@  IN SOA ns.{origin} hostmaster.{origin} 1 1800 900 604800 3600",
            f"@  IN NS ns.{origin}", f"ns  IN A {ns_addr}"]
    body = [f"a{i} IN A {a_rdata(i)}" for i in range(names)]
    cn = max(20, names // 1000)
    body += [f"c{i} IN CNAME a{(i * 97) % names}" for i in range(cn)]
    return "\n".join(head + body) + "\n"


def hit_queries(origin: str = "perf.", n: int = HIT_NAMES) -> list[str]:
    """n distinct names, 96 % A, 2 % CNAME, 2 % NXDOMAIN, interleaved deterministically."""
    special = max(1, n // 50)
    names = [f"a{i}.{origin} A" for i in range(n - 2 * special)]
    names += [f"c{i}.{origin} A" for i in range(special)]
    names += [f"nx{i}.{origin} A" for i in range(special)]
    step = 7919  # a prime: i*step mod n visits every index once
    while n % step == 0:
        step += 2
    return [names[(i * step) % n] for i in range(n)]


def miss_queries(origin: str, names: int, skip: int) -> list[str]:
    """A names never asked by the hit set: a<skip>..a<names-1>, in order, each once."""
    return [f"a{i}.{origin} A" for i in range(skip, names)]


def knot_conf(rundir: Path, addr: str, zonedir: Path, zone: str, file: str) -> str:
    """knotd config for one zone on addr@53: 1 UDP worker, nothing written back."""
    return f"""server:
    rundir: "{rundir}"
    pidfile: "{rundir}/knot.pid"
    listen: {addr}@53
    udp-workers: 1
    tcp-workers: 1
    background-workers: 1
log:
  - target: stderr
    any: warning
database:
    storage: "{rundir}/db"
template:
  - id: default
    storage: "{zonedir}"
    zonefile-sync: -1
    zonefile-load: whole
    journal-content: none
zone:
  - domain: "{zone}"
    file: "{file}"
"""


def _write(path: Path, text: str) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def _run(cmd: list[str], cwd: Path) -> str:
    p = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=1800)
    if p.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed: {p.stderr.strip()[-500:]}")
    return p.stdout.strip()


def _sign(state: Path, layout: Layout) -> None:
    """Sign sperf. and the root (ECDSAP256SHA256, one key per zone, NSEC); write ta.ds."""
    keys = state / "keys"
    keys.mkdir(exist_ok=True)
    for f in keys.iterdir():
        f.unlink()
    zones = state / "zones"
    ks = _run(["ldns-keygen", "-a", "ECDSAP256SHA256", "-k", "sperf."], keys)
    kr = _run(["ldns-keygen", "-a", "ECDSAP256SHA256", "-k", "."], keys)
    _run(["ldns-signzone", "-f", str(zones / "sperf.signed"), str(zones / "sperf.zone"), ks], keys)
    root = root_zone(layout, signed=True) + (keys / f"{ks}.ds").read_text()
    _write(keys / "root.zone", root)
    _run(["ldns-signzone", "-o", ".", "-f", str(zones / "root.signed"), str(keys / "root.zone"), kr],
         keys)
    ds = (keys / f"{kr}.ds").read_text().split()
    # "owner IN DS ..." from ldns has no TTL; give one
    _write(state / "ta.ds", " ".join([ds[0], "3600"] + ds[1:]) + "\n")


def prepare(state: Path, layout: Layout, signed: bool, log=print) -> Path:
    """Write (or reuse) the data for `layout` under `state`; returns the zone directory."""
    state.mkdir(parents=True, exist_ok=True)
    stamp_file = state / "stamp.json"
    want = asdict(layout)
    try:
        stamp = json.loads(stamp_file.read_text())
    except (OSError, ValueError):
        stamp = {}
    zones, queries = state / "zones", state / "queries"
    if stamp.get("layout") != want:
        t0 = time.monotonic()
        zones.mkdir(exist_ok=True)
        queries.mkdir(exist_ok=True)
        _write(zones / "root.zone", root_zone(layout, signed=False))
        _write(zones / "perf.zone", leaf_zone("perf.", layout.zone_addr, layout.names))
        hit = hit_queries("perf.")
        _write(queries / "hit.txt", "\n".join(hit) + "\n")
        _write(queries / "miss.txt",
               "\n".join(miss_queries("perf.", layout.names, MISS_FIRST)) + "\n")
        stamp = {"layout": want}
        _write(stamp_file, json.dumps(stamp))
        log(f"wrote zones and queries ({layout.names} names) in {time.monotonic() - t0:.1f} s")
    if signed:
        fresh = time.time() - stamp.get("signed_at", 0) < SIGNATURE_MAX_AGE_S
        if not (fresh and (state / "ta.ds").exists()):
            t0 = time.monotonic()
            log(f"signing sperf. ({layout.signed_names} names) and the root with ldns-signzone ...")
            _write(zones / "sperf.zone",
                   leaf_zone("sperf.", layout.signed_addr, layout.signed_names))
            _write(queries / "vmiss.txt",
                   "\n".join(miss_queries("sperf.", layout.signed_names, 0)) + "\n")
            _sign(state, layout)
            stamp["signed_at"] = time.time()
            _write(stamp_file, json.dumps(stamp))
            log(f"signed in {time.monotonic() - t0:.1f} s")
    return zones
