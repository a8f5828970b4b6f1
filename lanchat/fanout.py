"""Fan-out: getting every room frame to every client without letting one slow client stall the rest.

Each room frame is encoded once per client kind and appended to a shared log. Every client has a
cursor into that log. One writer thread sends each client the slice it has not seen yet; when
several frames wait, they leave in one send(), and clients at the same cursor share the joined
bytes, so the per-recipient work is a single non-blocking send. A client whose socket is full is
parked (its cursor stays) until it can take more; one that falls more than MAX_BACKLOG_FRAMES
behind is disconnected. Reader threads never send, so nobody's bad connection delays the others.
"""

from __future__ import annotations

import itertools
import logging
import selectors
import socket
import threading
import time
from collections import deque
from collections.abc import Callable
from typing import Any

from lanchat.protocol import ClientKind

MAX_BACKLOG_FRAMES = 4096  # frames a client may lag behind the room before it is disconnected
LINGER_SECONDS = 2.0  # time a closing connection gets to take its last frames and hang up
SHUTDOWN_LINGER_SECONDS = 0.75  # the same when the whole server stops (exit within ~1 s)
TRIM_EVERY = 1024  # every this many frames, forget the ones every client has been sent

log = logging.getLogger(__name__)

# Non-blocking sends on a socket whose reader thread blocks in recv(): MSG_DONTWAIT where the
# platform has it; elsewhere (Windows) the socket is made non-blocking and the reader waits in
# select() before each recv() (see relay.py).
SEND_FLAGS: int = getattr(socket, "MSG_DONTWAIT", 0)

_client_ids = itertools.count(1)


class Client:
    """One connection: who it is (room fields) and what is still owed to it (writer fields)."""

    __slots__ = (
        "address",
        "blocked",
        "bytes_in",
        "bytes_out",
        "client",
        "close_reason",
        "closed",
        "connected_at",
        "cursor",
        "deadline",
        "done",
        "frames_out",
        "id",
        "kind",
        "lines_in",
        "local",
        "name",
        "pending",
        "private",
        "sock",
        "sock_lock",
        "stop_at",
    )

    def __init__(self, sock: socket.socket, address: Any, kind: ClientKind = "raw") -> None:
        self.id = next(_client_ids)
        self.sock = sock
        self.address = address
        self.local: Any = None  # our end of the connection (getsockname)
        self.kind: ClientKind = kind
        self.name = ""
        self.client = ""  # the program, from a lanchat hello
        self.connected_at = time.time()
        self.lines_in = self.bytes_in = self.frames_out = self.bytes_out = 0
        # Writer state: only the writer thread touches these after Fanout.add().
        self.cursor = 0
        self.private: deque[tuple[int, bytes]] = deque()  # (log position it follows, bytes)
        self.pending = b""  # the part of the last send the socket did not take
        self.blocked = False  # socket full: wait until writable
        self.stop_at: int | None = None  # closing: log position after which nothing is sent
        self.deadline = 0.0  # closing: when to stop waiting for the client
        self.close_reason: str | None = None  # set once, under the room lock
        self.done = threading.Event()  # the writer has finished with this socket
        self.sock_lock = threading.Lock()  # serialises the final shutdown()/close()
        self.closed = False

    def backlog(self, end: int) -> int:
        """Frames the client has not been sent yet (for `lanchat status`)."""
        return max(0, end - self.cursor) + len(self.private)

    def shut(self, how: int) -> None:
        """shutdown() unless the reader thread already closed the socket."""
        with self.sock_lock:
            if not self.closed:
                try:
                    self.sock.shutdown(how)
                except OSError:
                    pass  # already disconnected: nothing left to tell the peer

    def close_socket(self) -> None:
        """Close the socket once; the reader thread calls this when it is finished."""
        with self.sock_lock:
            if not self.closed:
                self.closed = True
                self.sock.close()


class Fanout:
    """The shared frame log and the writer thread. Methods marked 'lock held' are called by the
    room with its lock held, which is what orders log positions and private frames."""

    def __init__(
        self,
        lock: threading.Lock,
        on_failed: Callable[[Client, str], None],
        max_backlog: int = MAX_BACKLOG_FRAMES,
    ) -> None:
        self.lock = lock
        self.max_backlog = max_backlog
        self.end = 0  # log position after the newest frame
        self._on_failed = on_failed  # the room drops a client the writer gave up on
        self._base = 0  # log position of _frames[kind][0]
        self._frames: dict[str, list[bytes]] = {"raw": [], "lanchat": []}
        self._origins: list[int] = []  # client id of a raw sender (raw clients skip their own)
        self._clients: dict[int, Client] = {}
        self._roster: tuple[Client, ...] | None = None  # cached tuple of _clients' values
        self._dirty: set[Client] = set()  # clients with private frames or a close to handle
        self._closing: set[Client] = set()
        self._parked: set[Client] = set()  # socket full; registered for EVENT_WRITE
        self._next_trim = TRIM_EVERY
        self._lingering: list[Client] = []  # hung up on our side, waiting for the peer to close
        self._idle = False
        self._stopping = False
        self._selector = selectors.DefaultSelector()
        self._wake_recv, self._wake_send = socket.socketpair()
        self._wake_recv.setblocking(False)
        self._wake_send.setblocking(False)
        self._selector.register(self._wake_recv, selectors.EVENT_READ, None)
        self._thread = threading.Thread(target=self._run, name="lanchat-writer", daemon=True)

    # --- called by the room, lock held ---------------------------------------------------

    def add(self, client: Client) -> None:
        """Start serving `client` from the current end of the log (lock held)."""
        client.cursor = self.end
        self._clients[client.id] = client
        self._roster = None

    def publish(self, text: bytes, json: bytes, origin: int = 0) -> None:
        """Append one room frame, already encoded for both kinds (lock held)."""
        self._frames["raw"].append(text)
        self._frames["lanchat"].append(json)
        self._origins.append(origin)
        self.end += 1
        self._wake()

    def send_private(self, client: Client, data: bytes) -> None:
        """Queue bytes for one client only, in order with the room frames (lock held)."""
        client.private.append((self.end, data))
        self._dirty.add(client)
        self._wake()

    def close(self, client: Client, linger: float = LINGER_SECONDS) -> None:
        """Send what is queued up to now, then hang up; give up after `linger` s (lock held)."""
        client.stop_at = self.end
        client.deadline = time.monotonic() + linger
        self._closing.add(client)
        self._dirty.add(client)
        self._wake()

    def hurry(self, linger: float) -> None:
        """Bring every pending hang-up forward to at most `linger` seconds from now (lock held)."""
        deadline = time.monotonic() + linger
        for client in (*self._closing, *self._lingering):
            client.deadline = min(client.deadline, deadline)
        self._wake()

    def _wake(self) -> None:
        if self._idle:
            self._idle = False
            try:
                self._wake_send.send(b"\0")
            except BlockingIOError:
                pass  # the writer has wake-ups queued already

    # --- lifecycle ----------------------------------------------------------------------

    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout: float) -> None:
        """Let the writer finish the clients it still has, then end it."""
        with self.lock:
            self._stopping = True
            self._idle = True
            self._wake()
        self._thread.join(timeout)
        if not self._thread.is_alive():
            self._selector.close()
            self._wake_recv.close()
            self._wake_send.close()

    @property
    def clients(self) -> tuple[Client, ...]:
        with self.lock:
            return tuple(self._clients.values())

    def open_clients(self) -> list[Client]:
        """Every client whose socket is still open: served, closing, or waiting for the peer."""
        with self.lock:
            served = list(self._clients.values())
        lingering = [c for c in list(self._lingering) if not c.closed]
        return served + [c for c in lingering if c not in served]

    # --- the writer thread --------------------------------------------------------------

    def _run(self) -> None:
        processed = 0  # log end already offered to every client
        cache: dict[tuple[str, int, int], Any] = {}
        while True:
            with self.lock:
                end = self.end
                if end != processed:
                    if self._roster is None:
                        self._roster = tuple(self._clients.values())
                    targets: tuple[Client, ...] | set[Client] = self._roster
                    self._dirty.clear()
                else:
                    targets, self._dirty = self._dirty, set()
                if not targets:
                    if self._stopping and not self._clients and not self._lingering:
                        return
                    self._idle = True
            if not targets:
                self._wait(None)  # until woken, a parked client drains, or a deadline
            elif self._parked:
                self._wait(0)
            cache.clear()
            for client in targets:
                if not client.blocked:
                    self._serve(client, end, cache)
            processed = end
            if self._closing or self._lingering or self._parked:
                self._check_closing()
            if end >= self._next_trim:
                self._trim()

    def _wait(self, timeout: float | None) -> None:
        """Sleep until woken, a parked client can take more, or a closing deadline passes."""
        deadlines = [c.deadline for c in self._closing] + [c.deadline for c in self._lingering]
        if deadlines:
            soonest = max(0.0, min(deadlines) - time.monotonic())
            timeout = soonest if timeout is None else min(timeout, soonest)
        for key, _ in self._selector.select(timeout):
            client = key.data
            if client is None:
                try:
                    while self._wake_recv.recv(4096):
                        pass
                except OSError:
                    pass  # drained (BlockingIOError)
                with self.lock:
                    self._idle = False
                    end = self.end
            else:
                self._unpark(client)
                with self.lock:
                    end = self.end
                self._serve(client, end, {})

    def _slice(self, client: Client, start: int, stop: int, cache: dict[Any, Any]) -> bytes:
        """Frames [start, stop) for this client's kind, joined once per pass and shared."""
        lo, hi = start - self._base, stop - self._base
        if client.kind == "raw":
            origins = cache.get(("origins", start, stop))
            if origins is None:
                origins = cache["origins", start, stop] = frozenset(self._origins[lo:hi])
            if client.id in origins:  # a raw sender does not get its own lines back
                own = client.id
                pairs = zip(self._frames["raw"][lo:hi], self._origins[lo:hi], strict=True)
                return b"".join(frame for frame, origin in pairs if origin != own)
        key = (client.kind, start, stop)
        data: bytes | None = cache.get(key)
        if data is None:
            data = cache[key] = b"".join(self._frames[client.kind][lo:hi])
        return data

    def _serve(self, client: Client, end: int, cache: dict[Any, Any]) -> None:
        """Send the client everything it is owed up to `end`, in one send()."""
        limit = end if client.stop_at is None else min(end, client.stop_at)
        chunks: list[bytes] = []
        if client.pending:
            chunks.append(client.pending)
            client.pending = b""
        frames = 0
        private = client.private
        while private and private[0][0] <= limit:
            pos, data = private.popleft()
            if pos > client.cursor:
                chunks.append(self._slice(client, client.cursor, pos, cache))
                frames += pos - client.cursor
                client.cursor = pos
            chunks.append(data)
            frames += 1
        if client.cursor < limit:
            chunks.append(self._slice(client, client.cursor, limit, cache))
            frames += limit - client.cursor
            client.cursor = limit
        if not chunks:
            return
        client.frames_out += frames
        data = chunks[0] if len(chunks) == 1 else b"".join(chunks)
        if not data:
            return
        try:
            sent = client.sock.send(data, SEND_FLAGS)
        except (BlockingIOError, InterruptedError):
            sent = 0
        except OSError:
            self._give_up(client, "lost")
            return
        client.bytes_out += sent
        if sent < len(data):
            client.pending = data[sent:]
            self._park(client)

    def _park(self, client: Client) -> None:
        if client.blocked:
            return
        try:
            self._selector.register(client.sock, selectors.EVENT_WRITE, client)
        except (KeyError, ValueError, OSError):
            return  # the socket is gone; the close path takes the client
        client.blocked = True
        self._parked.add(client)

    def _unpark(self, client: Client) -> None:
        if not client.blocked:
            return
        client.blocked = False
        self._parked.discard(client)
        try:
            self._selector.unregister(client.sock)
        except (KeyError, ValueError, OSError):
            pass  # closed meanwhile

    def _give_up(self, client: Client, reason: str) -> None:
        """Stop sending to a client that is gone or too slow; the room tells the others."""
        self._unpark(client)
        client.private.clear()
        had_partial_line = bool(client.pending)
        self._on_failed(client, reason)  # takes the lock; sets stop_at, may queue a goodbye
        # Skip the backlog: only the goodbye still goes out, after ending a partial line.
        client.pending = b"\n" if had_partial_line else b""
        if client.stop_at is not None:
            client.cursor = max(client.cursor, client.stop_at)

    def _check_closing(self) -> None:
        """Drop clients too far behind; hang up on closing ones once flushed or out of time."""
        with self.lock:
            end = self.end
            closing = list(self._closing)
        for client in list(self._parked):
            if client.stop_at is None and end - client.cursor > self.max_backlog:
                self._give_up(client, "too-slow")
                closing.append(client)
        now = time.monotonic()
        for client in closing:
            if not client.blocked and now < client.deadline:
                self._serve(client, end, {})
            flushed = not (client.pending or client.private) and client.cursor >= (
                client.stop_at or 0
            )
            if flushed or now >= client.deadline:
                self._finish(client)
        for client in list(self._lingering):
            if client.closed or now >= client.deadline:
                client.shut(socket.SHUT_RDWR)  # wakes a reader still blocked in recv()
                self._lingering.remove(client)

    def _finish(self, client: Client) -> None:
        """Hang up our side (FIN after the last frame); the reader drains until the peer closes."""
        self._unpark(client)
        client.shut(socket.SHUT_WR)
        with self.lock:
            self._closing.discard(client)
            self._clients.pop(client.id, None)
            self._roster = None
        self._lingering.append(client)
        client.done.set()

    def _trim(self) -> None:
        """Forget log entries that every client has been sent."""
        with self.lock:
            lowest = min((c.cursor for c in self._clients.values()), default=self.end)
            self._next_trim = self.end + TRIM_EVERY
            drop = lowest - self._base
            if drop <= 0:
                return
            for frames in self._frames.values():
                del frames[:drop]
            del self._origins[:drop]
            self._base = lowest
