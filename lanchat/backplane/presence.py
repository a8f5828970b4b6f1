"""Who is where in a room carried by several relays, in Redis: the names each relay gives and
frees (the names hash, through scripts.NAMES), and each relay's heartbeat, by which the others
know it is alive and whose expiry frees a dead relay's names. The Redis commands only; the link
(link.py) calls these from its writer thread and hands the results to the hub.

A heartbeat is one transaction: it renews this relay's key (reading the value it replaces, so
that another process beating under the same name shows), and reads the names hash and the
stream's newest seq together, so the picture of the others is "as of" that seq
(room/remote.py keeps what later events changed).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from lanchat.backplane.entries import Keys, names_value, read_names_value, remote_people
from lanchat.protocol import name_key
from lanchat.room import Claim, RemotePerson


@dataclass(frozen=True)
class Beat:
    """What one heartbeat found."""

    people: dict[str, RemotePerson]  # the people on the other live relays, by name key
    relays: int  # live relays, this one included
    head: int  # the stream's newest seq when the names were read
    previous: str | None  # the run our heartbeat key held before (another process: a clash)


def record_names(
    script: Any, keys: Keys, relay: str, claims: Sequence[Claim]
) -> list[tuple[Claim, str]]:
    """Give and free names, in order, in one atomic step; the claims that lost because another
    live relay holds the name, each with that relay's name."""
    args: list[Any] = [relay, keys.alive_prefix]
    for claim in claims:
        op = "+" if claim.member else "-"
        args += [op, name_key(claim.name), names_value(claim.name, relay)]
    taken = script(keys=[keys.names], args=args) or []
    holders: dict[str, str] = {}
    for i in range(0, len(taken), 2):
        held = read_names_value(taken[i + 1])
        if held is not None:
            holders[_text(taken[i])] = held[1]
    return [
        (claim, holders[name_key(claim.name)])
        for claim in claims
        if claim.member and name_key(claim.name) in holders
    ]


def beat(client: Any, keys: Keys, relay: str, run: str, info: str, alive_ms: int) -> Beat:
    """Renew our heartbeat and read the others (see the module's docstring)."""
    pipe = client.pipeline(transaction=True)
    pipe.set(keys.alive(relay), run, px=alive_ms, get=True)
    pipe.hset(keys.relays, relay, info)
    pipe.hgetall(keys.names)
    pipe.hkeys(keys.relays)
    pipe.hget(keys.meta, "seq")
    previous, _, names, relays, head = pipe.execute()
    relay_names = [_text(r) for r in relays or ()]
    values = client.mget([keys.alive(r) for r in relay_names]) if relay_names else []
    alive = {r for r, v in zip(relay_names, values, strict=True) if v is not None}
    people = remote_people(names or {}, alive, relay)
    return Beat(
        people={key: RemotePerson(name, where) for key, (name, where) in people.items()},
        relays=len(alive),
        head=int(head or 0),
        previous=None if previous is None else _text(previous),
    )


def _text(value: Any) -> str:
    return value.decode("utf-8") if isinstance(value, bytes) else str(value)
