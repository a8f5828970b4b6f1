"""The backplane's data, pure: where a room lives in Redis (keys), what one stream entry holds
and how it is read back, the dedupe of retried appends, and the names hash's values. No I/O:
tests/test_backplane_entries.py tests it without a Redis.

One room is one Redis stream (docs/reliability.md, "Several relays"). Every entry is one room
event, appended by the relay whose client caused it, with five fields:

    seq    the room's sequence number: the stream's order as a dense count, given by the
           append script (scripts.py) in the same atomic step as XADD, so every relay reads
           the same seq for the same entry and a client's resume point means the same on all
    run    the appending relay's process (a random token per start)
    lseq   that run's own count of the events it appended: with `run`, the entry's identity
    relay  the appending relay's name (`--relay-name`), for /who and the serve log
    event  the event as a lanchat client reads it (protocol/events.py), its seq left 0

Redis 7.0 has no idempotent XADD, so an append whose answer was lost (a
timeout, a dropped connection) is simply sent again, and the reader drops every entry whose
(run, lseq) it has delivered already: `Dedupe`. A run appends its entries in lseq order and a
retry resends a suffix of them, so "lseq not above the highest seen for this run" is exactly
"a copy".
"""

from __future__ import annotations

import json
import re
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any
from urllib.parse import quote, urlsplit

from lanchat.errors import UsageError
from lanchat.protocol import DEFAULT_PORT, Event, FrameError, encode_json, name_key, parse_event

SCHEMES = ("redis", "rediss", "unix")
MAX_RUNS = 4096  # runs the dedupe remembers (each restart of each relay is one)
START = "0-0"  # the stream id before every entry
RELAY_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:-]{0,62}")


class EntryError(ValueError):
    """A stream entry that is not a lanchat event (another program wrote it, or a newer
    lanchat): skipped by the reader, with one log line."""


@dataclass(frozen=True)
class Keys:
    """The Redis keys of one room. They share the `{...}` part, a Redis Cluster hash tag, so
    one script may touch them all."""

    room: str

    @property
    def prefix(self) -> str:
        return f"lanchat:{{{quote(self.room, safe='')}}}"

    @property
    def stream(self) -> str:
        """The room's events (XADD, XREAD)."""
        return f"{self.prefix}:stream"

    @property
    def meta(self) -> str:
        """A hash: `epoch` (the history's id) and `seq` (the last seq given out)."""
        return f"{self.prefix}:meta"

    @property
    def names(self) -> str:
        """A hash: name key -> the name and the relay that holds it (names_value)."""
        return f"{self.prefix}:names"

    @property
    def relays(self) -> str:
        """A hash: relay name -> its run and address (relay_info), for status."""
        return f"{self.prefix}:relays"

    @property
    def alive_prefix(self) -> str:
        return f"{self.prefix}:alive:"

    def alive(self, relay: str) -> str:
        """A relay's heartbeat: its run, with a time to live; gone = the relay is dead."""
        return self.alive_prefix + relay


@dataclass(frozen=True)
class Address:
    """Where the backplane is, from `--backplane redis://HOST:PORT/DB`."""

    url: str  # as given: redis-py reads it (password, TLS with rediss://, a unix socket)

    @property
    def shown(self) -> str:
        """The URL without its password, for logs, status and the banner."""
        parts = urlsplit(self.url)
        if parts.password is None:
            return self.url
        user = f"{parts.username}:***@" if parts.username else ":***@"
        host = parts.netloc.rpartition("@")[2]
        return parts._replace(netloc=user + host).geturl()


def parse_address(url: str) -> Address:
    """The backplane's URL, checked; UsageError says what is wrong with it."""
    example = "Example: --backplane redis://10.0.0.5:6379/0"
    parts = urlsplit(url)
    if parts.scheme not in SCHEMES:
        raise UsageError(
            f"--backplane {url!r}: not a Redis URL (it starts with redis://, rediss:// or "
            "unix://).",
            example,
        )
    if parts.scheme != "unix" and not parts.hostname:
        raise UsageError(f"--backplane {url!r}: no host in it.", example)
    try:
        parts.port  # noqa: B018  (urlsplit checks the port only when asked)
    except ValueError:
        raise UsageError(f"--backplane {url!r}: the port is not a number.", example) from None
    db = parts.path.strip("/")  # (a unix:// URL's path is its socket; ?db=N picks the database)
    if parts.scheme != "unix" and db and not db.isdigit():
        raise UsageError(f"--backplane {url!r}: the database is a number (/0).", example)
    return Address(url)


def relay_name_problem(name: str) -> str | None:
    """Why `name` cannot name a relay (it is part of Redis keys and shown in /who), or None."""
    if RELAY_NAME.fullmatch(name):
        return None
    return "A relay name has 1 to 63 letters, digits, '.', '_', ':' or '-' (not first)."


def default_relay_name(hostname: str, port: int, node: int) -> str:
    """This PC's name with 6 hex digits of its node id (its MAC address: cloned classroom PCs
    share a name, never a MAC), and the port when it is not the default: 'h1-0a0b0c',
    'ana-pc-0a0b0c:7421'. The same on every start, so a restarted relay is the same relay."""
    host = re.sub(r"[^A-Za-z0-9._-]+", "-", hostname.split(".", 1)[0]).strip("-._") or "relay"
    name = f"{host[:40]}-{node & 0xFFFFFF:06x}"
    return name if port == DEFAULT_PORT else f"{name}:{port}"


# --- entries -------------------------------------------------------------------------------


def entry_fields(lseq: int, event: Event) -> tuple[str, str]:
    """The per-entry arguments of the append script: lseq and the event (run, relay and seq
    are the script's, once per batch)."""
    return str(lseq), encode_json(event).decode("utf-8").rstrip("\n")


@dataclass(frozen=True, slots=True)
class Entry:
    """One entry read back from the stream."""

    id: str  # the stream id, where a reader goes on from
    seq: int
    run: str
    lseq: int
    relay: str
    event: Event  # with `seq` set to the entry's


def decode_entry(entry_id: str, fields: Mapping[Any, Any]) -> Entry:
    """An entry as XREAD/XRANGE return it (bytes or str fields); EntryError if it is not
    one of ours."""
    try:
        text = {_text(k): _text(v) for k, v in fields.items()}
        seq, lseq = int(text["seq"]), int(text["lseq"])
        run, relay, raw = text["run"], text["relay"], text["event"]
    except (KeyError, ValueError, UnicodeDecodeError) as e:
        raise EntryError(f"entry {_text(entry_id)}: {e!r}") from None
    if seq < 1 or lseq < 1 or not run:
        raise EntryError(f"entry {_text(entry_id)}: seq {seq}, lseq {lseq}, run {run!r}")
    try:
        event = parse_event(raw.encode("utf-8"))
    except FrameError as e:
        raise EntryError(f"entry {_text(entry_id)}: {e.message}") from None
    return Entry(_text(entry_id), seq, run, lseq, relay, _with_seq(event, seq))


def _with_seq(event: Event, seq: int) -> Event:
    return replace(event, seq=seq)


def _text(value: Any) -> str:
    return value.decode("utf-8") if isinstance(value, bytes) else str(value)


class Dedupe:
    """Which entries are copies of ones already delivered: per run, the highest lseq seen.
    Bounded: the runs not seen for longest are forgotten first (a retry comes within
    seconds of its original)."""

    def __init__(self, limit: int = MAX_RUNS) -> None:
        self._highest: OrderedDict[str, int] = OrderedDict()
        self._limit = limit

    def fresh(self, run: str, lseq: int) -> bool:
        """True the first time (run, lseq) is seen; False for a copy (a retried append)."""
        highest = self._highest.get(run, 0)
        if lseq <= highest:
            return False
        self._highest[run] = lseq
        self._highest.move_to_end(run)
        if len(self._highest) > self._limit:
            self._highest.popitem(last=False)
        return True

    def seen(self, run: str, lseq: int) -> None:
        """An entry read while loading the history: its copies are not fresh either."""
        if lseq > self._highest.get(run, 0):
            self._highest[run] = lseq
            self._highest.move_to_end(run)


# --- names -----------------------------------------------------------------------------------


def names_value(name: str, relay: str) -> str:
    """The names hash's value for a name this relay holds."""
    return json.dumps({"name": name, "relay": relay}, ensure_ascii=False)


def read_names_value(value: Any) -> tuple[str, str] | None:
    """(name, relay) from a names hash value, or None if it is not one of ours."""
    try:
        obj = json.loads(_text(value))
        name, relay = obj["name"], obj["relay"]
    except (ValueError, KeyError, TypeError):
        return None
    if not isinstance(name, str) or not isinstance(relay, str):
        return None
    return name, relay


def remote_people(names: Mapping[Any, Any], alive: set[str], me: str) -> dict[str, tuple[str, str]]:
    """The names hash read whole, as name key -> (name, relay) for the people on the other
    relays that are alive (a dead relay's names are free: its heartbeat expired)."""
    people: dict[str, tuple[str, str]] = {}
    for value in names.values():
        held = read_names_value(value)
        if held is None:
            continue
        name, relay = held
        if relay != me and relay in alive:
            people[name_key(name)] = (name, relay)
    return people


def relay_info(run: str, host: str, port: int, started: float) -> str:
    """The value of a relay's heartbeat key."""
    return json.dumps({"run": run, "host": host, "port": port, "started": round(started, 3)})
