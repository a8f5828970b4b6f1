"""This relay's events on their way through the stream, pure: numbered (lseq) as the room
publishes them, sent in that order, and let go when they come back from the stream. No I/O, no
locks of its own: the link (link.py) keeps one under its lock.

An event waits here from submit() until the reader meets it in the stream. Meanwhile it may be
sent more than once: after a lost connection everything that has not come back is sent again
(`resend`), and the reader drops the copies (entries.Dedupe). While the backplane is away the
relay shows its events here at once (`shown`), keeps them, and appends them when it is back,
where they take their place in the order without being shown twice.

Bounded: at most MAX_WAITING events (a long outage in a busy room); past that the oldest are
let go with a count, as the room's other bounded queues do (docs/reliability.md).
"""

from __future__ import annotations

import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any

from lanchat.protocol import Event

MAX_WAITING = 100_000  # events kept for the stream while it is away


@dataclass(slots=True)
class Waiting:
    """One of our events that has not come back from the stream yet."""

    lseq: int
    event: Event
    origin: int = 0  # a raw sender, who skips its own line
    actor: Any = None  # the client whose action it was (for the serve log)
    shown: bool = False  # shown here already (the backplane was away)
    at: float = field(default_factory=time.monotonic)  # when the room published it


class Outbox:
    """Our events in lseq order, and how far they have been sent."""

    def __init__(self, limit: int = MAX_WAITING) -> None:
        self._waiting: deque[Waiting] = deque()
        self._next = 1
        self._sent = 0  # the highest lseq handed to the appender since the last resend
        self._limit = limit
        self.dropped = 0  # let go unsent because the outbox was full

    def __len__(self) -> int:
        return len(self._waiting)

    def add(self, event: Event, origin: int, actor: Any, *, shown: bool) -> Waiting:
        """Number one of the room's events and keep it until it comes back."""
        waiting = Waiting(self._next, event, origin, actor, shown)
        self._next += 1
        self._waiting.append(waiting)
        if len(self._waiting) > self._limit:
            self._waiting.popleft()
            self.dropped += 1
        return waiting

    def unsent(self) -> bool:
        """Whether something waits to be sent."""
        return bool(self._waiting) and self._waiting[-1].lseq > self._sent

    def to_send(self, limit: int) -> list[Waiting]:
        """The next events to append, at most `limit`, in lseq order; counted as sent."""
        batch: list[Waiting] = []
        for waiting in self._waiting:
            if waiting.lseq <= self._sent:
                continue
            batch.append(waiting)
            if len(batch) >= limit:
                break
        if batch:
            self._sent = batch[-1].lseq
        return batch

    def resend(self) -> None:
        """The connection was lost: whatever has not come back is sent again (the reader
        drops the copies of what did reach the stream)."""
        self._sent = 0

    def arrived(self, lseq: int) -> Waiting | None:
        """Our entry `lseq` came back from the stream: let it go. Ours come back in lseq
        order, so it is the oldest (anything older was trimmed from the stream unread)."""
        waiting = self._waiting
        while waiting and waiting[0].lseq < lseq:
            waiting.popleft()
        if waiting and waiting[0].lseq == lseq:
            return waiting.popleft()
        return None

    def show_all(self) -> list[Waiting]:
        """The backplane went away: the events not shown yet, to show here now."""
        shown = [w for w in self._waiting if not w.shown]
        for waiting in shown:
            waiting.shown = True
        return shown

    def oldest_age(self, now: float) -> float:
        """Seconds the oldest event has waited (the stream's lag for ours); 0 if none."""
        return now - self._waiting[0].at if self._waiting else 0.0
