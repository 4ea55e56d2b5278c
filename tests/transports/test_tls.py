"""The libp2p TLS certificate (libp2p specs ``tls/tls.md``): making one, and checking a peer's."""

from __future__ import annotations

import datetime

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from p2pnode.identity import Keypair, PeerId, encode_public_key
from p2pnode.transports.base import HandshakeError
from p2pnode.transports.tls import (
    EXTENSION_OID,
    SIGNATURE_PREFIX,
    CertificateError,
    decode_signed_key,
    encode_signed_key,
    make_certificate,
    subject_public_key_info,
    verify_certificate_chain,
)

NOW = datetime.datetime.now(datetime.UTC)

# The spec's test vectors (tls/tls.md, "Test vectors"), valid from 2025-03-20 to 2125.
SPEC_ED25519 = bytes.fromhex(
    "308201b030820156a00302010202081ef0074922d196fd300a06082a8648ce3d040302301e311c301a06035504051313343337"
    "323333323535383639393632313939323020170d3235303332303130333033305a180f32313235303232343131333033305a30"
    "1e311c301a06035504051313343337323333323535383639393632313939323059301306072a8648ce3d020106082a8648ce3d"
    "03010703420004799542bfc7bfb7506ecd6d78857796b30e4127c44716fc2caa40922cc578ec9367e5b748c748a3ae576786b9"
    "fddeca36f40f2cc883b101e937511bff41ab5232a37c307a3078060a2b0601040183a25a0101046a3068042408011220970ec1"
    "93ab5f6c556009767d5cdc0477d257807b41468a6f2007b40f03034fc70440db02949ac1e19fa61632baafa30d565eca7c12e8"
    "4f0fc4341ade332b5ccbac60640fdc59213399d913e6c3c0f1111f92f66f04ee20cfe8f16cecfb7b5ee59205300a06082a8648"
    "ce3d040302034800304502203d33964353d80f393415c993a6462d47c7dacc38147ee445953019786ea7b66d022100a693ade3"
    "5c4edb786bdb0bd09f1cb0c9a5b0bc6b61a97b639b4e3334371e10aa"
)
SPEC_ED25519_PEER = "12D3KooWKz2nHY8tmcX7ziGsF3gBoUZVvCXcmkvn86DaBsGktZfc"
SPEC_SECP256K1 = bytes.fromhex(
    "308201b83082015fa003020102020831c14b384686f89a300a06082a8648ce3d040302301e311c301a06035504051313313435"
    "373936393932373437313131393132373020170d3235303332303130333033305a180f32313235303232343131333033305a30"
    "1e311c301a06035504051313313435373936393932373437313131393132373059301306072a8648ce3d020106082a8648ce3d"
    "03010703420004e5da66e6dc811fef90f2b7a77ec92f8f7a96942899dc31ce649058cff9f9504cbe2c70212b616daef3fb52af"
    "a7d75b1c7880f48fdf0565cb7809ffb656b3b540a38184308181307f060a2b0601040183a25a01010471306f04250802122102"
    "d5dd09fddbcc150de9cb92e1777d7712ba0e20f526c7a842cc5f134a966cda780446304402202ece49e25a4b743f6965c70fd7"
    "c6efcf9101909a12fe81f2df98a5fcc203e49b02206e16a72fa8d1375d6117db99a960c324fe02f54d0853ecc19dda23a4f409"
    "49f0300a06082a8648ce3d0403020347003044022022587f895d257d5cf66da1d1c3627910b858443cb887f405e1948dc3e55d"
    "80b902200e2f07b93a2e4a487bb4bc721e9431ae723f921d91f84a875758d787c4302fa8"
)


def certificate(
    keypair: Keypair | None = None,
    *,
    key: ec.EllipticCurvePrivateKey | None = None,
    extension_value: bytes | None = None,
    oid: x509.ObjectIdentifier = EXTENSION_OID,
    critical: bool = False,
    tamper_signature: bool = False,
    signing_keypair: Keypair | None = None,
    signed_spki: bytes | None = None,
    key_proto: bytes | None = None,
    extra_extensions: tuple[tuple[x509.ExtensionType, bool], ...] = (),
    issuer_key: ec.EllipticCurvePrivateKey | None = None,
    not_before: datetime.datetime | None = None,
    not_after: datetime.datetime | None = None,
    omit_extension: bool = False,
) -> x509.Certificate:
    """A certificate like ``make_certificate``'s, with one thing wrong as asked."""
    keypair = keypair or Keypair.generate()
    key = key or ec.generate_private_key(ec.SECP256R1())
    spki = key.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    if extension_value is None:
        signature = (signing_keypair or keypair).sign(SIGNATURE_PREFIX + (signed_spki or spki))
        if tamper_signature:
            signature = bytes([signature[0] ^ 1]) + signature[1:]
        extension_value = encode_signed_key(key_proto or encode_public_key(keypair.public_key), signature)
    name = x509.Name([x509.NameAttribute(NameOID.SERIAL_NUMBER, "1")])
    builder = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before or NOW - datetime.timedelta(hours=1))
        .not_valid_after(not_after or NOW + datetime.timedelta(days=1))
    )
    if not omit_extension:
        builder = builder.add_extension(x509.UnrecognizedExtension(oid, extension_value), critical=critical)
    for extension, is_critical in extra_extensions:
        builder = builder.add_extension(extension, critical=is_critical)
    return builder.sign(issuer_key or key, hashes.SHA256())


def test_round_trip_gives_the_host_peer_id():
    keypair = Keypair.generate()
    cert, key = make_certificate(keypair)
    assert verify_certificate_chain([cert]) == keypair.peer_id
    assert verify_certificate_chain([cert.public_bytes(serialization.Encoding.DER)]) == keypair.peer_id


def test_certificate_has_its_own_key_and_a_non_critical_extension():
    keypair = Keypair.generate()
    cert, key = make_certificate(keypair)
    assert isinstance(key, ec.EllipticCurvePrivateKey) and isinstance(key.curve, ec.SECP256R1)
    assert cert.public_key() == key.public_key()
    extension = cert.extensions.get_extension_for_oid(EXTENSION_OID)
    assert not extension.critical
    public_key, signature = decode_signed_key(extension.value.value)
    assert public_key == encode_public_key(keypair.public_key)
    assert len(signature) == 64
    assert cert.issuer == cert.subject
    assert cert.not_valid_before_utc <= NOW <= cert.not_valid_after_utc


def test_signed_key_is_a_sequence_of_two_octet_strings():
    value = encode_signed_key(b"\x01\x02", b"\x03" * 200)
    # SEQUENCE (long-form length), OCTET STRING, OCTET STRING (long-form length)
    assert value == bytes([0x30, 0x81, 207, 0x04, 2, 1, 2, 0x04, 0x81, 200]) + b"\x03" * 200
    assert decode_signed_key(value) == (b"\x01\x02", b"\x03" * 200)
    bit_strings = bytes([0x30, 8, 0x03, 2, 0, 1, 0x03, 2, 0, 2])  # the spec's first draft said BIT STRING
    with pytest.raises(CertificateError, match="OCTET STRING"):
        decode_signed_key(bit_strings)
    with pytest.raises(CertificateError):
        decode_signed_key(value + b"\x00")  # trailing bytes
    with pytest.raises(CertificateError):
        decode_signed_key(bytes([0x30, 0x81, 3, 0x04, 1, 0]))  # non-minimal length
    with pytest.raises(CertificateError, match="fields"):
        decode_signed_key(bytes([0x30, 3, 0x04, 1, 0]))


def test_spec_test_vector_ed25519():
    assert verify_certificate_chain([SPEC_ED25519]) == PeerId.from_base58(SPEC_ED25519_PEER)


def test_spec_test_vector_secp256k1_is_an_unsupported_key_type():
    with pytest.raises(CertificateError, match="unsupported host key type Secp256k1"):
        verify_certificate_chain([SPEC_SECP256K1])


def test_spki_is_taken_from_the_certificate_bytes():
    cert = x509.load_der_x509_certificate(SPEC_ED25519)
    spki = subject_public_key_info(cert)
    assert spki == cert.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def test_valid_handmade_certificate_is_accepted():
    keypair = Keypair.generate()
    assert verify_certificate_chain([certificate(keypair)]) == keypair.peer_id
    # the extension may be critical, and unknown non-critical extensions are ignored
    cert = certificate(
        keypair,
        critical=True,
        extra_extensions=((x509.UnrecognizedExtension(x509.ObjectIdentifier("1.2.3.4"), b"\x05\x00"), False),),
    )
    assert verify_certificate_chain([cert]) == keypair.peer_id


def test_tampered_signature_is_rejected():
    with pytest.raises(CertificateError, match="signature does not verify"):
        verify_certificate_chain([certificate(tamper_signature=True)])


def test_signature_by_another_host_key_is_rejected():
    with pytest.raises(CertificateError, match="signature does not verify"):
        verify_certificate_chain([certificate(signing_keypair=Keypair.generate())])


def test_signature_over_another_certificate_key_is_rejected():
    other = ec.generate_private_key(ec.SECP256R1()).public_key()
    spki = other.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    with pytest.raises(CertificateError, match="signature does not verify"):
        verify_certificate_chain([certificate(signed_spki=spki)])


def test_wrong_oid_is_a_missing_extension():
    cert = certificate(oid=x509.ObjectIdentifier("1.3.6.1.4.1.53594.1.2"))
    with pytest.raises(CertificateError, match="lacks the libp2p public key extension"):
        verify_certificate_chain([cert])


def test_missing_extension_is_rejected():
    with pytest.raises(CertificateError, match="lacks the libp2p public key extension"):
        verify_certificate_chain([certificate(omit_extension=True)])


@pytest.mark.parametrize(("key_type", "name"), [(0, "RSA"), (2, "Secp256k1"), (3, "ECDSA"), (9, "9")])
def test_other_host_key_types_are_rejected(key_type, name):
    proto = bytes([0x08, key_type, 0x12, 33]) + b"\x02" + bytes(32)
    with pytest.raises(CertificateError, match=f"unsupported host key type {name}"):
        verify_certificate_chain([certificate(key_proto=proto)])


def test_malformed_extension_value_is_rejected():
    with pytest.raises(CertificateError):
        verify_certificate_chain([certificate(extension_value=b"\x04\x00")])
    with pytest.raises(CertificateError, match="PublicKey"):
        verify_certificate_chain([certificate(extension_value=encode_signed_key(b"\xff", b"\x00" * 64))])


def test_expired_and_not_yet_valid_are_rejected():
    keypair = Keypair.generate()
    cert, _ = make_certificate(keypair, now=NOW - datetime.timedelta(days=60))
    with pytest.raises(CertificateError, match="expired"):
        verify_certificate_chain([cert])
    cert, _ = make_certificate(keypair, now=NOW + datetime.timedelta(days=1))
    with pytest.raises(CertificateError, match="not yet valid"):
        verify_certificate_chain([cert])
    assert verify_certificate_chain([cert], now=NOW + datetime.timedelta(days=1)) == keypair.peer_id


def test_more_than_one_certificate_is_rejected():
    with pytest.raises(CertificateError, match="exactly one certificate"):
        verify_certificate_chain([certificate(), certificate()])
    with pytest.raises(CertificateError, match="exactly one certificate"):
        verify_certificate_chain([])


def test_bad_self_signature_is_rejected():
    cert = certificate(issuer_key=ec.generate_private_key(ec.SECP256R1()))
    with pytest.raises(CertificateError, match="self-signature"):
        verify_certificate_chain([cert])


def test_unknown_critical_extension_is_rejected():
    unknown = x509.UnrecognizedExtension(x509.ObjectIdentifier("1.2.3.4"), b"\x05\x00")
    with pytest.raises(CertificateError, match="unknown critical extension"):
        verify_certificate_chain([certificate(extra_extensions=((unknown, True),))])


def test_garbage_is_rejected_as_a_handshake_error():
    with pytest.raises(HandshakeError):
        verify_certificate_chain([b"not a certificate"])


def test_invalid_x509_version_is_a_certificate_error():
    # found by fuzzing: cryptography raises InvalidVersion, which is not a ValueError
    der = make_certificate(Keypair.generate())[0].public_bytes(serialization.Encoding.DER)
    version = bytes.fromhex("a003020102")  # [0] EXPLICIT INTEGER 2 (v3)
    assert version in der
    with pytest.raises(CertificateError, match="unparsable certificate"):
        verify_certificate_chain([der.replace(version, bytes.fromhex("a003020122"), 1)])
