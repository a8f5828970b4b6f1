"""Moderation in the room, without a socket: what an operator's /kick, /mute, /unmute, /ban,
/unban and /topic do, what anyone else's do (nothing but a private refusal), and what time
undoes."""

from __future__ import annotations

import pytest

from lanchat.protocol import (
    AskHelp,
    AskTopic,
    AskWho,
    Ban,
    Chat,
    Goodbye,
    Hello,
    HelpText,
    Kick,
    Left,
    Moderation,
    Mute,
    Problem,
    Renamed,
    Request,
    Say,
    SetName,
    SetTopic,
    TopicIs,
    Unban,
    Unmute,
    WhoList,
)
from lanchat.room import BarAddress, Greet, Hangup, LiftBan, Output, Publish, Refused, Room, Send

TEACHER, BOB, CAROL = 1, 2, 3


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def published(outputs: list[Output]) -> list[object]:
    return [o.event for o in outputs if isinstance(o, Publish)]


def sent(outputs: list[Output], to: int) -> list[object]:
    return [o.event for o in outputs if isinstance(o, Send) and o.to == to]


def problems(outputs: list[Output], to: int) -> list[str]:
    return [e.code for e in sent(outputs, to) if isinstance(e, Problem)]


@pytest.fixture
def ticks() -> Clock:
    return Clock()


@pytest.fixture
def room(ticks: Clock) -> Room:
    """A teacher (an operator) on 10.0.0.1, bob on 10.0.0.2, carol on 10.0.0.3; events 1-4
    (the teacher's join and promotion, bob's and carol's joins)."""
    room = Room("class", clock=Clock(), ticks=ticks)
    room.join(TEACHER, Hello(1, "teacher"), operator=True, address="10.0.0.1")
    room.join(BOB, Hello(1, "bob"), address="10.0.0.2")
    room.join(CAROL, Hello(1, "carol"), address="10.0.0.3")
    return room


@pytest.mark.parametrize(
    ("request_", "command"),
    [
        (Kick("carol", "no reason"), "/kick"),
        (Mute("carol", 5), "/mute"),
        (Unmute("carol"), "/unmute"),
        (Ban("carol"), "/ban"),
        (Unban("carol"), "/unban"),
        (SetTopic("my topic"), "/topic"),
    ],
)
def test_only_an_operator_may_moderate_and_a_refusal_changes_nothing(
    room: Room, request_: Request, command: str
) -> None:
    seq = room.seq
    outputs = room.handle(BOB, [request_])
    (refusal,) = outputs
    assert isinstance(refusal, Send) and refusal.to == BOB
    assert isinstance(refusal.event, Problem) and refusal.event.code == "not-operator"
    assert refusal.event.message == f"Only an operator can use {command}."
    assert room.seq == seq  # nothing was told to the room
    assert [m.name for m in room.members] == ["teacher", "bob", "carol"]
    assert room.topic == "" and room.moderation().muted == () and room.moderation().bans == ()
    assert published(room.handle(CAROL, ["still speaking"]))  # carol was not muted


def test_a_kick_is_told_to_everyone_and_the_member_is_told_why(room: Room) -> None:
    outputs = room.handle(TEACHER, [Kick("BOB", "spamming")])  # names resolve by their key
    told, left = published(outputs)
    assert told == Moderation(
        5, 1000.0, "kick", "bob", "teacher", "bob was removed by teacher: spamming", "spamming"
    )
    assert isinstance(left, Left) and left.name == "bob" and left.reason == "kicked"
    (goodbye,) = sent(outputs, BOB)
    assert goodbye == Goodbye(
        6, 1000.0, "kicked", "You were removed from the room by teacher: spamming."
    )
    assert outputs[-1] == Hangup(BOB, "kicked")
    assert [m.name for m in room.members] == ["teacher", "carol"]
    # Kicked, not banned: the same address may join again.
    assert room.join(9, Hello(1, "bob"), address="10.0.0.2")


def test_a_kick_without_a_reason_and_of_a_look_alike_name(room: Room) -> None:
    outputs = room.handle(TEACHER, [Kick("c\u0430rol")])  # a Cyrillic a: the same name key
    told = published(outputs)[0]
    assert isinstance(told, Moderation) and told.text == "carol was removed by teacher"
    (goodbye,) = sent(outputs, CAROL)
    assert isinstance(goodbye, Goodbye)
    assert goodbye.message == "You were removed from the room by teacher."


def test_an_operator_cannot_act_on_themselves_nor_on_nobody(room: Room) -> None:
    for request in (Kick("teacher"), Mute("Teacher"), Ban("teacher")):
        assert problems(room.handle(TEACHER, [request]), TEACHER) == ["not-yourself"]
    outputs = room.handle(TEACHER, [Kick("dave")])
    assert problems(outputs, TEACHER) == ["no-such-name"]
    assert "Nobody called 'dave' is here" in sent(outputs, TEACHER)[0].message  # type: ignore[attr-defined]
    assert len(room.members) == 3 and published(outputs) == []


def test_operators_may_act_on_each_other(room: Room) -> None:
    room.promote(BOB)
    told = published(room.handle(BOB, [Mute("teacher", 1)]))
    assert told[0].text == "teacher is muted for 1 minute by bob"  # type: ignore[attr-defined]
    assert problems(room.handle(TEACHER, ["hello?"]), TEACHER) == ["muted"]


def test_the_operator_at_the_servers_own_computer_is_out_of_reach(room: Room) -> None:
    room.join(5, Hello(1, "console"), operator=True, address="127.0.0.1", own_computer=True)
    for request in (Kick("console"), Mute("console"), Ban("console")):
        outputs = room.handle(TEACHER, [request])
        assert problems(outputs, TEACHER) == ["console-operator"] and published(outputs) == []
    assert room.member(5) is not None and room.moderation().muted == ()
    assert published(room.handle(5, [Kick("teacher")]))  # the console may act on others


def test_a_muted_member_is_not_relayed_and_is_told_for_how_long(room: Room, ticks: Clock) -> None:
    (told,) = published(room.handle(TEACHER, [Mute("bob")]))  # 10 minutes by default
    assert told == Moderation(
        5, 1000.0, "mute", "bob", "teacher", "bob is muted for 10 minutes by teacher", minutes=10
    )
    seq, messages = room.seq, room.messages
    ticks.now += 150  # 7.5 minutes left: said as 8
    outputs = room.handle(BOB, ["one", Say("two"), Say("waves", action=True), SetName("rob")])
    assert published(outputs) == [] and room.seq == seq and room.messages == messages
    (reply,) = sent(outputs, BOB)  # once per batch, not once per line
    assert isinstance(reply, Problem) and reply.code == "muted"
    assert reply.message == (
        "You are muted by teacher for 8 more minutes: what you send does not reach the room "
        "until then."
    )
    assert room.member(BOB).name == "bob"  # type: ignore[union-attr]
    # Questions still get answers, and everyone else still speaks.
    assert isinstance(sent(room.handle(BOB, [AskWho()]), BOB)[0], WhoList)
    assert isinstance(published(room.handle(CAROL, ["hi"]))[0], Chat)
    assert [m.name for m in room.moderation().muted] == ["bob"]


def test_a_muted_operators_reply_comes_in_order_after_what_they_did(room: Room) -> None:
    room.promote(BOB)
    room.handle(TEACHER, [Mute("bob", 5)])
    outputs = room.handle(BOB, [Kick("carol"), "and stay out"])  # moderating is not speaking
    kick = published(outputs)[0]
    (reply,) = [e for e in sent(outputs, BOB) if isinstance(e, Problem)]
    assert isinstance(kick, Moderation) and kick.action == "kick"
    assert reply.code == "muted" and reply.seq == room.seq >= kick.seq  # seq never goes back


def test_a_mute_runs_out_on_a_tick_and_is_told(room: Room, ticks: Clock) -> None:
    room.handle(TEACHER, [Mute("bob", 2)])
    ticks.now += 119
    assert room.tick() == []
    assert problems(room.handle(BOB, ["not yet"]), BOB) == ["muted"]
    ticks.now += 1
    (over,) = published(room.tick())
    assert isinstance(over, Moderation) and over.action == "unmute" and over.by == ""
    assert over.text == "bob can speak again (the mute is over)"
    assert isinstance(published(room.handle(BOB, ["free"]))[0], Chat)
    assert room.moderation().muted == () and room.tick() == []


def test_unmute_ends_a_mute_early_and_says_when_there_is_none(room: Room) -> None:
    room.handle(TEACHER, [Mute("bob", 30)])
    (told,) = published(room.handle(TEACHER, [Unmute("bob")]))
    assert told.text == "bob can speak again (unmuted by teacher)"  # type: ignore[attr-defined]
    assert isinstance(published(room.handle(BOB, ["thanks"]))[0], Chat)
    assert problems(room.handle(TEACHER, [Unmute("bob")]), TEACHER) == ["not-muted"]


def test_a_mute_stays_on_the_name_across_a_reconnect(room: Room) -> None:
    room.handle(TEACHER, [Mute("bob", 10)])
    room.leave(BOB, "closed")
    room.join(7, Hello(1, "bob"), address="10.0.0.2")
    assert problems(room.handle(7, ["I am back"]), 7) == ["muted"]


def test_a_ban_removes_every_connection_from_the_address_and_refuses_it(room: Room) -> None:
    room.join(4, None, address="10.0.0.2")  # bob's second connection (a raw one)
    room.handle(4, ["me too"])
    outputs = room.handle(TEACHER, [Ban("bob", "insults")])
    told = published(outputs)[0]
    assert told == Moderation(
        room.seq - 2,
        1000.0,
        "ban",
        "bob",
        "teacher",
        "bob was banned by teacher (and 1 other connection from the same address): insults",
        "insults",
    )
    assert BarAddress("10.0.0.2") in outputs
    assert [e.name for e in published(outputs) if isinstance(e, Left)] == ["bob", "guest-1"]
    for member in (BOB, 4):
        (goodbye,) = sent(outputs, member)
        assert isinstance(goodbye, Goodbye) and goodbye.reason == "banned"
        assert "until the server restarts" in goodbye.message
        assert Hangup(member, "banned") in outputs
    assert [m.name for m in room.members] == ["teacher", "carol"]
    with pytest.raises(Refused) as refused:
        room.join(8, Hello(1, "robert"), address="10.0.0.2")  # accepted just before the ban
    assert refused.value.code == "banned"
    (ban,) = room.moderation().bans
    assert (ban.address, ban.name, ban.by, ban.reason) == ("10.0.0.2", "bob", "teacher", "insults")


def test_unban_lifts_a_ban_by_the_name_or_by_the_address(room: Room) -> None:
    room.handle(TEACHER, [Ban("bob"), Ban("carol")])
    outputs = room.handle(TEACHER, [Unban("BOB")])  # a name, compared like names are
    (told,) = published(outputs)
    assert isinstance(told, Moderation) and (told.action, told.name, told.by) == (
        "unban",
        "bob",
        "teacher",
    )
    assert told.text == "bob's address may connect again (unbanned by teacher)"
    assert "10.0.0.2" not in told.text  # the room is not told the address
    assert LiftBan("10.0.0.2") in outputs
    room.join(BOB, Hello(1, "bob"), address="10.0.0.2")  # welcome again
    assert [b.address for b in room.moderation().bans] == ["10.0.0.3"]
    assert LiftBan("10.0.0.3") in room.handle(TEACHER, [Unban("10.0.0.3")])  # by address
    assert room.moderation().bans == ()
    assert problems(room.handle(TEACHER, [Unban("bob")]), TEACHER) == ["not-banned"]


@pytest.mark.parametrize(("address", "own"), [("127.0.0.1", True), ("10.0.0.7", True), ("", False)])
def test_the_servers_own_computer_cannot_be_banned(room: Room, address: str, own: bool) -> None:
    room.join(5, Hello(1, "console"), address=address, own_computer=own)
    outputs = room.handle(TEACHER, [Ban("console")])
    assert problems(outputs, TEACHER) == ["cannot-ban"]
    assert "Use /kick console" in sent(outputs, TEACHER)[0].message  # type: ignore[attr-defined]
    assert room.member(5) is not None and room.moderation().bans == ()


def test_an_operator_cannot_ban_their_own_address(room: Room) -> None:
    room.join(6, Hello(1, "neighbour"), address="10.0.0.1")  # behind the same NAT
    outputs = room.handle(TEACHER, [Ban("neighbour")])
    assert problems(outputs, TEACHER) == ["cannot-ban"]
    assert "your own address (10.0.0.1)" in sent(outputs, TEACHER)[0].message  # type: ignore[attr-defined]
    assert not any(isinstance(o, BarAddress) for o in outputs)


def test_the_topic_is_set_told_asked_for_and_greeted_with(room: Room) -> None:
    assert sent(room.handle(BOB, [AskTopic()]), BOB) == [TopicIs(4, 1000.0, "", "")]
    (told,) = published(room.handle(TEACHER, [SetTopic("  Fractions\x1b[31m, page 12 ")]))
    assert told == Moderation(
        5,
        1000.0,
        "topic",
        "",
        "teacher",
        "teacher set the topic: Fractions, page 12",
        topic="Fractions, page 12",
    )
    assert sent(room.handle(BOB, [AskTopic()]), BOB) == [
        TopicIs(5, 1000.0, "Fractions, page 12", "teacher")
    ]
    greet = room.join(9, Hello(1, "late"), address="10.0.0.9")[0]
    assert isinstance(greet, Greet) and greet.welcome.topic == "Fractions, page 12"
    assert room.moderation().topic == "Fractions, page 12"
    (cleared,) = published(room.handle(TEACHER, [SetTopic("")]))
    assert cleared.text == "teacher cleared the topic" and room.topic == ""  # type: ignore[attr-defined]
    too_long = room.handle(TEACHER, [SetTopic("x" * 201)])
    assert problems(too_long, TEACHER) == ["topic-too-long"] and room.topic == ""


def test_help_lists_the_operator_commands_to_operators_only(room: Room) -> None:
    (mine,) = sent(room.handle(TEACHER, [AskHelp()]), TEACHER)
    (theirs,) = sent(room.handle(BOB, [AskHelp()]), BOB)
    assert isinstance(mine, HelpText) and isinstance(theirs, HelpText)
    assert "/kick NAME" in mine.text and "/ban NAME" in mine.text and "/topic" in mine.text
    assert "/kick" not in theirs.text and "/topic" in theirs.text


def test_a_renamed_member_is_found_by_the_new_name(room: Room) -> None:
    assert published(room.handle(BOB, [SetName("robert")])) == [Renamed(5, 1000.0, "bob", "robert")]
    assert problems(room.handle(TEACHER, [Kick("bob")]), TEACHER) == ["no-such-name"]
    assert published(room.handle(TEACHER, [Kick("robert")]))
