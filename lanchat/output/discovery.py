"""Discovery for people: the table of servers `lanchat discover` found, the progress spinner,
the live `--watch` view (rich Live), and what `join` without an address shows: the numbered list
to pick from (the question itself is asked by the front end, lanchat/join.py) and which address
worked. Rendering only: nothing here reads input."""

from __future__ import annotations

import shlex
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from rich.console import Console
from rich.text import Text

from lanchat.discovery import Change, Reached, RoomRelays, Server
from lanchat.output import notice


def servers_table(servers: Sequence[Server]) -> Any:
    """The servers found, one row each (a rich Table)."""
    from rich.table import Table

    table = Table(box=None, pad_edge=False, header_style="bold")
    for column in ("ROOM", "HOST", "ADDRESSES", "PORT", "TLS", "PROTOCOL", "VERSION", "NAME"):
        table.add_column(column, overflow="fold")
    for s in servers:
        table.add_row(
            Text(s.room, style="bold"),
            s.host,
            "\n".join(s.addresses),
            str(s.port),
            "yes" if s.tls else "no",
            str(s.protocol),
            s.version or "?",
            Text(s.name, style="dim"),
        )
    return table


def rooms_table(rooms: Sequence[RoomRelays]) -> Any:
    """The servers found, one row each, the relays of one room (a backplane) together under
    it, the nearest first (a rich Table)."""
    from rich.table import Table

    table = Table(box=None, pad_edge=False, header_style="bold")
    for column in ("ROOM", "HOST", "ADDRESSES", "PORT", "PROTOCOL", "VERSION", "NAME"):
        table.add_column(column, overflow="fold")
    for room in rooms:
        for i, s in enumerate(room.relays):
            if i == 0:
                cell = Text(s.room, style="bold")
                if len(room.relays) > 1:
                    cell.append(f" ({len(room.relays)} relays, nearest first)", style="dim")
            else:
                cell = Text("  another relay of it", style="dim")
            table.add_row(
                cell,
                s.host,
                "\n".join(s.addresses),
                str(s.port),
                str(s.protocol),
                s.version or "?",
                Text(s.name, style="dim"),
            )
    return table


def print_servers(console: Console, rooms: Sequence[RoomRelays], seconds: float) -> None:
    """The result of `lanchat discover` for people: the rooms, each with its relays."""
    count = sum(len(room.relays) for room in rooms)
    many = "s" if count != 1 else ""
    several = f" in {len(rooms)} room{'s' if len(rooms) != 1 else ''}" if len(rooms) < count else ""
    console.print(Text(f"{count} lanchat server{many} answered{several} ({seconds:.1f} s):"))
    console.print(rooms_table(rooms))
    first = rooms[0].relays[0]
    names = {room.room.casefold() for room in rooms}
    servers = [s for room in rooms for s in room.relays]
    if len(rooms) == 1:
        how = "lanchat join"
    elif len(names) == len(rooms):
        how = f"lanchat join --room {shlex.quote(first.room)}"
    else:  # two servers of one room: only the address tells them apart
        how = f"lanchat join {first.endpoint(first.addresses[0])}"
    console.print(
        Text.assemble(
            "Join with: ",
            (how, "bold green"),
            (f"   (or by address: lanchat join {first.endpoint(first.addresses[0])})", "dim"),
        )
    )
    for server in servers:
        url = server.web_url(server.addresses[0])
        if url is not None:
            console.print(Text.assemble(f"In a browser ({server.room}): ", (url, "bold green")))
    for server in servers:
        if server.tls:
            console.print(
                Text.assemble(
                    f"TLS ({server.room}): key fingerprint as announced ",
                    (server.fingerprint or "(none)", "bold"),
                    (
                        " - an announcement proves nothing; compare it with the server's "
                        "own screen",
                        "dim",
                    ),
                )
            )


@contextmanager
def searching(console: Console, seconds: float) -> Iterator[Callable[[list[Server]], None]]:
    """A spinner on a terminal while looking for servers; yields a progress callback."""
    if not console.is_terminal:
        yield lambda servers: None
        return
    text = f"Looking for lanchat servers on this network (up to {seconds:g} s)..."
    with console.status(text) as status:

        def progress(servers: list[Server]) -> None:
            rooms = ", ".join(sorted({repr(s.room) for s in servers}))
            status.update(f"{text} found {len(servers)}: {rooms}")

        yield progress


def change_text(change: Change) -> Text:
    """A line of `discover --watch` when the output is not a terminal."""
    s = change.server
    mark, style = {"added": ("+", "green"), "updated": ("~", "yellow"), "removed": ("-", "red")}[
        change.kind
    ]
    return Text.assemble(
        (f"[{time.strftime('%H:%M:%S', time.localtime(change.time))}] ", "dim"),
        (f"{mark} {change.kind:<7} ", style),
        f"{s.name!r} room {s.room!r} at {', '.join(s.endpoint(a) for a in s.addresses)}",
    )


class WatchView:
    """What `discover --watch` shows people: a live table on a terminal, else a line per change.
    (With --json the command prints each Change.to_dict() itself.)"""

    def __init__(self, console: Console) -> None:
        self.console = console
        self._live: Any = None

    def __enter__(self) -> WatchView:
        if self.console.is_terminal:
            from rich.live import Live

            self._live = Live(self._table([]), console=self.console, auto_refresh=False)
            self._live.__enter__()
        else:
            self.console.print(Text("Watching for lanchat servers; Ctrl-C stops.", style="dim"))
        return self

    def __exit__(self, *exc: object) -> None:
        if self._live is not None:
            self._live.__exit__(None, None, None)

    def show(self, change: Change | None, servers: Sequence[Server]) -> None:
        if self._live is not None:
            self._live.update(self._table(servers), refresh=True)
        elif change is not None:
            self.console.print(change_text(change))

    def _table(self, servers: Sequence[Server]) -> Any:
        from rich.console import Group

        now = time.strftime("%H:%M:%S")
        head = Text(f"{len(servers)} lanchat server(s) on this network at {now}. Ctrl-C stops.")
        return Group(head, servers_table(servers)) if servers else head


def pick_list(servers: Sequence[Server]) -> Text:
    """The numbered servers `join` asks the user to choose from (join.py asks)."""
    lines = [Text("Several lanchat servers answered:")]
    for i, s in enumerate(servers, 1):
        where = ", ".join(s.endpoint(a) for a in s.addresses[:2])
        lines.append(Text.assemble(f"  {i}. ", (s.room, "bold"), f" on {s.host}   ({where})"))
    return Text("\n").join(lines)


def pick_question(count: int) -> Text:
    """The prompt for a number, printed without a line end."""
    return Text(f"Join which one? [1-{count}]: ", style="bold")


def pick_retry(count: int) -> Text:
    """What to say after an answer that is not a number on the list."""
    return Text(f"Type a number from 1 to {count}.", style="yellow")


def reach_report(reached: Reached[Any]) -> list[Text]:
    """The stderr lines of `join` without an address: addresses that failed, and the one used."""
    server = reached.server
    lines = [
        notice(f"* {server.endpoint(bad)} did not work: {error.message}", "dim")
        for bad, error in reached.failed
    ]
    lines.append(
        notice(
            f"* Found {server.name!r} (room {server.room!r}); connected via "
            f"{server.endpoint(reached.address)}.",
            "dim",
        )
    )
    return lines
