"""What this kernel and userland offer instead of a user-space data plane, probed, never assumed:
sit (protocol 41 devices for 6to4/6rd/ISATAP), ip6tnl (IPv4-in-IPv6 for DS-Lite and MAP-E), Jool (its
kernel module), and the Debian user-space daemons tayga (NAT64/CLAT) and miredo (Teredo).

Device types are tried by creating one in a scratch network namespace, which is deleted with
everything in it; without root nothing is created and the devices count as unavailable.
"""

from __future__ import annotations

import os
import shutil
import subprocess

DEVICES = {"sit": ["type", "sit"], "ip6tnl": ["type", "ip6tnl", "mode", "ipip6"]}
PROGRAMS = ("tayga", "miredo", "jool")
# which kernel or daemon data plane could carry a mechanism's host and infrastructure side
KERNEL_PLANES = {"6to4": "sit", "6rd": "sit", "isatap": "sit", "dslite": "ip6tnl", "map-e": "ip6tnl",
                 "464xlat": "tayga", "teredo": "miredo"}


def _run(argv: list[str]) -> tuple[bool, str]:
    try:
        proc = subprocess.run(argv, capture_output=True, text=True, timeout=5)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return False, str(exc)
    return proc.returncode == 0, (proc.stderr or proc.stdout).strip()


def probe() -> dict[str, str]:
    """Each device type or program: "available" or why not."""
    found: dict[str, str] = {}
    if os.geteuid() != 0 or not shutil.which("ip"):
        found.update({name: "not probed (needs root and iproute2)" for name in DEVICES})
    else:
        ns = f"p2pt-probe-{os.getpid()}"
        ok, out = _run(["ip", "netns", "add", ns])
        try:
            for name, args in DEVICES.items():
                if not ok:
                    found[name] = f"no scratch namespace: {out}"
                    continue
                created, detail = _run(["ip", "-n", ns, "link", "add", f"p{name}", *args])
                found[name] = "available" if created else f"cannot create: {detail or 'failed'}"
        finally:
            if ok:
                _run(["ip", "netns", "del", ns])
    for program in PROGRAMS:
        found[program] = "available" if shutil.which(program) else "not installed"
    if found["jool"] == "available" and not os.path.exists("/sys/module/jool"):
        found["jool"] = "installed, but the kernel module jool is not loaded"
    return found


def data_plane(mechanism: str, found: dict[str, str]) -> str:
    """What carries ``mechanism`` here: "user-space", or why the kernel's would (and we still use ours:
    the kernel paths are for the Vagrant VM, where the README compares them)."""
    kernel = KERNEL_PLANES.get(mechanism)
    if kernel and found.get(kernel) == "available":
        return f"user-space ({kernel} available)"
    return "user-space"
