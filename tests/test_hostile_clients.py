"""Hostile input against a real relay: one client's bytes must never cost anyone else their
connection, a slot or a message (docs/reliability.md lists the promises)."""

from __future__ import annotations

import json
import socket
from typing import Any

import psutil

from conftest import WAIT, LineClient
from lanchat.protocol import Event
from lanchat.relay import Relay
from lanchat.room import Item, Output, Room

LONE_SURROGATE_MESSAGE = b'{"type":"message","text":"x\\ud800y"}\n'


def test_a_lone_surrogate_does_not_lock_newcomers_out(relay: Relay, connect: Any) -> None:
    """The message took a seq number and went into history, then killed every reader that
    encoded it: the sender's, and each newcomer's at the history replay (left as ghosts)."""
    alice = connect()
    alice.hello("alice")
    alice.send(LONE_SURROGATE_MESSAGE)
    echo = alice.wait_json(lambda f: f["type"] == "message")
    assert echo["text"] == "x\ufffdy"
    bob = connect()
    assert bob.hello("bob")["history"] == 1
    replay = bob.wait_json(lambda f: f["type"] == "message")
    assert replay["text"] == "x\ufffdy" and replay["history"] is True
    raw = connect()
    raw.send("hello from a terminal\n")
    raw.wait_line("* End of history.")
    assert any("<alice> x\ufffdy" in line for line in raw.lines)
    # Everyone is still connected and no ghost holds a slot: the next line reaches all three.
    alice.send_json({"type": "message", "text": "still here"})
    for reader in (bob, alice):
        assert reader.wait_json(lambda f: f.get("text") == "still here")["from"] == "alice"
    raw.wait_line("<alice> still here")
    assert sorted(c.name for c in relay.room.members) == sorted(["alice", "bob", raw_name(raw)])


def raw_name(raw: LineClient) -> str:
    welcome = next(line for line in raw.lines if line.startswith("* Welcome to"))
    return welcome.rsplit(", ", 1)[1].rstrip(".")


def test_a_lone_surrogate_in_a_ping_token_gets_a_pong(connect: Any) -> None:
    alice = connect()
    alice.hello("alice")
    alice.send(b'{"type":"ping","token":"\\udc00"}\n')
    assert alice.wait_json(lambda f: f["type"] == "pong")["token"] == "\ufffd"


def test_a_lone_surrogate_in_the_hello_client_field_keeps_status_working(
    relay: Relay, connect: Any
) -> None:
    alice = connect()
    alice.send(b'{"type":"hello","version":1,"name":"alice","client":"evil\\ud800"}\n')
    alice.wait_json(lambda f: f["type"] == "welcome")
    asker = connect()
    asker.send_json({"type": "status", "version": 1})
    status = json.loads(asker.read_line() or "")
    programs = {c["name"]: c["program"] for c in status["connections"]}
    assert programs["alice"] == "evil\ufffd"


class FaultyRoom(Room):
    """The room with a bug: a line "trigger a bug" makes it raise (a fault to inject)."""

    def handle(self, member_id: int, items: list[Item]) -> list[Output]:
        if "trigger a bug" in items:
            raise RuntimeError("a bug in the room")
        return super().handle(member_id, items)


def test_an_internal_error_costs_one_connection_and_leaves_no_ghost() -> None:
    """A bug while handling one client's line ends that connection, tells the room it left,
    and frees its name and slot; the others go on."""
    relay = Relay("127.0.0.1", 0)
    relay.hub.room = FaultyRoom(history=5)
    relay.start()
    try:
        alice, bob = LineClient(relay.address[1]), LineClient(relay.address[1])
        alice.hello("alice")
        bob.hello("bob")
        raw = LineClient(relay.address[1])
        raw.send("trigger a bug\n")  # a raw client's first line is a message: the bug
        left = bob.wait_json(lambda f: f["type"] == "leave")
        assert left["name"].startswith("guest-") and left["reason"] == "lost"
        assert sorted(m.name for m in relay.room.members) == ["alice", "bob"]
        again = LineClient(relay.address[1])
        again.send("hello again\n")
        assert bob.wait_json(lambda f: f["type"] == "join")["name"].startswith("guest-")
        for client in (alice, bob, raw, again):
            client.close()
    finally:
        relay.stop()
    assert relay.readers == 0


def test_a_failing_event_listener_costs_nobody_anything(relay: Relay, connect: Any) -> None:
    """A listener (the serve log) that raises on every event: before, a raise on a leave left
    the member gone from the room but never hung up on (a ghost connection)."""

    def broken(event: Event, _client: object) -> None:
        raise RuntimeError("a broken log")

    relay.hub.listeners.append(broken)
    alice, bob = connect(), connect()
    alice.hello("alice")
    bob.hello("bob")
    alice.send_json({"type": "message", "text": "hi"})
    assert bob.wait_json(lambda f: f["type"] == "message")["text"] == "hi"
    alice.send_json({"type": "bye"})
    assert alice.read_all()  # its goodbye, then the end of the stream
    assert bob.wait_json(lambda f: f["type"] == "leave")["name"] == "alice"
    assert [m.name for m in relay.room.members] == ["bob"]


def test_a_client_that_never_reads_but_keeps_asking_is_dropped_and_memory_stays_bounded(
    relay: Relay, connect: Any
) -> None:
    """Replies to one client were unbounded: pings with 4 KB tokens and /who from a client
    that never reads grew the server by ~37 MB/s, and it was never dropped."""
    process = psutil.Process()
    watcher = connect()
    watcher.hello("watcher")
    spammer = LineClient(relay.address[1])
    spammer.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # and it never reads
    spammer.hello("spammer")
    rss_before = process.memory_info().rss
    ping = json.dumps({"type": "ping", "token": "t" * 4000}).encode() + b"\n"
    burst = (ping + b'{"type":"who"}\n') * 64
    sent = 0
    spammer.sock.settimeout(WAIT)
    try:
        while sent < 200 * 1024 * 1024:  # 200 MB of requests at most
            spammer.sock.sendall(burst)
            sent += len(burst)
    except OSError:
        pass  # the relay hung up on it: what should happen
    left = watcher.wait_json(lambda f: f["type"] == "leave", timeout=2 * WAIT)
    assert left["name"] == "spammer" and left["reason"] == "too-slow"
    grown = process.memory_info().rss - rss_before
    assert grown < 64 * 1024 * 1024, f"the relay grew by {grown / 1e6:.0f} MB"
    watcher.send_json({"type": "message", "text": "still fine"})
    assert watcher.wait_json(lambda f: f["type"] == "message")["text"] == "still fine"
    spammer.close()
