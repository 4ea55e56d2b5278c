"""The host: one node's protocols over one runtime (sans-IO), as a libp2p host composes them.

- ``dht``: the Kademlia node; ``pubsub``: the GossipSub router (when configured);
- request/response for applications (``set_handler`` / ``request``): a protocol name and opaque bytes,
  answered synchronously by the remote handler, over the runtime's request primitive that the DHT uses;
- a connection manager that keeps ``peers`` connections open for pub-sub, dialing candidates from the DHT
  routing table (or from ``discover``, a discovery service the embedding supplies) and refusing inbound
  connections beyond ``max_peers``.

Incoming messages arrive at ``handle_request`` and go to the handler of the protocol their type belongs to
(``p2pnode.wire``: the one table of which message belongs to which protocol); ``serve`` sets a protocol's
handler, so a new protocol plugs in by registering its messages there and its handler here.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from typing import Any

from p2pnode.config import GossipConfig, KadConfig, ScoreConfig
from p2pnode.identity import Keypair
from p2pnode.interface import Runtime, Timer
from p2pnode.kad.messages import PeerInfo, PutValue, PutValueResponse
from p2pnode.kad.node import KademliaNode
from p2pnode.pubsub.messages import Message
from p2pnode.pubsub.router import GossipSub
from p2pnode.reqresp import AppRequest, AppResponse
from p2pnode.security.access import AccessPolicy
from p2pnode.security.limits import InboundLimits, RateLimited
from p2pnode.traversal import NatTraversal
from p2pnode.wire import BY_TYPE, KAD, PROTOCOLS, PUBSUB, RELAY_HOP, REQRESP, protocol_of

log = logging.getLogger(__name__)

# After a connection closes or a dial fails, the host checks this much later whether it should dial
# more, and keeps checking at this interval while it is below its target.
CONNECTION_CHECK_INTERVAL = 1.0


class Host:
    def __init__(
        self,
        keypair: Keypair,
        runtime: Runtime,
        kad: KadConfig | None = None,
        gossip: GossipConfig | None = None,
        score: ScoreConfig | None = None,
        peers: int = 20,
        max_peers: int = 40,
        router: type[GossipSub] = GossipSub,
        discover: Callable[[], Iterable[PeerInfo]] | None = None,
        limits: InboundLimits | None = None,
        access: AccessPolicy | None = None,
        protected_namespaces: Iterable[bytes] = (),
    ):
        if not 0 < peers <= max_peers:
            raise ValueError("need 0 < peers <= max_peers")
        self.keypair = keypair
        self.peer_id = keypair.peer_id
        self.runtime = runtime
        self.dht = KademliaNode(keypair, runtime, kad)
        self.info = self.dht.info
        self.pubsub = router(keypair, runtime, gossip, score, connect=self.dial) if gossip is not None else None
        self.target_peers = peers
        self.max_peers = max_peers
        self.discover = discover
        # [security] rate limits on what peers ask (p2pnode.security.limits); None: no limits
        self.limits = limits
        # who may write under which DHT key namespaces (capability ``write:<namespace>``, from the policy's
        # grants or from signed tokens a peer presented); the MCP server uses the same policy
        self.access = access
        self.protected = tuple(protected_namespaces)
        self.refused_writes = 0
        self.connections: dict[PeerInfo, bool] = {}  # peer -> outbound
        self.dialing: set[PeerInfo] = set()
        self.handlers: dict[str, Callable[[PeerInfo, bytes], bytes]] = {}
        # Request type -> its protocol's handler(sender, message), which returns the response or None.
        self._dispatch: dict[type, Callable[[PeerInfo, Any], Any]] = {}
        self.serve(KAD.name, self._handle_kad if self.protected else self.dht.handle_request)
        self.serve(PUBSUB.name, self.pubsub.handle_rpc if self.pubsub is not None else _ignore)
        self.serve(REQRESP.name, self._handle_app_request)
        self.nat: NatTraversal | None = None
        self.running = False
        self._timer: Timer | None = None

    def attach_nat(self, traversal: NatTraversal) -> None:
        """Do NAT traversal (``p2pnode.traversal``): it starts and stops with the host, hears of closed
        connections (a relay's), and answers RESERVE requests when it serves as a relay."""
        self.nat = traversal
        self.serve(RELAY_HOP.name, traversal.handle_hop)

    # ---- lifecycle -------------------------------------------------------------------------------

    def start(self, bootstrap: Iterable[PeerInfo] = ()) -> None:
        self.running = True
        self.dht.start(bootstrap)
        if self.nat is not None:
            self.nat.start()
        if self.pubsub is not None:
            self.pubsub.start()
            self._timer = self.runtime.call_later(0.0, self._check_connections)

    def stop(self) -> None:
        self.running = False
        self.dht.stop()
        if self.nat is not None:
            self.nat.stop()
        if self.pubsub is not None:
            self.pubsub.stop()
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self.connections.clear()
        self.dialing.clear()

    @property
    def bootstrapped(self) -> bool:
        return self.dht.bootstrapped

    # ---- connections (runtime callbacks) ---------------------------------------------------------

    def dial(self, peer: PeerInfo) -> None:
        if peer in self.connections or peer in self.dialing or peer.peer_id == self.peer_id or not self.running:
            return
        self.dialing.add(peer)
        self.runtime.connect(peer)

    def connection_opened(self, peer: PeerInfo, outbound: bool) -> bool:
        self.dialing.discard(peer)
        if not self.running:
            return False
        if peer in self.connections:
            # A new connection from a peer whose old one we had not yet noticed dying (it restarted):
            # its protocol state starts afresh.
            if self.pubsub is not None:
                self.pubsub.remove_peer(peer)
        elif not outbound and self.pubsub is not None and len(self.connections) >= self.max_peers:
            # The limit is on pub-sub peers; without pub-sub, connections only carry requests, and the
            # transport's own connection limit is the one that applies.
            return False
        self.connections[peer] = outbound
        if self.pubsub is not None:
            self.pubsub.add_peer(peer, outbound)
        return True

    def connection_closed(self, peer: PeerInfo) -> None:
        if self.nat is not None:
            self.nat.connection_closed(peer.peer_id)
        if self.connections.pop(peer, None) is not None and self.pubsub is not None:
            self.pubsub.remove_peer(peer)
            self._check_soon()

    def dial_failed(self, peer: PeerInfo) -> None:
        self.dialing.discard(peer)
        self._check_soon()

    def _check_soon(self) -> None:
        if self._timer is None and self.running and self.pubsub is not None:
            self._timer = self.runtime.call_later(CONNECTION_CHECK_INTERVAL, self._check_connections)

    def _check_connections(self) -> None:
        self._timer = None
        if not self.running:
            return
        wanted = self.target_peers - len(self.connections) - len(self.dialing)
        if wanted <= 0:
            return
        self._check_soon()  # until the dials below have brought the host to its target
        pool = [p for p in self._candidates() if p not in self.connections and p not in self.dialing]
        if len(pool) > wanted:
            pool = self.runtime.rng.sample(pool, wanted)
        for peer in pool:
            self.dial(peer)

    def _candidates(self) -> list[PeerInfo]:
        found = dict.fromkeys(self.dht.table.peers.values())
        if self.discover is not None:
            found.update(dict.fromkeys(self.discover()))
        found.pop(self.info, None)
        return list(found)

    # ---- incoming --------------------------------------------------------------------------------

    def serve(self, protocol: str, handler: Callable[[PeerInfo, Any], Any]) -> None:
        """Hand the messages of ``protocol`` (a ``p2pnode.wire`` protocol name) to ``handler(sender,
        message)``, which returns the response, or None for one-way messages."""
        self._dispatch.update(dict.fromkeys(PROTOCOLS[protocol].requests, handler))

    def handle_request(self, sender: PeerInfo, message: Any) -> Any:
        """The answer of the message's protocol handler (None for one-way messages), or ``RateLimited``
        when the sender or everyone together asked more than the rate limits allow: the runtime then
        refuses the request (a stream reset) or drops the one-way message."""
        if self.limits is not None:
            protocol = BY_TYPE.get(type(message))
            refused = self.limits.admit(sender.peer_id, protocol.name if protocol else "unknown", self.runtime.now())
            if refused is not None:
                return refused
        try:
            handler = self._dispatch[type(message)]
        except KeyError:
            name = protocol_of(message).name  # a TypeError for a message of no registered protocol
            raise ValueError(f"{type(message).__name__} is not a request of a protocol this host serves "
                             f"({name!r})") from None
        return handler(sender, message)

    def _handle_kad(self, sender: PeerInfo, message: Any) -> Any:
        """Kademlia, with writes under a protected namespace only from peers holding its capability."""
        if type(message) is PutValue:
            key = message.record.key
            for namespace in self.protected:
                if key.startswith(namespace):
                    caller = sender.peer_id.to_base58()
                    capability = "write:" + namespace.decode("utf-8", "replace")
                    if self.access is None or not self.access.check(caller, capability):
                        self.refused_writes += 1
                        log.warning("denied a write under %r to peer %s (it holds no %s capability)",
                                    namespace.decode("utf-8", "replace"), sender.peer_id.short(), capability)
                        return PutValueResponse(None, stored=False)
                    break
        return self.dht.handle_request(sender, message)

    def admit_stream(self, peer: Any) -> RateLimited | None:
        """Whether a new inbound stream from ``peer`` (a peer ID) is within the rate limits (None: yes)."""
        return None if self.limits is None else self.limits.admit(peer, "stream", self.runtime.now())

    def _handle_app_request(self, sender: PeerInfo, request: AppRequest) -> AppResponse:
        handler = self.handlers.get(request.protocol)
        if handler is None:
            return AppResponse(error="unsupported")
        return AppResponse(handler(sender, request.data))

    # ---- pub-sub ---------------------------------------------------------------------------------

    def _router(self) -> GossipSub:
        if self.pubsub is None:
            raise RuntimeError("this host has no pub-sub router (no GossipConfig given)")
        return self.pubsub

    def subscribe(self, topic: str, handler: Callable[[Message], None]) -> None:
        self._router().subscribe(topic, handler)

    def unsubscribe(self, topic: str) -> None:
        self._router().unsubscribe(topic)

    def publish(self, topic: str, data: bytes) -> bytes:
        return self._router().publish(topic, data)

    # ---- request/response ------------------------------------------------------------------------

    def set_handler(self, protocol: str, handler: Callable[[PeerInfo, bytes], bytes]) -> None:
        """Answer requests for ``protocol``: ``handler(sender, data)`` returns the response bytes."""
        self.handlers[protocol] = handler

    def request(self, peer: PeerInfo, protocol: str, data: bytes, on_response: Callable[[bytes], None],
                on_failure: Callable[[str], None], timeout: float = 10.0) -> None:
        def answered(response: Any) -> None:
            if type(response) is not AppResponse:
                on_failure("bad response")
            elif response.error:
                on_failure(response.error)
            else:
                on_response(response.data)

        self.runtime.request(peer, AppRequest(protocol, data), timeout, answered, on_failure)


def _ignore(sender: PeerInfo, message: Any) -> None:
    """Pub-sub RPCs reaching a host without a router."""
