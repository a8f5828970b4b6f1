"""Exit codes and the errors lanchat shows to its user: what happened, and what to do about it."""

from __future__ import annotations

from enum import IntEnum


class ExitCode(IntEnum):
    """Process exit codes; the README lists them, scripts rely on them."""

    OK = 0
    ERROR = 1  # something went wrong that none of the codes below describes
    USAGE = 2  # bad arguments (typer/click use 2 as well)
    CHECK_FAILED = 3  # `lanchat doctor` found at least one failing check
    UNREACHABLE = 4  # refused, timed out, host unreachable, no server found or running
    REJECTED = 5  # the server answered but refused us: name taken, room full, version
    ADDRESS_IN_USE = 6  # `lanchat serve`: the port is held by another program
    STORE = 7  # `lanchat serve --store PATH`: the history file cannot be used
    SERVER_KEY = 8  # a TLS server's key is not the one pinned or given: refused (or a downgrade)
    LOGIN_FAILED = 9  # `lanchat join`: wrong password, locked out, or the server not verified
    INTERRUPTED = 130  # Ctrl-C where it is not the normal way to leave


class LanchatError(Exception):
    """An error meant for the user: a message saying what happened and a hint saying what to do."""

    exit_code: ExitCode = ExitCode.ERROR

    def __init__(self, message: str, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint


class UsageError(LanchatError):
    """An argument the user gave cannot be used (a malformed address, an invalid name)."""

    exit_code = ExitCode.USAGE


class UnreachableError(LanchatError):
    """No server could be reached: refused, timed out, unreachable, not found."""

    exit_code = ExitCode.UNREACHABLE


class RejectedError(LanchatError):
    """The server answered and said no: the name is taken, the room is full, wrong version;
    `code` is the relay's error code (`name-taken`, ...), if it said one."""

    exit_code = ExitCode.REJECTED

    def __init__(self, message: str, hint: str | None = None, *, code: str = "") -> None:
        super().__init__(message, hint)
        self.code = code


class AddressInUseError(LanchatError):
    """The port the server should listen on is held by another program."""

    exit_code = ExitCode.ADDRESS_IN_USE


class StoreError(LanchatError):
    """`serve --store PATH`: the history file cannot be opened, created or written."""

    exit_code = ExitCode.STORE


class BackplaneError(UnreachableError):
    """`serve --backplane URL`: the backplane (Redis) cannot be reached, or is not usable."""


class ServerKeyError(LanchatError):
    """A TLS server's key is not the one expected (pinned, given with --fingerprint), or a
    pinned server answered without TLS: the connection is refused, loudly."""

    exit_code = ExitCode.SERVER_KEY


class LoginFailedError(LanchatError):
    """`lanchat join`: the login did not work (wrong password, too many tries, a relay that
    could not prove it knows the password); `code` is the relay's error code, if it said one."""

    exit_code = ExitCode.LOGIN_FAILED

    def __init__(self, message: str, hint: str | None = None, *, code: str = "") -> None:
        super().__init__(message, hint)
        self.code = code
