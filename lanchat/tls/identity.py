"""The relay's own TLS identity: an ECDSA P-256 key made once and kept, and a self-signed
certificate for it that names this PC (cryptography).

Both live in config_dir()/tls/ (lanchat/paths.py): key.pem, the private key (PKCS#8, readable by
its owner only), and certificate.pem. The key is made by the first `serve --tls` and kept across
restarts: its fingerprint is what clients pin (lanchat/tls/fingerprint.py). The certificate is
reissued for the same key when the names it should carry change (another address, another
hostname) or when it nears its end; a reissued certificate keeps the fingerprint, because the
fingerprint is the key's.

No certificate authority signs it: browsers say so ("Your connection is not private"), and
lanchat's own clients check the key's fingerprint instead (docs/security-tls.md).
"""

from __future__ import annotations

import datetime
import ipaddress
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from lanchat.errors import LanchatError
from lanchat.paths import config_dir, write_private
from lanchat.tls.fingerprint import colon_hex, format_fingerprint, spki_digest
from lanchat.tls.transport import ServerTls, server_context

TLS_DIR = "tls"
KEY_FILE = "key.pem"
CERTIFICATE_FILE = "certificate.pem"
VALID_DAYS = 825  # nobody checks a self-signed certificate's life; reissued long before
REISSUE_DAYS = 30  # ... this many days before its end
BACKDATE = datetime.timedelta(days=1)  # a client whose clock is a little behind still accepts it
MAX_NAMES = 64  # SAN entries: a PC with dozens of container addresses names the first ones


@dataclass(frozen=True)
class ServerIdentity:
    """The relay's key and certificate, where they are, and what they are called."""

    key_path: Path
    certificate_path: Path
    certificate: bytes  # DER
    fingerprint: bytes  # SHA-256 of the key's SubjectPublicKeyInfo
    names: tuple[str, ...]  # what the certificate's subjectAltName lists
    created: bool = False  # the key was made now (first `serve --tls` here)
    reissued: bool = False  # the certificate was made now

    @property
    def fingerprint_text(self) -> str:
        """'ABCD-EFGH-...': how lanchat shows it."""
        return format_fingerprint(self.fingerprint)

    @property
    def spki_sha256(self) -> str:
        """'3F:A2:...': how browsers show it ("Public Key" SHA-256)."""
        return colon_hex(self.fingerprint)


def certificate_names(hostname: str, addresses: Iterable[str]) -> tuple[str, ...]:
    """What the certificate should name: localhost and the loopback addresses, this PC's
    name (and its .local name, mDNS), and the relay's current addresses; each once, in order."""
    names = ["localhost", "127.0.0.1", "::1"]
    host = hostname.strip().rstrip(".")
    if host and _dns_name(host):
        names.append(host)
        if "." not in host:
            names.append(f"{host}.local")
    for address in addresses:
        bare = address.split("%", 1)[0]
        try:
            names.append(str(ipaddress.ip_address(bare)))
        except ValueError:
            continue
    unique = list(dict.fromkeys(n.lower() for n in names))
    return tuple(unique[:MAX_NAMES])


def load_identity(
    names: Iterable[str],
    directory: Path | None = None,
    *,
    now: datetime.datetime | None = None,
) -> ServerIdentity:
    """The relay's key (made on first use) and a certificate for it naming `names` (reissued
    when they changed or it is about to end). LanchatError when the files cannot be used."""
    folder = directory if directory is not None else config_dir() / TLS_DIR
    key_path, certificate_path = folder / KEY_FILE, folder / CERTIFICATE_FILE
    wanted = tuple(names)
    moment = now or datetime.datetime.now(datetime.UTC)
    key, created = _load_or_make_key(key_path)
    certificate = None if created else _usable_certificate(certificate_path, key, wanted, moment)
    reissued = certificate is None
    if certificate is None:
        certificate = _issue(key, wanted, moment)
        _write(certificate_path, certificate.public_bytes(serialization.Encoding.PEM))
    spki = key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return ServerIdentity(
        key_path=key_path,
        certificate_path=certificate_path,
        certificate=certificate.public_bytes(serialization.Encoding.DER),
        fingerprint=spki_digest(spki),
        names=wanted,
        created=created,
        reissued=reissued,
    )


def _load_or_make_key(path: Path) -> tuple[ec.EllipticCurvePrivateKey, bool]:
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        key = ec.generate_private_key(ec.SECP256R1())
        pem = key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        _write(path, pem)
        return key, True
    except OSError as e:
        raise _unusable(path, e.strerror or str(e)) from None
    try:
        loaded = serialization.load_pem_private_key(data, password=None)
    except (ValueError, TypeError) as e:
        raise _unusable(path, f"not a private key lanchat can read ({e})") from None
    if not isinstance(loaded, ec.EllipticCurvePrivateKey):
        raise _unusable(path, "not an elliptic-curve key")
    return loaded, False


def _usable_certificate(
    path: Path,
    key: ec.EllipticCurvePrivateKey,
    names: tuple[str, ...],
    now: datetime.datetime,
) -> x509.Certificate | None:
    """The certificate on disk if it is for this key, names exactly `names` and is not about
    to end; None when a new one is needed."""
    try:
        certificate = x509.load_pem_x509_certificate(path.read_bytes())
    except (OSError, ValueError):
        return None
    if certificate.public_key() != key.public_key():
        return None
    if certificate.not_valid_after_utc - now < datetime.timedelta(days=REISSUE_DAYS):
        return None
    try:
        san = certificate.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return None
    named = [str(n) for n in san.get_values_for_type(x509.DNSName)]
    named += [str(n) for n in san.get_values_for_type(x509.IPAddress)]
    return certificate if set(named) == set(names) else None


def _issue(
    key: ec.EllipticCurvePrivateKey, names: tuple[str, ...], now: datetime.datetime
) -> x509.Certificate:
    """A self-signed server certificate for `key` naming `names`."""
    host = next((n for n in names if n != "localhost" and not _is_ip(n)), "localhost")
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, f"lanchat on {host}"[:64])])
    alt_names: list[x509.GeneralName] = [
        x509.IPAddress(ipaddress.ip_address(n)) if _is_ip(n) else x509.DNSName(n) for n in names
    ]
    public = key.public_key()
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(public)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - BACKDATE)
        .not_valid_after(now + datetime.timedelta(days=VALID_DAYS))
        .add_extension(x509.SubjectAlternativeName(alt_names), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=False,
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public), critical=False)
        .sign(key, hashes.SHA256())
    )


def _write(path: Path, data: bytes) -> None:
    try:
        write_private(path, data)
    except OSError as e:
        raise LanchatError(
            f"Cannot write {path}: {e.strerror or e}.",
            "serve --tls keeps the relay's key in lanchat's config directory; make it "
            "writable, or point LANCHAT_CONFIG_DIR at a directory that is.",
        ) from None


def _unusable(path: Path, why: str) -> LanchatError:
    return LanchatError(
        f"The relay's TLS key {path} cannot be used: {why}.",
        "Move the file away and start again to make a new key; clients that pinned the old "
        "key will then refuse this relay until they remove its line from known_servers.",
    )


def _is_ip(name: str) -> bool:
    try:
        ipaddress.ip_address(name)
    except ValueError:
        return False
    return True


def _dns_name(name: str) -> bool:
    """A name a certificate can carry as a DNS name (letters, digits, '-', '.')."""
    parts = name.split(".")
    return all(p and p.isascii() and p.replace("-", "").isalnum() for p in parts)


def server_tls(identity: ServerIdentity, *, allow_plain: bool = False) -> ServerTls:
    """What the relay needs to speak TLS with this identity."""
    context = server_context(str(identity.certificate_path), str(identity.key_path))
    return ServerTls(context, identity.certificate, identity.fingerprint, allow_plain=allow_plain)
