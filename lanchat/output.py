"""Turning results into what people and scripts read: rich text for terminals, JSON lines for
`--json`. With cli.py, the only module that uses rich; colour goes through rich alone, so
NO_COLOR and non-terminals just work."""

from __future__ import annotations

import json
import sys
import time
import zlib
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, TextIO

from rich.console import Console
from rich.text import Text

from lanchat.errors import LanchatError
from lanchat.netinfo import LocalAddress
from lanchat.protocol import (
    Chat,
    Event,
    Goodbye,
    Joined,
    Left,
    Problem,
    Renamed,
    ServerFrame,
    Welcome,
    WhoList,
    clock,
    render_line,
)

if TYPE_CHECKING:
    from lanchat.discovery import Advertisement, Change, Server

# Distinct, readable on dark and light backgrounds; a name keeps its colour everywhere.
NAME_COLOURS = (
    "cyan",
    "magenta",
    "green",
    "yellow",
    "blue",
    "bright_red",
    "bright_cyan",
    "bright_magenta",
    "bright_green",
    "dark_orange",
    "purple",
    "turquoise2",
)


def stdout_console(file: TextIO | None = None, *, force_terminal: bool | None = None) -> Console:
    return Console(
        file=file or sys.stdout, highlight=False, soft_wrap=True, force_terminal=force_terminal
    )


def notice(text: str, style: str = "") -> Text:
    """A line of our own (not from the chat), never parsed as markup."""
    return Text(text, style=style)


def stderr_console() -> Console:
    return Console(file=sys.stderr, highlight=False, soft_wrap=True)


def print_error(error: LanchatError) -> None:
    """`error: what happened` and `hint: what to do`, on stderr."""
    err = stderr_console()
    err.print(Text.assemble(("error: ", "bold red"), error.message))
    if error.hint:
        err.print(Text.assemble(("hint: ", "bold"), error.hint))


def print_json(obj: Any, file: TextIO | None = None) -> None:
    """One JSON document per line, flushed (stdout is often a pipe to a script)."""
    out = file or sys.stdout
    out.write(json.dumps(obj, ensure_ascii=False) + "\n")
    out.flush()


def name_style(name: str) -> str:
    return NAME_COLOURS[zlib.crc32(name.casefold().encode()) % len(NAME_COLOURS)]


def chat_text(frame: ServerFrame, me: str | None = None) -> Text:
    """A frame as one coloured line of the chat: names in their stable colours."""
    if isinstance(frame, Chat):
        stamp = (f"[{clock(frame.time)}] ", "dim")
        name = (frame.sender, name_style(frame.sender) + (" bold" if frame.sender == me else ""))
        body = Text(frame.text, style="dim" if frame.history else "")
        if frame.action:
            return Text.assemble(stamp, "* ", name, " ", body)
        return Text.assemble(stamp, "<", name, "> ", body)
    if isinstance(frame, Problem):
        return Text(f"! {frame.message}", style="bold red")
    if isinstance(frame, Goodbye) and frame.reason not in ("quit", "shutdown"):
        return Text(f"! {frame.message}", style="bold red")
    if isinstance(frame, Joined | Left | Renamed | WhoList | Welcome | Goodbye):
        return Text(render_line(frame), style="dim italic")
    return Text(render_line(frame))


def serve_banner(
    console: Console,
    *,
    room: str,
    host: str,
    port: int,
    addresses: Sequence[LocalAddress],
    version: str,
    max_clients: int,
    notes: Sequence[str],
    advertisement: Advertisement | None = None,
) -> None:
    """What the person starting the server needs to tell the others."""
    console.print(Text.assemble(("lanchat ", "bold"), version, f" - room {room!r} on port {port}"))
    loopback_only = host.startswith("127.") or host in {"::1", "localhost"}
    usable = [a for a in addresses if a.usable]
    if loopback_only:
        console.print(
            Text(
                f"Listening on {host} only: other PCs cannot connect. "
                "Leave out --host to listen on every network.",
                style="bold yellow",
            )
        )
        commands = [(host, "this PC")]
    else:
        commands = [(a.address, a.interface) for a in usable if a.family == 4]
        commands = commands or [(a.address, a.interface) for a in usable]
    if commands:
        console.print(
            "Others on this network can join with:" if not loopback_only else "Join with:"
        )
        for address, interface in commands[:3]:
            shown = f"[{address}]" if ":" in address else address
            console.print(
                Text.assemble(
                    "    ",
                    (f"lanchat join {shown}:{port}", "bold green"),
                    (f"   (via {interface})", "dim"),
                )
            )
            console.print(
                Text.assemble(
                    "    ", (f"ncat {address} {port}", "bold green"), ("   (or nc / telnet)", "dim")
                )
            )
    else:
        console.print(
            Text(
                "No network address found: other PCs cannot reach this one yet. "
                "Connect to a network (Wi-Fi or cable), then restart the server.",
                style="bold yellow",
            )
        )
    virtual = [
        a
        for a in addresses
        if not a.usable and "loopback" not in a.tags and "link-local" not in a.tags
    ]
    if virtual:
        listed = ", ".join(f"{a.address} ({', '.join(a.tags)})" for a in virtual[:4])
        console.print(Text(f"Not for the LAN: {listed}", style="dim"))
    if advertisement is not None:
        console.print(advertisement_text(advertisement))
    for note in notes:
        console.print(Text(note, style="yellow"))
    limit = f"up to {max_clients} people" if max_clients else "no limit on people"
    console.print(Text(f"Ready ({limit}). Press Ctrl-C to stop.", style="dim"))


def serve_event_dict(event: Event, address: str | None) -> dict[str, Any] | None:
    """A room event as a `serve --json` line; None for events the log leaves out."""
    d = event.to_dict()
    kind = d.pop("type")
    if kind in ("message", "action"):
        d["action"] = kind == "action"
        kind = "message"
    elif kind not in ("join", "leave", "nick"):
        return None
    if address and kind == "join":
        d["address"] = address
    return {"event": kind, **d}


def serve_event_text(event: Event, address: str | None) -> Text | None:
    """A room event as a line of the server's console log."""
    if isinstance(event, Chat):
        return chat_text(event)
    if isinstance(event, Joined):
        where = f" from {address}" if address else ""
        return Text(f"* {event.name} joined{where} ({event.kind}; {event.count} here)", style="dim")
    if isinstance(event, Left | Renamed):
        return Text(render_line(event), style="dim")
    return None


# --- discovery --------------------------------------------------------------------------------


def advertisement_text(ad: Advertisement) -> Text:
    """One line: under which name the server is announced on the LAN, or why it is not."""
    if ad.advertised:
        return Text.assemble(
            "Announced on the LAN as ",
            (repr(ad.name), "bold"),
            ": `lanchat join` without an address finds it.",
            style="dim",
        )
    if ad.state == "off":
        return Text(f"Not announced on the LAN ({ad.message}).", style="dim")
    return Text(f"Not announced on the LAN: {ad.message}.", style="yellow")


def servers_table(servers: Sequence[Server]) -> Any:
    """The servers found, one row each (a rich Table)."""
    from rich.table import Table

    table = Table(box=None, pad_edge=False, header_style="bold")
    for column in ("ROOM", "HOST", "ADDRESSES", "PORT", "PROTOCOL", "VERSION", "NAME"):
        table.add_column(column, overflow="fold")
    for s in servers:
        table.add_row(
            Text(s.room, style="bold"),
            s.host,
            "\n".join(s.addresses),
            str(s.port),
            str(s.protocol),
            s.version or "?",
            Text(s.name, style="dim"),
        )
    return table


def print_servers(console: Console, servers: Sequence[Server], seconds: float) -> None:
    """The result of `lanchat discover` for people."""
    many = "s" if len(servers) != 1 else ""
    console.print(Text(f"{len(servers)} lanchat server{many} answered ({seconds:.1f} s):"))
    console.print(servers_table(servers))
    first = servers[0]
    console.print(
        Text.assemble(
            "Join with: ",
            ("lanchat join", "bold green"),
            (f" --room {first.room}" if len(servers) > 1 else "", "bold green"),
            (f"   or: lanchat join {first.endpoint(first.addresses[0])}", "dim"),
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
    """What `discover --watch` shows: a live table on a terminal, else a line (or a JSON
    object) per change."""

    def __init__(self, console: Console, *, as_json: bool) -> None:
        self.console = console
        self.as_json = as_json
        self._live: Any = None

    def __enter__(self) -> WatchView:
        if not self.as_json and self.console.is_terminal:
            from rich.live import Live

            self._live = Live(self._table([]), console=self.console, auto_refresh=False)
            self._live.__enter__()
        elif not self.as_json:
            self.console.print(Text("Watching for lanchat servers; Ctrl-C stops.", style="dim"))
        return self

    def __exit__(self, *exc: object) -> None:
        if self._live is not None:
            self._live.__exit__(None, None, None)

    def show(self, change: Change | None, servers: Sequence[Server]) -> None:
        if self.as_json:
            if change is not None:
                print_json(change.to_dict())
        elif self._live is not None:
            self._live.update(self._table(servers), refresh=True)
        elif change is not None:
            self.console.print(change_text(change))

    def _table(self, servers: Sequence[Server]) -> Any:
        from rich.console import Group

        now = time.strftime("%H:%M:%S")
        head = Text(f"{len(servers)} lanchat server(s) on this network at {now}. Ctrl-C stops.")
        return Group(head, servers_table(servers)) if servers else head


MAX_PICK_TRIES = 5


def pick_server(
    servers: Sequence[Server], console: Console, stream: TextIO | None = None
) -> Server | None:
    """Ask which of several servers to join, by number; None at end of input or after
    MAX_PICK_TRIES answers that are not a number on the list (Ctrl-C leaves, as anywhere)."""
    source = stream if stream is not None else sys.stdin
    console.print(Text("Several lanchat servers answered:"))
    for i, s in enumerate(servers, 1):
        where = ", ".join(s.endpoint(a) for a in s.addresses[:2])
        console.print(Text.assemble(f"  {i}. ", (s.room, "bold"), f" on {s.host}   ({where})"))
    for _ in range(MAX_PICK_TRIES):
        console.print(Text(f"Join which one? [1-{len(servers)}]: ", style="bold"), end="")
        line = source.readline()
        if not line:
            return None
        answer = line.strip()
        if answer.isdigit() and 1 <= int(answer) <= len(servers):
            return servers[int(answer) - 1]
        console.print(Text(f"Type a number from 1 to {len(servers)}.", style="yellow"))
    return None
