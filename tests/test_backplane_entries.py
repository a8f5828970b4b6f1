"""The backplane's pure parts, without a Redis: stream entries read back (and garbage refused),
the dedupe of retried appends, our outbox through an outage, the names hash's values, keys,
URLs and relay names (lanchat/backplane/entries.py, outbox.py)."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from lanchat.backplane.entries import (
    Dedupe,
    EntryError,
    Keys,
    decode_entry,
    default_relay_name,
    entry_fields,
    names_value,
    parse_address,
    read_names_value,
    relay_name_problem,
    remote_people,
)
from lanchat.backplane.outbox import Outbox
from lanchat.errors import UsageError
from lanchat.protocol import Chat, Joined, Renamed


def fields(seq: int, lseq: int, event: object, run: str = "r1", relay: str = "h1") -> dict:
    lseq_text, event_text = entry_fields(lseq, event)  # type: ignore[arg-type]
    return {b"seq": str(seq).encode(), b"run": run.encode(), b"lseq": lseq_text.encode(),
            b"relay": relay.encode(), b"event": event_text.encode()}  # fmt: skip


def test_an_entry_reads_back_as_the_event_with_the_streams_seq() -> None:
    chat = Chat(0, 1764100000.5, "ana", "hello", action=True)
    entry = decode_entry(b"1764100000500-0", fields(41, 7, chat))
    assert (entry.id, entry.seq, entry.run, entry.lseq, entry.relay) == (
        "1764100000500-0", 41, "r1", 7, "h1",
    )  # fmt: skip
    assert entry.event == Chat(41, 1764100000.5, "ana", "hello", action=True)
    event = entry_fields(1, Joined(0, 2.0, "ben", "raw", 2))[1]
    text = {"seq": "3", "run": "r", "lseq": "1", "relay": "h", "event": event}  # str: fine too
    assert decode_entry("1-0", text).event == Joined(3, 2.0, "ben", "raw", 2)


@pytest.mark.parametrize(
    "bad",
    [
        {},
        {b"seq": b"x", b"run": b"r", b"lseq": b"1", b"relay": b"h", b"event": b"{}"},
        {b"seq": b"0", b"run": b"r", b"lseq": b"1", b"relay": b"h", b"event": b"{}"},
        {b"seq": b"1", b"run": b"", b"lseq": b"1", b"relay": b"h", b"event": b"{}"},
        {b"seq": b"1", b"run": b"r", b"lseq": b"1", b"relay": b"h", b"event": b"not json"},
        {b"seq": b"1", b"run": b"r", b"lseq": b"1", b"relay": b"h", b"event": b'{"type":"?"}'},
        {b"seq": b"1", b"run": b"r", b"lseq": b"1", b"relay": b"h", b"event": b"\xff"},
    ],
)
def test_an_entry_that_is_not_ours_is_refused_not_a_crash(bad: dict) -> None:
    with pytest.raises(EntryError):
        decode_entry(b"1-0", bad)


def test_copies_of_retried_appends_are_not_fresh() -> None:
    dedupe = Dedupe()
    # run a appends 1, 2, 3; the answer to 2..3 is lost and they are sent again, then 4.
    stream = [("a", 1), ("a", 2), ("b", 1), ("a", 3), ("a", 2), ("a", 3), ("a", 4), ("b", 1)]
    fresh = [(run, lseq) for run, lseq in stream if dedupe.fresh(run, lseq)]
    assert fresh == [("a", 1), ("a", 2), ("b", 1), ("a", 3), ("a", 4)]


def test_the_dedupe_remembers_a_bounded_number_of_runs() -> None:
    dedupe = Dedupe(limit=2)
    for run in ("a", "b", "c"):
        assert dedupe.fresh(run, 5)
    assert dedupe.fresh("a", 5)  # forgotten: the oldest run went first
    assert not dedupe.fresh("c", 5)
    dedupe.seen("d", 9)  # from the history read at start
    assert not dedupe.fresh("d", 9) and dedupe.fresh("d", 10)


@given(st.lists(st.integers(min_value=1, max_value=30), max_size=60))
def test_a_run_delivers_each_lseq_once_in_order(attempts: list[int]) -> None:
    """However often suffixes are sent again, what is fresh is 1, 2, 3 ... once each."""
    dedupe, sent, fresh = Dedupe(), 0, []
    for upto in attempts:
        start = max(1, min(sent, upto) - 3)  # a retry resends from a little before
        for lseq in range(start, max(upto, sent) + 1):
            if dedupe.fresh("r", lseq):
                fresh.append(lseq)
        sent = max(sent, upto)
    assert fresh == list(range(1, len(fresh) + 1))


def test_the_outbox_through_an_outage() -> None:
    box = Outbox()
    for text in ("one", "two", "three"):
        box.add(Chat(0, 0.0, "ana", text), 0, None, shown=False)
    assert [w.lseq for w in box.to_send(2)] == [1, 2]
    assert [w.lseq for w in box.to_send(10)] == [3] and not box.unsent()
    assert box.arrived(1) is not None and len(box) == 2
    shown = box.show_all()  # down: what has not come back is shown here at once
    assert [w.lseq for w in shown] == [2, 3] and box.show_all() == []
    late = box.add(Chat(0, 0.0, "ana", "four"), 0, None, shown=True)
    box.resend()  # back: everything not back yet goes again
    assert [w.lseq for w in box.to_send(10)] == [2, 3, 4]
    arrived = box.arrived(2)
    assert arrived is not None and arrived.shown
    assert box.arrived(2) is None  # a copy: already let go
    assert box.arrived(4) is late and len(box) == 0  # 3 was trimmed unread: let go too


def test_a_full_outbox_lets_the_oldest_go_and_counts_them() -> None:
    box = Outbox(limit=2)
    for i in range(3):
        box.add(Chat(0, 0.0, "ana", str(i)), 0, None, shown=True)
    assert len(box) == 2 and box.dropped == 1


def test_names_values_and_who_is_on_the_other_relays() -> None:
    held = {
        b"ana": names_value("ana", "h1").encode(),
        b"ben": names_value("ben", "h2"),
        b"cy": names_value("Cy", "h3"),  # h3's heartbeat expired: a dead relay
        b"junk": b"not json",
    }
    assert read_names_value(held[b"ana"]) == ("ana", "h1")
    assert read_names_value(b'{"name": 1, "relay": "h"}') is None
    assert remote_people(held, alive={"h1", "h2"}, me="h1") == {"ben": ("ben", "h2")}


def test_keys_share_one_hash_tag_and_room_names_cannot_break_out() -> None:
    keys = Keys("physics 1{a}:b")
    tag = keys.prefix.split("{", 1)[1].split("}", 1)[0]
    assert "{" not in tag and "}" not in tag and ":" not in tag
    for key in (keys.stream, keys.meta, keys.names, keys.relays, keys.alive("h1")):
        assert key.startswith(keys.prefix + ":")
    assert Keys("lobby").stream == "lanchat:{lobby}:stream"


def test_backplane_urls() -> None:
    assert parse_address("redis://10.0.0.5:6379/0").shown == "redis://10.0.0.5:6379/0"
    hidden = parse_address("redis://:s3cret@10.0.0.5/1").shown
    assert "s3cret" not in hidden and hidden == "redis://:***@10.0.0.5/1"
    assert parse_address("rediss://lanchat:pw@r.example:6380/0").shown == (
        "rediss://lanchat:***@r.example:6380/0"
    )
    assert parse_address("unix:///run/redis/redis.sock?db=1").shown.startswith("unix://")
    for bad in ("10.0.0.5:6379", "http://x/0", "redis://", "redis://h:port/0", "redis://h/x"):
        with pytest.raises(UsageError):
            parse_address(bad)


def test_relay_names() -> None:
    assert default_relay_name("ana-pc.school.example", 7420, 0x02000A0B0C0D) == "ana-pc-0b0c0d"
    assert default_relay_name("ana pc", 7421, 0x0B0C0D) == "ana-pc-0b0c0d:7421"
    assert relay_name_problem(default_relay_name("x" * 80, 65535, 2**48 - 1)) is None
    assert relay_name_problem("h1") is None and relay_name_problem("h1:7421") is None
    for bad in ("", "-x", "a b", "a/b", "x" * 64):
        assert relay_name_problem(bad) is not None


def test_a_rename_entry_keeps_both_names() -> None:
    event = decode_entry(b"2-0", fields(9, 2, Renamed(0, 1.0, "ana", "anna"))).event
    assert event == Renamed(9, 1.0, "ana", "anna")
    assert json.loads(entry_fields(2, event)[1])["type"] == "nick"
