"""Ed25519 identities and peer IDs, checked against the libp2p peer-ids spec."""

from __future__ import annotations

import hashlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from p2pnode.identity import (
    IdentityError,
    Keypair,
    PeerId,
    decode_public_key,
    encode_public_key,
    kad_key,
    verify,
)

# libp2p/specs peer-ids/peer-ids.md, "Test vectors": the protobuf PrivateKey and PublicKey of one Ed25519
# key. PrivateKey.Data is the 32-byte seed followed by the 32-byte public key.
SPEC_ED25519_PRIVATE = bytes.fromhex(
    "080112407e0830617c4a7de83925dfb2694556b12936c477a0e1feb2e148ec9da60fee7d"
    "1ed1e8fae2c4a144b8be8fd4b47bf3d3b34b871c3cacf6010f0e42d474fce27e"
)
SPEC_ED25519_PUBLIC = bytes.fromhex(
    "080112201ed1e8fae2c4a144b8be8fd4b47bf3d3b34b871c3cacf6010f0e42d474fce27e"
)
# The spec gives no peer ID for that key; this is its identity-multihash peer ID, the value go-libp2p's
# HTTP peer-ID-auth tests expect for the same key.
SPEC_ED25519_PEER_ID = "12D3KooWBtg3aaRMjxwedh83aGiUkwSxDwUZkzuJcfaqUmo7R3pq"
# Example peer IDs from the spec's "String representation" section.
SPEC_EXAMPLE_ED25519_ID = "12D3KooWD3eckifWpRn9wQpMG9R9hX3sD158z7EqHWmweQAJU5SA"
SPEC_EXAMPLE_SHA256_ID = "QmYyQSo1c1Ym7orWxLYvCrM2EmxFTANf8wXmmE7DWjhx5N"

seeds = st.binary(min_size=32, max_size=32)


def test_spec_private_key_derives_the_spec_public_key():
    assert SPEC_ED25519_PRIVATE[:4] == bytes([0x08, 0x01, 0x12, 0x40])  # Type=Ed25519, Data: 64 bytes
    seed, public_key = SPEC_ED25519_PRIVATE[4:36], SPEC_ED25519_PRIVATE[36:]
    keypair = Keypair.from_seed(seed)
    assert keypair.public_key == public_key
    assert keypair.seed() == seed
    assert encode_public_key(keypair.public_key) == SPEC_ED25519_PUBLIC
    assert decode_public_key(SPEC_ED25519_PUBLIC) == public_key


def test_spec_key_peer_id():
    keypair = Keypair.from_seed(SPEC_ED25519_PRIVATE[4:36])
    # 36-byte key protobuf <= 42 bytes: identity multihash (code 0x00, length 0x24)
    assert keypair.peer_id.raw == b"\x00\x24" + SPEC_ED25519_PUBLIC
    assert keypair.peer_id.to_base58() == str(keypair.peer_id) == SPEC_ED25519_PEER_ID
    assert PeerId.from_base58(SPEC_ED25519_PEER_ID) == keypair.peer_id
    assert PeerId.from_base58(SPEC_ED25519_PEER_ID).public_key() == keypair.public_key


def test_spec_example_ed25519_peer_id():
    peer_id = PeerId.from_base58(SPEC_EXAMPLE_ED25519_ID)
    assert peer_id.raw[:2] == b"\x00\x24"
    assert peer_id.to_base58() == SPEC_EXAMPLE_ED25519_ID
    assert PeerId.from_public_key(peer_id.public_key()) == peer_id


def test_spec_example_sha256_peer_id():
    peer_id = PeerId.from_base58(SPEC_EXAMPLE_SHA256_ID)
    assert peer_id.raw[:2] == b"\x12\x20"
    assert peer_id.to_base58() == SPEC_EXAMPLE_SHA256_ID
    with pytest.raises(IdentityError):
        peer_id.public_key()  # a hashed key cannot be recovered


@given(seeds)
def test_peer_id_round_trips(seed):
    keypair = Keypair.from_seed(seed)
    peer_id = keypair.peer_id
    text = peer_id.to_base58()
    assert text.startswith("12D3KooW")
    assert PeerId.from_base58(text) == peer_id
    assert hash(PeerId.from_base58(text)) == hash(peer_id)
    assert PeerId(peer_id.raw) == peer_id
    assert peer_id.public_key() == keypair.public_key
    assert Keypair.from_seed(keypair.seed()).peer_id == peer_id


@given(seeds, st.binary(max_size=200))
def test_kad_key_is_sha256(seed, data):
    assert kad_key(data) == int.from_bytes(hashlib.sha256(data).digest(), "big")
    peer_id = Keypair.from_seed(seed).peer_id
    assert peer_id.kad_id == kad_key(peer_id.raw)
    assert 0 <= peer_id.kad_id < 2**256


def test_kad_key_known_value():
    # SHA-256("") = e3b0c442...b855
    assert kad_key(b"") == 0xE3B0C44298FC1C149AFBF4C8996FB92427AE41E4649B934CA495991B7852B855


@given(seeds, st.binary(max_size=200), st.data())
def test_sign_and_verify(seed, message, data):
    keypair = Keypair.from_seed(seed)
    signature = keypair.sign(message)
    assert len(signature) == 64
    assert verify(keypair.public_key, signature, message)
    assert verify(keypair.peer_id.public_key(), signature, message)

    tampered = bytearray(message + b"x")
    pos = data.draw(st.integers(0, len(tampered) - 1))
    tampered[pos] ^= data.draw(st.integers(1, 255))
    assert not verify(keypair.public_key, signature, bytes(tampered))

    bad_signature = bytearray(signature)
    bad_signature[data.draw(st.integers(0, 63))] ^= 1
    assert not verify(keypair.public_key, bytes(bad_signature), message)

    other = Keypair.from_seed(hashlib.sha256(seed).digest())
    assert not verify(other.public_key, signature, message)


@pytest.mark.parametrize("signature", [b"", b"\x00" * 63, b"\x00" * 65])
def test_verify_refuses_malformed_signatures(signature):
    keypair = Keypair.from_seed(bytes(32))
    assert not verify(keypair.public_key, signature, b"data")


def test_verify_refuses_malformed_keys():
    signature = Keypair.from_seed(bytes(32)).sign(b"data")
    assert not verify(b"\x01" * 31, signature, b"data")


@pytest.mark.parametrize(
    "raw",
    [
        b"",
        b"\x00",
        b"\x00\x05abc",  # length byte disagrees with the digest
        b"\x13\x02ab",  # neither identity nor sha2-256
    ],
)
def test_bad_peer_id_bytes(raw):
    with pytest.raises(IdentityError):
        PeerId(raw)


@pytest.mark.parametrize("text", ["0OIl", "", "12D3KooW"])
def test_bad_peer_id_text(text):
    with pytest.raises(IdentityError):
        PeerId.from_base58(text)


@pytest.mark.parametrize(
    "proto",
    [
        SPEC_ED25519_PUBLIC[:-1],
        bytes([0x08, 0x02]) + SPEC_ED25519_PUBLIC[2:],  # Secp256k1 type: refused
        bytes([0x08, 0x01, 0x12, 0x21]) + bytes(32),
    ],
)
def test_decode_public_key_refuses_other_keys(proto):
    with pytest.raises(IdentityError):
        decode_public_key(proto)


def test_encode_public_key_wants_32_bytes():
    with pytest.raises(IdentityError):
        encode_public_key(bytes(31))


def test_identity_peer_id_of_a_non_ed25519_key_has_no_public_key():
    # An identity multihash of something other than an Ed25519 PublicKey protobuf.
    with pytest.raises(IdentityError):
        PeerId(b"\x00\x03abc").public_key()
