"""A certificate cryptography cannot parse (here: an X.509 version other than 1 or 3, on which it raises
``InvalidVersion``, not ``ValueError``) is refused with a TLS alert by the QUIC handshake, and as a
``CertificateError`` by our certificate verifier."""

from __future__ import annotations

import asyncio
import logging
import ssl

import pytest
from aioquic.asyncio import connect as aioquic_connect
from aioquic.quic.configuration import QuicConfiguration
from aioquic.quic.packet import QuicErrorCode
from cryptography.hazmat.primitives.serialization import Encoding

from p2pnode.identity import Keypair
from p2pnode.transports.tls import CertificateError, make_certificate, verify_certificate_chain
from tests.transports.test_quic import connected, nodes, run

BAD_CERTIFICATE = 42  # the TLS alert


def bad_version(der: bytes) -> bytes:
    """``der`` with its X.509 version field (v3, encoded 2) changed to 7."""
    at = der.find(bytes([0xA0, 3, 2, 1, 2]))
    assert at > 0
    return der[: at + 4] + b"\x07" + der[at + 5 :]


class _RawCertificate:
    """What aioquic's client needs of its certificate: the DER it sends."""

    def __init__(self, der: bytes):
        self.der = der

    def public_bytes(self, encoding: Encoding) -> bytes:
        return self.der


def test_the_verifier_refuses_an_invalid_version_by_name():
    certificate, _ = make_certificate(Keypair.generate())
    with pytest.raises(CertificateError, match="InvalidVersion"):
        verify_certificate_chain([bad_version(certificate.public_bytes(Encoding.DER))])


def test_a_client_certificate_with_an_invalid_version_gets_a_bad_certificate_alert(caplog):
    caplog.set_level(logging.INFO, logger="p2pnode.transports.quic")
    certificate, key = make_certificate(Keypair.generate())

    async def test():
        async with nodes() as (server, client):
            port = int(server.addr.value_for_protocol("udp"))
            configuration = QuicConfiguration(is_client=True, alpn_protocols=["libp2p"], verify_mode=ssl.CERT_NONE,
                                              certificate=_RawCertificate(bad_version(
                                                  certificate.public_bytes(Encoding.DER))),
                                              private_key=key)
            async with aioquic_connect("::1", port, configuration=configuration) as protocol:
                await asyncio.wait_for(protocol.wait_closed(), 2)
                close = protocol._quic._close_event
                assert close.error_code == QuicErrorCode.CRYPTO_ERROR + BAD_CERTIFICATE
            assert server.accepted.empty()
            await connected(server, client)  # the listener goes on

    run(test)
    assert not [r for r in caplog.records if "failed on a datagram" in r.getMessage()]
    assert any("InvalidVersion" in r.getMessage() for r in caplog.records)
