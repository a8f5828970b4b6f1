"""The queue between the room and `lanchat serve`'s event log: the room puts every event in it
under its lock, so a put must cost next to nothing and never wait; the log takes them in batches
on its own thread, as fast as its output allows, and what did not fit is counted, not kept.

Who owns what:

    field         written by / under                         read by / under
    _items        put(): the hub lock (the room's events);   take(): the log's thread. A deque's
                  put_always(): the advertiser's thread      append and popleft are each atomic
                                                             (CPython), so no lock of its own
    skipped       put(), under the hub lock only             the log's thread, unlocked: an int,
                                                             a stale read is reported next round
    _open         close(): the log's thread, once            put(), unlocked: a stale read puts
                                                             one event more, which is not logged

A put that finds the queue full neither waits nor wakes anyone: the log is the one that must
keep up, never the room (docs/performance.md: rich's rendering of each line, and a wake-up of
the log thread per event, were the most expensive part of a busy relay).
"""

from __future__ import annotations

from collections import deque
from typing import Any

LOG_QUEUE = 10000  # events waiting for the log; beyond that they are counted, not kept


class LogQueue:
    """Events on their way to the log, at most `limit` waiting; the rest counted in `skipped`."""

    def __init__(self, limit: int = LOG_QUEUE) -> None:
        self._items: deque[tuple[Any, Any]] = deque()
        self._limit = limit
        self._open = True
        self.skipped = 0  # events that found the queue full, since the start

    def put(self, item: Any, client: Any = None) -> None:
        """Queue a room event and the client that caused it (the hub lock held: never blocks)."""
        if not self._open:
            return
        if len(self._items) < self._limit:
            self._items.append((item, client))
        else:
            self.skipped += 1

    def put_always(self, item: Any) -> None:
        """Queue a rare event from another thread (an mDNS change): never skipped, never counted
        (its thread does not hold the hub lock that `skipped` relies on)."""
        if self._open:
            self._items.append((item, None))

    def take(self, most: int) -> list[tuple[Any, Any]]:
        """Up to `most` queued items, oldest first (the log's thread only)."""
        items = self._items
        return [items.popleft() for _ in range(min(most, len(items)))]

    def __len__(self) -> int:
        return len(self._items)

    def close(self) -> None:
        """Take no more events (the server is stopping: its goodbyes are not logged)."""
        self._open = False
