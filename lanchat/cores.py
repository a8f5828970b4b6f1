"""Where the relay's threads run: on one CPU core while the room is busy, anywhere otherwise.

Every relay thread needs Python's GIL, so they never run Python in parallel. Spread over cores,
each hand-off of the GIL in a busy room wakes a thread on another core (a futex call and a
cross-core interrupt); on one core the threads simply take turns. Measured at 100 clients with
ten senders: 4x fewer futex calls and ~25 % less CPU per delivered line. But a process held to
one core can no longer move off it when another program wants that core too: with one line at a
time to 100 clients, the latency tail was a third worse held than free (docs/performance.md).
So the keeper holds the threads on one core while the room is busy and lets them go when it is
quiet again. Linux only (sched_setaffinity); elsewhere it does nothing.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable

CHECK_SECONDS = 0.5  # how often the keeper looks at the room
BUSY_HOLDS = 10  # busy-room holds per check that mean "busy" (a busy room makes ~100)
QUIET_CHECKS = 2  # checks in a row below that before the threads are let go

log = logging.getLogger(__name__)


def supported() -> bool:
    """Whether this system lets a process choose its cores, and offers it more than one."""
    return hasattr(os, "sched_setaffinity") and len(os.sched_getaffinity(0)) > 1


def set_every_thread(cpus: set[int]) -> int:
    """Put every thread of this process on `cpus`; return how many were moved. Threads inherit
    the setting of the thread that starts them, so a second sweep catches any started while the
    first one ran."""
    done: set[int] = set()
    for _ in range(2):
        try:
            tids = {int(t) for t in os.listdir("/proc/self/task")} - done
        except OSError:
            break
        for tid in tids:
            try:
                os.sched_setaffinity(tid, cpus)
            except OSError:
                pass  # the thread ended meanwhile
        done |= tids
    return len(done)


class CoreKeeper:
    """Watches a counter of busy-room holds and holds the threads on one core while it climbs."""

    def __init__(self, holds: Callable[[], int], cpu_now: Callable[[], int | None]) -> None:
        self._holds = holds  # a counter the fan-out increases at every busy-room hold
        self._cpu_now = cpu_now  # the core the busy work runs on now (None: unknown)
        self._free = os.sched_getaffinity(0) if supported() else set()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="lanchat-cores", daemon=True)
        self.held_on: int | None = None  # the core while held

    def start(self) -> None:
        if self._free:
            self._thread.start()

    def stop(self) -> None:
        """Stop watching and let the threads go (the relay may run on while it stops)."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(CHECK_SECONDS * 4)
        self._let_go()

    def _run(self) -> None:
        last, quiet = self._holds(), 0
        while not self._stop.wait(CHECK_SECONDS):
            now = self._holds()
            busy = now - last >= BUSY_HOLDS
            last = now
            if busy:
                quiet = 0
                if self.held_on is None:
                    self._hold()
            elif self.held_on is not None:
                quiet += 1
                if quiet >= QUIET_CHECKS:
                    self._let_go()

    def _hold(self) -> None:
        cpu = self._cpu_now()
        if cpu is None or cpu not in self._free:
            cpu = min(self._free)
        moved = set_every_thread({cpu})
        self.held_on = cpu
        log.debug("busy room: %d threads held on core %d", moved, cpu)

    def _let_go(self) -> None:
        if self.held_on is None:
            return
        moved = set_every_thread(self._free)
        self.held_on = None
        log.debug("quiet room: %d threads free again", moved)


def cpu_of_thread(native_id: int | None) -> int | None:
    """The core a thread of this process last ran on (Linux /proc), or None."""
    if native_id is None:
        return None
    try:
        with open(f"/proc/self/task/{native_id}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return int(fields[36])  # field 39 of stat, "processor"; fields[0] is field 3
    except (OSError, IndexError, ValueError):
        return None
