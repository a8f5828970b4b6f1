"""What `lanchat serve` shows: the banner with the commands to type on other PCs, then a line per
room event; or, with --json, one JSON object per line. Both are ServeLogs (lanchat.serving)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from rich.console import Console
from rich.text import Text

from lanchat.admission import Refusal
from lanchat.output import address_rules_text, chat_text, print_json, stdout_console
from lanchat.protocol import Chat, Event, Joined, Left, Moderation, Renamed, render_line
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
        local = f"[{host}]" if ":" in host else host if info.host else "127.0.0.1"
        console.print(
            Text(
                f"Operator (may moderate): `lanchat join --operator {local}:{port}` on this PC "
                f"(it reads the token in {info.operator_token}).",
                style="dim",
            )
        )
    if info.store is None:
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
    return None


class TextServeLog:
    """The console log of a server, for people."""

    def __init__(self, console: Console | None = None) -> None:
        self.console = console or stdout_console()

    def listening(self, info: Listening) -> None:
        serve_banner(self.console, info)

    def event(self, event: Event, address: str | None) -> None:
        text = serve_event_text(event, address)
        if text is not None:
            self.console.print(text)

    def advertisement(self, state: Advertisement) -> None:
        self.console.print(advertisement_text(state))

    def refused(self, refusal: Refusal) -> None:
        self.console.print(refusal_text(refusal))

    def stopped(self, summary: Stopped) -> None:
        self.console.print(
            f"Stopped. {summary.clients} people were told the server is shutting down."
        )


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
                "store": info.store,  # null: history in memory only
                "allow": list(info.allow),
                "deny": list(info.deny),
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

    def event(self, event: Event, address: str | None) -> None:
        line = serve_event_dict(event, address)
        if line is not None:
            print_json(line)

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
