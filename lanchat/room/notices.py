"""Join and leave notices without a screenful: one by one up to a burst, then one summary.

At most NOTICE_BURST notices go out one by one in NOTICE_WINDOW_SECONDS; beyond that they are
counted, and told as one summary once the burst has been quiet for SUMMARY_AFTER_SECONDS (a
class arriving at once, or a script connecting in a loop, is a line, not a screenful). Pure:
the room passes the time in (its ticks) and owns one budget.
"""

from __future__ import annotations

from collections import deque

NOTICE_BURST = 8
NOTICE_WINDOW_SECONDS = 10.0
SUMMARY_AFTER_SECONDS = 2.0
JOIN, LEAVE = 0, 1


class NoticeBudget:
    """Which notices may go out now, and the counts of those held back for a summary."""

    def __init__(self) -> None:
        self._sent: deque[float] = deque()  # when the recent notices went out
        self._held = [0, 0]  # joins and leaves counted for the next summary
        self._held_last = 0.0  # when the last one was counted

    def allow(self, which: int, now: float) -> bool:
        """Whether a JOIN or LEAVE notice may go out one by one now; else it is counted."""
        sent = self._sent
        while sent and sent[0] <= now - NOTICE_WINDOW_SECONDS:
            sent.popleft()
        if len(sent) < NOTICE_BURST and not any(self._held):
            sent.append(now)
            return True
        self._held[which] += 1
        self._held_last = now
        return False

    def due(self, now: float) -> tuple[int, int] | None:
        """(joined, left) to summarise now that the burst has gone quiet; None if nothing is
        held or it is not quiet yet. Counts once: what it returns is no longer held."""
        if not any(self._held) or now - self._held_last < SUMMARY_AFTER_SECONDS:
            return None
        joined, left = self._held
        self._held = [0, 0]
        self._sent.append(now)
        return joined, left
