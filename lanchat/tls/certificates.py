"""What a certificate says that lanchat checks: its key's fingerprint, and the hash RFC 5929's
"tls-server-end-point" channel binding takes of it (cryptography)."""

from __future__ import annotations

import hashlib

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization

from lanchat.tls.fingerprint import spki_digest

# RFC 5929, 4.1: the certificate's signature hash, except that MD5 and SHA-1 become SHA-256.
_WEAK = ("md5", "sha1")


def key_fingerprint(certificate_der: bytes) -> bytes:
    """SHA-256 of the certificate's SubjectPublicKeyInfo (DER): the key, whatever the
    certificate around it (lanchat/tls/fingerprint.py)."""
    certificate = x509.load_der_x509_certificate(certificate_der)
    spki = certificate.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return spki_digest(spki)


def end_point_hash(certificate_der: bytes) -> bytes:
    """RFC 5929's tls-server-end-point data for a server certificate (DER)."""
    certificate = x509.load_der_x509_certificate(certificate_der)
    algorithm = certificate.signature_hash_algorithm
    name = algorithm.name if isinstance(algorithm, hashes.HashAlgorithm) else "sha256"
    if name in _WEAK or name not in hashlib.algorithms_available:
        name = "sha256"
    return hashlib.new(name, certificate_der).digest()
