"""Frames the server sends, and how each is written for lanchat clients and for raw ones.

Over ~300 lines because every server frame is here with both of its encodings (JSON and the
raw text line), so a new frame is added in one place.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any, ClassVar

from lanchat.protocol.lines import (
    MAX_LINE_BYTES,
    PROTOCOL_VERSION,
    SOFTWARE,
    FrameError,
    clean_text,
    json_line,
    parse_json_object,
)
from lanchat.protocol.requests import RAW_HELP


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
    epoch: str = ""  # the server's id for its history; a resuming client sends it back
    resumed: bool = False  # the replay that follows is exactly what the client missed
    topic: str = ""  # the room's topic, set by an operator ("" when none is)


@dataclass(frozen=True)
class Gap(Event):
    """Part of what a resuming client asked for cannot be replayed: chat seqs `start`..`end`
    (on the wire `from` and `to`) are gone, or the whole history was lost (`reason`
    "history-lost": the server restarted without its store; then `start`..`end` is what this
    history cannot replay, empty when `end` < `start`)."""

    TYPE: ClassVar[str] = "gap"
    reason: str = "history-trimmed"
    start: int = 0
    end: int = 0
    message: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {
            "type": self.TYPE,
            "seq": self.seq,
            "time": round(self.time, 3),
            "reason": self.reason,
            "from": self.start,
            "to": self.end,
            "message": self.message,
        }


@dataclass(frozen=True)
class WhoList(Event):
    """Who is here: `count` people; `names` lists them all, except in a big room's greeting.
    With a backplane (several relays, one room), `relays` names the relay of each person who
    is on another one, as (name, relay) pairs; on the wire `{"name": "relay"}`."""

    TYPE: ClassVar[str] = "who"
    names: tuple[str, ...] = ()
    count: int = 0
    relays: tuple[tuple[str, str], ...] = ()

    def __post_init__(self) -> None:
        if self.count < len(self.names):
            object.__setattr__(self, "count", len(self.names))

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {
            "type": self.TYPE,
            "seq": self.seq,
            "time": round(self.time, 3),
            "names": list(self.names),
            "count": self.count,
        }
        if self.relays:  # only with a backplane: the wire stays as it was without one
            d["relays"] = dict(self.relays)
        return d


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
class Summary(Event):
    """Joins and leaves of a burst, counted in one notice instead of one notice each."""

    TYPE: ClassVar[str] = "summary"
    joined: int = 0
    left: int = 0
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
class Moderation(Event):
    """What an operator did, told to the room: `text` says it for people ("bob is muted for
    10 minutes by teacher"); the other fields say it for programs. `action` is one of
    "operator" (`name` was made an operator), "kick", "mute", "unmute", "ban", "unban", "topic";
    `by`
    is the operator ("" when the server did it)."""

    TYPE: ClassVar[str] = "moderation"
    action: str = ""
    name: str = ""  # whom it is about ("" for a topic)
    by: str = ""
    text: str = ""
    reason: str = ""  # a kick's or a ban's reason, as the operator gave it
    minutes: int = 0  # a mute's length
    topic: str = ""  # a topic's new text


@dataclass(frozen=True)
class TopicIs(Event):
    """The answer to a topic query (`/topic`), to the asker only: the topic and who set it."""

    TYPE: ClassVar[str] = "topic"
    topic: str = ""
    by: str = ""


@dataclass(frozen=True)
class Notice(Event):
    """Something about the room's service that everyone on this relay should know, not said by
    a person: the backplane linking it to the other relays went away (`backplane-down`), came
    back (`backplane-back`), or lost its history (`backplane-reset`). Private to one relay; its
    seq is that of the last room event, like a private frame's."""

    TYPE: ClassVar[str] = "notice"
    code: str = ""
    message: str = ""


@dataclass(frozen=True)
class Mark(Event):
    """Nothing to show: everything up to `seq` has been sent to this client, some of it before
    it had that seq (with a backplane, lines shown at once while the backplane was away, now
    placed in the stream's order). A client takes `seq` as the point to resume from, so a
    reconnect does not replay those lines. Sent to lanchat clients and browsers only."""

    TYPE: ClassVar[str] = "mark"


@dataclass(frozen=True)
class ProbeAnswer(Event):
    """The answer to a probe: which server and room, without joining it."""

    TYPE: ClassVar[str] = "probe"
    version: int = PROTOCOL_VERSION
    server: str = SOFTWARE
    room: str = ""


@dataclass(frozen=True)
class LoginNeeded(Event):
    """Before it joins, this client must log in (docs/protocol.md, "Logging in"): the SCRAM
    `mechanisms` it may use here, whether a cleartext `password` is taken on this connection
    (TLS, or `serve --allow-plain-login`), and a sentence for a person (a raw client's line)."""

    TYPE: ClassVar[str] = "login-needed"
    mechanisms: tuple[str, ...] = ()
    password: bool = False
    message: str = ""


@dataclass(frozen=True)
class LoginChallenge(Event):
    """The relay's SCRAM server-first-message (RFC 5802): salt, iterations, the joint nonce."""

    TYPE: ClassVar[str] = "login-challenge"
    data: str = ""


@dataclass(frozen=True)
class LoginOk(Event):
    """The login worked: `data` is the relay's SCRAM proof ("v=...", empty after a cleartext
    password), `operator` whether it made this client an operator."""

    TYPE: ClassVar[str] = "login-ok"
    data: str = ""
    operator: bool = False


@dataclass(frozen=True)
class HelpText(Event):
    """The /help answer; only raw clients ask for it (lanchat clients know their commands)."""

    TYPE: ClassVar[str] = "help"
    text: str = field(default=RAW_HELP)


ServerFrame = (
    Welcome
    | WhoList
    | Chat
    | Gap
    | Joined
    | Left
    | Summary
    | Renamed
    | Problem
    | Pong
    | Goodbye
    | HelpText
    | Moderation
    | TopicIs
    | LoginNeeded
    | LoginChallenge
    | LoginOk
    | Notice
    | Mark
)

_EVENT_TYPES: dict[str, type[Event]] = {
    cls.TYPE: cls
    for cls in (
        Welcome,
        WhoList,
        Joined,
        Left,
        Summary,
        Renamed,
        Problem,
        Pong,
        Goodbye,
        ProbeAnswer,
        Moderation,
        TopicIs,
        LoginNeeded,
        LoginChallenge,
        LoginOk,
        Notice,
        Mark,
    )
}


# json's own string encoder (C where available): quotes and escapes exactly as json.dumps does.
_json_string: Callable[[str], str] = json.encoder.encode_basestring


def encode_json(frame: Event) -> bytes:
    """The frame as a lanchat client reads it: one JSON line."""
    if type(frame) is Chat and not frame.history:  # the hot path: written out directly
        kind = "action" if frame.action else "message"
        return (
            f'{{"type":"{kind}","seq":{frame.seq},"time":{frame.time:.3f},'
            f'"from":{_json_string(frame.sender)},"text":{_json_string(frame.text)}}}\n'
        ).encode("utf-8", "replace")
    return json_line(frame.to_dict())


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
    if isinstance(frame, Summary):
        parts = [
            f"{n} {'person' if n == 1 else 'people'} {verb}"
            for n, verb in ((frame.joined, "joined"), (frame.left, "left"))
            if n
        ]
        return f"* {' and '.join(parts) or 'Nobody came or went'} ({frame.count} here)."
    if isinstance(frame, WhoList):
        if frame.count == 0:  # a newcomer who has not said anything yet is not counted
            return "* Nobody else is here yet."
        more = frame.count - len(frame.names)
        rest = f", and {more} more (/who lists everyone)" if more > 0 else ""
        where = dict(frame.relays)
        names = (f"{n} (on {where[n]})" if n in where else n for n in frame.names)
        return f"* {frame.count} here: {', '.join(names)}{rest}."
    if isinstance(frame, Welcome):
        topic = f"\n* Topic: {frame.topic}" if frame.topic else ""
        return (
            f"* Welcome to {frame.room}, {frame.name}.{topic}\n"
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
    if isinstance(frame, Gap):
        return f"! {frame.message}"
    if isinstance(frame, Moderation):
        return f"* {frame.text}"
    if isinstance(frame, TopicIs):
        if not frame.topic:
            return "* No topic is set."
        return f"* Topic: {frame.topic}" + (f" (set by {frame.by})" if frame.by else "")
    if isinstance(frame, Notice):
        return f"* {frame.message}"
    if isinstance(frame, Mark):
        return ""  # nothing to show (raw clients are never sent one)
    if isinstance(frame, LoginNeeded):  # "!" where this connection cannot take the password
        return f"{'*' if frame.password else '!'} {frame.message}"
    if isinstance(frame, LoginOk):
        return "* Password accepted" + (": you are an operator." if frame.operator else ".")
    if isinstance(frame, LoginChallenge):  # only lanchat clients log in with SCRAM
        return "* (a login challenge)"
    raise TypeError(f"no text form for {type(frame).__name__}")


def encode_text(frame: Event) -> bytes:
    """The frame as bytes for a raw client."""
    return (render_line(frame) + "\n").encode("utf-8", "replace")


def encode_history_text(frames: list[Chat]) -> bytes:
    """Replayed messages for a raw client, between a header and a footer that mark them."""
    if not frames:
        return b""
    count = len(frames)
    lines = [f"* Last {count} message{'s' if count != 1 else ''}:"]
    lines += [render_line(f) for f in frames]
    lines.append("* End of history.")
    return ("\n".join(lines) + "\n").encode("utf-8", "replace")


def parse_event(line: bytes) -> ServerFrame:
    """Parse one JSON line from the server (the client side); FrameError if it is not one."""
    obj = parse_json_object(line)
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
        if kind == "gap":
            return Gap(
                seq=int(obj["seq"]),
                time=float(obj["time"]),
                reason=str(obj.get("reason", "")),
                start=int(obj["from"]),
                end=int(obj["to"]),
                message=str(obj.get("message", "")),
            )
        cls = _EVENT_TYPES[kind]
        if cls is WhoList:
            obj["names"] = tuple(str(n) for n in obj.get("names", ()))
            relays = obj.get("relays") or {}
            obj["relays"] = tuple((str(n), str(r)) for n, r in dict(relays).items())
        if cls is LoginNeeded:
            obj["mechanisms"] = tuple(str(m) for m in obj.get("mechanisms", ()))
        known = cls.__dataclass_fields__
        frame = cls(**{k: v for k, v in obj.items() if k in known})
    except (KeyError, TypeError, ValueError):
        raise FrameError("bad-frame", f"Malformed {clean_text(kind)[:32]!r} frame.") from None
    return frame  # type: ignore[return-value]
