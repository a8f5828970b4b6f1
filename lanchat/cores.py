"""Where the relay's threads run: on one CPU core while the room is busy, anywhere otherwise.

Every relay thread needs Python's GIL, so they never run Python in parallel. Spread over cores,
each hand-off of the GIL in a busy room wakes a thread on another core (a futex call and a
cross-core interrupt); on one core the threads simply take turns. Measured at 100 clients with
ten senders: ~3.4x fewer futex calls, and 16-25 % less CPU per delivered line. But a process held
to one core cannot move off it when another program wants that core too: with one line at a time
to 100 clients, the latency tail (p99) was a third to a half worse held than free
(docs/performance.md). So the keeper holds the threads on one core while the room is busy and
lets them go when it is quiet again. Linux only (sched_setaffinity); elsewhere it does nothing.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable

from lanchat.tuning import (  # how often it looks, and what counts as busy and as quiet
    KEEPER_BUSY_HOLDS as BUSY_HOLDS,
)
from lanchat.tuning import (
    KEEPER_CHECK_SECONDS as CHECK_SECONDS,
)
from lanchat.tuning import (
    KEEPER_QUIET_CHECKS as QUIET_CHECKS,
)

log = logging.getLogger(__name__)


def can_choose_cores() -> bool:
    """Whether this system lets a process choose its cores, and offers it more than one."""
    return hasattr(os, "sched_setaffinity") and len(os.sched_getaffinity(0)) > 1


def move_every_thread(cores: set[int]) -> int:
    """Put every thread of this process on `cores`; return how many were moved. Threads inherit
    the setting of the thread that starts them, so a second sweep catches any started while the
    first one ran."""
    seen: set[int] = set()
    moved = 0
    refused: OSError | None = None
    for _ in range(2):
        try:
            tids = {int(t) for t in os.listdir("/proc/self/task")} - seen
        except OSError:
            break
        for tid in tids:
            try:
                os.sched_setaffinity(tid, cores)
                moved += 1
            except ProcessLookupError:
                pass  # the thread ended meanwhile
            except OSError as e:  # EPERM, or EINVAL: a core the cpuset no longer allows
                refused = e
        seen |= tids
    if refused is not None:
        log.debug("could not move some threads to cores %s: %s", sorted(cores), refused)
    return moved


def core_of_thread(native_id: int | None) -> int | None:
    """The core a thread of this process last ran on (Linux /proc), or None."""
    if native_id is None:
        return None
    try:
        with open(f"/proc/self/task/{native_id}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return int(fields[36])  # field 39 of stat, "processor"; fields[0] is field 3
    except (OSError, IndexError, ValueError):
        return None


class CoreKeeper:
    """Watches a counter of busy-room holds and holds the threads on one core while it climbs."""

    def __init__(
        self,
        holds: Callable[[], int],
        core_now: Callable[[], int | None],
        *,
        interval: float = CHECK_SECONDS,
        move: Callable[[set[int]], int] = move_every_thread,
    ) -> None:
        self._holds = holds  # a counter the fan-out increases at every busy-room hold
        self._core_now = core_now  # the core the busy work runs on now (None: unknown)
        self._interval = interval
        self._move = move
        self._enabled = can_choose_cores()
        self._all_cores = os.sched_getaffinity(0) if self._enabled else set()
        self._lock = threading.Lock()  # one move at a time: stop() may race the keeper
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="lanchat-cores", daemon=True)
        self.held_on: int | None = None  # the core while held

    def start(self) -> None:
        if self._enabled:
            self._thread.start()

    def stop(self) -> None:
        """Stop watching and let the threads go (the relay may run on while it stops)."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(self._interval * 4)
        self._let_go()  # (the keeper's own exit lets go as well, whichever comes last)

    def _run(self) -> None:
        try:
            last, quiet = self._holds(), 0
            while not self._stop.wait(self._interval):
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
        except Exception as e:  # a bug must not leave the relay held to one core
            log.error("the core keeper stopped: %r", e)
        finally:
            self._let_go()

    def _hold(self) -> None:
        with self._lock:
            if self._stop.is_set():
                return
            core = self._core_now()
            if core is None or core not in self._all_cores:
                core = min(self._all_cores)
            self.held_on = core  # before moving: a failure halfway is still let go
            moved = self._move({core})
            log.debug("busy room: %d threads held on core %d", moved, core)

    def _let_go(self) -> None:
        with self._lock:
            if self.held_on is None:
                return
            self.held_on = None
            moved = self._move(self._all_cores)
            log.debug("quiet room: %d threads free again", moved)
