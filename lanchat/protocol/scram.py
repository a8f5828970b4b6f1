"""SCRAM-SHA-256 and SCRAM-SHA-256-PLUS, both sides, pure (RFC 5802, RFC 7677, RFC 5929).

A room password never crosses the wire: the client proves it knows the password, the relay
proves it knows the verifier, and each proof is bound to both sides' fresh nonces, so a recorded
login cannot be replayed. The relay keeps only the verifier (salt, iteration count, StoredKey,
ServerKey), never the password.

What SCRAM alone cannot stop: someone who records a whole login on a plain connection can test
password guesses against it offline (each guess costs them `iterations` rounds of PBKDF2). Over
TLS the exchange is encrypted, and with -PLUS (channel binding "tls-server-end-point", RFC 5929
section 4.1: a hash of the server's certificate) a relay in the middle with a certificate of its
own cannot complete the proof: the client's proof covers the certificate it saw. So a client on
TLS always uses -PLUS (gs2 flag "p=tls-server-end-point"), and a server on TLS refuses a client
that says "y" or "n": either is a downgrade (RFC 5802 section 6).

Password preparation is "SASLprep lite": non-ASCII spaces become U+0020, the characters RFC 3454
table B.1 maps to nothing are dropped, then NFKC (RFC 4013 section 2). The prohibited-character
and bidi checks of RFC 4013 are left out: both sides are lanchat, so both prepare a password the
same way, and a password with a control character in it still works. Usernames here are fixed
ASCII words (lanchat/auth), so they need no preparation.

The state objects never raise anything but ScramError (a FrameError: a wire code and a sentence),
whatever the peer sends; the relay turns it into an error frame for that connection only.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import secrets
import unicodedata
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from lanchat.protocol.lines import FrameError

MECHANISM = "SCRAM-SHA-256"
MECHANISM_PLUS = "SCRAM-SHA-256-PLUS"
CHANNEL_BINDING = "tls-server-end-point"  # RFC 5929 section 4.1
MIN_ITERATIONS = 4096  # RFC 7677 section 4: at least 4096
# PBKDF2 rounds for a relay's verifiers: about 25 ms of one core here. The relay pays it once
# per cleartext login (a raw /login, a browser's password), a SCRAM client once per login; an
# offline guesser pays it per guess.
ITERATIONS = 100_000
MAX_ITERATIONS = 10_000_000  # a client does not let a hostile server make it burn a minute
NONCE_BYTES = 18  # 24 characters of base64url: printable, never a comma
SALT_BYTES = 16
MAX_MESSAGE_CHARS = 1024  # every honest message is under 200 characters

# RFC 3454 table C.1.2 (non-ASCII space characters) and table B.1 (commonly mapped to nothing).
_SPACES = dict.fromkeys(
    map(
        ord,
        "\u00a0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007\u2008\u2009"
        "\u200a\u200b\u202f\u205f\u3000",
    ),
    " ",
)
_NOTHING = dict.fromkeys(
    [
        0xAD,
        0x34F,
        0x1806,
        0x180B,
        0x180C,
        0x180D,
        0x200C,
        0x200D,
        0x2060,
        0xFEFF,
        *range(0xFE00, 0xFE10),
    ],
    None,
)
_PREPARE = {**_SPACES, **_NOTHING}


class ScramError(FrameError):
    """A login that cannot go on: a malformed message, a wrong proof, a channel-binding
    mismatch. `code` is the wire error code (docs/protocol.md, "Logging in")."""


def _malformed(what: str) -> ScramError:
    return ScramError("bad-login", f"Malformed login message: {what}.")


def prepare(password: str) -> bytes:
    """The password as SCRAM hashes it ("SASLprep lite", see the module's docstring)."""
    return unicodedata.normalize("NFKC", password.translate(_PREPARE)).encode("utf-8", "replace")


def salted_password(password: str, salt: bytes, iterations: int) -> bytes:
    """Hi(Normalize(password), salt, i) of RFC 5802: PBKDF2-HMAC-SHA-256."""
    return hashlib.pbkdf2_hmac("sha256", prepare(password), salt, iterations)


def _hmac(key: bytes, message: bytes) -> bytes:
    return hmac.new(key, message, hashlib.sha256).digest()


def _xor(a: bytes, b: bytes) -> bytes:
    return bytes(x ^ y for x, y in zip(a, b, strict=True))


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _unb64(text: str, what: str) -> bytes:
    try:
        return base64.b64decode(text.encode("ascii"), validate=True)
    except (binascii.Error, ValueError, UnicodeEncodeError):
        raise _malformed(f"{what} is not base64") from None


@dataclass(frozen=True)
class Verifier:
    """What a relay keeps of one secret: enough to check a proof, not enough to make one."""

    salt: bytes
    iterations: int
    stored_key: bytes = field(repr=False)
    server_key: bytes = field(repr=False)

    @classmethod
    def make(
        cls, password: str, *, salt: bytes | None = None, iterations: int = ITERATIONS
    ) -> Verifier:
        salt = salt if salt is not None else secrets.token_bytes(SALT_BYTES)
        return cls.from_salted(salted_password(password, salt, iterations), salt, iterations)

    @classmethod
    def from_salted(cls, salted: bytes, salt: bytes, iterations: int) -> Verifier:
        client_key = _hmac(salted, b"Client Key")
        return cls(
            salt, iterations, hashlib.sha256(client_key).digest(), _hmac(salted, b"Server Key")
        )

    def matches_salted(self, salted: bytes) -> bool:
        """Whether a salted password (this verifier's salt and count) is this secret's."""
        stored = hashlib.sha256(_hmac(salted, b"Client Key")).digest()
        return hmac.compare_digest(stored, self.stored_key)


def matching(verifiers: Mapping[str, Verifier], password: str) -> list[str]:
    """The names whose secret `password` is (a cleartext login: a raw /login, a browser).

    PBKDF2 runs once per distinct salt and count (a relay gives all its secrets one salt), and
    every verifier is compared, whatever matched before: the time taken says nothing about
    which one matched."""
    salted: dict[tuple[bytes, int], bytes] = {}
    found = []
    for name, verifier in verifiers.items():
        key = (verifier.salt, verifier.iterations)
        if key not in salted:
            salted[key] = salted_password(password, *key)
        if verifier.matches_salted(salted[key]):
            found.append(name)
    return found


def channel_binding(transport: object) -> bytes | None:
    """A connection's tls-server-end-point data (RFC 5929), or None on plain TCP: a TLS socket
    (`serve --tls`, and `join` to it) has `channel_binding()`; a plain one has none."""
    binding = getattr(transport, "channel_binding", None)
    return bytes(binding()) if binding is not None else None


def mechanisms(binding: bytes | None) -> tuple[str, ...]:
    """What a server offers: over TLS (`binding` is the channel's) only -PLUS, else plain."""
    return (MECHANISM_PLUS,) if binding is not None else (MECHANISM,)


# --- the messages' attributes ------------------------------------------------------------


def _attributes(message: str, what: str) -> list[tuple[str, str]]:
    """`a=value,b=value` as pairs in order; a mandatory extension ("m=") is refused."""
    if not message or len(message) > MAX_MESSAGE_CHARS:
        raise _malformed(f"the {what} is empty or too long")
    pairs = []
    for part in message.split(","):
        if len(part) < 2 or part[1] != "=" or not part[0].isascii() or not part[0].isalpha():
            raise _malformed(f"the {what} has an attribute that is not 'x=value'")
        pairs.append((part[0], part[2:]))
    if any(key == "m" for key, _ in pairs):
        raise ScramError("bad-login", "This server knows no SCRAM extensions.")
    return pairs


def _expect(pairs: list[tuple[str, str]], keys: str, what: str) -> list[str]:
    """The values of the leading attributes `keys`, in that order (others may follow)."""
    if len(pairs) < len(keys) or "".join(k for k, _ in pairs[: len(keys)]) != keys:
        raise _malformed(f"the {what} needs {', '.join(keys)} first")
    return [value for _, value in pairs[: len(keys)]]


def _printable(nonce: str) -> bool:
    return bool(nonce) and all("\x21" <= ch <= "\x7e" and ch != "," for ch in nonce)


def _saslname(name: str) -> str:
    return name.replace("=", "=3D").replace(",", "=2C")


def _unsaslname(text: str) -> str:
    out, i = [], 0
    while i < len(text):
        if text[i] == "=":
            escape = text[i : i + 3]
            if escape not in ("=2C", "=3D"):
                raise _malformed("the user name has a bad '=' escape")
            out.append("," if escape == "=2C" else "=")
            i += 3
        else:
            out.append(text[i])
            i += 1
    return "".join(out)


def _new_nonce() -> str:
    return secrets.token_urlsafe(NONCE_BYTES)


# --- the client --------------------------------------------------------------------------


class ScramClient:
    """One login, the client's side: `first()`, `final(server_first)`, `check(server_final)`.

    `binding`: the TLS channel's tls-server-end-point data when the connection is TLS; then the
    login is -PLUS and the proof covers the certificate this client saw."""

    def __init__(
        self,
        username: str,
        password: str,
        *,
        binding: bytes | None = None,
        nonce: str | None = None,
    ) -> None:
        self.username = username
        self._password = password
        self._binding = binding
        self._nonce = nonce or _new_nonce()
        flag = f"p={CHANNEL_BINDING}" if binding is not None else "n"
        self._gs2 = f"{flag},,"
        self._bare = f"n={_saslname(username)},r={self._nonce}"
        self._server_signature: bytes | None = None

    @property
    def mechanism(self) -> str:
        return MECHANISM_PLUS if self._binding is not None else MECHANISM

    def first(self) -> str:
        """client-first-message."""
        return self._gs2 + self._bare

    def final(self, server_first: str) -> str:
        """client-final-message, with the proof; ScramError if server-first is unusable."""
        nonce, salt_text, count = _expect(
            _attributes(server_first, "challenge"), "rsi", "challenge"
        )
        if not nonce.startswith(self._nonce) or not _printable(nonce) or nonce == self._nonce:
            raise ScramError("bad-login", "The server's nonce does not extend ours.")
        salt = _unb64(salt_text, "the salt")
        if not count.isascii() or not count.isdigit() or len(count) > 9:
            raise _malformed("the iteration count is not a number")
        iterations = int(count)
        if not MIN_ITERATIONS <= iterations <= MAX_ITERATIONS or not salt:
            raise ScramError(
                "bad-login",
                f"The server asked for {iterations} iterations (lanchat uses "
                f"{MIN_ITERATIONS} to {MAX_ITERATIONS}) or an empty salt.",
            )
        cbind = self._gs2.encode("ascii") + (self._binding or b"")
        without_proof = f"c={_b64(cbind)},r={nonce}"
        auth_message = f"{self._bare},{server_first},{without_proof}".encode()
        salted = salted_password(self._password, salt, iterations)
        client_key = _hmac(salted, b"Client Key")
        signature = _hmac(hashlib.sha256(client_key).digest(), auth_message)
        self._server_signature = _hmac(_hmac(salted, b"Server Key"), auth_message)
        return f"{without_proof},p={_b64(_xor(client_key, signature))}"

    def check(self, server_final: str) -> None:
        """Whether the server proved it knows the verifier; ScramError if not."""
        if self._server_signature is None:
            raise ScramError("bad-login", "The server answered a login we had not finished.")
        pairs = _attributes(server_final, "server's answer")
        if pairs[0][0] == "e":
            raise ScramError("wrong-password", f"The server refused the login ({pairs[0][1]}).")
        (verifier,) = _expect(pairs, "v", "server's answer")
        if not hmac.compare_digest(_unb64(verifier, "the signature"), self._server_signature):
            raise ScramError(
                "server-not-verified",
                "The server could not prove it knows the password: it is not the relay that "
                "set it (or someone is in between).",
            )


# --- the server --------------------------------------------------------------------------


class ScramServer:
    """One login, the relay's side: `first(mechanism, client_first)`, then `final(client_final)`.

    `lookup` gives the verifier of a user name (None: no such login). `binding`: this
    connection's tls-server-end-point data when it is TLS (then only -PLUS is accepted)."""

    def __init__(
        self,
        lookup: Callable[[str], Verifier | None],
        *,
        binding: bytes | None = None,
        nonce: str | None = None,
    ) -> None:
        self._lookup = lookup
        self._binding = binding
        self._nonce = nonce or _new_nonce()
        self.username = ""
        self._verifier: Verifier | None = None
        self._gs2 = ""
        self._bare = ""
        self._first = ""
        self._combined = ""

    def first(self, mechanism: str, client_first: str) -> str:
        """server-first-message (the challenge); ScramError for anything unusable."""
        if mechanism not in (MECHANISM, MECHANISM_PLUS):
            raise ScramError("bad-login", f"Unknown login mechanism {mechanism[:40]!r}.")
        if mechanism not in mechanisms(self._binding):
            raise self._downgrade(mechanism)
        if len(client_first) > MAX_MESSAGE_CHARS:
            raise _malformed("the first message is too long")
        flag, authzid, bare = _split_gs2(client_first)
        if authzid:
            raise ScramError("bad-login", "Logging in on behalf of someone else is not supported.")
        self._check_flag(flag, mechanism)
        pairs = _attributes(bare, "first message")
        name, nonce = _expect(pairs, "nr", "first message")
        if not _printable(nonce):
            raise _malformed("the client's nonce is not printable")
        self.username = _unsaslname(name)
        verifier = self._lookup(self.username)
        if verifier is None:
            raise ScramError("unknown-user", f"No login named {self.username[:40]!r} here.")
        self._verifier = verifier
        self._gs2 = f"{flag},{authzid},"
        self._bare = bare
        self._combined = nonce + self._nonce
        salt = _b64(verifier.salt)
        self._first = f"r={self._combined},s={salt},i={verifier.iterations}"
        return self._first

    def _check_flag(self, flag: str, mechanism: str) -> None:
        if flag.startswith("p="):
            if flag[2:] != CHANNEL_BINDING:
                raise ScramError(
                    "channel-binding",
                    f"Unsupported channel binding {flag[2:42]!r}; lanchat uses {CHANNEL_BINDING}.",
                )
            if mechanism != MECHANISM_PLUS or self._binding is None:
                raise ScramError(
                    "channel-binding", "Channel binding asked for on a connection without TLS."
                )
        elif flag in ("n", "y"):
            if mechanism == MECHANISM_PLUS or self._binding is not None:
                raise self._downgrade(mechanism)
        else:
            raise _malformed("the channel-binding flag is not n, y or p=...")

    def _downgrade(self, mechanism: str) -> ScramError:
        if self._binding is not None:
            return ScramError(
                "channel-binding",
                f"This connection is TLS: log in with {MECHANISM_PLUS} and channel binding "
                f"{CHANNEL_BINDING} (anything else would be a downgrade).",
            )
        return ScramError(
            "channel-binding", f"This connection is not TLS: {mechanism} cannot be used here."
        )

    def final(self, client_final: str) -> str:
        """server-final-message ("v=..."); ScramError "wrong-password" for a wrong proof."""
        verifier = self._verifier
        if verifier is None:
            raise ScramError("bad-login", "A final login message before the first.")
        if len(client_final) > MAX_MESSAGE_CHARS:
            raise _malformed("the final message is too long")
        without_proof, sep, proof_part = client_final.rpartition(",p=")
        if not sep:
            raise _malformed("the final message has no proof")
        cbind_text, nonce = _expect(_attributes(without_proof, "final message"), "cr", "final")
        proof = _unb64(proof_part, "the proof")
        cbind = self._gs2.encode("ascii") + (self._binding or b"")
        if not hmac.compare_digest(_unb64(cbind_text, "the channel binding"), cbind):
            raise ScramError(
                "channel-binding",
                "The login was made for another connection: its channel binding does not match "
                "this one (someone may be in between).",
            )
        if not hmac.compare_digest(nonce.encode(), self._combined.encode()):
            raise ScramError("bad-login", "The final message's nonce is not this login's.")
        if len(proof) != hashlib.sha256().digest_size:
            raise _malformed("the proof has the wrong length")
        auth_message = f"{self._bare},{self._first},{without_proof}".encode()
        signature = _hmac(verifier.stored_key, auth_message)
        client_key = _xor(proof, signature)
        self._verifier = None  # one proof per login
        if not hmac.compare_digest(hashlib.sha256(client_key).digest(), verifier.stored_key):
            raise ScramError("wrong-password", "Wrong password.")
        return f"v={_b64(_hmac(verifier.server_key, auth_message))}"


def _split_gs2(message: str) -> tuple[str, str, str]:
    """client-first-message -> (channel-binding flag, authzid, client-first-message-bare)."""
    parts = message.split(",", 2)
    if len(parts) != 3:
        raise _malformed("the first message has no gs2 header")
    flag, authzid, bare = parts
    if authzid and not authzid.startswith("a="):
        raise _malformed("the authorization identity is not 'a=...'")
    return flag, authzid, bare
