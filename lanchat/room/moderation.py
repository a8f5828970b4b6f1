"""Moderation, sans-IO: what operators may do to the room (kick, mute, ban, topic) and what
it does.

An operator is a member the relay made one (Member.operator: Room.promote, or joining as one).
Only operators may moderate; anyone else who tries gets a private refusal and nothing happens.
An operator may act on anyone but themselves, other operators included (two teachers share a
room as equals), except the console: an operator on the server's own computer
(Member.own_computer), the person who can stop the server anyway, cannot be kicked, muted or
banned by another. Every action is told to the room in a `moderation` frame, with a sentence for
people ("bob is muted for 10 minutes by teacher"), so nothing an operator does is hidden.

* /kick: the member leaves (reason "kicked") with a goodbye that says who and why. They may
  join again; their lanchat client does not reconnect on its own (lanchat/join.py).
* /mute: their lines (messages, actions, renames) are not relayed for N minutes; each batch
  they send gets a private reply saying for how long. A mute is on the name (its look-alike key,
  lanchat/room/names.py), so leaving and coming back under the same name does not end it; it
  ends when it runs out (Room.tick) or with /unmute.
* /ban: every connection from the member's address leaves (reason "banned"), and the room
  returns BarAddress for the hub to hand to admission (lanchat/admission.py), which refuses that
  address on the accept thread until the server stops; the room also refuses a join from it
  (one accepted just before the ban). The server's own computer cannot be banned: its programs
  connect from 127.0.0.1, ::1 or its own LAN address, which all of them share, the server's
  own `lanchat status` included (lanchat.admission.own_computer; another 127/8 source address,
  chosen on purpose, can be). An operator cannot ban their own address (a school's NAT can
  make a whole room one address): /kick does.
* /topic TEXT: the room's topic, in every newcomer's welcome, in `/topic`, in `lanchat status`
  and on the web page.

Owned by the room (rules.py), called under the hub lock like everything else of the room.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

from lanchat.protocol import (
    MAX_TOPIC_CHARS,
    OPERATOR_REQUESTS,
    AskTopic,
    Ban,
    Kick,
    Moderation,
    Mute,
    Problem,
    SetTopic,
    TopicIs,
    Unban,
    Unmute,
    clean_text,
    name_key,
)
from lanchat.room.outputs import BarAddress, LiftBan, Member, Output, Publish, Send

if TYPE_CHECKING:
    from lanchat.room.rules import Room

ModerationRequest = Kick | Mute | Unmute | Ban | Unban | SetTopic | AskTopic
MODERATION_REQUESTS = (Kick, Mute, Unmute, Ban, Unban, SetTopic, AskTopic)


@dataclass(frozen=True, slots=True)
class MuteRecord:
    """A name that may not speak until `until` (the room's ticks); `ends` is the same moment
    as Unix time, for `lanchat status`."""

    name: str
    until: float
    ends: float
    by: str


@dataclass(frozen=True, slots=True)
class BanRecord:
    """An address banned until the server stops: whose it was, by whom, why, when (Unix)."""

    address: str
    name: str
    by: str
    reason: str
    time: float


@dataclass(frozen=True, slots=True)
class ModerationView:
    """The room's moderation state at one moment, for `lanchat status`."""

    topic: str
    topic_by: str
    operators: tuple[str, ...]
    muted: tuple[MuteRecord, ...]
    bans: tuple[BanRecord, ...]


def _minutes(n: int) -> str:
    return f"{n} minute{'s' if n != 1 else ''}"


class Moderator:
    """The room's topic, mutes and bans, and the rules of the operators' commands."""

    def __init__(self, room: Room) -> None:
        self._room = room
        self.topic = ""
        self.topic_by = ""
        self._mutes: dict[str, MuteRecord] = {}  # by name key
        self._bans: dict[str, BanRecord] = {}  # by address (lanchat.admission.plain_ip)

    # --- questions -------------------------------------------------------------------------

    def banned(self, address: str) -> bool:
        return bool(address) and address in self._bans

    def muted_for(self, member: Member, now: float) -> MuteRecord | None:
        """The mute on `member`'s name, if one is running at `now` (ticks)."""
        record = self._mutes.get(name_key(member.name))
        return record if record is not None and record.until > now else None

    def view(self) -> ModerationView:
        room = self._room
        return ModerationView(
            self.topic,
            self.topic_by,
            tuple(m.name for m in room.members if m.operator),
            tuple(self._mutes.values()),
            tuple(self._bans.values()),
        )

    # --- commands ----------------------------------------------------------------------------

    def handle(self, member: Member, request: ModerationRequest) -> list[Output]:
        """Carry out an operator's command, or say privately why not."""
        room = self._room
        if isinstance(request, AskTopic):
            return [Send(member.id, TopicIs(room.seq, room.now(), self.topic, self.topic_by))]
        command = OPERATOR_REQUESTS[type(request)]
        if not member.operator:
            return [self._refuse(member, "not-operator", f"Only an operator can use {command}.")]
        if isinstance(request, SetTopic):
            return self._set_topic(member, request.text)
        if isinstance(request, Unmute):
            return self._unmute(member, request.name)
        if isinstance(request, Unban):
            return self._unban(member, request.target)
        target = room.find(request.name)
        if target is None:
            shown = clean_text(request.name)[:40]
            message = f"Nobody called {shown!r} is here (/who lists everyone)."
            return [self._refuse(member, "no-such-name", message)]
        if target is member:
            return [self._refuse(member, "not-yourself", f"You cannot use {command} on yourself.")]
        if target.operator and target.own_computer:
            message = (
                f"{target.name} is an operator at the server's own computer: other operators "
                f"cannot use {command} on them."
            )
            return [self._refuse(member, "console-operator", message)]
        if isinstance(request, Kick):
            return self._kick(member, target, request.reason)
        if isinstance(request, Mute):
            return self._mute(member, target, request.minutes)
        return self._ban(member, target, request.reason)

    def _kick(self, by: Member, target: Member, reason: str) -> list[Output]:
        why = f": {reason}" if reason else ""
        text = f"{target.name} was removed by {by.name}{why}"
        goodbye = f"You were removed from the room by {by.name}{why.rstrip('.')}."
        return [
            self._announce("kick", target.name, by.name, text, reason=reason),
            *self._room.leave(target.id, "kicked", goodbye=goodbye),
        ]

    def _ban(self, by: Member, target: Member, reason: str) -> list[Output]:
        address = target.address
        if not address or target.own_computer:
            message = (
                f"{target.name} connects from the server's own computer, whose address every "
                "program there shares (`lanchat status` included), so it cannot be banned. "
                f"Use /kick {target.name}."
            )
            return [self._refuse(by, "cannot-ban", message)]
        if address == by.address:
            message = (
                f"{target.name} connects from your own address ({address}): a ban would "
                f"remove you too. Use /kick {target.name}."
            )
            return [self._refuse(by, "cannot-ban", message)]
        room = self._room
        self._bans[address] = BanRecord(address, target.name, by.name, reason, room.now())
        others = [m for m in room.members if m.address == address and m is not target]
        why = f": {reason}" if reason else ""
        also = ""
        if others:
            also = f" (and {len(others)} other connection{'s' if len(others) > 1 else ''} from "
            also += "the same address)"
        text = f"{target.name} was banned by {by.name}{also}{why}"
        goodbye = (
            f"You were banned from the room by {by.name}{why.rstrip('.')}. Your address "
            "cannot connect again until the server restarts or an operator lifts the ban."
        )
        outputs: list[Output] = [
            self._announce("ban", target.name, by.name, text, reason=reason),
            BarAddress(address),
        ]
        for member in (target, *others):
            outputs += room.leave(member.id, "banned", goodbye=goodbye)
        return outputs

    def _mute(self, by: Member, target: Member, minutes: int) -> list[Output]:
        room = self._room
        seconds = minutes * 60
        record = MuteRecord(target.name, room.ticks() + seconds, room.now() + seconds, by.name)
        self._mutes[name_key(target.name)] = record
        text = f"{target.name} is muted for {_minutes(minutes)} by {by.name}"
        return [self._announce("mute", target.name, by.name, text, minutes=minutes)]

    def _unmute(self, by: Member, name: str) -> list[Output]:
        record = self._mutes.get(name_key(name))
        if record is None or record.until <= self._room.ticks():
            shown = clean_text(name)[:40]
            return [self._refuse(by, "not-muted", f"{shown!r} is not muted.")]
        del self._mutes[name_key(name)]
        text = f"{record.name} can speak again (unmuted by {by.name})"
        return [self._announce("unmute", record.name, by.name, text)]

    def _unban(self, by: Member, target: str) -> list[Output]:
        """Lift the bans on `target`: an address as /ban recorded it, or the name a ban was
        made on (every address banned under that name). The room is told whose ban ended,
        not the address."""
        wanted = target.strip()
        key = name_key(wanted)
        lifted = [
            record
            for address, record in self._bans.items()
            if address == wanted or name_key(record.name) == key
        ]
        if not lifted:
            shown = clean_text(wanted)[:40]
            message = f"No ban on {shown!r} (`lanchat status` lists the bans, with names)."
            return [self._refuse(by, "not-banned", message)]
        outputs: list[Output] = []
        for record in lifted:
            del self._bans[record.address]
            text = f"{record.name}'s address may connect again (unbanned by {by.name})"
            outputs.append(self._announce("unban", record.name, by.name, text))
            outputs.append(LiftBan(record.address))
        return outputs

    def _set_topic(self, by: Member, text: str) -> list[Output]:
        topic = clean_text(text).strip()
        if len(topic) > MAX_TOPIC_CHARS:
            message = (
                f"A topic has at most {MAX_TOPIC_CHARS} characters; that one has {len(topic)}."
            )
            return [self._refuse(by, "topic-too-long", message)]
        self.topic, self.topic_by = topic, by.name if topic else ""
        said = f"{by.name} set the topic: {topic}" if topic else f"{by.name} cleared the topic"
        return [self._announce("topic", "", by.name, said, topic=topic)]

    # --- what time and speech bring about ------------------------------------------------------

    def silence(self, member: Member) -> MuteRecord | None:
        """The mute that keeps `member` from speaking now, if one does."""
        if not self._mutes:  # the common case, on every batch: no name key to work out
            return None
        return self.muted_for(member, self._room.ticks())

    def muted_reply(self, record: MuteRecord) -> Problem:
        """The private reply to a muted member's words: for how long (made when it is sent,
        so its seq is the room's latest)."""
        room = self._room
        left = max(1, math.ceil((record.until - room.ticks()) / 60))
        message = (
            f"You are muted by {record.by} for {left} more minute{'s' if left != 1 else ''}: "
            "what you send does not reach the room until then."
        )
        return Problem(room.seq, room.now(), "muted", message)

    def tick(self) -> list[Output]:
        """Mutes that ran out: forgotten, and told to the room when their member is here."""
        now = self._room.ticks()
        over = [key for key, record in self._mutes.items() if record.until <= now]
        outputs: list[Output] = []
        for key in over:
            record = self._mutes.pop(key)
            if self._room.find(record.name) is not None:
                text = f"{record.name} can speak again (the mute is over)"
                outputs.append(self._announce("unmute", record.name, "", text))
        return outputs

    # --- helpers -------------------------------------------------------------------------------

    def _announce(
        self,
        action: str,
        name: str,
        by: str,
        text: str,
        *,
        reason: str = "",
        minutes: int = 0,
        topic: str = "",
    ) -> Publish:
        room = self._room
        event = Moderation(
            room.next_seq(), room.now(), action, name, by, text, reason, minutes, topic
        )
        return Publish(event)

    def _refuse(self, member: Member, code: str, message: str) -> Send:
        room = self._room
        return Send(member.id, Problem(room.seq, room.now(), code, message))
