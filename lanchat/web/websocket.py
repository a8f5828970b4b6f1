"""WebSocket messages <-> protocol lines, over the `websockets` library's sans-IO protocol
(no home-made framing; its own threads and server are not used: the relay's reader runs it).

Browser -> relay: `MessageDecoder` has the same shape as the protocol's LineDecoder (`feed(bytes)
-> lines`), so the reader's loop, flow control and limits are the same for every kind of client.
Each text message is one protocol frame (a JSON object, as a lanchat client's line). A message
longer than MAX_LINE_BYTES becomes one LineTooLong (the client is told, and stays), as an
overlong line does; one longer than MAX_MESSAGE_BYTES is not even buffered: the connection is
closed with 1009, so a browser costs at most that much memory. A binary message closes with
1003; pings are answered; a close is answered and ends the reading. What the protocol object
has to send back (pongs, close replies) goes to `reply`.

Relay -> browser: `encode_message` makes one WebSocket text frame of one JSON line. A server's
frames are not masked, so the same bytes serve every browser: the hub calls it once per room
event, never per recipient. No per-message compression (a chat line is short; deflating each
message would cost CPU for a few bytes, and a compression context per connection would undo
the one frame shared by every browser).

Why websockets and not wsproto: both are sans-IO; websockets' frame parser (with its C helper
for unmasking) took about 3 µs per message here against wsproto's 10 µs, and that is paid once
per message a browser sends (docs/performance.md).
"""

from __future__ import annotations

from collections.abc import Callable

from websockets.frames import Close, CloseCode, Frame, Opcode
from websockets.protocol import State
from websockets.server import ServerProtocol

from lanchat.protocol import MAX_LINE_BYTES, LineTooLong

MAX_MESSAGE_BYTES = 4 * MAX_LINE_BYTES  # beyond this, not a line too long but a close (1009)

Reply = Callable[[bytes], None]


def encode_message(json_line: bytes) -> bytes:
    """One JSON line (a protocol frame, with its "\\n") as a WebSocket text message."""
    return Frame(Opcode.TEXT, json_line.rstrip(b"\n")).serialize(mask=False)


def encode_close(code: int = CloseCode.NORMAL_CLOSURE, reason: str = "") -> bytes:
    """A close frame: the relay hangs up."""
    return Frame(Opcode.CLOSE, Close(code, reason).serialize()).serialize(mask=False)


def server_protocol() -> ServerProtocol:
    """The protocol object of one browser's connection, before its handshake."""
    return ServerProtocol(max_size=MAX_MESSAGE_BYTES)


class MessageDecoder:
    """Feeds a WebSocket's bytes to the protocol object; returns text messages as lines.

    `reply` sends bytes to the browser (a pong, a close): straight to the socket before the
    client joins, through the hub's fan-out after (it owns the socket's sending side then).
    After the browser's close, or a protocol error, `closing` is set and nothing more is read.
    """

    def __init__(
        self, protocol: ServerProtocol, reply: Reply, max_line: int = MAX_LINE_BYTES
    ) -> None:
        self._protocol = protocol
        self.reply = reply
        self.max_line = max_line
        self._parts: list[bytes] = []  # a fragmented message so far
        self.closing = False

    def feed(self, data: bytes) -> list[bytes | LineTooLong]:
        if self.closing:
            return []
        protocol = self._protocol
        protocol.receive_data(data)
        out: list[bytes | LineTooLong] = []
        for frame in protocol.events_received():
            if not isinstance(frame, Frame):
                continue
            opcode = frame.opcode
            if opcode is Opcode.TEXT or opcode is Opcode.CONT:
                if not frame.fin:
                    self._parts.append(bytes(frame.data))
                    continue
                message = bytes(frame.data)
                if self._parts:
                    message = b"".join((*self._parts, message))
                    self._parts = []
                out.append(message if len(message) <= self.max_line else LineTooLong(self.max_line))
            elif opcode is Opcode.BINARY:
                protocol.fail(CloseCode.UNSUPPORTED_DATA, "text messages only")
                break
        if protocol.state is not State.OPEN:
            self.closing = True  # closed by the browser, or failed: answered below
        answer = b"".join(protocol.data_to_send())  # pongs, a close (b"": the end of stream)
        if answer:
            self.reply(answer)
        return out

    def finish(self) -> list[bytes]:
        """At the end of the stream: an unfinished message is not a message."""
        return []
