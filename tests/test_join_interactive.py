"""`lanchat join` at a terminal (a real pseudo-terminal): typing while messages arrive, and
reconnecting when the server goes away and comes back."""

from __future__ import annotations

import pytest

from conftest import WAIT, LineClient, Terminal
from lanchat.errors import ExitCode
from lanchat.relay import Relay

pytest.importorskip("pty", reason="pseudo-terminals are POSIX-only")


def test_typing_while_messages_arrive_and_reconnecting() -> None:
    relay = Relay("127.0.0.1", 0)
    relay.start()
    port = relay.address[1]
    other = LineClient(port)
    other.hello("other")
    term = Terminal("join", f"127.0.0.1:{port}", "--name", "tty")
    try:
        term.wait_for(b"/quit")  # the help line under the prompt: the session is up
        term.type(b"hello from the tty\r")
        assert other.wait_json(lambda f: f["type"] == "message")["text"] == "hello from the tty"
        term.type(b"half typ")  # a line being typed ...
        other.send_json({"type": "message", "text": "incoming while typing"})
        term.wait_for(b"incoming while typing")  # ... while a message arrives above it
        term.type(b"ed\r")
        frame = other.wait_json(lambda f: f["type"] == "message" and f["from"] == "tty")
        assert frame["text"] == "half typed"  # the input line came through whole
        other.close()
        relay.stop()
        term.wait_for(b"Reconnecting")
        relay = Relay("127.0.0.1", port)  # the server comes back on the same port
        relay.start()
        term.wait_for(b"Reconnected to 127.0.0.1", timeout=2 * WAIT)
        back = LineClient(port)
        back.hello("back")
        term.type(b"after the restart\r")
        assert back.wait_json(lambda f: f["type"] == "message")["text"] == "after the restart"
        term.type(b"/quit\r")
        assert term.proc.wait(WAIT) == 0
        back.close()
    finally:
        term.close()
        relay.stop()


def test_a_kicked_terminal_says_why_and_ends_without_a_key_pressed() -> None:
    relay = Relay("127.0.0.1", 0)
    relay.start()
    port = relay.address[1]
    teacher = LineClient(port)
    teacher.hello("teacher")
    relay.hub.promote(next(c for c in relay.hub.fanout.clients if c.name == "teacher"))
    term = Terminal("join", f"127.0.0.1:{port}", "--name", "tty")
    try:
        term.wait_for(b"tty>")  # the prompt runs: the kick must end it from outside
        term.type(b"half a li")  # being typed when the kick comes
        term.wait_for(b"half a li")
        teacher.wait_json(lambda f: f["type"] == "join" and f["name"] == "tty")
        teacher.send_json({"type": "kick", "name": "tty", "reason": "enough"})
        term.wait_for(b"removed from the room by teacher: enough")
        assert term.proc.wait(WAIT) == ExitCode.REJECTED
        term.wait_for(b"error:")  # said once more, as the program's last words
        assert b"Reconnecting" not in term.screen
    finally:
        term.close()
        teacher.close()
        relay.stop()
