#!/usr/bin/env bash
# Install kresd-py and what its tests need, idempotently.
#
#   tools/install.sh               system packages + .venv + `pip install .`
#   tools/install.sh --test        the same with the test extras (`pip install '.[test]'`)
#
# Steps (each one is skipped when already done, so a second run takes ~1 s):
#   1. (root) /usr/sbin/policy-rc.d that exits 101, so apt never starts the
#      daemons it installs (knotd would otherwise grab port 53).
#   2. (root) apt-get update + install of the Debian packages below, only when
#      one of them is missing.
#   3. .venv in the project root (python3 -m venv), re-created if broken.
#   4. Non-editable `pip install .` into .venv, as a user would install it; this
#      builds the cffi C extension (native/build.py). Skipped when the sources
#      and the requested extras have not changed since the last install
#      (a content hash is kept in .venv/.kresd-py-install.stamp).
#   5. The example systemd units: etc/kresd@.service is written from its
#      template etc/kresd@.service.in with ExecStart = this .venv/bin/kresd
#      (tools/units.py), so it is right wherever the checkout lives.
#
# Without root the system steps are skipped if every package is present,
# otherwise they run through sudo when available.
# Environment: PYTHON chooses the interpreter for the venv; it must be
# Python >= 3.11. The default is Debian's /usr/bin/python3 when it is new
# enough (an interpreter every user can run: after user('knot-resolver') a
# respawned fork execs the venv's python as that user, and an interpreter in
# root's home, e.g. pyenv's, is unreadable to it), else the python3 on PATH.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

EXTRAS=""
for arg in "$@"; do
    case "$arg" in
        --test) EXTRAS="[test]" ;;
        -h|--help) sed -n '2,22p' "$0"; exit 0 ;;
        *) echo "install.sh: unknown argument: $arg" >&2; exit 2 ;;
    esac
done

# knot/knot-dnsutils: knotd and kdig for the e2e hierarchy; faketime, socat,
# dnsutils: test helpers; gcc + python3-dev: the cffi extension;
# python3-venv: Debian's python3 needs it for `python3 -m venv` (ensurepip);
# systemd: systemd-socket-activate and systemd-analyze (units, activation);
# knot-resolver: Debian's kresd 5.6 (/usr/sbin/kresd), the reference the DNSSEC
# e2e and differential tests run side by side with ours; ldnsutils (ldns-keygen,
# ldns-signzone) signs the e2e hierarchy; knot-dnssecutils: kzonecheck, knsec3hash;
# dnsperf: the load generator of tools/bench/run; prometheus: promtool, which
# checks the http module's /metrics in the e2e tests (its daemon never starts:
# policy-rc.d above).
PACKAGES=(knot knot-dnsutils faketime gcc python3-dev python3-venv socat dnsutils systemd
          knot-resolver ldnsutils knot-dnssecutils dnsperf prometheus)

log() { echo "install.sh: $*" >&2; }

as_root() {
    if [ "$(id -u)" -eq 0 ]; then
        "$@"
    elif command -v sudo >/dev/null 2>&1; then
        sudo "$@"
    else
        log "need root for: $*  (run: sudo tools/install.sh)"
        exit 1
    fi
}

# --- 1. keep apt from starting daemons ----------------------------------------
POLICY='#!/bin/sh
# written by kresd-py tools/install.sh: never start services from apt
exit 101'
if [ ! -x /usr/sbin/policy-rc.d ] || ! grep -qx 'exit 101' /usr/sbin/policy-rc.d; then
    if [ "$(id -u)" -eq 0 ]; then
        log "writing /usr/sbin/policy-rc.d (exit 101)"
        printf '%s\n' "$POLICY" > /usr/sbin/policy-rc.d
        chmod 0755 /usr/sbin/policy-rc.d
    else
        log "not root: leaving /usr/sbin/policy-rc.d alone"
    fi
fi

# --- 2. Debian packages --------------------------------------------------------
missing=()
for p in "${PACKAGES[@]}"; do
    if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q '^install ok installed$'; then
        missing+=("$p")
    fi
done
if [ "${#missing[@]}" -gt 0 ]; then
    log "installing Debian packages: ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    as_root env DEBIAN_FRONTEND=noninteractive apt-get update -q
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${PACKAGES[@]}"
fi

# --- 3. the virtualenv ---------------------------------------------------------
if [ -z "${PYTHON:-}" ]; then
    PYTHON=python3
    if [ -x /usr/bin/python3 ] && /usr/bin/python3 -c 'import sys; assert sys.version_info >= (3, 11)' 2>/dev/null; then
        PYTHON=/usr/bin/python3
    fi
fi
if ! .venv/bin/python -c 'import sys; assert sys.version_info >= (3, 11)' 2>/dev/null; then
    "$PYTHON" -c 'import sys; assert sys.version_info >= (3, 11), sys.version' || {
        log "$PYTHON is older than 3.11; set PYTHON=/path/to/python3.11"; exit 1; }
    log "creating .venv with $("$PYTHON" -c 'import sys; print(sys.executable)')"
    rm -rf .venv
    "$PYTHON" -m venv .venv
fi

# --- 4. pip install (non-editable) ---------------------------------------------
# The stamp covers every file that goes into the wheel plus the extras asked for.
stamp_of_sources() {
    {
        echo "extras=$EXTRAS"
        local paths=() f
        for f in pyproject.toml setup.py setup.cfg MANIFEST.in kresd workers cache native tools; do
            [ -e "$f" ] && paths+=("$f")
        done
        find "${paths[@]}" -type f ! -path '*/__pycache__/*' ! -name '*.pyc' ! -name '*.so' ! -name '*.o' ! -path '*/build/*' \
            ! -path 'native/_native.c' -print0 | sort -z | xargs -0 sha256sum
    } | sha256sum | cut -d' ' -f1
}
STAMP=.venv/.kresd-py-install.stamp
want="$(stamp_of_sources)"
if [ -x .venv/bin/kresd ] && [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "$want" ]; then
    log "kresd-py already installed in .venv (sources unchanged)"
else
    if [ ! -f native/build.py ]; then
        log "warning: native/build.py is missing; the build of the C extension will fail"
    fi
    log "pip install '.$EXTRAS' into .venv"
    rm -f "$STAMP"
    .venv/bin/python -m pip install -q --disable-pip-version-check ".$EXTRAS"
    echo "$want" > "$STAMP"
fi
# --- 5. the example units, filled for this installation ---------------------------
.venv/bin/python tools/units.py --etc etc --kresd "$ROOT/.venv/bin/kresd" >/dev/null || {
    log "could not write etc/kresd@.service from its template"; exit 1; }

log "ok: $ROOT/.venv/bin/kresd"
