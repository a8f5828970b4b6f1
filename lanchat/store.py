"""History on disk: the room's events in SQLite, so that a restart resumes where it stopped.

Theory of operation. Every room event the hub publishes also goes into the fan-out's unsaved
batch (under the hub lock). Before a pass sends anything, it takes that batch together with the
log end it is about to serve (one hub lock acquisition) and hands it to `save()`: one transaction
per pass, in WAL mode with synchronous=FULL (the WAL is fsynced at each commit). So no client is
sent a frame, or a private frame whose seq names it, before it is on disk, and a busy room, whose
passes carry many frames each, pays one fsync per pass rather than one per message.

Ownership. The sqlite3 connection is used by whoever holds the fan-out's pass token (a reader
thread running a pass inline, or the writer thread), one thread at a time and never under the hub
lock: hence check_same_thread=False, made safe by the token rather than by sqlite's own check.
`open_store()` and `load()` run before the relay starts; `close()` runs after it stopped, with
passes paused (the token). `failed` is written by the token holder only.

What is kept: every room event (chats, joins, leaves, renames, the shutdown bye) with its seq, so
the seq and the epoch (table `meta`) carry on after a restart; only chats are replayed. Retention
by count (`keep`) and by age (`keep_days`) runs at open and every PRUNE_EVERY saved rows; `meta`
remembers the newest seq and the newest chat seq it deleted, so a resuming client is told about
a gap rather than given a silent hole.
"""

from __future__ import annotations

import logging
import sqlite3
import time
from collections.abc import Sequence
from pathlib import Path

from lanchat.errors import StoreError
from lanchat.protocol import Chat, Event, FrameError, encode_json, parse_event
from lanchat.room import Past, new_epoch

DEFAULT_KEEP = 100_000  # rows (room events) kept on disk; 0: no limit by count
PRUNE_EVERY = 1024  # saved rows between two retention passes
CHAT_TYPES = ("message", "action")

log = logging.getLogger(__name__)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS events (
    seq INTEGER PRIMARY KEY,
    time REAL NOT NULL,
    type TEXT NOT NULL,
    frame TEXT NOT NULL
);
"""


class Store:
    """The room's events in one SQLite file (WAL); see the module's docstring for who uses it."""

    def __init__(self, db: sqlite3.Connection, path: Path, keep: int, keep_days: float) -> None:
        self._db = db
        self.path = path
        self.keep = keep
        self.keep_days = keep_days
        self.failed = False  # a save failed: from then on history is in memory only
        self._since_prune = 0

    # --- before the relay starts --------------------------------------------------------

    def load(self, history: int) -> Past:
        """The epoch, the last seq and the newest `history` chats (a new epoch if none)."""
        db = self._db
        with db:
            self._prune()
            epoch = self._meta("epoch")
            if epoch is None:
                epoch = new_epoch()
                db.execute("INSERT INTO meta VALUES ('epoch', ?)", (epoch,))
        newest = db.execute("SELECT max(seq) FROM events").fetchone()[0] or 0
        seq = max(newest, int(self._meta("pruned") or 0))
        rows = db.execute(
            "SELECT seq, frame FROM events WHERE type IN (?, ?) ORDER BY seq DESC LIMIT ?",
            (*CHAT_TYPES, history + 1),
        ).fetchall()
        trimmed = int(self._meta("trimmed") or 0)
        if len(rows) > history:
            trimmed = max(trimmed, rows[history][0])
        chats = []
        for _, frame in reversed(rows[:history]):
            try:
                chat = parse_event(frame.encode())
            except FrameError:
                continue  # not ours to fix: the file was edited by hand
            if isinstance(chat, Chat):
                chats.append(chat)
        return Past(epoch, seq, tuple(chats), trimmed)

    # --- the pass token holder ----------------------------------------------------------

    def save(self, events: Sequence[Event]) -> None:
        """Commit one pass's events (one transaction, fsynced) before they are sent."""
        if self.failed or not events:
            return
        rows = [
            (
                e.seq,
                e.time,
                "action" if isinstance(e, Chat) and e.action else e.TYPE,
                encode_json(e).decode("utf-8").rstrip("\n"),
            )
            for e in events
        ]
        try:
            with self._db:
                self._db.executemany("INSERT OR REPLACE INTO events VALUES (?, ?, ?, ?)", rows)
                self._since_prune += len(rows)
                if self._since_prune >= PRUNE_EVERY:
                    self._since_prune = 0
                    self._prune()
        except sqlite3.Error as e:
            # The room goes on; what a restart could resume stops here. One line, not a crash.
            self.failed = True
            log.error(
                "the history store %s failed (%s): history is in memory only now", self.path, e
            )

    def close(self) -> None:
        """Close the file (again: harmless); later saves are skipped."""
        self.failed = True
        try:
            self._db.close()
        except sqlite3.Error:
            pass

    # --- retention (inside a transaction) -----------------------------------------------

    def _prune(self) -> None:
        db = self._db
        cutoff = 0
        if self.keep:
            row = db.execute(
                "SELECT seq FROM events ORDER BY seq DESC LIMIT 1 OFFSET ?", (self.keep,)
            ).fetchone()
            cutoff = row[0] if row else 0
        if self.keep_days:
            before = time.time() - self.keep_days * 86400
            old = db.execute("SELECT max(seq) FROM events WHERE time < ?", (before,)).fetchone()
            cutoff = max(cutoff, old[0] or 0)
        if not cutoff:
            return
        chat = db.execute(
            "SELECT max(seq) FROM events WHERE seq <= ? AND type IN (?, ?)", (cutoff, *CHAT_TYPES)
        ).fetchone()[0]
        db.execute("DELETE FROM events WHERE seq <= ?", (cutoff,))
        self._raise_meta("pruned", cutoff)
        if chat:
            self._raise_meta("trimmed", chat)

    def _meta(self, key: str) -> str | None:
        row = self._db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return None if row is None else str(row[0])

    def _raise_meta(self, key: str, value: int) -> None:
        old = int(self._meta(key) or 0)
        if value > old:
            self._db.execute("INSERT OR REPLACE INTO meta VALUES (?, ?)", (key, str(value)))


def open_store(path: str | Path, *, keep: int = DEFAULT_KEEP, keep_days: float = 0) -> Store:
    """Open (or create) the history file; StoreError says why it cannot be used."""
    path = Path(path)
    hint = "Give --store a file in a directory you can write to, e.g. --store ~/lanchat.db."
    if path.is_dir():
        raise StoreError(f"--store {path}: that is a directory, not a file.", hint)
    if not path.parent.is_dir():
        raise StoreError(f"--store {path}: the directory {path.parent} does not exist.", hint)
    try:
        db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
    except sqlite3.Error as e:
        raise StoreError(f"--store {path}: cannot open it ({e}).", hint) from None
    try:
        db.isolation_level = "DEFERRED"  # `with db:` opens and commits one transaction
        mode = db.execute("PRAGMA journal_mode=WAL").fetchone()[0]
        if str(mode).lower() != "wal":
            raise sqlite3.OperationalError(f"journal mode {mode}, not WAL")
        db.execute("PRAGMA synchronous=FULL")
        db.executescript(_SCHEMA)
    except sqlite3.Error as e:
        db.close()
        raise StoreError(
            f"--store {path}: not a lanchat history file, or not writable ({e}).", hint
        ) from None
    return Store(db, path, keep, keep_days)
