"""The runtime interface: everything a sans-IO node may ask of the world.

A node never reads a clock, opens a socket or draws global randomness; it is handed a ``Runtime``.
``sim.runtime`` implements it on SimPy (modelled time and links); the asyncio runtime implements it over
real sockets. Requests are answered synchronously by the receiving node's ``handle_request``.

Connections: ``connect(peer)`` opens one; the runtime then calls the node's ``connection_opened(peer,
outbound)`` (which returns False to refuse an inbound one) or ``dial_failed(peer)``, and later
``connection_closed(peer)`` when it ends or is noticed dead. Requests and one-way messages do not need an
open connection (the runtime dials as needed); connections are what long-lived protocols (pub-sub) use.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from typing import Any, Protocol


class Timer(Protocol):
    def cancel(self) -> None: ...


class Runtime(Protocol):
    rng: random.Random

    def now(self) -> float:
        """Seconds, monotonic; simulated or real."""

    def call_later(self, delay: float, callback: Callable[[], None]) -> Timer:
        """Run ``callback`` after ``delay`` seconds unless the returned timer is cancelled."""

    def request(
        self,
        peer: Any,
        message: Any,
        timeout: float,
        on_response: Callable[[Any], None],
        on_failure: Callable[[str], None],
    ) -> None:
        """Send ``message`` to ``peer`` (a ``PeerInfo``). Exactly one callback runs, unless the node stops:
        ``on_response(response)``, or ``on_failure(reason)`` after ``timeout`` or when the peer is unreachable."""

    def send(self, peer: Any, message: Any) -> None:
        """Send a one-way message (no answer expected; lost silently if the peer is unreachable)."""

    def connect(self, peer: Any) -> None:
        """Open a connection to ``peer``; the outcome arrives as ``connection_opened`` or ``dial_failed``."""

    def disconnect(self, peer: Any) -> None:
        """Close the connection to ``peer``, if any (no ``connection_closed`` callback for our own close)."""
