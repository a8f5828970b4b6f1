"""Whether the key a server presented is the one this client expects: the fingerprint given on
the command line, the pin in known_servers, the key this session started with, or (first use)
any key, which is then pinned. What the LAN announced (mDNS TXT `fp`) must agree too, but it
proves nothing by itself: whoever can fake the server can fake its announcement
(docs/security-tls.md).
"""

from __future__ import annotations

from dataclasses import dataclass

from lanchat.errors import ServerKeyError
from lanchat.tls.fingerprint import format_fingerprint, same_fingerprint
from lanchat.tls.pins import KnownServers


@dataclass(frozen=True)
class Expectation:
    """What a client knows about a server's key before it connects."""

    fingerprint: bytes | None = None  # --fingerprint: read off the server's own screen
    session: bytes | None = None  # the key this session started with (a reconnect)
    announced: bytes | None = None  # the server's mDNS announcement (TXT fp)


def check_server_key(
    endpoint: str, presented: bytes, expect: Expectation, known: KnownServers
) -> str | None:
    """None when `presented` is the key expected; a note when it was pinned just now;
    ServerKeyError, saying both keys and what to do, when it is not the expected one."""
    shown = format_fingerprint(presented)
    pin = known.lookup(endpoint)
    if expect.fingerprint is not None:
        if not same_fingerprint(presented, expect.fingerprint):
            raise ServerKeyError(
                f"{endpoint} presented the key {shown}, not the one given with --fingerprint "
                f"({format_fingerprint(expect.fingerprint)}). It may not be the server you "
                "mean, or someone may be in between.",
                "Read the fingerprint again off the server's screen (`lanchat serve --tls` "
                "shows it) and compare every group.",
            )
        if pin is None:
            return _pin(known, endpoint, presented, "pinned")
        if not same_fingerprint(pin.fingerprint, presented):
            return _pin(known, endpoint, presented, "re-pinned", replace=True)
        return None
    if pin is not None:
        if same_fingerprint(pin.fingerprint, presented):
            return None
        raise ServerKeyError(
            f"{endpoint} presented a different key than the one pinned for it: pinned "
            f"{format_fingerprint(pin.fingerprint)}, presented {shown}. Someone may be "
            "pretending to be the server, or its key was replaced. Refusing to connect.",
            f"If the change is expected (the server's lanchat files were reset, or it runs on "
            f"another PC now), check the new fingerprint on the server's screen, then delete "
            f"line {pin.line} of {pin.path}, or join with --fingerprint {shown}.",
        )
    if expect.session is not None and not same_fingerprint(expect.session, presented):
        raise ServerKeyError(
            f"{endpoint} presented a different key than when this session started: it was "
            f"{format_fingerprint(expect.session)}, now {shown}. Refusing to reconnect.",
            "If the server's key changed on purpose, join again with --fingerprint after "
            "checking it on the server's screen.",
        )
    if expect.announced is not None and not same_fingerprint(expect.announced, presented):
        raise ServerKeyError(
            f"{endpoint} presented the key {shown}, but the server's announcement on the LAN "
            f"named {format_fingerprint(expect.announced)}. Another computer may be answering "
            "for it.",
            "Check the fingerprint on the server's screen and join with --fingerprint.",
        )
    return _pin(known, endpoint, presented, "pinned")


def _pin(
    known: KnownServers, endpoint: str, presented: bytes, verb: str, *, replace: bool = False
) -> str:
    shown = format_fingerprint(presented)
    try:
        if replace:
            known.replace(endpoint, presented)
        else:
            known.pin(endpoint, presented)
    except OSError as e:
        return f"not pinned ({known.path}: {e.strerror or e}); key {shown} for {endpoint}"
    return f"{verb} {shown} for {endpoint}"
