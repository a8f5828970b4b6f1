"""Turning results into what people and scripts read: rich text for terminals, JSON lines for
`--json`. With cli.py, the only module that uses rich; colour goes through rich alone, so
NO_COLOR and non-terminals just work."""

from __future__ import annotations

import json
import sys
import zlib
from collections.abc import Sequence
from typing import Any, TextIO

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
