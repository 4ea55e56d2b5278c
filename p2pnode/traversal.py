"""One node's NAT traversal, sans-IO: AutoNAT tells whether the node is reachable; a private node holds relay
reservations and advertises its ``/p2p-circuit`` addresses; a public node may serve as a relay and as an
AutoNAT server; DCUtR upgrades relayed connections to direct ones (docs/nat.md).

``NatTraversal`` composes the protocol cores (``p2pnode.autonat``, ``p2pnode.relay``, ``p2pnode.dcutr``) with
the rules that join them:

- the AutoNAT verdict drives the relay client: ``PRIVATE`` -> hold ``NatConfig.relays`` reservations,
  ``PUBLIC`` -> let them lapse (and, with ``relay_service``, serve as a relay);
- what to advertise (``advertised``): a private node's circuit addresses; a public node's reachable ones;
- what to do on a new relayed connection (``upgrade``): the inbound side dials back directly when the other
  side showed public addresses (the spec's unilateral upgrade), else starts a hole punch;
- what happened, for logs and metrics, goes to ``on_event``.

The runtime hands in what only it can do: ``autonat_servers()``/``relays()`` (peers that speak AutoNAT /
the hop protocol), ``probe`` (one AutoNAT exchange) and ``public_addrs()`` (our addresses as a relay
advertises them). The asyncio runtime wires it to streams (``p2pnode.runtime.nat``), the simulator to its NAT
model (``sim.nat``).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable
from typing import Any

from p2pnode.autonat.addresses import IpNetwork, ObservedAddrs, public_addr
from p2pnode.autonat.client import PRIVATE, PUBLIC, AutoNatClient, ProbeFn, ReachabilityChanged
from p2pnode.autonat.server import AutoNatServer
from p2pnode.config import NatConfig
from p2pnode.dcutr.holepunch import Finished, Initiator, Responder
from p2pnode.identity import Keypair, PeerId
from p2pnode.interface import Runtime
from p2pnode.kad.messages import PeerInfo
from p2pnode.relay.client import RelayClient
from p2pnode.relay.messages import HopStatus, Reserve, Status
from p2pnode.relay.service import RelayService

REVERSE, PUNCH = "reverse", "punch"


class NatTraversal:
    def __init__(self, keypair: Keypair, runtime: Runtime, config: NatConfig, *, epoch: float,
                 autonat_servers: Callable[[], Iterable[PeerInfo]], relays: Callable[[], Iterable[PeerInfo]],
                 candidates: Callable[[], Iterable[bytes]], probe: ProbeFn,
                 public_addrs: Callable[[], tuple[bytes, ...]] = tuple,
                 can_dial: Callable[[bytes], bool] = lambda addr: True,
                 public_ranges: Iterable[IpNetwork] = (), on_event: Callable[[Any], None] = lambda e: None):
        self.keypair = keypair
        self.runtime = runtime
        self.config = config
        self.public_ranges = tuple(public_ranges)
        self.on_event = on_event
        self.observed = ObservedAddrs()
        self.client = RelayClient(keypair, runtime, config, epoch, relays, on_event)
        self.autonat = AutoNatClient(runtime, config, autonat_servers, candidates, probe, self._reachability)
        self.autonat_server = AutoNatServer(config, can_dial, self.public_ranges) if config.autonat_server else None
        self.service = (RelayService(keypair, config, runtime.now, epoch, public_addrs)
                        if config.relay_service else None)
        self.punches: Counter[str] = Counter()  # "ok"/"failed" and "attempt<n>" of successes, for metrics

    @property
    def status(self) -> str:
        return self.autonat.status

    @property
    def private(self) -> bool:
        return self.autonat.status == PRIVATE

    @property
    def relaying(self) -> bool:
        """Serving as a relay: configured to, and known to be public."""
        return self.service is not None and self.autonat.status == PUBLIC

    def start(self) -> None:
        self.client.start()
        forced = self.config.reachability
        self.autonat.start(None if forced == "auto" else PUBLIC if forced == "public" else PRIVATE)

    def stop(self) -> None:
        self.autonat.stop()
        self.client.stop()

    def _reachability(self, change: ReachabilityChanged) -> None:
        self.client.want(change.status == PRIVATE)
        self.on_event(change)

    def handle_hop(self, sender: PeerInfo, message: Any) -> HopStatus:
        """A hop request arriving as a request (the simulator's path: real nodes carry hop streams in
        ``p2pnode.runtime.nat``): a RESERVE answered by the relay service, if this node relays."""
        if not self.relaying or not isinstance(message, Reserve):
            return HopStatus(Status.PERMISSION_DENIED)
        return self.service.handle_request(sender, message)

    def connection_closed(self, peer: PeerId) -> None:
        self.client.connection_closed(peer)
        if self.service is not None:
            self.service.connection_closed(peer)

    def advertised(self, direct: Iterable[bytes]) -> tuple[bytes, ...]:
        """The addresses to tell others: circuit ones when private (plus any direct one AutoNAT found
        reachable), our direct ones otherwise."""
        if self.private:
            return self.autonat.reachable_addrs() + self.client.circuit_addrs()
        return tuple(direct)

    def punch_addrs(self) -> tuple[bytes, ...]:
        """What we send in a DCUtR CONNECT: the addresses our peers observe us at, best supported first (all
        of them: a symmetric NAT's many single-vote ports are useless, but so is sending nothing)."""
        return tuple(self.observed.all(self.runtime.now())[:8])

    def upgrade(self, inbound: bool, remote_addrs: Iterable[bytes]) -> str | None:
        """What to do on a new relayed connection: ``REVERSE`` (dial the peer's public address directly),
        ``PUNCH`` (start DCUtR as its initiator), or None (the outbound side waits for the peer's CONNECT)."""
        if not inbound or not self.config.hole_punching:
            return None
        if any(public_addr(a, self.public_ranges) for a in remote_addrs):
            return REVERSE
        return PUNCH

    def initiator(self) -> Initiator:
        return Initiator(self.punch_addrs(), self.config.hole_punch_attempts)

    def responder(self) -> Responder:
        return Responder(self.punch_addrs())

    def punched(self, finished: Finished) -> None:
        self.punches["ok" if finished.ok else "failed"] += 1
        if finished.ok:
            self.punches[f"attempt{finished.attempts}"] += 1
        self.on_event(finished)
