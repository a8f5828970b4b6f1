"""`lanchat serve`: the relay on this PC."""

from __future__ import annotations

import re
import sys
from typing import TYPE_CHECKING, Annotated, Any

import typer

from lanchat.cli.app import JsonOption, PortOption
from lanchat.errors import UsageError
from lanchat.protocol import (
    DEFAULT_HISTORY,
    DEFAULT_KEEPALIVE_SECONDS,
    DEFAULT_MAX_CLIENTS,
    DEFAULT_MAX_PER_ADDRESS,
    DEFAULT_MAX_RATE,
    DEFAULT_PORT,
    DEFAULT_ROOM,
)

if TYPE_CHECKING:
    from lanchat.auth.secrets import Secrets

ORIGIN = re.compile(r"https?://[^/\s?#]+")  # what a browser sends as Origin: no path

EPILOG = (  # the examples under --help
    "Examples:\n\n"
    f"  lanchat serve                      # port {DEFAULT_PORT}, every network\n\n"
    "  lanchat serve --room physics --max-clients 40\n\n"
    "  lanchat serve --port 0 --json      # a free port; events as JSON lines\n\n"
    "  lanchat serve --interface wlan0    # announce on the Wi-Fi only\n\n"
    "  lanchat serve --store chat.db      # history survives a restart\n\n"
    "  lanchat serve --no-web             # no chat page for browsers on the port\n\n"
    "  lanchat serve --allow 192.168.1.0/24   # only this network (and this PC) may join\n\n"
    "  lanchat serve --ask-password       # joining needs a password, typed now\n\n"
    "  lanchat serve --tls                # encrypted: clients pin the key shown\n\n"
    "  lanchat serve --backplane redis://10.0.0.5/0   # several relays, one room\n\n"
    "Environment: LANCHAT_PORT, LANCHAT_ROOM, LANCHAT_TLS, LANCHAT_PASSWORD, "
    "LANCHAT_OPERATOR_PASSWORD, LANCHAT_BACKPLANE, LANCHAT_RELAY_NAME."
)


def serve(
    host: Annotated[
        str,
        typer.Option("--host", help="Address to listen on (default: every network, IPv4+IPv6)."),
    ] = "",
    port: PortOption = DEFAULT_PORT,
    room: Annotated[
        str, typer.Option("--room", envvar="LANCHAT_ROOM", help="Room name.")
    ] = DEFAULT_ROOM,
    history: Annotated[
        int, typer.Option("--history", min=0, max=10000, help="Messages replayed to newcomers.")
    ] = DEFAULT_HISTORY,
    max_clients: Annotated[
        int,
        typer.Option(
            "--max-clients", min=0, help="Most people at once (0: as many as the OS allows)."
        ),
    ] = DEFAULT_MAX_CLIENTS,
    json_out: JsonOption = False,
    quiet: Annotated[
        bool, typer.Option("--quiet", "-q", help="Log only start and stop, not every message.")
    ] = False,
    keepalive: Annotated[
        float,
        typer.Option(
            "--keepalive",
            min=3,
            max=7200,
            help="Seconds after which a PC that vanished without closing is dropped.",
        ),
    ] = DEFAULT_KEEPALIVE_SECONDS,
    max_rate: Annotated[
        float,
        typer.Option(
            "--max-rate",
            min=0,
            help="Lines per second one person may send; beyond it (after a burst of twice "
            "that) the relay reads less from them, so a flood slows itself (0: no limit).",
        ),
    ] = DEFAULT_MAX_RATE,
    max_per_address: Annotated[
        int,
        typer.Option(
            "--max-per-address",
            min=0,
            help="Connections one address may have open at once; more are refused with a "
            "line saying why (0: no limit; this PC's own connections are never limited).",
        ),
    ] = DEFAULT_MAX_PER_ADDRESS,
    allow: Annotated[
        list[str] | None,
        typer.Option(
            "--allow",
            metavar="CIDR",
            help="Let in only addresses in this network, e.g. 192.168.1.0/24 or fd00::/8; a "
            "bare address is just that address (repeatable; this PC is always let in over "
            "loopback, unless a rule names a loopback address).",
        ),
    ] = None,
    deny: Annotated[
        list[str] | None,
        typer.Option(
            "--deny",
            metavar="CIDR",
            help="Refuse addresses in this network, with a line saying so (repeatable; wins "
            "over --allow).",
        ),
    ] = None,
    no_mdns: Annotated[
        bool,
        typer.Option(
            "--no-mdns",
            envvar="LANCHAT_NO_MDNS",
            help="Do not announce the server on the LAN (mDNS).",
        ),
    ] = False,
    interfaces: Annotated[
        list[str] | None,
        typer.Option(
            "--interface",
            help="Announce only on this address or interface (repeatable; default: every LAN "
            "address, no VPN or container adapters).",
        ),
    ] = None,
    store: Annotated[
        str | None,
        typer.Option(
            "--store",
            metavar="PATH",
            help="Keep the room's history in this SQLite file, so that it survives a restart "
            "(default: in memory only).",
        ),
    ] = None,
    store_keep: Annotated[
        int,
        typer.Option("--store-keep", min=0, help="Room events kept in --store (0: no limit)."),
    ] = 100_000,
    store_days: Annotated[
        float,
        typer.Option("--store-days", min=0, help="Days events stay in --store (0: no limit)."),
    ] = 0,
    no_web: Annotated[
        bool,
        typer.Option(
            "--no-web",
            help="Serve no chat page: browsers get an HTTP error instead of the page at "
            "http://ADDRESS:PORT/ and its WebSocket.",
        ),
    ] = False,
    web_origins: Annotated[
        list[str] | None,
        typer.Option(
            "--web-origin",
            metavar="ORIGIN",
            help="Also let pages from this origin use the chat's WebSocket, e.g. "
            "https://intranet.school.example (repeatable; default: only the relay's own page).",
        ),
    ] = None,
    no_qr: Annotated[
        bool,
        typer.Option("--no-qr", help="Do not draw the QR code of the page's address."),
    ] = False,
    backplane: Annotated[
        str | None,
        typer.Option(
            "--backplane",
            metavar="URL",
            envvar="LANCHAT_BACKPLANE",
            help="Carry the room together with other relays through this Redis "
            "(redis://HOST:PORT/DB): everyone on every relay sees one conversation in one "
            "order. The history is then the room's stream there (not --store).",
        ),
    ] = None,
    relay_name: Annotated[
        str | None,
        typer.Option(
            "--relay-name",
            metavar="NAME",
            envvar="LANCHAT_RELAY_NAME",
            help="This relay's name among the room's relays, shown in /who; one name per "
            "relay, the same across its restarts (default: this PC's name and 6 hex digits of "
            "its MAC address, and the port if not 7420).",
        ),
    ] = None,
    password_file: Annotated[
        str | None,
        typer.Option(
            "--password-file",
            metavar="FILE",
            help="Joining needs the password on this file's first line; the relay keeps only "
            "a verifier of it (SCRAM). LANCHAT_PASSWORD gives one too.",
        ),
    ] = None,
    ask_password: Annotated[
        bool,
        typer.Option(
            "--ask-password", help="Type the room's password now (not shown), instead of a file."
        ),
    ] = False,
    operator_password_file: Annotated[
        str | None,
        typer.Option(
            "--operator-password-file",
            metavar="FILE",
            help="Operators (who may moderate) log in with the password on this file's first "
            "line (LANCHAT_OPERATOR_PASSWORD gives one too). The person at this PC is always "
            "one: `lanchat join --operator` reads this run's token file.",
        ),
    ] = None,
    allow_plain_login: Annotated[
        bool,
        typer.Option(
            "--allow-plain-login",
            help="Also take passwords typed in ncat (/login) or a browser over unencrypted "
            "connections, where anyone on the network can read them (`lanchat join` never "
            "sends the password itself).",
        ),
    ] = False,
    tls: Annotated[
        bool,
        typer.Option(
            "--tls",
            envvar="LANCHAT_TLS",
            help="Encrypt connections with TLS, on the same port. The relay's key is made on "
            "first use and kept; clients pin its fingerprint (shown at start) and refuse a "
            "server whose key changed. Plain clients are told how to connect instead.",
        ),
    ] = False,
    allow_plain: Annotated[
        bool,
        typer.Option(
            "--allow-plain",
            help="With --tls: let plain (unencrypted) clients in too, on the same port.",
        ),
    ] = False,
    all_cores: Annotated[
        bool,
        typer.Option(
            "--all-cores",
            help="Never hold the relay's threads to one CPU core (default on Linux: a busy "
            "room's threads share one, which costs less CPU per message).",
        ),
    ] = False,
) -> None:
    """Run the chat relay on this PC, for everyone on the network (announced over mDNS)."""
    from lanchat.protocol import room_problem
    from lanchat.serving import ServeOptions, run_server

    problem = room_problem(room)
    if problem:
        raise UsageError(problem, "Example: --room physics-101")
    if backplane is not None:
        from lanchat.backplane import parse_address

        parse_address(backplane)  # UsageError: not a Redis URL
        if store is not None:
            raise UsageError(
                "--store and --backplane both keep the room's history: use one of them.",
                "With a backplane the history is the room's stream in Redis (make Redis "
                "persist it: appendonly yes).",
            )
    if relay_name is not None:
        from lanchat.backplane import relay_name_problem

        name_problem = relay_name_problem(relay_name)
        if name_problem:
            raise UsageError(f"--relay-name {relay_name!r}: {name_problem}", "Example: h1")
    for origin in web_origins or ():
        if not ORIGIN.fullmatch(origin):
            raise UsageError(
                f"--web-origin {origin!r} is not an origin (a scheme, a host, maybe a port).",
                "Example: --web-origin https://intranet.school.example",
            )
    if allow_plain and not tls:
        raise UsageError(
            "--allow-plain only means something with --tls (without it, every client is plain).",
            "Add --tls, or leave out --allow-plain.",
        )
    secrets = _secrets(password_file, ask_password, operator_password_file)
    if json_out:
        from lanchat.output.serve import JsonServeLog

        log: Any = JsonServeLog()
    else:
        from lanchat.output.serve import TextServeLog

        log = TextServeLog()
    options = ServeOptions(
        host=host,
        port=port,
        room=room,
        history=history,
        max_clients=max_clients,
        quiet=quiet,
        keepalive=keepalive,
        max_rate=max_rate,
        max_per_address=max_per_address,
        allow=tuple(allow or ()),
        deny=tuple(deny or ()),
        mdns=not no_mdns,
        interfaces=tuple(interfaces or ()),
        one_core=not all_cores,
        store=store,
        store_keep=store_keep,
        store_days=store_days,
        web=not no_web,
        web_origins=tuple(web_origins or ()),
        qr=not no_qr,
        backplane=backplane,
        relay_name=relay_name,
        tls=tls,
        allow_plain=allow_plain,
        secrets=secrets,
        allow_plain_login=allow_plain_login,
    )
    run_server(options, log)


def _secrets(password_file: str | None, ask: bool, operator_file: str | None) -> Secrets | None:
    """The room's and the operators' passwords, made into verifiers at once (the passwords
    are not kept); None when neither is given."""
    import os

    from lanchat.auth.secrets import (
        OPERATOR_PASSWORD_ENV,
        PASSWORD_ENV,
        Secrets,
        read_password_file,
    )

    if password_file is not None and ask:
        raise UsageError(
            "--password-file and --ask-password both give the room password.", "Give one."
        )
    room = os.environ.get(PASSWORD_ENV) or None
    if password_file is not None:
        room = read_password_file(password_file)
    elif ask:
        room = _ask_password()
    operator = os.environ.get(OPERATOR_PASSWORD_ENV) or None
    if operator_file is not None:
        operator = read_password_file(operator_file)
    if room is None and operator is None:
        return None
    return Secrets.make(room, operator)


def _ask_password() -> str:
    """The room password, typed twice without echo."""
    import getpass

    for _ in range(3):
        first = getpass.getpass("Room password: ")
        if not first:
            print("The password cannot be empty.", file=sys.stderr)
            continue
        if getpass.getpass("The same password again: ") == first:
            return first
        print("The two passwords differ; once more.", file=sys.stderr)
    raise UsageError("No room password was set.", "Run the command again, or use --password-file.")
