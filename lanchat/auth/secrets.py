"""The relay's secrets, as verifiers only, and the operator token's file.

A relay has up to three logins (the SCRAM user names of lanchat/protocol/requests.py): `room`
(the room password: `serve --password-file`, `LANCHAT_PASSWORD`, `--ask-password`), `operator`
(`--operator-password-file`, `LANCHAT_OPERATOR_PASSWORD`) and `console` (a random token made at
every start and written, owner-only, to `config_dir()/operator/<PORT>.token`: whoever can read
that file sits at the server, as its owner, and may moderate). `operator` and `console` make a
client an operator; either also lets it into a room with a password.

All verifiers of one relay share one salt and iteration count, so a cleartext password (a raw
/login, a browser) costs one PBKDF2 however many secrets it is compared with. The passwords
themselves are not kept: only `Secrets` is, made once at start.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field, replace
from pathlib import Path

from lanchat.errors import UsageError
from lanchat.paths import config_dir, write_private
from lanchat.protocol import LOGIN_CONSOLE, LOGIN_OPERATOR, LOGIN_ROOM
from lanchat.protocol.scram import ITERATIONS, SALT_BYTES, Verifier, salted_password

TOKEN_BYTES = 32  # 256 random bits: nobody guesses it, offline or not
PASSWORD_ENV = "LANCHAT_PASSWORD"  # noqa: S105  (the variable's name, not a password)
OPERATOR_PASSWORD_ENV = "LANCHAT_OPERATOR_PASSWORD"  # noqa: S105


@dataclass(frozen=True)
class Secrets:
    """What a relay keeps to check logins: a verifier per login it has, one salt for all."""

    salt: bytes = field(default_factory=lambda: secrets.token_bytes(SALT_BYTES), repr=False)
    iterations: int = ITERATIONS
    room: Verifier | None = None
    operator: Verifier | None = None
    console: Verifier | None = None

    @classmethod
    def make(
        cls,
        room: str | None = None,
        operator: str | None = None,
        *,
        iterations: int = ITERATIONS,
    ) -> Secrets:
        """Verifiers of the given passwords (None: no such login); UsageError for an empty one,
        or an operator password that is the room's (every member would be an operator)."""
        if room == "" or operator == "":
            raise UsageError(
                "A password cannot be empty.", "Put the password on the file's first line."
            )
        if room is not None and room == operator:
            raise UsageError(
                "The operator password is the room password: everyone could moderate.",
                "Choose another operator password.",
            )
        made = cls(iterations=iterations)
        return replace(made, room=made.verifier_of(room), operator=made.verifier_of(operator))

    def verifier_of(self, password: str | None) -> Verifier | None:
        """A verifier of `password` with this relay's salt and count (None for None)."""
        if password is None:
            return None
        salted = salted_password(password, self.salt, self.iterations)
        return Verifier.from_salted(salted, self.salt, self.iterations)

    def with_console(self, token: str) -> Secrets:
        """These secrets and the operator token of this run."""
        return replace(self, console=self.verifier_of(token))

    @property
    def required(self) -> bool:
        """Whether joining needs a password."""
        return self.room is not None

    def lookup(self, username: str) -> Verifier | None:
        """The verifier of a SCRAM user name, or None."""
        return self.by_name().get(username)

    def by_name(self) -> dict[str, Verifier]:
        named = {LOGIN_ROOM: self.room, LOGIN_OPERATOR: self.operator, LOGIN_CONSOLE: self.console}
        return {name: v for name, v in named.items() if v is not None}


def read_password_file(path: str) -> str:
    """The password on a file's first line (its newline is not part of it); UsageError if the
    file cannot be read or the line is empty."""
    try:
        with open(path, encoding="utf-8") as file:
            first = file.readline()
    except (OSError, UnicodeDecodeError) as e:
        reason = e.strerror if isinstance(e, OSError) and e.strerror else str(e)
        raise UsageError(
            f"Cannot read the password file {path}: {reason}.",
            "Give a readable UTF-8 file with the password on its first line.",
        ) from None
    password = first.removesuffix("\n").removesuffix("\r")
    if not password:
        raise UsageError(f"The password file {path} starts with an empty line.")
    return password


def new_token() -> str:
    """A fresh operator token (printable, no spaces: it can be typed after /login)."""
    return secrets.token_urlsafe(TOKEN_BYTES)


def token_path(port: int) -> Path:
    """Where the operator token of the relay on `port` is (made or not)."""
    return config_dir(create=False) / "operator" / f"{port}.token"


def write_token(port: int, token: str) -> Path:
    """Write this run's operator token, readable by its owner only (in a config directory
    made owner-only if it is new: write_private would make missing parents with the umask's
    modes)."""
    config_dir()
    path = token_path(port)
    write_private(path, token.encode("ascii") + b"\n")
    return path


def remove_token(port: int, token: str) -> None:
    """Remove the token file at stop, unless it is no longer ours (another run's)."""
    path = token_path(port)
    try:
        if path.read_bytes().strip() == token.encode("ascii"):
            path.unlink()
    except OSError:
        pass  # gone already, or never written: nothing to remove


def read_token(port: int) -> str | None:
    """The operator token of a relay on this computer's `port`, if this user can read it."""
    try:
        return token_path(port).read_text(encoding="ascii").strip() or None
    except (OSError, UnicodeDecodeError):
        return None
