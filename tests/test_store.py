"""History on disk (lanchat/store.py): what is saved comes back after a restart, retention
leaves a gap that is named, and a real `lanchat serve --store` killed with SIGKILL resumes every
message exactly once."""

from __future__ import annotations

import os
import signal
from pathlib import Path
from typing import Any

from conftest import WAIT, LineClient, run_lanchat
from lanchat.errors import ExitCode
from lanchat.protocol import Chat, Joined, Left
from lanchat.store import open_store


def test_saved_events_come_back_with_their_epoch_and_seq(tmp_path: Path) -> None:
    store = open_store(tmp_path / "h.db")
    epoch = store.load(50).epoch
    store.save([Joined(1, 1.0, "ana", "lanchat", 1), Chat(2, 2.0, "ana", "hi")])
    store.save([Chat(3, 3.0, "ana", "waves", action=True), Left(4, 4.0, "ana", "quit", 0)])
    store.close()
    past = open_store(tmp_path / "h.db").load(50)
    assert past.epoch == epoch and past.seq == 4 and past.trimmed == 0
    assert past.chats == (Chat(2, 2.0, "ana", "hi"), Chat(3, 3.0, "ana", "waves", action=True))


def test_a_new_file_is_a_new_epoch_and_load_keeps_the_newest_chats(tmp_path: Path) -> None:
    one, two = open_store(tmp_path / "a.db"), open_store(tmp_path / "b.db")
    assert one.load(5).epoch != two.load(5).epoch
    one.save([Chat(seq, float(seq), "ana", f"m{seq}") for seq in range(1, 11)])
    past = one.load(3)
    assert [c.seq for c in past.chats] == [8, 9, 10] and past.trimmed == 7


def test_retention_by_count_remembers_what_it_deleted(tmp_path: Path) -> None:
    store = open_store(tmp_path / "h.db", keep=4)
    store.load(50)
    store.save([Chat(seq, float(seq), "ana", f"m{seq}") for seq in range(1, 11)])
    store.close()
    past = open_store(tmp_path / "h.db", keep=4).load(50)  # retention runs at open
    assert [c.seq for c in past.chats] == [7, 8, 9, 10]
    assert past.trimmed == 6 and past.seq == 10


def test_retention_by_age(tmp_path: Path) -> None:
    store = open_store(tmp_path / "h.db", keep_days=1)
    store.load(50)
    store.save([Chat(1, 1.0, "ana", "ancient"), Chat(2, 4e9, "ana", "future")])
    store.close()
    past = open_store(tmp_path / "h.db", keep_days=1).load(50)
    assert [c.text for c in past.chats] == ["future"] and past.trimmed == 1


def test_an_unusable_store_path_is_an_error_with_a_hint(tmp_path: Path) -> None:
    (tmp_path / "junk.db").write_text("not a database, not at all" * 100)
    for path in (tmp_path / "missing" / "h.db", tmp_path, tmp_path / "junk.db"):
        result = run_lanchat("serve", "--port", "0", "--no-mdns", "--store", str(path))
        assert result.returncode == ExitCode.STORE, result.stderr
        assert result.stderr.startswith("error: --store") and "hint:" in result.stderr
        assert "Traceback" not in result.stderr


def _serve(lanchat_process: Any, db: Path, port: int = 0) -> tuple[Any, int]:
    process = lanchat_process(
        "serve", "--host", "127.0.0.1", "--port", str(port), "--json", "--no-mdns",
        "--store", str(db),
    )  # fmt: skip
    listening = process.wait_json(lambda e: e.get("event") == "listening", timeout=10)
    return process, int(listening["port"])


def _say(client: LineClient, text: str) -> dict[str, Any]:
    client.send_json({"type": "message", "text": text})
    return client.wait_json(lambda f: f["type"] == "message" and f["text"] == text)


def test_sigkill_and_restart_with_store_resumes_every_message_exactly_once(
    lanchat_process: Any, tmp_path: Path
) -> None:
    db = tmp_path / "history.db"
    serve, port = _serve(lanchat_process, db)
    alice, bob = LineClient(port), LineClient(port)
    welcome = alice.hello("alice")
    epoch = welcome["epoch"]
    bob.hello("bob")
    last_seen = _say(alice, "before")["seq"]
    alice.close()
    # Each echo is sent after its commit: what bob has seen is on disk.
    seqs = [_say(bob, f"m{i}")["seq"] for i in range(20)]
    os.kill(serve.proc.pid, signal.SIGKILL)
    assert serve.proc.wait(WAIT) == -signal.SIGKILL
    bob.close()

    again, same_port = _serve(lanchat_process, db, port)
    assert same_port == port
    back = LineClient(port)
    hello = {
        "type": "hello",
        "version": 1,
        "name": "alice",
        "resume": {"epoch": epoch, "seq": last_seen},
    }
    back.send_json(hello)
    welcome = back.wait_json(lambda f: f["type"] == "welcome")
    assert welcome["epoch"] == epoch and welcome["history"] == 20
    assert welcome["seq"] >= seqs[-1]  # the seq carries on: no number is given out twice
    late = LineClient(port)
    late.hello("carol")
    live = _say(late, "after the restart")
    assert live["seq"] > seqs[-1]
    got = []
    while not got or got[-1]["text"] != "after the restart":
        got.append(back.wait_json(lambda f: f["type"] in ("message", "gap")))
    assert [f["text"] for f in got] == [f"m{i}" for i in range(20)] + ["after the restart"]
    assert [f["seq"] for f in got[:-1]] == seqs
    back.close()
    late.close()
    again.terminate()
