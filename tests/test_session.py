"""`lanchat join` across reconnects (lanchat/session.py): a real scripted join resumes after the
relay restarts on the same port, shows nothing twice, notes the gap, and sends what was typed
while it was disconnected."""

from __future__ import annotations

import contextlib
import io
import json
import os
import signal
import socket
import subprocess
from collections.abc import Iterator
from typing import Any

import pytest

from conftest import WAIT, LineClient, lanchat_env
from lanchat.errors import ExitCode
from lanchat.relay import Relay


def _say(client: LineClient, text: str) -> None:
    client.send_json({"type": "message", "text": text})
    client.wait_json(lambda f: f["type"] == "message" and f["text"] == text)


def test_scripted_join_resumes_after_a_restart_without_duplicates_and_notes_the_gap(
    lanchat_process: Any,
) -> None:
    first = Relay("127.0.0.1", 0)
    first.start()
    port = first.address[1]
    bob = LineClient(port)
    bob.hello("bob")
    join = lanchat_process(
        "join", f"127.0.0.1:{port}", "--name", "kim", "--json", stdin=subprocess.PIPE
    )
    second: Relay | None = None
    try:
        join.wait_json(lambda f: f["type"] == "welcome")
        join.proc.stdin.write("one\n")
        join.proc.stdin.flush()
        join.wait_json(lambda f: f["type"] == "message" and f["text"] == "one")
        _say(bob, "b1")
        join.wait_json(lambda f: f.get("text") == "b1")
        bob.close()
        first.stop()  # the server restarts without a store: its history is lost
        join.wait_json(lambda f: f["type"] == "bye" and f["reason"] == "shutdown")
        join.proc.stdin.write("typed while away\n")  # kept until the join is back
        join.proc.stdin.flush()
        second = Relay("127.0.0.1", port)
        second.start()
        carol = LineClient(port)
        carol.hello("carol")
        # The join may be back before carol speaks (then kim's line reaches her before her
        # own echo, or in her greeting's history): her frames are read in any order.
        said: dict[str, str] = {}

        def carol_and_kim(frame: dict[str, Any]) -> bool:
            if frame["type"] == "message":
                said[frame["from"]] = frame["text"]
            return "carol" in said and "kim" in said

        carol.send_json({"type": "message", "text": "b2"})
        carol.wait_json(carol_and_kim, timeout=3 * WAIT)
        assert said == {"carol": "b2", "kim": "typed while away"}
        gap = join.wait_json(lambda f: f["type"] == "gap", timeout=3 * WAIT)
        assert gap["reason"] == "history-lost"
        join.proc.stdin.close()
        assert join.proc.wait(WAIT) == 0, join.stderr()
        join.rest()  # the rest of stdout joins join.seen
        frames = [json.loads(line) for line in join.seen]
        texts = [f["text"] for f in frames if f["type"] in ("message", "action")]
        assert sorted(texts) == sorted(["one", "b1", "b2", "typed while away"])  # each once
        carol.close()
    finally:
        first.stop()
        if second is not None:
            second.stop()


@contextlib.contextmanager
def back_with_a_newcomer(join: Any, port: int, name: str) -> Iterator[None]:
    """The relay back on `port` with a newcomer called `name` in it, taken while the join is
    frozen (so that the newcomer is first); both are gone when the block ends."""
    relay: Relay | None = None
    newcomer: LineClient | None = None
    os.kill(join.proc.pid, signal.SIGSTOP)
    try:
        relay = Relay("127.0.0.1", port)
        relay.start()
        newcomer = LineClient(port)
        newcomer.hello(name)
    finally:
        os.kill(join.proc.pid, signal.SIGCONT)
    try:
        yield
    finally:
        newcomer.close()
        relay.stop()


def test_a_reconnect_keeps_the_name_we_had(lanchat_process: Any) -> None:
    """join reconnected under the name it started with: a /nick was undone, and a join that
    had been given a variant (kim-2: kim was taken) came back as kim once kim was free, so two
    such joins could swap names. It now asks for the name it had last."""
    env = {**lanchat_env(), "LOGNAME": "kim", "USER": "kim"}  # join without --name: "kim"
    relays = [Relay("127.0.0.1", 0)]
    relays[0].start()
    port = relays[0].address[1]
    holder = LineClient(port)
    holder.hello("kim")
    join = lanchat_process("join", f"127.0.0.1:{port}", "--json", stdin=subprocess.PIPE, env=env)
    try:
        assert join.wait_json(lambda f: f["type"] == "welcome")["name"] == "kim-2"
        holder.close()

        def restart() -> dict[str, Any]:
            relays[-1].stop()
            join.wait_json(lambda f: f["type"] == "bye")
            relays.append(Relay("127.0.0.1", port))
            relays[-1].start()
            return join.wait_json(lambda f: f["type"] == "welcome", timeout=3 * WAIT)

        assert restart()["name"] == "kim-2"  # kim is free now; kim-2 is still ours
        join.say("/nick kimberly")
        join.wait_json(lambda f: f["type"] == "nick" and f["new"] == "kimberly")
        assert restart()["name"] == "kimberly"
        join.say("still here")
        join.wait_json(lambda f: f.get("from") == "kimberly" and f.get("text") == "still here")
        join.proc.stdin.close()
        assert join.proc.wait(WAIT) == 0, join.stderr()
    finally:
        for relay in relays:
            relay.stop()


def test_a_name_taken_while_away_is_the_reason_join_gives(lanchat_process: Any) -> None:
    """A newcomer took our name while the relay restarted. The scripted join's last words
    were "the server shut down before we were done" (the previous goodbye); it now says the
    server did not let us back in and why, exits 5 (refused) and names the line not sent."""
    first = Relay("127.0.0.1", 0)
    first.start()
    port = first.address[1]
    join = lanchat_process(
        "join", f"127.0.0.1:{port}", "--name", "kim", "--reconnect", "3", stdin=subprocess.PIPE
    )
    try:
        join.wait_line("* Welcome")
        first.stop()
        join.wait_line("Server shutting down")
        with back_with_a_newcomer(join, port, "kim"):
            join.say("typed while away")
            join.proc.stdin.close()
            assert join.proc.wait(4 * WAIT) == ExitCode.REJECTED
        stderr = join.stderr()
        assert "we could not get back in" in stderr and "kim" in stderr and "taken" in stderr
        assert "1 line(s) were not sent: 'typed while away'" in stderr
        assert "Choose another name with --name." in stderr
        assert "Traceback" not in stderr
    finally:
        first.stop()


def test_the_last_reconnect_try_is_the_reason_given(lanchat_process: Any) -> None:
    """The report named the second-to-last failure: reconnect() gives up after the last one
    without reporting it. Here the first try finds nothing listening and the last finds the
    name taken, so join must exit 5 and say the name was taken."""
    from lanchat.client import Connection
    from lanchat.errors import RejectedError
    from lanchat.join import run_scripted
    from lanchat.protocol import Resume

    first = Relay("127.0.0.1", 0)
    first.start()
    second = Relay("127.0.0.1", 0)  # where the name is taken when the last try comes
    second.start()
    closed = socket.socket()
    closed.bind(("127.0.0.1", 0))  # bound, never listening: a connection is refused
    holder = LineClient(second.address[1])
    holder.hello("kim")
    tries: list[int] = []

    def open_again(resume: Resume | None, current: str) -> Connection:
        port = closed.getsockname()[1] if not tries else second.address[1]
        tries.append(port)
        return Connection.open("127.0.0.1", port, name=current, exact=True, timeout=WAIT)

    conn = Connection.open("127.0.0.1", first.address[1], name="kim", exact=True, timeout=WAIT)

    def lines() -> Iterator[str]:
        yield "one\n"
        first.stop()  # the relay goes away; a line is still to come
        yield "two\n"

    try:
        with pytest.raises(RejectedError) as refused:
            run_scripted(conn, lines(), as_json=True, out=io.StringIO(), open_again=open_again,
                         reconnect_for=0.5)  # fmt: skip
        assert tries[0] != tries[-1] == second.address[1]  # refused first, the name taken last
        error = refused.value
        assert "name is taken" in error.message and "last try" in error.message
        assert "'two'" in error.message  # named among the lines not sent
        assert error.hint == "Choose another name with --name."
    finally:
        holder.close()
        closed.close()
        first.stop()
        second.stop()


def test_a_join_without_a_name_whose_variant_was_taken_comes_back_as_a_variant_of_its_own(
    lanchat_process: Any,
) -> None:
    """kim-2 (kim was taken) reconnects as kim-2; if a newcomer took kim-2 meanwhile, it takes
    a variant of the name it first asked for (here kim, free again), not kim-2-2."""
    env = {**lanchat_env(), "LOGNAME": "kim", "USER": "kim"}
    first = Relay("127.0.0.1", 0)
    first.start()
    port = first.address[1]
    holder = LineClient(port)
    holder.hello("kim")
    join = lanchat_process("join", f"127.0.0.1:{port}", "--json", stdin=subprocess.PIPE, env=env)
    try:
        assert join.wait_json(lambda f: f["type"] == "welcome")["name"] == "kim-2"
        holder.close()
        first.stop()
        join.wait_json(lambda f: f["type"] == "bye")
        with back_with_a_newcomer(join, port, "kim-2"):
            welcome = join.wait_json(lambda f: f["type"] == "welcome", timeout=3 * WAIT)
            assert welcome["name"] == "kim"
            join.proc.stdin.close()
            assert join.proc.wait(WAIT) == 0, join.stderr()
    finally:
        first.stop()


def test_lines_left_when_the_session_ended_are_named_and_a_password_is_not(
    lanchat_process: Any,
) -> None:
    """What the script still had to say when the server went away is listed, except what is
    never sent: a /login line (its password must not be printed), /help, blank lines."""
    relay = Relay("127.0.0.1", 0)
    relay.start()
    port = relay.address[1]
    join = lanchat_process(
        "join", f"127.0.0.1:{port}", "--name", "kim", "--reconnect", "0", stdin=subprocess.PIPE
    )
    try:
        join.wait_line("* Welcome")
        relay.stop()
        join.wait_line("Server shutting down")
        join.proc.stdin.write("/login hunter2\n\n/help\nlast words\n")
        join.proc.stdin.close()
        assert join.proc.wait(WAIT) == ExitCode.UNREACHABLE
        stderr = join.stderr()
        assert "hunter2" not in stderr
        assert "'last words'" in stderr or "the rest of the input was not read" in stderr
        assert "'/help'" not in stderr and "''" not in stderr
    finally:
        relay.stop()
