"""Misbehaving peers for attack scenarios (kept out of the protocol package: honest code only there)."""

from __future__ import annotations

from p2pnode.kad.messages import PeerInfo
from p2pnode.pubsub.messages import IWant, Message
from p2pnode.pubsub.router import GossipSub


class DroppingGossipSub(GossipSub):
    """Subscribes, joins meshes, gossips and answers GRAFT/PRUNE like an honest router, but forwards no
    message: it relays nothing it receives and answers no IWANT (its IHAVEs become broken promises)."""

    def forward(self, message: Message, src: PeerInfo) -> None:
        return

    def _on_iwant(self, src: PeerInfo, iwants: tuple[IWant, ...]) -> tuple[Message, ...]:
        return ()
