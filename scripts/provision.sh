#!/usr/bin/env bash
# Provision an emulation host (the Vagrant VM, or plain Debian 12 / Ubuntu as root): Mininet, Open vSwitch,
# netem and friends, then the project's .venv via scripts/setup.sh as the invoking user.
set -euo pipefail
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"

SUDO=""
if [ "$(id -u)" -ne 0 ]; then
    command -v sudo >/dev/null 2>&1 || { echo "provision: needs root or sudo" >&2; exit 1; }
    SUDO="sudo"
fi

export DEBIAN_FRONTEND=noninteractive
$SUDO env DEBIAN_FRONTEND=noninteractive apt-get update -qq
$SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
    mininet openvswitch-switch iputils-ping bridge-utils nftables iproute2 python3-venv python3-pip
# a real home router for the port mapping tests (UPnP IGD, NAT-PMP, PCP); the package's own service stays off
$SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq miniupnpd-nftables
if command -v systemctl >/dev/null 2>&1 && [ -d /run/systemd/system ]; then
    $SUDO systemctl disable --now miniupnpd >/dev/null 2>&1 || true
fi

if ! $SUDO modprobe sch_netem 2>/dev/null; then
    echo "provision: warning: could not load sch_netem; link delay/loss emulation will be unavailable" >&2
fi

# Start Open vSwitch: through systemd when it is running, else the init script (containers); never fatal,
# since the emulation falls back to Linux bridges without it.
if command -v systemctl >/dev/null 2>&1 && [ -d /run/systemd/system ]; then
    $SUDO systemctl enable --now openvswitch-switch >/dev/null 2>&1 \
        || echo "provision: warning: could not enable/start openvswitch-switch" >&2
elif command -v service >/dev/null 2>&1; then
    $SUDO service openvswitch-switch start >/dev/null 2>&1 \
        || echo "provision: warning: could not start openvswitch-switch" >&2
else
    echo "provision: warning: no systemd or service command; openvswitch-switch not started" >&2
fi

# The venv belongs to whoever invoked us (vagrant runs this script through sudo as the vagrant user).
as_owner() {
    if [ "$(id -u)" -eq 0 ] && [ -n "${SUDO_USER:-}" ] && [ "$SUDO_USER" != root ]; then
        sudo -u "$SUDO_USER" -H "$@"
    else
        "$@"
    fi
}
as_owner bash "$REPO/scripts/setup.sh"

# The emulation extra: Mininet's Python package for the venv's Python (the apt package only serves the system
# python3; mnexec and the mn script come from apt). Falls back to the pinned package if the extra is missing.
as_owner "$REPO/.venv/bin/pip" install -q --disable-pip-version-check -e "$REPO[emu]"
if ! "$REPO/.venv/bin/python" -c 'import mininet.net' >/dev/null 2>&1; then
    as_owner "$REPO/.venv/bin/pip" install -q --disable-pip-version-check 'mininet==2.3.0.dev6'
fi
"$REPO/.venv/bin/python" -c 'import mininet.net' \
    || { echo "provision: the venv cannot import mininet" >&2; exit 1; }
echo "provision: capabilities (python -m topologies.probe):"
(cd "$REPO" && $SUDO "$REPO/.venv/bin/python" -m topologies.probe) || true
echo "provision: done"
