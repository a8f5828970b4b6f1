"""The relay's link to its room's stream in Redis: its two threads, its state (up or down), and
what an outage does. The Redis commands are stream.py's (history, reads, appends) and
presence.py's (names, heartbeats); the data is entries.py's; what waits for the stream is
outbox.py's; the Lua is scripts.py's.

Theory of operation. open() (before the relay starts) reads the room's history: its epoch and
the newest chats, so that a restarted relay greets and resumes clients like the others do.
Then two threads:

* the reader XREADs the stream with BLOCK (stream.READ_BLOCK_MS: stop() is heard) from the
  last entry it delivered, drops copies of retried appends, and hands every entry to the hub in
  the stream's order (Hub.deliver): the other relays' events and ours, which only then reach our
  clients. While the backplane is down it reconnects with backoff, and when Redis answers again
  it goes on from where it stopped (catching up on the others' events).
* the writer appends what the room submitted, in batches (one script call, one round trip),
  records the names the room gave and freed, and every HEARTBEAT_SECONDS refreshes this relay's
  heartbeat and reads who is on the other relays.

A Redis error or timeout on either thread takes the link down (`_went_down`): our events not
back from the stream yet are shown here at once, with a notice, and so is everything the room
publishes until the link is up again (submit() returns False). When it is up, they are appended
after all, in their order; the reader recognises them by run and lseq and does not show them
again. docs/reliability.md, "Several relays", states what this guarantees and what it cannot.

Who owns what:

    field                              owner
    _state, _since, _error, _outbox,   `_lock` (a Condition's lock; the writer waits on it). Taken
      _claims, _seq, _beats              inside the hub lock by submit()/names() and by the
                                         callbacks Hub.deliver/show_here run; never held while
                                         taking the hub lock (lock order: hub, then ours)
    _last_id, _dedupe, _read_seq        the reader thread (before start: open())
    _head_seq, _relays_alive           the writer thread; read by status() without a lock (ints)
    _hub, _conn, _run                  set before the threads start, then only read (_conn is a
                                         redis-py client: a connection pool, for both threads)
    _epoch                             written under `_lock` by the reader when Redis lost its
                                         data; the writer reads it without the lock: a stale
                                         epoch only gets its append refused (EPOCH), which takes
                                         the link down and up again with the new one
    _stopping                          a threading.Event: set once by stop()

A failure that is not Redis's (a bug) costs one log line and a reconnect, never a dead thread.
"""

from __future__ import annotations

import functools
import logging
import secrets
import threading
import time
from collections import deque
from typing import Any

from lanchat.backplane import presence, stream
from lanchat.backplane.entries import (
    START,
    Address,
    Dedupe,
    Entry,
    EntryError,
    Keys,
    decode_entry,
    relay_info,
)
from lanchat.backplane.outbox import Outbox
from lanchat.backplane.stream import redis_errors
from lanchat.errors import BackplaneError
from lanchat.fanout import Client
from lanchat.hub import Arrival, Hub
from lanchat.protocol import Event, Notice
from lanchat.protocol.status import BackplaneStatus
from lanchat.room import Claim, Past

log = logging.getLogger(__name__)

DEFAULT_KEEP = 100_000  # entries the stream keeps (MAXLEN ~): its history for resumes
OPEN_TIMEOUT = 5.0  # how long `serve` tries to reach Redis before it gives up
APPEND_BATCH = 500  # events per append script call
HEARTBEAT_SECONDS = 2.0  # refresh our heartbeat, read who is on the other relays
ALIVE_SECONDS = 3 * HEARTBEAT_SECONDS  # a relay silent this long is dead; its names free
RECONNECT_MIN, RECONNECT_MAX = 0.1, 2.0  # backoff between reconnect attempts (doubling)
LAGGING_SECONDS = 1.0  # our oldest event not back from the stream this long: "lagging"


class Backplane:
    """This relay's side of the room's stream (see the module's docstring); the hub's
    Sequencer once attached."""

    def __init__(
        self,
        address: Address,
        room: str,
        relay: str,
        *,
        host: str = "",
        port: int = 0,
        keep: int = DEFAULT_KEEP,
        heartbeat: float = HEARTBEAT_SECONDS,
    ) -> None:
        self.address = address
        self.keys = Keys(room)
        self.relay = relay
        self.keep = keep
        self.heartbeat = heartbeat  # (tests make it long, to hold the others' names still)
        self._host, self._port = host, port
        self._run = secrets.token_hex(6)
        self._started = time.time()
        self._conn: stream.Connection | None = None
        self._hub: Hub | None = None
        self._epoch = ""
        self._lock = threading.Condition()
        self._state = "connecting"
        self._since = time.time()
        self._error: str | None = None
        self._outbox = Outbox()
        self._claims: deque[Claim] = deque()
        self._seq = 0  # the last seq delivered (the room's)
        self._last_id = START
        self._read_seq = 0  # the seq of the last entry read, copies included
        self._dedupe = Dedupe()
        self._head_seq = 0  # the stream's newest seq, at the last heartbeat
        self._relays_alive = 0
        self._beats = 0  # heartbeats done (under _lock), for wait_heartbeat()
        self._stopping = threading.Event()
        self._threads: list[threading.Thread] = []

    # --- before the relay starts ----------------------------------------------------------

    def open(self, history: int, timeout: float = OPEN_TIMEOUT) -> Past:
        """Reach Redis, take the room's epoch (a new one if the room is new) and its newest
        chats; BackplaneError if Redis does not answer within `timeout` seconds."""
        self._conn = conn = stream.connect(self.address, self.relay)
        deadline = time.monotonic() + timeout
        while True:
            try:
                start = stream.read_history(conn, self.keys, history)
                break
            except redis_errors() as e:
                if time.monotonic() >= deadline:
                    raise BackplaneError(
                        f"Cannot reach the backplane {self.address.shown}: {e}.",
                        "Start Redis there (redis-server), or check --backplane: the relays "
                        "of a room need it to start.",
                    ) from None
            self._stopping.wait(RECONNECT_MAX / 4)
        self._epoch = start.past.epoch
        self._seq = self._read_seq = start.past.seq
        self._last_id, self._dedupe = start.last_id, start.dedupe
        return start.past

    @property
    def _opened(self) -> stream.Connection:
        """The connection open() made (the threads start after it)."""
        if self._conn is None:
            raise RuntimeError("the backplane is used before open()")
        return self._conn

    @property
    def epoch(self) -> str:
        """The room's history id: every relay of the room greets with it."""
        with self._lock:
            return self._epoch

    def start(self, hub: Hub) -> None:
        """Attach to the hub and start the reader and the writer."""
        self._hub = hub
        hub.attach(self)
        with self._lock:
            self._set_state("up")
        for target, name in ((self._read_loop, "reader"), (self._write_loop, "writer")):
            thread = threading.Thread(target=target, name=f"lanchat-backplane-{name}", daemon=True)
            self._threads.append(thread)
            thread.start()

    # --- the hub's Sequencer (hub lock held) ----------------------------------------------

    def submit(self, event: Event, origin: int, actor: Client | None) -> bool:
        with self._lock:
            up = self._state == "up"
            self._outbox.add(event, origin, actor, shown=not up)
            if up:
                self._lock.notify_all()
            return up

    def names(self, claims: list[Claim]) -> None:
        with self._lock:
            self._claims.extend(claims)
            self._lock.notify_all()

    # --- the reader -----------------------------------------------------------------------

    def _read_loop(self) -> None:
        backoff = RECONNECT_MIN
        while not self._stopping.is_set():
            if self.state != "up":
                if not self._reconnect():
                    self._stopping.wait(backoff)
                    backoff = min(backoff * 2, RECONNECT_MAX)
                    continue
                backoff = RECONNECT_MIN
            try:
                entries = self._entries(stream.read_new(self._opened, self.keys, self._last_id))
                if entries and self._hub is not None:
                    self._hub.deliver(functools.partial(self._arrivals, entries))
            except redis_errors() as e:
                self._went_down(e)
            except Exception as e:  # a bug (see the top): logged, and the link starts again
                log.exception("backplane reader failed: %r", e)
                self._went_down(e)

    def _entries(self, pairs: list[tuple[Any, Any]]) -> list[Entry]:
        """The new entries read, copies of retried appends dropped."""
        fresh: list[Entry] = []
        for entry_id, fields in pairs:
            self._last_id = _text(entry_id)
            try:
                entry = decode_entry(entry_id, fields)
            except EntryError as e:
                log.warning("backplane: skipped an entry that is not lanchat's: %s", e)
                continue
            if self._read_seq and entry.seq > self._read_seq + 1:
                missed = entry.seq - self._read_seq - 1
                log.warning(
                    "backplane: %d entries were trimmed before this relay read them", missed
                )
            self._read_seq = max(self._read_seq, entry.seq)
            if self._dedupe.fresh(entry.run, entry.lseq):
                fresh.append(entry)
        return fresh

    def _arrivals(self, entries: list[Entry]) -> list[Arrival]:
        """The entries as the hub delivers them (called under the hub lock: our own are let go
        from the outbox in the same step, so no outage can show them twice)."""
        arrivals = []
        with self._lock:
            for entry in entries:
                self._seq = max(self._seq, entry.seq)
                if entry.run == self._run:
                    waiting = self._outbox.arrived(entry.lseq)
                    if waiting is None:
                        continue  # let go when the outbox was full (outbox.MAX_WAITING)
                    arrivals.append(
                        Arrival(entry.event, "", waiting.origin, waiting.actor, waiting.shown)
                    )
                else:
                    relay = "" if entry.relay == self.relay else entry.relay
                    arrivals.append(Arrival(entry.event, relay))
        return arrivals

    def _reconnect(self) -> bool:
        """Redis answers again: go on with the same history, or learn that it was lost."""
        try:
            epoch, head = stream.room_epoch(self._opened, self.keys, self._seq)
        except redis_errors():
            return False
        if epoch != self._epoch:
            self._lost_history(epoch, head)
        with self._lock:
            self._outbox.resend()
            self._set_state("up")
            self._lock.notify_all()
        if self._hub is not None:
            self._hub.notice(
                "backplane-back",
                "The other relays of this room can be reached again; "
                "messages from while they could not are delivered now.",
            )
        log.warning("backplane %s: connected again", self.address.shown)
        return True

    def _lost_history(self, epoch: str, head: int) -> None:
        """Redis came back without the room's history (it was not persisted): a new epoch."""
        log.error(
            "backplane %s: the room's history was lost (new epoch %s)", self.address.shown, epoch
        )
        with self._lock:
            self._epoch = epoch
            self._seq = max(self._seq, head)
        self._last_id = START
        if self._conn is not None:
            try:
                self._last_id = stream.stream_end(self._conn, self.keys)
            except redis_errors():
                pass  # the reader finds out at its next read
        self._read_seq = 0
        # The dedupe stays: runs and their lseqs go on in the new stream, and what the relays
        # held for the lost one is appended again there, copies of what was delivered before.
        if self._hub is not None:
            self._hub.restart_history(
                Past(epoch, head),
                Notice(
                    0,
                    0.0,
                    "backplane-reset",
                    "The room's history was lost by its backplane (Redis restarted without its "
                    "data); earlier messages cannot be replayed.",
                ),
            )

    def _went_down(self, error: BaseException) -> None:
        """Redis failed us: show here what waits for it, and everything until it is back."""
        if self._stopping.is_set() or self._hub is None:
            return

        def take() -> tuple[list[Arrival], Notice | None]:  # under the hub lock
            with self._lock:
                if self._state != "up":
                    return [], None  # the other thread was first
                self._set_state("down", f"{type(error).__name__}: {error}")
                shown = self._outbox.show_all()
            notice = Notice(
                0,
                0.0,
                "backplane-down",
                "The other relays of this room cannot be reached (their backplane is down): "
                "you are chatting with the people on this relay only until it is back; "
                "nothing is lost.",
            )
            return [Arrival(w.event, "", w.origin, w.actor) for w in shown], notice

        self._hub.show_here(take)
        log.warning("backplane %s is down: %s", self.address.shown, error)

    # --- the writer -----------------------------------------------------------------------

    def _write_loop(self) -> None:
        next_beat = 0.0
        while True:
            with self._lock:
                while not self._stopping.is_set():
                    up = self._state == "up"
                    if up and (self._outbox.unsent() or self._claims):
                        break
                    wait = next_beat - time.monotonic()
                    if up and wait <= 0:
                        break
                    self._lock.wait(max(0.01, wait) if up else RECONNECT_MAX)
                if self._state != "up":
                    if self._stopping.is_set():
                        return
                    continue
                batch = self._outbox.to_send(APPEND_BATCH)
                claims = list(self._claims)
                self._claims.clear()
            try:
                if claims:
                    self._record_names(claims)
                if batch:
                    self._append(batch)
                if time.monotonic() >= next_beat and not self._stopping.is_set():
                    next_beat = time.monotonic() + self.heartbeat
                    self._heartbeat()
            except Exception as e:  # Redis's failure, or a bug (logged): the link starts again
                if not isinstance(e, redis_errors()):
                    log.exception("backplane writer failed: %r", e)
                if claims:
                    with self._lock:
                        self._claims.extendleft(reversed(claims))
                self._went_down(e)
                continue
            if self._stopping.is_set():
                with self._lock:
                    if not self._outbox.unsent() and not self._claims:
                        return

    def _append(self, batch: list[Any]) -> None:
        conn = self._opened
        stream.append(conn, self.keys, self.keep, self._epoch, self._run, self.relay, batch)

    def _record_names(self, claims: list[Claim]) -> None:
        lost = presence.record_names(self._opened.names, self.keys, self.relay, claims)
        for claim, holder in lost:
            if self._hub is not None:
                self._hub.name_taken(claim.member, claim.name, holder)

    def _heartbeat(self) -> None:
        """Say we are alive, and read who is on the other relays (presence.py)."""
        info = relay_info(self._run, self._host, self._port, self._started)
        alive_ms = int(max(ALIVE_SECONDS, 3 * self.heartbeat) * 1000)
        beat = presence.beat(self._opened.client, self.keys, self.relay, self._run, info, alive_ms)
        if beat.previous not in (None, self._run) and self._beats:
            # Since our last beat another process wrote this relay's heartbeat: two relays
            # share a name, and would free and take each other's names.
            clash = f"another relay calls itself {self.relay!r}: give each its own --relay-name"
            log.error("backplane: %s", clash)
            with self._lock:
                self._error = clash
        self._relays_alive, self._head_seq = beat.relays, beat.head
        if self._hub is not None:
            self._hub.set_remote(beat.people, beat.head)
        with self._lock:
            self._beats += 1
            self._lock.notify_all()

    def wait_heartbeat(self, timeout: float, *, first: bool = False) -> bool:
        """Wait until a heartbeat that started after this call is done (it read the other
        relays afresh), or with `first` until the first one is; False if none within
        `timeout` seconds."""
        with self._lock:
            target = 1 if first else self._beats + 2  # (one under way may have read before)
            return self._lock.wait_for(lambda: self._beats >= target, timeout)

    # --- stopping, status -----------------------------------------------------------------

    def stop(self, timeout: float) -> None:
        """Append what the room still submitted (its farewells), free our names and our
        heartbeat, and end both threads, within about `timeout` seconds."""
        deadline = time.monotonic() + timeout
        self._stopping.set()
        with self._lock:
            self._lock.notify_all()
        for thread in self._threads:
            thread.join(max(0.0, deadline - time.monotonic()))
        if self._conn is not None:
            try:
                pipe = self._conn.client.pipeline(transaction=False)
                pipe.delete(self.keys.alive(self.relay))
                pipe.hdel(self.keys.relays, self.relay)
                pipe.execute()
            except redis_errors():
                pass  # Redis is away: the heartbeat expires by itself
            self._conn.client.close()
        with self._lock:
            self._set_state("stopped")

    @property
    def state(self) -> str:
        with self._lock:
            return self._state

    def _set_state(self, state: str, error: str | None = None) -> None:
        """(lock held)"""
        self._state, self._since, self._error = state, time.time(), error

    def status(self) -> BackplaneStatus:
        """The link as `lanchat status` shows it."""
        now = time.monotonic()
        with self._lock:
            lag = self._outbox.oldest_age(now)
            state = self._state
            if state == "up":
                state = "lagging" if lag > LAGGING_SECONDS else "connected"
            return BackplaneStatus(
                url=self.address.shown,
                stream=self.keys.stream,
                relay=self.relay,
                state=state,
                since=round(self._since, 3),
                error=self._error,
                epoch=self._epoch,
                seq=self._seq,
                behind=max(0, self._head_seq - self._seq),
                waiting=len(self._outbox),
                lag=round(lag, 3),
                relays=self._relays_alive,
            )


def _text(value: Any) -> str:
    return value.decode("utf-8") if isinstance(value, bytes) else str(value)
