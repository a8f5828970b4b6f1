"""`lanchat join` to a server that is not a lanchat relay (the classroom's `ncat -l`,
`ncat --chat`, anything that reads and writes lines): it says so once and goes on as a plain
line client; only a server that greeted like a relay receives lanchat's JSON hello, so a silent
one and one that talks first receive nothing but the lines typed."""

from __future__ import annotations

import contextlib
import json
import socket
import subprocess
import threading
from collections.abc import Iterator
from typing import Any

import pytest

from conftest import WAIT, LineClient, ncat_path
from lanchat.client import GREETING_WAIT_SECONDS, Connection, HandshakeFailed
from lanchat.errors import ExitCode
from lanchat.protocol import Resume
from lanchat.relay import Relay

NOT_A_RELAY = "is not a lanchat relay: chatting as a plain line client"
needs_ncat = pytest.mark.skipif(ncat_path() is None, reason="ncat is not installed")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Talker:
    """A line server in a thread that greets each newcomer first, as ncat --chat does, and
    records every byte it receives."""

    def __init__(self, greeting: bytes) -> None:
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.listener.settimeout(WAIT)
        self.port = int(self.listener.getsockname()[1])
        self.received = b""
        self.done = threading.Event()
        self.thread = threading.Thread(target=self._serve, args=(greeting,))
        self.thread.start()

    def _serve(self, greeting: bytes) -> None:
        try:
            conn, _ = self.listener.accept()
        except OSError:
            self.done.set()
            return
        with conn:
            conn.settimeout(WAIT)
            conn.sendall(greeting)
            try:
                while data := conn.recv(4096):
                    self.received += data
            except OSError:
                pass
        self.done.set()

    def close(self) -> None:
        self.listener.close()
        self.thread.join(WAIT)


@pytest.fixture
def talker() -> Iterator[Any]:
    made: list[Talker] = []

    def make(greeting: bytes) -> Talker:
        made.append(Talker(greeting))
        return made[-1]

    yield make
    for t in made:
        t.close()


@pytest.mark.parametrize("greeting", [b"SSH-2.0-OpenSSH_9.2\r\n", b"<announce> welcome\n"])
def test_a_server_that_talks_first_gets_our_lines_and_no_hello(
    talker: Any, lanchat_process: Any, greeting: bytes
) -> None:
    server = talker(greeting)
    join = lanchat_process("join", f"127.0.0.1:{server.port}", stdin=subprocess.PIPE)
    join.proc.stdin.write("hello, plain server\n")
    join.proc.stdin.close()
    assert join.wait_line(lambda line: line == greeting.decode().rstrip("\r\n"))
    assert join.proc.wait(WAIT) == ExitCode.OK
    assert server.done.wait(WAIT)
    assert server.received == b"hello, plain server\n"  # no JSON hello before it
    err = join.stderr()
    assert err.count(NOT_A_RELAY) == 1
    assert "Traceback" not in err


@pytest.mark.ncat
@needs_ncat
def test_join_chats_in_an_ncat_chat_room_without_a_json_line(lanchat_process: Any) -> None:
    port = free_port()
    broker = subprocess.Popen(
        [str(ncat_path()), "--chat", "-l", "127.0.0.1", str(port)],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        other = _connect_when_listening(port)
        other.wait_line(lambda line: "already connected" in line)
        join = lanchat_process("join", f"127.0.0.1:{port}", stdin=subprocess.PIPE)
        join.wait_line(lambda line: "already connected" in line)  # the broker's own greeting
        other.wait_line(lambda line: "is connected as" in line)
        other.send("hi lanchat\n")
        assert join.wait_line(lambda line: line.endswith("hi lanchat"))
        join.proc.stdin.write("hi ncat\n")
        join.proc.stdin.flush()
        said = other.wait_line(lambda line: "hi ncat" in line)
        assert said.endswith("> hi ncat")  # "<user5> hi ncat"
        join.proc.stdin.close()
        assert join.proc.wait(WAIT) == ExitCode.OK
        assert not [line for line in other.lines if '"type"' in line]  # no hello in the room
        err = join.stderr()
        assert err.count(NOT_A_RELAY) == 1
        assert "received lanchat's hello" not in err
        other.close()
    finally:
        broker.terminate()
        broker.wait(WAIT)


@pytest.mark.ncat
@needs_ncat
def test_join_chats_with_a_plain_ncat_listen_server(lanchat_process: Any) -> None:
    port = free_port()
    server = subprocess.Popen(
        [str(ncat_path()), "-l", "127.0.0.1", str(port)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert server.stdin is not None and server.stdout is not None
    try:
        _wait_listening(port)
        join = lanchat_process("join", f"127.0.0.1:{port}", stdin=subprocess.PIPE)
        join.proc.stdin.write("hello from lanchat\n")
        join.proc.stdin.flush()
        lines = _read_until(server.stdout, "hello from lanchat")
        # ncat -l says nothing first, unlike a relay (docs/protocol.md): it got no hello.
        assert lines == ["hello from lanchat"]
        server.stdin.write("hello from the ncat side\n")
        server.stdin.flush()
        assert join.wait_line(lambda line: line == "hello from the ncat side")
        join.proc.stdin.close()
        assert join.proc.wait(WAIT) == ExitCode.OK
        err = join.stderr()
        assert err.count(NOT_A_RELAY) == 1
        assert "received lanchat's hello" not in err
    finally:
        server.kill()
        server.wait(WAIT)


def test_a_silent_server_receives_only_our_lines(talker: Any, lanchat_process: Any) -> None:
    server = talker(b"")  # says nothing first, as `ncat -l` does
    join = lanchat_process("join", f"127.0.0.1:{server.port}", stdin=subprocess.PIPE)
    join.proc.stdin.write("hello, silent server\n")
    join.proc.stdin.close()
    assert join.proc.wait(WAIT) == ExitCode.OK
    assert server.done.wait(WAIT)
    assert server.received == b"hello, silent server\n"  # no JSON hello before it
    err = join.stderr()
    assert err.count(NOT_A_RELAY) == 1 and "received lanchat's hello" not in err


@pytest.mark.ncat
@needs_ncat
def test_a_plain_ncat_listen_server_receives_nothing_from_join(lanchat_process: Any) -> None:
    port = free_port()
    server = subprocess.Popen(
        [str(ncat_path()), "-l", "127.0.0.1", str(port)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        _wait_listening(port)
        join = lanchat_process("join", f"127.0.0.1:{port}", stdin=subprocess.DEVNULL)
        assert join.proc.wait(WAIT) == ExitCode.OK  # nothing to say: it leaves
        received, _ = server.communicate(timeout=WAIT)  # ncat -l ends with its one connection
        assert received == ""
        assert join.stderr().count(NOT_A_RELAY) == 1
    finally:
        if server.poll() is None:
            server.kill()
            server.wait(WAIT)


def test_a_relay_is_joined_as_before(relay: Relay, connect: Any, lanchat_process: Any) -> None:
    watcher = connect()
    watcher.send("watching\n")  # said something: present, and counted
    watcher.wait_line(lambda line: line.startswith("* 1 here"))
    join = lanchat_process(
        "join", f"127.0.0.1:{relay.address[1]}", "--name", "ana", stdin=subprocess.PIPE
    )
    join.proc.stdin.write("hello room\n")
    join.proc.stdin.close()
    assert join.proc.wait(WAIT) == ExitCode.OK
    # The relay greeted it as raw (it waited for that), then its hello made it a lanchat
    # client: it shows only the lanchat greeting, with the history replayed once.
    seen = join.rest()
    assert seen[0] == "* Welcome to lobby, ana."
    assert len([line for line in seen if line.endswith("<guest-1> watching")]) == 1
    assert not [line for line in seen if "Last 1 message" in line or "of history" in line]
    watcher.wait_line(lambda line: line.endswith("<ana> hello room"))
    watcher.wait_line(lambda line: line.startswith("* ana left"))
    joined = [line for line in watcher.lines if "guest-1" not in line and "here)" in line]
    joined += [line for line in watcher.lines if "known as" in line]
    assert joined == ["* ana joined (2 here)", "* ana left (1 here)"]  # no guest, no rename
    assert NOT_A_RELAY not in join.stderr()


def test_a_full_relay_is_a_refusal_not_a_line_server(lanchat_process: Any) -> None:
    """join waits for the relay's greeting; a full relay greets with its refusal line instead."""
    relay = Relay("127.0.0.1", 0, max_clients=1)
    relay.start()
    try:
        inside = LineClient(relay.address[1])
        inside.send("I am in\n")  # said something: present, never let go for a newcomer
        inside.wait_line("* Welcome")
        join = lanchat_process("join", f"127.0.0.1:{relay.address[1]}", stdin=subprocess.PIPE)
        join.proc.stdin.close()
        assert join.proc.wait(WAIT) == ExitCode.REJECTED
        err = join.stderr()
        assert "refused to let us in: The server is full (1 person)" in err
        assert NOT_A_RELAY not in err
        inside.close()
    finally:
        relay.stop()


def test_a_reconnect_sends_its_hello_at_once() -> None:
    """Only a typed address waits for the server to speak: a reconnect (a relay answered
    before) and a discovered server say hello first, so a resume loses no time."""
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(WAIT)
    first: list[bytes] = []

    def serve() -> None:
        with contextlib.suppress(OSError):
            conn, _ = listener.accept()
            with conn:
                conn.settimeout(WAIT)
                first.append(conn.makefile("rb").readline())  # then hang up, saying nothing

    thread = threading.Thread(target=serve)
    thread.start()
    try:
        port = listener.getsockname()[1]
        resume = Resume("790e8cc83f7b0df3", 41)
        with pytest.raises(HandshakeFailed):
            Connection.open("127.0.0.1", port, name="ana", exact=True, resume=resume)
    finally:
        thread.join(WAIT)
        listener.close()
    hello = json.loads(first[0])
    assert hello["type"] == "hello" and hello["resume"] == {"epoch": "790e8cc83f7b0df3", "seq": 41}


def _wait_listening(port: int) -> None:
    """Wait for a listener by asking the kernel's socket table (connecting would use up
    ncat -l's one connection)."""
    import psutil

    for _ in range(int(WAIT / 0.05)):
        if any(
            c.laddr and c.laddr.port == port and c.status == psutil.CONN_LISTEN
            for c in psutil.net_connections("tcp4")
        ):
            return
        threading.Event().wait(0.05)
    raise TimeoutError(f"nothing listens on port {port}")


def _connect_when_listening(port: int) -> LineClient:
    _wait_listening(port)
    return LineClient(port)


def _read_until(stream: Any, text: str) -> list[str]:
    """Lines from a process's stdout until one is `text` (the caller's timeout: the join's)."""
    lines: list[str] = []
    result: list[list[str]] = []

    def read() -> None:
        for line in stream:
            lines.append(line.rstrip("\n"))
            if lines[-1] == text:
                break
        result.append(lines)

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    reader.join(WAIT)
    assert result, f"{text!r} never came; saw {lines}"
    return result[0]


def test_a_server_quiet_after_its_greeting_is_still_heard(lanchat_process: Any) -> None:
    """The wait for a greeting must not outlive it: a line server that greets, then says
    nothing for longer than that wait, is still heard when it speaks again (the receiver once
    inherited the greeting wait's timeout and took the silence for a hang-up)."""
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(WAIT)
    port = int(listener.getsockname()[1])
    join = lanchat_process("join", f"127.0.0.1:{port}", stdin=subprocess.PIPE)
    conn, _ = listener.accept()
    with listener, conn:
        conn.sendall(b"<announce> welcome\n")
        assert join.wait_line(lambda line: line == "<announce> welcome")
        # A deliberate silence, longer than the greeting wait: the behaviour under test.
        threading.Event().wait(GREETING_WAIT_SECONDS + 0.5)
        conn.sendall(b"still here\n")
        assert join.wait_line(lambda line: line == "still here")
        join.proc.stdin.close()
        assert join.proc.wait(WAIT) == ExitCode.OK
    assert "Traceback" not in join.stderr()


def test_a_server_that_greets_like_a_relay_but_is_none_has_its_greeting_shown(
    talker: Any, lanchat_process: Any
) -> None:
    """A line server whose greeting looks like a relay's gets lanchat's hello, and when it does
    not answer as a relay, join goes on as a line client: the greeting it read is shown too
    (it used to be dropped)."""
    server = talker(b"* Welcome to lobby, guest-1.\n")
    join = lanchat_process("join", f"127.0.0.1:{server.port}", stdin=subprocess.PIPE)
    assert join.wait_line(lambda line: line == "* Welcome to lobby, guest-1.")
    join.proc.stdin.write("hello, not a relay\n")
    join.proc.stdin.close()
    assert join.proc.wait(WAIT) == ExitCode.OK
    assert server.done.wait(WAIT)
    hello, typed = server.received.split(b"\n", 1)
    assert json.loads(hello)["type"] == "hello" and typed == b"hello, not a relay\n"
    err = join.stderr()
    assert "It greeted like a relay, so it received lanchat's hello" in err
    assert "Traceback" not in err
