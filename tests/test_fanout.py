"""The fan-out's own parts, over real socket pairs: the Latch, and private frames in order with
room frames while their queue comes and goes."""

from __future__ import annotations

import contextlib
import socket
import threading
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from conftest import WAIT
from lanchat.fanout import Client, Fanout, Latch


def test_latch_opens_once_for_every_waiter() -> None:
    latch = Latch()
    assert latch.wait(0.01) is False  # not set: the wait runs out
    assert latch.wait(-1) is False  # a negative timeout is no wait, not "forever"
    woken: list[bool] = []
    waiters = [threading.Thread(target=lambda: woken.append(latch.wait(WAIT))) for _ in range(3)]
    for t in waiters:
        t.start()
    latch.set()
    latch.set()  # again: harmless
    for t in waiters:
        t.join(WAIT)
    assert woken == [True, True, True]
    assert latch.wait(0) is True  # stays open


class Failures(list[str]):
    """The reasons the fan-out gave up on clients; `dropped` is set at the first. Like the hub
    (Hub._failed: the room lets the client go), it closes a client given up on: a pass that came
    after would otherwise find it still owing too much and give up on it a second time."""

    def __init__(self) -> None:
        super().__init__()
        self.dropped = threading.Event()
        self.fan: Fanout | None = None

    def __call__(self, client: Client, reason: str) -> None:
        if self.fan is None:
            self.append(reason)
        else:
            with self.fan.lock:  # (the token is held: the lock after it, as the hub takes it)
                self.append(reason)  # under the lock: a feeder holding it sees both or neither
                self.fan.close(client, linger=0.1)
        self.dropped.set()


def start_fanout(**options: Any) -> tuple[Fanout, threading.Lock, Failures]:
    lock = threading.Lock()
    failed = Failures()
    fan = Fanout(lock, failed, **options)  # type: ignore[arg-type]
    failed.fan = fan
    fan.start()
    return fan, lock, failed


@pytest.fixture
def fanout() -> Iterator[tuple[Fanout, threading.Lock]]:
    fan, lock, failed = start_fanout()
    yield fan, lock
    fan.stop(WAIT)
    assert failed == []


@pytest.fixture
def big_room_fanout() -> Iterator[tuple[Fanout, threading.Lock]]:
    """A fan-out for which one client is a big room whose writer is short of CPU (any demand is
    too much, measured at every pass), and whose hold lasts 0.5 s."""
    fan, lock, failed = start_fanout(
        hold_min_clients=1, coalesce_seconds=0.5, hold_demand=1e-12, demand_window=0
    )
    yield fan, lock
    fan.stop(WAIT)
    assert failed == []


def read_exactly(sock: socket.socket, size: int) -> bytes:
    sock.settimeout(WAIT)
    data = b""
    while len(data) < size:
        chunk = sock.recv(size - len(data))
        assert chunk, f"closed after {data!r}"
        data += chunk
    return data


@contextlib.contextmanager
def member(fan: Fanout, lock: threading.Lock) -> Iterator[tuple[Client, socket.socket]]:
    """A client on a socket pair, served by `fan`; yields it and the far end to read from."""
    ours, theirs = socket.socketpair()
    with ours, theirs:
        client = Client(ours, ("127.0.0.1", 1))
        with lock:
            fan.add(client)
        yield client, theirs


def hang_up(fan: Fanout, lock: threading.Lock, client: Client) -> None:
    """Close the client as the room would, and wait until the writer is done with it."""
    with lock:
        fan.close(client, linger=0.5)  # the writer hangs up; then it can stop
    fan.kick()
    assert client.done.wait(WAIT)


def test_private_frames_keep_their_place_and_their_queue_is_let_go(
    fanout: tuple[Fanout, threading.Lock],
) -> None:
    fan, lock = fanout
    with member(fan, lock) as (client, theirs):
        with lock:
            assert client.private is None  # nothing private yet: no deque either
            fan.send_private(client, b"p1\n")
            fan.publish(b"r1\n", b'{"r":1}\n')
            fan.send_private(client, b"p2\n")
            fan.publish(b"r2\n", b'{"r":2}\n')
        fan.kick()
        assert read_exactly(theirs, 12) == b"p1\nr1\np2\nr2\n"
        # The pass after the one that emptied the queue lets it go (under the lock).
        with lock:
            fan.publish(b"r3\n", b'{"r":3}\n')
        fan.kick()
        assert read_exactly(theirs, 3) == b"r3\n"
        assert client.private is None
        with lock:  # and a later private frame gets a new queue, still in order
            fan.send_private(client, b"p3\n")
            fan.publish(b"r4\n", b'{"r":4}\n')
        fan.kick()
        assert read_exactly(theirs, 6) == b"p3\nr4\n"
        hang_up(fan, lock, client)
        assert theirs.recv(16) == b""  # our side was shut down: end of stream


def test_a_small_rooms_multi_frame_pass_does_not_hold(
    fanout: tuple[Fanout, threading.Lock],
) -> None:
    fan, lock = fanout
    with member(fan, lock) as (client, theirs):
        with lock:
            fan.publish(b"a1\n", b"")
            fan.publish(b"a2\n", b"")
        fan.kick()
        assert read_exactly(theirs, 6) == b"a1\na2\n"
        assert fan.holds == 0  # one client: fewer than HOLD_MIN_CLIENTS
        hang_up(fan, lock, client)


def test_a_big_rooms_multi_frame_pass_holds(
    big_room_fanout: tuple[Fanout, threading.Lock],
) -> None:
    fan, lock = big_room_fanout
    with member(fan, lock) as (client, theirs):
        with lock:
            fan.publish(b"a1\n", b"")
            fan.publish(b"a2\n", b"")
        fan.kick()
        assert read_exactly(theirs, 6) == b"a1\na2\n"
        assert fan.holds == 1
        hang_up(fan, lock, client)


def test_a_big_room_with_cpu_to_spare_sends_frames_as_they_come() -> None:
    """Frames that meet in a pass are no reason to hold by themselves: under the rule before,
    every held pass met several frames and held again (issue 15)."""
    fan, lock, failed = start_fanout(
        hold_min_clients=1, coalesce_seconds=0.5, hold_demand=1e12, demand_window=0
    )
    try:
        with member(fan, lock) as (client, theirs):
            for i in range(3):
                with lock:
                    fan.publish(b"a%d\n" % i, b"")
                    fan.publish(b"b%d\n" % i, b"")
                fan.kick()
                assert read_exactly(theirs, 6) == b"a%d\nb%d\n" % (i, i)
            assert fan.demand > 0 and not fan.short  # measured: far below the (huge) threshold
            assert fan.holds == 0 and not fan.holding
            hang_up(fan, lock, client)
    finally:
        fan.stop(WAIT)
    assert failed == []


def test_the_demand_is_frames_per_second_times_the_cpu_of_a_pass(
    big_room_fanout: tuple[Fanout, threading.Lock],
) -> None:
    fan, lock = big_room_fanout
    assert (fan.demand, fan.short) == (0.0, False)  # nothing measured yet: no hold
    with member(fan, lock) as (client, theirs):
        with lock:
            fan.publish(b"a1\n", b"")
        fan.kick()
        assert read_exactly(theirs, 3) == b"a1\n"
        assert fan.demand > 0 and fan.short  # a window ended with the pass (demand_window=0)
        assert fan.holds == 0  # one frame, none meanwhile: nothing to share a send with
        hang_up(fan, lock, client)


def test_a_frame_published_while_a_busy_room_holds_is_sent_when_the_hold_ends(
    big_room_fanout: tuple[Fanout, threading.Lock],
) -> None:
    fan, lock = big_room_fanout
    with member(fan, lock) as (client, theirs):
        with lock:
            fan.publish(b"a1\n", b"")
            fan.publish(b"a2\n", b"")
        fan.kick()  # two frames in one pass: a busy room, the next pass waits for the hold
        assert read_exactly(theirs, 6) == b"a1\na2\n"
        with lock:
            fan.publish(b"b1\n", b"")
            assert fan.holding  # published during the hold
        fan.kick()  # returns at once: the writer thread must be told to send it after the hold
        assert read_exactly(theirs, 3) == b"b1\n"
        hang_up(fan, lock, client)


class CountingSocket:
    """A real socket that counts what each send() carried, and may run `during_send` once
    after its first send (to publish while a pass is under way)."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.sends: list[bytes] = []
        self.during_send: Callable[[], None] | None = None

    def send(self, data: bytes, flags: int = 0) -> int:
        sent = self.sock.send(data, flags)
        self.sends.append(bytes(data[:sent]))
        action, self.during_send = self.during_send, None
        if action is not None:
            action()
        return sent

    def __getattr__(self, name: str) -> object:
        return getattr(self.sock, name)


@pytest.mark.parametrize("store", [False, True])
def test_a_frame_published_during_a_pass_rides_along_to_those_not_reached_yet(
    store: bool,
) -> None:
    """A frame published while a pass runs goes in the same send() to the clients the pass has
    not reached yet, and in the next round to those it has; each gets every frame once, in
    order. With a store a frame is saved before it is sent, so it waits for the next pass."""
    saved: list[object] = []
    fan, lock, failed = start_fanout(save=saved.extend if store else None)
    pairs = [socket.socketpair() for _ in range(3)]
    counted = [CountingSocket(ours) for ours, _ in pairs]
    clients = [Client(sock, ("127.0.0.1", 1)) for sock in counted]  # type: ignore[arg-type]
    with lock:
        for client in clients:
            fan.add(client)

    def publish_b() -> None:
        with lock:  # (a pass holds the token: the lock after it, as the hub takes it)
            fan.publish(b"b\n", b"", event=object())  # type: ignore[arg-type]

    counted[0].during_send = publish_b  # the first client of the pass
    try:
        with lock:
            fan.publish(b"a\n", b"", event=object())  # type: ignore[arg-type]
        fan.kick()
        for _, theirs in pairs:
            assert read_exactly(theirs, 4) == b"a\nb\n"
        assert counted[0].sends == [b"a\n", b"b\n"]
        rest = [sock.sends for sock in counted[1:]]
        if store:
            assert rest == [[b"a\n", b"b\n"]] * 2 and len(saved) == 2
        else:
            assert rest == [[b"a\nb\n"]] * 2  # one send each, both frames
        for client in clients:
            hang_up(fan, lock, client)
    finally:
        fan.stop(WAIT)
        for ours, theirs in pairs:
            ours.close()
            theirs.close()
    assert failed == []


def feed_a_reader_that_never_reads(
    limit: int, feed: Callable[[Fanout, Client], None], check: Callable[[Client], None]
) -> None:
    """Give a client that never reads frames (`feed`, called with the lock held) until the
    fan-out gives up on it as too slow; `check` runs after each one (lock held)."""
    fan, lock, failed = start_fanout(max_backlog_bytes=limit)
    try:
        with member(fan, lock) as (client, theirs):
            theirs.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # and never reads
            for _ in range(10_000):  # 40 MB of 4 KB frames if nothing stopped it
                with lock:
                    if failed:  # given up on, and closed (nothing more goes to it, as in a room)
                        break
                    feed(fan, client)
                    check(client)
                fan.kick()
            # (a loop that never blocks can keep the writer from the lock until it ends)
            assert failed.dropped.wait(WAIT)
            assert failed == ["too-slow"]
            fan.kick()
            assert client.done.wait(WAIT)
    finally:
        fan.stop(WAIT)


FRAME = b"f" * 4095 + b"\n"


def test_a_client_that_asks_more_than_it_reads_is_dropped_with_a_bounded_queue() -> None:
    """Private replies count against the backlog limits too: a client that never reads but
    keeps asking (a ping with a 4 KB token, /who) cannot make its queue grow without end."""

    def bounded(client: Client) -> None:
        assert client.private_bytes <= 64 * 1024

    feed_a_reader_that_never_reads(
        64 * 1024, lambda fan, client: fan.send_private(client, FRAME), bounded
    )


def test_the_backlog_limit_in_bytes_drops_a_parked_client_behind_big_frames() -> None:
    """Far fewer frames than MAX_BACKLOG_FRAMES, but more bytes than the limit."""
    feed_a_reader_that_never_reads(
        256 * 1024, lambda fan, client: fan.publish(FRAME, FRAME), lambda client: None
    )
