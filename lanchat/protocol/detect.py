"""Which kind of client opened a connection, from the first line it sent (pure).

One port serves several kinds of client; the relay reads until the first complete line (or a
short silence, DETECT_SECONDS) and asks `detect_client` what it was. New kinds (a browser's
`GET`, a TLS ClientHello) are told apart here, by their first bytes, before anything else is
read as chat.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

from lanchat.protocol.lines import ClientKind, FrameError, LineTooLong
from lanchat.protocol.requests import Hello, parse_hello, service_request

OpeningKind = Literal["status", "probe", "lanchat", "raw", "http"]

# An HTTP/1.x request line (a browser, curl, a health check): never a chat line. Any method, so
# that a POST gets a proper HTTP error instead of landing in the room as text.
_REQUEST_LINE = re.compile(rb"[A-Z]{3,10} /\S* HTTP/1\.[01]\r?")


@dataclass(frozen=True)
class Opening:
    """What the first line says: a question (status, probe), a lanchat hello, an HTTP request
    (a browser: lanchat/web/), or a raw client.

    `refusal` is set for a lanchat hello with a wrong field (a bad name, an unknown version):
    such a client gets a clear refusal, not a raw-mode greeting. `consumed` says whether the
    first line was the opening itself (not a chat line to relay)."""

    kind: OpeningKind
    hello: Hello | None = None
    refusal: FrameError | None = None

    @property
    def consumed(self) -> bool:
        return self.kind != "raw"


def client_kind(hello: Hello | None, *, web: bool = False) -> ClientKind:
    """Which frames a chat client reads: text lines without a hello, WebSocket messages for a
    browser, JSON lines for a lanchat client."""
    return "raw" if hello is None else "web" if web else "lanchat"


def detect_client(first_line: bytes | LineTooLong | None) -> Opening:
    """The kind of client whose first line is `first_line` (None: it said nothing yet)."""
    if first_line is None or isinstance(first_line, LineTooLong):
        return Opening("raw")
    if _REQUEST_LINE.fullmatch(first_line):
        return Opening("http")
    question = service_request(first_line)
    if question is not None:
        return Opening(question)
    try:
        hello = parse_hello(first_line)
    except FrameError as e:
        return Opening("lanchat", refusal=e)
    return Opening("raw") if hello is None else Opening("lanchat", hello)


def hello_or_none(line: bytes | LineTooLong) -> Hello | None:
    """A well-formed hello in `line`, else None (a raw line, too long, or a hello with wrong
    fields: detect_client refuses those when it is the first line)."""
    if isinstance(line, LineTooLong):
        return None
    try:
        return parse_hello(line)
    except FrameError:
        return None
