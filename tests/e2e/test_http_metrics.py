"""The `http` module on a real `kresd -f 4`: /metrics merged over the forks.

- N UDP queries, each from a fresh socket (so SO_REUSEPORT spreads them over
  the forks), grow `request_udp` by exactly N on every read, whichever fork
  answers the HTTP request (fresh connections spread over the forks too);
- the totals equal the sum of `map 'stats.list()'` over the forks, also after
  dnsperf load while scrapes ran;
- Prometheus's own `promtool check metrics` parses the output; its only
  complaints are the lint about kresd's historic counter names (no `_total`);
- /health, /stats, 404 for an unknown path; `http.prometheus.namespace`.
"""
from __future__ import annotations

import json
import re
import shutil
import socket
import subprocess
import threading
import time
import urllib.error
import urllib.request

import dns.message
import pytest

from tests.conftest import alloc_test_addr, free_port

from .test_kresd_forks import LOCAL_CONFIG, Group, map_json, wait_for

pytestmark = pytest.mark.e2e
LINT_OK = re.compile(r'^\S+ counter metrics should have "_total" suffix$')


def http_get(url: str, timeout=10.0) -> tuple[int, dict, str]:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as r:
            return r.status, dict(r.headers), r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, dict(e.headers), e.read().decode()


def value(text: str, name: str) -> float:
    m = re.search(rf"^{re.escape(name)} (\S+)$", text, re.M)
    assert m, f"no {name} in /metrics"
    return float(m.group(1))


@pytest.fixture(scope="module")
def web(kresd_bin, tmp_path_factory):
    addr = alloc_test_addr()
    dns_port, web_port = free_port(addr), free_port(addr)
    config = LOCAL_CONFIG + (f"modules.load('http')\nnet.listen('{addr}', {web_port}, {{kind = 'webmgmt'}})\n"
                             "http.prometheus.namespace = 'kresd_'\n")
    g = Group(kresd_bin, tmp_path_factory.mktemp("web") / "rundir", ["-f", "4", "-a", f"{addr}@{dns_port}"],
              config=config)
    g.start(4)
    g.dns = (addr, dns_port)
    g.url = f"http://{addr}:{web_port}"
    wait_for(lambda: _up(g.url), 20, "/health")
    yield g
    assert g.stop() == 0
    print(g.log_tail())


def _up(url):
    try:
        return http_get(url + "/health", timeout=2)[0] == 200
    except OSError:
        return False


def ask_fresh(addr, n):
    for i in range(n):
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.settimeout(5)
            s.sendto(dns.message.make_query(f"n{i}.test.", "A").to_wire(), addr)
            s.recvfrom(4096)


def udp_sum(g) -> float:
    return sum(s["request.udp"] for s in map_json(g.leader_tty, "stats.list()"))


def test_request_udp_grows_by_exactly_n_on_every_read(web):
    _, _, text = http_get(web.url + "/metrics")
    before = value(text, "kresd_request_udp")
    assert before == udp_sum(web)
    n = 40
    ask_fresh(web.dns, n)
    seen = set()
    for _ in range(12):
        status, headers, text = http_get(web.url + "/metrics")
        assert status == 200 and headers.get("X-Kresd-Instances") == "4"
        assert value(text, "kresd_request_udp") == before + n
        per = re.findall(r'^kresd_instance_request_udp_total\{instance="(\d)",pid="(\d+)"\} (\S+)$', text, re.M)
        assert len(per) == 4 and sum(float(v) for *_, v in per) == before + n
        seen.add(headers.get("Date"))
    assert udp_sum(web) == before + n
    counts = [s["request.udp"] for s in map_json(web.leader_tty, "stats.list()")]
    assert sum(1 for c in counts if c) >= 2, f"the queries all went to one fork: {counts}"


def test_promtool_parses_the_output(web):
    promtool = shutil.which("promtool")
    assert promtool, "promtool (Debian package prometheus) is installed by tools/install.sh"
    _, _, text = http_get(web.url + "/metrics")
    r = subprocess.run([promtool, "check", "metrics"], input=text, capture_output=True, text=True, timeout=60)
    complaints = [line for line in (r.stdout + r.stderr).splitlines() if line.strip()]
    other = [c for c in complaints if not LINT_OK.match(c)]
    assert not other, other
    types = set(re.findall(r"^# TYPE (\S+) ", text, re.M))
    helps = set(re.findall(r"^# HELP (\S+) ", text, re.M))
    assert types == helps and "kresd_latency" in types and "kresd_answer_noerror" in types


def test_totals_equal_the_forks_sum_after_load_with_scrapes(web, tmp_path):
    dnsperf = shutil.which("dnsperf")
    assert dnsperf, "dnsperf is installed by tools/install.sh"
    stop = threading.Event()
    errors: list = []

    def scrape():
        last = 0.0
        while not stop.is_set():
            try:
                status, _, text = http_get(web.url + "/metrics")
                v = value(text, "kresd_request_udp")
                if status != 200 or v < last:
                    errors.append((status, v, last))
                last = v
            except Exception as e:  # noqa: BLE001
                errors.append(repr(e))
    t = threading.Thread(target=scrape)
    t.start()
    names = tmp_path / "names"
    names.write_text("\n".join(f"p{i}.test. A" for i in range(200)) + "\n")
    try:
        r = subprocess.run([dnsperf, "-s", web.dns[0], "-p", str(web.dns[1]), "-d", str(names), "-l", "2",
                            "-c", "8", "-Q", "3000"], capture_output=True, text=True, timeout=60)
    finally:
        stop.set()
        t.join(30)
    assert r.returncode == 0, r.stderr
    assert not errors, errors[:5]
    _, _, text = http_get(web.url + "/metrics")
    assert value(text, "kresd_request_udp") == udp_sum(web)
    stats = json.loads(http_get(web.url + "/stats")[2])
    assert stats["request.udp"] == udp_sum(web)


def test_other_endpoints(web):
    assert http_get(web.url + "/health")[0] == 200
    assert http_get(web.url + "/nope")[0] == 404
    status, _, body = http_get(web.url + "/frequent")
    assert status == 200 and isinstance(json.loads(body), list)


PROMQL_WORDS = {"rate", "sum", "by", "le", "histogram_quantile", "irate", "increase", "avg", "max", "min",
                "without", "on", "ignoring", "instance", "pid", "server"}


def test_grafana_dashboard_queries_existing_metrics(web):
    """Every metric name the example dashboard (etc/grafana-dashboard.json)
    queries is in /metrics (its namespace taken off: the dashboard uses
    kresd's default, no namespace)."""
    from pathlib import Path

    board = json.loads((Path(__file__).resolve().parents[2] / "etc" / "grafana-dashboard.json").read_text())
    _, _, text = http_get(web.url + "/metrics")
    names = {n[len("kresd_"):] for n in re.findall(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{| )", text, re.M)}
    names |= {n[len("kresd_"):] for n in re.findall(r"^# TYPE (\S+) ", text, re.M)}
    exprs = [t["expr"] for p in board["panels"] for t in p["targets"]]
    assert len(exprs) >= 10
    for expr in exprs:
        for word in re.findall(r"[a-zA-Z_][a-zA-Z0-9_]*", re.sub(r"\[[^\]]*\]", "", expr)):
            assert word in PROMQL_WORDS or word in names, f"{word} (in {expr}) is not in /metrics"
