"""Several relays, one room, through a real Redis (lanchat/backplane/): one order for every client
of every relay, names unique across relays, /who for the whole room, resume on any relay and
across a relay's restart, copies of retried appends dropped, and a Redis outage that loses and
repeats nothing. Each test starts its own redis-server (tests/redis_kit.py) and skips where
there is none."""

from __future__ import annotations

import json
import os
import signal
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from redis_kit import free_port

from conftest import WAIT, LanchatProcess, LineClient, run_lanchat
from lanchat.backplane import Backplane, parse_address
from lanchat.backplane.outbox import Waiting
from lanchat.errors import ExitCode
from lanchat.relay import Relay

ROOM = "lobby"
Make = Callable[..., Relay]


@pytest.fixture
def relays() -> Iterator[Make]:
    """make(url, name, **relay options) -> a started Relay on the backplane; all stopped."""
    started: list[Relay] = []

    def make(url: str, name: str, *, heartbeat: float = 0.2, **options: Any) -> Relay:
        backplane = Backplane(parse_address(url), ROOM, name, heartbeat=heartbeat)
        options.setdefault("history", 50)
        relay = Relay("127.0.0.1", 0, room=ROOM, backplane=backplane, **options)
        relay.start()
        started.append(relay)
        return relay

    yield make
    for relay in started:
        relay.stop()
        assert relay.readers == 0


def client(relay: Relay, name: str) -> LineClient:
    """A lanchat (JSON) client of `relay`, welcomed as exactly `name`."""
    c = LineClient(relay.address[1])
    welcome = c.hello(name)
    assert welcome["type"] == "welcome" and welcome["name"] == name, welcome
    return c


def say(c: LineClient, text: str) -> None:
    c.send_json({"type": "message", "text": text})


def chats(c: LineClient, count: int, timeout: float = WAIT) -> list[dict[str, Any]]:
    """Read until `count` live chats (not history) arrived; the chats, in the order read."""
    got: list[dict[str, Any]] = []
    deadline = time.monotonic() + timeout
    while len(got) < count:
        frame = c.wait_json(lambda f: f["type"] == "message", max(0.0, deadline - time.monotonic()))
        if not frame.get("history"):
            got.append(frame)
    return got


def test_two_relays_carry_one_conversation_in_one_order(redis_server: Any, relays: Make) -> None:
    redis = redis_server()
    a, b = relays(redis.url, "ra"), relays(redis.url, "rb")
    people = [client(a, "ana"), client(a, "al"), client(b, "ben"), client(b, "bo")]
    raw = LineClient(b.address[1])  # a raw client (ncat-like) on relay b
    raw.send("hello from raw\n")
    rounds = 25

    def talk(c: LineClient, who: str) -> None:
        for i in range(rounds):
            say(c, f"{who} {i}")

    talkers = [threading.Thread(target=talk, args=(c, f"p{n}")) for n, c in enumerate(people)]
    for t in talkers:
        t.start()
    for t in talkers:
        t.join(WAIT)
    total = rounds * len(people) + 1
    orders = [[(f["seq"], f["from"], f["text"]) for f in chats(c, total)] for c in people]
    assert all(order == orders[0] for order in orders), "every client sees one order"
    texts = [text for _, _, text in orders[0]]
    assert len(set(texts)) == total  # each message once
    seqs = [seq for seq, _, _ in orders[0]]
    assert seqs == sorted(seqs) and len(set(seqs)) == total  # the stream's order, as seqs
    # The raw client reads the same order as text, its own line left out.
    expected = [f"<{sender}> {text}" for _, sender, text in orders[0] if text != "hello from raw"]
    lines = [raw.wait_line("> ") for _ in expected]
    assert [line.split("] ", 1)[1] for line in lines] == expected
    # Both relays greet with the stream's epoch and seq: a client may resume on either.
    assert a.room.epoch == b.room.epoch
    assert a.backplane is not None and a.backplane.wait_heartbeat(WAIT)
    assert a.status()["backplane"]["relays"] == 2


def test_names_are_unique_across_relays_and_who_lists_the_whole_room(
    redis_server: Any, relays: Make
) -> None:
    redis = redis_server()
    a, b = relays(redis.url, "ra"), relays(redis.url, "rb")
    ben = client(b, "ben")
    ana = client(a, "ana")
    ben.wait_json(lambda f: f["type"] == "join" and f["name"] == "ana")  # b knows of her now
    taken = LineClient(b.address[1])
    refusal = taken.hello("ANA")  # a look-alike, asked for exactly: refused
    assert refusal["type"] == "error" and refusal["code"] == "name-taken", refusal
    other = LineClient(b.address[1])
    assert other.hello("ana", exact=False)["name"] == "ana-2"
    ben.send_json({"type": "nick", "name": "ana"})
    assert ben.wait_json(lambda f: f["type"] == "error")["code"] == "name-taken"
    ana.wait_json(lambda f: f["type"] == "join" and f["name"] == "ana-2")
    ana.send_json({"type": "who"})
    who = ana.wait_json(lambda f: f["type"] == "who" and len(f["names"]) == 3)
    assert sorted(who["names"]) == ["ana", "ana-2", "ben"] and who["count"] == 3
    assert who["relays"] == {"ana-2": "rb", "ben": "rb"}
    raw = LineClient(a.address[1])
    raw.send("/who\n")
    assert "ben (on rb)" in raw.wait_line(" here: ")


def test_a_name_another_relay_gave_away_at_the_same_moment_is_renamed(
    redis_server: Any, relays: Make
) -> None:
    """Both relays admitted "zed" before either heard of the other's: the later claim in Redis
    loses, and its holder becomes "zed-2" and is told why."""
    redis = redis_server()
    a = relays(redis.url, "ra", heartbeat=60)  # reads the others' names at start only
    b = relays(redis.url, "rb")  # the other relay, alive (its heartbeat)
    assert a.backplane is not None and a.backplane.wait_heartbeat(WAIT, first=True)
    assert b.backplane is not None and b.backplane.wait_heartbeat(WAIT, first=True)
    holder = json.dumps({"name": "zed", "relay": "rb"})
    redis.command("HSET", "lanchat:{lobby}:names", "zed", holder)  # rb gave it away just now
    zed = LineClient(a.address[1])
    assert zed.hello("zed")["name"] == "zed"  # a did not know yet
    # Told at once (a private frame); the rename reaches everyone through the stream.
    told = zed.wait_json(lambda f: f["type"] == "error")
    assert told["code"] == "name-taken" and "rb" in told["message"]
    rename = zed.wait_json(lambda f: f["type"] == "nick")
    assert (rename["old"], rename["new"]) == ("zed", "zed-2")
    names = redis.command("HGETALL", "lanchat:{lobby}:names")
    assert json.loads(names[b"zed"])["relay"] == "rb"  # the other relay keeps it


def test_a_raw_sender_does_not_get_its_own_line_back_from_the_stream(
    redis_server: Any, relays: Make
) -> None:
    redis = redis_server()
    a = relays(redis.url, "ra")
    raw, ana = LineClient(a.address[1]), client(a, "ana")
    raw.send("first\n")
    ana.wait_json(lambda f: f.get("text") == "first")
    say(ana, "second")
    line = raw.wait_line("second")
    assert not any("first" in seen for seen in raw.lines), raw.lines
    assert "<ana> second" in line


def test_copies_of_a_retried_append_are_delivered_once(redis_server: Any, relays: Make) -> None:
    """Redis 7.0 has no idempotent XADD: an append whose answer was lost is sent again, and
    the reader drops the copy by its run and lseq."""
    redis = redis_server()
    a, b = relays(redis.url, "ra"), relays(redis.url, "rb")
    ben = client(b, "ben")
    backplane = a.backplane
    assert backplane is not None
    with a.hub.lock:  # the room publishes one chat, as a reader thread would
        backplane.submit(_chat("once"), 0, None)
    ben.wait_json(lambda f: f.get("text") == "once")
    waiting = Waiting(10_000, _chat("twice?"))  # (not in ra's outbox: ra lets it pass)
    backplane._append([waiting])  # the first try (its answer "lost")
    backplane._append([waiting])  # the retry
    say(ben, "after")
    got = chats(ben, 2)
    assert [f["text"] for f in got] == ["twice?", "after"]
    assert int(redis.command("XLEN", "lanchat:{lobby}:stream")) >= 4  # both copies are there


def _chat(text: str) -> Any:
    from lanchat.protocol import Chat

    return Chat(0, time.time(), "ana", text)


def test_a_client_resumes_on_a_restarted_relay_from_the_stream(
    redis_server: Any, relays: Make
) -> None:
    redis = redis_server()
    a, b = relays(redis.url, "ra"), relays(redis.url, "rb")
    ana, ben = client(a, "ana"), client(b, "ben")
    say(ben, "before")
    seen = chats(ana, 1)[0]
    epoch = a.room.epoch
    ana.close()
    a.stop()
    for i in range(3):
        say(ben, f"while away {i}")
    chats(ben, 4)
    a2 = relays(redis.url, "ra")  # the same relay, started again: a new process, new run
    assert a2.room.epoch == epoch
    back = LineClient(a2.address[1])
    back.send_json(
        {
            "type": "hello",
            "version": 1,
            "name": "ana",
            "exact": True,
            "resume": {"epoch": epoch, "seq": seen["seq"]},
        }
    )
    welcome = back.wait_json(lambda f: f["type"] == "welcome")
    assert welcome["resumed"] is True and welcome["name"] == "ana"
    replay = [back.wait_json(lambda f: f.get("history")) for _ in range(welcome["history"])]
    assert [f["text"] for f in replay] == [f"while away {i}" for i in range(3)]
    say(ben, "live again")
    assert [f["text"] for f in chats(back, 1)] == ["live again"]


def test_a_stopping_relay_tells_the_others_who_left_with_it(
    redis_server: Any, relays: Make
) -> None:
    redis = redis_server()
    a, b = relays(redis.url, "ra"), relays(redis.url, "rb")
    ben = client(b, "ben")
    ana = client(a, "ana")
    ben.wait_json(lambda f: f["type"] == "join" and f["name"] == "ana")
    a.stop()
    left = ben.wait_json(lambda f: f["type"] == "leave")
    assert (left["name"], left["reason"]) == ("ana", "shutdown")
    bye = ana.wait_json(lambda f: f["type"] == "bye")
    seen = max(json.loads(line)["seq"] for line in ana.lines[:-1])
    assert bye["reason"] == "shutdown" and bye["seq"] >= seen  # a seq never goes back
    ben.send_json({"type": "who"})
    assert ben.wait_json(lambda f: f["type"] == "who")["names"] == ["ben"]


def test_a_redis_outage_loses_and_repeats_nothing(redis_server: Any, relays: Make) -> None:
    """Redis is killed mid-conversation (SIGKILL) and started again from its AOF: each relay's
    people chat on meanwhile, told so; afterwards every client has every message exactly once,
    the lines from before and after in one order, and a newcomer reads the stream's order."""
    redis = redis_server(persist=True)
    a, b = relays(redis.url, "ra"), relays(redis.url, "rb")
    ana, al, ben = client(a, "ana"), client(a, "al"), client(b, "ben")
    say(ana, "before 1")
    say(ben, "before 2")
    for c in (ana, al, ben):
        chats(c, 2)
    redis.kill()
    for c in (ana, al, ben):
        notice = c.wait_json(lambda f: f["type"] == "notice", timeout=10)
        assert notice["code"] == "backplane-down"
    say(ana, "during a")
    say(ben, "during b")
    assert [f["text"] for f in chats(al, 1)] == ["during a"]  # a's people chat on
    assert [f["text"] for f in chats(ben, 1)] == ["during b"]
    redis.start()
    for c in (ana, al, ben):
        back = c.wait_json(lambda f: f["type"] == "notice", timeout=10)
        assert back["code"] == "backplane-back"
    assert [f["text"] for f in chats(al, 1)] == ["during b"]  # b's, now; a's not again
    placed = chats(ben, 1)[0]
    assert placed["text"] == "during a"
    # a's people were shown "during a" before it had a seq; their resume point passes its
    # place in the stream (a later frame, or a mark), so a reconnect does not replay it.
    _frame(al, lambda f: f["seq"] >= placed["seq"])
    say(ana, "after 1")
    say(ben, "after 2")
    everyone = {}
    for name, c in (("ana", ana), ("ben", ben)):
        everyone[name] = [f["text"] for f in _all_chats(c)]
    # Every message exactly once for every client ...
    expected = {"before 1", "before 2", "during a", "during b", "after 1", "after 2"}
    for name, texts in everyone.items():
        assert sorted(texts) == sorted(expected), (name, texts)
    # ... and a newcomer reads the history in the stream's order, each once.
    newcomer = LineClient(a.address[1])
    welcome = newcomer.hello("cy")
    count = welcome["history"]
    history = [newcomer.wait_json(lambda f: f.get("history"))["text"] for _ in range(count)]
    assert sorted(history) == sorted(expected)


def test_a_frozen_redis_shows_what_was_on_its_way_and_appends_it_once(
    redis_server: Any, relays: Make
) -> None:
    """Redis stops answering (SIGSTOP: the connections stay open, commands time out) just as a
    line goes to it: the relay shows it to its people when the timeout says Redis is away, and
    when Redis runs again (SIGCONT, and it may now carry out the append it had received) the
    others get it once, and its own people do not get it again."""
    redis = redis_server()
    a, b = relays(redis.url, "ra"), relays(redis.url, "rb")
    ana, al, ben = client(a, "ana"), client(a, "al"), client(b, "ben")
    assert redis.proc is not None
    os.kill(redis.proc.pid, signal.SIGSTOP)
    try:
        say(ana, "on its way")
        assert [f["text"] for f in chats(al, 1, timeout=10)] == ["on its way"]
        assert al.wait_json(lambda f: f["type"] == "notice")["code"] == "backplane-down"
    finally:
        os.kill(redis.proc.pid, signal.SIGCONT)
    al.wait_json(lambda f: f.get("code") == "backplane-back", timeout=10)
    assert [f["text"] for f in chats(ben, 1, timeout=10)] == ["on its way"]
    say(ana, "next")
    assert [f["text"] for f in chats(al, 1)] == ["next"]  # not "on its way" again
    assert [f["text"] for f in chats(ben, 1)] == ["next"]  # nor a copy of it


def test_lines_shown_during_an_outage_are_not_replayed_to_those_who_saw_them(
    redis_server: Any, relays: Make
) -> None:
    """Shown at once while Redis was away, a line gets its seq only when Redis is back; a
    client that then reconnects must not be given it again (a mark moves its resume point)."""
    redis = redis_server(persist=True)
    a = relays(redis.url, "ra")
    ana, al = client(a, "ana"), client(a, "al")
    redis.kill()
    al.wait_json(lambda f: f["type"] == "notice")
    say(ana, "during")
    assert [f["text"] for f in chats(al, 1)] == ["during"]
    redis.start()
    al.wait_json(lambda f: f.get("code") == "backplane-back")
    mark = al.wait_json(lambda f: f["type"] == "mark")  # "during" is in the stream now
    resume = {"epoch": a.room.epoch, "seq": max(json.loads(line)["seq"] for line in al.lines)}
    assert resume["seq"] == mark["seq"]
    al.close()
    ana.wait_json(lambda f: f["type"] == "leave" and f["name"] == "al")  # the name is free
    again = LineClient(a.address[1])
    hello = {"type": "hello", "version": 1, "name": "al", "exact": True, "resume": resume}
    again.send_json(hello)
    welcome = again.wait_json(lambda f: f["type"] == "welcome")
    assert welcome["resumed"] is True and welcome["history"] == 0  # nothing said twice
    say(ana, "after")
    assert [f["text"] for f in chats(again, 1)] == ["after"]


def test_a_redis_that_lost_its_data_starts_a_new_history(redis_server: Any, relays: Make) -> None:
    """Redis without persistence, killed and started again empty: the relays make one new
    epoch, tell their people, keep their seqs growing, and the room goes on."""
    redis = redis_server()  # no AOF: a restart loses everything
    a, b = relays(redis.url, "ra"), relays(redis.url, "rb")
    ana, ben = client(a, "ana"), client(b, "ben")
    say(ana, "before")
    last = chats(ben, 1)[0]["seq"]
    old = a.room.epoch
    redis.kill()
    ben.wait_json(lambda f: f.get("code") == "backplane-down")
    redis.start()
    reset = ben.wait_json(lambda f: f.get("code") == "backplane-reset")
    assert "lost" in reset["message"]
    ben.wait_json(lambda f: f.get("code") == "backplane-back")
    ana.wait_json(lambda f: f.get("code") == "backplane-back")
    assert a.room.epoch == b.room.epoch != old
    # What a still held for the lost stream (had Redis died before "before" came back to a)
    # goes into the new one again: b, which delivered it, must know it as a copy still.
    assert a.backplane is not None and b.backplane is not None
    assert not b.backplane._dedupe.fresh(a.backplane._run, 2)  # ana's join 1, "before" 2
    say(ana, "after")
    after = chats(ben, 1)[0]
    assert after["text"] == "after" and after["seq"] > last  # a client's seq never goes back
    newcomer = LineClient(b.address[1])
    welcome = newcomer.hello("cy")
    assert welcome["epoch"] == b.room.epoch and welcome["history"] == 1  # "after" alone


def _frame(c: LineClient, predicate: Callable[[dict[str, Any]], bool]) -> dict[str, Any]:
    """The first frame so far (or to come) for which `predicate` holds."""
    for line in c.lines:
        frame = json.loads(line)
        if predicate(frame):
            return frame
    return c.wait_json(predicate)


def _all_chats(c: LineClient) -> list[dict[str, Any]]:
    """Every live chat a client has read so far, and the rest until both 'after' lines."""
    seen = [json.loads(line) for line in c.lines if line.startswith('{"type":"message"')]
    while not {"after 1", "after 2"} <= {f["text"] for f in seen}:
        seen.append(c.wait_json(lambda f: f["type"] == "message", timeout=10))
    return [f for f in seen if not f.get("history")]


def test_two_relays_with_one_name_are_said_to_clash(redis_server: Any, relays: Make) -> None:
    """Cloned PCs with one --relay-name would free and take each other's names: the heartbeat
    notices another process writing it, and status says so."""
    redis = redis_server()
    a, b = relays(redis.url, "same"), relays(redis.url, "same")
    assert a.backplane is not None and b.backplane is not None
    for _ in range(3):  # beats of both, interleaved: each finds the other's run in the key
        assert a.backplane.wait_heartbeat(WAIT) and b.backplane.wait_heartbeat(WAIT)
    errors = [r.status()["backplane"]["error"] or "" for r in (a, b)]
    assert any("another relay calls itself 'same'" in e for e in errors), errors
    alone = relays(redis.url, "other")
    assert alone.backplane is not None and alone.backplane.wait_heartbeat(WAIT)
    assert alone.status()["backplane"]["error"] is None


def test_serve_without_its_backplane_says_so_and_exits_unreachable() -> None:
    port = free_port()  # nothing listens there
    result = run_lanchat(
        "serve", "--port", "0", "--no-mdns", "--backplane", f"redis://127.0.0.1:{port}/0",
        timeout=30,
    )  # fmt: skip
    assert result.returncode == ExitCode.UNREACHABLE, result.stderr
    assert "error: Cannot reach the backplane" in result.stderr
    assert "hint:" in result.stderr and "Traceback" not in result.stderr


def test_status_shows_the_backplane(redis_server: Any, lanchat_process: Any) -> None:
    redis = redis_server()
    serve: LanchatProcess = lanchat_process(
        "serve", "--host", "127.0.0.1", "--port", "0", "--json", "--no-mdns",
        "--backplane", redis.url, "--relay-name", "h1",
    )  # fmt: skip
    listening = serve.wait_json(lambda e: e.get("event") == "listening", timeout=15)
    assert listening["backplane"]["relay"] == "h1"
    result = run_lanchat("status", "--port", str(listening["port"]), "--json")
    assert result.returncode == 0, result.stderr
    backplane = json.loads(result.stdout)["backplane"]
    assert backplane["state"] == "connected" and backplane["url"] == redis.url
    assert backplane["stream"] == "lanchat:{lobby}:stream" and backplane["relay"] == "h1"
    people = run_lanchat("status", "--port", str(listening["port"]))
    assert "backplane" in people.stdout and "connected" in people.stdout
