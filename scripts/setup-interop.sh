#!/usr/bin/env bash
# Set up the py-libp2p interop environment: a separate virtualenv (default: .venv-interop in the repo root,
# or $INTEROP_VENV; a relative $INTEROP_VENV is taken relative to the repo root) with libp2p==0.8.1.
# The interop tests (tests/interop/) run tests/interop/pylibp2p_peer.py with that venv's python; it is kept
# apart from .venv because py-libp2p pins its own protobuf/cryptography/trio versions.
#
# Idempotent: does nothing when the venv already has libp2p 0.8.1 importable. Quiet unless something fails.
# libp2p 0.8.1 depends on fastecdsa 2.3.2, which PyPI ships as a source tarball only: building it needs a C
# compiler, the GMP headers (gmp.h) and the Python headers (Python.h). On Debian/Ubuntu the missing ones are
# apt-installed (gcc, libgmp-dev, python3-dev / pythonX.Y-dev, python3-venv) as root or through sudo.
# Network use: apt and pip only.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

LIBP2P_VERSION="0.8.1"
VENV="${INTEROP_VENV:-.venv-interop}"

say() { [ -n "${INTEROP_VERBOSE:-}" ] && echo "setup-interop: $*" >&2; return 0; }
die() { echo "setup-interop: $*" >&2; exit 1; }

SUDO=""
if [ "$(id -u)" -ne 0 ] && command -v sudo >/dev/null 2>&1; then SUDO="sudo"; fi
APT_UPDATED=""

apt_install() {
    command -v apt-get >/dev/null 2>&1 || return 1
    if [ "$(id -u)" -ne 0 ] && [ -z "$SUDO" ]; then
        die "need root or sudo to install: $*"
    fi
    echo "setup-interop: installing $* (apt)" >&2
    if [ -z "$APT_UPDATED" ]; then
        $SUDO env DEBIAN_FRONTEND=noninteractive apt-get update -qq >/dev/null || return 1
        APT_UPDATED=1
    fi
    $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@" >/dev/null
}

# Succeeds if $1 is a Python >= 3.10 (py-libp2p 0.8.1: Requires-Python >=3.10,<4).
py_ok() { "$1" -c 'import sys; sys.exit(not ((3, 10) <= sys.version_info < (4,)))' >/dev/null 2>&1; }

libp2p_ok() {
    [ -x "$1/bin/python" ] || return 1
    "$1/bin/python" - "$LIBP2P_VERSION" >/dev/null 2>&1 <<'EOF'
import sys
from importlib.metadata import version
assert version("libp2p") == sys.argv[1], version("libp2p")
import libp2p, trio, multiaddr  # noqa: F401  (fails on a broken install)
import libp2p.kad_dht.kad_dht, libp2p.pubsub.gossipsub, libp2p.transport.quic.transport  # noqa: F401
EOF
}

if libp2p_ok "$VENV"; then
    say "already set up: $VENV has libp2p $LIBP2P_VERSION"
    exit 0
fi

find_python() {
    local candidate
    for candidate in python3 python3.13 python3.12 python3.11 python3.10; do
        if command -v "$candidate" >/dev/null 2>&1 && py_ok "$candidate"; then
            command -v "$candidate"
            return 0
        fi
    done
    return 1
}

venv_ok() { "$1" -m venv --help >/dev/null 2>&1 && "$1" -c 'import ensurepip' >/dev/null 2>&1; }
py_ver() { "$1" -c 'import sys; print(f"{sys.version_info[0]}.{sys.version_info[1]}")'; }
# Python.h for the interpreter that builds fastecdsa.
py_headers_ok() {
    "$1" -c 'import os, sys, sysconfig; sys.exit(not os.path.exists(os.path.join(sysconfig.get_paths()["include"], "Python.h")))' \
        >/dev/null 2>&1
}
cc_ok() { command -v cc >/dev/null 2>&1 || command -v gcc >/dev/null 2>&1; }
gmp_ok() {
    local cc
    cc="$(command -v cc || command -v gcc)" || return 1
    printf '#include <gmp.h>\nmpz_t x;\n' | "$cc" -x c -fsyntax-only - >/dev/null 2>&1
}

# A usable interpreter: reuse the venv's when it exists, else find one (apt-installing python3 if needed).
if [ -x "$VENV/bin/python" ] && py_ok "$VENV/bin/python" && "$VENV/bin/python" -m pip --version >/dev/null 2>&1; then
    PY="$VENV/bin/python"
    BASE_PY="$("$PY" -c 'import sys; print(sys._base_executable)')"
else
    PY="$(find_python || true)"
    if [ -z "$PY" ]; then
        apt_install python3 python3-venv python3-pip || die "no Python >= 3.10 found; install one and rerun"
        PY="$(find_python || true)"
        [ -n "$PY" ] || die "no Python >= 3.10 found (python3 is $(python3 --version 2>&1))"
    fi
    if ! venv_ok "$PY"; then
        if [ "$(basename "$PY")" = python3 ]; then pkgs=(python3-venv); else pkgs=("python$(py_ver "$PY")-venv"); fi
        apt_install "${pkgs[@]}" || die "$PY has no working venv/ensurepip; install it and rerun"
        venv_ok "$PY" || die "$PY still has no working venv/ensurepip"
    fi
    BASE_PY="$PY"
fi

# Build dependencies of fastecdsa (only what is missing).
need=()
cc_ok || need+=(gcc libc6-dev)
gmp_ok || need+=(libgmp-dev)
if ! py_headers_ok "$BASE_PY"; then
    if [ "$(basename "$BASE_PY")" = python3 ] || [ "$BASE_PY" = /usr/bin/python3 ]; then
        need+=(python3-dev)
    else
        need+=("python$(py_ver "$BASE_PY")-dev")
    fi
fi
if [ "${#need[@]}" -gt 0 ]; then
    apt_install "${need[@]}" || die "cannot install build dependencies (${need[*]}); install them and rerun"
    cc_ok || die "no C compiler after installing ${need[*]}"
    gmp_ok || die "gmp.h still missing after installing ${need[*]}"
    py_headers_ok "$BASE_PY" || die "Python.h for $BASE_PY still missing after installing ${need[*]}"
fi

if [ "$PY" != "$VENV/bin/python" ]; then
    if [ -e "$VENV" ]; then
        # Only ever delete something that is a (broken) virtualenv or an empty folder.
        if [ -f "$VENV/pyvenv.cfg" ] || { [ -d "$VENV" ] && [ -z "$(ls -A "$VENV")" ]; }; then
            say "replacing unusable $VENV"
            rm -rf "$VENV"
        else
            die "$VENV exists and is not a virtualenv; remove it or set INTEROP_VENV elsewhere"
        fi
    fi
    say "creating $VENV with $PY ($("$PY" --version 2>&1))"
    "$PY" -m venv "$VENV" || die "could not create $VENV"
fi

log="$(mktemp)"
trap 'rm -f "$log"' EXIT
if ! "$VENV/bin/python" -m pip install -q --disable-pip-version-check "libp2p==$LIBP2P_VERSION" >"$log" 2>&1; then
    # Show pip's output, minus this machine's noise about absent local index folders.
    grep -v "^WARNING: Location 'file:" "$log" >&2 || true
    die "pip install libp2p==$LIBP2P_VERSION into $VENV failed"
fi
libp2p_ok "$VENV" || die "libp2p $LIBP2P_VERSION installed into $VENV but does not import"
say "ready: $VENV ($("$VENV/bin/python" --version 2>&1)) with libp2p $LIBP2P_VERSION"
