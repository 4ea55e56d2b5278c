"""mDNS discovery on the local link, as libp2p's mDNS spec has it (``discovery/mdns.md``), over ``zeroconf``.

The node announces itself as ``<peer-name>._p2p._udp.local`` (``peer-name``: a random lower-case string of 32
to 63 letters and digits, new at each start, so the name tells nothing about the node) with one TXT string
``dnsaddr=<multiaddr>/p2p/<peer id>`` per address a neighbour can dial, and browses ``_p2p._udp.local``:
each instance found is resolved, its ``dnsaddr=`` strings parsed (strings that are not multiaddrs of one peer
are dropped and logged), the addresses learnt and the peer dialled, as go-libp2p's mDNS notifee does. From then
on the peer joins the DHT and pub-sub through Identify as any peer does.

Probed, never assumed: ``start`` looks for an interface that is up, is not loopback, has the multicast flag
and an IPv4 address; without one (or when the mDNS port cannot be bound) discovery stays off and
``status()`` says why. Loopback and link-local IPv6 addresses are never announced (a neighbour cannot use them).
"""

from __future__ import annotations

import asyncio
import logging
import string
from typing import TYPE_CHECKING, Any

from multiaddr import Multiaddr

from p2pnode.identity import PeerId

if TYPE_CHECKING:
    from p2pnode.runtime.node import Node

log = logging.getLogger("p2pnode.mdns")

SERVICE = "_p2p._udp.local."
TXT_KEY = "dnsaddr="
MAX_ADDRS = 16  # TXT strings announced; each is at most 255 bytes, the whole answer stays in one packet
REFRESH = 30.0  # seconds between checks of our own addresses (a change re-announces them)
RESOLVE_TIMEOUT = 3.0
_NAME_CHARS = string.ascii_lowercase + string.digits


def peer_name(rng) -> str:
    """A fresh instance name: the spec's random lower-case alphanumeric string of 32 to 63 characters."""
    return "".join(rng.choice(_NAME_CHARS) for _ in range(rng.randint(32, 63)))


def encode_txt(addrs: list[str]) -> bytes:
    """The TXT record's wire form (RFC 6763 §6.1: length-prefixed strings), one ``dnsaddr=`` string per address;
    an address too long for one string is left out."""
    out = bytearray()
    for addr in addrs:
        item = (TXT_KEY + addr).encode()
        if len(item) <= 255:
            out += bytes([len(item)]) + item
    return bytes(out)


def decode_txt(raw: bytes) -> list[str]:
    """The values of the ``dnsaddr=`` strings of a TXT record's wire form (keys case-insensitive, RFC 6763
    §6.4); other strings are ignored, a string running past the record's end ends it."""
    out, i = [], 0
    while i < len(raw):
        n = raw[i]
        item = raw[i + 1:i + 1 + n]
        i += 1 + n
        if len(item) < n:
            break
        text = item.decode("utf-8", "replace")
        if text[:len(TXT_KEY)].lower() == TXT_KEY:
            out.append(text[len(TXT_KEY):])
    return out


def peer_addrs(values: list[str]) -> tuple[PeerId | None, list[Multiaddr], list[str]]:
    """The announcing peer and its addresses from ``dnsaddr=`` values: each must be a multiaddr ending in
    ``/p2p/<peer id>``, all of the same peer (the first one's); the rest are named in the problems."""
    peer: PeerId | None = None
    addrs: list[Multiaddr] = []
    problems: list[str] = []
    for value in values:
        try:
            addr = Multiaddr(value)
            text = addr.get_peer_id()
            owner = PeerId.from_base58(text) if text else None
        except Exception as exc:  # multiaddr raises kinds of its own, IdentityError a bad peer ID
            problems.append(f"{value[:80]!r} is not a multiaddr with a peer ID: {str(exc)[:80]}")
            continue
        if owner is None:
            problems.append(f"{value[:80]!r} does not end in /p2p/<peer id>")
        elif peer is None or owner == peer:
            peer = owner
            addrs.append(addr)
        else:
            problems.append(f"{value[:80]!r} is another peer's ({owner.short()}, not {peer.short()})")
    return peer, addrs, problems


def multicast_interfaces() -> dict[str, list[str]]:
    """Interfaces that can carry mDNS: up, not loopback, multicast, with their IPv4 addresses."""
    import socket

    import psutil

    stats = psutil.net_if_stats()
    out: dict[str, list[str]] = {}
    for name, addrs in psutil.net_if_addrs().items():
        stat = stats.get(name)
        flags = set(getattr(stat, "flags", "").split(",")) if stat is not None else set()
        if stat is None or not stat.isup or "loopback" in flags or "multicast" not in flags:
            continue
        ips = [a.address for a in addrs if a.family == socket.AF_INET and not a.address.startswith("127.")]
        if ips:
            out[name] = ips
    return out


def _neighbour_usable(addr: Multiaddr) -> bool:
    parts = addr.protocols()
    if not parts or parts[0].name not in ("ip4", "ip6"):
        return False
    host = addr.value_for_protocol(parts[0].name)
    return not (host.startswith("127.") or host == "::1" or host.lower().startswith("fe80")
                or "p2p-circuit" in (p.name for p in parts))


class MdnsDiscovery:
    """Announce this node and find its neighbours on the local link (see the module's text)."""

    def __init__(self, node: Node):
        self.node = node
        self.name = peer_name(node.runtime.rng)
        self.state = "off"
        self.reason = ""
        self.interfaces: dict[str, list[str]] = {}
        self.discovered: dict[PeerId, dict[str, Any]] = {}
        self.refused = 0  # announcements whose TXT named no usable peer
        self.started_at = 0.0
        self._zc = None
        self._browser = None
        self._info = None
        self._announced: list[str] = []
        self._task: asyncio.Task | None = None

    async def start(self) -> None:
        from zeroconf import IPVersion, NonUniqueNameException, ServiceStateChange
        from zeroconf.asyncio import AsyncServiceBrowser, AsyncZeroconf

        self.started_at = self.node.runtime.now()
        self.interfaces = multicast_interfaces()
        if not self.interfaces:
            self.state, self.reason = "unavailable", "no interface is up with multicast and an IPv4 address"
            log.info("mDNS off: %s", self.reason)
            return
        ips = sorted({ip for ips in self.interfaces.values() for ip in ips})
        try:
            self._zc = AsyncZeroconf(interfaces=ips, ip_version=IPVersion.V4Only)
            self._info = self._service_info(ips)
            await self._zc.async_register_service(self._info)
        except (OSError, NonUniqueNameException) as exc:
            self.state, self.reason = "unavailable", f"cannot announce on {', '.join(ips)}: {exc}"
            log.warning("mDNS off: %s", self.reason)
            await self._close()
            return

        def changed(zeroconf, service_type: str, name: str, state_change) -> None:
            if state_change in (ServiceStateChange.Added, ServiceStateChange.Updated) and \
                    name.lower() != self._info.name.lower():
                self.node.swarm.spawn(self._resolve(name))

        self._browser = AsyncServiceBrowser(self._zc.zeroconf, SERVICE, handlers=[changed])
        self.state = "running"
        self._task = self.node.swarm.spawn(self._refresh())
        log.info("mDNS: announcing %s on %s", self.name, ", ".join(sorted(self.interfaces)))

    def _addrs(self) -> list[str]:
        suffix = Multiaddr(f"/p2p/{self.node.peer_id}")
        return [str(a.encapsulate(suffix)) for a in self.node.swarm.advertised_addrs()
                if _neighbour_usable(a)][:MAX_ADDRS]

    def _service_info(self, ips: list[str]):
        from zeroconf import ServiceInfo

        self._announced = self._addrs()
        port = next((int(Multiaddr(a).value_for_protocol(p)) for a in self._announced for p in ("tcp", "udp")
                     if p in (q.name for q in Multiaddr(a).protocols())), 4001)
        return ServiceInfo(SERVICE, f"{self.name}.{SERVICE}", port=port, properties=encode_txt(self._announced),
                           server=f"{self.name}.local.", parsed_addresses=ips)

    async def _refresh(self) -> None:
        """Re-announce when our addresses change (a port mapping, a relay reservation, a new interface)."""
        while True:
            await asyncio.sleep(REFRESH)
            if self._addrs() != self._announced:
                self._info = self._service_info(sorted({ip for v in self.interfaces.values() for ip in v}))
                await self._zc.async_update_service(self._info)

    async def _resolve(self, name: str) -> None:
        from zeroconf.asyncio import AsyncServiceInfo

        info = AsyncServiceInfo(SERVICE, name)
        if not await info.async_request(self._zc.zeroconf, RESOLVE_TIMEOUT * 1000) or not self.node.running:
            return
        peer, addrs, problems = peer_addrs(decode_txt(info.text or b""))
        for problem in problems:
            log.info("mDNS: %s: %s", name, problem)
        if peer is None or not addrs:
            self.refused += 1
            return
        if peer == self.node.peer_id:
            return
        self.found(peer, addrs)

    def found(self, peer: PeerId, addrs: list[Multiaddr]) -> None:
        node = self.node
        first = peer not in self.discovered
        self.discovered[peer] = {"addrs": [str(a) for a in addrs],
                                 "after": round(node.runtime.now() - self.started_at, 3)}
        node.swarm.learn(peer, addrs)
        if first:
            log.info("mDNS: found %s (%d addresses)", peer.short(), len(addrs))
        self._dial(peer)

    def _dial(self, peer: PeerId) -> None:
        node = self.node
        if node.host is not None and node.host.running and node.swarm.connection(peer) is None:
            node.host.dial(node.info_of(peer))

    def joined(self) -> None:
        """The node joined (``Node.join``): dial the neighbours found while it only listened."""
        for peer in self.discovered:
            self._dial(peer)

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
        await self._close()
        if self.state == "running":
            self.state = "stopped"

    async def _close(self) -> None:
        zc, self._zc = self._zc, None
        if zc is None:
            return
        if self._browser is not None:
            await self._browser.async_cancel()
            self._browser = None
        await zc.async_unregister_all_services()  # the goodbye packets: neighbours forget us at once
        await zc.async_close()

    def status(self) -> dict[str, Any]:
        """For ``/debug/peers`` and metrics."""
        first = min((d["after"] for d in self.discovered.values()), default=None)
        return {"state": self.state, "reason": self.reason, "peer_name": self.name,
                "interfaces": sorted(self.interfaces), "announced": list(self._announced),
                "discovered": {str(p): d for p, d in self.discovered.items()},
                "first_discovery_seconds": first, "refused": self.refused}
