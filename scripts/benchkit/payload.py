"""The benchmark's line format, pure: build payload lines, and judge a relayed line intact or not.

A payload is ASCII, found anywhere in the relayed line (so any prefix a relay adds works):

    ~b SSSS QQQQQQQQ TTTTTTTTTTTTTTTT ....filler.... CCCCCCCC
    |  |    |        |                |              crc32 (8 hex) of everything before it
    |  |    |        |                '.' repeated so the line has exactly --line-bytes bytes
    |  |    |        send time, time.monotonic_ns() (16 hex; system-wide on Linux)
    |  |    sequence number of the line for its sender (8 hex, from 0)
    |  sender id (4 hex)
    marker

(written without the spaces). It never starts with ``/`` (a command for lanchat) and holds no
character JSON escapes, so the same text travels inside a lanchat ``message`` frame.
"""

from __future__ import annotations

import json
import re
import zlib
from dataclasses import dataclass
from enum import Enum

from .websocket import text_frame

MARK = b"~b"
PROBE_MARK = b"~p"
FILL_BYTE = b"."
HEADER_CHARS = 4 + 8 + 16  # sender, sequence, send time
CHECK_CHARS = 8
MIN_FILLER = 1
MIN_LINE_BYTES = len(MARK) + HEADER_CHARS + MIN_FILLER + CHECK_CHARS + 1  # +1: the newline
MAX_LINE_BYTES = 4000  # lanchat refuses lines over 4096 bytes; a JSON frame adds about 40
MAX_SENDERS = 0xFFFF
MAX_SEQ = 0xFFFFFFFF
MAX_PAYLOADS_PER_LINE = 64  # more markers than this in one line are not looked at

# A damaged payload whose sender and sequence can still be read is attributed to that line.
_HEADER_RE = re.compile(rb"~b([0-9a-f]{4})([0-9a-f]{8})")

KINDS = ("raw", "lanchat", "web")  # web: the lanchat frames over a WebSocket (one per message)


class Verdict(Enum):
    """What a payload found in a relayed line is to the benchmark."""

    INTACT = "intact"
    CORRUPTED = "corrupted"


@dataclass(frozen=True)
class Judgement:
    """The verdict on one payload in a relayed line, with its fields when they could be read."""

    verdict: Verdict
    sender: bytes | None = None  # the 4 hex digits, as bytes
    seq: int | None = None
    sent_ns: int | None = None
    payload: bytes | None = None  # the exact payload bytes, INTACT only

    @property
    def fields(self) -> tuple[bytes, int, int] | None:
        """``(sender, seq, sent_ns)`` of an intact payload, else None."""
        if self.sender is None or self.seq is None or self.sent_ns is None:
            return None
        return self.sender, self.seq, self.sent_ns


@dataclass(frozen=True)
class PayloadFormat:
    """Payloads for lines of exactly ``line_bytes`` bytes (newline included) on a raw client."""

    line_bytes: int

    def __post_init__(self) -> None:
        """Refuse sizes that cannot hold a payload or that a relay would refuse."""
        if not MIN_LINE_BYTES <= self.line_bytes <= MAX_LINE_BYTES:
            raise ValueError(
                f"line size must be {MIN_LINE_BYTES}..{MAX_LINE_BYTES} bytes, not {self.line_bytes}"
            )

    @property
    def length(self) -> int:
        """Bytes in a payload (the line without its newline)."""
        return self.line_bytes - 1

    @property
    def filler(self) -> bytes:
        """The exact filler, so a line has exactly ``line_bytes`` bytes."""
        return FILL_BYTE * (self.length - len(MARK) - HEADER_CHARS - CHECK_CHARS)

    def encode(self, sender: int, seq: int, sent_ns: int) -> bytes:
        """The payload for line ``seq`` of ``sender`` sent at ``sent_ns`` (no newline)."""
        body = b"%s%04x%08x%016x%s" % (MARK, sender, seq, sent_ns, self.filler)
        return body + b"%08x" % zlib.crc32(body)

    def decode(self, payload: bytes) -> tuple[bytes, int, int] | None:
        """``(sender, seq, sent_ns)`` of an intact payload, or None if it is not exactly one."""
        if len(payload) != self.length or not payload.startswith(MARK):
            return None
        body, check = payload[:-CHECK_CHARS], payload[-CHECK_CHARS:]
        if check != b"%08x" % zlib.crc32(body):
            return None
        # The checksum covers every field, so they are exactly as a sender wrote them.
        header = body[len(MARK) : len(MARK) + HEADER_CHARS]
        return header[:4], int(header[4:12], 16), int(header[12:], 16)

    def judge(self, line: bytes, kind: str) -> list[Judgement]:
        """Judge every payload in one relayed line (without its newline) read by a ``kind``
        client; a line with no payload marker gives an empty list.

        Intact means: exactly the payload ends the line (raw; any prefix is fine), or is exactly
        the ``text`` of a JSON frame (lanchat). A payload in any other shape is corrupted, and
        attributed to its sender and sequence when those can still be read. One line can hold
        several payloads: ncat prefixes each chunk it reads, so the start of one sender's line
        can be glued to another sender's whole line.
        """
        if line.endswith(b"\r"):
            line = line[:-1]
        starts: list[int] = []
        at = line.find(MARK)
        while at >= 0 and len(starts) < MAX_PAYLOADS_PER_LINE:
            starts.append(at)
            at = line.find(MARK, at + len(MARK))
        verdicts = []
        for i, at in enumerate(starts):
            last = i == len(starts) - 1
            if kind == "raw":
                payload = line[at:]
                framed = last  # only the last payload can end the line
            else:
                end = at + self.length
                payload = line[at:end]
                framed = i == 0 and line[at - 1 : at] == b'"' and line[end : end + 1] == b'"'
            fields = self.decode(payload) if framed else None
            if fields is not None:
                verdicts.append(Judgement(Verdict.INTACT, *fields, payload=payload))
                continue
            header = _HEADER_RE.match(line, at)
            if header is None:
                verdicts.append(Judgement(Verdict.CORRUPTED))
            else:
                sender, seq = header.group(1), int(header.group(2), 16)
                verdicts.append(Judgement(Verdict.CORRUPTED, sender, seq))
        return verdicts


def sender_id(index: int) -> bytes:
    """The 4 hex digits that name sender ``index`` inside its payloads."""
    return b"%04x" % index


def frame(text: bytes, kind: str) -> bytes:
    """The line a ``kind`` client sends to say ``text`` (ASCII, nothing to escape)."""
    if kind == "raw":
        return text + b"\n"
    line = b'{"type":"message","text":"' + text + b'"}\n'
    return text_frame(line[:-1]) if kind == "web" else line


def probe_text(round_no: int) -> bytes:
    """A set-up probe: it tells a client that the relay counts it as a member."""
    return b"%s%08x." % (PROBE_MARK, round_no)


def hello_line(name: str) -> bytes:
    """The lanchat handshake line asking for exactly ``name``."""
    hello = {"type": "hello", "version": 1, "name": name, "exact": True, "client": "lanchat-bench"}
    return json.dumps(hello, separators=(",", ":")).encode() + b"\n"


def frame_type(line: bytes) -> str | None:
    """The ``type`` of a lanchat JSON frame, or None if the line is not one."""
    try:
        obj = json.loads(line)
    except ValueError:
        return None
    kind = obj.get("type") if isinstance(obj, dict) else None
    return kind if isinstance(kind, str) else None
