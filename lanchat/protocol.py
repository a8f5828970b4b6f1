"""The wire format, pure: lines in, frames out, and frames to bytes. No sockets, no threads.

Two kinds of client share one port (docs/protocol.md): lanchat clients speak JSON lines, raw text
clients (ncat, telnet, ...) type plain lines. This module parses both and renders every server
frame for both, so the relay encodes each frame once per kind, never once per recipient.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any, ClassVar, Literal

from lanchat import __version__

PROTOCOL_VERSION = 1
DEFAULT_PORT = 7420
MAX_LINE_BYTES = 4096  # longest line before its "\n"; like h11's named buffer limit
MAX_NAME_CHARS = 24
DETECT_SECONDS = 0.25  # how long a silent new client may take before it is greeted as raw
RESERVED_NAMES = frozenset(
    {"server", "lanchat", "system", "admin", "root", "everyone", "all", "nobody", "me"}
)
SOFTWARE = f"lanchat {__version__}"
STATUS_VERSION = 1  # of the status document (docs/status.md)

ClientKind = Literal["lanchat", "raw"]


class FrameError(ValueError):
    """A line from a client that cannot be used; `code` is the wire error code."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


# --- lines -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class LineTooLong:
    """Stands in the decoder's output for a line that exceeded the limit and was dropped."""

    limit: int

    def to_dict(self) -> dict[str, Any]:
        return {"limit": self.limit}


class LineDecoder:
    """Splits a byte stream into lines; an overlong line becomes one LineTooLong, then resyncs."""

    def __init__(self, max_line: int = MAX_LINE_BYTES) -> None:
        self.max_line = max_line
        self._partial = b""
        self._discarding = False  # inside an overlong line: drop bytes up to its newline

    def feed(self, data: bytes) -> list[bytes | LineTooLong]:
        """Return the complete lines in `data` (without "\\n" or a trailing "\\r")."""
        if self._partial:
            data = self._partial + data
            self._partial = b""
        pieces = data.split(b"\n")
        tail = pieces.pop()  # the unfinished rest after the last newline ("" if none)
        out: list[bytes | LineTooLong] = []
        for piece in pieces:
            if self._discarding:
                self._discarding = False  # this newline ends the overlong line already reported
            elif len(piece) > self.max_line + 1 or (
                len(piece) == self.max_line + 1 and not piece.endswith(b"\r")
            ):
                out.append(LineTooLong(self.max_line))
            else:
                out.append(piece[:-1] if piece.endswith(b"\r") else piece)
        if self._discarding:
            return out
        if len(tail) > self.max_line + 1:
            out.append(LineTooLong(self.max_line))
            self._discarding = True
        else:
            self._partial = tail
        return out

    def finish(self) -> list[bytes]:
        """At end of stream: the last line even without its newline (nothing typed is lost)."""
        rest, self._partial = self._partial, b""
        if self._discarding or not rest:
            return []
        return [rest[:-1] if rest.endswith(b"\r") else rest]


# --- text and names --------------------------------------------------------------------------

# Terminal escape sequences as a whole (so no "[31m" debris stays behind), then single controls.
_ESCAPE_SEQUENCES = re.compile(
    r"\x1b\[[0-?]*[ -/]*[@-~]?"  # CSI ... final byte
    r"|\x1b[\]PX^_][^\x07\x1b]*(?:\x07|\x1b\\)?"  # OSC/DCS/SOS/PM/APC ... BEL or ST
    r"|\x1b[ -~]?"  # two-byte escapes (and a lone ESC)
    r"|\x9b[0-?]*[ -/]*[@-~]?"  # the one-character C1 CSI
)
_CONTROLS = re.compile("[\x00-\x08\x0a-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")
_SPACES = str.maketrans("\t\n\r", "   ")  # line breaks inside a JSON text become spaces
_NEEDS_CLEANING = re.compile("[\x00-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")


def clean_text(text: str) -> str:
    """Remove what could act on a terminal: escape sequences, controls, bidi overrides."""
    if _NEEDS_CLEANING.search(text) is None:  # the common case costs one scan
        return text
    text = _ESCAPE_SEQUENCES.sub("", text).translate(_SPACES)
    return _CONTROLS.sub("", text)


def decode_line(line: bytes) -> str:
    """UTF-8 with replacement: a bad byte is shown as U+FFFD, never an error."""
    return line.decode("utf-8", "replace")


def name_problem(name: str) -> FrameError | None:
    """Why `name` cannot be used as a chat name, or None if it can."""
    if not name or len(name) > MAX_NAME_CHARS:
        return FrameError(
            "bad-name", f"A name has 1 to {MAX_NAME_CHARS} characters; {name!r} has {len(name)}."
        )
    if not name[0].isalnum() or not all(ch.isalnum() or ch in "-_." for ch in name):
        return FrameError(
            "bad-name",
            f"{clean_text(name)!r} is not a valid name: use letters, digits, '-', '_' and '.', "
            "starting with a letter or digit.",
        )
    if name.casefold() in RESERVED_NAMES:
        return FrameError("name-reserved", f"The name {name!r} is reserved. Pick another one.")
    return None


MAX_ROOM_CHARS = 40


def room_problem(room: str) -> str | None:
    """Why `room` cannot name a room (it is shown to everyone and advertised), or None."""
    if not room.strip() or len(room) > MAX_ROOM_CHARS:
        return f"A room name has 1 to {MAX_ROOM_CHARS} characters."
    if clean_text(room) != room:
        return "A room name cannot contain control characters."
    return None


def suggest_name(wanted: str) -> str:
    """Turn a login name such as 'John Doe' into a valid chat name ('John-Doe')."""
    chars = [ch if ch.isalnum() or ch in "-_." else "-" for ch in wanted]
    name = "".join(chars).lstrip("-_.")[:MAX_NAME_CHARS].rstrip("-_.")
    return name if name and name_problem(name) is None else "guest"


# --- frames a client sends -------------------------------------------------------------------


@dataclass(frozen=True)
class Hello:
    """The first line of a lanchat client."""

    version: int
    name: str | None = None
    exact: bool = False
    client: str = ""

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {"type": "hello", "version": self.version, "exact": self.exact}
        if self.name is not None:
            d["name"] = self.name
        if self.client:
            d["client"] = self.client
        return d


@dataclass(frozen=True)
class Say:
    """A chat message, or an action (`/me`)."""

    text: str
    action: bool = False

    def to_dict(self) -> dict[str, Any]:
        return {"type": "action" if self.action else "message", "text": self.text}


@dataclass(frozen=True)
class SetName:
    """Ask to be known by another name."""

    name: str

    def to_dict(self) -> dict[str, Any]:
        return {"type": "nick", "name": self.name}


@dataclass(frozen=True)
class AskWho:
    """Ask who is here."""

    def to_dict(self) -> dict[str, Any]:
        return {"type": "who"}


@dataclass(frozen=True)
class Ping:
    """Ask for a pong (liveness, round-trip time)."""

    token: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {"type": "ping", "token": self.token}


@dataclass(frozen=True)
class Quit:
    """Leave the room."""

    def to_dict(self) -> dict[str, Any]:
        return {"type": "bye"}


@dataclass(frozen=True)
class AskHelp:
    """A raw client typed /help."""

    def to_dict(self) -> dict[str, Any]:
        return {"type": "help"}


Request = Hello | Say | SetName | AskWho | Ping | Quit | AskHelp


def encode_request(request: Request) -> bytes:
    """One JSON line, as a lanchat client sends it."""
    return _json_line(request.to_dict())


def _field(obj: dict[str, Any], key: str, kind: type, *, required: bool = True) -> Any:
    value = obj.get(key)
    if value is None and not required:
        return None
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise FrameError("bad-frame", f"'{obj.get('type')}' needs a {kind.__name__} '{key}'.")
    return value


def _parse_json_object(line: bytes) -> dict[str, Any]:
    try:
        obj = json.loads(decode_line(line))
    except (ValueError, RecursionError):
        raise FrameError("bad-frame", "Not a JSON line; send one JSON object per line.") from None
    if not isinstance(obj, dict) or not isinstance(obj.get("type"), str):
        raise FrameError("bad-frame", 'Each line must be a JSON object with a "type".')
    return obj


def parse_request(line: bytes) -> Request:
    """Parse one JSON line from a lanchat client; FrameError says what is wrong with it."""
    obj = _parse_json_object(line)
    kind = obj["type"]
    if kind in ("message", "action"):
        return Say(_field(obj, "text", str), action=kind == "action")
    if kind == "nick":
        return SetName(_field(obj, "name", str))
    if kind == "who":
        return AskWho()
    if kind == "ping":
        token = obj.get("token", "")
        return Ping(token if isinstance(token, str) else json.dumps(token)[:64])
    if kind == "bye":
        return Quit()
    if kind == "hello":
        return _hello_from(obj)
    raise FrameError("bad-frame", f"Unknown frame type {clean_text(kind)[:32]!r}.")


def _hello_from(obj: dict[str, Any]) -> Hello:
    version = _field(obj, "version", int)
    if version < 1:
        raise FrameError("unsupported-version", f"Protocol version {version} does not exist.")
    name = _field(obj, "name", str, required=False)
    exact = obj.get("exact", False)
    client = obj.get("client", "")
    return Hello(
        version=version,
        name=name,
        exact=exact is True,
        client=clean_text(client)[:64] if isinstance(client, str) else "",
    )


def parse_hello(line: bytes) -> Hello | None:
    """The Hello if `line` opens a lanchat session, else None (the client is a raw one).

    A JSON object with "type": "hello" is a hello even when its fields are wrong (FrameError then
    explains), so a lanchat client with a bad name gets a refusal, not a raw-mode greeting.
    """
    if not line.lstrip().startswith(b"{"):
        return None
    try:
        obj = _parse_json_object(line)
    except FrameError:
        return None
    if obj["type"] != "hello":
        return None
    return _hello_from(obj)


def service_request(line: bytes) -> Literal["status", "probe"] | None:
    """Whether a first line asks a question instead of chatting: the relay's status (only
    answered on its own computer) or a probe (is a lanchat server here? the doctor asks it)."""
    if not line.lstrip().startswith(b"{"):
        return None
    try:
        kind = _parse_json_object(line)["type"]
    except FrameError:
        return None
    return "status" if kind == "status" else "probe" if kind == "probe" else None


def encode_status_request() -> bytes:
    return _json_line({"type": "status", "version": STATUS_VERSION})


def encode_probe_request() -> bytes:
    return _json_line({"type": "probe", "version": PROTOCOL_VERSION})


RAW_HELP = (
    "Commands: /nick NAME (change your name), /who (who is here), /me TEXT (an action), "
    "/help (this), /quit (leave). Any other line is sent to everyone; start it with // "
    "to send a line that begins with /."
)


def parse_raw_line(text: str) -> Request | None:
    """What a line typed by a raw client asks for; None for a blank line (nothing to send)."""
    if not text.strip():
        return None
    if not text.startswith("/"):
        return Say(text)
    if text.startswith("//"):
        return Say(text[1:])
    command, _, rest = text[1:].partition(" ")
    command = command.lower()
    rest = rest.strip()
    if command == "me" and rest:
        return Say(rest, action=True)
    if command == "nick" and rest:
        return SetName(rest)
    if command == "who":
        return AskWho()
    if command == "help":
        return AskHelp()
    if command in ("quit", "exit", "bye"):
        return Quit()
    if command in ("me", "nick"):
        raise FrameError("unknown-command", f"/{command} needs an argument. {RAW_HELP}")
    raise FrameError("unknown-command", f"Unknown command /{clean_text(command)[:20]}. {RAW_HELP}")


# --- frames the server sends -----------------------------------------------------------------


@dataclass(frozen=True)
class Event:
    """Base of every server frame: its place in the room's order and when it was made."""

    TYPE: ClassVar[str] = ""
    seq: int
    time: float

    def to_dict(self) -> dict[str, Any]:
        d = {"type": self.TYPE, **asdict(self)}
        d["time"] = round(self.time, 3)
        return d


@dataclass(frozen=True)
class Welcome(Event):
    TYPE: ClassVar[str] = "welcome"
    name: str = ""
    room: str = ""
    version: int = PROTOCOL_VERSION
    server: str = SOFTWARE
    max_line: int = MAX_LINE_BYTES
    history: int = 0


@dataclass(frozen=True)
class WhoList(Event):
    """Who is here: `count` people; `names` lists them all, except in a big room's greeting."""

    TYPE: ClassVar[str] = "who"
    names: tuple[str, ...] = ()
    count: int = 0

    def __post_init__(self) -> None:
        if self.count < len(self.names):
            object.__setattr__(self, "count", len(self.names))


@dataclass(frozen=True)
class Chat(Event):
    """A message or an action (`/me`), live or replayed from history."""

    TYPE: ClassVar[str] = "message"
    sender: str = ""
    text: str = ""
    action: bool = False
    history: bool = False

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {
            "type": "action" if self.action else "message",
            "seq": self.seq,
            "time": round(self.time, 3),
            "from": self.sender,
            "text": self.text,
        }
        if self.history:
            d["history"] = True
        return d


@dataclass(frozen=True)
class Joined(Event):
    TYPE: ClassVar[str] = "join"
    name: str = ""
    kind: str = "raw"
    count: int = 0


@dataclass(frozen=True)
class Left(Event):
    TYPE: ClassVar[str] = "leave"
    name: str = ""
    reason: str = "closed"
    count: int = 0


@dataclass(frozen=True)
class Renamed(Event):
    TYPE: ClassVar[str] = "nick"
    old: str = ""
    new: str = ""


@dataclass(frozen=True)
class Problem(Event):
    TYPE: ClassVar[str] = "error"
    code: str = ""
    message: str = ""


@dataclass(frozen=True)
class Pong(Event):
    TYPE: ClassVar[str] = "pong"
    token: str = ""


@dataclass(frozen=True)
class Goodbye(Event):
    TYPE: ClassVar[str] = "bye"
    reason: str = "quit"
    message: str = ""


@dataclass(frozen=True)
class ProbeAnswer(Event):
    """The answer to a probe: which server and room, without joining it."""

    TYPE: ClassVar[str] = "probe"
    version: int = PROTOCOL_VERSION
    server: str = SOFTWARE
    room: str = ""


@dataclass(frozen=True)
class HelpText(Event):
    """The /help answer; only raw clients ask for it (lanchat clients know their commands)."""

    TYPE: ClassVar[str] = "help"
    text: str = field(default=RAW_HELP)


ServerFrame = (
    Welcome | WhoList | Chat | Joined | Left | Renamed | Problem | Pong | Goodbye | HelpText
)

_EVENT_TYPES: dict[str, type[Event]] = {
    cls.TYPE: cls
    for cls in (Welcome, WhoList, Joined, Left, Renamed, Problem, Pong, Goodbye, ProbeAnswer)
}


def _json_line(obj: dict[str, Any]) -> bytes:
    return json.dumps(obj, ensure_ascii=False, separators=(",", ":")).encode() + b"\n"


# json's own string encoder (C where available): quotes and escapes exactly as json.dumps does.
_json_string: Callable[[str], str] = json.encoder.encode_basestring


def encode_json(frame: Event) -> bytes:
    """The frame as a lanchat client reads it: one JSON line."""
    if type(frame) is Chat and not frame.history:  # the hot path: written out directly
        kind = "action" if frame.action else "message"
        return (
            f'{{"type":"{kind}","seq":{frame.seq},"time":{frame.time:.3f},'
            f'"from":{_json_string(frame.sender)},"text":{_json_string(frame.text)}}}\n'
        ).encode()
    return _json_line(frame.to_dict())


_clock_cache: list[Any] = [-1, ""]  # [minute, "HH:MM"]


def clock(t: float) -> str:
    """`HH:MM` in local time, as raw clients see it (worked out once a minute)."""
    minute = int(t // 60)  # time zones differ by whole minutes, so minutes start together
    if minute != _clock_cache[0]:
        _clock_cache[1] = time.strftime("%H:%M", time.localtime(t))
        _clock_cache[0] = minute
    return str(_clock_cache[1])


_LEAVE_WORDS = {
    "quit": "left",
    "closed": "left",
    "lost": "left (connection lost)",
    "too-slow": "was disconnected (could not keep up)",
    "shutdown": "left (server shutting down)",
}


def render_line(frame: Event) -> str:
    """The frame as a person at ncat or telnet reads it (no newline at the end)."""
    if isinstance(frame, Chat):
        if frame.action:
            return f"[{clock(frame.time)}] * {frame.sender} {frame.text}"
        return f"[{clock(frame.time)}] <{frame.sender}> {frame.text}"
    if isinstance(frame, Joined):
        return f"* {frame.name} joined ({frame.count} here)"
    if isinstance(frame, Left):
        return f"* {frame.name} {_LEAVE_WORDS.get(frame.reason, 'left')} ({frame.count} here)"
    if isinstance(frame, Renamed):
        return f"* {frame.old} is now known as {frame.new}"
    if isinstance(frame, WhoList):
        more = frame.count - len(frame.names)
        rest = f", and {more} more (/who lists everyone)" if more > 0 else ""
        return f"* {frame.count} here: {', '.join(frame.names)}{rest}."
    if isinstance(frame, Welcome):
        return (
            f"* Welcome to {frame.room}, {frame.name}.\n"
            "* Type a line and press Enter to send it to everyone. /help lists the commands."
        )
    if isinstance(frame, Problem):
        return f"! {frame.message}"
    if isinstance(frame, Goodbye):
        return (
            f"* {frame.message}" if frame.reason in ("quit", "shutdown") else f"! {frame.message}"
        )
    if isinstance(frame, Pong):
        return f"* pong {frame.token}".rstrip()
    if isinstance(frame, HelpText):
        return f"* {frame.text}"
    if isinstance(frame, ProbeAnswer):
        return f"* {frame.server}, room {frame.room}"
    raise TypeError(f"no text form for {type(frame).__name__}")


def encode_text(frame: Event) -> bytes:
    """The frame as bytes for a raw client."""
    return (render_line(frame) + "\n").encode()


def encode_history_text(frames: list[Chat]) -> bytes:
    """Replayed messages for a raw client, between a header and a footer that mark them."""
    if not frames:
        return b""
    count = len(frames)
    lines = [f"* Last {count} message{'s' if count != 1 else ''}:"]
    lines += [render_line(f) for f in frames]
    lines.append("* End of history.")
    return ("\n".join(lines) + "\n").encode()


def parse_event(line: bytes) -> ServerFrame:
    """Parse one JSON line from the server (the client side); FrameError if it is not one."""
    obj = _parse_json_object(line)
    kind = obj.pop("type")
    try:
        if kind in ("message", "action"):
            return Chat(
                seq=int(obj["seq"]),
                time=float(obj["time"]),
                sender=str(obj["from"]),
                text=str(obj["text"]),
                action=kind == "action",
                history=obj.get("history") is True,
            )
        cls = _EVENT_TYPES[kind]
        if cls is WhoList:
            obj["names"] = tuple(str(n) for n in obj.get("names", ()))
        known = cls.__dataclass_fields__
        frame = cls(**{k: v for k, v in obj.items() if k in known})
    except (KeyError, TypeError, ValueError):
        raise FrameError("bad-frame", f"Malformed {clean_text(kind)[:32]!r} frame.") from None
    return frame  # type: ignore[return-value]
