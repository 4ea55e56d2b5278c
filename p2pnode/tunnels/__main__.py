"""``python -m p2pnode.tunnels SPEC_JSON [--tun NAME] [--setup CMD]... [--on-event KEY:CMD]... [--seconds N]``

Opens the TUN device, runs each ``--setup`` command (``ip addr add ... dev NAME``, routes) once it
exists, prints ``{"ready": ..., "tun": ..., "data_plane": ..., "kernel": {...}}`` and forwards until
SIGTERM/SIGINT (or ``--seconds``), then prints ``{"stats": ..., "drops": ...}``. ``--on-event KEY:CMD`` runs
CMD, formatted with the event's fields, when the endpoint reports an event with KEY (a Teredo client's
``qualified`` address: ``--on-event 'qualified:ip -6 addr add {qualified}/32 dev tun0'``).
"""

from __future__ import annotations

import argparse
import json
import shlex
import signal
import subprocess
import sys
import time

from p2pnode.tunnels import kernel
from p2pnode.tunnels.plane import Plane
from p2pnode.tunnels.spec import SpecError, build


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m p2pnode.tunnels", description=__doc__.split("\n\n")[1])
    parser.add_argument("spec", help="the endpoint as JSON (see p2pnode/tunnels/spec.py)")
    parser.add_argument("--tun", default="p2pt0", help="TUN device name")
    parser.add_argument("--setup", action="append", default=[], help="a command to run once the device exists")
    parser.add_argument("--on-event", action="append", default=[], metavar="KEY:CMD",
                        help="a command to run when the endpoint reports an event with KEY ({KEY} in CMD: its value)")
    parser.add_argument("--seconds", type=float, default=None, help="stop after this long")
    args = parser.parse_args(argv)
    try:
        spec = json.loads(args.spec)
        endpoint = build(spec)
    except (json.JSONDecodeError, SpecError) as exc:
        print(f"p2pnode.tunnels: bad spec: {exc}", file=sys.stderr)
        return 2
    try:
        plane = Plane(endpoint, args.tun)
    except OSError as exc:
        print(f"p2pnode.tunnels: cannot open the data plane: {exc.strerror or exc}", file=sys.stderr)
        return 1
    for command in args.setup:
        proc = subprocess.run(shlex.split(command), capture_output=True, text=True)
        if proc.returncode:
            print(f"p2pnode.tunnels: setup {command!r} failed: {proc.stderr.strip()}", file=sys.stderr)
            plane.close()
            return 1
    plane.on_event = _event_commands(args.on_event)
    signal.signal(signal.SIGTERM, plane.stop)
    signal.signal(signal.SIGINT, plane.stop)
    found = kernel.probe() if spec.get("probe_kernel", False) else {}
    print(json.dumps({"ready": f"{endpoint.mechanism} {endpoint.role}", "tun": plane.tun_name,
                      "data_plane": kernel.data_plane(endpoint.mechanism, found), "kernel": found}), flush=True)
    plane.run(None if args.seconds is None else time.monotonic() + args.seconds)
    print(json.dumps({"stats": dict(plane.stats), "drops": dict(endpoint.drops)}), flush=True)
    plane.close()
    return 0


def _event_commands(specs: list[str]):
    """The plane's event hook: each ``KEY:CMD`` whose KEY the event has runs CMD (failures printed, not fatal)."""
    hooks = [spec.partition(":")[::2] for spec in specs]

    def on_event(event: dict) -> None:
        for key, command in hooks:
            if key in event:
                proc = subprocess.run(shlex.split(command.format(**event)), capture_output=True, text=True)
                print(json.dumps({"on_event": key, "command": command.format(**event), "rc": proc.returncode,
                                  "stderr": proc.stderr.strip()}), flush=True)

    return on_event if hooks else None


if __name__ == "__main__":
    sys.exit(main())
