"""The libp2p TLS handshake's certificates (libp2p specs, ``tls/tls.md``), as QUIC uses them.

A peer proves its identity inside an otherwise ordinary, self-signed X.509 certificate: the certificate has
its own key (here a fresh ECDSA P-256 key, never the host key) and carries the libp2p Public Key Extension,
OID ``1.3.6.1.4.1.53594.1.1``, whose value is the DER of

    SignedKey ::= SEQUENCE { publicKey OCTET STRING, signature OCTET STRING }

``publicKey`` is the protobuf ``PublicKey`` of the host key and ``signature`` the host key's signature over
``"libp2p-tls-handshake:" || SubjectPublicKeyInfo`` of the certificate. (Early revisions of the spec said
BIT STRING; the spec was corrected to OCTET STRING, which is what every implementation sends.) The
extension is sent non-critical, as go-libp2p does; a critical one is accepted too (the spec allows both).

The TLS layer (``quic.py``) checks that the peer owns the certificate's key (CertificateVerify);
``verify_certificate_chain`` checks the rest and returns the authenticated peer ID. Only Ed25519 host keys
are supported (``p2pnode.identity``): a certificate for any other key type is refused.
"""

from __future__ import annotations

import datetime
import secrets
from collections.abc import Sequence

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from p2pnode.identity import IdentityError, Keypair, PeerId, decode_public_key, encode_public_key, verify
from p2pnode.transports.base import HandshakeError

EXTENSION_OID = x509.ObjectIdentifier("1.3.6.1.4.1.53594.1.1")
SIGNATURE_PREFIX = b"libp2p-tls-handshake:"
KEY_TYPES = {0: "RSA", 1: "Ed25519", 2: "Secp256k1", 3: "ECDSA"}  # the protobuf KeyType enum
KEY_TYPES_ED25519 = 1
CLOCK_SKEW = datetime.timedelta(hours=1)  # our certificates are valid from an hour ago, for peers whose clock lags
VALIDITY = datetime.timedelta(days=30)  # then regenerated (QuicTransport does it when less than a day is left)
MIN_HASH_BYTES = 32  # the spec forbids certificate signatures over hashes shorter than 256 bits

_TAG_SEQUENCE = 0x30
_TAG_OCTET_STRING = 0x04


class CertificateError(HandshakeError):
    """A peer certificate that does not authenticate a libp2p peer."""


# ---- a little strict DER ---------------------------------------------------------------------------------


def _der_length(n: int) -> bytes:
    if n < 0x80:
        return bytes([n])
    body = n.to_bytes((n.bit_length() + 7) // 8, "big")
    return bytes([0x80 | len(body)]) + body


def _der(tag: int, content: bytes) -> bytes:
    return bytes([tag]) + _der_length(len(content)) + content


def _read_tlv(data: bytes, pos: int, end: int) -> tuple[int, int, int]:
    """One DER element at ``pos`` that ends by ``end``: (tag, content start, content end). Only definite,
    minimally encoded lengths and single-byte tags (all this module needs) are accepted."""
    if pos + 2 > end:
        raise CertificateError("truncated DER element")
    tag, first = data[pos], data[pos + 1]
    if tag & 0x1F == 0x1F:
        raise CertificateError("multi-byte DER tag")
    pos += 2
    if first < 0x80:
        length = first
    else:
        count = first & 0x7F
        if count == 0 or count > 4 or pos + count > end:
            raise CertificateError("bad DER length")
        length = int.from_bytes(data[pos : pos + count], "big")
        if length < 0x80 or data[pos] == 0:
            raise CertificateError("DER length is not minimally encoded")
        pos += count
    if pos + length > end:
        raise CertificateError("DER element runs past its container")
    return tag, pos, pos + length


def encode_signed_key(public_key_proto: bytes, signature: bytes) -> bytes:
    """The extension value: DER ``SignedKey``."""
    return _der(_TAG_SEQUENCE, _der(_TAG_OCTET_STRING, public_key_proto) + _der(_TAG_OCTET_STRING, signature))


def decode_signed_key(value: bytes) -> tuple[bytes, bytes]:
    """(publicKey, signature) of a DER ``SignedKey``; anything else raises ``CertificateError``."""
    tag, start, end = _read_tlv(value, 0, len(value))
    if tag != _TAG_SEQUENCE or end != len(value):
        raise CertificateError("SignedKey is not a single DER SEQUENCE")
    fields = []
    pos = start
    while pos < end:
        tag, content_start, content_end = _read_tlv(value, pos, end)
        if tag != _TAG_OCTET_STRING:
            raise CertificateError(f"SignedKey field has DER tag {tag:#04x}, not OCTET STRING")
        fields.append(value[content_start:content_end])
        pos = content_end
    if len(fields) != 2:
        raise CertificateError(f"SignedKey has {len(fields)} fields, not 2")
    return fields[0], fields[1]


def subject_public_key_info(certificate: x509.Certificate) -> bytes:
    """The certificate's SubjectPublicKeyInfo exactly as encoded in it (the bytes the host key signed)."""
    tbs = certificate.tbs_certificate_bytes
    tag, pos, end = _read_tlv(tbs, 0, len(tbs))
    if tag != _TAG_SEQUENCE:
        raise CertificateError("TBSCertificate is not a SEQUENCE")
    tag, _, next_pos = _read_tlv(tbs, pos, end)
    if tag == 0xA0:  # [0] EXPLICIT version
        pos = next_pos
    # serialNumber, signature, issuer, validity, subject, then subjectPublicKeyInfo
    for _ in range(5):
        _, _, pos = _read_tlv(tbs, pos, end)
    tag, _, spki_end = _read_tlv(tbs, pos, end)
    if tag != _TAG_SEQUENCE:
        raise CertificateError("SubjectPublicKeyInfo is not a SEQUENCE")
    return tbs[pos:spki_end]


# ---- making our certificate ------------------------------------------------------------------------------


def make_certificate(
    keypair: Keypair, *, now: datetime.datetime | None = None, validity: datetime.timedelta = VALIDITY
) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    """A fresh self-signed certificate (and its new P-256 key) that authenticates ``keypair``'s peer ID."""
    now = now or datetime.datetime.now(datetime.UTC)
    key = ec.generate_private_key(ec.SECP256R1())
    # the SubjectPublicKeyInfo the certificate will carry: x509 encodes the key exactly like this
    spki = key.public_key().public_bytes(
        encoding=serialization.Encoding.DER, format=serialization.PublicFormat.SubjectPublicKeyInfo
    )
    signed_key = encode_signed_key(encode_public_key(keypair.public_key), keypair.sign(SIGNATURE_PREFIX + spki))
    name = x509.Name([x509.NameAttribute(NameOID.SERIAL_NUMBER, str(secrets.randbits(63)))])
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - CLOCK_SKEW)
        .not_valid_after(now + validity)
        .add_extension(x509.UnrecognizedExtension(EXTENSION_OID, signed_key), critical=False)
        .sign(key, hashes.SHA256())
    )
    if subject_public_key_info(certificate) != spki:  # cannot happen with cryptography; cheap to be sure
        raise CertificateError("certificate re-encoded its public key")
    return certificate, key


# ---- checking a peer's certificate -----------------------------------------------------------------------


def _decode_key_proto(proto: bytes) -> tuple[int, bytes]:
    """(KeyType, Data) of a protobuf ``PublicKey``, for the error message when the type is not Ed25519."""
    try:
        return KEY_TYPES_ED25519, decode_public_key(proto)
    except IdentityError:
        pass
    if len(proto) >= 2 and proto[0] == 0x08 and proto[1] < 0x80:
        return proto[1], b""
    raise CertificateError("libp2p extension has a malformed PublicKey protobuf")


def verify_certificate_chain(
    chain: Sequence[x509.Certificate | bytes], *, now: datetime.datetime | None = None
) -> PeerId:
    """The peer ID a peer's certificate chain authenticates, or ``CertificateError``.

    Checks: exactly one certificate; valid now; self-signed with a valid signature over a hash of at
    least 256 bits; no critical extension we do not understand; the libp2p extension present, with an
    Ed25519 host key whose signature over the certificate's SubjectPublicKeyInfo is valid. (That the peer
    holds the certificate's private key is the TLS handshake's CertificateVerify, checked by the caller.)
    """
    try:
        return _verify_chain(chain, now)
    except CertificateError:
        raise
    except Exception as exc:  # cryptography raises more than ValueError on malformed input (InvalidVersion)
        raise CertificateError(f"unparsable certificate: {type(exc).__name__}: {exc}") from exc


def _verify_chain(chain: Sequence[x509.Certificate | bytes], now: datetime.datetime | None) -> PeerId:
    if len(chain) != 1:
        raise CertificateError(f"expected exactly one certificate, got {len(chain)}")
    certificate = chain[0]
    if isinstance(certificate, bytes):
        certificate = x509.load_der_x509_certificate(certificate)

    now = now or datetime.datetime.now(datetime.UTC)
    if now < certificate.not_valid_before_utc:
        raise CertificateError("certificate is not yet valid")
    if now > certificate.not_valid_after_utc:
        raise CertificateError("certificate has expired")

    try:
        hash_algorithm = certificate.signature_hash_algorithm
    except Exception as exc:  # cryptography raises UnsupportedAlgorithm for unknown signature algorithms
        raise CertificateError(f"unsupported certificate signature algorithm: {exc}") from exc
    if hash_algorithm is not None and hash_algorithm.digest_size < MIN_HASH_BYTES:
        raise CertificateError(f"certificate is signed over {hash_algorithm.name}, shorter than 256 bits")
    try:
        certificate.verify_directly_issued_by(certificate)
    except Exception as exc:  # InvalidSignature, ValueError (issuer != subject), TypeError, UnsupportedAlgorithm
        raise CertificateError(f"certificate self-signature does not verify: {exc!r}") from exc

    signed_key: bytes | None = None
    try:
        extensions = certificate.extensions
    except Exception as exc:  # duplicate or malformed extensions
        raise CertificateError(f"certificate extensions are malformed: {exc}") from exc
    for extension in extensions:
        if extension.oid == EXTENSION_OID:
            value = extension.value
            signed_key = value.value if isinstance(value, x509.UnrecognizedExtension) else None
        elif extension.critical and isinstance(extension.value, x509.UnrecognizedExtension):
            raise CertificateError(f"certificate has an unknown critical extension {extension.oid.dotted_string}")
    if signed_key is None:
        raise CertificateError("certificate lacks the libp2p public key extension")

    key_proto, signature = decode_signed_key(signed_key)
    key_type, host_key = _decode_key_proto(key_proto)
    if key_type != KEY_TYPES_ED25519:
        raise CertificateError(f"unsupported host key type {KEY_TYPES.get(key_type, key_type)} (only Ed25519)")
    if not verify(host_key, signature, SIGNATURE_PREFIX + subject_public_key_info(certificate)):
        raise CertificateError("libp2p extension signature does not verify")
    return PeerId.from_public_key(host_key)
