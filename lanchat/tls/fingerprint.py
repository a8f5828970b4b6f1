"""A server key's fingerprint as people read, compare and type it (pure, standard library).

The fingerprint is the SHA-256 of the key's SubjectPublicKeyInfo (its DER encoding): the key,
not the certificate, so a certificate reissued for new addresses keeps it. Shown as base32
(RFC 4648, upper case, no padding) in groups of four joined by '-', 13 groups; browsers show
the same 32 bytes in hex ("Public Key" under "SHA-256 Fingerprints" in Chrome's certificate
viewer), which `colon_hex` writes out and `parse_fingerprint` also reads.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import re

FINGERPRINT_BYTES = 32  # SHA-256
GROUP = 4
_BASE32_CHARS = 52  # 32 bytes in base32, without the 4 '=' of padding
_HEX_CHARS = 64
_SEPARATORS = re.compile(r"[\s\-:]+")


def spki_digest(spki_der: bytes) -> bytes:
    """The fingerprint's bytes: SHA-256 of a SubjectPublicKeyInfo in DER."""
    return hashlib.sha256(spki_der).digest()


def format_fingerprint(digest: bytes) -> str:
    """'ABCD-EFGH-...' (13 groups of base32)."""
    text = base64.b32encode(digest).decode("ascii").rstrip("=")
    return "-".join(text[i : i + GROUP] for i in range(0, len(text), GROUP))


def colon_hex(digest: bytes) -> str:
    """'3F:A2:...': the same bytes as browsers show them (Chrome separates with spaces)."""
    return ":".join(f"{b:02X}" for b in digest)


def parse_fingerprint(text: str) -> bytes | None:
    """The digest a typed fingerprint names, or None when it is not one. Any case, grouping,
    dashes, spaces or colons; base32 (as lanchat shows it) or hex (as a browser shows it)."""
    bare = _SEPARATORS.sub("", text.strip()).upper()
    try:
        if len(bare) == _BASE32_CHARS:
            digest = base64.b32decode(bare + "=" * 4)
        elif len(bare) == _HEX_CHARS:
            digest = bytes.fromhex(bare)
        else:
            return None
    except (binascii.Error, ValueError):
        return None
    return digest if len(digest) == FINGERPRINT_BYTES else None


def same_fingerprint(a: bytes, b: bytes) -> bool:
    """Whether two digests are the same key (constant time: no timing tells how close)."""
    return hmac.compare_digest(a, b)
