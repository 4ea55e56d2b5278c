"""Router port mapping on a real node: PCP, NAT-PMP (``p2pnode.portmap.messages``) and UPnP IGD (``miniupnpc``).

``PortMapper.start`` (run in the background by ``Node.start`` when ``[nat] port_mapping`` is on) probes, in the
configured order, until one protocol maps the node's IPv4 listening ports (TCP and QUIC's UDP):

- PCP and NAT-PMP: requests to UDP 5351 of the default gateway (from ``/proc/net/route``), retransmitted after
  0.25, 0.5 and 1 s (RFC 6886 §3.1's schedule, cut short: a router that has not answered in 1.75 s has no
  server); a PCP answer must carry our nonce;
- UPnP IGD: SSDP discovery and the IGD's AddPortMapping (AddAnyPortMapping when the port is taken) through
  ``miniupnpc``, in a thread (the library blocks).

Each mapping asks for the internal port as the external one, for ``lease`` seconds, and is renewed at half its
lifetime; a failed renewal drops the addresses. The mapped addresses (``/ip4/<external ip>/tcp/<port>``,
``/ip4/<external ip>/udp/<port>/quic-v1``) are added to what the node advertises, and with NAT traversal on
AutoNAT tests them like any other candidate. ``stop`` deletes the mappings. Nothing is assumed: without a
gateway, or when no protocol answers, ``status()`` says what each probe met.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import os
import socket
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from multiaddr import Multiaddr

from p2pnode.framing import CodecError
from p2pnode.portmap import messages as pm

if TYPE_CHECKING:
    from p2pnode.runtime.node import Node

log = logging.getLogger("p2pnode.portmap")

PROTOCOLS = ("pcp", "nat-pmp", "upnp")
LEASE = 3600
RETRANSMIT = (0.25, 0.5, 1.0)
UPNP_DISCOVER_MS = 1000
DESCRIPTION = "p2pnode"


class PortMapError(Exception):
    """A protocol that could not map a port: no server, a refusal (its result code), or a bad answer."""


@dataclass
class Mapping:
    protocol: str
    transport: str  # "tcp" / "udp"
    internal_port: int
    external_ip: str
    external_port: int
    lifetime: int
    nonce: bytes = b""

    def multiaddr(self) -> Multiaddr:
        suffix = "/quic-v1" if self.transport == "udp" else ""
        return Multiaddr(f"/ip4/{self.external_ip}/{self.transport}/{self.external_port}{suffix}")


def default_gateway(route_file: str = "/proc/net/route") -> str | None:
    """The IPv4 default route's gateway (Linux), or None."""
    try:
        with open(route_file) as f:
            lines = f.read().splitlines()[1:]
    except OSError:
        return None
    for line in lines:
        fields = line.split()
        if len(fields) >= 4 and fields[1] == "00000000" and int(fields[3], 16) & 0x2:  # RTF_GATEWAY
            return str(ipaddress.IPv4Address(bytes.fromhex(fields[2])[::-1]))
    return None


def local_address(gateway: str) -> str:
    """Our address on the gateway's link: the source address the kernel picks towards it."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.connect((gateway, pm.PORT))
        return s.getsockname()[0]


async def exchange(gateway: str, request: bytes) -> bytes:
    """One request to the gateway's port 5351 and its answer, retransmitted on RETRANSMIT's schedule."""
    loop = asyncio.get_running_loop()
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.setblocking(False)
        sock.connect((gateway, pm.PORT))  # only the gateway's port 5351 can answer
        for wait in RETRANSMIT:
            await loop.sock_sendall(sock, request)
            try:
                async with asyncio.timeout(wait):
                    return await loop.sock_recv(sock, 1100)
            except TimeoutError:
                continue
            except ConnectionRefusedError:
                raise PortMapError("the gateway refused (nothing listens on its port 5351)") from None
    raise PortMapError(f"no answer from {gateway}:{pm.PORT} in {sum(RETRANSMIT):.2f} s")


class PortMapper:
    """Map the node's ports at its router (see the module's text)."""

    def __init__(self, node: Node, protocols: tuple[str, ...] = PROTOCOLS, lease: int = LEASE):
        self.node = node
        self.protocols = protocols
        self.lease = lease
        self.state = "probing"
        self.reason = ""
        self.gateway: str | None = None
        self.local_ip = ""
        self.protocol = ""
        self.mappings: list[Mapping] = []
        self.probes: dict[str, str] = {}
        self.renewals = 0
        self._upnp = None
        self._task: asyncio.Task | None = None

    # ---- what to map ------------------------------------------------------------------------------

    def _ports(self) -> list[tuple[str, int]]:
        out = []
        for addr in self.node.swarm.listen_addrs:
            names = [p.name for p in addr.protocols()]
            if names[0] != "ip4" or addr.value_for_protocol("ip4") not in ("0.0.0.0", self.local_ip):
                continue
            if names[1:] == ["tcp"]:
                out.append(("tcp", int(addr.value_for_protocol("tcp"))))
            elif names[1:] == ["udp", "quic-v1"]:
                out.append(("udp", int(addr.value_for_protocol("udp"))))
        return list(dict.fromkeys(out))

    # ---- lifecycle ---------------------------------------------------------------------------------

    async def start(self) -> None:
        self.gateway = default_gateway()
        if self.gateway is None:
            return self._none("no default IPv4 gateway")
        try:
            self.local_ip = local_address(self.gateway)
        except OSError as exc:
            return self._none(f"no route to the gateway {self.gateway}: {exc}")
        ports = self._ports()
        if not ports:
            return self._none(f"no IPv4 listening address on {self.local_ip} or 0.0.0.0 to map")
        for protocol in self.protocols:
            try:
                self.mappings = await self._map(protocol, ports)
            except (PortMapError, OSError) as exc:
                self.probes[protocol] = str(exc)
                log.info("port mapping: %s: %s", protocol, exc)
                continue
            self.probes[protocol] = "mapped"
            self.protocol, self.state = protocol, "mapped"
            self._publish()
            log.info("port mapping by %s at %s: %s", protocol, self.gateway,
                     ", ".join(str(m.multiaddr()) for m in self.mappings))
            self._task = self.node.swarm.spawn(self._renew())
            return
        self._none("; ".join(f"{p}: {why}" for p, why in self.probes.items()))

    def _none(self, reason: str) -> None:
        self.state, self.reason = "none", reason
        log.info("no port mapping: %s", reason)

    def _publish(self) -> None:
        self.node.swarm.external_addrs = [m.multiaddr() for m in self.mappings]

    async def _renew(self) -> None:
        while self.mappings:
            await asyncio.sleep(max(1.0, min(m.lifetime for m in self.mappings) / 2))
            try:
                self.mappings = await self._map(self.protocol, [(m.transport, m.internal_port)
                                                                for m in self.mappings])
                self.renewals += 1
                self._publish()
            except (PortMapError, OSError) as exc:
                log.warning("port mapping by %s lost: %s", self.protocol, exc)
                self.state, self.reason, self.mappings = "lost", str(exc), []
                self._publish()

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
        mappings, self.mappings = self.mappings, []
        if mappings:
            self._publish()
            try:
                await self._delete(mappings)
            except (PortMapError, OSError) as exc:
                log.info("port mappings not deleted: %s", exc)
        if self.state == "mapped":
            self.state = "stopped"

    # ---- the protocols -----------------------------------------------------------------------------

    async def _map(self, protocol: str, ports: list[tuple[str, int]]) -> list[Mapping]:
        if protocol == "upnp":
            return await asyncio.to_thread(self._upnp_map, ports)
        out = []
        external_ip = ""
        if protocol == "nat-pmp":
            answer = self._decoded(pm.decode_natpmp, await exchange(self.gateway, pm.natpmp_external_address_request()))
            external_ip = answer.external_ip
        for transport, port in ports:
            previous = next((m for m in self.mappings if (m.transport, m.internal_port) == (transport, port)), None)
            if protocol == "pcp":
                # a renewal keeps its nonce (RFC 6887 §11.2.1); a new mapping gets a fresh one
                nonce = previous.nonce if previous is not None else os.urandom(12)
                request = pm.pcp_map_request(nonce, transport, port, port, self.lease, self.local_ip)
                answer = self._decoded(pm.decode_pcp, await exchange(self.gateway, request))
                if answer.nonce != nonce:
                    raise PortMapError("the PCP answer carries another nonce")
                external_ip = answer.external_ip
            else:
                request = pm.natpmp_map_request(transport, port, port, self.lease)
                answer = self._decoded(pm.decode_natpmp, await exchange(self.gateway, request))
            out.append(Mapping(protocol, transport, port, external_ip, answer.external_port, answer.lifetime,
                               answer.nonce))
        return out

    @staticmethod
    def _decoded(decode, data: bytes) -> pm.Mapped:
        try:
            answer = decode(data)
        except CodecError as exc:
            raise PortMapError(f"bad answer: {exc}") from None
        if not answer.ok:
            raise PortMapError(f"refused: {answer.result}")
        return answer

    def _upnp_map(self, ports: list[tuple[str, int]]) -> list[Mapping]:
        try:
            import miniupnpc
        except ImportError:
            raise PortMapError("the miniupnpc package is not installed") from None
        if self._upnp is None:
            upnp = miniupnpc.UPnP()
            upnp.discoverdelay = UPNP_DISCOVER_MS
            try:
                found = upnp.discover()  # raises (with errno's text) when nothing answered
            except Exception:
                found = 0
            if found == 0:
                raise PortMapError(f"no UPnP device answered SSDP in {UPNP_DISCOVER_MS} ms")
            try:
                upnp.selectigd()
            except Exception as exc:  # miniupnpc raises plain Exception with the reason
                raise PortMapError(f"no Internet Gateway Device: {exc}") from None
            self._upnp = upnp
        upnp = self._upnp
        out = []
        try:
            external_ip = upnp.externalipaddress()
            for transport, port in ports:
                try:
                    upnp.addportmapping(port, transport.upper(), upnp.lanaddr, port, DESCRIPTION, "", self.lease)
                    external = port
                except Exception:  # the port is taken at the gateway: let it choose one (IGD v2)
                    external = upnp.addanyportmapping(port, transport.upper(), upnp.lanaddr, port, DESCRIPTION,
                                                      "", self.lease)
                out.append(Mapping("upnp", transport, port, external_ip, int(external), self.lease))
        except Exception as exc:
            raise PortMapError(f"the IGD refused: {exc}") from None
        return out

    async def _delete(self, mappings: list[Mapping]) -> None:
        for m in mappings:
            if m.protocol == "upnp":
                await asyncio.to_thread(self._upnp.deleteportmapping, m.external_port, m.transport.upper())
            elif m.protocol == "pcp":
                await exchange(self.gateway, pm.pcp_map_request(m.nonce, m.transport, m.internal_port, 0, 0,
                                                                self.local_ip))
            else:
                await exchange(self.gateway, pm.natpmp_map_request(m.transport, m.internal_port, 0, 0))

    def status(self) -> dict[str, Any]:
        """For ``/debug/peers`` and metrics."""
        return {"state": self.state, "reason": self.reason, "gateway": self.gateway, "protocol": self.protocol,
                "mappings": [{"transport": m.transport, "internal_port": m.internal_port,
                              "external": str(m.multiaddr()), "lifetime": m.lifetime} for m in self.mappings],
                "probes": dict(self.probes), "renewals": self.renewals}
