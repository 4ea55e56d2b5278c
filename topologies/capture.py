"""``python -m topologies.capture IFACE [IFACE...] --seconds S``: the network-layer lengths of the packets
each interface sends and receives, as one JSON line ``{iface: {"out": {length: count}, "in": {...}}}``.

An AF_PACKET datagram socket per interface (the link-layer header removed, so an Ethernet link and a TUN device
give the same IP-level lengths); what a tunnel adds to a packet is then the outer length on the access link less
the inner one on the TUN device. Runs inside a node's namespace (``net.popen``); prints ``ready`` first.
"""

from __future__ import annotations

import argparse
import json
import select
import socket
import sys
import time
from collections import Counter

ETH_P_ALL = 0x0003
PACKET_OUTGOING = 4


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m topologies.capture")
    parser.add_argument("ifaces", nargs="+")
    parser.add_argument("--seconds", type=float, required=True)
    args = parser.parse_args(argv)
    socks = {}
    for name in args.ifaces:
        sock = socket.socket(socket.AF_PACKET, socket.SOCK_DGRAM, socket.htons(ETH_P_ALL))
        sock.bind((name, 0))
        socks[sock] = name
    counts = {name: {"out": Counter(), "in": Counter()} for name in args.ifaces}
    print("ready", flush=True)
    deadline = time.monotonic() + args.seconds
    while (left := deadline - time.monotonic()) > 0:
        for sock in select.select(list(socks), [], [], left)[0]:
            data, addr = sock.recvfrom(65535)
            counts[socks[sock]]["out" if addr[2] == PACKET_OUTGOING else "in"][len(data)] += 1
    print(json.dumps({name: {k: dict(v) for k, v in c.items()} for name, c in counts.items()}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
