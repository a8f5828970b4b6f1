"""The people in the room on other relays, as this relay last heard of them: pure, owned by the
room.

With a backplane (lanchat/backplane/) several relays carry one room. Each relay admits its own
clients, so to keep names unique and to answer /who for the whole room it needs a picture of the
others: by name key, the name and the relay that holds it. The backplane refreshes the whole
picture from Redis every few seconds (the names hash, which is the authority: set_all), and the
room applies another relay's join, leave and rename as they arrive in the stream's order
(apply), so /who does not wait for the next refresh. Without a backplane it stays empty.

A refresh is a snapshot of the hash as of some seq of the stream (read in one transaction with
the stream's newest seq); a relay records a name before it appends the join. So an event with a
higher seq than the snapshot's is newer than it, and survives the refresh.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass

from lanchat.protocol import Event, Joined, Left, Renamed, name_key


@dataclass(frozen=True, slots=True)
class Claim:
    """A name this relay gave (`member`: to that member) or freed (`member` 0), for the
    backplane to record in the room's names hash."""

    name: str
    member: int


@dataclass(frozen=True, slots=True)
class RemotePerson:
    """Someone present on another relay of the room."""

    name: str
    relay: str  # that relay's name, as `lanchat serve --relay-name` gave it


class RemoteRoster:
    """Name key -> RemotePerson, for everyone on the other relays."""

    def __init__(self) -> None:
        self._people: dict[str, RemotePerson] = {}
        # Changes from events since the last refresh: key -> (seq, the person or None: left).
        self._changed: dict[str, tuple[int, RemotePerson | None]] = {}

    def __len__(self) -> int:
        return len(self._people)

    def __contains__(self, key: object) -> bool:
        return key in self._people

    def __iter__(self) -> Iterator[RemotePerson]:
        return iter(self._people.values())

    def get(self, key: str) -> RemotePerson | None:
        return self._people.get(key)

    def add(self, name: str, relay: str, seq: int = 0) -> None:
        key = name_key(name)
        person = self._people[key] = RemotePerson(name, relay)
        if seq:
            self._changed[key] = (seq, person)

    def _remove(self, name: str, seq: int) -> None:
        key = name_key(name)
        self._people.pop(key, None)
        self._changed[key] = (seq, None)

    def set_all(self, people: Mapping[str, RemotePerson], as_of: int) -> None:
        """Replace the whole picture with the names hash as it was at seq `as_of`; what
        events after that seq changed is kept."""
        fresh = dict(people)
        for key, (seq, person) in self._changed.items():
            if seq > as_of:
                if person is None:
                    fresh.pop(key, None)
                else:
                    fresh[key] = person
        self._changed = {k: c for k, c in self._changed.items() if c[0] > as_of}
        self._people = fresh

    def apply(self, event: Event, relay: str) -> None:
        """Another relay's event, in the stream's order: follow its joins, leaves, renames."""
        if isinstance(event, Joined):
            self.add(event.name, relay, event.seq)
        elif isinstance(event, Left):
            self._remove(event.name, event.seq)
        elif isinstance(event, Renamed):
            self._remove(event.old, event.seq)
            self.add(event.new, relay, event.seq)
