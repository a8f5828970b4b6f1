"""The generator's WebSocket client side, stdlib only like the rest of benchkit: the upgrade
request, masked text frames out, and the relay's frames back as JSON lines for the accounting.

This is the load generator, not the relay (the relay uses websockets' sans-IO protocol): it must
stay cheap per message so that a thousand web clients are not held back by their own generator.
Outgoing frames are masked with the all-zero key, which RFC 6455 (5.3) allows and which leaves
the payload as it is; incoming frames are unmasked (a server's), and each text message becomes
one line.
"""

from __future__ import annotations

UPGRADE = (
    b"GET /ws HTTP/1.1\r\nHost: bench\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
    b"Sec-WebSocket-Key: bGFuY2hhdC1iZW5jaCEhIQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
)
MAX_HEAD = 8192  # the relay's 101 response is ~150 bytes
OP_TEXT, OP_CLOSE = 1, 8


def text_frame(payload: bytes) -> bytes:
    """One client text message (FIN, masked with a zero key)."""
    n = len(payload)
    if n < 126:
        head = bytes((0x81, 0x80 | n))
    elif n < 1 << 16:
        head = bytes((0x81, 0x80 | 126)) + n.to_bytes(2, "big")
    else:
        head = bytes((0x81, 0x80 | 127)) + n.to_bytes(8, "big")
    return head + b"\0\0\0\0" + payload


def frame_lines(lines: bytes) -> bytes:
    """Each newline-ended line as its own text message (the JSON frame without its newline)."""
    return b"".join(text_frame(line) for line in lines.split(b"\n")[:-1])


class FrameReader:
    """The relay's bytes on one connection -> the lines its text messages carry."""

    __slots__ = ("_buffer", "closed", "upgraded")

    def __init__(self) -> None:
        self._buffer = b""
        self.upgraded = False
        self.closed = False  # the relay sent a close frame

    def feed(self, data: bytes) -> bytes | None:
        """Complete messages so far as newline-ended lines; None if the upgrade was refused."""
        buf = self._buffer + data if self._buffer else data
        if not self.upgraded:
            end = buf.find(b"\r\n\r\n")
            if end < 0:
                self._buffer = buf
                return None if len(buf) > MAX_HEAD else b""
            if not buf.startswith(b"HTTP/1.1 101"):
                return None
            self.upgraded = True
            buf = buf[end + 4 :]
        out: list[bytes] = []
        at, size = 0, len(buf)
        for _ in range(size):  # each turn takes one frame (at least 2 bytes): bounded
            if size - at < 2:
                break
            length, head = buf[at + 1] & 0x7F, 2
            if length == 126:
                if size - at < 4:
                    break
                length, head = int.from_bytes(buf[at + 2 : at + 4], "big"), 4
            elif length == 127:
                if size - at < 10:
                    break
                length, head = int.from_bytes(buf[at + 2 : at + 10], "big"), 10
            if size - at < head + length:
                break
            opcode = buf[at] & 0x0F
            if opcode == OP_TEXT:
                out.append(buf[at + head : at + head + length])
            elif opcode == OP_CLOSE:
                self.closed = True
            at += head + length
        self._buffer = buf[at:]
        if not out:
            return b""
        out.append(b"")
        return b"\n".join(out)
