"""The hub: the one owner that applies the room's decisions to the fan-out.

A reader thread hands its client's lines to the hub; under the hub lock the room (lanchat/room,
pure) decides and returns outputs, and the hub encodes each published event once per client kind
that someone reads (raw text, a JSON line, and a browser's WebSocket message of that same line),
queues it in the fan-out log, and lets the lock go; then it asks the fan-out to send (kick). So a
chat line walks reader -> room -> fan-out once, and the room's rules can be tested without a
socket (tests/test_room.py).

With a backplane (lanchat/backplane/, several relays carrying one room) the walk has one more
step: what the room publishes goes to the backplane (`Sequencer.submit`, under the lock), which
appends it to the room's stream in Redis; the backplane's reader thread hands every event of
the stream back in the stream's order (`deliver`), this relay's own among them, and only then
is it encoded and queued in the fan-out. So every client of every relay gets one order. While
the backplane is away, submit() says so and the event is shown here at once (`provisional`);
show_here() does the same for what the backplane held when it went away.

Threads and what they own (fanout.py has the table of the delivery state):

    who                  runs                                       holds
    reader (1 per conn)  Hub.join/handle/drop/promote, then kick()   the lock; then tries the token
                         Hub.upgrade (a late hello)                 the token, then the lock
    writer (fanout)      passes, parked sockets, hang-ups            the pass token
    a pass that gives up Hub._failed (through Fanout.on_failed)      the token, then the lock
    the stopping thread  Hub.shutdown (Relay.stop)                   the lock, then tries the token
    the accept thread    Hub.tick, about once a second               the lock, then tries the token
    status / keeper      Hub.snapshot(), Fanout.holds                the hub lock / nothing
    backplane threads    Hub.deliver/show_here/notice/set_remote/   the lock, then tries the token
                         name_taken/restart_history

    field                     owner
    Hub.room (all of Room)    the hub lock: the room is not thread-safe, the lock serialises it.
                              Read without it, as a snapshot: room.name and max_clients (never
                              change), room.seq in a probe or refusal (an int), room.started
    Hub._clients              the hub lock (members' connections by member id)
    Hub.bans                  changed under the hub lock (/ban, /unban); the accept thread reads
                              it under its own small lock (lanchat/admission.py)
    Hub.listeners             filled before the relay starts, then only read
    Hub.sequencer             set once by attach() before the relay starts, then only read;
                              its own state has its own lock, taken inside the hub lock
    the store (store.py)      given to the fan-out at start; only a pass (the token) saves to it
    Client.member             set once under the hub lock at join; its fields are the room's
    Client.close_reason       written under the hub lock; readers may read it without the lock
                              as a hint (a stale read costs one batch, which the room ignores)
    Client counters, cursor,  read by Relay.status() without a guard: each an int, a stale
      kind (for status)       value shows in one status document

Lock order: the pass token before the hub lock, never the other way round; the backplane's
lock (lanchat/backplane/link.py) after the hub lock. Nothing waits for the token while it holds
the lock: kick() runs after the lock is released and only tries the token; Hub.upgrade takes the
token first, then the lock.

Re-entry: a pass that gives up on a client (gone, too slow) calls Hub._failed with the token
held. _failed takes the lock, applies the leave, and does not kick: the pass in progress sees
the new work (Fanout._requested) and goes round again.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

from lanchat.admission import AddressBans, own_computer, plain_ip
from lanchat.fanout import (
    LINGER_SECONDS,
    MAX_BACKLOG_BYTES,
    MAX_BACKLOG_FRAMES,
    SHUTDOWN_LINGER_SECONDS,
    Client,
    Fanout,
)
from lanchat.protocol import (
    ClientKind,
    Event,
    Goodbye,
    Hello,
    Mark,
    Notice,
    Problem,
    encode_history_text,
    encode_json,
    encode_text,
)
from lanchat.room import (
    BarAddress,
    Claim,
    Greet,
    Hangup,
    Item,
    LiftBan,
    Member,
    ModerationView,
    Output,
    Past,
    Publish,
    Recode,
    Refused,
    RemotePerson,
    Room,
    Send,
)
from lanchat.web.websocket import encode_close, encode_message

log = logging.getLogger(__name__)

# Someone who wants to see every published event (the serve log): called under the hub lock
# with the client whose action caused it (None for the server's own), so it must not block.
Listener = Callable[[Event, Client | None], None]


class Sequencer(Protocol):
    """What the hub needs from a backplane (lanchat/backplane/): one order for the events of
    several relays. Both are called with the hub lock held and must not block."""

    def submit(self, event: Event, origin: int, actor: Client | None) -> bool:
        """Take one of the room's events for the stream; False: the backplane is away, so the
        hub shows it here at once (it is still appended when the backplane is back)."""
        ...

    def names(self, claims: list[Claim]) -> None:
        """Record names the room gave and freed."""
        ...


@dataclass(frozen=True, slots=True)
class Arrival:
    """An event in the stream's order, as the backplane hands it to the hub."""

    event: Event  # with its seq in the stream
    relay: str = ""  # the other relay it came from; "" for ours
    origin: int = 0  # ours, from a raw client: that client skips its own line
    actor: Client | None = None  # ours: the client whose action it was (for the log)
    shown: bool = False  # ours, shown here already while the backplane was away


class Hub:
    """The room, its lock and its fan-out; every change to the room goes through here."""

    def __init__(
        self,
        room: Room,
        max_backlog: int = MAX_BACKLOG_FRAMES,
        max_backlog_bytes: int = MAX_BACKLOG_BYTES,
        save: Callable[[list[Event]], None] | None = None,
        bans: AddressBans | None = None,
    ) -> None:
        self.room = room
        # Addresses operators banned: the room says so (BarAddress), the hub adds them here,
        # and the relay's accept thread refuses them (lanchat/admission.py).
        self.bans = bans if bans is not None else AddressBans()
        self.lock = threading.Lock()
        self.fanout = Fanout(
            self.lock,
            on_failed=self._failed,
            max_backlog=max_backlog,
            max_backlog_bytes=max_backlog_bytes,
            save=save,  # a store: each pass commits its frames before it sends them
        )
        self.listeners: list[Listener] = []
        self._clients: dict[int, Client] = {}
        self.sequencer: Sequencer | None = None

    def attach(self, sequencer: Sequencer) -> None:
        """Order the room's events through a backplane (before the relay starts)."""
        self.sequencer = sequencer

    # --- what readers call (without the lock) ----------------------------------------------

    def join(
        self,
        client: Client,
        hello: Hello | None,
        *,
        announce: bool = True,
        web: bool = False,
        operator: bool = False,
    ) -> None:
        """Make `client` a member (announced to the room unless it has said nothing yet; `web`:
        a browser; `operator`: it may moderate the room); Refused says why not (nothing was
        sent to it then)."""
        with self.lock:
            outputs = self.room.join(
                client.id,
                hello,
                announce=announce,
                web=web,
                operator=operator,
                address=_address_of(client.address),
                own_computer=_own_computer(client),
            )
            member = client.member = self.room.member(client.id)
            client.kind = member.kind if member is not None else client.kind  # the room's word
            self._clients[client.id] = client
            self.fanout.add(client)
            self._apply(outputs, client)
        self.fanout.kick()

    def upgrade(self, client: Client, hello: Hello) -> None:
        """A member greeted as raw sent a lanchat hello; a refusal is told and it leaves."""
        # The token first (lock order): a kind changes while no pass reads it.
        with self.fanout.passes_paused(), self.lock:
            try:
                outputs = self.room.upgrade(client.id, hello)
            except Refused as refused:
                outputs = self.room.refuse(client.id, refused)
            self._apply(outputs, client)
        self.fanout.kick()

    def handle(self, client: Client, items: list[Item]) -> None:
        """Carry out what one client sent, in order, under one lock acquisition."""
        with self.lock:
            self._apply(self.room.handle(client.id, items), client)
        self.fanout.kick()  # in this thread, unless a pass is running already

    def promote(self, client: Client) -> None:
        """Make a member an operator (it proved it may be one: lanchat/room's promote tells the
        room); nothing if it is not, or no longer, in the room."""
        with self.lock:
            self._apply(self.room.promote(client.id), client)
        self.fanout.kick()

    def reply(self, client: Client, data: bytes) -> None:
        """Bytes for one client outside the room's frames (a browser's pong or close reply), in
        order with what it is sent; nothing once it is leaving."""
        with self.lock:
            if client.close_reason is None and client.member is not None:
                self.fanout.send_private(client, data)
        self.fanout.kick()

    def drop(self, client: Client, reason: str) -> None:
        """The client is gone (or must go); safe to call more than once."""
        with self.lock:
            self._apply(self.room.leave(client.id, reason), client)
        self.fanout.kick()

    def tick(self) -> None:
        """Let time do its part (a burst's summary); the accept loop calls this every second."""
        with self.lock:
            self._apply(self.room.tick(), None)
        self.fanout.kick()

    def shutdown(self) -> None:
        """Tell everyone the server is going away, then hang up on all of them."""
        with self.lock:
            self._apply(self.room.shutdown(), None)
            self.fanout.hurry(SHUTDOWN_LINGER_SECONDS)  # those already leaving, too
        self.fanout.kick()

    # --- what a backplane calls (without the lock) ------------------------------------------

    def deliver(self, take: Callable[[], Sequence[Arrival]]) -> None:
        """Events in the stream's order (`take()`, called under the lock, so that the backplane
        lets go of ours in the same step): each takes its seq, and goes to every client here
        unless it is ours and was shown already (then it only takes its place)."""
        told: list[tuple[Event, Client | None]] = []
        with self.lock:
            room = self.room
            if room.closed:
                return
            placed = False  # the last of ours shown already has a seq nobody was sent yet
            for arrival in take():
                event = arrival.event
                if arrival.shown:
                    room.confirmed(event)
                    placed = True
                    continue
                room.delivered(event, arrival.relay)
                self._publish(event, arrival.origin)
                told.append((event, arrival.actor))
                placed = False
            if placed:  # so that a resume starts after them, not before (Mark)
                self._publish(Mark(room.seq, time.time()), 0, raw=False)
            self._tell(told)
        self.fanout.kick()

    def show_here(self, take: Callable[[], tuple[Sequence[Arrival], Notice | None]]) -> None:
        """The backplane went away: show what it still held of ours here at once, then its
        notice (`take()` is called under the lock, so no event is submitted meanwhile)."""
        told: list[tuple[Event, Client | None]] = []
        with self.lock:
            arrivals, notice = take()
            for arrival in arrivals:
                event = self.room.provisional(arrival.event)
                self._publish(event, arrival.origin)
                told.append((event, arrival.actor))
            if notice is not None:
                told.append(self._notice(notice))
            self._tell(told)
        self.fanout.kick()

    def notice(self, code: str, message: str) -> None:
        """Tell everyone here about the room's service (Notice: the backplane's state)."""
        with self.lock:
            self._tell([self._notice(Notice(0, 0.0, code, message))])
        self.fanout.kick()

    def set_remote(self, people: dict[str, RemotePerson], as_of: int) -> None:
        """Who is on the other relays of the room, as the backplane read it at seq `as_of`."""
        with self.lock:
            self.room.set_remote(people, as_of)

    def name_taken(self, member_id: int, name: str, relay: str) -> None:
        """Another relay gave `name` away first: our member takes a variant."""
        with self.lock:
            self._apply(self.room.name_taken(member_id, name, relay), None)
        self.fanout.kick()

    def restart_history(self, past: Past, notice: Notice) -> None:
        """The stream's history was lost (Redis lost its data): a new epoch begins."""
        with self.lock:
            self.room.restart_history(past)
            self._tell([self._notice(notice)])
        self.fanout.kick()

    # --- questions -------------------------------------------------------------------------

    def snapshot(self) -> tuple[list[Member], int, float]:
        """The members, the messages relayed so far and the message rate, consistently."""
        with self.lock:
            return self.room.members, self.room.messages, self.room.rate()

    def moderation(self) -> ModerationView:
        """Operators, mutes, bans and the topic, consistently."""
        with self.lock:
            return self.room.moderation()

    @property
    def size(self) -> int:
        with self.lock:
            return self.room.size

    # --- applying the room's outputs (lock held) -------------------------------------------

    def _failed(self, client: Client, reason: str) -> None:
        """A pass gave up on `client` (token held): the room lets it go. No kick (see top)."""
        with self.lock:
            self._apply(self.room.leave(client.id, reason), client)

    def _apply(self, outputs: list[Output], actor: Client | None) -> None:
        """Carry out every output, then tell the listeners: a listener that fails cannot leave
        an output half applied (a member gone from the room but never hung up on)."""
        fanout = self.fanout
        sequencer = self.sequencer
        told: list[Event] = []
        for output in outputs:
            if type(output) is Publish:
                event = output.event
                if sequencer is not None:
                    # The shutdown's bye is ours alone; anything else goes to the stream and
                    # comes back in its order (deliver), unless the backplane is away.
                    if type(event) is not Goodbye and sequencer.submit(event, output.origin, actor):
                        continue
                    event = self.room.provisional(event)  # here, at once
                self._publish(event, output.origin)
                told.append(event)
            elif type(output) is Send:
                client = self._clients[output.to]
                fanout.send_private(client, encode_for(client.kind, output.event))
            elif type(output) is Greet:
                client = self._clients[output.to]
                fanout.send_private(client, encode_greeting(client.kind, output))
            elif type(output) is Recode:
                fanout.change_kind(self._clients[output.to], output.kind)
            elif type(output) is Hangup:
                client = self._clients.pop(output.to)
                client.close_reason = output.reason
                if client.kind == "web" and output.reason not in _PEER_CLOSED:
                    fanout.send_private(client, encode_close())  # after its bye frame
                linger = SHUTDOWN_LINGER_SECONDS if output.reason == "shutdown" else LINGER_SECONDS
                fanout.close(client, linger)
            elif type(output) is BarAddress:
                self.bans.add(output.address)
            elif type(output) is LiftBan:
                self.bans.remove(output.address)
        if sequencer is not None:
            claims = self.room.take_claims()
            if claims:
                sequencer.names(claims)
        if told and self.listeners:
            self._tell([(event, actor) for event in told])

    def _publish(self, event: Event, origin: int, *, raw: bool = True) -> None:
        """Queue one room event for everyone (lock held); `raw` False: not for raw clients."""
        fanout = self.fanout
        # Once per kind, and a kind nobody in the room reads is not encoded at all.
        text = encode_text(event) if raw and fanout.reads("raw") else b""
        web = fanout.reads("web")
        json = encode_json(event) if web or fanout.reads("lanchat") else b""
        frame = encode_message(json) if web else b""  # one for every browser
        fanout.publish(text, json, origin, event, frame)

    def _notice(self, notice: Notice) -> tuple[Event, Client | None]:
        """Queue a notice for everyone here, with the seq of the last room event (lock held)."""
        event = Notice(self.room.seq, time.time(), notice.code, notice.message)
        self._publish(event, 0)
        return event, None

    def _tell(self, told: list[tuple[Event, Client | None]]) -> None:
        """Tell the listeners, after the outputs are applied (lock held)."""
        for event, actor in told:
            for listener in self.listeners:
                try:
                    listener(event, actor)
                except Exception as e:  # the log's problem, not the room's
                    log.error("an event listener failed on %s: %r", type(event).__name__, e)


def _address_of(endpoint: object) -> str:
    """The IP address of a socket address, as the room keeps it (what a /ban bans)."""
    if isinstance(endpoint, tuple) and endpoint:
        return plain_ip(str(endpoint[0]))
    return ""


def _own_computer(client: Client) -> bool:
    """The client is on the server's own computer (lanchat.admission.own_computer)."""
    address = _address_of(client.address)
    return bool(address) and own_computer(address, _address_of(client.local) or None)


# Hang-ups after which a browser gets no close frame: it closed itself (and had its close
# answered), or the connection is gone.
_PEER_CLOSED = frozenset({"closed", "lost"})


def encode_for(kind: ClientKind, event: Event) -> bytes:
    if kind == "raw":
        return encode_text(event)
    return encode_message(encode_json(event)) if kind == "web" else encode_json(event)


def encode_greeting(kind: ClientKind, greet: Greet) -> bytes:
    if kind == "raw":  # the replay between a header and a footer that mark it
        return (
            encode_text(greet.welcome)
            + encode_text(greet.who)
            + encode_history_text(list(greet.history))
        )
    gap = (greet.gap,) if greet.gap is not None else ()
    frames = (greet.welcome, greet.who, *gap, *greet.history)
    return b"".join(encode_for(kind, f) for f in frames)


def refusal_frames(kind: ClientKind, refused: Refused, seq: int) -> bytes:
    """What a client the room would not admit reads before the connection closes."""
    now = time.time()
    problem = Problem(seq, now, refused.code, refused.message)
    if kind == "raw":
        return encode_text(problem)
    goodbye = Goodbye(seq, now, "refused", "Connection refused by the server.")
    frames = encode_for(kind, problem) + encode_for(kind, goodbye)
    return frames + encode_close() if kind == "web" else frames
