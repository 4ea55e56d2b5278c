"""NATs in the simulator: each node's path of NAT boxes, which messages get through, relayed connections and
hole punches (docs/nat.md).

Placement comes from ``experiment.nat`` (the emulator places the same NATs). A node's path is its home NAT
(``nodes.nat``), then a carrier-grade NAT (``nat.cgnat``) or its access mechanism's carrier NAT44 (the AFTR
of DS-Lite, the PLAT of 464XLAT: endpoint-independent mapping, address-and-port-dependent filtering, as
``p2pnode.transition.nat`` builds them), each a ``sim.natbox.NatBox``. A node with no box is public.

Every message from ``src`` to ``dst`` (``one_way``) goes out through ``src``'s boxes (keeping its mappings
and filters fresh) and must get in through ``dst``'s: a public ``dst`` always lets it in; a NATed one only
if its filters let ``src``'s external endpoint in (``dst`` sent to it lately: the libp2p connection ``dst``
opened is what carries it; or its NAT is a full cone). The pair's connection runs over QUIC or TCP
(``nat.quic_share`` of pairs over QUIC), and so do its packets. A message that cannot get in goes over a
relayed connection when ``dst`` holds a reservation (the model opens the circuit at the relay, whose real
``RelayService`` admits it or not, and ``dst``'s ``RelayClient`` answers the STOP), and is lost otherwise.

Each node runs the real ``NatTraversal``: AutoNAT probes are modelled dial-backs through the boxes (from a
port other than the server's listening one), reservations are real RESERVE requests to relays, and on a new
relayed connection the target runs DCUtR's real state machines with the exchange carried over the relay:
its unilateral upgrade when the other side is public, else the RTT-timed simultaneous open whose packets
(TCP SYNs and retransmissions; QUIC Initials and the target's UDP spray every 10-200 ms) go through both
paths of boxes in time order. The first packet that gets in, and whose answer gets back, makes the
connection direct; otherwise the relayed one stays (and is reset when the relay's data or duration limit
is reached). A hole punch's packets are processed when both sides' dial times are known, ahead of the
clock by up to the attempt's timeout (other traffic meanwhile does not touch the boxes' state they read).

Not modelled: port prediction, NAT-PMP/UPnP on carrier NATs, IPv6 (a node's NAT applies to all its traffic).
"""

from __future__ import annotations

import heapq
import ipaddress
import random
from collections import Counter
from dataclasses import dataclass
from typing import Any

from experiment.nat import NodeNat
from p2pnode.autonat.client import PRIVATE, PUBLIC, ProbeResult, ReachabilityChanged
from p2pnode.autonat.messages import DialDataResponse, DialRequest, DialResponse
from p2pnode.autonat.server import DialChoice
from p2pnode.config import NatConfig
from p2pnode.dcutr.holepunch import Dial, Finished, Initiator, Responder, Send
from p2pnode.kad.messages import PeerInfo
from p2pnode.relay.client import ReservationFailed, ReservationLost, ReservationMade
from p2pnode.relay.messages import Status, StopConnect
from p2pnode.relay.service import Circuit
from p2pnode.transports.addresses import ip_endpoint, ip_multiaddr
from p2pnode.traversal import REVERSE, NatTraversal
from sim.natbox import NatBox

PORT = 4001
DIALBACK_PORT = 40_000  # AutoNAT servers dial back from ports other than their listening one
EPOCH = 1_700_000_000.0  # UNIX time of the simulation's start (vouchers carry UNIX seconds)
RELAY_PROCESSING = 0.0002  # seconds a relay adds to each message it forwards
PUBLIC_NET, HOME_NET, CARRIER_NET, INFRA_NET = 0x0B000000, 0x0C000000, 0x0D000000, 0x0E000000
SHARED_NET = 0x64400000  # 100.64.0.0/10, behind carrier NATs (RFC 6598)
HOME_INSIDE = 0xC0A80002  # 192.168.0.2: every home's node
CARRIER_MECHANISMS = {"dslite": "AFTR", "464xlat": "PLAT"}  # access mechanisms whose NAT44 is the operator's
QUIC_RETRANSMITS = (0.0, 0.3, 0.9, 2.1, 4.5)  # an Initial and its retransmissions (probe timeout doubling)
TCP_RETRANSMITS = (0.0, 1.0, 3.0)  # a SYN and its retransmissions (initial RTO 1 s, doubling)
SPRAY_GAP = (0.010, 0.200)  # the DCUtR target's random UDP packets towards the other side, seconds apart

Endpoint = tuple[int, int]


def ip_text(address: int) -> str:
    return str(ipaddress.IPv4Address(address))


def multiaddr(endpoint: Endpoint, proto: str) -> bytes:
    tail = ("udp", "quic-v1") if proto == "udp" else ("tcp",)
    return ip_multiaddr(ip_text(endpoint[0]), endpoint[1], *tail).to_bytes()


def endpoint_of(addr: bytes) -> tuple[Endpoint, str] | None:
    from multiaddr import Multiaddr

    ma = Multiaddr(addr)
    for proto, tail in (("udp", ("quic-v1",)), ("tcp", ())):
        try:
            host, port, _ = ip_endpoint(ma, proto, *tail)
        except ValueError:
            continue
        return (int(ipaddress.IPv4Address(host)), port), proto
    return None


@dataclass(slots=True, eq=False)
class Link:
    """An open connection between two nodes that needed one: relayed (``relay`` set) or direct."""

    source: int  # the dialler
    target: int
    relay: int | None
    circuit: Circuit | None
    opened: float
    how: str = ""  # "reversal" or "hole_punch" once direct


class NatModel:
    def __init__(self, scenario: Any, placement: list[NodeNat], network: Any, events: Any,
                 mechanisms: list[str] | None = None):
        nat = scenario.nat
        self.scenario = scenario
        self.params = nat
        self.placement = placement
        self.network = network
        self.events = events
        self.latency = network.latency
        self.env = network.env
        self.bootstrap = scenario.nodes.bootstrap
        n = len(placement)
        self.rng = random.Random(f"natbox-{scenario.seed}")
        timeouts = {"udp": nat.mapping_timeout.udp, "tcp": nat.mapping_timeout.tcp}

        def box(nat_type: str, address: int) -> NatBox:
            return NatBox(nat_type, address, self.rng, timeouts, keepalive=nat.keepalive, hairpin=nat.hairpinning)

        carriers: dict[Any, NatBox] = {}
        self.paths: list[list[NatBox]] = []
        self.internal: list[Endpoint] = []
        self.labels: list[str] = []
        for i, place in enumerate(placement):
            path: list[NatBox] = []
            mechanism = mechanisms[i] if mechanisms else "native"
            carrier_key = ("cgnat", place.cgnat) if place.cgnat is not None else (
                ("access", mechanism) if mechanism in CARRIER_MECHANISMS else None)
            behind_carrier = carrier_key is not None
            if place.home != "none":
                home = box(place.home, (SHARED_NET if behind_carrier else HOME_NET) + i)
                if place.port_mapped:
                    home.forward("udp", (HOME_INSIDE, PORT))
                    home.forward("tcp", (HOME_INSIDE, PORT))
                path.append(home)
                inside = HOME_INSIDE
            else:
                inside = SHARED_NET + i if behind_carrier else PUBLIC_NET + i
            if carrier_key is not None:
                if carrier_key not in carriers:
                    kind = nat.cgnat.type if carrier_key[0] == "cgnat" else "port-restricted"
                    carriers[carrier_key] = box(kind, (CARRIER_NET if carrier_key[0] == "cgnat" else INFRA_NET)
                                                + len(carriers))
                path.append(carriers[carrier_key])
            self.paths.append(path)
            self.internal.append((inside, PORT))
            label = place.label if not (mechanism in CARRIER_MECHANISMS and place.cgnat is None) else (
                CARRIER_MECHANISMS[mechanism].lower() + ("" if place.home == "none" else f"+{place.home}"))
            self.labels.append(label)
        self.boxes = list({id(b): b for path in self.paths for b in path}.values())
        self.natted = [bool(p) for p in self.paths]
        # where others dial a node: its public endpoint, or for a NATed node what public peers observed last
        self.advertised: list[dict[str, Endpoint]] = [
            {} if self.natted[i] else {"udp": self.internal[i], "tcp": self.internal[i]} for i in range(n)]
        self.traversals: list[NatTraversal | None] = [None] * n
        self.links: dict[tuple[int, int], Link] = {}
        self.quic_cut = int(nat.quic_share * 65536)
        # an open connection's keepalives hold its mappings only if they come more often than mappings expire
        self.held = {proto: nat.keepalive < t for proto, t in timeouts.items()}
        self.pinned: dict[tuple[int, int], tuple[str, Endpoint]] = {}  # (node, relay) -> the pinned flow
        self._nonce = 0
        self.counts: Counter[str] = Counter()
        self.on_server = lambda i, serving: None  # the driver hears when a node starts or stops serving the DHT
        self.punch_pairs: Counter[tuple[str, str, str, bool]] = Counter()  # (B label, A label, proto, ok)

    # ---- node lifecycle --------------------------------------------------------------------------

    def attach(self, i: int, host: Any) -> None:
        """Give node ``i``'s new host its NAT traversal (before it starts)."""
        nat = self.params
        place = self.placement[i]
        config = NatConfig(relays=nat.reservations, relay_service=place.relay, hole_punching=nat.hole_punching,
                           reservation_ttl=nat.relays.reservation_ttl, max_reservations=nat.relays.max_reservations,
                           max_circuits=nat.relays.max_circuits, max_circuits_total=nat.relays.max_circuits_total,
                           circuit_duration=nat.relays.circuit_duration, circuit_data=nat.relays.circuit_data)
        traversal: NatTraversal | None = None

        def candidates() -> list[bytes]:
            return traversal.observed.all(self.env.now)[:4]

        traversal = NatTraversal(
            host.keypair, host.runtime, config, epoch=EPOCH,
            autonat_servers=lambda: self._servers(i), relays=lambda: self._relays(i), candidates=candidates,
            probe=lambda server, addrs, done: self._probe(i, server, addrs, done),
            public_addrs=lambda: (self._relay_addr(i),),
            on_event=lambda event: self._event(i, event))
        host.attach_nat(traversal)
        host.dht.serving = self._serves
        self.traversals[i] = traversal
        # joining through the bootstrap nodes opens connections to them (over both transports), and their
        # Identify tells the node where they see it: its first observed addresses, what AutoNAT then tests
        for b in range(min(self.bootstrap, 3)):
            if b != i:
                self.network.call_later(self.latency.base_rtt(i, b), self._identified, i, b, traversal)

    def _identified(self, i: int, observer: int, traversal: NatTraversal) -> None:
        if self.traversals[i] is traversal and self.network.handlers[observer] is not None:
            for proto in ("udp", "tcp"):
                self.observe(i, observer, self.env.now, proto=proto)
            traversal.autonat.recheck()

    def _relay_addr(self, i: int) -> bytes:
        from multiaddr import Multiaddr

        return multiaddr(self.internal[i], "udp") + Multiaddr(f"/p2p/{self.network.infos[i].peer_id}").to_bytes()

    def detach(self, i: int) -> None:
        self.traversals[i] = None
        for key in [k for k in self.pinned if k[0] == i]:
            self._unpin(i, *self.pinned.pop(key))
        for key in [k for k in self.links if i in k]:
            self._close(self.links.pop(key))

    def _serves(self, peer: PeerInfo) -> bool:
        """Whether a peer serves the DHT (libp2p's rule: in server mode only once AutoNAT says public)."""
        traversal = self.traversals[self.network.index[peer.peer_id.raw]]
        return traversal is not None and traversal.status == PUBLIC

    def _servers(self, i: int) -> list[PeerInfo]:
        host = self.network.handlers[i]
        if host is None:
            return []
        peers = list(host.dht.table.peers.values())[:20] + self.network.infos[:self.bootstrap]
        return [p for p in peers if self._serves(p) or not self.natted[self.network.index[p.peer_id.raw]]]

    def _relays(self, i: int) -> list[PeerInfo]:
        infos = self.network.infos
        return [infos[r] for r, place in enumerate(self.placement)
                if place.relay and r != i and self.traversals[r] is not None and self.traversals[r].relaying]

    # ---- the boxes -------------------------------------------------------------------------------

    def proto(self, a: int, b: int) -> str:
        lo, hi = (a, b) if a < b else (b, a)
        return "udp" if ((lo * 2654435761) ^ (hi * 40503)) & 0xFFFF < self.quic_cut else "tcp"

    def _out(self, src: int, target: Endpoint, proto: str, now: float, pin: bool = False,
             start: Endpoint | None = None) -> tuple[Endpoint, NatBox | None]:
        """A packet from ``src`` to ``target`` leaves: the external endpoint it comes from, and the box it turns
        back in at if ``target`` is that box's own address (hairpinning)."""
        endpoint = start or self.internal[src]
        for box in self.paths[src]:
            endpoint = box.outbound(proto, endpoint, target, now, pin)
            if target[0] == box.address:
                return endpoint, box
        return endpoint, None

    def _in(self, dst: int, source: Endpoint, target: Endpoint, proto: str, now: float,
            hairpin: NatBox | None = None) -> bool:
        """Whether a packet from ``source`` to ``target`` (an external endpoint of ``dst``) reaches ``dst``."""
        path = self.paths[dst]
        if hairpin is not None:
            if not hairpin.hairpin or hairpin not in path:
                return False
            path = path[: path.index(hairpin) + 1]
        if not path:
            return target == self.internal[dst]
        if path[-1].address != target[0]:
            return False
        port = target[1]
        for box in reversed(path):
            inside = box.inbound(proto, source, port, now)
            if inside is None:
                return False
            port = inside[1]
        return inside == self.internal[dst]

    def _reaches(self, src: int, dst: int, now: float) -> bool:
        proto = self.proto(src, dst)
        target = self.advertised[dst].get(proto)
        if target is None:
            return False
        source, hairpin = self._out(src, target, proto, now)
        return not self.natted[dst] or self._in(dst, source, target, proto, now, hairpin)

    def observe(self, i: int, observer: int, now: float, pin: bool = False, proto: str | None = None) -> Endpoint:
        """``i`` exchanges with public ``observer`` (over the pair's transport, or ``proto``), which sees it
        at the endpoint returned (Identify's observed address); ``i`` records it, and dials to ``i`` use it."""
        proto = proto or self.proto(i, observer)
        seen, _ = self._out(i, self.advertised[observer][proto], proto, now, pin)
        if self.natted[i]:
            self.advertised[i][proto] = seen
        traversal = self.traversals[i]
        if traversal is not None:
            traversal.observed.record(multiaddr(seen, proto), ip_text(self.internal[observer][0]), now)
        return seen

    # ---- messages (sim.runtime.SimNetwork calls these) -------------------------------------------

    def one_way(self, src: int, dst: int, size: int) -> float | None:
        """Seconds a message from ``src`` takes to reach ``dst``; None when it cannot get there."""
        natted = self.natted
        if not (natted[src] or natted[dst]):
            return self.latency.one_way(src, dst)
        now = self.env.now
        link = self.links.get((src, dst) if src < dst else (dst, src))
        if link is not None:
            if link.relay is not None:
                return self._relayed(link, src, dst, size, now)
            if not self.held[self.proto(src, dst)] and not self._reaches(src, dst, now):
                self._close(self.links.pop(_key(src, dst)))  # idle longer than its mappings live: gone
                return None
            return self.latency.one_way(src, dst)
        if self._reaches(src, dst, now):
            return self.latency.one_way(src, dst)
        return self._open_relayed(src, dst, size, now)

    def back(self, src: int, dst: int, size: int) -> float | None:
        """Seconds the answer to a request from ``src`` takes back from ``dst``: the request's way, reversed."""
        link = self.links.get((src, dst) if src < dst else (dst, src))
        if link is not None and link.relay is not None:
            return self._relayed(link, dst, src, size, self.env.now)
        return self.latency.one_way(dst, src)

    def _relayed(self, link: Link, src: int, dst: int, size: int, now: float) -> float | None:
        circuit = link.circuit
        deadline = circuit.deadline
        if (deadline is not None and now > deadline) or not circuit.carry(dst == link.target, size):
            self.counts["circuit_limit_resets"] += 1
            self._close(self.links.pop(_key(link.source, link.target)))
            return None
        relay = link.relay
        return self.latency.one_way(src, relay) + self.latency.one_way(relay, dst) + RELAY_PROCESSING

    # ---- relayed connections ---------------------------------------------------------------------

    def _open_relayed(self, src: int, dst: int, size: int, now: float) -> float | None:
        target = self.traversals[dst]
        if target is None or not target.client.slots:
            self.counts[f"unreachable_{self.labels[dst]}"] += 1  # by the receiver's NAT: no way in
            return None
        infos = self.network.infos
        for relay_id in list(target.client.slots):
            relay = self.network.index[relay_id.raw]
            service = self.traversals[relay].service if self.traversals[relay] is not None else None
            if service is None:
                continue
            circuit = service.open_circuit(infos[src].peer_id, infos[dst].peer_id, now)
            if isinstance(circuit, Status):
                self.counts[f"circuit_refused_{circuit.name}"] += 1
                continue
            if target.client.accept_stop(relay_id, StopConnect(infos[src].peer_id, circuit.limit)).status \
                    is not Status.OK:
                service.circuit_closed(circuit)
                continue
            link = self.links[_key(src, dst)] = Link(src, dst, relay, circuit, now)
            setup = self.latency.base_rtt(src, relay) + self.latency.base_rtt(relay, dst)
            rtt = setup
            self.events.write(now, "connection", dst, rtt, None, False, src)
            self.counts["relayed"] += 1
            self.network.call_later(setup, self._upgrade, link)
            delay = self._relayed(link, src, dst, size, now)
            return None if delay is None else setup + delay
        self.counts[f"unreachable_{self.labels[dst]}"] += 1
        return None

    def _close(self, link: Link) -> None:
        if link.circuit is not None and link.relay is not None:
            relay = self.traversals[link.relay]
            if relay is not None and relay.service is not None:
                relay.service.circuit_closed(link.circuit)
        self.network.break_connection(link.source, link.target)

    def _upgrade(self, link: Link) -> None:
        """The relayed connection is up: its target (the inbound side) dials back or starts a hole punch."""
        a, b = link.source, link.target
        if self.links.get(_key(a, b)) is not link:
            return
        tb, ta = self.traversals[b], self.traversals[a]
        if tb is None or ta is None:
            return
        plan = tb.upgrade(True, [multiaddr(self.internal[a], "udp")] if not self.natted[a] else ())
        if plan is None:
            return
        if plan == REVERSE:
            delay = self.latency.base_rtt(a, b)
            self.network.call_later(delay, self._reversed, link)
            return
        PunchRun(self, link, tb.initiator(), ta.responder()).start()

    def _reversed(self, link: Link) -> None:
        a, b = link.source, link.target
        if self.links.get(_key(a, b)) is not link:
            return
        self.observe(b, a, self.env.now, pin=True)  # b dials a (public): the connection is direct
        self._direct(link, "reversal")

    def _direct(self, link: Link, how: str) -> None:
        if link.relay is not None:
            relay = self.traversals[link.relay]
            if relay is not None and relay.service is not None:
                relay.service.circuit_closed(link.circuit)
        link.relay, link.circuit, link.how = None, None, how
        self.counts[how] += 1
        self.events.write(self.env.now, "connection", link.target, self.latency.base_rtt(link.source, link.target),
                          None, True, link.source)

    # ---- AutoNAT ---------------------------------------------------------------------------------

    def _probe(self, i: int, server: PeerInfo, addrs: tuple[bytes, ...], done) -> None:
        s = self.network.index[server.peer_id.raw]
        now = self.env.now
        rtt = self.latency.base_rtt(i, s)
        ts = self.traversals[s]
        if ts is None or ts.autonat_server is None or self.network.handlers[s] is None:
            self.network.call_later(10.0, done, ProbeResult(server.peer_id, None, None, "timeout"))
            return
        self.network.charge(DialRequest(addrs, self._nonce))
        seen = self.observe(i, s, now)
        choice = ts.autonat_server.choose(self.network.infos[i].peer_id, DialRequest(addrs, self._nonce),
                                          ip_text(seen[0]), now)
        self._nonce += 1
        if isinstance(choice, DialResponse):
            self.network.charge(choice)
            self.network.call_later(rtt, done, ProbeResult(server.peer_id, None, None, choice.status.name))
            return
        delay = rtt + self._dial_data(choice, rtt)
        parsed = endpoint_of(choice.addr)
        reached = False
        if parsed is not None:
            target, proto = parsed
            source = (self.internal[s][0], DIALBACK_PORT + self._nonce % 20_000)
            reached = self._in(i, source, target, proto, now + delay) if self.natted[i] else target == self.internal[i]
        self.network.charge(ts.autonat_server.outcome(choice, reached, reached))
        self.network.call_later(delay + rtt, done, ProbeResult(server.peer_id, choice.addr, reached))

    def _dial_data(self, choice: DialChoice, rtt: float) -> float:
        """The amplification-prevention payment: its bytes counted, one more round trip."""
        if not choice.dial_data:
            return 0.0
        chunk = DialDataResponse(bytes(4096))
        for _ in range(-(-choice.dial_data // 4096)):
            self.network.charge(chunk)
        return rtt

    # ---- events ----------------------------------------------------------------------------------

    def _event(self, i: int, event: Any) -> None:
        now = self.env.now
        if isinstance(event, ReachabilityChanged):
            truth = not self.natted[i] or self._reachable_by_anyone(i, now)
            self.events.write(now, "reachability", i, None, None, (event.status == PUBLIC) == truth,
                              1 if event.status == PUBLIC else 0 if event.status == PRIVATE else None)
            self.on_server(i, event.status == PUBLIC)
        elif isinstance(event, ReservationMade):
            relay = self.network.index[event.relay.raw]
            first = (i, relay) not in self.pinned
            self.observe(i, relay, now, pin=first)  # the connection to the relay stays open: keepalives
            if first:
                proto = self.proto(i, relay)
                self.pinned[i, relay] = (proto, self.advertised[relay][proto])
            self.network.hold_connection(i, relay)
            self.events.write(now, "reservation", i, None, None, True, relay, int(event.renewal))
        elif isinstance(event, ReservationFailed | ReservationLost):
            relay = self.network.index[event.relay.raw]
            if isinstance(event, ReservationLost) and (i, relay) in self.pinned:
                self._unpin(i, *self.pinned.pop((i, relay)))
            self.events.write(now, "reservation", i, None, None, False, relay, 0)

    def _unpin(self, i: int, proto: str, target: Endpoint) -> None:
        endpoint = self.internal[i]
        for box in self.paths[i]:
            box.unpin(proto, endpoint, target)
            endpoint = box.mapped(proto, endpoint, target, self.env.now) or endpoint

    def _reachable_by_anyone(self, i: int, now: float) -> bool:
        """The truth AutoNAT estimates: a dial from a peer ``i`` never contacted gets in."""
        stranger = (PUBLIC_NET + 0xFFFFF, DIALBACK_PORT)
        for proto, target in self.advertised[i].items():
            if self._in(i, stranger, target, proto, now):
                return True
        return False

    def sample(self, now: float) -> None:
        for r, traversal in enumerate(self.traversals):
            if traversal is not None and traversal.service is not None:
                stats = traversal.service.stats()
                self.events.write(now, "relay_load", r, None, None, None, stats["circuits"], stats["reservations"])
                self.events.write(now, "relay_bytes", r, None, None, None, stats["bytes_relayed"],
                                  stats["reserved"])

    def summary(self) -> dict[str, Any]:
        """What ``nat.json`` holds: the model's parameters, each node's NAT, and the run's counts."""
        return {
            "model": "sim",
            "parameters": self.params.model_dump(mode="json"),
            "nodes": [{"nat": self.labels[i], "home": p.home, "cgnat": p.cgnat, "relay": p.relay,
                       "port_mapped": p.port_mapped} for i, p in enumerate(self.placement)],
            "boxes": {"count": len(self.boxes), "mappings_created": sum(b.created for b in self.boxes),
                      "mappings_expired": sum(b.expired for b in self.boxes)},
            "counts": dict(sorted(self.counts.items())),
        }


def _key(a: int, b: int) -> tuple[int, int]:
    return (a, b) if a < b else (b, a)


class PunchRun:
    """One DCUtR upgrade of a relayed connection: the target ``b`` drives (``Initiator``), the dialler ``a``
    answers (``Responder``); messages go over the relay, dials through the boxes."""

    def __init__(self, model: NatModel, link: Link, initiator: Initiator, responder: Responder):
        self.model = model
        self.link = link
        self.a, self.b = link.source, link.target
        self.initiator = initiator
        self.responder = responder
        self.started = model.env.now
        self.dials: dict[int, tuple[float, tuple[bytes, ...]]] = {}  # node -> (when it dials, addresses)
        self.ok_by_proto: dict[str, bool] = {}

    def _alive(self) -> bool:
        return self.model.links.get(_key(self.a, self.b)) is self.link and self.link.relay is not None

    def start(self) -> None:
        self._act(self.b, self.initiator.start(self.model.env.now))

    def _act(self, side: int, actions: list) -> None:
        model = self.model
        for action in actions:
            if isinstance(action, Send):
                other = self.a if side == self.b else self.b
                model.network.charge(action.message)
                delay = model.back(self.a, self.b, 0) if side == self.b else model.back(self.b, self.a, 0)
                if delay is None:
                    self._finish(self.initiator.abort("relayed connection reset"))
                    return
                model.network.call_later(delay, self._deliver, other, action.message)
            elif isinstance(action, Dial):
                self.dials[side] = (action.at, action.addrs)
                if len(self.dials) == 2:
                    self._punch()
            elif isinstance(action, Finished):
                self._finish([action])

    def _deliver(self, side: int, message: Any) -> None:
        if not self._alive():
            self._finish(self.initiator.abort("relayed connection closed"))
            return
        now = self.model.env.now
        handler = self.initiator if side == self.b else self.responder
        self._act(side, handler.receive(message, now))

    def _punch(self) -> None:
        """Both sides' dials are known: send their packets through the boxes in time order."""
        (t_a, to_b), (t_b, to_a) = self.dials[self.a], self.dials[self.b]
        self.dials.clear()
        timeout = self.model.traversals[self.b].config.hole_punch_timeout if self.model.traversals[self.b] else 5.0
        results = []
        for proto in ("udp", "tcp"):
            targets_b = [e for e, p in filter(None, map(endpoint_of, to_b)) if p == proto]
            targets_a = [e for e, p in filter(None, map(endpoint_of, to_a)) if p == proto]
            if not targets_b and not targets_a:
                continue
            at = simulate_punch(self.model, self.a, self.b, proto, t_a, t_b, targets_b, targets_a, timeout)
            self.ok_by_proto[proto] = self.ok_by_proto.get(proto, False) or at is not None
            if at is not None:
                results.append(at)
        done = min(results) if results else max(t_a, t_b) + timeout
        self.model.network.call_later(max(0.0, done - self.model.env.now), self._dialled, bool(results))

    def _dialled(self, ok: bool) -> None:
        if not self._alive():
            self._finish(self.initiator.abort("relayed connection closed"))
            return
        self._act(self.b, self.initiator.dial_done(ok, self.model.env.now))

    def _finish(self, actions: list) -> None:
        model = self.model
        for finished in actions:
            traversal = model.traversals[self.b]
            if traversal is not None:
                traversal.punched(finished)
            now = model.env.now
            for proto, ok in sorted(self.ok_by_proto.items()):
                model.events.write(now, "hole_punch", self.b, now - self.started, 0 if proto == "udp" else 1,
                                   ok, self.a, finished.attempts)
                model.punch_pairs[model.labels[self.b], model.labels[self.a], proto, ok] += 1
            if not self.ok_by_proto:
                model.events.write(now, "hole_punch", self.b, now - self.started, None, False, self.a,
                                   finished.attempts)
            if finished.ok and self._alive():
                model._direct(self.link, "hole_punch")


def simulate_punch(model: NatModel, a: int, b: int, proto: str, t_a: float, t_b: float,
                   targets_b: list[Endpoint], targets_a: list[Endpoint], timeout: float) -> float | None:
    """When a hole punch over ``proto`` connects (None: it does not within ``timeout``).

    TCP: both sides send SYNs (with retransmissions) to the other's addresses; QUIC: ``a`` sends Initials,
    ``b`` sprays UDP packets to open its NATs. A connection-opening packet that gets in is answered; the
    answer must get back through the sender's boxes."""
    rng = model.rng
    queue: list[tuple] = []  # (time, seq, what, node, target, source, hairpin box)
    seq = 0

    def push(at: float, what: str, node: int, target: Endpoint, source: Endpoint | None = None,
             hairpin: NatBox | None = None) -> None:
        nonlocal seq
        heapq.heappush(queue, (at, seq, what, node, target, source, hairpin))
        seq += 1

    for offset in QUIC_RETRANSMITS if proto == "udp" else TCP_RETRANSMITS:
        if offset < timeout:
            for target in targets_b:
                push(t_a + offset, "open", a, target)
            if proto == "tcp":
                for target in targets_a:
                    push(t_b + offset, "open", b, target)
    if proto == "udp":
        at = t_b
        while at < t_b + timeout:
            for target in targets_a:
                push(at, "spray", b, target)
            at += rng.uniform(*SPRAY_GAP)
    deadline = max(t_a, t_b) + timeout
    while queue:
        at, _, what, node, target, source, hairpin = heapq.heappop(queue)
        if at > deadline:
            return None
        if not what.startswith("arrive"):
            other = b if node == a else a
            sent_from, hairpin = model._out(node, target, proto, at)
            push(at + model.latency.one_way(node, other), "arrive-" + what, other, target, sent_from, hairpin)
        elif model._in(node, source, target, proto, at, hairpin):
            if what == "arrive-open":
                push(at, "answer", node, source)  # the receiver answers the packet's source
            elif what == "arrive-answer":
                return at + model.latency.base_rtt(a, b)  # the handshake completes a round trip later
    return None
