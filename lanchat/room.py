"""The room: who is here, their names, the order of events, the history, and what each request does.

Every room event takes the next sequence number under one lock and goes into the fan-out log in
that order, so all clients see the same order. A join costs the room one `join` frame; the
who-list and the history go to the newcomer only.
"""

from __future__ import annotations

import itertools
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import replace

from lanchat.fanout import MAX_BACKLOG_FRAMES, SHUTDOWN_LINGER_SECONDS, Client, Fanout
from lanchat.protocol import (
    DEFAULT_HISTORY,
    DEFAULT_ROOM,
    MAX_NAME_CHARS,
    AskHelp,
    AskWho,
    Chat,
    ClientKind,
    Event,
    FrameError,
    Goodbye,
    Hello,
    HelpText,
    Joined,
    Left,
    LineTooLong,
    Ping,
    Pong,
    Problem,
    Quit,
    Renamed,
    Request,
    Say,
    SetName,
    Welcome,
    WhoList,
    clean_text,
    encode_history_text,
    encode_json,
    encode_text,
    name_problem,
)

MAX_NAME_SUFFIX = 999  # alice-2 ... alice-999, then the name counts as taken
GREETING_NAMES = 100  # names in the who-list of the greeting (the count is always there)
RATE_WINDOW_SECONDS = 10  # `lanchat status` reports messages per second over this window

# What a reader thread hands to the room per line; a str is a raw client's plain message.
Item = str | Request | FrameError | LineTooLong


class Refused(Exception):
    """A join the room says no to: the frame to show, then the connection closes."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


_GOODBYES = {
    "quit": "Goodbye.",
    "too-slow": "You were disconnected: you could not keep up with the room "
    "(the server could not send to you fast enough).",
    "shutdown": "Server shutting down. Goodbye.",
}


class Room:
    """One chat room: the members, the sequence of events, the history."""

    def __init__(
        self,
        name: str = DEFAULT_ROOM,
        *,
        history: int = DEFAULT_HISTORY,
        max_clients: int = 0,
        max_backlog: int = MAX_BACKLOG_FRAMES,
    ) -> None:
        self.name = name
        self.max_clients = max_clients  # 0: no limit of our own
        self.lock = threading.Lock()
        self.fanout = Fanout(self.lock, on_failed=self.drop, max_backlog=max_backlog)
        self.seq = 0
        self.history: deque[Chat] = deque(maxlen=history)
        self.listeners: list[Callable[[Event, Client | None], None]] = []  # lock held: be quick
        self.started = time.time()
        self.messages = 0  # chat messages and actions relayed
        self._per_second: deque[list[int]] = deque(maxlen=RATE_WINDOW_SECONDS + 1)
        self.closed = False
        self._members: dict[int, Client] = {}  # by client id, in joining order
        self._names: dict[str, Client] = {}  # by casefolded name
        self._guest_numbers = itertools.count(1)

    # --- membership -----------------------------------------------------------------------

    @property
    def members(self) -> list[Client]:
        with self.lock:
            return list(self._members.values())

    def join(self, client: Client, hello: Hello | None) -> None:
        """Admit a client (raw when `hello` is None); Refused says why not."""
        with self.lock:
            if self.closed:
                raise Refused("shutdown", "The server is shutting down.")
            if self.max_clients and len(self._members) >= self.max_clients:
                people = "person" if self.max_clients == 1 else "people"
                raise Refused(
                    "server-full",
                    f"The server is full ({self.max_clients} {people}). Try again later.",
                )
            client.name = self._choose_name(hello)
            client.kind = "raw" if hello is None else "lanchat"
            client.client = hello.client if hello else ""
            self._members[client.id] = client
            self._names[client.name.casefold()] = client
            self.fanout.add(client)
            self._send_greeting(client)
            self._publish(
                Joined(self._next(), time.time(), client.name, client.kind, self.size),
                client=client,
            )
        self.fanout.kick()

    def upgrade(self, client: Client, hello: Hello) -> None:
        """A client greeted as raw turned out to be a lanchat client (its hello came late)."""
        with self.lock:
            if client.close_reason is not None:
                return
            del self._names[client.name.casefold()]
            try:
                name = self._choose_name(hello)
            finally:
                self._names[client.name.casefold()] = client
            self.fanout.change_kind(client, "lanchat")
            client.client = hello.client
            if name != client.name:
                self._rename(client, name)
            self._send_greeting(client)
        self.fanout.kick()

    def refuse_member(self, client: Client, refused: Refused) -> None:
        """Tell a member why it cannot stay, then drop it."""
        with self.lock:
            if client.close_reason is None:
                self.fanout.send_private(client, refusal_frames(client.kind, refused, self.seq))
        self.drop(client, "refused")

    def _choose_name(self, hello: Hello | None) -> str:
        if hello is None or hello.name is None:
            while True:
                name = f"guest-{next(self._guest_numbers)}"
                if name.casefold() not in self._names:
                    return name
        problem = name_problem(hello.name)
        if problem is not None:
            raise Refused(problem.code, problem.message)
        if hello.name.casefold() not in self._names:
            return hello.name
        if hello.exact:
            raise Refused("name-taken", f"The name {hello.name} is taken on this server.")
        for n in range(2, MAX_NAME_SUFFIX + 1):
            suffix = f"-{n}"
            name = hello.name[: MAX_NAME_CHARS - len(suffix)] + suffix
            if name.casefold() not in self._names:
                return name
        raise Refused("name-taken", f"The name {hello.name} and its variants are taken.")

    def _send_greeting(self, client: Client) -> None:
        """Welcome, who-list and history: to the newcomer only (lock held)."""
        now = time.time()
        replay = [replace(chat, history=True) for chat in self.history]
        welcome = Welcome(self.seq, now, client.name, self.name, history=len(replay))
        # A newcomer to a big room gets the first names and the count, not thousands of names
        # (that was O(room) bytes per join); /who lists everyone on request.
        names = tuple(c.name for c in itertools.islice(self._members.values(), GREETING_NAMES))
        who = WhoList(self.seq, now, names, self.size)
        if client.kind == "raw":
            data = encode_text(welcome) + encode_text(who) + encode_history_text(replay)
        else:
            data = b"".join(encode_json(f) for f in (welcome, who, *replay))
        self.fanout.send_private(client, data)

    @property
    def size(self) -> int:
        return len(self._members)

    def rate(self) -> float:
        """Messages per second over the last RATE_WINDOW_SECONDS whole seconds."""
        now = int(time.monotonic())
        with self.lock:
            recent = sum(
                n for second, n in self._per_second if now - RATE_WINDOW_SECONDS <= second < now
            )
        return recent / RATE_WINDOW_SECONDS

    def drop(self, client: Client, reason: str) -> None:
        """Take a client out of the room and hang up on it; safe to call more than once."""
        with self.lock:
            if client.close_reason is not None:
                return
            client.close_reason = reason
            if self._members.pop(client.id, None) is None:
                return
            del self._names[client.name.casefold()]
            self._publish(
                Left(self._next(), time.time(), client.name, reason, self.size), client=client
            )
            goodbye = _GOODBYES.get(reason)
            if goodbye:
                self._send(client, Goodbye(self.seq, time.time(), reason, goodbye))
            self.fanout.close(client)
        self.fanout.kick()

    def shutdown(self) -> None:
        """Tell everyone the server is going away, then hang up on all of them."""
        with self.lock:
            if self.closed:
                return
            self.closed = True
            self._publish(Goodbye(self._next(), time.time(), "shutdown", _GOODBYES["shutdown"]))
            for client in self._members.values():
                client.close_reason = "shutdown"
                self.fanout.close(client, linger=SHUTDOWN_LINGER_SECONDS)
            self._members.clear()
            self._names.clear()
            self.fanout.hurry(SHUTDOWN_LINGER_SECONDS)  # those already leaving, too
        self.fanout.kick()

    # --- requests -------------------------------------------------------------------------

    def handle(self, client: Client, items: list[Item]) -> None:
        """Carry out what one client asked for, in order, under one lock acquisition."""
        quitting = False
        with self.lock:
            if client.close_reason is not None:
                return  # leaving: whatever it still sends is drained, not relayed
            for item in items:
                if type(item) is str:
                    self._say(client, item, False)
                elif isinstance(item, Say):
                    self._say(client, item.text, item.action)
                elif isinstance(item, LineTooLong):
                    self._problem(
                        client,
                        "line-too-long",
                        f"Line too long (more than {item.limit} bytes); it was not sent.",
                    )
                elif isinstance(item, FrameError):
                    self._problem(client, item.code, item.message)
                elif isinstance(item, SetName):
                    self._rename(client, item.name)
                elif isinstance(item, AskWho):
                    names = tuple(c.name for c in self._members.values())
                    self._send(client, WhoList(self.seq, time.time(), names))
                elif isinstance(item, Ping):
                    self._send(client, Pong(self.seq, time.time(), item.token))
                elif isinstance(item, AskHelp):
                    self._send(client, HelpText(self.seq, time.time()))
                elif isinstance(item, Hello):
                    self._problem(client, "bad-frame", "Hello is only the first line.")
                elif isinstance(item, Quit):
                    quitting = True  # dropped after this batch; later lines are not relayed
                    break
        self.fanout.kick()  # in this thread, unless a pass is running already
        if quitting:
            self.drop(client, "quit")

    def _say(self, client: Client, text: str, action: bool) -> None:
        text = clean_text(text).strip()
        if not text:
            self._problem(
                client, "empty", "Nothing left to send after removing control characters."
            )
            return
        chat = Chat(self._next(), time.time(), client.name, text, action)
        self.history.append(chat)
        self.messages += 1
        second = int(time.monotonic())
        counts = self._per_second
        if counts and counts[-1][0] == second:
            counts[-1][1] += 1
        else:
            counts.append([second, 1])
        self._publish(chat, origin=client.id if client.kind == "raw" else 0, client=client)

    def _rename(self, client: Client, new: str) -> None:
        problem = name_problem(new)
        if problem is not None:
            self._problem(client, problem.code, problem.message)
            return
        holder = self._names.get(new.casefold())
        if holder is not None and holder is not client:
            self._problem(
                client,
                "name-taken",
                f"That name is taken: {new}. Pick another one with /nick NAME.",
            )
            return
        if new == client.name:
            return
        old = client.name
        del self._names[old.casefold()]
        client.name = new
        self._names[new.casefold()] = client
        self._publish(Renamed(self._next(), time.time(), old, new), client=client)

    # --- sending (lock held) --------------------------------------------------------------

    def _next(self) -> int:
        self.seq += 1
        return self.seq

    def _publish(self, event: Event, origin: int = 0, client: Client | None = None) -> None:
        fanout = self.fanout  # a kind nobody in the room reads is not encoded at all
        text = encode_text(event) if fanout.reads("raw") else b""
        json = encode_json(event) if fanout.reads("lanchat") else b""
        fanout.publish(text, json, origin)
        for listener in self.listeners:
            listener(event, client)

    def _send(self, client: Client, event: Event) -> None:
        data = encode_text(event) if client.kind == "raw" else encode_json(event)
        self.fanout.send_private(client, data)

    def _problem(self, client: Client, code: str, message: str) -> None:
        self._send(client, Problem(self.seq, time.time(), code, message))


def refusal_frames(kind: ClientKind, refused: Refused, seq: int) -> bytes:
    """What a refused client reads before the connection closes."""
    now = time.time()
    frames: list[Event] = [
        Problem(seq, now, refused.code, refused.message),
        Goodbye(seq, now, "refused", "Connection refused by the server."),
    ]
    if kind == "raw":
        return encode_text(frames[0])
    return b"".join(encode_json(f) for f in frames)
