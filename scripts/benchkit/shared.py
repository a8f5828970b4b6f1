"""What the generator processes of one run share: per-sender counts in an anonymous shared
mapping made before they are forked (window mode needs every process's view of every line)."""

from __future__ import annotations

import mmap

FAR = 1 << 62  # "every line": the done mark of a worker with no receivers for a sender


class Shared:
    """Counters shared by all workers of one run (an anonymous shared mapping, made before fork)."""

    def __init__(self, senders: int, procs: int) -> None:
        """Room for ``senders`` sent counts, ``procs`` x ``senders`` done marks, ``procs`` flags."""
        self.senders = senders
        self.procs = procs
        self._map = mmap.mmap(-1, 8 * (senders + procs * senders + procs))
        self.view = memoryview(self._map).cast("q")

    def set_sent(self, sender: int, count: int) -> None:
        """Publish how many lines ``sender`` has sent."""
        self.view[sender] = count

    def sent(self, sender: int) -> int:
        """How many lines ``sender`` has sent."""
        return int(self.view[sender])

    def start_windows(self, members: list[range]) -> None:
        """Window mode: no line is done yet, except for workers that hold no receiver of it
        (``members``: the client numbers each worker holds)."""
        for worker, held in enumerate(members):
            for sender in range(self.senders):
                holds = any(i != sender for i in held)
                self.set_done(worker, sender, 0 if holds else FAR)

    def set_done(self, worker: int, sender: int, count: int) -> None:
        """Publish that ``worker``'s receivers all have lines ``0 .. count-1`` of ``sender``."""
        self.view[self.senders + worker * self.senders + sender] = count

    def done(self, sender: int) -> int:
        """How many lines of ``sender`` have reached every receiver, in every worker."""
        base = self.senders + sender
        return int(min(self.view[base + w * self.senders] for w in range(self.procs)))

    def set_stopped(self, worker: int) -> None:
        """``worker`` will send no more: its senders' counts are final."""
        self.view[self.senders * (1 + self.procs) + worker] = 1

    def all_stopped(self) -> bool:
        """Whether every worker has stopped sending."""
        base = self.senders * (1 + self.procs)
        return all(self.view[base + w] for w in range(self.procs))
