"""Which protocol each message belongs to, and its wire form: the one table the host, the asyncio runtime and
the simulator all read.

A ``WireProtocol`` says, for the message types registered to it:

- ``name``: the host's key for the protocol's handler (``Host.serve``);
- ``ids``: the libp2p protocol IDs it is spoken under, the one we propose first;
- ``per_peer``: whether its messages are one-way on one long-lived stream per peer (GossipSub), or each
  request goes on a stream of its own and is answered there (Kademlia, as libp2p does; one-way messages of
  such a protocol get a stream each too); ``own_streams``: neither, its own code carries it (MCP, whose
  server may answer a request with several frames), so the runtimes only size and encode its messages;
- its codec: ``encode``/``decode`` of a message body (``decode`` is told whether a response is expected:
  Kademlia cannot tell a request from its response by type), ``max_frame`` (the largest body accepted;
  ``frame_limit(host)`` says it for a host where its configuration sets the largest record or message), and
  ``measure``: the body's size without encoding it, as (payload bytes, other bytes, payloads), where the
  payload is what the protocol carries for applications (GossipSub: the published messages), so the
  simulator can tell a protocol's data from its overhead.

On the wire every body is prefixed with its length as an unsigned varint (``frame``). Kademlia, GossipSub,
application request/response and MCP (JSON-RPC objects) are registered here; a new protocol registers its own
message types (``register``), and then the host dispatches them to its handler and both runtimes carry and size
them, with no branch on message types anywhere else.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from p2pnode import reqresp
from p2pnode.autonat import messages as autonat
from p2pnode.dcutr import messages as dcutr
from p2pnode.framing import encode_uvarint
from p2pnode.kad import codec as kad_codec
from p2pnode.kad.messages import RESPONSE_TYPES, AddProvider, FindNode, GetProviders, GetValue, Ping, PutValue
from p2pnode.mcp import jsonrpc
from p2pnode.pubsub import codec as pubsub_codec
from p2pnode.pubsub.messages import RPC
from p2pnode.relay import messages as relay


@dataclass(frozen=True, slots=True, eq=False)
class WireProtocol:
    name: str
    ids: tuple[str, ...]
    requests: tuple[type, ...]  # the message types a peer sends unasked (requests and one-way messages)
    responses: tuple[type, ...]
    encode: Callable[[Any], bytes]
    decode: Callable[[bytes, bool], Any]  # (body, response expected) -> message
    measure: Callable[[Any], tuple[int, int, int]]  # -> (payload bytes, other bytes, payloads) of the body
    max_frame: int
    per_peer: bool = False
    own_streams: bool = False
    frame_limit: Callable[[Any], int] | None = None  # host -> the largest body it accepts

    def limit_for(self, host: Any) -> int:
        return self.frame_limit(host) if self.frame_limit is not None else self.max_frame

    def frame(self, message: Any) -> bytes:
        body = self.encode(message)
        return encode_uvarint(len(body)) + body


PROTOCOLS: dict[str, WireProtocol] = {}
BY_TYPE: dict[type, WireProtocol] = {}
"""Message type -> its protocol: the dispatch table (read directly on hot paths)."""


def register(protocol: WireProtocol) -> WireProtocol:
    """Add ``protocol`` and map its message types to it (a name or a type taken twice is an error)."""
    if protocol.name in PROTOCOLS:
        raise ValueError(f"a protocol named {protocol.name!r} is already registered")
    for kind in (*protocol.requests, *protocol.responses):
        if kind in BY_TYPE:
            raise ValueError(f"{kind.__name__} already belongs to protocol {BY_TYPE[kind].name!r}")
    PROTOCOLS[protocol.name] = protocol
    BY_TYPE.update(dict.fromkeys((*protocol.requests, *protocol.responses), protocol))
    return protocol


def protocol_of(message: Any) -> WireProtocol:
    try:
        return BY_TYPE[type(message)]
    except KeyError:
        raise TypeError(f"no registered protocol carries {type(message).__name__} messages") from None


def round_trip(message: Any) -> Any:
    """``message`` encoded and decoded again: what the receiver of its wire form gets."""
    protocol = BY_TYPE[type(message)]
    return protocol.decode(protocol.encode(message), type(message) in protocol.responses)


# ---- the protocols of this package ---------------------------------------------------------------


def _all_overhead(size: Callable[[Any], int]) -> Callable[[Any], tuple[int, int, int]]:
    return lambda message: (0, size(message), 0)


def _measure_rpc(rpc: RPC) -> tuple[int, int, int]:
    data, other = pubsub_codec.sizes(rpc)
    return data, other, len(rpc.publish)


KAD = register(WireProtocol(
    name="kad",
    ids=("/ipfs/kad/1.0.0",),
    requests=(FindNode, GetValue, PutValue, AddProvider, GetProviders, Ping),
    responses=RESPONSE_TYPES,
    encode=kad_codec.encode,
    decode=lambda body, response: kad_codec.decode(body, response=response),
    measure=_all_overhead(kad_codec.encoded_size),
    max_frame=kad_codec.MAX_FRAME_SIZE,
    # a record as large as the host's configuration allows always fits, with the message around it
    frame_limit=lambda host: host.dht.config.max_record_size + kad_codec.FRAME_OVERHEAD,
))

PUBSUB = register(WireProtocol(
    name="pubsub",
    ids=("/meshsub/1.1.0", "/meshsub/1.0.0"),
    requests=(RPC,),
    responses=(),
    encode=pubsub_codec.encode,
    decode=lambda body, response: pubsub_codec.decode(body),
    measure=_measure_rpc,
    max_frame=pubsub_codec.MAX_FRAME_SIZE,
    per_peer=True,
    frame_limit=lambda host: pubsub_codec.FRAME_OVERHEAD + (
        host.pubsub.config.max_message_size if host.pubsub is not None else pubsub_codec.MAX_MESSAGE_SIZE),
))

REQRESP = register(WireProtocol(
    name="reqresp",
    ids=("/p2pnode/reqresp/1.0.0",),
    requests=(reqresp.AppRequest,),
    responses=(reqresp.AppResponse,),
    encode=reqresp.encode,
    decode=lambda body, response: reqresp.decode(body, response=response),
    measure=_all_overhead(reqresp.encoded_size),
    max_frame=1 << 20,
))

MCP = register(WireProtocol(
    name="mcp",
    ids=("/p2pnode/mcp/1.0.0",),
    requests=(dict,),  # JSON-RPC requests, notifications and responses alike
    responses=(),
    encode=jsonrpc.encode,
    decode=lambda body, response: json.loads(body),
    measure=lambda message: (0, len(jsonrpc.encode(message)), 0),  # JSON has no size short of encoding
    max_frame=1 << 20,
    own_streams=True,
))


# NAT traversal (docs/nat.md): their streams are carried by p2pnode.runtime.nat (a hop or stop stream that
# turns into a relayed connection, a DCUtR exchange timed against its round trip, AutoNAT's dial-back on a
# connection of its own); a RESERVE is an ordinary request. Registered here for the host's dispatch and the
# simulator's sizes.


def _encoded(encode: Callable[[Any], bytes]) -> Callable[[Any], tuple[int, int, int]]:
    return lambda message: (0, len(encode(message)), 0)


RELAY_HOP = register(WireProtocol(
    name="relay-hop",
    ids=(relay.HOP_PROTOCOL,),
    requests=(relay.Reserve, relay.Connect),
    responses=(relay.HopStatus,),
    encode=relay.encode_hop,
    decode=lambda body, response: relay.decode_hop(body),
    measure=_encoded(relay.encode_hop),
    max_frame=relay.MAX_MESSAGE,
    own_streams=True,
))

RELAY_STOP = register(WireProtocol(
    name="relay-stop",
    ids=(relay.STOP_PROTOCOL,),
    requests=(relay.StopConnect,),
    responses=(relay.StopStatus,),
    encode=relay.encode_stop,
    decode=lambda body, response: relay.decode_stop(body),
    measure=_encoded(relay.encode_stop),
    max_frame=relay.MAX_MESSAGE,
    own_streams=True,
))

DCUTR = register(WireProtocol(
    name="dcutr",
    ids=(dcutr.PROTOCOL,),
    requests=(dcutr.HolePunchConnect, dcutr.HolePunchSync),
    responses=(),
    encode=dcutr.encode,
    decode=lambda body, response: dcutr.decode(body),
    measure=_encoded(dcutr.encode),
    max_frame=dcutr.MAX_MESSAGE,
    own_streams=True,
))

AUTONAT = register(WireProtocol(
    name="autonat",
    ids=(autonat.DIAL_REQUEST_PROTOCOL,),
    requests=(autonat.DialRequest, autonat.DialDataResponse),
    responses=(autonat.DialResponse, autonat.DialDataRequest),
    encode=autonat.encode_v2,
    decode=lambda body, response: autonat.decode_v2(body),
    measure=_encoded(autonat.encode_v2),
    max_frame=autonat.MAX_MESSAGE,
    own_streams=True,
))

AUTONAT_V1 = register(WireProtocol(
    name="autonat-v1",
    ids=(autonat.V1_PROTOCOL,),
    requests=(autonat.V1Dial,),
    responses=(autonat.V1DialResponse,),
    encode=autonat.encode_v1,
    decode=lambda body, response: autonat.decode_v1(body),
    measure=_encoded(autonat.encode_v1),
    max_frame=autonat.MAX_MESSAGE,
    own_streams=True,
))
