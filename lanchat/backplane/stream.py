"""The room's stream in Redis, command by command: the client (redis-py) and its scripts, the
room's epoch, the history a starting relay reads, the entries a reader waits for (XREAD BLOCK)
and the appends (scripts.APPEND). No threads and no state of its own: the link (link.py) calls
these from its threads and keeps what they return.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from lanchat.backplane import scripts
from lanchat.backplane.entries import (
    START,
    Address,
    Dedupe,
    Entry,
    EntryError,
    Keys,
    decode_entry,
    entry_fields,
)
from lanchat.backplane.outbox import Waiting
from lanchat.errors import BackplaneError
from lanchat.protocol import Chat
from lanchat.room import Past, new_epoch

log = logging.getLogger(__name__)

SOCKET_TIMEOUT = 2.0  # a Redis command unanswered this long: the backplane is down
CONNECT_TIMEOUT = 1.0
READ_BLOCK_MS = 500  # XREAD BLOCK: how soon the reader notices stop()
READ_COUNT = 1000  # entries per XREAD
HISTORY_WINDOW = 10  # a starting relay reads up to this many entries per history chat


def redis_errors() -> tuple[type[BaseException], ...]:
    """What a Redis command raises when Redis is away, slow or refuses (redis-py's errors)."""
    import redis

    return (redis.RedisError, OSError)


@dataclass
class Connection:
    """A redis-py client (a pool: the link's two threads share it) and the scripts."""

    client: Any
    init: Any
    append: Any
    names: Any


def connect(address: Address, relay: str) -> Connection:
    """A client for `address` (it connects at its first command); BackplaneError for a URL
    redis-py cannot use."""
    import redis
    from redis.backoff import NoBackoff
    from redis.retry import Retry

    try:
        client = redis.Redis.from_url(
            address.url,
            socket_timeout=SOCKET_TIMEOUT,
            socket_connect_timeout=CONNECT_TIMEOUT,
            # redis-py's own retries are off: the link retries, knowing what is safe to repeat
            # (a resent append's copy is dropped on read), and an outage shows within seconds.
            retry=Retry(NoBackoff(), 0),
            client_name=f"lanchat-{relay}",
        )
        return Connection(
            client,
            client.register_script(scripts.INIT),
            client.register_script(scripts.APPEND),
            client.register_script(scripts.NAMES),
        )
    except (ValueError, redis.RedisError) as e:
        raise BackplaneError(
            f"--backplane {address.shown}: {e}.",
            "Give the URL of a Redis server: --backplane redis://HOST:6379/0",
        ) from None


def room_epoch(conn: Connection, keys: Keys, after: int) -> tuple[str, int]:
    """The room's (epoch, seq), made first if the room is new to this Redis (its seqs then
    start after `after`: a relay that knew a lost history keeps its seqs growing)."""
    epoch, seq = conn.init(keys=[keys.meta], args=[new_epoch(), after])
    return _text(epoch), int(seq or 0)


@dataclass
class Start:
    """What a starting relay reads: its history, where to read on from, what it has seen."""

    past: Past
    last_id: str  # the newest entry read
    dedupe: Dedupe  # (run, lseq) of the entries read: their copies are not new


def read_history(conn: Connection, keys: Keys, history: int) -> Start:
    """The room's epoch and its newest `history` chats (copies of retried appends dropped)."""
    epoch, head = room_epoch(conn, keys, 0)
    window = max(history * HISTORY_WINDOW, 100)
    newest = conn.client.xrevrange(keys.stream, "+", "-", count=window)
    entries: list[Entry] = []
    for entry_id, fields in reversed(newest or []):
        try:
            entries.append(decode_entry(entry_id, fields))
        except EntryError as e:
            log.warning("backplane: skipped an entry that is not lanchat's: %s", e)
    chats: list[Chat] = []
    dedupe = Dedupe()
    for entry in entries:
        if dedupe.fresh(entry.run, entry.lseq) and isinstance(entry.event, Chat):
            chats.append(entry.event)
    seq = entries[-1].seq if entries else head
    trimmed = 0
    if len(chats) > history:
        trimmed = chats[-history - 1].seq
    elif entries and entries[0].seq > 1:  # older entries exist, unread (or trimmed)
        trimmed = entries[0].seq - 1
    kept = tuple(chats[-history:]) if history else ()
    last_id = entries[-1].id if entries else stream_end(conn, keys)
    return Start(Past(epoch, seq, kept, trimmed), last_id, dedupe)


def stream_end(conn: Connection, keys: Keys) -> str:
    """Where to read from in an empty stream: its last id ever (an entry trimmed away would
    otherwise come back as new), or the start when there is no stream yet."""
    try:
        info = conn.client.xinfo_stream(keys.stream)
    except redis_errors():  # no such key
        return START
    return _text(info.get("last-generated-id") or info.get(b"last-generated-id") or START)


def read_new(conn: Connection, keys: Keys, last_id: str) -> list[tuple[Any, Any]]:
    """The entries after `last_id`, waiting up to READ_BLOCK_MS for one: (id, fields) pairs."""
    reply = conn.client.xread({keys.stream: last_id}, count=READ_COUNT, block=READ_BLOCK_MS)
    return stream_entries(reply)


def append(
    conn: Connection, keys: Keys, keep: int, epoch: str, run: str, relay: str, batch: list[Waiting]
) -> None:
    """Append a batch of our events in one script call (each gets the next seq); refused
    (ResponseError 'EPOCH ...') when the room's history is not `epoch`."""
    args: list[Any] = [keep, epoch, run, relay]
    for waiting in batch:
        args += entry_fields(waiting.lseq, waiting.event)
    conn.append(keys=[keys.stream, keys.meta], args=args)


def stream_entries(reply: Any) -> list[tuple[Any, Any]]:
    """The (id, fields) pairs of an XREAD reply: [[key, [(id, fields), ...]]] (RESP2, what
    redis-py speaks unless the URL asks for protocol=3: then {key: [[(id, fields), ...]]})."""
    if not reply:
        return []
    streams: Sequence[Any] = list(reply.values()) if isinstance(reply, dict) else reply
    pairs: list[tuple[Any, Any]] = []
    for stream in streams:
        entries = stream[0] if isinstance(reply, dict) else stream[1]
        pairs += [(entry[0], entry[1]) for entry in entries]
    return pairs


def _text(value: Any) -> str:
    return value.decode("utf-8") if isinstance(value, bytes) else str(value)
