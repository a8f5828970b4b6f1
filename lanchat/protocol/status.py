"""The relay's status document: what a relay answers a status query with, defined once.

The relay builds it (`Relay.status()`), `lanchat status` reads it back (`RelayStatus.from_dict`)
and docs/status.md ("The relay's answer") lists its fields; tests/test_status.py checks that the
doc and these classes agree. Fields are only ever added within a version, so a reader ignores
fields it does not know. Imported as `lanchat.protocol.status` (not re-exported by the package),
so that `lanchat --help` does not load it.
"""

from __future__ import annotations

from dataclasses import MISSING, dataclass, fields
from typing import Any, TypeVar

from lanchat.protocol.lines import STATUS_VERSION

_T = TypeVar("_T")


def _flat_dict(record: Any) -> dict[str, Any]:
    """The fields of a dataclass of plain values, in order (asdict's deep copy is not needed)."""
    return {f.name: getattr(record, f.name) for f in fields(record)}


def _known_fields(cls: type[_T], document: Any) -> _T:
    """cls from the fields of `document` that cls defines; ValueError when one is missing."""
    if not isinstance(document, dict):
        raise ValueError(f"not a status document: {cls.__name__} is not an object")
    known = fields(cls)  # type: ignore[arg-type]
    # A field with a default was added later: an older relay's document may lack it.
    wanted = [f.name for f in known if f.name in document or f.default is MISSING]
    try:
        return cls(**{name: document[name] for name in wanted})
    except KeyError as e:
        raise ValueError(f"not a status document: {cls.__name__} has no {e}") from None


@dataclass(frozen=True)
class RelayServer:
    """The relay's own figures."""

    pid: int
    lanchat: str  # its version
    room: str
    host: str  # as bound
    port: int
    started: float  # Unix time, rounded to ms
    uptime: float  # seconds, rounded to ms
    clients: int  # in the room now
    max_clients: int
    messages: int  # relayed since start
    rate: float  # messages per second over the last few seconds
    tls: bool = False  # serve --tls
    fingerprint: str | None = None  # its key's fingerprint (lanchat/tls/fingerprint.py)
    allow_plain: bool = True  # plain clients may connect too (always, without TLS)

    def to_dict(self) -> dict[str, Any]:
        return _flat_dict(self)

    @classmethod
    def from_dict(cls, document: Any) -> RelayServer:
        return _known_fields(cls, document)


@dataclass(frozen=True)
class RelayConnection:
    """One connection the relay still holds."""

    id: int
    name: str
    kind: str  # "lanchat", "raw" or "web" (a browser; `program` names it)
    program: str  # what a lanchat client named in its hello; "" for raw clients
    remote: str | None  # ip:port
    local: str | None
    connected_at: float  # Unix time, rounded to ms
    lines_in: int
    bytes_in: int
    frames_out: int
    bytes_out: int
    queue: int  # frames waiting to be sent to it
    state: str  # "in room" or "leaving"
    tls: bool = False  # it connected over TLS

    def to_dict(self) -> dict[str, Any]:
        return _flat_dict(self)

    @classmethod
    def from_dict(cls, document: Any) -> RelayConnection:
        return _known_fields(cls, document)


@dataclass(frozen=True)
class RelayMute:
    """A name that may not speak until `until` (Unix time)."""

    name: str
    until: float
    by: str

    def to_dict(self) -> dict[str, Any]:
        return _flat_dict(self)

    @classmethod
    def from_dict(cls, document: Any) -> RelayMute:
        return _known_fields(cls, document)


@dataclass(frozen=True)
class BackplaneStatus:
    """The relay's link to the other relays of its room (`serve --backplane`)."""

    url: str  # the Redis URL, without its password
    stream: str  # the room's stream key
    relay: str  # this relay's name among them
    state: str  # "connected", "lagging", "down", "connecting" or "stopped"
    since: float  # Unix time the state began
    error: str | None  # why it is down
    epoch: str  # the room's history id (the same on every relay)
    seq: int  # the last seq of the stream this relay delivered
    behind: int  # entries of the stream it has not delivered yet (at the last heartbeat)
    waiting: int  # our events not back from the stream yet
    lag: float  # seconds the oldest of them has waited
    relays: int  # relays of the room alive (heartbeats), this one included

    def to_dict(self) -> dict[str, Any]:
        return _flat_dict(self)

    @classmethod
    def from_dict(cls, document: Any) -> BackplaneStatus:
        return _known_fields(cls, document)


@dataclass(frozen=True)
class RelayBan:
    """An address banned until the relay stops."""

    address: str
    name: str  # whose address it was
    by: str
    reason: str
    since: float  # Unix time

    def to_dict(self) -> dict[str, Any]:
        return _flat_dict(self)

    @classmethod
    def from_dict(cls, document: Any) -> RelayBan:
        return _known_fields(cls, document)


@dataclass(frozen=True)
class RelayModeration:
    """Who may moderate, what they did that still holds, and who may connect at all."""

    topic: str = ""
    topic_by: str = ""
    operators: tuple[str, ...] = ()  # names, in joining order
    muted: tuple[RelayMute, ...] = ()
    bans: tuple[RelayBan, ...] = ()
    allow: tuple[str, ...] = ()  # --allow networks (CIDR)
    deny: tuple[str, ...] = ()  # --deny networks

    def to_dict(self) -> dict[str, Any]:
        return {
            "topic": self.topic,
            "topic_by": self.topic_by,
            "operators": list(self.operators),
            "muted": [m.to_dict() for m in self.muted],
            "bans": [b.to_dict() for b in self.bans],
            "allow": list(self.allow),
            "deny": list(self.deny),
        }

    @classmethod
    def from_dict(cls, document: Any) -> RelayModeration:
        if not isinstance(document, dict):
            raise ValueError("not a status document: moderation is not an object")

        def texts(key: str) -> tuple[str, ...]:
            value = document.get(key, [])
            if not isinstance(value, list):
                raise ValueError(f"not a status document: moderation {key} is not a list")
            return tuple(str(v) for v in value)

        def rows(key: str) -> list[Any]:
            value = document.get(key, [])
            if not isinstance(value, list):
                raise ValueError(f"not a status document: moderation {key} is not a list")
            return value

        return cls(
            topic=str(document.get("topic", "")),
            topic_by=str(document.get("topic_by", "")),
            operators=texts("operators"),
            muted=tuple(RelayMute.from_dict(m) for m in rows("muted")),
            bans=tuple(RelayBan.from_dict(b) for b in rows("bans")),
            allow=texts("allow"),
            deny=texts("deny"),
        )


@dataclass(frozen=True)
class RelayStatus:
    """The whole answer: `{"type": "status", "version": 1, "server": ..., "moderation": ...,
    "connections": [...], "backplane": ...}`; an answer without `moderation` (a relay from
    before it) reads as no moderation, one without `backplane` as none (`null`: none)."""

    server: RelayServer
    connections: tuple[RelayConnection, ...]
    moderation: RelayModeration = RelayModeration()
    backplane: BackplaneStatus | None = None  # with `serve --backplane`

    def to_dict(self) -> dict[str, Any]:
        return {
            "type": "status",
            "version": STATUS_VERSION,
            "server": self.server.to_dict(),
            "moderation": self.moderation.to_dict(),
            "connections": [c.to_dict() for c in self.connections],
            "backplane": self.backplane.to_dict() if self.backplane is not None else None,
        }

    @classmethod
    def from_dict(cls, document: Any) -> RelayStatus:
        """ValueError when `document` is not a status document."""
        if not isinstance(document, dict) or document.get("type") != "status":
            raise ValueError("not a status document")
        connections = document.get("connections")
        if not isinstance(connections, list):
            raise ValueError("not a status document: no list of connections")
        moderation = document.get("moderation")
        backplane = document.get("backplane")  # absent from relays before it existed
        return cls(
            RelayServer.from_dict(document.get("server")),
            tuple(RelayConnection.from_dict(c) for c in connections),
            RelayModeration() if moderation is None else RelayModeration.from_dict(moderation),
            BackplaneStatus.from_dict(backplane) if backplane is not None else None,
        )
