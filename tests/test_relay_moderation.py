"""Moderation through a real relay: an operator (made one in-process with Hub.promote) kicks,
mutes, bans and sets the topic over real sockets, from lanchat, raw and browser-kind clients;
anyone else is refused; a banned address is refused at accept; `lanchat join` ends for good when
it is removed; `lanchat status` shows what holds."""

from __future__ import annotations

import io
import json
import socket
import subprocess
from collections.abc import Iterator
from typing import Any

import pytest

from conftest import WAIT, LineClient, run_lanchat
from lanchat.errors import ExitCode
from lanchat.fanout import Client
from lanchat.relay import Relay


@pytest.fixture
def relay() -> Iterator[Relay]:
    """A relay on 127.0.0.1, which takes connections from any 127/8 source address."""
    server = Relay("127.0.0.1", 0, history=5)
    server.start()
    yield server
    server.stop()
    assert server.readers == 0, "reader threads left running after stop()"


@pytest.fixture
def clients() -> Iterator[list[LineClient]]:
    opened: list[LineClient] = []
    yield opened
    for client in opened:
        client.close()


def open_from(relay: Relay, opened: list[LineClient], source: str = "127.0.0.1") -> LineClient:
    """A LineClient whose connection comes from `source` (any 127/8 address is this machine's)."""
    client = LineClient.__new__(LineClient)
    client.sock = socket.create_connection(
        ("127.0.0.1", relay.address[1]), WAIT, source_address=(source, 0)
    )
    client._buffer = b""
    client.lines = []
    opened.append(client)
    return client


def member(relay: Relay, name: str) -> Client:
    """The relay's Client for the member called `name`."""
    return next(c for c in relay.hub.fanout.clients if c.name == name)


def operator(relay: Relay, opened: list[LineClient], name: str = "teacher") -> LineClient:
    client = open_from(relay, opened)
    assert client.hello(name)["type"] == "welcome"
    relay.hub.promote(member(relay, name))
    client.wait_json(lambda f: f["type"] == "moderation" and f["name"] == name)
    return client


def raw_client(relay: Relay, opened: list[LineClient], source: str = "127.0.0.1") -> LineClient:
    """A raw client (ncat), announced by its first line."""
    client = open_from(relay, opened, source)
    client.wait_line("Type a line")
    return client


def test_only_an_operator_moderates_and_everyone_sees_what_they_do(
    relay: Relay, clients: list[LineClient]
) -> None:
    teacher = operator(relay, clients)
    bob = open_from(relay, clients)
    bob.hello("bob")
    carol = raw_client(relay, clients)
    carol.send("hi, I am carol\n")
    bob.wait_json(lambda f: f.get("text") == "hi, I am carol")
    # Not an operator: a private refusal, and nothing else happens.
    bob.send_json({"type": "kick", "name": "teacher"})
    refusal = bob.wait_json(lambda f: f["type"] == "error")
    assert (refusal["code"], refusal["message"]) == (
        "not-operator",
        "Only an operator can use /kick.",
    )
    carol.send("/topic hijacked\n")
    assert carol.wait_line("!") == "! Only an operator can use /topic."
    # The topic: told to everyone, asked for by anyone, in a newcomer's welcome.
    teacher.send_json({"type": "topic", "text": "Fractions, page 12"})
    told = bob.wait_json(lambda f: f["type"] == "moderation")
    assert (told["action"], told["by"], told["topic"]) == ("topic", "teacher", "Fractions, page 12")
    assert carol.wait_line("set the topic") == "* teacher set the topic: Fractions, page 12"
    carol.send("/topic\n")
    assert carol.wait_line("Topic:") == "* Topic: Fractions, page 12 (set by teacher)"
    late = open_from(relay, clients)
    assert late.hello("late")["topic"] == "Fractions, page 12"
    # A mute, from a raw operator command this time: the muted line goes nowhere.
    relay.hub.promote(member(relay, "guest-1"))  # carol may moderate too (as raw client)
    carol.send("/mute bob 3\n")
    muted = teacher.wait_json(lambda f: f["type"] == "moderation" and f["action"] == "mute")
    assert (muted["name"], muted["by"], muted["minutes"]) == ("bob", "guest-1", 3)
    assert muted["text"] == "bob is muted for 3 minutes by guest-1"
    bob.send_json({"type": "message", "text": "can anyone hear me"})
    reply = bob.wait_json(lambda f: f["type"] == "error")
    assert reply["code"] == "muted" and "3 more minutes" in reply["message"]
    teacher.send_json({"type": "message", "text": "after the mute"})
    assert carol.wait_line("after the mute").endswith("<teacher> after the mute")
    seen = [json.loads(line) for line in teacher.lines]
    assert not any(f.get("text") == "can anyone hear me" for f in seen)
    status = relay.status()["moderation"]
    assert status["operators"] == ["teacher", "guest-1"]
    assert [m["name"] for m in status["muted"]] == ["bob"] and status["topic_by"] == "teacher"
    teacher.send_json({"type": "unmute", "name": "bob"})
    assert carol.wait_line("can speak again") == "* bob can speak again (unmuted by teacher)"
    # A kick: the room is told, the member reads why and is hung up on.
    teacher.send_json({"type": "kick", "name": "BOB", "reason": "spamming"})
    assert carol.wait_line("removed") == "* bob was removed by teacher: spamming"
    rest = [json.loads(line) for line in bob.read_all()]
    assert rest[-1] == {
        "type": "bye",
        "seq": rest[-1]["seq"],
        "time": rest[-1]["time"],
        "reason": "kicked",
        "message": "You were removed from the room by teacher: spamming.",
    }
    left = teacher.wait_json(lambda f: f["type"] == "leave")
    assert (left["name"], left["reason"]) == ("bob", "kicked")


def test_a_ban_hangs_up_on_the_address_and_refuses_it_at_accept(
    relay: Relay, clients: list[LineClient]
) -> None:
    teacher = operator(relay, clients)
    eve = open_from(relay, clients, "127.0.0.2")
    eve.hello("eve")
    eve_raw = raw_client(relay, clients, "127.0.0.2")  # eve's second window
    eve_raw.send("me too\n")
    teacher.wait_json(lambda f: f.get("text") == "me too")
    other = raw_client(relay, clients, "127.0.0.3")
    other.send("hello\n")
    teacher.wait_json(lambda f: f.get("text") == "hello")
    relay.refusals.take()
    teacher.send_json({"type": "ban", "name": "eve", "reason": "insults"})
    told = other.wait_line("banned")
    assert told == (
        "* eve was banned by teacher (and 1 other connection from the same address): insults"
    )
    assert eve_raw.read_all()[-1] == (
        "! You were banned from the room by teacher: insults. Your address cannot connect again "
        "until the server restarts or an operator lifts the ban."
    )
    assert json.loads(eve.read_all()[-1])["reason"] == "banned"
    again = open_from(relay, clients, "127.0.0.2")
    assert again.read_all() == [
        "! Your address (127.0.0.2) was banned from this room by an operator, until the server "
        "restarts or an operator lifts the ban."
    ]
    assert [(r.address, r.reason) for r in relay.refusals.take()] == [("127.0.0.2", "banned")]
    still = raw_client(relay, clients, "127.0.0.3")  # another address is not touched
    still.send("still here\n")
    teacher.wait_json(lambda f: f.get("text") == "still here")
    (ban,) = relay.status()["moderation"]["bans"]
    assert (ban["address"], ban["name"], ban["by"], ban["reason"]) == (
        "127.0.0.2",
        "eve",
        "teacher",
        "insults",
    )
    # A ban lifted (as a raw operator would type it): the address is let in again at accept.
    teacher.send_json({"type": "unban", "target": "eve"})
    assert other.wait_line("unbanned") == "* eve's address may connect again (unbanned by teacher)"
    back = open_from(relay, clients, "127.0.0.2")
    assert back.hello("eve")["type"] == "welcome"
    assert relay.status()["moderation"]["bans"] == []
    teacher.send_json({"type": "ban", "name": "eve", "reason": "again"})
    other.wait_line("eve was banned by teacher")
    # 127.0.0.1 is where the server's own programs connect from: it cannot be banned.
    local = raw_client(relay, clients)
    name = local.lines[0].removeprefix("* Welcome to lobby, ").rstrip(".")
    local.send("from the server's own PC\n")
    teacher.wait_json(lambda f: f.get("text") == "from the server's own PC")
    teacher.send_json({"type": "ban", "name": name})
    refusal = teacher.wait_json(lambda f: f["type"] == "error")
    assert refusal["code"] == "cannot-ban" and f"Use /kick {name}" in refusal["message"]
    assert len(relay.status()["moderation"]["bans"]) == 1


def test_status_shows_what_operators_did(relay: Relay, clients: list[LineClient]) -> None:
    teacher = operator(relay, clients)
    bob = open_from(relay, clients, "127.0.0.2")
    bob.hello("bob")
    teacher.send("/mute bob 5\n")  # a lanchat client's line is JSON: this one is a bad frame
    teacher.wait_json(lambda f: f["type"] == "error")
    for request in (
        {"type": "mute", "name": "bob", "minutes": 5},
        {"type": "topic", "text": "Quiz at ten"},
    ):
        teacher.send_json(request)
        teacher.wait_json(
            lambda f, r=request: f["type"] == "moderation" and f["action"] == r["type"]
        )
    result = run_lanchat("status", "--port", str(relay.address[1]), "--json")
    moderation = json.loads(result.stdout)["moderation"]
    assert moderation["operators"] == ["teacher"] and moderation["topic"] == "Quiz at ten"
    assert [(m["name"], m["by"]) for m in moderation["muted"]] == [("bob", "teacher")]
    text = run_lanchat("status", "--port", str(relay.address[1])).stdout
    assert "Topic: Quiz at ten (set by teacher)" in text
    assert "Operators: teacher" in text and "Muted: bob until" in text


def test_lanchat_join_that_is_kicked_says_so_and_does_not_come_back(
    relay: Relay, clients: list[LineClient], lanchat_process: Any
) -> None:
    teacher = operator(relay, clients)
    join = lanchat_process(
        "join", f"127.0.0.1:{relay.address[1]}", "--name", "pupil", "--json",
        "--reconnect", "30", stdin=subprocess.PIPE,
    )  # fmt: skip
    join.wait_json(lambda f: f["type"] == "welcome")
    teacher.wait_json(lambda f: f["type"] == "join" and f["name"] == "pupil")
    teacher.send_json({"type": "kick", "name": "pupil", "reason": "go and do your homework"})
    bye = join.wait_json(lambda f: f["type"] == "bye")
    assert bye["reason"] == "kicked"
    assert join.proc.wait(WAIT) == ExitCode.REJECTED  # while its input is still open
    stderr = join.stderr()
    assert "removed from the room by teacher: go and do your homework" in stderr
    assert "Reconnecting" not in stderr and "reconnecting" not in stderr
    assert all(
        c.name != "pupil" for c in relay.hub.fanout.clients if c.close_reason is None
    )  # it did not come back


def test_lanchat_join_that_is_muted_ends_with_its_lines_counted(
    relay: Relay, clients: list[LineClient], lanchat_process: Any
) -> None:
    teacher = operator(relay, clients)
    join = lanchat_process(
        "join", f"127.0.0.1:{relay.address[1]}", "--name", "pupil", "--json",
        stdin=subprocess.PIPE,
    )  # fmt: skip
    join.wait_json(lambda f: f["type"] == "welcome")
    teacher.send_json({"type": "mute", "name": "pupil", "minutes": 2})
    join.wait_json(lambda f: f["type"] == "moderation" and f["action"] == "mute")
    assert join.proc.stdin is not None
    join.proc.stdin.write("nobody hears this\n")
    join.proc.stdin.close()
    reply = join.wait_json(lambda f: f["type"] == "error")
    assert reply["code"] == "muted"
    assert join.proc.wait(WAIT) == ExitCode.REJECTED  # not a 10 s wait for an echo
    assert "1 line(s) were not relayed: an operator muted us" in join.stderr()


def test_the_serve_log_has_a_line_for_every_moderation(
    relay: Relay, clients: list[LineClient], capsys: pytest.CaptureFixture[str]
) -> None:
    from rich.console import Console

    from lanchat.netinfo import endpoint_text
    from lanchat.output.serve import JsonServeLog, TextServeLog

    text = io.StringIO()
    logs = [TextServeLog(Console(file=text, width=200, color_system=None)), JsonServeLog()]
    # As `lanchat serve` hands events to its log (lanchat/serving.py), but without the queue.
    relay.hub.listeners.append(
        lambda event, client: [
            log.events([(event, endpoint_text(client.address) if client is not None else None)])
            for log in logs
        ]
    )
    teacher = operator(relay, clients)
    bob = open_from(relay, clients, "127.0.0.2")
    bob.hello("bob")
    teacher.send_json({"type": "mute", "name": "bob", "minutes": 4})
    teacher.send_json({"type": "kick", "name": "bob", "reason": "spam"})
    teacher.wait_json(lambda f: f["type"] == "leave")
    lines = text.getvalue().splitlines()
    port = teacher.sock.getsockname()[1]
    assert f"* bob is muted for 4 minutes by teacher (from 127.0.0.1:{port})" in lines
    assert f"* bob was removed by teacher: spam (from 127.0.0.1:{port})" in lines
    assert "* teacher is now an operator" in lines  # the server's own doing: no address
    events = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    kick = next(e for e in events if e.get("action") == "kick")
    assert kick["event"] == "moderation" and kick["address"] == f"127.0.0.1:{port}"
    assert (kick["name"], kick["by"], kick["reason"]) == ("bob", "teacher", "spam")
    assert [e["event"] for e in events if e.get("name") == "bob"][-3:] == [
        "moderation",
        "moderation",
        "leave",
    ]
