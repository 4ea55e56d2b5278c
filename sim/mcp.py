"""MCP in the simulator: the nodes' unchanged sans-IO MCP services over the modelled network.

``SimMcpLink`` is the ``PeerLink`` of a simulated node: a JSON-RPC request reaches the target's MCP server
after the modelled one-way latency (or never, when the target is down or the message is lost: the caller's
timeout fires; a peer that left gracefully refuses after one round trip), and the response comes back the
same way. Each message is charged its encoded size (``SimNetwork.charge``). ``ModelledBackend`` stands for the
model: the simulator measures the network, so ``run_inference`` takes a service time drawn from the scenario
(exponential with mean ``service_time``) instead of running a network on every call.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from typing import Any

from p2pnode.kad.messages import PeerInfo
from p2pnode.mcp import jsonrpc
from p2pnode.mcp.inference import InferenceRequest, InferenceResult
from p2pnode.mcp.server import Channel
from p2pnode.mcp.service import McpService
from sim.runtime import SimNetwork


class SimMcpLink:
    def __init__(self, network: SimNetwork, services: list[McpService | None], src: int):
        self.network = network
        self.services = services
        self.src = src

    def call(self, peer: PeerInfo, message: dict[str, Any], timeout: float,
             on_reply: Callable[[dict[str, Any]], None], on_failure: Callable[[str], None]) -> None:
        net, src = self.network, self.src
        dst = net.index[peer.peer_id.raw]
        done = [False]

        def finish(callback: Callable[[Any], None], value: Any) -> None:
            if not done[0]:
                done[0] = True
                timer.cancel()
                callback(value)

        timer = net.call_later(timeout, finish, on_failure, "timeout")
        message = net.charge(message)  # sized (with wire: exact, round-tripped) as p2pnode.wire's MCP entry says
        if net.handlers[dst] is None:
            if net.refuses[dst]:
                net.call_later(net.latency.base_rtt(src, dst), finish, on_failure, "refused")
            return
        if net._lost(src, dst, message):
            return

        def answer(response: dict[str, Any]) -> None:
            if "id" in response and ("result" in response or "error" in response):
                response = net.charge(response)
                if not net._lost(dst, src, response):
                    net.call_later(net.latency.one_way(dst, src), finish, on_reply, response)

        def arrive() -> None:
            service = self.services[dst]
            if service is not None and net.handlers[dst] is not None:
                service.server.receive(jsonrpc.parse_object(message),
                                       Channel(answer, caller=net.infos[src].peer_id.to_base58()))

        net.call_later(net.latency.one_way(src, dst), arrive)


class ModelledBackend:
    """``run_inference`` in the simulator: answers after a service time drawn from the scenario."""

    name = "modelled"

    def __init__(self, network: SimNetwork, rng: random.Random, service_time: float):
        self.network = network
        self.rng = rng
        self.service_time = service_time

    def models(self) -> list[str]:
        return ["modelled"]

    def infer(self, request: InferenceRequest, on_done: Callable[[InferenceResult], None],
              on_error: Callable[[str], None]) -> None:
        took = self.rng.expovariate(1.0 / self.service_time) if self.service_time > 0 else 0.0
        result = InferenceResult("modelled", self.name, f"class-{len(request.input) % 3}", 1.0,
                                 {"service_time": round(took, 6)})
        self.network.call_later(took, on_done, result)
