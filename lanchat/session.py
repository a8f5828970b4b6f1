"""A chat that outlives its connections: reconnects resume where the last connection stopped,
and what we send waits in an outbox until the server's echo confirms it.

Both front ends of `lanchat join` use it. Lines go into `unsent`; once written to a socket a
message moves to `awaiting` until its echo comes back (the echo gives it its place in the room).
When the connection is lost, a reconnect names the server's epoch and the last seq read
(client.Connection.resume), so the server replays exactly what was missed: nothing is shown
twice. Our own messages in that replay confirm lines that were awaiting; if the welcome says
`resumed` (nothing is missing), lines still awaiting never reached the room and are sent again;
otherwise (a gap, a restarted server) nobody can tell, and they are handed back to be reported,
not sent twice.

Threads: the front end's input thread calls submit(); the receiving thread calls saw(),
lost(), reconnect() and settle(). `lock` guards unsent, awaiting, names, conn, connected,
_typed and last_failure;
`_flushing` lets one thread at a time write the outbox, so lines keep their order; no socket
write happens under `lock` (a server that reads slowly must not stop us from reading).
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable

from lanchat.client import Connection, ConnectionLost, reconnect
from lanchat.protocol import (
    Chat,
    Goodbye,
    Moderation,
    Problem,
    Renamed,
    Request,
    Resume,
    Say,
    ServerFrame,
    clean_text,
)

# How to open the chat again: resuming from where the last connection stopped, under the name
# it had last (a /nick is kept; a guest keeps its own guest name, so two cannot swap).
Opener = Callable[[Resume | None, str], Connection]


def _key(text: str) -> str:
    """A message as the server relays it (cleaned, stripped): how its echo is recognised."""
    return clean_text(text).strip()


class Session:
    """One chat across reconnects (see the module's docstring)."""

    def __init__(self, conn: Connection, open_again: Opener | None = None) -> None:
        self.conn = conn
        self._open_again = open_again
        self.lock = threading.Lock()
        self.changed = threading.Condition(self.lock)  # the outbox moved, or we lost the server
        self.unsent: deque[Request] = deque()
        self.awaiting: deque[Say] = deque()  # written, echo not seen yet
        self.names = {conn.name}  # ours in this session: echoes under any of them are ours
        self.connected = True
        # Each request in `unsent` -> the line it was typed as (for the report of what was not
        # sent); an entry lives exactly as long as its request is in `unsent`, so ids are unique.
        self._typed: dict[int, str] = {}
        self.last_failure: Exception | None = None  # why the last reconnect attempt failed
        self.operator = False  # the room said we are one (its /help then lists their commands)
        self.muted = 0  # messages the room did not relay because an operator muted us
        self._flushing = threading.Lock()

    @property
    def name(self) -> str:
        return self.conn.name

    def submit(self, request: Request, typed: str | None = None) -> bool:
        """Send now if connected, else keep it for the next connection; True when sent.
        `typed`: the line it came from, named if it is never sent."""
        with self.lock:
            self.unsent.append(request)
            if typed is not None:
                self._typed[id(request)] = typed
        self.flush()
        with self.lock:
            return all(waiting is not request for waiting in self.unsent)

    def flush(self) -> None:
        """Write what waits in the outbox, in order, while the connection holds."""
        with self._flushing:
            while True:
                with self.lock:
                    if not self.connected or not self.unsent:
                        return
                    request, conn = self.unsent[0], self.conn
                    self.unsent.popleft()
                    typed = self._typed.pop(id(request), None)
                    if isinstance(request, Say):
                        self.awaiting.append(request)  # before the echo can arrive
                try:
                    conn.send(request)
                except ConnectionLost:
                    # Perhaps written, perhaps not: a message stays awaiting, and the resume
                    # tells which. Anything else is kept to be sent again.
                    with self.lock:
                        if not isinstance(request, Say):
                            self.unsent.appendleft(request)
                            if typed is not None:
                                self._typed[id(request)] = typed
                        if conn is self.conn:
                            self.connected = False
                        self.changed.notify_all()
                    return

    def saw(self, frame: ServerFrame) -> None:
        """Follow our name and confirm our messages by their echo (the receiving thread)."""
        with self.lock:
            if isinstance(frame, Goodbye):
                self.connected = False  # the last frame of a connection: keep what comes next
                self.changed.notify_all()
            elif isinstance(frame, Renamed) and frame.old == self.conn.name:
                self.conn.name = frame.new
                self.names.add(frame.new)
            elif isinstance(frame, Moderation) and frame.action == "operator":
                self.operator = self.operator or frame.name == self.conn.name
            elif isinstance(frame, Problem) and frame.code == "muted":
                # Muted: the room drops what we say (and tells us once per batch), so no echo
                # will confirm what awaits one. Counted, not waited for.
                self.muted += len(self.awaiting)
                self.awaiting.clear()
                self.changed.notify_all()
            elif isinstance(frame, Chat) and frame.sender in self.names and self.awaiting:
                text = _key(frame.text)
                for said in self.awaiting:
                    if _key(said.text) == text and said.action == frame.action:
                        self.awaiting.remove(said)
                        self.changed.notify_all()
                        break

    def lost(self, conn: Connection) -> None:
        """`conn` ended (the receiving thread saw its end)."""
        with self.lock:
            if conn is self.conn:
                self.connected = False
            self.changed.notify_all()

    def reconnect(
        self,
        *,
        stop: threading.Event,
        on_wait: Callable[[float, Exception], None],
        until: float | None = None,
    ) -> Connection | None:
        """Open a new connection that resumes where the last one stopped (None: gave up)."""
        if self._open_again is None:
            return None
        with self.lock:
            resume, name = self.conn.resume, self.conn.name
        opener = self._open_again

        def attempt() -> Connection:
            try:
                new = opener(resume, name)
            except Exception as e:  # (reconnect() decides which are retried)
                with self.lock:
                    self.last_failure = e  # the last one too, which reconnect() does not report
                raise
            with self.lock:
                self.last_failure = None
            return new

        new = reconnect(attempt, stop=stop, on_wait=on_wait, until=until)
        if new is not None:
            with self.lock:
                self.names.add(new.name)
        return new

    def settle(self, conn: Connection) -> list[Say]:
        """After the new greeting went through saw(): use `conn` from now on. Messages still
        awaiting are sent again when the server resumed us with nothing missing; otherwise
        they are returned (they may or may not have reached the room) and forgotten."""
        with self.lock:
            uncertain: list[Say] = []
            if conn.greeting.welcome.resumed:
                self.unsent.extendleft(reversed(self.awaiting))
            else:
                uncertain = list(self.awaiting)
            self.awaiting.clear()
            self.conn = conn
            self.connected = True
            self.changed.notify_all()
        self.flush()
        return uncertain

    def wait_done(self, timeout: float, over: threading.Event) -> bool:
        """Wait until every line is confirmed, or `over` is set; False on timeout."""
        deadline = time.monotonic() + timeout
        with self.lock:
            while self.unsent or self.awaiting:
                left = deadline - time.monotonic()
                if over.is_set() or left <= 0:
                    return False
                self.changed.wait(min(left, 0.5))  # `over` is an Event: look again in a while
            return True

    def wake(self) -> None:
        """Wake wait_done() (the session is over)."""
        with self.lock:
            self.changed.notify_all()

    def waiting_to_send(self) -> list[str]:
        """The lines never written, oldest first, as they were typed (a message sent again
        after a resume, by its text); requests that were not typed (our own /quit) are left
        out."""
        with self.lock:
            lines = []
            for request in self.unsent:
                typed = self._typed.get(id(request))
                if typed is None and isinstance(request, Say):
                    typed = f"/me {request.text}" if request.action else request.text
                if typed is not None:
                    lines.append(typed)
            return lines

    def outstanding(self) -> tuple[int, int]:
        """(lines never written, messages written but not confirmed)."""
        with self.lock:
            return len(self.unsent), len(self.awaiting)
