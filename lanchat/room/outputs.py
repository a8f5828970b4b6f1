"""What the room decides, as data: the outputs it returns, the members it knows, refusals.

The room (rules.py) returns a list of these for everything a client does; the hub (hub.py)
applies them to the fan-out. Plain frozen dataclasses, no behaviour: they are the room's
whole interface to the world, and what tests/test_room.py reads.
"""

from __future__ import annotations

from dataclasses import dataclass

from lanchat.protocol import (
    Chat,
    ClientKind,
    Event,
    FrameError,
    Gap,
    LineTooLong,
    Request,
    Welcome,
    WhoList,
)

# What a reader hands to the room per line; a str is a raw client's plain message (the common
# case, so it needs no request object).
Item = str | Request | FrameError | LineTooLong

GOODBYES = {
    "quit": "Goodbye.",
    "too-slow": "You were disconnected: you could not keep up with the room "
    "(the server could not send to you fast enough).",
    "shutdown": "Server shutting down. Goodbye.",
    "idle": "You were disconnected to make room for someone else: the room is full and you "
    "had not said anything since you connected. Connect again to go on.",
    # An operator's: the room says who and why instead (lanchat/room/moderation.py).
    "kicked": "You were removed from the room by an operator.",
    "banned": "You were banned from the room by an operator, until the server restarts or the "
    "ban is lifted (/unban).",
}


class Refused(Exception):
    """A join the room says no to: the frame to show, then the connection closes."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass(slots=True, eq=False)
class Member:
    """Someone in the room, as the room knows them (no socket: the hub has that)."""

    id: int
    name: str
    kind: ClientKind
    program: str = ""  # the client program, from a lanchat hello
    # Announced to the room: it has said something or identified itself (a lanchat hello). A
    # silent connection is greeted but not announced, listed or counted as present, so a port
    # scan or an idle socket costs nobody a notice.
    announced: bool = True
    since: float = 0.0  # when it joined (the room's ticks)
    operator: bool = False  # may moderate the room (joined as one, or promoted: Room.promote)
    address: str = ""  # the IP address it connects from (what a /ban bans); "" if none
    # It connects as programs on the server's own computer do (lanchat.admission.own_computer):
    # that address cannot be banned.
    own_computer: bool = False


# --- outputs: what must happen ------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Publish:
    """Send `event` to everyone in the room; a raw sender (`origin`) skips its own line."""

    event: Event
    origin: int = 0


@dataclass(frozen=True, slots=True)
class Send:
    """Send `event` to one member only, in order with the room's events."""

    to: int
    event: Event


@dataclass(frozen=True, slots=True)
class Greet:
    """A newcomer's welcome, who-list and history replay (to it only); `gap` before the replay
    when a resuming client missed more than can be replayed."""

    to: int
    welcome: Welcome
    who: WhoList
    history: tuple[Chat, ...]
    gap: Gap | None = None


@dataclass(frozen=True, slots=True)
class Recode:
    """From now on this member reads frames of another kind (a late lanchat hello)."""

    to: int
    kind: ClientKind


@dataclass(frozen=True, slots=True)
class Hangup:
    """Send what is queued for this member, then close its connection."""

    to: int
    reason: str


@dataclass(frozen=True, slots=True)
class BarAddress:
    """Refuse new connections from this address until the server stops (an operator's /ban);
    the hub hands it to admission (lanchat/admission.py), which decides at accept."""

    address: str


@dataclass(frozen=True, slots=True)
class LiftBan:
    """Let this address connect again (an operator's /unban): the hub takes it out of
    admission's bans."""

    address: str


Output = Publish | Send | Greet | Recode | Hangup | BarAddress | LiftBan
