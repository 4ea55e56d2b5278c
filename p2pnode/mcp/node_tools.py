"""The spec's nine MCP tools, sans-IO, over one node's ``McpService`` (``p2pnode.mcp.service``).

Network tools (``query_network``, ``find_peers``, ``relay_message``), AI tools (``run_inference``,
``forward_to_peer``, ``aggregate_results``) and management tools (``get_status``, ``list_connections``,
``configure``). Each has JSON schemas for its input and its output; every successful result's
``structuredContent`` conforms to the output schema (the tests check it with the SDK client).
"""

from __future__ import annotations

import base64
from collections import Counter
from typing import TYPE_CHECKING, Any

from multiaddr import Multiaddr

from p2pnode import __version__
from p2pnode.identity import IdentityError, PeerId
from p2pnode.kad.events import GetFinished, LookupFinished, PeerFound
from p2pnode.kad.messages import PeerInfo
from p2pnode.mcp.inference import InferenceRequest, InferenceResult
from p2pnode.mcp.routing import Attempt, Deadline, Outcome
from p2pnode.mcp.services import Discovery
from p2pnode.mcp.tools import Tool, ToolCall

if TYPE_CHECKING:
    from p2pnode.mcp.service import McpService

PEER_ID = {"type": "string", "minLength": 1, "maxLength": 128, "description": "a base58 peer ID (12D3KooW...)"}
MS = {"type": "number", "minimum": 0}
PEER = {"type": "object", "properties": {"peer_id": {"type": "string"}, "addrs": {"type": "array",
        "items": {"type": "string"}}}, "required": ["peer_id", "addrs"]}
INPUT = {"type": "string", "maxLength": 1 << 20, "description": "what the model reads (text, or base64 bytes)"}
MODEL = {"type": "string", "maxLength": 200, "description": "model name; empty: the backend's default"}
ENCODING = {"enum": ["utf-8", "base64"], "default": "utf-8"}
INFERENCE_OUT = {"type": "object", "properties": {
    "model": {"type": "string"}, "backend": {"type": "string"}, "output": {"type": "string"},
    "score": {"type": "number"}, "details": {"type": "object"}}, "required": ["model", "backend", "output"]}
DISCOVERY = {"discovery_ms": MS, "discovery_cached": {"type": "boolean"}}  # when providers were discovered
ATTEMPTS = {"type": "array", "items": {"type": "object", "properties": {
    "peer": {"type": "string"}, "route": {"enum": ["direct", "relay"]}, "outcome": {"type": "string"},
    "latency_ms": MS, "via": {"type": "string"}, "detail": {"type": "string"}},
    "required": ["peer", "route", "outcome", "latency_ms"]}}


def obj(properties: dict[str, Any], required: list[str] | None = None, closed: bool = True) -> dict[str, Any]:
    schema: dict[str, Any] = {"type": "object", "properties": properties}
    if required:
        schema["required"] = required
    if closed:
        schema["additionalProperties"] = False
    return schema


def peer_json(peer: PeerInfo) -> dict[str, Any]:
    return {"peer_id": peer.peer_id.to_base58(), "addrs": [str(Multiaddr(a)) for a in peer.addrs]}


def _peer_id(call: ToolCall, text: str) -> PeerId | None:
    try:
        return PeerId.from_base58(text)
    except (IdentityError, ValueError) as exc:
        call.error(f"peer: {text!r} is not a peer ID ({exc})")
        return None


def _ms(call: ToolCall, started: float) -> float:
    return round((call.now() - started) * 1000, 3)


def make_tools(svc: McpService) -> list[Tool]:
    dht = svc.host.dht

    # ---- network tools ---------------------------------------------------------------------------

    def query_network(call: ToolCall) -> None:
        op, key = call.arguments["operation"], call.arguments["key"]
        started = call.now()
        if op == "get":
            def got(result: GetFinished) -> None:
                record = result.record
                out: dict[str, Any] = {"operation": op, "key": key, "found": record is not None, "hops": result.hops,
                                       "requests": result.requests, "latency_ms": _ms(call, started), "peers": []}
                if record is not None:
                    try:
                        out.update(value=record.value.decode(), value_encoding="utf-8")
                    except UnicodeDecodeError:
                        out.update(value=base64.b64encode(record.value).decode(), value_encoding="base64")
                    out.update(publisher=record.publisher.to_base58(), version=record.version)
                call.finish(out)
            dht.get_value(key.encode(), got)
            return
        def looked_up(peers: list, result: LookupFinished | PeerFound) -> None:
            call.finish({"operation": op, "key": key, "found": bool(peers), "hops": result.hops,
                         "requests": result.requests, "latency_ms": _ms(call, started),
                         "peers": [peer_json(p) for p in peers]})

        if op == "find_peer":
            target = _peer_id(call, key)
            if target is not None:
                dht.find_peer(target, lambda result: looked_up([result.peer] if result.peer else [], result))
            return
        dht.find_node(key.encode(), lambda result: looked_up(list(result.peers), result))

    def find_peers(call: ToolCall) -> None:
        args = call.arguments

        def found(result: Discovery) -> None:
            call.finish({"service": result.service, "capability": result.capability or "",
                         "peers": [p.to_json() for p in result.providers], "candidates": result.candidates,
                         "cached": result.cached, "discovery_ms": round((result.finished - result.started) * 1000, 3)})
        svc.directory.discover(found, args.get("capability") or None, args.get("service"), args.get("limit", 10),
                               fresh=args.get("fresh", False))

    def relay_message(call: ToolCall) -> None:
        target = _peer_id(call, call.arguments["peer"])
        if target is None:
            return
        started = call.now()

        def delivered(outcome: Outcome) -> None:
            last = outcome.attempts[-1] if outcome.attempts else None
            response = outcome.response or {}
            if "result" not in response:
                call.error(f"not delivered to {target.short()}: {response.get('error', {}).get('message', '?')}",
                           None)
                return
            call.finish({"delivered": True, "peer": target.to_base58(), "route": last.route if last else "direct",
                         "via": (last.via or "") if last else "", "latency_ms": _ms(call, started),
                         "attempts": [a.to_json() for a in outcome.attempts]})
        params = {"message": call.arguments["message"], "topic": call.arguments.get("topic", ""),
                  "from": svc.host.peer_id.to_base58()}
        svc.router.call(svc.peer_info(target), "p2pnode/deliver", params, svc.attempt_timeout(), call.hops,
                        delivered)

    # ---- AI tools --------------------------------------------------------------------------------

    def inference_request(args: dict[str, Any]) -> InferenceRequest:
        return InferenceRequest(args["input"], args.get("model") or None, args.get("encoding", "utf-8"),
                                args.get("max_tokens", 256))

    def run_inference(call: ToolCall) -> None:
        started = call.now()

        def done(result: InferenceResult) -> None:
            call.finish({**result.to_json(), "latency_ms": _ms(call, started)})
        svc.backend.infer(inference_request(call.arguments), done, lambda why: call.error(f"inference failed: {why}"))

    def remote_inference_params(args: dict[str, Any]) -> dict[str, Any]:
        inner = {k: args[k] for k in ("input", "model", "encoding", "max_tokens") if k in args}
        return {"name": "run_inference", "arguments": inner}

    def forward_to_peer(call: ToolCall) -> None:
        args, started = call.arguments, call.now()
        timeout = args.get("attempt_timeout", svc.attempt_timeout())

        def finished(outcome: Outcome) -> None:
            if not call.active:
                return
            attempts = [a.to_json() for a in outcome.attempts]
            response = outcome.response or {}
            if not outcome.ok:
                why = response.get("error", {}).get("message") or _text(response) or "no answer"
                call.error(f"forward_to_peer failed after {len(attempts)} attempt(s): {why}")
                return
            answered = next(a for a in reversed(outcome.attempts) if a.outcome == "ok")
            call.finish({"peer": answered.peer, "route": answered.route, "result": _structured(response),
                         "attempts": attempts, "failovers": outcome.failovers, "hedged": outcome.hedges,
                         "latency_ms": _ms(call, started), **discovery})

        def progress(attempt: Attempt) -> None:
            call.progress(len(tried) + 1, None, f"{attempt.peer[:16]}: {attempt.outcome}")
            tried.append(attempt)
            if attempt.outcome != "ok":
                svc.directory.forget(PeerId.from_base58(attempt.peer))

        tried: list[Attempt] = []
        discovery: dict[str, Any] = {}
        if args.get("peer"):
            target = _peer_id(call, args["peer"])
            if target is not None:
                svc.router.call(svc.peer_info(target), "tools/call", remote_inference_params(args), timeout,
                                call.hops, finished)
            return

        def discovered(result: Discovery) -> None:
            if not call.active:
                return
            discovery.update(_discovery_facts(result))
            providers = [p.peer for p in result.providers][:args.get("max_attempts", 3)]
            if not providers:
                call.error(f"no peer offers {capability} in service {result.service!r} "
                           f"({result.candidates} provider entries found)")
                return
            call.progress(0.5, None, f"{len(providers)} provider(s) found")
            svc.router.call_any(providers, "tools/call", remote_inference_params(args), timeout, call.hops, finished,
                                progress, lambda: not call.active)
        capability = f"model:{args['model']}" if args.get("model") else "run_inference"
        svc.directory.discover(discovered, capability, args.get("service"))

    def aggregate_results(call: ToolCall) -> None:
        args, started = call.arguments, call.now()
        wait = min(args.get("timeout", 10.0), svc.server.request_timeout * 0.9)
        results: list[dict[str, Any]] = []
        failures: list[dict[str, Any]] = []
        asked: list[PeerInfo] = []
        discovery: dict[str, Any] = {}

        def finish(partial: bool) -> None:
            if not call.active:
                return
            deadline.cancel()
            votes = Counter(r["output"] for r in results)
            scores = [r["score"] for r in results if isinstance(r.get("score"), (int, float))]
            answered = {r["peer"] for r in results} | {f["peer"] for f in failures}
            for peer in asked:
                if peer.peer_id.to_base58() not in answered:
                    failures.append({"peer": peer.peer_id.to_base58(), "error": f"no answer within {wait:g} s"})
            combined: dict[str, Any] = {"votes": dict(votes)}
            if votes:
                (best, n), = votes.most_common(1)
                combined.update(output=best, agreement=n / len(results))
            if scores:
                combined["mean_score"] = sum(scores) / len(scores)
            if not results:
                call.error(f"aggregate_results: none of {len(asked)} peer(s) answered: "
                           + "; ".join(f"{f['peer'][:16]}: {f['error']}" for f in failures))
                return
            call.finish({"requested": len(asked), "answered": len(results), "partial": partial,
                         "results": results, "failures": failures, "combined": combined,
                         "latency_ms": _ms(call, started), **discovery})

        def answer(peer: PeerInfo, outcome: Outcome) -> None:
            if not call.active or deadline.expired:
                return
            peer_text = peer.peer_id.to_base58()
            latency = outcome.attempts[-1].latency_ms if outcome.attempts else 0.0
            if outcome.ok:
                structured = _structured(outcome.response)
                results.append({"peer": peer_text, "output": structured.get("output", ""),
                                **({"score": structured["score"]} if "score" in structured else {}),
                                "model": structured.get("model", ""), "latency_ms": latency})
            else:
                response = outcome.response or {}
                failures.append({"peer": peer_text, "error": response.get("error", {}).get("message")
                                 or _text(response) or "failed"})
            call.progress(len(results) + len(failures), len(asked), f"{peer_text[:16]} answered")
            if len(results) + len(failures) == len(asked):
                finish(partial=False)

        def fan_out(peers: list[PeerInfo]) -> None:
            if not call.active:
                return
            if not peers:
                call.error("aggregate_results: no peers to ask (none given and none discovered)")
                return
            # the timeout counts from the fan-out, not from the discovery before it
            deadline.start(svc.runtime, wait, lambda: finish(partial=True))
            asked.extend(peers)
            params = remote_inference_params(args)
            for peer in peers:
                svc.router.call(peer, "tools/call", params, wait, call.hops, lambda o, p=peer: answer(p, o))

        deadline = Deadline()
        call.on_cancel(deadline.cancel)
        if args.get("peers"):
            ids = [_peer_id(call, text) for text in args["peers"]]
            if None not in ids:
                fan_out([svc.peer_info(p) for p in dict.fromkeys(ids)])
            return
        capability = f"model:{args['model']}" if args.get("model") else "run_inference"
        def discovered(found: Discovery) -> None:
            discovery.update(_discovery_facts(found))
            fan_out([p.peer for p in found.providers][:args.get("count", 3)])
        svc.directory.discover(discovered, capability, args.get("service"))

    # ---- management tools ------------------------------------------------------------------------

    def get_status(call: ToolCall) -> None:
        call.finish(svc.status())

    def list_connections(call: ToolCall) -> None:
        connections = svc.connections()[:call.arguments.get("limit", 1000)]
        call.finish({"count": len(svc.host.connections), "connections": connections})

    def configure(call: ToolCall) -> None:
        from p2pnode.nodeconfig import NodeConfigError

        try:
            applied, pending = svc.configure(call.arguments["changes"], call.arguments.get("dry_run", False))
        except NodeConfigError as exc:
            call.error("configuration refused (the node's TOML rules):\n" + str(exc).replace("<configure>: ", ""))
            return
        call.finish({"applied": applied, "restart_required": pending, "dry_run": call.arguments.get("dry_run", False),
                     "mcp": svc.config.mcp.model_dump(mode="json", include=svc.RUNTIME_MCP_KEYS),
                     "security": svc.config.security.model_dump(mode="json")})

    inference_in = {"input": INPUT, "model": MODEL, "encoding": ENCODING,
                    "max_tokens": {"type": "integer", "minimum": 1, "maximum": 8192}}
    read_only = {"readOnlyHint": True, "openWorldHint": True}
    return [
        Tool("query_network", "Look up the Kademlia DHT: get a record's value, find a peer, or find the peers "
             "closest to a key.",
             obj({"operation": {"enum": ["get", "find_peer", "closest_peers"]},
                  "key": {"type": "string", "minLength": 1, "maxLength": 1024,
                          "description": "record key, peer ID (find_peer) or any key (closest_peers)"}},
                 ["operation", "key"]),
             obj({"operation": {"type": "string"}, "key": {"type": "string"}, "found": {"type": "boolean"},
                  "value": {"type": "string"}, "value_encoding": {"enum": ["utf-8", "base64"]},
                  "publisher": {"type": "string"}, "version": {"type": "integer"}, "peers": {"type": "array",
                  "items": PEER}, "hops": {"type": "integer"}, "requests": {"type": "integer"}, "latency_ms": MS},
                 ["operation", "key", "found", "peers", "hops", "requests", "latency_ms"], closed=False),
             query_network, "DHT query", read_only),
        Tool("find_peers", "Discover peers offering an MCP service with a capability (a tool name such as "
             "run_inference, or model:<name>), from their signed descriptors in the DHT, closest first.",
             obj({"capability": {"type": "string", "maxLength": 200}, "service": {"type": "string", "maxLength": 100},
                  "limit": {"type": "integer", "minimum": 1, "maximum": 50}, "fresh": {"type": "boolean"}}),
             obj({"service": {"type": "string"}, "capability": {"type": "string"}, "peers": {"type": "array",
                  "items": {"type": "object", "properties": {"peer_id": {"type": "string"},
                            "distance_bits": {"type": "integer"}, "tools": {"type": "array"},
                            "capabilities": {"type": "array"}, "models": {"type": "array"}, "ttl": {"type": "number"}},
                            "required": ["peer_id", "distance_bits", "capabilities"]}},
                  "candidates": {"type": "integer"}, "cached": {"type": "boolean"}, "discovery_ms": MS},
                 ["service", "peers", "candidates", "discovery_ms"], closed=False),
             find_peers, "Find peers", read_only),
        Tool("relay_message", "Deliver a text message to a peer through the overlay: directly when it can be "
             "reached, else through the connected peer closest to it.",
             obj({"peer": PEER_ID, "message": {"type": "string", "maxLength": 65536},
                  "topic": {"type": "string", "maxLength": 200}}, ["peer", "message"]),
             obj({"delivered": {"type": "boolean"}, "peer": {"type": "string"}, "route": {"enum": ["direct", "relay"]},
                  "via": {"type": "string"}, "latency_ms": MS, "attempts": ATTEMPTS},
                 ["delivered", "peer", "route", "latency_ms", "attempts"], closed=False),
             relay_message, "Relay a message", {"openWorldHint": True}),
        Tool("run_inference", "Run a model on this node. The embedded model (magika) names the content type of "
             "the input (python, json, markdown, txt, ...) with a confidence; an OpenAI-compatible backend "
             "answers the input as a prompt.",
             obj(inference_in, ["input"]),
             {**INFERENCE_OUT, "properties": {**INFERENCE_OUT["properties"], "latency_ms": MS}},
             run_inference, "Local inference", {"readOnlyHint": True}),
        Tool("forward_to_peer", "Run inference on another peer: the one named, or the closest peer that "
             "offers the capability, failing over to the next provider when one fails or times out.",
             obj({**inference_in, "peer": PEER_ID, "service": {"type": "string", "maxLength": 100},
                  "max_attempts": {"type": "integer", "minimum": 1, "maximum": 10},
                  "attempt_timeout": {"type": "number", "exclusiveMinimum": 0, "maximum": 300}}, ["input"]),
             obj({"peer": {"type": "string"}, "route": {"enum": ["direct", "relay"]}, "result": INFERENCE_OUT,
                  "attempts": ATTEMPTS, "failovers": {"type": "integer", "minimum": 0},
                  "hedged": {"type": "integer", "minimum": 0}, "latency_ms": MS, **DISCOVERY},
                 ["peer", "route", "result", "attempts", "failovers", "latency_ms"], closed=False),
             forward_to_peer, "Remote inference", {"openWorldHint": True}),
        Tool("aggregate_results", "Fan one inference request out to several peers (named, or discovered) and "
             "combine their answers (majority vote, mean score); after the timeout, the answers so far.",
             obj({**inference_in, "peers": {"type": "array", "items": PEER_ID, "maxItems": 20},
                  "count": {"type": "integer", "minimum": 1, "maximum": 20},
                  "service": {"type": "string", "maxLength": 100},
                  "timeout": {"type": "number", "exclusiveMinimum": 0, "maximum": 300}}, ["input"]),
             obj({"requested": {"type": "integer"}, "answered": {"type": "integer"}, "partial": {"type": "boolean"},
                  "results": {"type": "array", "items": {"type": "object", "properties": {
                      "peer": {"type": "string"}, "output": {"type": "string"}, "score": {"type": "number"},
                      "model": {"type": "string"}, "latency_ms": MS}, "required": ["peer", "output", "latency_ms"]}},
                  "failures": {"type": "array", "items": {"type": "object", "properties": {
                      "peer": {"type": "string"}, "error": {"type": "string"}}, "required": ["peer", "error"]}},
                  "combined": {"type": "object", "properties": {"output": {"type": "string"},
                               "agreement": {"type": "number"}, "mean_score": {"type": "number"},
                               "votes": {"type": "object"}}, "required": ["votes"]},
                  "latency_ms": MS, **DISCOVERY},
                 ["requested", "answered", "partial", "results", "failures", "combined", "latency_ms"], closed=False),
             aggregate_results, "Distributed inference", {"openWorldHint": True}),
        Tool("get_status", "This node's health: identity, uptime, peers, DHT, MCP counters.", obj({}),
             STATUS_SCHEMA, get_status, "Node status", {"readOnlyHint": True}),
        Tool("list_connections", "The peers this node is connected to, with direction and addresses.",
             obj({"limit": {"type": "integer", "minimum": 1, "maximum": 10000}}),
             obj({"count": {"type": "integer"}, "connections": {"type": "array", "items": {"type": "object",
                  "properties": {"peer_id": {"type": "string"}, "direction": {"enum": ["inbound", "outbound"]},
                                 "transport": {"type": "string"}, "remote_addr": {"type": "string"},
                                 "addrs": {"type": "array", "items": {"type": "string"}}},
                  "required": ["peer_id", "direction"]}}}, ["count", "connections"], closed=False),
             list_connections, "Connections", {"readOnlyHint": True}),
        Tool("configure", "Change the node's configuration at run time. `changes` holds TOML sections and keys "
             "(e.g. {\"mcp\": {\"request_timeout\": 10}}), checked by the configuration file's rules; keys that "
             "need a restart are reported, not applied.",
             obj({"changes": {"type": "object", "minProperties": 1, "additionalProperties": {"type": "object"}},
                  "dry_run": {"type": "boolean"}}, ["changes"]),
             obj({"applied": {"type": "array", "items": {"type": "string"}},
                  "restart_required": {"type": "array", "items": {"type": "string"}}, "dry_run": {"type": "boolean"},
                  "mcp": {"type": "object"}, "security": {"type": "object"}},
                 ["applied", "restart_required", "dry_run"], closed=False),
             configure, "Configure", {"destructiveHint": False, "idempotentHint": True}),
    ]


STATUS_SCHEMA = obj({
    "peer_id": {"type": "string"}, "version": {"type": "string"}, "running": {"type": "boolean"},
    "bootstrapped": {"type": "boolean"}, "uptime_s": MS, "peers_connected": {"type": "integer"},
    "routing_table_peers": {"type": "integer"}, "dht_records": {"type": "integer"},
    "listen_addrs": {"type": "array", "items": {"type": "string"}},
    "mcp": {"type": "object", "properties": {"service": {"type": "string"}, "tools": {"type": "array"},
            "models": {"type": "array"}, "requests_total": {"type": "integer"}, "in_flight": {"type": "integer"},
            "registrations": {"type": "integer"}, "failovers": {"type": "integer"}, "hedges": {"type": "integer"}},
            "required": ["service", "tools", "requests_total", "in_flight"]},
}, ["peer_id", "version", "running", "bootstrapped", "uptime_s", "peers_connected", "routing_table_peers",
    "dht_records", "listen_addrs", "mcp"], closed=False)
VERSION = __version__


def _discovery_facts(found: Discovery) -> dict[str, Any]:
    return {"discovery_ms": round((found.finished - found.started) * 1000, 3), "discovery_cached": found.cached}


def _structured(response: dict[str, Any] | None) -> dict[str, Any]:
    result = (response or {}).get("result") or {}
    structured = result.get("structuredContent")
    return structured if isinstance(structured, dict) else {}


def _text(response: dict[str, Any]) -> str:
    content = (response.get("result") or {}).get("content") or []
    return " ".join(c.get("text", "") for c in content if isinstance(c, dict))
