"""`lanchat join` across reconnects (lanchat/session.py): a real scripted join resumes after the
relay restarts on the same port, shows nothing twice, notes the gap, and sends what was typed
while it was disconnected."""

from __future__ import annotations

import json
import subprocess
from typing import Any

from conftest import WAIT, LineClient
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
        _say(carol, "b2")
        gap = join.wait_json(lambda f: f["type"] == "gap", timeout=3 * WAIT)
        assert gap["reason"] == "history-lost"
        seen = carol.wait_json(lambda f: f["type"] == "message" and f["from"] == "kim")
        assert seen["text"] == "typed while away"
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
