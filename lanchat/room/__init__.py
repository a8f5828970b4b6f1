"""The room, sans-IO: what each thing a client does means, decided without sockets or locks.

    rules.py    Room: members and names, sequence numbers, greetings, notices, what each
                request does; returns outputs
    outputs.py  the outputs (Publish, Send, Greet, Recode, Hangup, BarAddress, LiftBan),
                Member, Refused, Item
    names.py    who holds which name (by look-alike key), guests, suffixes, renames
    moderation.py  what operators may do: kick, mute, ban, unban, the topic; who may do it
    notices.py  join and leave notices one by one up to a burst, then one summary
    history.py  the bounded history of chats, its epoch, and what a reconnecting client
                missed (resume and gap); Past, where a history starts
    remote.py   with a backplane: the people on the other relays of the room, and the names
                this relay gives and frees (Claim)

Like h11's connection object it does no I/O; the hub (lanchat/hub.py) calls it under its lock
and applies what it returns. tests/test_room.py tests it without a socket.
"""

from __future__ import annotations

from lanchat.room.history import History, Past, new_epoch
from lanchat.room.moderation import BanRecord, ModerationView, MuteRecord
from lanchat.room.names import MAX_NAME_SUFFIX, Names
from lanchat.room.notices import (
    NOTICE_BURST,
    NOTICE_WINDOW_SECONDS,
    SUMMARY_AFTER_SECONDS,
    NoticeBudget,
)
from lanchat.room.outputs import (
    GOODBYES,
    BarAddress,
    Greet,
    Hangup,
    Item,
    LiftBan,
    Member,
    Output,
    Publish,
    Recode,
    Refused,
    Send,
)
from lanchat.room.remote import Claim, RemotePerson, RemoteRoster
from lanchat.room.rules import GREETING_NAMES, RATE_WINDOW_SECONDS, SILENT_GRACE_SECONDS, Room

__all__ = [
    "GOODBYES",
    "GREETING_NAMES",
    "MAX_NAME_SUFFIX",
    "NOTICE_BURST",
    "NOTICE_WINDOW_SECONDS",
    "RATE_WINDOW_SECONDS",
    "SILENT_GRACE_SECONDS",
    "SUMMARY_AFTER_SECONDS",
    "BanRecord",
    "BarAddress",
    "Claim",
    "Greet",
    "Hangup",
    "History",
    "Item",
    "LiftBan",
    "Member",
    "ModerationView",
    "MuteRecord",
    "Names",
    "NoticeBudget",
    "Output",
    "Past",
    "Publish",
    "Recode",
    "Refused",
    "RemotePerson",
    "RemoteRoster",
    "Room",
    "Send",
    "new_epoch",
]
