"""Frames a client sends: the lanchat JSON requests and the raw clients' plain lines."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any, Literal

from lanchat.protocol.lines import (
    PROTOCOL_VERSION,
    STATUS_VERSION,
    FrameError,
    clean_text,
    json_line,
    parse_json_object,
    without_bom,
)

MAX_EPOCH_CHARS = 64  # an epoch is the server's id for its history (docs/protocol.md)
# Moderation (docs/protocol.md, "Operators"): a mute's length in minutes when none is given, and
# the longest one (a day: a mute is for a lesson, a ban is for the rest of the server's run).
DEFAULT_MUTE_MINUTES = 10
MAX_MUTE_MINUTES = 24 * 60
MAX_TOPIC_CHARS = 200
MAX_REASON_CHARS = 200  # a kick's or ban's reason, as shown to everyone
# The logins a relay knows, by their SCRAM user names (docs/protocol.md, "Logging in"): the
# room's password, the operator password, and the operator token of the server's own computer.
LOGIN_ROOM = "room"
LOGIN_OPERATOR = "operator"
LOGIN_CONSOLE = "console"


@dataclass(frozen=True)
class Resume:
    """Where a reconnecting client stopped: the server's history epoch and the last seq seen."""

    epoch: str
    seq: int

    def to_dict(self) -> dict[str, Any]:
        return {"epoch": self.epoch, "seq": self.seq}


@dataclass(frozen=True)
class Hello:
    """The first line of a lanchat client; `resume` when it reconnects."""

    version: int
    name: str | None = None
    exact: bool = False
    client: str = ""
    resume: Resume | None = None
    login: bool = False  # log in before joining even where the room needs no password

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {"type": "hello", "version": self.version, "exact": self.exact}
        if self.name is not None:
            d["name"] = self.name
        if self.client:
            d["client"] = self.client
        if self.resume is not None:
            d["resume"] = self.resume.to_dict()
        if self.login:
            d["login"] = True
        return d


@dataclass(frozen=True)
class Login:
    """A step of logging in: a SCRAM message (`mechanism` with the first one, `data`), or a
    cleartext `password` (browsers and raw clients, over TLS or where the relay allows it)."""

    mechanism: str = ""
    data: str = ""
    password: str | None = field(default=None, repr=False)  # never in a log or a traceback

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {"type": "login"}
        if self.mechanism:
            d["mechanism"] = self.mechanism
        if self.data:
            d["data"] = self.data
        if self.password is not None:
            d["password"] = self.password
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


@dataclass(frozen=True)
class Kick:
    """An operator removes a member from the room (they may come back)."""

    name: str
    reason: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {"type": "kick", "name": self.name, "reason": self.reason}


@dataclass(frozen=True)
class Mute:
    """An operator stops a member's lines from reaching the room for `minutes`."""

    name: str
    minutes: int = DEFAULT_MUTE_MINUTES

    def to_dict(self) -> dict[str, Any]:
        return {"type": "mute", "name": self.name, "minutes": self.minutes}


@dataclass(frozen=True)
class Unmute:
    """An operator ends a mute early."""

    name: str

    def to_dict(self) -> dict[str, Any]:
        return {"type": "unmute", "name": self.name}


@dataclass(frozen=True)
class Ban:
    """An operator removes every connection from a member's address and refuses new ones from
    it until the server stops."""

    name: str
    reason: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {"type": "ban", "name": self.name, "reason": self.reason}


@dataclass(frozen=True)
class Unban:
    """An operator lets a banned address connect again: `target` is the address, or the name
    of the member it was banned with (as `lanchat status` lists the bans)."""

    target: str

    def to_dict(self) -> dict[str, Any]:
        return {"type": "unban", "target": self.target}


@dataclass(frozen=True)
class SetTopic:
    """An operator sets the room's topic ("" clears it)."""

    text: str

    def to_dict(self) -> dict[str, Any]:
        return {"type": "topic", "text": self.text}


@dataclass(frozen=True)
class AskTopic:
    """Ask what the room's topic is."""

    def to_dict(self) -> dict[str, Any]:
        return {"type": "topic"}


Request = (
    Hello
    | Say
    | SetName
    | AskWho
    | Ping
    | Quit
    | AskHelp
    | Kick
    | Mute
    | Unmute
    | Ban
    | Unban
    | SetTopic
    | AskTopic
    | Login
)
# What only an operator may ask for, with the command that asks for it (for refusals).
OPERATOR_REQUESTS: dict[type, str] = {
    Kick: "/kick",
    Mute: "/mute",
    Unmute: "/unmute",
    Ban: "/ban",
    Unban: "/unban",
    SetTopic: "/topic",
}


def encode_request(request: Request) -> bytes:
    """One JSON line, as a lanchat client sends it."""
    return json_line(request.to_dict())


def _field(obj: dict[str, Any], key: str, kind: type, *, required: bool = True) -> Any:
    value = obj.get(key)
    if value is None and not required:
        return None
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise FrameError("bad-frame", f"'{obj.get('type')}' needs a {kind.__name__} '{key}'.")
    return value


def parse_request(line: bytes) -> Request:
    """Parse one JSON line from a lanchat client; FrameError says what is wrong with it."""
    obj = parse_json_object(line)
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
    if kind in ("kick", "ban"):
        name, reason = _field(obj, "name", str), _field(obj, "reason", str, required=False)
        return (Kick if kind == "kick" else Ban)(name, _reason(reason or ""))
    if kind == "mute":
        minutes = _field(obj, "minutes", int, required=False)
        return Mute(
            _field(obj, "name", str), _minutes(DEFAULT_MUTE_MINUTES if minutes is None else minutes)
        )
    if kind == "unmute":
        return Unmute(_field(obj, "name", str))
    if kind == "unban":
        return Unban(_field(obj, "target", str))
    if kind == "topic":
        text = _field(obj, "text", str, required=False)
        return AskTopic() if text is None else SetTopic(text)
    if kind == "login":
        return Login(
            _field(obj, "mechanism", str, required=False) or "",
            _field(obj, "data", str, required=False) or "",
            _field(obj, "password", str, required=False),
        )
    raise FrameError("bad-frame", f"Unknown frame type {clean_text(kind)[:32]!r}.")


def _minutes(minutes: int) -> int:
    if not 1 <= minutes <= MAX_MUTE_MINUTES:
        raise FrameError(
            "bad-command",
            f"A mute lasts 1 to {MAX_MUTE_MINUTES} minutes, not {minutes}: /mute NAME MINUTES.",
        )
    return minutes


def _reason(reason: str) -> str:
    """A reason as everyone will read it: one cleaned line, cut to MAX_REASON_CHARS."""
    return clean_text(reason).strip()[:MAX_REASON_CHARS]


def _hello_from(obj: dict[str, Any]) -> Hello:
    version = _field(obj, "version", int)
    if version < 1:
        raise FrameError("unsupported-version", "Protocol versions start at 1.")
    if version > PROTOCOL_VERSION:  # a newer client: say so rather than speak past each other
        shown = str(version) if version < 10**6 else "a newer one"
        raise FrameError(
            "unsupported-version",
            f"This server speaks lanchat protocol version {PROTOCOL_VERSION}; your client "
            f"asked for {shown}. Use a lanchat client of the server's version, or update the "
            "server.",
        )
    name = _field(obj, "name", str, required=False)
    exact = obj.get("exact", False)
    client = obj.get("client", "")
    return Hello(
        version=version,
        name=name,
        exact=exact is True,
        client=clean_text(client)[:64] if isinstance(client, str) else "",
        resume=_resume_from(obj.get("resume")),
        login=obj.get("login") is True,
    )


def _resume_from(value: Any) -> Resume | None:
    """A hello's `resume`; a malformed one is ignored (the client is greeted as a newcomer)."""
    if not isinstance(value, dict):
        return None
    epoch, seq = value.get("epoch"), value.get("seq")
    if not isinstance(epoch, str) or not 0 < len(epoch) <= MAX_EPOCH_CHARS:
        return None
    if not isinstance(seq, int) or isinstance(seq, bool) or not 0 <= seq < 2**63:
        return None
    return Resume(clean_text(epoch), seq)


def parse_hello(line: bytes) -> Hello | None:
    """The Hello if `line` opens a lanchat session, else None (the client is a raw one).

    A JSON object with "type": "hello" is a hello even when its fields are wrong (FrameError then
    explains), so a lanchat client with a bad name gets a refusal, not a raw-mode greeting.
    """
    if not without_bom(line).lstrip().startswith(b"{"):
        return None
    try:
        obj = parse_json_object(line)
    except FrameError:
        return None
    if obj["type"] != "hello":
        return None
    return _hello_from(obj)


def service_request(line: bytes) -> Literal["status", "probe"] | None:
    """Whether a first line asks a question instead of chatting: the relay's status (only
    answered on its own computer) or a probe (is a lanchat server here? the doctor asks it)."""
    if not without_bom(line).lstrip().startswith(b"{"):
        return None
    try:
        kind = parse_json_object(line)["type"]
    except FrameError:
        return None
    return "status" if kind == "status" else "probe" if kind == "probe" else None


def encode_status_request() -> bytes:
    return json_line({"type": "status", "version": STATUS_VERSION})


def encode_probe_request() -> bytes:
    return json_line({"type": "probe", "version": PROTOCOL_VERSION})


RAW_HELP = (
    "Commands: /nick NAME (change your name), /who (who is here), /me TEXT (an action), "
    "/topic (the room's topic), /help (this), /quit (leave). Any other line is sent to "
    "everyone; start it with // to send a line that begins with /."
)
OPERATOR_HELP = (
    f"Operator commands: /kick NAME [REASON] (remove from the room), /mute NAME [MINUTES] "
    f"(default {DEFAULT_MUTE_MINUTES}), /unmute NAME, /ban NAME [REASON] (their address, until "
    "the server stops), /unban NAME|ADDRESS, /topic TEXT (set the topic; /topic - clears it)."
)


# A line that logs in, however it is typed (" /LOGIN pw", "//login pw"): never relayed.
_LOGIN_LINE = re.compile(r"\s*//?login(?:\s|$)", re.IGNORECASE)


def parse_raw_line(text: str) -> Request | None:
    """What a line typed by a raw client asks for; None for a blank line (nothing to send)."""
    if not text.strip():
        return None
    login = _LOGIN_LINE.match(text)
    if login is not None:  # before anything that could make it a message (docs/protocol.md)
        password = text[login.end() :].strip()
        if password and not text.lstrip().startswith("//"):
            return Login(password=password)
        raise FrameError(
            "bad-login",
            "A line starting with /login is never sent to the room; /login PASSWORD logs in.",
        )
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
    if command == "topic":
        if not rest:
            return AskTopic()
        return SetTopic("" if rest == "-" else rest)
    if command in ("kick", "mute", "unmute", "ban") and rest:
        return _moderation_command(command, *_split_name(rest))
    if command == "unban" and rest:
        return Unban(_split_name(rest)[0])
    if command in ("me", "nick"):
        raise FrameError("unknown-command", f"/{command} needs an argument. {RAW_HELP}")
    if command in ("kick", "mute", "unmute", "ban", "unban"):
        raise FrameError("unknown-command", f"/{command} needs a name. {OPERATOR_HELP}")
    raise FrameError("unknown-command", f"Unknown command /{clean_text(command)[:20]}. {RAW_HELP}")


def _split_name(rest: str) -> tuple[str, str]:
    name, _, more = rest.partition(" ")
    return name, more.strip()


def _moderation_command(command: str, name: str, more: str) -> Request:
    """/kick NAME [REASON], /ban NAME [REASON], /mute NAME [MINUTES], /unmute NAME."""
    if command == "kick":
        return Kick(name, _reason(more))
    if command == "ban":
        return Ban(name, _reason(more))
    if command == "unmute":
        return Unmute(name)
    if not more:
        return Mute(name)
    if not more.isdecimal() or not more.isascii():
        raise FrameError(
            "bad-command",
            f"/mute takes a number of minutes after the name (1 to {MAX_MUTE_MINUTES}): "
            f"/mute {name} {DEFAULT_MUTE_MINUTES}.",
        )
    return Mute(name, _minutes(int(more)))
