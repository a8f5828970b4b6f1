"""Fan-out: getting every room frame to every client without letting one slow client stall the rest.

Each room frame is encoded once per client kind (raw text, lanchat JSON lines, and for browsers
the WebSocket message of that JSON: lanchat/web/websocket.py) and appended to a shared log.
Every client has a cursor into that log. A *pass* sends each client the slice it has not seen
yet with one non-blocking send(): when several frames wait they leave together, and clients at
the same cursor share the joined bytes, so the per-recipient work is a single send. A client
whose socket is full is parked (its cursor stays) until it can take more; one that falls more
than MAX_BACKLOG_FRAMES behind is disconnected. Nobody waits for anybody's socket.

Passes hold a token, so one runs at a time. The thread that published a frame runs the pass
itself when the token is free (no wake-up of another thread: the lowest latency); when a pass is
already running, it just notes that more is waiting, and the running pass goes round again.
Without a store, a frame published while a pass runs rides along: the clients the pass has not
reached yet get it in the same send() (a pass to 100 clients takes about half a millisecond, so
at a steady 1000 lines/s many frames arrive during one); the next round brings it to those it
had reached (with a store, a frame is saved before it is sent, so it waits for that round). A
busy room (a pass to many clients found several new frames, or more came while it ran) waits
COALESCE_SECONDS before its next pass: the writer thread runs it when the hold ends, unless a
reader publishing just then gets there first. The writer also waits for parked sockets to drain
and for closing connections' deadlines.

When a hold pays. A hold trades latency for CPU: the frames that wait share a send(), and on
loopback most of a relay's CPU is the send() itself (~70 % at 100 clients). It is worth it only
when the writer is short of CPU, so passes measure the demand: over DEMAND_WINDOW_SECONDS, frames
per second times the CPU time a pass to everyone takes (time.thread_time(): what the pass cost,
not how long the machine kept it waiting), the share of a core the passes would need with a
pass per frame. A hold begins after a pass only when that demand is at least HOLD_DEMAND, the
room is big (HOLD_MIN_CLIENTS: a small room's pass costs less than the wake-up a hold adds) and
frames met (several in the pass, or more while it ran: else nothing would share a send, as with
one line in flight at a time). The demand does not depend on the hold (a pass with three frames
costs about what one with one frame does), so a hold no longer makes the next one: the rule
before held after any pass that met two frames, and a held pass always meets several, so a room
at 1000 lines/s held for ever with a core to spare (issue 15).

Who owns what. Three guards: the hub lock (`lock`, hub.py; taken by the hub when it applies
the room's outputs, and by a pass for short moments), the pass token (`_pass_token`: whoever
runs a pass, a reader inline or the writer), and `Client.sock_lock`. Order: token, then lock,
then sock_lock; nothing waits for the token while holding the lock (kick() only tries it).

    field                                   written by / under        read by / under
    end, _frames, _origins, _ends, _totals  publish: lock             passes: token (slices)
    _base, _base_bytes, the lists (trim)    _trim: token and lock     passes: token
    _clients, _kinds, _roster, _departed    lock                      passes iterate _roster
                                                                      without the lock (below);
                                                                      len(_clients) in the hold
                                                                      rule and the writer's exit
                                                                      test read without it
    _dirty, _closing, _lingering            lock                      lock
    _drained, _parked, _processed,          token                     token (holds: the keeper,
      _counted, holds,
      _next_trim, _selector registrations,                            unlocked, a counter)
      demand, short, _window_* (the demand)
    _selector.select()                      the writer, without the token (epoll allows
                                            registering from another thread meanwhile)
    _stopping                               set once by stop()        the writer
    _unsaved (the batch for the store)      publish: lock             taken whole with `end`
                                                                      under the lock; saved
                                                                      with the token (store.py)
    _requested, _hold_until, _hold_armed    no lock: flags (below)
    Client.cursor, pending, blocked,        token
      frames_out, bytes_out
    Client.private (the deque)              send_private: lock        passes pop: token
    Client.private_bytes, overflow          lock                      token (after popping,
                                                                      the pass takes the lock)
    Client.private = None                   token and lock            (a deque's append and
                                                                      popleft are thread-safe)
    Client.stop_at, deadline                close/hurry: lock         token
    Client.kind, cursor (at add())          lock, before the client   -
                                            is on the roster
    Client.kind (a late hello)              token and lock            either
    Client.done                             the writer sets it once   the reader waits on it
    Client.closed, the socket's close       sock_lock                 sock_lock; the writer
                                                                      reads `closed` as a hint
    the socket's shutdown(), SO_SNDBUF      sock_lock (a pass, the    -
      (make_room: a too-slow goodbye)       writer, the reader)

Not under a lock, on purpose:
- `_roster` is append-only between rebuilds and a rebuild makes a new list, so a pass iterates
  the one it started with. `_frames[kind][lo:hi]` is sliced by the token holder while readers
  append under the lock: list slicing and appending are each atomic in CPython (with the GIL,
  and with per-object locks in the free-threaded build).
- During a pass, `end` is read without the lock for frames to ride along, and after it to see
  whether frames came while it ran. publish() appends a frame to the lists before it moves
  `end`, so the frames up to any `end` read are there; a stale value leaves a frame to the
  next round, or moves one hold decision, nothing else. That order is CPython's with the GIL;
  the free-threaded build would need `end` read under the lock here too (a stale list sliced
  short would lose a frame, not delay it).
- `_requested`, `_hold_until`, `_hold_armed` are single attribute writes that readers check
  without the lock to avoid taking it for every line. Each is written before the action that
  depends on it is announced (a frame is in the log before `_requested` is set; a hold is
  disarmed before its deadline is visible), so a stale read costs a wake-up or one more pass
  round, never a stranded frame. This relies on attribute stores being seen in program order
  by other threads, which CPython gives with the GIL; the free-threaded build makes each store
  atomic but promises no order, and would need these three under the lock.

Longer than the house's ~300 lines on purpose: the log, the passes, parking and the hang-ups are
one state machine under one token, and the table of who owns what (above) describes all of it;
split across modules, its fields would have owners in several files.
"""

from __future__ import annotations

import itertools
import logging
import selectors
import socket
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from lanchat.hangup import grow_send_buffer, reset_on_close_if_delivered
from lanchat.protocol import ClientKind, Event
from lanchat.tuning import (
    COALESCE_SECONDS,
    DEMAND_WINDOW_SECONDS,
    HOLD_DEMAND,
    HOLD_MIN_CLIENTS,
    INLINE_PASSES,
    TRIM_EVERY,
)

if TYPE_CHECKING:
    from lanchat.room import Member

# What a client may be owed (room frames behind it, private replies and a half-sent tail) before
# it is disconnected as too slow: one that does not read cannot make the server grow without end.
MAX_BACKLOG_FRAMES = 4096
MAX_BACKLOG_BYTES = 4 * 1024 * 1024
LINGER_SECONDS = 2.0  # time a closing connection gets to take its last frames and hang up
SHUTDOWN_LINGER_SECONDS = 0.75  # the same when the whole server stops (exit within ~1 s)

log = logging.getLogger(__name__)

# Non-blocking sends on a socket whose reader thread blocks in recv(): MSG_DONTWAIT where the
# platform has it; elsewhere (Windows) the socket is made non-blocking and the reader waits in
# select() before each recv() (see relay.py).
SEND_FLAGS: int = getattr(socket, "MSG_DONTWAIT", 0)

_client_ids = itertools.count(1)


class Latch:
    """Set once, waited on: threading.Event's job on one bare lock. An Event is a Condition, a
    lock and a deque, about 1 KB for each of thousands of clients; this is one lock.
    Unlocked means set: a waiter takes the lock and hands it straight back."""

    __slots__ = ("_lock",)

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._lock.acquire()

    def set(self) -> None:
        """Open the latch (again: harmless)."""
        try:
            self._lock.release()
        except RuntimeError:  # already open
            pass

    def wait(self, timeout: float) -> bool:
        """True once set, False if `timeout` seconds pass first (a waiter only: another
        waiter holding the lock for a moment can make wait(0) say False)."""
        if not self._lock.acquire(timeout=max(0.0, timeout)):
            return False
        self.set()
        return True


class Client:
    """One connection as the fan-out and the reader see it: what is still owed to it (writer
    fields, the table above) and counters for `lanchat status`. Who it is in the room is its
    `member` (lanchat/room), set by the hub at join."""

    __slots__ = (
        "address",
        "blocked",
        "bytes_in",
        "bytes_out",
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
        "member",
        "overflow",
        "pending",
        "private",
        "private_bytes",
        "sock",
        "sock_lock",
        "stop_at",
    )

    def __init__(self, sock: socket.socket, address: Any, kind: ClientKind = "raw") -> None:
        # Set before the reader starts, never changed after: id, address, connected_at, and
        # sock, except that the reader replaces it by its TLS session (lanchat/tls/) before
        # join, while nobody else uses it; `local` is set by the reader before join.
        self.id = next(_client_ids)
        self.sock = sock
        self.address = address
        self.local: Any = None  # our end of the connection (getsockname)
        self.connected_at = time.time()
        self.member: Member | None = None  # set by the hub at join (hub lock)
        self.kind: ClientKind = kind
        # The reader thread's own counters; status reads them without a lock (a stale count).
        self.lines_in = self.bytes_in = 0
        # Delivery state (the table above): the token unless said otherwise.
        self.frames_out = self.bytes_out = 0
        self.cursor = 0
        # (log position it follows, bytes); None when empty (a deque is ~600 bytes, times
        # thousands of clients that have nothing private most of the time).
        self.private: deque[tuple[int, bytes]] | None = None
        self.private_bytes = 0  # bytes in `private` (hub lock)
        self.overflow = False  # owed more than the limits: the next pass drops it (hub lock)
        # The part of the last send the socket did not take: a view into the sent bytes, so
        # thousands of parked clients behind the same frames share one copy of them.
        self.pending: bytes | memoryview = b""
        self.blocked = False  # socket full: wait until writable
        self.stop_at: int | None = None  # closing: log position after which nothing is sent
        self.deadline = 0.0  # closing: when to stop waiting for the client
        self.close_reason: str | None = None  # set once, under the hub lock
        self.done = Latch()  # the writer has finished with this socket
        self.sock_lock = threading.Lock()  # serialises the final shutdown()/close()
        self.closed = False

    @property
    def name(self) -> str:
        return self.member.name if self.member is not None else ""

    def backlog(self, end: int) -> int:
        """Frames the client has not been sent yet (for `lanchat status`)."""
        return max(0, end - self.cursor) + len(self.private or ())

    def shut(self, how: int) -> None:
        """shutdown() unless the reader thread already closed the socket."""
        with self.sock_lock:
            if not self.closed:
                try:
                    self.sock.shutdown(how)
                except OSError:
                    pass  # already disconnected: nothing left to tell the peer

    def make_room(self, extra: int) -> None:
        """Let the socket's send buffer take `extra` more bytes now, full or not: a client let go
        as too slow still gets the rest of its half-sent line and its goodbye, and the kernel
        delivers them whenever it reads again, after our close (the buffer is this socket's
        own, and the connection is ending: nothing more is sent to it)."""
        with self.sock_lock:
            if not self.closed:  # (a TLS socket's own unsent ciphertext goes first)
                grow_send_buffer(self.sock, extra + getattr(self.sock, "unsent_bytes", 0))

    def hang_up(self) -> None:
        """The linger is over: wake a reader still blocked in recv(), and let its close reset
        a peer that has all our bytes but never closed (hangup.py)."""
        with self.sock_lock:
            if not self.closed:
                reset_on_close_if_delivered(self.sock)
                try:
                    self.sock.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass  # already disconnected

    def close_socket(self) -> None:
        """Close the socket once; the reader thread calls this when it is finished."""
        with self.sock_lock:
            if not self.closed:
                self.closed = True
                self.sock.close()


class Fanout:
    """The shared frame log, the pass token and the writer thread. Methods marked 'lock held'
    are called by the hub with its lock held, which orders log positions and private frames;
    the hub calls kick() after releasing it."""

    def __init__(
        self,
        lock: threading.Lock,
        on_failed: Callable[[Client, str], None],
        max_backlog: int = MAX_BACKLOG_FRAMES,
        *,
        max_backlog_bytes: int = MAX_BACKLOG_BYTES,
        coalesce_seconds: float = COALESCE_SECONDS,
        hold_min_clients: int = HOLD_MIN_CLIENTS,
        hold_demand: float = HOLD_DEMAND,
        demand_window: float = DEMAND_WINDOW_SECONDS,
        save: Callable[[list[Event]], None] | None = None,
    ) -> None:
        self.lock = lock
        self.max_backlog = max_backlog
        self.max_backlog_bytes = max_backlog_bytes
        self.coalesce_seconds = coalesce_seconds  # a busy room's hold (lanchat/tuning.py)
        self.hold_min_clients = hold_min_clients
        self.hold_demand = hold_demand  # ... only when the passes would need this share of a core
        self.demand_window = demand_window  # ... measured over this many seconds
        self.end = 0  # log position after the newest frame
        self._on_failed = on_failed  # the hub drops a client a pass gave up on (token held)
        # With a store, room events published since the last pass: saved before they are sent.
        self._save = save
        self._unsaved: list[Event] = []
        self._base = 0  # log position of _frames[kind][0]
        self._frames: dict[str, list[bytes]] = {"raw": [], "lanchat": [], "web": []}
        self._origins: list[int] = []  # client id of a raw sender (raw clients skip their own)
        # Bytes of the log per kind up to the end of each frame, from the first frame ever, so
        # that what a client is owed in bytes is one subtraction (for the backlog limit).
        self._ends: dict[str, list[int]] = {"raw": [], "lanchat": [], "web": []}
        self._base_bytes: dict[str, int] = {"raw": 0, "lanchat": 0, "web": 0}  # ... up to _base
        self._totals: dict[str, int] = {"raw": 0, "lanchat": 0, "web": 0}  # ... up to `end`
        self._clients: dict[int, Client] = {}
        self._kinds: dict[str, int] = {"raw": 0, "lanchat": 0, "web": 0}  # clients per kind
        # Everyone a pass visits, append-only between rebuilds: a pass iterates it without a copy
        # (a copy per pass was thousands of pointers, allocated and freed per join).
        self._roster: list[Client] = []
        self._departed = 0  # clients in _roster no longer in _clients
        self._dirty: set[Client] = set()  # clients with private frames or a close to handle
        self._drained: list[Client] = []  # sent all their private frames (token held)
        self._closing: set[Client] = set()
        self._parked: set[Client] = set()  # socket full; registered for EVENT_WRITE
        self._lingering: dict[Client, None] = {}  # hung up on our side, peer not gone yet
        self._processed = 0  # log end every served client has been offered
        self._counted = 0  # log end up to which frames count in the demand
        self._next_trim = TRIM_EVERY
        self._requested = False  # frames or private work wait for a pass
        self._hold_until = 0.0  # busy room: passes wait until then (time.monotonic())
        self._hold_armed = False  # the writer knows a frame waits for the end of the hold
        self.holds = 0  # busy-room holds so far (lanchat.cores watches it)
        # The passes' demand (below, "When a hold pays"), measured over DEMAND_WINDOW_SECONDS.
        self.demand = 0.0  # the share of a core the passes would need, one frame per pass
        self.short = False  # demand >= hold_demand: the writer is short of CPU
        self._window_start = time.monotonic()
        self._window_frames = 0  # frames the full passes of the window sent
        self._window_passes = 0
        self._window_busy = 0.0  # seconds those passes took
        self._pass_token = threading.Lock()
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
        self._kinds[client.kind] += 1
        self._roster.append(client)

    def change_kind(self, client: Client, kind: ClientKind) -> None:
        """A raw client turned out to speak lanchat: from now on it reads that kind (lock held,
        and passes paused: the cursor and the kind are a pass's)."""
        self._kinds[client.kind] -= 1
        self._kinds[kind] += 1
        client.kind = kind
        client.cursor = max(client.cursor, self.end)  # frames before were encoded for the old kind

    def reads(self, kind: str) -> bool:
        """Whether any client reads frames of this kind (else they need not be encoded)."""
        return self._kinds[kind] > 0

    def publish(
        self,
        text: bytes,
        json: bytes,
        origin: int = 0,
        event: Event | None = None,
        web: bytes = b"",
    ) -> None:
        """Append one room frame, already encoded for every kind (lock held; b"" for a kind
        nobody reads); with a store, `event` is saved before any pass sends the frame."""
        if self._save is not None and event is not None:
            self._unsaved.append(event)
        # (once per message, for every kind: written out, a loop cost 160 ns more per message)
        frames, ends, totals = self._frames, self._ends, self._totals
        frames["raw"].append(text)
        frames["lanchat"].append(json)
        frames["web"].append(web)
        totals["raw"] += len(text)
        totals["lanchat"] += len(json)
        totals["web"] += len(web)
        ends["raw"].append(totals["raw"])
        ends["lanchat"].append(totals["lanchat"])
        ends["web"].append(totals["web"])
        self._origins.append(origin)
        self.end += 1
        self._requested = True

    def send_private(self, client: Client, data: bytes) -> None:
        """Queue bytes for one client only, in order with the room frames (lock held). A client
        owed more than the limits is dropped by the next pass instead (it does not read)."""
        if client.overflow:
            return
        queue = client.private  # read once: a pass may let an empty deque go (token held)
        if queue is None:
            queue = client.private = deque()
        elif (
            len(queue) >= self.max_backlog
            or client.private_bytes + len(data) > self.max_backlog_bytes
        ):
            client.overflow = True  # `private` stays non-empty, so passes take the slow path
            self._dirty.add(client)
            self._requested = True
            return
        queue.append((self.end, data))
        client.private_bytes += len(data)
        self._dirty.add(client)
        self._requested = True

    def close(self, client: Client, linger: float = LINGER_SECONDS) -> None:
        """Send what is queued up to now, then hang up; give up after `linger` s (lock held)."""
        client.stop_at = self.end
        client.deadline = time.monotonic() + linger
        self._closing.add(client)
        self._dirty.add(client)
        self._requested = True
        self._wake_writer()  # it owns the hang-ups and their deadlines

    def hurry(self, linger: float) -> None:
        """Bring every pending hang-up forward to at most `linger` seconds from now (lock held)."""
        deadline = time.monotonic() + linger
        for client in (*self._closing, *self._lingering):
            client.deadline = min(client.deadline, deadline)
        self._wake_writer()

    # --- passes ---------------------------------------------------------------------------

    def kick(self) -> None:
        """Send what is waiting, in this thread, unless a pass is running (it goes round again).
        Called by the room after it released its lock."""
        passes = 0
        while self._requested:
            if time.monotonic() < self._hold_until:
                # A busy room: the writer thread runs the next pass when the hold ends. The
                # first frame of a hold tells it so (a racing second wake-up is harmless).
                if not self._hold_armed:
                    self._hold_armed = True
                    self._wake_writer()
                return
            if not self._pass_token.acquire(blocking=False):
                return  # the holder sees _requested before it lets go of the token
            try:
                while self._requested and passes < INLINE_PASSES:
                    if time.monotonic() < self._hold_until:
                        break
                    self._requested = False
                    self._pass()
                    passes += 1
            finally:
                self._pass_token.release()
            if passes >= INLINE_PASSES:
                if self._requested:
                    self._wake_writer()  # a busy room: this reader goes back to reading
                return

    @contextmanager
    def passes_paused(self) -> Iterator[None]:
        """No pass runs inside this block (take it before the hub lock: the lock order)."""
        with self._pass_token:
            yield
        if self._requested:
            self._wake_writer()  # a reader that found the token taken left its work to us

    def _wake_writer(self) -> None:
        try:
            self._wake_send.send(b"\0")
        except OSError:
            pass  # wake-ups are queued already (or the writer has stopped)

    def _pass(self) -> None:
        """Offer every client what it is owed (token held)."""
        with self.lock:
            # Empty private queues are let go here, under the lock send_private() holds, so a
            # frame queued meanwhile cannot land in a deque that is being dropped.
            for client in self._drained:
                if not client.private:
                    client.private = None
            self._drained.clear()
            end = self.end
            unsaved = self._take_unsaved()
            if end != self._processed:
                targets: list[Client] | set[Client] = self._roster
                self._dirty.clear()
            else:
                targets, self._dirty = self._dirty, set()
        if unsaved:
            self._save_batch(unsaved)  # on disk before anything up to `end` is sent
        began = time.thread_time()  # (a pass runs in one thread, and waits for nothing)
        start, first_end = self._processed, end
        lo, hi = start - self._base, end - self._base
        shared: dict[str, bytes] = {}  # the frames [start, end) joined, per kind
        raw_senders: frozenset[int] = frozenset()
        cache: dict[Any, Any] = {}
        ride_along = self._save is None  # with a store, a frame is saved before it is sent
        for client in targets:
            if ride_along and self.end != end:
                # Frames published while this pass runs go with it to the clients it has not
                # reached yet: one send() instead of two, and sooner. Those it has reached get
                # them in the next round: _processed ends at `first_end`, where all of them are.
                end = self.end
                hi = end - self._base
                shared.clear()
            if client.blocked:
                continue
            if (
                client.cursor != start
                or start == end
                or client.pending
                or client.private
                or client.stop_at is not None
            ):
                self._serve(client, end, cache)
                continue
            # The common case: nothing but the new frames, shared with everyone of its kind.
            # (The send below repeats _serve's on purpose: this loop runs once per client.)
            kind = client.kind
            data = shared.get(kind)
            if data is None:
                data = shared[kind] = b"".join(self._frames[kind][lo:hi])
                if kind == "raw":
                    raw_senders = frozenset(self._origins[lo:hi])
            if kind == "raw" and client.id in raw_senders:
                self._serve(client, end, cache)  # a raw sender skips its own lines
                continue
            client.cursor = end
            client.frames_out += end - start
            try:
                sent = client.sock.send(data, SEND_FLAGS)
            except (BlockingIOError, InterruptedError):
                sent = 0
            except OSError:
                self._give_up(client, "lost")
                continue
            client.bytes_out += sent
            if sent < len(data):
                client.pending = memoryview(data)[sent:]
                self._park(client)
        self._processed = first_end
        if targets is self._roster and end > self._counted:
            # A pass to everyone (what the demand is made of): the frames it sent, each once,
            # however many rounds brought them (a frame that rode along with a pass to a few
            # clients counts in the next pass to everyone).
            self._measure(end - self._counted, began)
            self._counted = end
        if (
            self.short
            and (end - start > 1 or self.end > end)
            and len(self._clients) >= self.hold_min_clients
        ):
            # A hold pays: the writer is short of CPU, and frames meet (several waited for
            # this pass, or more came while it ran; with one frame per pass and none meanwhile,
            # nothing would share a send however long it waited).
            # Disarm before the new deadline is visible: a reader that sees the new hold must
            # not also see the last hold's "armed" and skip waking the writer.
            self._hold_armed = False
            self._hold_until = time.monotonic() + self.coalesce_seconds
            self._hold_armed = self._requested
            self.holds += 1
            if self._requested:
                self._wake_writer()  # it runs the pass when the hold ends
        if self._parked:
            self._drop_laggards(end)
        if end >= self._next_trim:
            self._trim()

    def _measure(self, frames: int, began: float) -> None:
        """Count a pass that sent `frames` room frames to everyone, and at the end of each
        window work out the demand (token held)."""
        now = time.monotonic()
        self._window_frames += frames
        self._window_passes += 1
        self._window_busy += time.thread_time() - began
        elapsed = now - self._window_start
        if elapsed < self.demand_window:
            return
        # Frames per second, times what one pass to everyone takes: the share of a core the
        # passes would need if each frame had a pass of its own.
        per_pass = self._window_busy / self._window_passes
        self.demand = self._window_frames / elapsed * per_pass
        self.short = self.demand >= self.hold_demand
        self._window_start = now
        self._window_frames = self._window_passes = 0
        self._window_busy = 0.0

    def _take_unsaved(self) -> list[Event]:
        """The events published since the last save (lock held, with `end` read)."""
        unsaved = self._unsaved
        if unsaved:
            self._unsaved = []
        return unsaved

    def _save_batch(self, events: list[Event]) -> None:
        """Commit one pass's events to the store (token held, lock not held)."""
        if self._save is not None:
            self._save(events)

    def _drop_laggards(self, end: int) -> None:
        """Disconnect parked clients owed more than the backlog limits (frames or bytes)."""
        for client in list(self._parked):
            if client.stop_at is None and self._owes_too_much(client, end):
                self._give_up(client, "too-slow")

    def _owes_too_much(self, client: Client, end: int) -> bool:
        if client.overflow:
            return True
        private = client.private
        frames = end - client.cursor + (len(private) if private else 0)
        if frames > self.max_backlog:
            return True
        owed = self._bytes_behind(client, end) + client.private_bytes + len(client.pending)
        # A TLS socket keeps the ciphertext the kernel did not take (lanchat/tls/transport.py)
        owed += getattr(client.sock, "unsent_bytes", 0)
        return owed > self.max_backlog_bytes

    def _bytes_behind(self, client: Client, end: int) -> int:
        """Bytes of room frames [cursor, end) of the client's kind (token held)."""
        ends, base = self._ends[client.kind], self._base
        start = self._base_bytes[client.kind]
        upto = ends[end - 1 - base] if end > base else start
        frm = ends[client.cursor - 1 - base] if client.cursor > base else start
        return upto - frm

    # --- lifecycle ----------------------------------------------------------------------

    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout: float) -> None:
        """Let the writer finish the clients it still has, then end it."""
        self._stopping = True
        self._wake_writer()
        self._thread.join(timeout)
        if not self._thread.is_alive():
            self._selector.close()
            self._wake_recv.close()
            self._wake_send.close()

    @property
    def holding(self) -> bool:
        """Whether a busy room's hold is on now (passes wait until it ends)."""
        return time.monotonic() < self._hold_until

    @property
    def writer_id(self) -> int | None:
        """The writer thread's native id (busy rooms' passes run on it)."""
        return self._thread.native_id

    @property
    def clients(self) -> tuple[Client, ...]:
        with self.lock:
            return tuple(self._clients.values())

    def open_clients(self) -> list[Client]:
        """Every client whose socket is still open: served, closing, or waiting for the peer."""
        with self.lock:
            served = list(self._clients.values())
            lingering = [c for c in self._lingering if not c.closed]
        return served + [c for c in lingering if c not in served]

    # --- the writer thread --------------------------------------------------------------

    def _run(self) -> None:
        """Wait for parked sockets, deadlines and hand-overs; do passes and the hang-ups."""
        while True:
            writable = self._wait()
            with self._pass_token:
                for client in writable:
                    self._unpark(client)
                if writable:
                    with self.lock:
                        self._dirty.update(writable)  # their pending bytes go out next pass
                    self._requested = True
                self._check_closing()
                while self._requested and time.monotonic() >= self._hold_until:
                    self._requested = False
                    self._pass()
                self._check_closing()
                if self._stopping and not self._clients and not self._lingering:
                    return

    def _wait(self) -> list[Client]:
        """Sleep until woken, a parked client can take more, or a closing deadline passes."""
        with self.lock:
            deadlines = [c.deadline for c in (*self._closing, *self._lingering)]
        if self._requested:
            deadlines.append(self._hold_until)
        timeout = max(0.0, min(deadlines) - time.monotonic()) if deadlines else None
        writable = []
        for key, _ in self._selector.select(timeout):
            if key.data is None:
                try:
                    while self._wake_recv.recv(4096):
                        pass
                except OSError:
                    pass  # drained (BlockingIOError)
            else:
                writable.append(key.data)
        return writable

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
        if client.overflow and client.stop_at is None:
            self._give_up(client, "too-slow")  # asked for more replies than it reads
            return
        limit = end if client.stop_at is None else min(end, client.stop_at)
        chunks: list[bytes | memoryview] = []
        if client.pending:
            chunks.append(client.pending)
            client.pending = b""
        frames = 0
        private = client.private
        if private:
            popped = 0
            while private and private[0][0] <= limit:
                pos, frame = private.popleft()
                if pos > client.cursor:
                    chunks.append(self._slice(client, client.cursor, pos, cache))
                    frames += pos - client.cursor
                    client.cursor = pos
                chunks.append(frame)
                frames += 1
                popped += len(frame)
            if popped:
                with self.lock:
                    client.private_bytes -= popped
            if not private:
                self._drained.append(client)
        if client.cursor < limit:
            chunks.append(self._slice(client, client.cursor, limit, cache))
            frames += limit - client.cursor
            client.cursor = limit
        if not chunks:
            return
        client.frames_out += frames
        data: bytes | memoryview = chunks[0] if len(chunks) == 1 else b"".join(chunks)
        if not len(data):
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
            client.pending = (
                data[sent:] if isinstance(data, memoryview) else memoryview(data)[sent:]
            )
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
        if threading.get_ident() != self._thread.ident:  # (current_thread() would make a
            self._wake_writer()  # dummy Thread for a bare reader thread) a select() already
            # under way may not see the new socket

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
        with self.lock:
            client.private = None  # given up on: nothing more is sent to it ...
            client.private_bytes = 0
            client.overflow = False  # ... but the goodbye the hub queues next
        had_partial_line = bool(client.pending)
        pending = bytes(client.pending)
        self._on_failed(client, reason)  # the hub takes the lock, sets stop_at, queues a goodbye
        # Skip the backlog: only the goodbye still goes out, after the rest of a frame that was
        # half sent (a cut line would look like garbage to the client). WebSocket frames have
        # no newline to cut at: a browser gets the whole tail (the linger deadline bounds it).
        if client.kind == "web":
            client.pending = pending
        else:
            client.pending = pending[: pending.find(b"\n") + 1] if had_partial_line else b""
        if client.stop_at is not None:
            client.cursor = max(client.cursor, client.stop_at)
        if reason == "too-slow":
            # Its socket is full: without room, the goodbye waited for a read that might come
            # after the linger, and the client found a line cut in half and no notice.
            client.make_room(len(client.pending) + client.private_bytes)  # bytes: the goodbye

    def _check_closing(self) -> None:
        """Hang up on closing clients once flushed or out of time (writer thread, token held)."""
        with self.lock:
            end = self.end
            closing = list(self._closing)
            unsaved = self._take_unsaved()
        if unsaved:
            self._save_batch(unsaved)
        now = time.monotonic()
        for client in closing:
            if not client.blocked and now < client.deadline:
                self._serve(client, end, {})
            flushed = not (client.pending or client.private) and client.cursor >= (
                client.stop_at or 0
            )
            if flushed or now >= client.deadline:
                self._finish(client)
        with self.lock:
            gone = [c for c in self._lingering if c.closed or now >= c.deadline]
            for client in gone:
                del self._lingering[client]
        for client in gone:
            client.hang_up()

    def _finish(self, client: Client) -> None:
        """Hang up our side (FIN after the last frame); the reader drains until the peer closes."""
        self._unpark(client)
        client.shut(socket.SHUT_WR)
        with self.lock:
            self._closing.discard(client)
            if self._clients.pop(client.id, None) is not None:
                self._kinds[client.kind] -= 1
                self._departed += 1
                if self._departed > 64 and self._departed * 2 > len(self._roster):
                    self._roster = list(self._clients.values())  # a new list: passes under
                    self._departed = 0  # way keep iterating the old one
            self._lingering[client] = None
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
            for kind, ends in self._ends.items():
                self._base_bytes[kind] = ends[drop - 1]
                del ends[:drop]
            del self._origins[:drop]
            self._base = lowest
            # Everyone is at `lowest` or beyond: a pass whose frames rode along to every client
            # left _processed behind it, and a slice must never start before the log does.
            self._processed = max(self._processed, lowest)
