"""Opening a TUN device: /dev/net/tun and the TUNSETIFF ioctl (Linux ``if_tun.h``), no packet-info header,
so each read or write is one bare IPv4 or IPv6 packet."""

from __future__ import annotations

import fcntl
import os
import struct

TUNSETIFF = 0x400454CA
IFF_TUN, IFF_NO_PI = 0x0001, 0x1000


def open_tun(name: str) -> tuple[int, str]:
    """A non-blocking file descriptor for a new TUN device, and the name the kernel gave it."""
    if len(name.encode()) > 15:
        raise ValueError(f"interface name {name!r} is longer than 15 bytes")
    fd = os.open("/dev/net/tun", os.O_RDWR | os.O_NONBLOCK)
    try:
        result = fcntl.ioctl(fd, TUNSETIFF, struct.pack("16sH", name.encode(), IFF_TUN | IFF_NO_PI))
    except OSError:
        os.close(fd)
        raise
    return fd, result[:16].rstrip(b"\0").decode()
