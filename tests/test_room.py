"""The room's rules without a socket or a thread: what each thing a client does produces (names,
sequence numbers, history, greetings, leaving), read from the room's outputs."""

from __future__ import annotations

import pytest

from lanchat.protocol import (
    AskHelp,
    AskWho,
    Chat,
    FrameError,
    Goodbye,
    Hello,
    HelpText,
    Joined,
    Left,
    LineTooLong,
    Moderation,
    Ping,
    Pong,
    Problem,
    Quit,
    Renamed,
    Resume,
    Say,
    SetName,
    Summary,
    WhoList,
)
from lanchat.room import (
    GREETING_NAMES,
    NOTICE_BURST,
    NOTICE_WINDOW_SECONDS,
    RATE_WINDOW_SECONDS,
    SUMMARY_AFTER_SECONDS,
    Greet,
    Hangup,
    Output,
    Past,
    Publish,
    Recode,
    Refused,
    Room,
    Send,
)


class Clock:
    """A clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def hello(name: str | None, *, exact: bool = False, client: str = "") -> Hello:
    return Hello(1, name, exact, client)


def published(outputs: list[Output]) -> list[object]:
    return [o.event for o in outputs if isinstance(o, Publish)]


def sent(outputs: list[Output], to: int) -> list[object]:
    return [o.event for o in outputs if isinstance(o, Send) and o.to == to]


@pytest.fixture
def room() -> Room:
    return Room("lobby", history=3, clock=Clock(), ticks=Clock())


def test_a_join_greets_the_newcomer_and_tells_everyone(room: Room) -> None:
    room.join(1, hello("alice"))
    outputs = room.join(2, hello("bob", client="lanchat 1.0"))
    greet, joined = outputs
    assert isinstance(greet, Greet) and greet.to == 2
    assert greet.welcome.name == "bob" and greet.welcome.room == "lobby"
    assert greet.who.names == ("alice", "bob") and greet.who.count == 2
    assert joined == Publish(Joined(2, 1000.0, "bob", "lanchat", 2))
    member = room.member(2)
    assert member is not None and member.kind == "lanchat" and member.program == "lanchat 1.0"
    assert room.size == 2


def test_raw_clients_are_guests_numbered_in_order(room: Room) -> None:
    room.join(1, None)
    room.join(2, None)
    names = [m.name for m in room.members]
    assert names == ["guest-1", "guest-2"]
    assert [m.kind for m in room.members] == ["raw", "raw"]


def test_a_taken_name_gets_a_suffix_or_is_refused_when_exact(room: Room) -> None:
    room.join(1, hello("ana"))
    room.join(2, hello("ANA"))  # names compare case-folded
    assert [m.name for m in room.members] == ["ana", "ANA-2"]
    with pytest.raises(Refused) as refused:
        room.join(3, hello("Ana", exact=True))
    assert refused.value.code == "name-taken"
    assert room.size == 2  # a refused join leaves no trace


@pytest.mark.parametrize(("name", "code"), [("server", "name-reserved"), ("a b", "bad-name")])
def test_an_unusable_name_is_refused(room: Room, name: str, code: str) -> None:
    with pytest.raises(Refused) as refused:
        room.join(1, hello(name))
    assert refused.value.code == code


def test_a_full_room_and_a_closing_room_refuse(room: Room) -> None:
    small = Room(max_clients=1, clock=Clock())
    small.join(1, None)
    with pytest.raises(Refused) as full:
        small.join(2, None)
    assert full.value.code == "server-full" and "1 person" in full.value.message
    room.shutdown()
    with pytest.raises(Refused) as closing:
        room.join(3, None)
    assert closing.value.code == "shutdown"


def test_every_event_takes_the_next_sequence_number(room: Room) -> None:
    room.join(1, hello("alice"))  # join: seq 1
    outputs = room.handle(1, ["one", Say("two", action=True), SetName("al"), "three"])
    events = published(outputs)
    assert [e.seq for e in events] == [2, 3, 4, 5]  # type: ignore[attr-defined]
    assert events[0] == Chat(2, 1000.0, "alice", "one")
    assert events[1] == Chat(3, 1000.0, "alice", "two", action=True)
    assert events[2] == Renamed(4, 1000.0, "alice", "al")
    assert events[3] == Chat(5, 1000.0, "al", "three")
    assert room.seq == 5 and room.messages == 3


def test_history_keeps_the_last_messages_and_replays_them_marked(room: Room) -> None:
    room.join(1, hello("alice"))
    room.handle(1, [f"m{i}" for i in range(5)])  # history=3
    greet = room.join(2, None)[0]
    assert isinstance(greet, Greet)
    assert [c.text for c in greet.history] == ["m2", "m3", "m4"]
    assert all(c.history for c in greet.history)
    assert greet.welcome.history == 3
    assert not any(c.history for c in room.history)  # the room's own copies stay live


def test_a_raw_senders_line_carries_its_origin_and_a_lanchat_ones_does_not(room: Room) -> None:
    room.join(1, None)
    room.join(2, hello("bob"))
    raw_line = room.handle(1, ["hi"])[0]
    json_line = room.handle(2, [Say("hey")])[0]
    assert isinstance(raw_line, Publish) and raw_line.origin == 1  # raw senders skip their own
    assert isinstance(json_line, Publish) and json_line.origin == 0


def test_text_is_cleaned_and_an_empty_line_is_a_problem(room: Room) -> None:
    room.join(1, hello("alice"))
    outputs = room.handle(1, ["  \x1b[31mred\x1b[0m  ", "\x07\x1b[2J"])
    assert published(outputs)[0].text == "red"  # type: ignore[attr-defined]
    (problem,) = sent(outputs, 1)
    assert isinstance(problem, Problem) and problem.code == "empty"
    assert room.seq == 2  # the empty line took no sequence number


def test_renames_follow_the_name_rules(room: Room) -> None:
    room.join(1, hello("alice"))
    room.join(2, hello("bob"))
    taken = sent(room.handle(2, [SetName("ALICE")]), 2)
    assert isinstance(taken[0], Problem) and taken[0].code == "name-taken"
    bad = sent(room.handle(2, [SetName("no spaces")]), 2)
    assert isinstance(bad[0], Problem) and bad[0].code == "bad-name"
    assert room.handle(2, [SetName("bob")]) == []  # the same name: nothing happens
    renamed = published(room.handle(2, [SetName("Bob")]))  # a change of case is a rename
    assert renamed == [Renamed(3, 1000.0, "bob", "Bob")]
    room.handle(2, [SetName("robert")])
    assert room.join(3, hello("bob", exact=True))  # the old name is free again


def test_questions_are_answered_to_the_asker_only(room: Room) -> None:
    room.join(1, hello("alice"))
    room.join(2, hello("bob"))
    outputs = room.handle(2, [AskWho(), Ping("t1"), AskHelp()])
    assert published(outputs) == []
    who, pong, help_text = sent(outputs, 2)
    assert who == WhoList(2, 1000.0, ("alice", "bob"), 2)
    assert pong == Pong(2, 1000.0, "t1")
    assert isinstance(help_text, HelpText)


def test_bad_lines_become_problems_for_their_sender(room: Room) -> None:
    room.join(1, hello("alice"))
    outputs = room.handle(
        1, [LineTooLong(4096), FrameError("bad-frame", "Not JSON."), hello("again")]
    )
    codes = [e.code for e in sent(outputs, 1)]  # type: ignore[attr-defined]
    assert codes == ["line-too-long", "bad-frame", "bad-frame"]
    assert room.seq == 1


def test_a_quit_ends_the_batch_and_says_goodbye(room: Room) -> None:
    room.join(1, hello("alice"))
    room.join(2, hello("bob"))
    outputs = room.handle(1, ["last words", Quit(), "never relayed"])
    assert [type(e).__name__ for e in published(outputs)] == ["Chat", "Left"]
    assert published(outputs)[1] == Left(4, 1000.0, "alice", "quit", 1)
    (goodbye,) = sent(outputs, 1)
    assert isinstance(goodbye, Goodbye) and goodbye.reason == "quit"
    assert outputs[-1] == Hangup(1, "quit")
    assert room.handle(1, ["after leaving"]) == []  # a leaving client's lines are drained
    assert room.leave(1, "closed") == []  # leaving twice: nothing more


@pytest.mark.parametrize(("reason", "goodbye"), [("closed", False), ("too-slow", True)])
def test_a_leave_tells_the_room_and_hangs_up(room: Room, reason: str, goodbye: bool) -> None:
    room.join(1, hello("alice"))
    outputs = room.leave(1, reason)
    assert published(outputs) == [Left(2, 1000.0, "alice", reason, 0)]
    assert bool(sent(outputs, 1)) is goodbye
    assert outputs[-1] == Hangup(1, reason)
    assert room.size == 0


def test_shutdown_says_goodbye_once_and_hangs_up_on_everyone(room: Room) -> None:
    room.join(1, hello("alice"))
    room.join(2, None)
    outputs = room.shutdown()
    assert published(outputs) == [Goodbye(3, 1000.0, "shutdown", "Server shutting down. Goodbye.")]
    assert [o for o in outputs if isinstance(o, Hangup)] == [
        Hangup(1, "shutdown"),
        Hangup(2, "shutdown"),
    ]
    assert room.shutdown() == [] and room.size == 0


def test_a_late_hello_upgrades_a_raw_member(room: Room) -> None:
    room.join(1, hello("alice"))
    room.join(2, None)  # guest-1, greeted as raw
    outputs = room.upgrade(2, hello("alice", client="lanchat"))
    assert outputs[0] == Recode(2, "lanchat")
    assert published(outputs) == [Renamed(3, 1000.0, "guest-1", "alice-2")]
    greet = outputs[-1]
    assert isinstance(greet, Greet) and greet.welcome.name == "alice-2"
    member = room.member(2)
    assert member is not None and member.kind == "lanchat" and member.program == "lanchat"


def test_a_late_hello_the_room_refuses_is_told_and_the_member_leaves(room: Room) -> None:
    room.join(1, None)
    with pytest.raises(Refused) as refused:
        room.upgrade(1, hello("server"))
    assert room.member(1) is not None and room.member(1).name == "guest-1"  # type: ignore[union-attr]
    outputs = room.refuse(1, refused.value)
    problem = sent(outputs, 1)[0]
    assert isinstance(problem, Problem) and problem.code == "name-reserved"
    assert published(outputs) == [Left(2, 1000.0, "guest-1", "refused", 0)]
    assert outputs[-1] == Hangup(1, "refused")


def test_a_big_rooms_greeting_lists_the_first_names_and_the_count() -> None:
    room = Room(clock=Clock())
    for i in range(GREETING_NAMES + 5):
        room.join(i + 1, hello(f"p{i}"))
    greet = room.join(999, None)[0]
    assert isinstance(greet, Greet)
    assert len(greet.who.names) == GREETING_NAMES and greet.who.count == GREETING_NAMES + 6


def test_the_rate_counts_whole_seconds_of_the_last_window() -> None:
    ticks = Clock()
    room = Room(clock=Clock(), ticks=ticks)
    room.join(1, None)
    room.handle(1, ["a", "b", "c"])  # in second 1000
    assert room.rate() == 0  # the current second is not whole yet
    ticks.now += 1
    assert room.rate() == 3 / RATE_WINDOW_SECONDS
    ticks.now += RATE_WINDOW_SECONDS + 1
    assert room.rate() == 0


def test_a_silent_raw_client_is_greeted_but_not_announced_until_it_speaks() -> None:
    room = Room(clock=Clock(), ticks=Clock())
    room.join(1, hello("ana"))
    outputs = room.join(2, None, announce=False)
    assert [type(o) for o in outputs] == [Greet]  # no Joined for the others
    greet = outputs[0]
    assert isinstance(greet, Greet) and greet.who.names == ("ana",) and greet.who.count == 1
    assert room.size == 1 and room.connections == 2
    assert sent(room.handle(1, [AskWho()]), 1)[0].names == ("ana",)  # type: ignore[attr-defined]
    spoken = room.handle(2, ["hi"])
    assert [type(e).__name__ for e in published(spoken)] == ["Joined", "Chat"]
    assert published(spoken)[0].count == 2  # type: ignore[attr-defined]


def test_a_silent_client_leaves_unannounced() -> None:
    room = Room(clock=Clock(), ticks=Clock())
    room.join(1, None, announce=False)
    outputs = room.leave(1, "closed")
    assert outputs == [Hangup(1, "closed")]
    assert room.join(2, None, announce=False)  # and a quit as its first line says nothing
    assert published(room.handle(2, [Quit()])) == []


def test_a_full_room_lets_the_longest_silent_connection_go_for_a_newcomer() -> None:
    ticks = Clock()
    room = Room(max_clients=2, clock=Clock(), ticks=ticks)
    room.join(1, hello("ana"))
    room.join(2, None, announce=False)
    with pytest.raises(Refused):  # silent, but not for long yet
        room.join(3, hello("ben"))
    ticks.now += 61
    outputs = room.join(3, hello("ben"))
    goodbye = sent(outputs, 2)
    assert isinstance(goodbye[0], Goodbye) and goodbye[0].reason == "idle"
    assert Hangup(2, "idle") in outputs
    assert [m.name for m in room.members] == ["ana", "ben"]
    ticks.now += 1000
    with pytest.raises(Refused):  # someone who has spoken is never let go for a newcomer
        room.join(4, hello("cy"))


def test_a_silent_client_that_identifies_late_is_announced_under_its_name() -> None:
    room = Room(clock=Clock(), ticks=Clock())
    room.join(1, None, announce=False)
    outputs = room.upgrade(1, hello("dana"))
    assert outputs[0] == Recode(1, "lanchat")
    assert [type(e).__name__ for e in published(outputs)] == ["Joined"]  # no rename from guest
    assert published(outputs)[0].name == "dana"  # type: ignore[attr-defined]


# --- resume: a reconnecting client names the epoch and the last seq it saw ---------------------


def greeting_of(outputs: list[Output]) -> Greet:
    greet = next(o for o in outputs if isinstance(o, Greet))
    return greet


def test_a_resuming_client_gets_exactly_the_chats_it_missed(room: Room) -> None:
    room.join(1, hello("alice"))  # seq 1
    room.handle(1, ["seen"])  # seq 2
    room.join(2, hello("bob"))  # seq 3: a join is not replayed
    room.handle(2, ["m1", Say("m2", action=True)])  # seq 4, 5
    greet = greeting_of(room.join(3, Hello(1, "carol", resume=Resume(room.epoch, 2))))
    assert [(c.seq, c.text, c.history) for c in greet.history] == [
        (4, "m1", True),
        (5, "m2", True),
    ]
    assert greet.gap is None
    assert greet.welcome.history == 2 and greet.welcome.epoch == room.epoch
    assert greet.welcome.resumed


def test_a_resume_up_to_date_replays_nothing(room: Room) -> None:
    room.join(1, hello("alice"))
    room.handle(1, ["a"])
    greet = greeting_of(room.join(2, Hello(1, "bob", resume=Resume(room.epoch, room.seq))))
    assert greet.history == () and greet.gap is None


def test_a_resume_past_the_bounded_history_gets_a_gap(room: Room) -> None:
    room.join(1, hello("alice"))  # seq 1
    room.handle(1, [f"m{i}" for i in range(6)])  # seq 2..7; history=3 keeps 5, 6, 7
    greet = greeting_of(room.join(2, Hello(1, "bob", resume=Resume(room.epoch, 2))))
    assert [c.seq for c in greet.history] == [5, 6, 7]
    assert greet.gap is not None
    assert (greet.gap.reason, greet.gap.start, greet.gap.end) == ("history-trimmed", 3, 4)
    assert greet.gap.to_dict()["from"] == 3 and greet.gap.to_dict()["to"] == 4


def test_a_resume_from_another_epoch_is_told_the_history_was_lost(room: Room) -> None:
    room.join(1, hello("alice"))
    room.handle(1, ["a", "b"])
    greet = greeting_of(room.join(2, Hello(1, "bob", resume=Resume("an-old-epoch", 40))))
    assert greet.gap is not None and greet.gap.reason == "history-lost"
    assert not greet.welcome.resumed
    assert "lost its history" in greet.gap.message
    assert [c.text for c in greet.history] == ["a", "b"]  # all of this history is new to it


def test_a_room_restored_from_its_past_keeps_epoch_seq_and_chats() -> None:
    chats = (Chat(8, 1.0, "ana", "kept"), Chat(9, 2.0, "ana", "newest"))
    room = Room(history=3, clock=Clock(), past=Past("e1", seq=11, chats=chats, trimmed=7))
    assert (room.epoch, room.seq) == ("e1", 11)
    outputs = room.join(1, Hello(1, "bob", resume=Resume("e1", 8)))
    assert [c.text for c in greeting_of(outputs).history] == ["newest"]
    assert published(outputs)[0] == Joined(12, 1000.0, "bob", "lanchat", 1)
    gap = greeting_of(room.join(2, Hello(1, "cy", resume=Resume("e1", 5)))).gap
    assert gap is not None and (gap.start, gap.end) == (6, 7)


def test_a_late_hello_that_resumes_replays_from_its_seq(room: Room) -> None:
    room.join(1, hello("alice"))  # seq 1
    room.handle(1, ["before"])  # seq 2
    room.join(2, None)  # seq 3: greeted as raw (its hello is late)
    room.handle(1, ["queued as text"])  # seq 4: sent to it as text, useless to a lanchat client
    outputs = room.upgrade(2, Hello(1, "bob", resume=Resume(room.epoch, 2)))
    assert [c.text for c in greeting_of(outputs).history] == ["queued as text"]


LOOK_ALIKES = [
    "\u0430na",  # Cyrillic a
    "\uff41\uff4e\uff41",  # fullwidth
    "\U0001d41a\U0001d427\U0001d41a",  # mathematical bold
    "ANA",
    "ana.",
    "a_na",
]


@pytest.mark.parametrize("look_alike", LOOK_ALIKES)
def test_a_look_alike_name_joins_with_a_suffix_or_is_refused_when_exact(
    room: Room, look_alike: str
) -> None:
    room.join(1, hello("ana"))
    room.join(2, hello(look_alike))
    assert room.members[1].name == f"{look_alike}-2"
    with pytest.raises(Refused) as refused:
        room.join(3, hello(look_alike, exact=True))
    assert refused.value.code == "name-taken"
    if look_alike.casefold() != "ana":
        assert "looks like 'ana'" in refused.value.message


@pytest.mark.parametrize("look_alike", LOOK_ALIKES)
def test_a_rename_to_a_look_alike_is_refused_and_names_who_is_here(
    room: Room, look_alike: str
) -> None:
    room.join(1, hello("ana"))
    room.join(2, hello("bob"))
    (problem,) = sent(room.handle(2, [SetName(look_alike)]), 2)
    assert isinstance(problem, Problem) and problem.code == "name-taken"
    assert "'ana'" in problem.message or "taken: ana" in problem.message
    assert [m.name for m in room.members] == ["ana", "bob"]


def test_a_member_may_rename_to_a_look_alike_of_its_own_name(room: Room) -> None:
    room.join(1, hello("ana"))
    assert published(room.handle(1, [SetName("ana.")])) == [Renamed(2, 1000.0, "ana", "ana.")]
    room.leave(1, "quit")
    assert room.join(2, hello("ana", exact=True))  # the key left with the member


@pytest.mark.parametrize("look_alike", ["\uff53erver", "\u0455erver", "r00t", "admin."])
def test_a_look_alike_of_a_reserved_name_is_reserved(room: Room, look_alike: str) -> None:
    with pytest.raises(Refused) as refused:
        room.join(1, hello(look_alike))
    assert refused.value.code == "name-reserved"
    room.join(1, hello("bob"))
    (problem,) = sent(room.handle(1, [SetName(look_alike)]), 1)
    assert isinstance(problem, Problem) and problem.code == "name-reserved"


def test_invisible_characters_never_reach_the_room(room: Room) -> None:
    room.join(1, hello("alice"))
    outputs = room.handle(1, ["a\u2028b\u200f\ufeffc\u200bd\x1b]0;e"])
    assert published(outputs)[0].text == "a bcde"  # type: ignore[attr-defined]
    (problem,) = sent(room.handle(1, [SetName("ali\u200dce")]), 1)
    assert isinstance(problem, Problem) and problem.code == "bad-name"


def test_a_burst_of_joins_and_leaves_is_summarised() -> None:
    ticks = Clock()
    room = Room(clock=Clock(), ticks=ticks)
    told = []
    for i in range(20):
        told += published(room.join(i + 1, hello(f"p{i}")))
    joined = [e for e in told if isinstance(e, Joined)]
    assert len(joined) == NOTICE_BURST  # the first ones one by one, the rest counted
    for i in range(5):
        told += published(room.leave(i + 1, "closed"))
    assert not [e for e in told if isinstance(e, Left)]  # still in the burst: counted
    assert room.tick() == []  # not quiet for long enough yet
    ticks.now += SUMMARY_AFTER_SECONDS
    (summary,) = published(room.tick())
    assert summary == Summary(room.seq, 1000.0, 20 - NOTICE_BURST, 5, 15)
    assert room.tick() == []  # told once
    ticks.now += NOTICE_WINDOW_SECONDS
    assert [type(e) for e in published(room.join(99, hello("late")))] == [Joined]


def test_promote_makes_an_operator_and_tells_the_room_once(room: Room) -> None:
    room.join(1, hello("alice"))
    room.join(2, hello("bob"))
    member = room.member(1)
    assert member is not None and not member.operator
    (told,) = published(room.promote(1))
    assert told == Moderation(3, 1000.0, "operator", "alice", "", "alice is now an operator")
    assert member.operator
    assert room.promote(1) == []  # one already: nothing to tell
    assert room.promote(99) == []  # not here: nothing
    by = published(room.promote(2, by="alice"))
    assert by[0].text == "bob is now an operator (made one by alice)"  # type: ignore[attr-defined]


def test_an_operator_who_joins_is_announced_as_one(room: Room) -> None:
    outputs = room.join(1, hello("teacher"), operator=True)
    joined, made = published(outputs)
    assert isinstance(joined, Joined) and joined.name == "teacher"
    assert isinstance(made, Moderation) and made.action == "operator" and made.seq == 2
    member = room.member(1)
    assert member is not None and member.operator
    assert [type(e) for e in published(room.join(2, hello("pupil")))] == [Joined]


def test_a_silent_operator_is_announced_as_one_when_it_speaks(room: Room) -> None:
    assert published(room.join(1, None, announce=False)) == []
    assert room.promote(1) == []  # not announced yet: nobody is told about a silent socket
    told = published(room.handle(1, ["hello"]))
    assert [type(e) for e in told] == [Joined, Moderation, Chat]
