#!/usr/bin/env bash
# THE test command (README, .ci/run):  tools/test.sh [extra pytest args]   (as root)
#
#   1. tools/install.sh --test: Debian packages (knotd, kdig, ...), .venv, and a
#      non-editable `pip install '.[test]'`: the e2e tests run .venv/bin/kresd
#      exactly as a user would.
#   2. The C extension is also built in place (native/_native*.so, git-ignored):
#      `python -m pytest` puts the project root first on sys.path, so unit and
#      property tests import the source tree, and must get the C backend there.
#   3. pytest over tests/: its exit status is the result of this script
#      (5, "no tests collected", is an error like any other non-zero status).
#   4. Report only: the totals line of the .rpl scenario replay
#      (python -m tests.scenarios.run), when that runner exists. It never
#      changes the exit status; pytest is the judge.
#
# End-to-end tests bind port 53 on 127.0.10.x: they need root and are skipped,
# with the reason shown, otherwise.
set -uo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

bash tools/install.sh --test || { echo "test.sh: tools/install.sh failed" >&2; exit 1; }

# --- in-place build of native._native, when a source is newer than the .so ----
if [ -f native/build.py ]; then
    so="$(ls native/_native*.so 2>/dev/null | head -n1 || true)"
    if [ -z "$so" ] || [ -n "$(find native -maxdepth 1 \( -name '*.c' -o -name '*.h' -o -name build.py \) -newer "$so")" ]; then
        echo "test.sh: building native._native in place" >&2
        .venv/bin/python native/build.py >/dev/null || { echo "test.sh: in-place native build failed" >&2; exit 1; }
    fi
fi

# --- the tests -------------------------------------------------------------------
.venv/bin/python -m pytest -q tests "$@"
rc=$?
case $rc in
    0) ;;
    5) echo "test.sh: pytest collected no tests: that is a failure" >&2 ;;
    *) echo "test.sh: pytest failed with exit status $rc" >&2 ;;
esac

# --- report only: scenario replay totals -------------------------------------------
if [ -f tests/scenarios/run.py ]; then
    out="$(mktemp)"
    timeout 900 .venv/bin/python -m tests.scenarios.run >"$out" 2>&1
    src=$?
    total="$(grep -E '^scenarios:' "$out" | tail -n1)"
    echo "scenario replay (report only, exit status $src): ${total:-no totals line; last output: $(tail -n1 "$out")}"
    rm -f "$out"
fi

exit $rc
