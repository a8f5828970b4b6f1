"""The core keeper's decisions, with the moving of threads replaced by a recorder (the test
process's own threads stay where they are; tests/test_cli.py checks a real `lanchat serve`)."""

from __future__ import annotations

import os
import threading
from typing import Any

import pytest

from conftest import WAIT
from lanchat import cores
from lanchat.cores import BUSY_HOLDS, CoreKeeper, core_of_thread

pytestmark = pytest.mark.skipif(
    not cores.can_choose_cores(), reason="needs Linux and at least two usable CPU cores"
)


class Recorder:
    """Stands in for move_every_thread: notes each move, and can fail on one."""

    def __init__(self, fail_on: int = 0) -> None:
        self.moves: list[set[int]] = []
        self.changed = threading.Condition()
        self.fail_on = fail_on

    def __call__(self, target: set[int]) -> int:
        with self.changed:
            self.moves.append(set(target))
            self.changed.notify_all()
        if len(self.moves) == self.fail_on:
            raise RuntimeError("a bug in the middle of a move")
        return 1

    def wait_for(self, count: int) -> bool:
        with self.changed:
            return self.changed.wait_for(lambda: len(self.moves) >= count, WAIT)


class Room:
    """A hold counter that climbs by BUSY_HOLDS at every check while busy."""

    def __init__(self) -> None:
        self.holds = 0
        self.busy = True

    def count(self) -> int:
        if self.busy:
            self.holds += BUSY_HOLDS
        return self.holds


def keeper(room: Room, recorder: Recorder, core: int | None) -> CoreKeeper:
    return CoreKeeper(room.count, lambda: core, interval=0.01, move=recorder)


def test_a_busy_room_is_held_on_the_writers_core_and_let_go_when_quiet() -> None:
    allowed = os.sched_getaffinity(0)
    core = max(allowed)
    room, recorder = Room(), Recorder()
    k = keeper(room, recorder, core)
    k.start()
    try:
        assert recorder.wait_for(1)
        assert recorder.moves[0] == {core} and k.held_on == core
        room.busy = False
        assert recorder.wait_for(2)  # after QUIET_CHECKS quiet checks
        assert recorder.moves[1] == allowed and k.held_on is None
    finally:
        k.stop()
    assert len(recorder.moves) == 2  # stop() had nothing left to let go


def test_an_unknown_core_falls_back_to_an_allowed_one() -> None:
    room, recorder = Room(), Recorder()
    k = keeper(room, recorder, None)
    k.start()
    try:
        assert recorder.wait_for(1)
        assert recorder.moves[0] == {min(os.sched_getaffinity(0))}
    finally:
        k.stop()


def test_stop_lets_a_held_room_go() -> None:
    room, recorder = Room(), Recorder()
    k = keeper(room, recorder, None)
    k.start()
    assert recorder.wait_for(1)
    k.stop()
    assert recorder.moves[-1] == os.sched_getaffinity(0) and k.held_on is None


def test_a_failure_while_holding_still_lets_go(caplog: Any) -> None:
    room, recorder = Room(), Recorder(fail_on=1)
    k = keeper(room, recorder, None)
    k.start()
    assert recorder.wait_for(2)  # the failed hold, then the keeper's own let-go
    assert recorder.moves[1] == os.sched_getaffinity(0) and k.held_on is None
    k.stop()
    assert "the core keeper stopped" in caplog.text


def test_core_of_thread_reads_a_core_this_process_may_use() -> None:
    assert core_of_thread(threading.get_native_id()) in os.sched_getaffinity(0)
    assert core_of_thread(None) is None
    assert core_of_thread(2**31 - 1) is None  # no such thread here
