"""WebSocket messages <-> protocol lines, over wsproto's sans-IO connection (no home-made framing).

Browser -> relay: `MessageDecoder` has the same shape as the protocol's LineDecoder (`feed(bytes)
-> lines`), so the reader's loop, flow control and limits are the same for every kind of client.
Each text message is one protocol frame (a JSON object, as a lanchat client's line); a message
longer than MAX_LINE_BYTES becomes one LineTooLong (its bytes are dropped as they arrive, so an
endless message costs no memory), a binary message ends the connection (1003), a ping is
answered, a close is answered and ends the reading.

Relay -> browser: `encode_message` makes one WebSocket text frame of one JSON line. A server's
frames are not masked, so the same bytes serve every browser: the hub calls it once per room
event, never per recipient. No per-message compression (a chat line is short; deflating it per
message would cost CPU for a few bytes, and a shared compression context would not be sharable).
"""

from __future__ import annotations

from collections.abc import Callable

from wsproto.connection import Connection as WsConnection
from wsproto.events import BytesMessage, CloseConnection, Ping, TextMessage
from wsproto.frame_protocol import CloseReason, FrameProtocol

from lanchat.protocol import MAX_LINE_BYTES, LineTooLong

# One frame encoder for the whole process: a server's unfragmented frames depend on nothing
# but their payload (no mask, no extension), so it keeps no state between calls.
_ENCODER = FrameProtocol(client=False, extensions=[])

Reply = Callable[[bytes], None]


def encode_message(json_line: bytes) -> bytes:
    """One JSON line (a protocol frame, with its "\\n") as a WebSocket text message."""
    return bytes(_ENCODER.send_data(json_line.rstrip(b"\n").decode("utf-8", "replace")))


def encode_close(code: int = CloseReason.NORMAL_CLOSURE, reason: str = "") -> bytes:
    """A close frame: the relay hangs up."""
    return bytes(_ENCODER.close(code, reason or None))


class MessageDecoder:
    """Feeds a WebSocket's bytes to wsproto; returns the text messages as protocol lines.

    `reply` sends bytes to the browser (a pong, a close): straight to the socket before the
    client joins, through the hub's fan-out after (it owns the socket's sending side then).
    After the browser's close, or a protocol error, `closing` is set and nothing more is read.
    """

    def __init__(self, ws: WsConnection, reply: Reply, max_line: int = MAX_LINE_BYTES) -> None:
        self._ws = ws
        self.reply = reply
        self.max_line = max_line
        self._parts: list[str] = []
        self._size = 0  # bytes of the message so far (UTF-8)
        self._too_long = False  # inside an overlong message: dropping its rest
        self.closing = False

    def feed(self, data: bytes) -> list[bytes | LineTooLong]:
        if self.closing:
            return []
        self._ws.receive_data(data)
        out: list[bytes | LineTooLong] = []
        for event in self._ws.events():
            if isinstance(event, TextMessage):
                self._text(event, out)
            elif isinstance(event, Ping):
                self.reply(self._ws.send(event.response()))
            elif isinstance(event, CloseConnection):
                self.closing = True
                self.reply(self._ws.send(event.response()))
                break
            elif isinstance(event, BytesMessage):
                self.closing = True
                self.reply(
                    self._ws.send(
                        CloseConnection(CloseReason.UNSUPPORTED_DATA, "text messages only")
                    )
                )
                break
        return out

    def _text(self, event: TextMessage, out: list[bytes | LineTooLong]) -> None:
        if not self._too_long:
            self._size += len(event.data.encode("utf-8"))
            if self._size > self.max_line:
                self._too_long = True
                self._parts = []
                out.append(LineTooLong(self.max_line))
            else:
                self._parts.append(event.data)
        if event.message_finished:
            if not self._too_long:
                out.append("".join(self._parts).encode("utf-8"))
            self._parts = []
            self._size = 0
            self._too_long = False

    def finish(self) -> list[bytes]:
        """At the end of the stream: an unfinished message is not a message."""
        return []
