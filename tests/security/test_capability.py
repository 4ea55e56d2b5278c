"""Capability tokens: signed by an issuer, naming a subject peer, the MCP tools it may call and the DHT
namespaces it may write, until they expire; honoured only from trusted issuers and from their subject; a
denial is refused cleanly, logged and counted."""

from __future__ import annotations

import dataclasses
import logging

from p2pnode.config import KadConfig
from p2pnode.identity import Keypair
from p2pnode.kad.messages import PutValue
from p2pnode.kad.records import make_record
from p2pnode.mcp import jsonrpc
from p2pnode.mcp.server import McpServer
from p2pnode.security.access import AccessPolicy
from p2pnode.security.capability import CapabilityError, issue, parse
from tests.mcp.clock import Clock
from tests.mcp.test_server import SLOW, SUM, Client, pending

ISSUER, ALICE, MALLORY = (Keypair.from_seed(bytes([i]) * 32) for i in (1, 2, 3))
A, M = ALICE.peer_id.to_base58(), MALLORY.peer_id.to_base58()


def test_tokens_round_trip_and_hold_only_for_their_subject_until_they_expire():
    token = issue(ISSUER, ALICE.peer_id, ("run_inference",), ("app/",), expires=1000.0)
    assert parse(token.encode()) == token and token.grants() == {"run_inference", "write:app/"}
    trusted = frozenset({ISSUER.peer_id.to_base58()})
    assert token.problem(A, 999.0, trusted) is None
    assert token.problem(M, 999.0, trusted) == "names another peer"
    assert token.problem(A, 1000.0, trusted) == "expired"
    assert token.problem(A, 0.0, frozenset()) == "issuer not trusted"
    widened = dataclasses.replace(token, tools=("configure",))
    assert widened.problem(A, 0.0, trusted) == "bad signature"
    for junk in ("", "!!", "e30=", "x" * 5000):
        try:
            parse(junk)
        except CapabilityError as exc:
            assert "capability token" in str(exc)
        else:
            raise AssertionError(f"{junk[:10]!r} parsed")


def test_policy_grants_what_presented_tokens_say_and_counts_denials():
    now = [0.0]
    policy = AccessPolicy({"*": ["get_status"]}, issuers={ISSUER.peer_id.to_base58()}, clock=lambda: now[0])
    assert not policy.check(A, "run_inference")
    assert policy.present(A, issue(ISSUER, ALICE.peer_id, ("run_inference",), expires=10.0).encode()) is None
    assert policy.check(A, "run_inference") and policy.check(A, "get_status")
    assert not policy.check(M, "run_inference")  # a token is its subject's only
    stolen = issue(ISSUER, ALICE.peer_id, ("run_inference",), expires=10.0).encode()
    assert policy.present(M, stolen) == "names another peer"
    assert policy.present(A, issue(MALLORY, ALICE.peer_id, ("configure",), expires=10.0).encode()) \
        == "issuer not trusted"
    now[0] = 10.0
    assert not policy.check(A, "run_inference")  # expired
    assert policy.denials == {(A, "run_inference"): 2, (M, "run_inference"): 1, (M, "token"): 1, (A, "token"): 1}
    assert AccessPolicy({}).present(A, stolen) == "no clock to check its expiry"


def test_protected_namespace_writes_need_the_capability(make_net, caplog):
    net = make_net(seed=3)
    policy = AccessPolicy({}, issuers={ISSUER.peer_id.to_base58()}, clock=lambda: 0.0)
    node = net.add_host(KadConfig(k=4), access=policy, protected_namespaces=[b"app/"])
    writer = net.add_host(KadConfig(k=4))
    record = make_record(writer.keypair, b"app/x", b"v", 3600, 1)
    with caplog.at_level(logging.WARNING, logger="p2pnode.host"):
        assert not node.handle_request(writer.info, PutValue(record)).stored
    assert node.refused_writes == 1 and "write:app/" in caplog.text
    assert node.handle_request(writer.info, PutValue(make_record(writer.keypair, b"other", b"v", 3600, 1))).stored
    token = issue(ISSUER, writer.peer_id, namespaces=("app/",), expires=100.0)
    assert policy.present(writer.peer_id.to_base58(), token.encode()) is None
    assert node.handle_request(writer.info, PutValue(record)).stored


def test_a_peer_presents_its_token_in_an_mcp_request_and_may_then_call_the_tool():
    policy = AccessPolicy({"*": ["add"]}, issuers={ISSUER.peer_id.to_base58()}, clock=lambda: 0.0)
    server = McpServer(Clock(), [SUM, SLOW], access=policy)
    peer = Client(server, caller=A)
    assert peer.request("tools/call", {"name": "slow", "arguments": {}})["error"]["code"] == jsonrpc.ACCESS_DENIED
    forged = issue(MALLORY, ALICE.peer_id, ("slow",), expires=60.0).encode()
    refused = peer.request("tools/list", {"_meta": {"p2pnode/capability": forged}})
    assert refused["error"]["code"] == jsonrpc.ACCESS_DENIED and "issuer not trusted" in refused["error"]["message"]
    token = issue(ISSUER, ALICE.peer_id, ("slow",), expires=60.0).encode()
    listed = peer.request("tools/list", {"_meta": {"p2pnode/capability": token}})
    assert [t["name"] for t in listed["result"]["tools"]] == ["add", "slow"]
    pending.clear()
    peer.request("tools/call", {"name": "slow", "arguments": {}})
    assert len(pending) == 1 and policy.denials[(A, "slow")] == 1  # called this time, not denied
    assert "error" in Client(server, caller=M).request("tools/call", {"name": "slow", "arguments": {}})
