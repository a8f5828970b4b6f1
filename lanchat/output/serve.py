"""What `lanchat serve` shows: the banner with the commands to type on other PCs, then a line per
room event; or, with --json, one JSON object per line. Both are ServeLogs (lanchat.serving).

A busy room makes thousands of events a second, so the per-event lines are not rendered by rich
one by one (~120 µs each, the most expensive part of a busy relay: docs/performance.md): the
frequent ones are joined from their pieces with each style's escape codes, which rich renders
once per style for this console (so NO_COLOR and non-terminals behave as everywhere else), and a
batch is written at once. The bytes are rich's own (tests/test_serve_log.py); rare events, and
the banner, go through rich as before.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from rich.console import Console
from rich.text import Text

from lanchat.admission import Refusal
from lanchat.output import address_rules_text, chat_text, name_style, print_json, stdout_console
from lanchat.protocol import (
    Chat,
    Event,
    Joined,
    Left,
    Moderation,
    Notice,
    Renamed,
    clock,
    render_line,
)
from lanchat.serving import Listening, Stopped, TlsInfo
from lanchat.web import page_url

if TYPE_CHECKING:
    from lanchat.discovery import Advertisement


def serve_banner(console: Console, info: Listening) -> None:
    """What the person starting the server needs to tell the others."""
    room, port, version, addresses = info.room, info.port, info.version, info.addresses
    host = info.host or info.bound_host
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
        # IPv4 first (what people are used to typing), then IPv6: a network may have only that.
        commands = [(a.address, a.interface) for a in usable if a.family == 4][:3]
        commands += [(a.address, a.interface) for a in usable if a.family == 6][:2]
    tls = info.tls is not None
    if commands:
        console.print(
            "Others on this network can join with:" if not loopback_only else "Join with:"
        )
        for address, interface in commands:
            shown = f"[{address}]" if ":" in address else address
            console.print(
                Text.assemble(
                    "    ",
                    (f"lanchat join {'--tls ' if tls else ''}{shown}:{port}", "bold green"),
                    (f"   (via {interface})", "dim"),
                )
            )
            ncat, others = (
                (f"ncat --ssl {address} {port}", "   (openssl s_client works too)")
                if tls
                else (f"ncat {address} {port}", "   (or nc / telnet)")
            )
            console.print(Text.assemble("    ", (ncat, "bold green"), (others, "dim")))
            if info.web:
                console.print(
                    Text.assemble(
                        "    ",
                        (page_url(address, port, tls=tls), "bold green"),
                        ("   (in a browser: phones, tablets, school PCs)", "dim"),
                    )
                )
        if info.web and info.qr:
            url = page_url(commands[0][0], port, tls=tls)
            console.print(Text(f"Or point a phone's camera at this code ({url}):", style="dim"))
            console.print(qr_text(url))
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
    if info.tls is not None:
        for line in tls_text(info.tls):
            console.print(line)
    console.print(advertisement_text(info.advertisement))
    if info.password:
        ways = ["lanchat join asks for it"]
        if info.tls is not None:
            ways.append("ncat --ssl: /login PASSWORD; browsers: the https page asks")
        if info.tls is None or info.tls.allow_plain:  # plain clients come in
            ways.append(
                "on plain TCP ncat's /login and the page too (--allow-plain-login)"
                if info.plain_login
                else "ncat and browsers cannot log in on plain TCP"
            )
        console.print(Text(f"Password: required ({'; '.join(ways)}).", style="bold"))
    if info.operator_token is not None:
        # every interface ("::", "0.0.0.0"): this PC's own loopback is the one to type
        wildcard = host in ("", "::", "0.0.0.0", "*")
        local = "127.0.0.1" if wildcard else f"[{host}]" if ":" in host else host
        console.print(
            Text(
                f"Operator (may moderate): `lanchat join --operator {local}:{port}` on this PC "
                f"(it reads the token in {info.operator_token}).",
                style="dim",
            )
        )
    if info.backplane is not None:
        link = info.backplane
        peers = max(0, link.relays - 1)
        console.print(
            Text(
                f"One room with the other relays on the backplane {link.url} "
                f"(this relay: {link.relay}; "
                f"{peers} other{'s' if peers != 1 else ''} up). History is the room's stream "
                "there: a restart resumes where everyone is.",
                style="dim",
            )
        )
    elif info.store is None:
        console.print(
            Text(
                "History is kept in memory only: a restart forgets it (--store PATH keeps it).",
                style="dim",
            )
        )
    else:
        console.print(
            Text(
                f"History is kept in {info.store} ({info.restored} messages restored).", style="dim"
            )
        )
    if info.allow or info.deny:
        console.print(Text(f"Addresses: {address_rules_text(info.allow, info.deny)}.", style="dim"))
    for note in info.notes:
        console.print(Text(note, style="yellow"))
    limit = f"up to {info.max_clients} people" if info.max_clients else "no limit on people"
    console.print(Text(f"Ready ({limit}). Press Ctrl-C to stop.", style="dim"))


def tls_text(tls: TlsInfo) -> list[Text]:
    """What the banner says about TLS: the key's fingerprint, for people to compare."""
    plain = (
        "plain clients are let in too (--allow-plain)"
        if tls.allow_plain
        else "plain clients are told how to connect with TLS"
    )
    lines = [
        Text.assemble(("TLS: on", "bold"), f" ({plain}). The relay's key fingerprint:"),
        Text.assemble("    ", (tls.fingerprint, "bold")),
        Text(
            "  lanchat clients pin it on first use and refuse a server whose key changed; "
            "anyone can check it with `lanchat join --fingerprint ...`. Browsers warn about "
            'the certificate (nobody vouches for it): its "Public Key" SHA-256 there is '
            f"{tls.spki_sha256}",
            style="dim",
        ),
    ]
    if tls.new_key:
        lines.append(
            Text(
                f"  A new key was made: {tls.key_path}. Kept there, it keeps this fingerprint "
                "across restarts.",
                style="dim",
            )
        )
    return lines


def qr_text(data: str) -> Text:
    """A QR code drawn with half blocks (two rows of modules per line), dark on light."""
    import segno

    rows = [
        list(row)
        for row in segno.make(data, error="m", boost_error=False).matrix_iter(scale=1, border=2)
    ]
    if len(rows) % 2:
        rows.append([0] * len(rows[0]))
    chars = {(0, 0): " ", (1, 0): "▀", (0, 1): "▄", (1, 1): "█"}
    lines = [
        "".join(chars[bool(top), bool(bottom)] for top, bottom in zip(upper, lower, strict=True))
        for upper, lower in zip(rows[::2], rows[1::2], strict=True)
    ]
    # Drawn in black on white whatever the terminal's colours: cameras read dark-on-light.
    return Text("\n".join(lines), style="black on white", no_wrap=True)


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


def serve_event_dict(event: Event, address: str | None) -> dict[str, Any] | None:
    """A room event as a `serve --json` line; None for events the log leaves out."""
    d = event.to_dict()
    kind = d.pop("type")
    if kind in ("message", "action"):
        d["action"] = kind == "action"
        kind = "message"
    elif kind == "notice":
        kind = "backplane"  # the only notices so far: the backplane's state
    elif kind not in ("join", "leave", "nick", "moderation"):
        return None
    if address and kind in ("join", "moderation"):  # who joined; which operator acted
        d["address"] = address
    return {"event": kind, **d}


def refusal_text(refusal: Refusal) -> Text:
    """One line for connections refused from one address (counted, not one line each)."""
    connections = "connection" if refusal.count == 1 else "connections"
    return Text(
        f"! Refused {refusal.count} {connections} from {refusal.address}: {refusal.why}.",
        style="yellow",
    )


def serve_event_text(event: Event, address: str | None) -> Text | None:
    """A room event as a line of the server's console log."""
    if isinstance(event, Chat):
        return chat_text(event)
    if isinstance(event, Joined):
        where = f" from {address}" if address else ""
        return Text(f"* {event.name} joined{where} ({event.kind}; {event.count} here)", style="dim")
    if isinstance(event, Left | Renamed):
        return Text(render_line(event), style="dim")
    if isinstance(event, Moderation):  # an operator's action stands out from the chat
        where = f" (from {address})" if address and event.by else ""
        return Text(f"{render_line(event)}{where}", style="bold magenta")
    if isinstance(event, Notice):  # the backplane went away, came back, lost its history
        return Text(f"! {event.message}", style="yellow")
    return None


Pieces = list[tuple[str, str]]  # (text, style): a line as rich would style it


def serve_event_pieces(event: Event, address: str | None) -> Pieces | None:
    """serve_event_text's line for the frequent events, as styled pieces; None for the others."""
    if isinstance(event, Chat):
        stamp = (f"[{clock(event.time)}] ", "dim")
        name = (event.sender, name_style(event.sender))
        body = (event.text, "dim" if event.history else "")
        if event.action:
            return [stamp, ("* ", ""), name, (" ", ""), body]
        return [stamp, ("<", ""), name, ("> ", ""), body]
    if isinstance(event, Joined):
        where = f" from {address}" if address else ""
        return [(f"* {event.name} joined{where} ({event.kind}; {event.count} here)", "dim")]
    if isinstance(event, Left | Renamed):
        return [(render_line(event), "dim")]
    return None


_MARK = "\ue000"  # a private-use character: what a style is wrapped around, to find its codes


class StyleCodes:
    """Each style's escape codes (before, after) as `console` writes them, asked of rich once
    per style: none where the console is not a terminal, no colours under NO_COLOR."""

    def __init__(self, console: Console) -> None:
        self._console = console
        self._codes: dict[str, tuple[str, str]] = {"": ("", "")}
        # A legacy Windows console is styled through its API, not escape codes: plain text.
        self._plain = console.legacy_windows

    def line(self, pieces: Pieces) -> str:
        """The pieces as one line of output, newline included."""
        parts: list[str] = []
        codes = self._codes
        for text, style in pieces:
            found = codes.get(style)
            if found is None:
                found = self._ask(style)
            before, after = found
            parts += (before, text, after)
        parts.append("\n")
        return "".join(parts)

    def _ask(self, style: str) -> tuple[str, str]:
        codes = ("", "")
        if not self._plain:
            with self._console.capture() as captured:
                self._console.print(Text(_MARK, style=style), end="")
            before, _, after = captured.get().partition(_MARK)
            codes = (before, after)
        self._codes[style] = codes
        return codes


class TextServeLog:
    """The console log of a server, for people."""

    def __init__(self, console: Console | None = None) -> None:
        self.console = console or stdout_console()
        self._styles = StyleCodes(self.console)

    def listening(self, info: Listening) -> None:
        serve_banner(self.console, info)

    def events(self, batch: Sequence[tuple[Event, str | None]]) -> None:
        lines = []
        for event, address in batch:
            pieces = serve_event_pieces(event, address)
            if pieces is not None:
                lines.append(self._styles.line(pieces))
                continue
            text = serve_event_text(event, address)
            if text is not None:  # a rare event: through rich, in its place
                self._write(lines)
                lines = []
                self.console.print(text)
        self._write(lines)

    def _write(self, lines: list[str]) -> None:
        if lines:
            out = self.console.file
            out.write("".join(lines))
            out.flush()

    def skipped(self, count: int) -> None:
        self.console.print(Text(f"… {_lines(count)} skipped: {_BEHIND}.", style="yellow"))

    def advertisement(self, state: Advertisement) -> None:
        self.console.print(advertisement_text(state))

    def refused(self, refusal: Refusal) -> None:
        self.console.print(refusal_text(refusal))

    def stopped(self, summary: Stopped) -> None:
        skipped = summary.log_lines_dropped
        more = f" {_lines(skipped)} in all were skipped: {_BEHIND}." if skipped else ""
        self.console.print(
            f"Stopped. {summary.clients} people were told the server is shutting down.{more}"
        )


_BEHIND = "the log could not keep up"


def _lines(count: int) -> str:
    return f"{count} log line{'s' if count != 1 else ''}"


class JsonServeLog:
    """One JSON object per line on stdout: `listening`, the room's events, `mdns`, `shutdown`."""

    def listening(self, info: Listening) -> None:
        print_json(
            {
                "event": "listening",
                "host": info.bound_host,
                "port": info.port,
                "addresses": [a.address for a in info.addresses if a.usable],
                "room": info.room,
                "pid": info.pid,
                "version": info.version,
                "max_clients": info.max_clients,
                "notes": list(info.notes),
                "password": info.password,  # joining needs a password
                "operator_token": info.operator_token,  # the token's file; null: not written
                "store": info.store,  # null: history in memory only (or in the backplane)
                "allow": list(info.allow),
                "deny": list(info.deny),
                "backplane": info.backplane.to_dict() if info.backplane is not None else None,
                "restored": info.restored,
                "mdns": info.advertisement.to_dict(),
                "web": [
                    page_url(a.address, info.port, tls=info.tls is not None)
                    for a in info.addresses
                    if a.usable
                ]
                if info.web
                else None,  # null: --no-web
                "tls": info.tls.to_dict() if info.tls is not None else None,  # null: plain
            }
        )

    def events(self, batch: Sequence[tuple[Event, str | None]]) -> None:
        lines = [
            json.dumps(d, ensure_ascii=False) + "\n"
            for event, address in batch
            if (d := serve_event_dict(event, address)) is not None
        ]
        if lines:  # print_json's format, one write for the batch
            sys.stdout.write("".join(lines))
            sys.stdout.flush()

    def skipped(self, count: int) -> None:
        print_json({"event": "skipped", "lines": count})

    def advertisement(self, state: Advertisement) -> None:
        print_json({"event": "mdns", **state.to_dict()})

    def refused(self, refusal: Refusal) -> None:
        print_json({"event": "refused", **refusal.to_dict()})

    def stopped(self, summary: Stopped) -> None:
        print_json(
            {
                "event": "shutdown",
                "clients": summary.clients,
                "messages": summary.messages,
                "log_lines_dropped": summary.log_lines_dropped,
            }
        )
