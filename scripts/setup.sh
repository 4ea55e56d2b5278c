#!/usr/bin/env bash
# Set up the development environment: a Python >= 3.11 with venv, then .venv with p2pnode and its dev extras.
# With --tests, also the py-libp2p 0.8.1 virtualenv and the js-libp2p 3.x peer the interoperability tests talk to
# (scripts/setup-interop.sh, scripts/setup-interop-js.sh), and the MCP conformance suite (scripts/setup-conformance.sh).
# Idempotent; runs from any directory. On Debian/Ubuntu it apt-installs Python/venv when they are missing
# (as root, or through sudo). Network use: apt and pip only.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

WITH_TESTS=""
for arg in "$@"; do
    case "$arg" in
        --tests) WITH_TESTS=1 ;;
        *) echo "usage: scripts/setup.sh [--tests]" >&2; exit 2 ;;
    esac
done

say() { echo "setup: $*"; }
die() { echo "setup: $*" >&2; exit 1; }

SUDO=""
if [ "$(id -u)" -ne 0 ]; then
    if command -v sudo >/dev/null 2>&1; then SUDO="sudo"; fi
fi

apt_install() {
    command -v apt-get >/dev/null 2>&1 || return 1
    if [ "$(id -u)" -ne 0 ] && [ -z "$SUDO" ]; then
        die "need root or sudo to install: $*"
    fi
    say "installing $* (apt)"
    $SUDO env DEBIAN_FRONTEND=noninteractive apt-get update -qq
    $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null
}

# Succeeds if $1 is a Python >= 3.11.
py_ok() { "$1" -c 'import sys; sys.exit(sys.version_info < (3, 11))' >/dev/null 2>&1; }

find_python() {
    local candidate
    for candidate in python3 python3.13 python3.12 python3.11; do
        if command -v "$candidate" >/dev/null 2>&1 && py_ok "$candidate"; then
            command -v "$candidate"
            return 0
        fi
    done
    return 1
}

# Venv needs both the venv module and ensurepip (Debian/Ubuntu split them into pythonX.Y-venv).
venv_ok() { "$1" -m venv --help >/dev/null 2>&1 && "$1" -c 'import ensurepip' >/dev/null 2>&1; }

if [ -x .venv/bin/python ] && py_ok .venv/bin/python && .venv/bin/python -m pip --version >/dev/null 2>&1; then
    :   # existing venv is usable
else
    PY="$(find_python || true)"
    if [ -z "$PY" ]; then
        # Debian 12 / Ubuntu 24.04: python3 is new enough. Ubuntu 22.04: python3 is 3.10, python3.11 is in universe.
        apt_install python3 python3-venv python3-pip || die "no Python >= 3.11 found; install one and rerun"
        PY="$(find_python || true)"
        if [ -z "$PY" ]; then
            apt_install python3.11 python3.11-venv || true
            PY="$(find_python || true)"
        fi
        [ -n "$PY" ] || die "no Python >= 3.11 found (python3 is $(python3 --version 2>&1)); install one and rerun"
    fi
    if ! venv_ok "$PY"; then
        ver="$("$PY" -c 'import sys; print(f"{sys.version_info[0]}.{sys.version_info[1]}")')"
        if [ "$(basename "$PY")" = python3 ]; then pkgs=(python3-venv python3-pip); else pkgs=("python$ver-venv"); fi
        apt_install "${pkgs[@]}" || die "$PY has no working venv/ensurepip; install it and rerun"
        venv_ok "$PY" || die "$PY still has no working venv/ensurepip"
    fi
    if [ -e .venv ]; then
        say "replacing unusable .venv"
        rm -rf .venv
    fi
    say "creating .venv with $PY ($("$PY" --version 2>&1))"
    "$PY" -m venv .venv
fi

.venv/bin/pip install -q --disable-pip-version-check --upgrade pip
.venv/bin/pip install -q --disable-pip-version-check -e '.[dev]'
# atheris (coverage-guided fuzzing, python -m fuzz) ships wheels for Linux x86-64 only; elsewhere the fuzz
# runner splices seed inputs instead
.venv/bin/pip install -q --disable-pip-version-check -e '.[fuzz]' 2>/dev/null \
    || say "atheris did not install: python -m fuzz will splice seed inputs instead of coverage-guided fuzzing"
# The simulator's hot paths compiled with mypyc (p2pnode/native.py) when there is a C compiler; pure Python otherwise.
if command -v cc >/dev/null 2>&1; then
    .venv/bin/pip install -q --disable-pip-version-check -e '.[dev,native]'
    .venv/bin/python scripts/build-native.py || say "compiling the hot paths failed: the simulator runs pure Python"
else
    say "no C compiler: the simulator runs pure Python (scripts/build-native.py compiles its hot paths)"
fi
if [ -n "$WITH_TESTS" ]; then
    say "setting up the py-libp2p interop venv (first time: about a minute)"
    bash scripts/setup-interop.sh
    say "setting up the js-libp2p interop peer (first time: about a minute, 290 MB)"
    bash scripts/setup-interop-js.sh
    say "setting up the MCP conformance suite (npm)"
    bash scripts/setup-conformance.sh || say "MCP conformance suite not installed; its tests will skip"
fi
say "ready: .venv ($(.venv/bin/python --version 2>&1)) with p2pnode[dev]; try .venv/bin/simulate --help"
