"""The room's rules, sans-IO: who is here, their names, the order of events, the history.

Like h11's connection object, the room does no I/O and takes no locks: it is told what a client
did (joined, said these lines, left) and returns what must happen, as outputs: publish this
event to everyone, send that one to one member, greet a newcomer, hang up on a member. The hub
(hub.py) calls it under its lock, one call at a time, and applies the outputs to the fan-out.
Every event takes the next sequence number here, so everyone sees one order.

The history of chats and what a reconnecting client missed (resume) are lanchat/room/history.py;
what operators may do (kick, mute, ban, topic) is lanchat/room/moderation.py.

With a backplane (lanchat/backplane/, `external_order`), several relays carry the room and the
order is the stream's: what the room publishes carries seq 0, the backplane puts it in the
stream, and the hub calls `delivered()` for each event in the stream's order (this relay's and
the others'), which gives the room its seq and history. Names stay the room's decision, with the
other relays' names as taken (room/remote.py); the names it gives or frees are listed in
`claims` for the backplane to record, and a name another relay took first meanwhile comes back
through `name_taken()`.

About 400 lines: every request type's rule is here or one call away, the one place to read what
the room does; names, notices, history, moderation, the other relays' people and the outputs
are their own modules beside it.
"""

from __future__ import annotations

import itertools
import time
from collections import deque
from collections.abc import Callable
from dataclasses import replace

from lanchat.protocol import (
    DEFAULT_HISTORY,
    DEFAULT_ROOM,
    OPERATOR_HELP,
    RAW_HELP,
    AskHelp,
    AskWho,
    Chat,
    Event,
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
    Welcome,
    WhoList,
    clean_text,
)
from lanchat.protocol.detect import client_kind
from lanchat.room.history import History, Past, new_epoch
from lanchat.room.moderation import MODERATION_REQUESTS, ModerationView, Moderator
from lanchat.room.names import Names
from lanchat.room.notices import JOIN, LEAVE, NOTICE_BURST, NoticeBudget
from lanchat.room.outputs import (
    GOODBYES,
    Greet,
    Hangup,
    Item,
    Member,
    Output,
    Publish,
    Recode,
    Refused,
    Send,
)
from lanchat.room.remote import Claim, RemotePerson, RemoteRoster

GREETING_NAMES = 100  # names in the who-list of the greeting (the count is always there)
RATE_WINDOW_SECONDS = 10  # `lanchat status` reports messages per second over this window
# A full room makes room for a newcomer by letting go of a connection that has not said a word
# for this long (a forgotten terminal, an idle socket), never of anyone who has spoken.
SILENT_GRACE_SECONDS = 60.0
BANNED = (
    "Your address was banned from this room by an operator, until the server restarts or the "
    "ban is lifted (/unban)."
)


class Room:
    """One chat room: the members, the sequence of events, the history. Not thread-safe: its
    one caller (the hub) serialises every call."""

    def __init__(
        self,
        name: str = DEFAULT_ROOM,
        *,
        history: int = DEFAULT_HISTORY,
        max_clients: int = 0,
        clock: Callable[[], float] = time.time,
        ticks: Callable[[], float] = time.monotonic,
        past: Past | None = None,
        external_order: bool = False,
    ) -> None:
        past = past or Past(new_epoch())
        self.name = name
        self.max_clients = max_clients  # 0: no limit of our own
        self.seq = past.seq
        self.history = History(history, past)
        self.started = clock()
        self.messages = 0  # chat messages and actions relayed
        self.closed = False
        self._clock = clock  # the time events carry
        self._ticks = ticks  # for the message rate (monotonic)
        self._per_second: deque[list[int]] = deque(maxlen=RATE_WINDOW_SECONDS + 1)
        self._members: dict[int, Member] = {}  # by id, in joining order
        self._present = 0  # announced members
        self._notices = NoticeBudget()
        self._remote = RemoteRoster()  # people on the other relays (a backplane)
        self._names = Names(self._remote)
        self._moderator = Moderator(self)
        # With a backplane: the stream orders the events (see the top), and the names given
        # and freed wait here for it to record them (take_claims).
        self.external_order = external_order
        self._claims: list[Claim] = []

    # --- questions -------------------------------------------------------------------------

    @property
    def epoch(self) -> str:
        """The id of this room's history (lanchat/history.py)."""
        return self.history.epoch

    @property
    def size(self) -> int:
        """People present: announced members (a silent connection is not counted)."""
        return self._present

    @property
    def everyone(self) -> int:
        """People present in the whole room: here and on the other relays of a backplane."""
        return self._present + len(self._remote)

    @property
    def connections(self) -> int:
        """Members, silent ones included: what --max-clients counts."""
        return len(self._members)

    @property
    def members(self) -> list[Member]:
        return list(self._members.values())

    def member(self, member_id: int) -> Member | None:
        return self._members.get(member_id)

    def find(self, name: str) -> Member | None:
        """The member called `name` (or a look-alike of it: lanchat/room/names.py)."""
        return self._names.find(name)

    @property
    def topic(self) -> str:
        return self._moderator.topic

    def moderation(self) -> ModerationView:
        """Operators, mutes, bans and the topic, for `lanchat status`."""
        return self._moderator.view()

    def now(self) -> float:
        """The time events carry (Unix time)."""
        return self._clock()

    def ticks(self) -> float:
        """The room's monotonic time (rates, mutes, silence)."""
        return self._ticks()

    def next_seq(self) -> int:
        """The sequence number of the next room event (it is taken)."""
        return self._next()

    def rate(self) -> float:
        """Messages per second over the last RATE_WINDOW_SECONDS whole seconds."""
        now = int(self._ticks())
        recent = sum(
            n for second, n in list(self._per_second) if now - RATE_WINDOW_SECONDS <= second < now
        )
        return recent / RATE_WINDOW_SECONDS

    # --- what clients do -------------------------------------------------------------------

    def join(
        self,
        member_id: int,
        hello: Hello | None,
        *,
        announce: bool = True,
        web: bool = False,
        operator: bool = False,
        address: str = "",
        own_computer: bool = False,
    ) -> list[Output]:
        """Admit a client (raw when `hello` is None; `web`: a browser, which says hello too);
        Refused says why not. A raw client that has not said anything yet joins unannounced
        (`announce=False`). `operator`: it may moderate the room from the start (the room is
        told so when it is announced). `address`: its IP address (lanchat.admission.plain_ip),
        what a /ban bans; `own_computer`: it connects as the server's own computer does, and
        so cannot be banned (lanchat/room/moderation.py)."""
        if self.closed:
            raise Refused("shutdown", "The server is shutting down.")
        if self._moderator.banned(address):  # accepted just before the ban came in
            raise Refused("banned", BANNED)
        outputs: list[Output] = []
        if self.max_clients and len(self._members) >= self.max_clients:
            silent = self._longest_silent()
            if silent is None:
                people = "person" if self.max_clients == 1 else "people"
                raise Refused(
                    "server-full",
                    f"The server is full ({self.max_clients} {people}). Try again later.",
                )
            outputs += self.leave(silent.id, "idle")
        member = Member(
            member_id,
            self._names.choose(hello),
            client_kind(hello, web=web),
            hello.client if hello else "",
            announced=False,
            since=self._ticks(),
            operator=operator,
            address=address,
            own_computer=own_computer,
        )
        self._members[member_id] = member
        self._names.add(member)
        resume = hello.resume if hello else None
        if announce or hello is not None:
            self._mark_present(member)  # first, so its greeting lists it
            outputs += [self._greeting(member, resume), *self._joined(member)]
        else:
            outputs.append(self._greeting(member, resume))
        return outputs

    def _mark_present(self, member: Member) -> None:
        member.announced = True
        self._present += 1
        self._claim(member.name, member.id)

    def _joined(self, member: Member) -> list[Output]:
        """Tell everyone `member` is here (after its greeting: a higher seq), or count it; an
        operator's arrival is always told (a notice budget must not hide who may moderate)."""
        outputs: list[Output] = []
        if self._notices.allow(JOIN, self._ticks()):
            joined = Joined(self._next(), self._clock(), member.name, member.kind, self.everyone)
            outputs.append(Publish(joined))
        if member.operator:
            outputs.append(self._made_operator(member, ""))
        return outputs

    def promote(self, member_id: int, by: str = "") -> list[Output]:
        """Make a member an operator and tell the room (`by`: who did it, "" for the server);
        nothing if it is not here or is one already. A member not yet announced (a silent raw
        connection) is told about when it is."""
        member = self._members.get(member_id)
        if member is None or member.operator:
            return []
        member.operator = True
        return [self._made_operator(member, by)] if member.announced else []

    def _made_operator(self, member: Member, by: str) -> Publish:
        text = f"{member.name} is now an operator" + (f" (made one by {by})" if by else "")
        return Publish(Moderation(self._next(), self._clock(), "operator", member.name, by, text))

    def tick(self) -> list[Output]:
        """What time alone brings about: mutes that ran out (moderation.py), the summary of a
        burst of joins and leaves that has gone quiet (notices.py). The hub calls this about
        once a second."""
        outputs = self._moderator.tick()
        due = self._notices.due(self._ticks())
        if due is not None:
            summary = Summary(self._next(), self._clock(), *due, self.everyone)
            outputs.append(Publish(summary))
        return outputs

    def _longest_silent(self) -> Member | None:
        """The connection silent the longest, if longer than SILENT_GRACE_SECONDS."""
        cutoff = self._ticks() - SILENT_GRACE_SECONDS
        silent = [m for m in self._members.values() if not m.announced and m.since <= cutoff]
        return min(silent, key=lambda m: m.since, default=None)

    def upgrade(self, member_id: int, hello: Hello) -> list[Output]:
        """A member greeted as raw turned out to be a lanchat client (its hello came late)."""
        member = self._members.get(member_id)
        if member is None:
            return []
        name = self._names.choose(hello, ignoring=member)
        member.kind = "lanchat"
        member.program = hello.client
        outputs: list[Output] = [Recode(member_id, "lanchat")]
        if not member.announced:  # greeted in silence: it now identified itself
            self._names.rename(member, name)
            self._mark_present(member)
            return [*outputs, self._greeting(member, hello.resume), *self._joined(member)]
        if name != member.name:
            self._rename(member, name, outputs)
        # What was queued for it as text is lost to a lanchat client: a fresh one gets the
        # newcomer's replay, a reconnecting one the chats after the seq its hello names.
        outputs.append(self._greeting(member, hello.resume))
        return outputs

    def refuse(self, member_id: int, refused: Refused) -> list[Output]:
        """Tell a member why it cannot stay (a late hello the room says no to), then let it go."""
        member = self._members.get(member_id)
        if member is None:
            return []
        now = self._clock()
        outputs: list[Output] = [
            Send(member_id, Problem(self.seq, now, refused.code, refused.message))
        ]
        if member.kind != "raw":  # raw clients read the problem line alone
            outputs.append(
                Send(
                    member_id,
                    Goodbye(self.seq, now, "refused", "Connection refused by the server."),
                )
            )
        return outputs + self.leave(member_id, "refused")

    def handle(self, member_id: int, items: list[Item]) -> list[Output]:
        """Carry out what one member asked for, in order; a quit ends the batch."""
        member = self._members.get(member_id)
        if member is None:
            return []  # leaving: whatever it still sends is drained, not relayed
        outputs: list[Output] = []
        if not member.announced and items and not isinstance(items[0], Quit):
            self._mark_present(member)  # its first words: now it is here
            outputs += self._joined(member)
        # A mute: its words (and renames) go nowhere, and it is told so once per batch.
        muted = self._moderator.silence(member)
        told = False
        for item in items:
            if muted is not None and (type(item) is str or isinstance(item, Say | SetName)):
                if not told:
                    outputs.append(Send(member_id, self._moderator.muted_reply(muted)))
                    told = True
            elif type(item) is str:
                self._say(member, item, False, outputs)
            elif isinstance(item, Say):
                self._say(member, item.text, item.action, outputs)
            elif isinstance(item, LineTooLong):
                message = f"Line too long (more than {item.limit} bytes); it was not sent."
                outputs.append(self._problem(member, "line-too-long", message))
            elif isinstance(item, FrameError):
                outputs.append(self._problem(member, item.code, item.message))
            elif isinstance(item, SetName):
                self._rename(member, item.name, outputs)
            elif isinstance(item, AskWho):
                outputs.append(Send(member_id, self._who(self._clock())))
            elif isinstance(item, Ping):
                outputs.append(Send(member_id, Pong(self.seq, self._clock(), item.token)))
            elif isinstance(item, AskHelp):
                text = f"{RAW_HELP} {OPERATOR_HELP}" if member.operator else RAW_HELP
                outputs.append(Send(member_id, HelpText(self.seq, self._clock(), text)))
            elif isinstance(item, MODERATION_REQUESTS):
                outputs += self._moderator.handle(member, item)
            elif isinstance(item, Hello):
                outputs.append(self._problem(member, "bad-frame", "Hello is only the first line."))
            elif isinstance(item, Quit):
                return outputs + self.leave(member_id, "quit")  # later lines are not relayed
        return outputs

    def leave(self, member_id: int, reason: str, *, goodbye: str | None = None) -> list[Output]:
        """Take a member out and hang up on it; nothing if it is not (or no longer) here.
        `goodbye`: what it is told, instead of the reason's usual words (GOODBYES)."""
        member = self._members.pop(member_id, None)
        if member is None:
            return []
        self._names.remove(member)
        outputs: list[Output] = []
        if member.announced:  # a silent connection leaves as it came: unannounced
            self._present -= 1
            self._claim(member.name, 0)
            if self._notices.allow(LEAVE, self._ticks()):
                left = Left(self._next(), self._clock(), member.name, reason, self.everyone)
                outputs.append(Publish(left))
        goodbye = goodbye or GOODBYES.get(reason)
        if goodbye:
            outputs.append(Send(member_id, Goodbye(self.seq, self._clock(), reason, goodbye)))
        outputs.append(Hangup(member_id, reason))
        return outputs

    def shutdown(self) -> list[Output]:
        """Tell everyone the server is going away, then hang up on all of them."""
        if self.closed:
            return []
        self.closed = True
        outputs: list[Output] = self._farewells() if self.external_order else []
        goodbye = Goodbye(self._next(), self._clock(), "shutdown", GOODBYES["shutdown"])
        outputs.append(Publish(goodbye))
        outputs += [Hangup(member_id, "shutdown") for member_id in self._members]
        self._members.clear()
        self._present = 0
        self._names.clear()
        return outputs

    def _farewells(self) -> list[Output]:
        """This relay stops but the room goes on (a backplane): the others are told who left
        with it (one by one, or one summary for more than a burst), and the names are freed."""
        here = [m for m in self._members.values() if m.announced]
        for member in here:
            self._claim(member.name, 0)
        now, left = self._clock(), len(here)
        if left > NOTICE_BURST:
            return [Publish(Summary(0, now, 0, left, len(self._remote)))]
        return [
            Publish(Left(0, now, m.name, "shutdown", len(self._remote) + left - i))
            for i, m in enumerate(here, 1)
        ]

    # --- with a backplane: the stream's order, the other relays' people ---------------------

    def delivered(self, event: Event, relay: str = "") -> None:
        """`event` in the order every relay delivers (the backplane's stream): it is the newest
        seq now, a chat joins the history, and another relay's (`relay`) joins, leaves and
        renames change who is on the other relays."""
        self.seq = max(self.seq, event.seq)
        if type(event) is Chat:
            self.history.remember(event)
        if relay:
            self._remote.apply(event, relay)

    def provisional(self, event: Event) -> Event:
        """One of our events shown here before the stream ordered it (the backplane is away):
        it carries the seq of the last event in the stream's order, so a client's resume point
        never passes what the stream has not ordered yet; a chat is held (history.py)."""
        shown = replace(event, seq=self.seq)
        if type(shown) is Chat:
            self.history.hold(shown)
        return shown

    def confirmed(self, event: Event) -> None:
        """A provisional event reached the stream: it takes its place in the order (it was
        shown already)."""
        if type(event) is Chat:
            self.history.release()
        self.delivered(event)

    def restart_history(self, past: Past) -> None:
        """The stream's history was lost and a new one begins (Redis lost its data)."""
        self.seq = past.seq
        self.history = History(self.history.size, past)

    def set_remote(self, people: dict[str, RemotePerson], as_of: int) -> None:
        """Who is on the other relays (by name key), as the backplane read it when the stream's
        newest seq was `as_of`."""
        self._remote.set_all(people, as_of)

    def take_claims(self) -> list[Claim]:
        """The names given and freed since the last call, for the backplane to record."""
        claims, self._claims = self._claims, []
        return claims

    def name_taken(self, member_id: int, name: str, relay: str) -> list[Output]:
        """Another relay gave `name` to someone first (both admitted it within moments): our
        member takes a variant of it and is told why."""
        self._remote.add(name, relay)
        member = self._members.get(member_id)
        if member is None or member.name != name:
            return []  # gone or renamed meanwhile: nothing to undo
        new = self._names.variant(name, member)
        if new is None:
            return []
        outputs: list[Output] = []
        self._rename(member, new, outputs)
        message = f"The name {name} was taken on relay {relay} at the same moment: you are {new}."
        return [*outputs, self._problem(member, "name-taken", message)]

    # --- the rules -------------------------------------------------------------------------

    def _next(self) -> int:
        if self.external_order:
            return 0  # the backplane's stream gives it its seq (delivered)
        self.seq += 1
        return self.seq

    def _claim(self, name: str, member_id: int) -> None:
        if self.external_order:
            self._claims.append(Claim(name, member_id))

    def _who(self, now: float, limit: int | None = None) -> WhoList:
        """Everyone present (the first `limit` names), with the relay of those elsewhere."""
        here = ((m.name, "") for m in self._members.values() if m.announced)
        people = itertools.chain(here, ((p.name, p.relay) for p in self._remote))
        listed = list(itertools.islice(people, limit))  # O(limit), not O(room), per greeting
        names = tuple(name for name, _ in listed)
        relays = tuple((name, relay) for name, relay in listed if relay)
        return WhoList(self.seq, now, names, self.everyone, relays)

    def _greeting(self, member: Member, resume: Resume | None = None) -> Greet:
        now = self._clock()
        replay, gap = self.history.replay(resume, self.seq, now)
        welcome = Welcome(
            self.seq,
            now,
            member.name,
            self.name,
            history=len(replay),
            epoch=self.history.epoch,
            resumed=resume is not None and gap is None,
            topic=self._moderator.topic,
        )
        # A newcomer to a big room gets the first names and the count, not thousands of names
        # (that was O(room) bytes per join); /who lists everyone on request.
        return Greet(member.id, welcome, self._who(now, GREETING_NAMES), replay, gap)

    def _say(self, member: Member, text: str, action: bool, outputs: list[Output]) -> None:
        text = clean_text(text).strip()
        if not text:
            message = "Nothing left to send after removing control characters."
            outputs.append(self._problem(member, "empty", message))
            return
        chat = Chat(self._next(), self._clock(), member.name, text, action)
        if not self.external_order:  # else the history is the stream's (delivered)
            self.history.remember(chat)
        self.messages += 1
        second = int(self._ticks())
        counts = self._per_second
        if counts and counts[-1][0] == second:
            counts[-1][1] += 1
        else:
            counts.append([second, 1])
        outputs.append(Publish(chat, member.id if member.kind == "raw" else 0))

    def _rename(self, member: Member, new: str, outputs: list[Output]) -> None:
        refusal = self._names.why_not(member, new)
        if refusal is not None:
            outputs.append(self._problem(member, *refusal))
            return
        if new == member.name:
            return
        old = member.name
        self._names.rename(member, new)
        if member.announced:
            self._claim(old, 0)
            self._claim(new, member.id)
        outputs.append(Publish(Renamed(self._next(), self._clock(), old, new)))

    def _problem(self, member: Member, code: str, message: str) -> Send:
        return Send(member.id, Problem(self.seq, self._clock(), code, message))
