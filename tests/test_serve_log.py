"""`lanchat serve`'s event log: lines formatted without rich are rich's own bytes, JSON lines are
print_json's, the queue (lanchat/logqueue.py) counts what does not fit, and a log that cannot
keep up skips lines and says how many (at the time and at the end) without holding up the room."""

from __future__ import annotations

import io
import json
import os
import signal
import socket
import threading
import time
from collections.abc import Sequence
from contextlib import redirect_stdout
from typing import Any

import pytest
from rich.console import Console

from conftest import WAIT
from lanchat import serving
from lanchat.admission import Refusal
from lanchat.logqueue import LogQueue
from lanchat.output.serve import (
    JsonServeLog,
    TextServeLog,
    serve_event_dict,
    serve_event_pieces,
    serve_event_text,
)
from lanchat.protocol import Chat, Event, Goodbye, Joined, Left, Moderation, Renamed, Summary
from lanchat.serving import Listening, ServeOptions, Stopped, run_server

T = 1_700_000_000.0
EVENTS: list[tuple[Event, str | None]] = [
    (Joined(1, T, "ana", "raw", 1), "192.168.1.7:50000"),
    (Joined(2, T, "bo", "lanchat", 2), None),
    (Chat(3, T, "ana", "hello [bold]not markup[/] ünïcode ✓ 😀"), None),
    (Chat(4, T + 61, "Zoë", "waves", action=True), None),
    (Chat(5, T, "bo", "an old line", history=True), None),
    (Renamed(6, T, "bo", "bob"), None),
    (Left(7, T, "ana", "too-slow", 1), None),
    (Left(8, T, "bob", "quit", 0), None),
    (Summary(9, T, 3, 1, 4), None),  # no line in the log (and no fast form)
    (Goodbye(10, T, "shutdown", "Server shutting down."), None),
    # no fast form: rich renders it, between the lines written before and after it
    (Moderation(11, T, "kick", "cy", "ana", "cy was kicked by ana"), "10.0.0.9:1"),
    (Chat(12, T, "ana", "after the kick"), None),
]

CONSOLES = {
    "file": {},
    "terminal": {"force_terminal": True, "color_system": "truecolor"},
    "terminal-256": {"force_terminal": True, "color_system": "256"},
    "terminal-16": {"force_terminal": True, "color_system": "standard"},
    "terminal-no-color": {"force_terminal": True, "color_system": "truecolor", "no_color": True},
}


def console(out: io.StringIO, **options: Any) -> Console:
    """A console as stdout_console() makes it, writing to `out`."""
    return Console(file=out, highlight=False, soft_wrap=True, **options)


@pytest.mark.parametrize("name", CONSOLES)
def test_text_lines_are_the_bytes_rich_printed_one_by_one(name: str) -> None:
    by_rich, ours = io.StringIO(), io.StringIO()
    reference = console(by_rich, **CONSOLES[name])
    for event, address in EVENTS:  # what the log printed before: a rich Text per event
        text = serve_event_text(event, address)
        if text is not None:
            reference.print(text)
    TextServeLog(console(ours, **CONSOLES[name])).events(EVENTS)
    assert ours.getvalue() == by_rich.getvalue()
    assert ours.getvalue().count("\n") == 10  # nothing for the summary or the goodbye
    if name == "file":
        assert "\x1b" not in ours.getvalue()
    if name == "terminal":
        assert "\x1b[" in ours.getvalue()  # colours, where rich would colour


def test_the_frequent_events_take_the_fast_form() -> None:
    fast = [type(e).__name__ for e, a in EVENTS if serve_event_pieces(e, a) is not None]
    assert fast == ["Joined", "Joined", "Chat", "Chat", "Chat", "Renamed", "Left", "Left", "Chat"]


def test_json_lines_are_the_bytes_print_json_wrote_one_by_one() -> None:
    before = io.StringIO()
    for event, address in EVENTS:
        d = serve_event_dict(event, address)
        if d is not None:
            before.write(json.dumps(d, ensure_ascii=False) + "\n")  # print_json's format
    ours = io.StringIO()
    with redirect_stdout(ours):
        JsonServeLog().events(EVENTS)
    assert ours.getvalue() == before.getvalue()
    assert [json.loads(line)["event"] for line in ours.getvalue().splitlines()] == [
        "join", "join", "message", "message", "message", "nick", "leave", "leave", "moderation",
        "message",
    ]  # fmt: skip


def test_skipped_lines_are_said_at_the_time_and_at_the_end() -> None:
    out = io.StringIO()
    log = TextServeLog(console(out))
    log.skipped(812)
    log.skipped(1)
    log.stopped(Stopped(clients=3, messages=9000, log_lines_dropped=813))
    assert out.getvalue().splitlines() == [
        "… 812 log lines skipped: the log could not keep up.",
        "… 1 log line skipped: the log could not keep up.",
        "Stopped. 3 people were told the server is shutting down. 813 log lines in all were "
        "skipped: the log could not keep up.",
    ]
    out = io.StringIO()
    TextServeLog(console(out)).stopped(Stopped(clients=3, messages=9000, log_lines_dropped=0))
    assert out.getvalue() == "Stopped. 3 people were told the server is shutting down.\n"
    with redirect_stdout(out := io.StringIO()):
        JsonServeLog().skipped(812)
        JsonServeLog().stopped(Stopped(clients=3, messages=9000, log_lines_dropped=812))
    skipped, shutdown = map(json.loads, out.getvalue().splitlines())
    assert skipped == {"event": "skipped", "lines": 812}
    assert shutdown["log_lines_dropped"] == 812


def test_a_full_queue_counts_instead_of_keeping_and_a_closed_one_takes_nothing() -> None:
    events = LogQueue(limit=3)
    for i in range(5):
        events.put(i)
    assert (len(events), events.skipped) == (3, 2)
    assert events.take(2) == [(0, None), (1, None)]
    events.put(5, "client")
    events.put_always("mdns")  # never skipped, even when full
    assert events.take(10) == [(2, None), (5, "client"), ("mdns", None)]
    events.close()
    events.put(6)
    events.put_always("mdns")
    assert (len(events), events.skipped) == (0, 2)


class StuckLog:
    """A ServeLog whose output blocks (on `gate`) from its first batch until the test opens it,
    as a terminal nobody scrolls or a pipe nobody reads would."""

    def __init__(self) -> None:
        self.port: int | None = None
        self.ready = threading.Event()
        self.gate = threading.Event()
        self.stuck = threading.Event()  # the first batch is being written
        self.lines: list[Event] = []
        self.skips: list[int] = []
        self.summary: Stopped | None = None
        self.wrote = threading.Condition()  # notified at every batch and every skip notice

    def listening(self, info: Listening) -> None:
        self.port = info.port
        self.ready.set()

    def events(self, batch: Sequence[tuple[Event, str | None]]) -> None:
        self.stuck.set()
        assert self.gate.wait(WAIT * 2)
        with self.wrote:
            self.lines += [event for event, _ in batch]
            self.wrote.notify_all()

    def skipped(self, count: int) -> None:
        with self.wrote:
            self.skips.append(count)
            self.wrote.notify_all()

    def wait_for_messages(self, count: int) -> bool:
        """Until `count` chat lines were written or said skipped (False after WAIT s)."""
        with self.wrote:
            return self.wrote.wait_for(
                lambda: sum(isinstance(e, Chat) for e in self.lines) + sum(self.skips) >= count,
                WAIT,
            )

    def advertisement(self, state: Any) -> None:
        pass

    def refused(self, refusal: Refusal) -> None:
        pass

    def stopped(self, summary: Stopped) -> None:
        self.summary = summary


def flood_while_the_log_is_stuck(log: StuckLog, lines: int, failures: list[str]) -> None:
    """The test's side: a sender and a receiver; every line reaches the receiver while the log
    is stuck; then the log is let go, and the server stopped once it has caught up."""
    try:
        assert log.ready.wait(WAIT) and log.port is not None
        with (
            socket.create_connection(("127.0.0.1", log.port), timeout=WAIT) as receiver,
            socket.create_connection(("127.0.0.1", log.port), timeout=WAIT) as sender,
        ):
            got, deadline = b"", time.monotonic() + WAIT
            while b"here" not in got and time.monotonic() < deadline:  # its welcome and who
                chunk = receiver.recv(65536)  # (timeout WAIT per read)
                assert chunk, "the receiver was disconnected"
                got += chunk
            sender.sendall(b"first\n")
            assert log.stuck.wait(WAIT)  # the log is stuck writing its first batch
            sender.sendall(b"".join(b"line %d\n" % i for i in range(lines)))
            got, deadline = b"", time.monotonic() + WAIT
            while got.count(b"line ") < lines and time.monotonic() < deadline:
                chunk = receiver.recv(65536)  # (timeout WAIT per read)
                assert chunk, "the receiver was disconnected"
                got += chunk
            assert got.count(b"line ") == lines, "the room waited for the log"
            log.gate.set()
            assert log.wait_for_messages(lines + 1), "the log never caught up"
    except Exception as e:  # reported by the test in the main thread
        failures.append(repr(e))
    finally:
        log.gate.set()
        if log.ready.is_set():  # (run_server's SIGTERM handler is in place)
            os.kill(os.getpid(), signal.SIGTERM)  # run_server, in the main thread, stops


def test_a_stuck_log_skips_lines_counts_them_and_never_holds_up_the_room(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(serving, "LOG_QUEUE", 100)
    log = StuckLog()
    failures: list[str] = []
    lines = 3000
    driver = threading.Thread(target=flood_while_the_log_is_stuck, args=(log, lines, failures))
    # run_server ignores Ctrl-C while it stops (and leaves it so: `lanchat serve` exits next);
    # an ignored SIGINT would be inherited by every process the later tests start.
    sigint = signal.getsignal(signal.SIGINT)
    driver.start()
    try:
        options = ServeOptions(
            host="127.0.0.1", port=0, mdns=False, one_core=False, max_rate=0, qr=False
        )
        summary = run_server(options, log)  # here, in the main thread: it owns the signals
    finally:
        signal.signal(signal.SIGINT, sigint)
        driver.join(WAIT * 4)
    assert failures == []
    chats = [e for e in log.lines if isinstance(e, Chat)]
    skipped = sum(log.skips)
    assert skipped > 0 and log.skips  # said at the time
    assert len(chats) + skipped == lines + 1  # every message either written or counted
    assert summary.log_lines_dropped == skipped  # and said at the end
    assert log.summary == summary
    assert chats[0].text == "first"
    numbers = [int(c.text.split()[1]) for c in chats[1:]]
    assert numbers == sorted(numbers)  # in order, with a gap where the log skipped
