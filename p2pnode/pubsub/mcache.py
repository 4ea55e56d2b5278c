"""The message cache (gossipsub-v1.0 "Message Cache"): recent messages kept for IWANT, in heartbeat windows.

``put`` files a message in the newest window; ``shift`` (once per heartbeat) drops the oldest of
``history_length`` windows; ``gossip_ids`` names the messages of a topic in the newest ``history_gossip``
windows, which is what IHAVE announces.
"""

from __future__ import annotations

from collections import deque

from p2pnode.pubsub.messages import Message


class MessageCache:
    __slots__ = ("history_gossip", "messages", "windows", "_asked")

    def __init__(self, history_length: int, history_gossip: int):
        self.history_gossip = history_gossip
        self.messages: dict[bytes, Message] = {}
        self.windows: deque[list[tuple[bytes, str]]] = deque([[]], maxlen=history_length)
        self._asked: dict[bytes, dict[object, int]] = {}  # message ID -> peer -> IWANTs served

    def put(self, mid: bytes, message: Message) -> None:
        if mid not in self.messages:
            self.messages[mid] = message
            self.windows[0].append((mid, message.topic))

    def get(self, mid: bytes) -> Message | None:
        return self.messages.get(mid)

    def get_for_peer(self, mid: bytes, peer: object) -> tuple[Message | None, int]:
        """The message and how many times ``peer`` has now asked for it (gossipsub-v1.1 retransmission
        limit); (None, 0) when the message is not cached."""
        message = self.messages.get(mid)
        if message is None:
            return None, 0
        asked = self._asked.setdefault(mid, {})
        count = asked.get(peer, 0) + 1
        asked[peer] = count
        return message, count

    def gossip_ids(self, topic: str) -> list[bytes]:
        out = []
        for i, window in enumerate(self.windows):
            if i == self.history_gossip:
                break
            out.extend(mid for mid, t in window if t == topic)
        return out

    def shift(self) -> None:
        if len(self.windows) == self.windows.maxlen:
            for mid, _ in self.windows[-1]:
                self.messages.pop(mid, None)
                self._asked.pop(mid, None)
        self.windows.appendleft([])
