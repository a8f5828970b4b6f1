"""Hostile input against a real relay: one client's bytes must never cost anyone else their
connection, a slot or a message (docs/reliability.md lists the promises)."""

from __future__ import annotations

import json
import socket
from typing import Any

import psutil

from conftest import WAIT, LineClient
from lanchat.protocol import Chat, Event
from lanchat.relay import Relay

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


def test_an_internal_error_costs_one_connection_and_leaves_no_ghost(
    relay: Relay, connect: Any
) -> None:
    """A bug while handling one client's line ends that connection, tells the room it left,
    and frees its name and slot; the others go on."""

    def faulty(event: Event, _client: object) -> None:
        if isinstance(event, Chat) and event.text == "trigger a bug":
            raise RuntimeError("a bug in a listener")

    relay.hub.listeners.append(faulty)
    alice, bob = connect(), connect()
    alice.hello("alice")
    bob.hello("bob")
    alice.send_json({"type": "message", "text": "trigger a bug"})
    left = bob.wait_json(lambda f: f["type"] == "leave")
    assert left["name"] == "alice" and left["count"] == 1
    assert [c.name for c in relay.room.members] == ["bob"]
    again = connect()
    assert again.hello("alice")["name"] == "alice"  # the name is free again


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
