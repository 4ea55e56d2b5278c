"""The DNS64's UDP server, and RFC 7050 discovery over a real socket.

``python -m p2pnode.tunnels.dns64 --pref64 64:ff9b::/96 [--listen [::]:53] [--name host=198.51.100.80]``
"""

from __future__ import annotations

import argparse
import random
import socket
import sys
from ipaddress import IPv4Address, IPv6Network

from p2pnode.transition.dns64 import Dns64, pref64_from_response, pref64_query


def serve(server: Dns64, listen: tuple[str, int], ready=None) -> None:
    sock = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
    sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
    sock.bind(listen)
    if ready is not None:
        ready(sock.getsockname())
    while True:
        data, addr = sock.recvfrom(4096)
        reply = server.answer(data)
        if reply is not None:
            sock.sendto(reply, addr)


def discover_pref64(server: tuple[str, int], timeout: float = 2.0, rng: random.Random | None = None
                    ) -> list[IPv6Network]:
    """Ask ``server`` for the AAAA records of ipv4only.arpa and read the Pref64s out of them."""
    query_id = (rng or random.Random()).randrange(1 << 16)
    family = socket.AF_INET6 if ":" in server[0] else socket.AF_INET
    with socket.socket(family, socket.SOCK_DGRAM) as sock:
        sock.settimeout(timeout)
        sock.sendto(pref64_query(query_id), server)
        try:
            data, _ = sock.recvfrom(4096)
        except TimeoutError:
            return []
    return pref64_from_response(data, query_id)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m p2pnode.tunnels.dns64")
    parser.add_argument("--pref64", required=True)
    parser.add_argument("--listen", default="[::]:53")
    parser.add_argument("--name", action="append", default=[], help="NAME=IPV4, answered with A and synthesized AAAA")
    args = parser.parse_args(argv)
    host, _, port = args.listen.rpartition(":")
    names = {}
    for item in args.name:
        name, _, addr = item.partition("=")
        names[name] = IPv4Address(addr)
    try:
        serve(Dns64(IPv6Network(args.pref64), names), (host.strip("[]"), int(port)),
              ready=lambda addr: print(f"dns64 listening on [{addr[0]}]:{addr[1]}", flush=True))
    except KeyboardInterrupt:
        return 0
    return 0


if __name__ == "__main__":
    sys.exit(main())
