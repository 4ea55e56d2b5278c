"""The I/O loop of one data plane: a TUN device and the endpoint's socket, fed to the sans-IO endpoint.

One thread, ``selectors`` over two file descriptors, no per-packet allocation beyond the packet: the
endpoint's work dominates. Errors from the kernel on send (no route, message too long) are counted,
never fatal; so is everything the endpoint drops.
"""

from __future__ import annotations

import ipaddress
import json
import os
import selectors
import socket
import time
from collections import Counter

from p2pnode.transition.endpoint import IP4, IP6, TUN, UDP, Endpoint, Out
from p2pnode.tunnels.tun import open_tun

TICK = 0.5


def _text(addr: bytes) -> str:
    return socket.inet_ntop(socket.AF_INET if len(addr) == 4 else socket.AF_INET6, addr)


def open_socket(endpoint: Endpoint) -> socket.socket | None:
    spec = endpoint.socket
    if spec is None:
        return None
    if spec.kind == IP4:
        sock = socket.socket(socket.AF_INET, socket.SOCK_RAW, spec.number)
        if spec.bind:
            sock.bind((_text(spec.bind), 0))
        for group in spec.groups:
            sock.setsockopt(socket.IPPROTO_IP, socket.IP_ADD_MEMBERSHIP, group + (spec.bind or bytes(4)))
        if spec.groups:
            sock.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_LOOP, 0)
            if spec.bind:
                sock.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_IF, spec.bind)
    elif spec.kind == IP6:
        sock = socket.socket(socket.AF_INET6, socket.SOCK_RAW, spec.number)
        if spec.bind:
            sock.setsockopt(socket.IPPROTO_IPV6, 78, 1)  # IPV6_FREEBIND: the MAP address may not be on a link
            sock.bind((_text(spec.bind), 0))
    elif spec.kind == UDP:
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("0.0.0.0", spec.number))
    else:
        raise ValueError(f"unknown socket kind {spec.kind!r}")
    sock.setblocking(False)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
    return sock


class Plane:
    """An endpoint between its TUN device and its socket."""

    def __init__(self, endpoint: Endpoint, tun_name: str):
        self.endpoint = endpoint
        self.tun_fd, self.tun_name = open_tun(tun_name)
        self.sock = open_socket(endpoint)
        self.stats: Counter[str] = Counter()
        self.on_event = None  # called with each event the endpoint reports (after it is printed)
        self._running = True

    def stop(self, *_):
        self._running = False

    def send(self, outs: list[Out]) -> None:
        if self.endpoint.events:
            for event in self.endpoint.events:
                print(json.dumps(event), flush=True)
                if self.on_event is not None:
                    self.on_event(event)
            self.endpoint.events.clear()
        for out in outs:
            try:
                if out.via == TUN:
                    os.write(self.tun_fd, out.data)
                elif out.via == UDP:
                    self.sock.sendto(out.data, (_text(out.dest[0]), out.dest[1]))
                elif out.via == IP4:
                    self.sock.sendto(out.data, (_text(out.dest), 0))
                else:
                    self.sock.sendto(out.data, (_text(out.dest), 0, 0, 0))
                self.stats[f"out_{out.via}"] += 1
            except OSError as exc:
                self.stats[f"send error: {exc.strerror}"] += 1

    def run(self, deadline: float | None = None) -> None:
        sel = selectors.DefaultSelector()
        sel.register(self.tun_fd, selectors.EVENT_READ, "tun")
        if self.sock is not None:
            sel.register(self.sock, selectors.EVENT_READ, "net")
        endpoint, next_tick = self.endpoint, 0.0
        v4 = self.sock is not None and self.sock.family == socket.AF_INET and self.sock.type == socket.SOCK_DGRAM
        while self._running:
            now = time.monotonic()
            if deadline is not None and now >= deadline:
                break
            if now >= next_tick:
                self.send(endpoint.tick(now))
                next_tick = now + TICK
            for key, _ in sel.select(timeout=min(TICK, max(0.0, next_tick - now))):
                for _ in range(64):  # drain a burst before looking at the clock again
                    try:
                        if key.data == "tun":
                            packet = os.read(self.tun_fd, 65535)
                            self.stats["in_tun"] += 1
                            self.send(endpoint.from_tun(packet))
                        else:
                            packet, addr = self.sock.recvfrom(65535)
                            self.stats["in_net"] += 1
                            if v4:
                                source = (socket.inet_aton(addr[0]), addr[1])
                            else:
                                source = ipaddress.ip_address(addr[0].split("%")[0]).packed
                            self.send(endpoint.from_net(packet, source))
                    except BlockingIOError:
                        break
                    except Exception as exc:  # a bug for one packet must not stop the data plane
                        self.stats[f"endpoint error: {type(exc).__name__}: {exc}"] += 1
        sel.close()

    def close(self) -> None:
        os.close(self.tun_fd)
        if self.sock is not None:
            self.sock.close()
