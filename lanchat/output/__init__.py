"""Turning results into what people and scripts read: rich text for terminals, JSON lines for
`--json`. With lanchat.cli, the only package that uses rich; colour goes through rich alone, so
NO_COLOR and non-terminals just work. This module holds what every command shares (consoles,
errors, JSON, chat lines); serve.py, status.py, discovery.py and doctor.py render their own."""

from __future__ import annotations

import json
import os
import sys
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, TextIO

from rich.console import Console
from rich.text import Text

from lanchat.errors import LanchatError
from lanchat.protocol import (
    Chat,
    Gap,
    Goodbye,
    Joined,
    Left,
    Moderation,
    Problem,
    Renamed,
    ServerFrame,
    Summary,
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


def stdout_console(
    file: TextIO | None = None, *, force_terminal: bool | None = None, wide: bool = False
) -> Console:
    """`wide`: tables keep all their columns when the output is a file or a pipe."""
    out = file or sys.stdout
    width = 160 if wide and not (force_terminal or out.isatty()) else None
    return Console(
        file=out, highlight=False, soft_wrap=True, force_terminal=force_terminal, width=width
    )


def notice(text: str, style: str = "") -> Text:
    """A line of our own (not from the chat), never parsed as markup."""
    return Text(text, style=style)


def stderr_console() -> Console:
    return Console(file=sys.stderr, highlight=False, soft_wrap=True)


@contextmanager
def connecting(console: Console, where: str, seconds: float) -> Iterator[None]:
    """A spinner on a terminal while a connection is made (a DROP rule is otherwise seconds of
    silence); nothing elsewhere, so scripts and pipes read only what they asked for."""
    if not console.is_terminal:
        yield
        return
    with console.status(f"Connecting to {where} (up to {seconds:g} s)..."):
        yield


def quiet_output(out: TextIO) -> None:
    """After a broken pipe: point `out` at the null device, so that the rest of the session
    (and the flush at exit) writes nowhere instead of failing again."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, out.fileno())
        os.close(devnull)
    except (OSError, ValueError):  # no file descriptor (a test's StringIO)
        pass


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


def address_rules_text(allow: tuple[str, ...], deny: tuple[str, ...]) -> str:
    """Who may connect (`serve --allow`, `--deny`), in words: the banner and `status` say it."""
    parts = []
    if allow:
        parts.append(f"only {', '.join(allow)} (and this PC) may connect")
    if deny:
        parts.append(f"{', '.join(deny)} may not")
    return "; ".join(parts)


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
    if isinstance(frame, Gap):
        return Text(f"! {frame.message}", style="bold yellow")
    if isinstance(frame, Goodbye) and frame.reason not in ("quit", "shutdown"):
        return Text(f"! {frame.message}", style="bold red")
    if isinstance(frame, Moderation):  # an operator's action: everyone should notice it
        return Text(render_line(frame), style="bold magenta")
    if isinstance(frame, Joined | Left | Summary | Renamed | WhoList | Welcome | Goodbye):
        return Text(render_line(frame), style="dim italic")
    return Text(render_line(frame))
