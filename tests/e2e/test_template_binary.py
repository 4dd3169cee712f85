"""The installed `kresd -n` loads Deckard's rendered kresd.j2 as `config`.

For a handful of scenarios: render the template into a working dir, then in a
fresh network namespace (`unshare -rn`; SELF_ADDR on loopback) start `kresd -n`
with that dir as cwd, as Deckard does, and check that it accepts TCP on
SELF_ADDR:53 within 5 s of exec and exits 0 on SIGTERM. Root only (binds
port 53 inside the namespace). The scenarios are the shared data
(tests/shared_data.py): skipped, with the path looked for, when it is absent;
a sample scenario missing from a present folder fails its case.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import pytest

from tests import shared_data
from tests.scenarios import config as sconfig
from tests.scenarios import rpl, template

SAMPLE = ("iter_badglue.rpl", "fwd_val_cname_sibling.rpl", "val_minimal_baddsdigesttype.rpl",
          "world_cz_lidovky_www.rpl", "nsec3_aggr_cache.rpl", "module_dns64.rpl",
          "module_policy_deny_all.rpl", "module_hint_static.rpl")

PROBE = r"""
import socket, sys, time
addr, deadline = sys.argv[1], time.monotonic() + float(sys.argv[2])
while time.monotonic() < deadline:
    try:
        socket.create_connection((addr, 53), timeout=0.2).close()
        sys.exit(0)
    except OSError:
        # poll without time.sleep: a short select timeout on no fds
        import select
        select.select([], [], [], 0.05)
sys.exit(1)
"""

SCRIPT = r"""
set -u
if [ "${SELF#*:}" != "$SELF" ]; then ip -6 addr add "$SELF/128" dev lo nodad; else ip addr add "$SELF/32" dev lo; fi
ip link set lo up
"$KRESD" -n </dev/null >kresd.log 2>&1 &
pid=$!
"$PY" -c "$PROBE" "$SELF" 5
connect=$?
kill -TERM $pid
wait $pid
rc=$?
echo "connect=$connect rc=$rc"
"""

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.root,
    pytest.mark.skipif(os.geteuid() != 0, reason="needs root (unshare -rn, port 53)"),
    pytest.mark.skipif(shutil.which("unshare") is None or shutil.which("ip") is None,
                       reason="needs unshare and ip (util-linux, iproute2)"),
]


@pytest.mark.parametrize("name", SAMPLE, ids=[n.removesuffix(".rpl") for n in SAMPLE])
def test_binary_loads_template(name, kresd_bin, tmp_path):
    path = shared_data.require_scenario(name)  # skip without the data, fail if it lacks this one
    shared_data.require_template()
    ctx = sconfig.context(rpl.parse_file(path))
    template.render(ctx, sconfig.qmin_modes(ctx)[0], tmp_path)
    env = dict(os.environ, SELF=ctx.self_addr, KRESD=str(kresd_bin), PY=sys.executable, PROBE=PROBE)
    res = subprocess.run(["unshare", "-rn", "sh", "-c", SCRIPT], cwd=tmp_path, env=env,
                         capture_output=True, text=True, timeout=60)
    log = (tmp_path / "kresd.log").read_text() if (tmp_path / "kresd.log").exists() else ""
    assert "connect=0 rc=0" in res.stdout, f"{res.stdout}\n{res.stderr}\n--- kresd.log ---\n{log}"
