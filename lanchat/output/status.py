"""What `lanchat status` shows: the relay's sockets as tables, a person at a glance."""

from __future__ import annotations

import time
from typing import Any

from rich import box
from rich.console import Group
from rich.table import Table
from rich.text import Text

from lanchat.output import address_rules_text, name_style
from lanchat.protocol.status import BackplaneStatus, RelayModeration
from lanchat.status import StatusReport


def _ago(seconds: float) -> str:
    seconds = int(seconds)
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"


def _size(n: int | None) -> str:
    if n is None:
        return ""
    for unit in ("B", "kB", "MB", "GB"):
        if n < 1000 or unit == "GB":
            return f"{n}{unit}" if unit == "B" else f"{n:.1f}{unit}"
        n /= 1000  # type: ignore[assignment]
    return str(n)


def status_view(report: StatusReport, now: float) -> Group:
    """The netstat-style view: who is behind each socket of the relay, at a glance."""
    parts: list[Any] = []
    s = report.server
    if s is not None:
        limit = f" of {s.max_clients}" if s.max_clients else ""
        parts.append(
            Text.assemble(
                ("lanchat relay", "bold"),
                f" {s.lanchat} on port {s.port}, room {s.room!r}, pid {s.pid}, "
                f"up {_ago(s.uptime)} - ",
                (f"{s.clients}{limit} people", "bold"),
                f", {s.messages} messages relayed, {s.rate:.1f}/s now",
            )
        )
        if s.tls:
            plain = "plain clients too" if s.allow_plain else "TLS only"
            parts.append(Text(f"TLS: on ({plain}), key fingerprint {s.fingerprint}"))
        else:
            parts.append(Text("TLS: off", style="dim"))
    else:
        parts.append(Text(report.problem or "No lanchat server.", style="bold yellow"))
    if report.moderation is not None:
        parts += moderation_lines(report.moderation, now)
    if report.backplane is not None:
        parts.append(backplane_text(report.backplane, now))
    if report.listening:
        listen = Table(title="Listening", title_justify="left", box=box.SIMPLE_HEAD)
        for column in ("Proto", "Local address", "State", "PID", "Program"):
            listen.add_column(column)
        for row in report.listening:
            listen.add_row(row.proto, row.local, row.state, str(row.pid or "?"), row.program or "?")
        parts.append(listen)
    table = Table(title="Connections", title_justify="left", box=box.SIMPLE_HEAD, pad_edge=False)
    longest_name = max((len(r.name or "") for r in report.connections), default=4)
    # Remote, state and name are never cut; the counters wrap when the terminal is narrow.
    table.add_column("Remote", no_wrap=True, min_width=15)
    table.add_column("State", no_wrap=True, min_width=11)
    table.add_column("Name", no_wrap=True, min_width=max(4, longest_name))
    table.add_column("Kind", overflow="fold")
    for column in ("Since", "In", "Out", "Queue"):
        table.add_column(column, justify="right")
    with_notes = any(row.note for row in report.connections)
    if with_notes:
        table.add_column("Note", style="dim italic", overflow="fold")
    for row in report.connections:
        name = Text(row.name, style=name_style(row.name)) if row.name else Text("-", style="dim")
        state_style = "green" if row.state == "ESTABLISHED" else "yellow"
        tracked = row.lines_in is not None
        table.add_row(
            row.remote or "",
            Text(row.state, style=state_style),
            name,
            _kind(row.kind, row.client, row.tls),
            _ago(now - row.since) if row.since else "",
            f"{row.lines_in} ({_size(row.bytes_in)})" if tracked else "",
            f"{row.frames_out} ({_size(row.bytes_out)})" if tracked else "",
            "" if row.queue is None else str(row.queue),
            *([row.note or ""] if with_notes else []),
        )
    table.caption = (
        "In: lines received; Out: frames sent; Queue: frames waiting to be sent; "
        "+TLS: connected over TLS. "
        f"Local end of every connection: port {report.port} "
        f"({', '.join(sorted({r.proto for r in report.connections})) or 'tcp'}); "
        "`--json` has every field."
    )
    table.caption_justify = "left"
    if not report.connections:
        table.add_row("", "", Text("no connections", style="dim"))
    parts.append(table)
    for note in report.notes:
        parts.append(Text(f"note: {note}", style="yellow"))
    return Group(*parts)


def moderation_lines(m: RelayModeration, now: float) -> list[Text]:
    """The topic, who moderates, who is muted or banned, who may connect: a line each, only
    those that say something."""
    lines: list[Text] = []
    if m.topic:
        lines.append(
            Text.assemble(("Topic: ", "bold"), m.topic, (f" (set by {m.topic_by})", "dim"))
        )
    if m.operators:
        lines.append(Text.assemble(("Operators: ", "bold"), ", ".join(m.operators)))
    if m.muted:
        muted = [
            f"{x.name} until {time.strftime('%H:%M', time.localtime(x.until))} "
            f"({_ago(max(0.0, x.until - now))} left, by {x.by})"
            for x in m.muted
        ]
        lines.append(Text.assemble(("Muted: ", "bold"), "; ".join(muted)))
    if m.bans:
        bans = [
            f"{b.address} ({b.name}, by {b.by}{': ' + b.reason if b.reason else ''})"
            for b in m.bans
        ]
        lines.append(Text.assemble(("Banned until the relay stops: ", "bold"), "; ".join(bans)))
    if m.allow or m.deny:
        lines.append(Text.assemble(("Addresses: ", "bold"), address_rules_text(m.allow, m.deny)))
    return lines


def backplane_text(b: BackplaneStatus, now: float) -> Text:
    """One line: the link to the room's other relays, its state and how far behind it is."""
    style = {"connected": "green", "lagging": "yellow"}.get(b.state, "bold red")
    others = max(0, b.relays - 1)
    text = Text.assemble(
        ("backplane ", "bold"),
        (b.state, style),
        f" for {_ago(now - b.since)}: {b.url}, stream {b.stream}, relay {b.relay!r} "
        f"({others} other{'s' if others != 1 else ''} up), seq {b.seq}",
    )
    if b.behind or b.waiting:
        text.append(f", {b.behind} to read, {b.waiting} of ours waiting ({b.lag:.1f} s)")
    if b.error:
        text.append(f" - {b.error}", style="red")
    return text


def _kind(kind: str | None, client: str | None, tls: bool | None = None) -> str:
    """The kind of client, "+TLS" when it connected over TLS; a browser with its name
    ("web+TLS: Firefox 128 on Android")."""
    shown = f"{kind}+TLS" if kind and tls else kind or ""
    if kind == "web" and client:
        return f"{shown}: {client}"
    return shown
