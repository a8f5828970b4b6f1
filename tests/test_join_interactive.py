"""`lanchat join` at a terminal (a real pseudo-terminal): typing while messages arrive, and
reconnecting when the server goes away and comes back."""

from __future__ import annotations

import os
import select
import subprocess
import sys
import time

import pytest

from conftest import ROOT, WAIT, LineClient, check_mdns_safe, lanchat_env
from lanchat.relay import Relay

pty = pytest.importorskip("pty", reason="pseudo-terminals are POSIX-only")


class Terminal:
    """A process on a pseudo-terminal, and everything it has written to the screen."""

    def __init__(self, *args: str) -> None:
        check_mdns_safe(args, host=None)  # this terminal lives in the root namespace
        self.master, slave = pty.openpty()
        env = {**lanchat_env(), "TERM": "xterm"}
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "lanchat", *args],
            stdin=slave,
            stdout=slave,
            stderr=slave,
            env=env,
            cwd=ROOT,
            close_fds=True,
        )
        os.close(slave)
        self.screen = b""

    def wait_for(self, text: bytes, timeout: float = WAIT) -> None:
        deadline = time.monotonic() + timeout
        while text not in self.screen:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError(f"{text!r} not on screen; last output {self.screen[-300:]!r}")
            ready, _, _ = select.select([self.master], [], [], remaining)
            if ready:
                try:
                    self.screen += os.read(self.master, 65536)
                except OSError:  # the process ended and the terminal closed
                    raise EOFError(f"terminal closed; last output {self.screen[-300:]!r}") from None

    def type(self, keys: bytes) -> None:
        os.write(self.master, keys)

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(WAIT)
        os.close(self.master)


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
