"""`lanchat join`: chat, interactively or as a script."""

from __future__ import annotations

import getpass
import sys
from typing import TYPE_CHECKING, Annotated

import typer

from lanchat.cli.app import JsonOption
from lanchat.netinfo import host_port
from lanchat.protocol import DEFAULT_JOIN_KEEPALIVE_SECONDS, DEFAULT_PORT

if TYPE_CHECKING:
    from lanchat.join import Password

EPILOG = (  # the examples under --help
    "Examples:\n\n"
    "  lanchat join                       # the server on this network (mDNS)\n\n"
    "  lanchat join --room physics        # when several servers answer\n\n"
    "  lanchat join 192.168.1.20          # port 7420\n\n"
    "  lanchat join 192.168.1.20:7420 --name ana\n\n"
    "  echo 'hello all' | lanchat join 192.168.1.20   # scripted: send, print, leave\n\n"
    "  lanchat join --tls 192.168.1.20    # encrypted; the server's key is pinned\n\n"
    "  lanchat join --fingerprint V7EX-ZE55-... 192.168.1.20   # and checked first\n\n"
    "  lanchat join --operator 127.0.0.1  # on the server's PC: moderate the room\n\n"
    "Environment: LANCHAT_NAME, LANCHAT_PORT, LANCHAT_ROOM, LANCHAT_TLS, LANCHAT_PASSWORD "
    "(a room's password, for scripts), LANCHAT_OPERATOR_PASSWORD."
)


def join(
    address: Annotated[
        str | None,
        typer.Argument(help="HOST or HOST:PORT of the server (default: find it on the LAN)."),
    ] = None,
    name: Annotated[
        str | None,
        typer.Option(
            "--name", "-n", envvar="LANCHAT_NAME", help="Your name (default: login name)."
        ),
    ] = None,
    port: Annotated[
        int | None,
        typer.Option(
            "--port",
            "-p",
            envvar="LANCHAT_PORT",
            min=1,
            max=65535,
            help="Port, when ADDRESS has none.",
        ),
    ] = None,
    timeout: Annotated[
        float,
        typer.Option(
            "--timeout", min=0.1, help="Seconds to wait for servers (and the server) to answer."
        ),
    ] = 5.0,
    room: Annotated[
        str | None,
        typer.Option(
            "--room",
            envvar="LANCHAT_ROOM",
            help="Without ADDRESS: join the server of this room when several answer.",
        ),
    ] = None,
    json_out: JsonOption = False,
    reconnect: Annotated[
        float,
        typer.Option(
            "--reconnect",
            min=0,
            help="Scripted: seconds to keep trying when the connection is lost, resuming "
            "where it stopped (0: give up at once). Interactive sessions always retry.",
        ),
    ] = 30.0,
    keepalive: Annotated[
        float,
        typer.Option(
            "--keepalive",
            min=0,
            help="Seconds of silence after which the server is taken as gone: a ping after "
            "half of them, then the other half to answer (0: never). Then the session "
            "reconnects (--reconnect) or ends with exit code 4.",
        ),
    ] = DEFAULT_JOIN_KEEPALIVE_SECONDS,
    tls: Annotated[
        bool,
        typer.Option(
            "--tls",
            envvar="LANCHAT_TLS",
            help="Connect with TLS. The server's key is pinned on first use (known_servers in "
            "lanchat's config directory) and a different key is refused. Without --tls, TLS "
            "is still used for a server that asks for it, announces it, or is pinned.",
        ),
    ] = False,
    fingerprint: Annotated[
        str | None,
        typer.Option(
            "--fingerprint",
            metavar="FP",
            help="The server's key fingerprint as `lanchat serve --tls` shows it (any "
            "grouping or case; implies --tls): checked before joining, then pinned.",
        ),
    ] = None,
    operator: Annotated[
        bool,
        typer.Option(
            "--operator",
            help="Log in as an operator (who may moderate): on the server's own PC with its "
            "token file, elsewhere with the operator password (asked, or "
            "LANCHAT_OPERATOR_PASSWORD).",
        ),
    ] = False,
) -> None:
    """Join a chat: type to talk. With stdin from a file or pipe, send each line and leave."""
    from lanchat.client import Connection, Credentials, TlsOptions, parse_address
    from lanchat.join import connect_discovered, reopen, run_interactive, run_scripted
    from lanchat.protocol import Resume, suggest_name
    from lanchat.tls.trust import Expectation

    exact = name is not None
    tls_options = TlsOptions(wanted=tls, expect=Expectation(fingerprint=_fingerprint(fingerprint)))
    wanted = name if name is not None else suggest_name(_login_name())
    if address is None:
        interactive = sys.stdin.isatty() and sys.stderr.isatty()
        password = _password(operator, None, DEFAULT_PORT)
        conn, open_connection = connect_discovered(
            room=room,
            name=wanted,
            exact=exact,
            timeout=timeout,
            interactive=interactive,
            keepalive=keepalive,
            password=password,
            tls=tls_options,
        )
    else:
        from lanchat.client import LineServer
        from lanchat.line_client import run_line_client
        from lanchat.output import connecting, stderr_console

        host, parsed_port = parse_address(address, default_port=port or DEFAULT_PORT)
        where = host_port(host, parsed_port)
        password = _password(operator, host, parsed_port)
        session_key: list[bytes | None] = [None]  # the key the first connection accepted

        def open_connection(resume: Resume | None = None, current: str = wanted) -> Connection:
            # reconnecting (under the name we had last): a relay answered before, so no
            # listening first; over TLS when the first connection was, with the same key (even
            # if it could not be pinned)
            def open_as(name: str, exact: bool) -> Connection:
                return Connection.open(
                    host,
                    parsed_port,
                    name=name,
                    exact=exact,
                    timeout=timeout,
                    resume=resume,
                    keepalive=keepalive,
                    credentials=password.credentials,
                    tls=tls_options.again(session_key[0]),
                )

            return reopen(open_as, asked=wanted, exact=exact, current=current)

        def open_first(credentials: Credentials | None) -> Connection:
            with connecting(stderr_console(), where, timeout):
                return Connection.open(
                    host,
                    parsed_port,
                    name=wanted,
                    exact=exact,
                    timeout=timeout,
                    # An operator means a relay: its hello goes at once (a late one would
                    # join as a raw guest, never logged in).
                    listen_first=not operator,
                    keepalive=keepalive,
                    credentials=credentials,
                    tls=tls_options,
                )

        try:
            conn = password.open(where, open_first, lambda _: open_connection())
            session_key[0] = conn.server_key
        except LineServer as server:  # ncat -l, ncat --chat: chat with it line by line
            at_terminal = sys.stdin.isatty() and sys.stdout.isatty() and not json_out
            lines = None if at_terminal else sys.stdin
            code = run_line_client(server, lines, as_json=json_out, out=sys.stdout)
            raise typer.Exit(code) from None
    if conn.tls_note:  # "pinned V7EX-... for 10.0.0.5:7420"
        from lanchat.output import notice, stderr_console

        stderr_console().print(notice(f"* {conn.tls_note}", "dim"))
    if sys.stdin.isatty() and sys.stdout.isatty() and not json_out:
        raise typer.Exit(run_interactive(conn, open_connection))
    raise typer.Exit(
        run_scripted(
            conn,
            sys.stdin,
            as_json=json_out,
            out=sys.stdout,
            open_again=open_connection,
            reconnect_for=reconnect,
        )
    )


def _fingerprint(text: str | None) -> bytes | None:
    """--fingerprint's digest; UsageError when it is not a fingerprint."""
    if text is None:
        return None
    from lanchat.errors import UsageError
    from lanchat.tls.fingerprint import parse_fingerprint

    digest = parse_fingerprint(text)
    if digest is None:
        raise UsageError(
            f"--fingerprint {text!r} is not a key fingerprint.",
            "Copy it from the server's screen: 13 groups of 4 letters and digits "
            "(V7EX-ZE55-...), or the 64 hex digits a browser shows as the Public Key SHA-256.",
        )
    return digest


def _password(operator: bool, host: str | None, port: int) -> Password:
    """How this join logs in: LANCHAT_PASSWORD for a room's password; for --operator the
    server's token file when it runs on this PC (`host`; None: found by discovery, so not
    known yet), else LANCHAT_OPERATOR_PASSWORD, else the operator password asked for."""
    import os

    from lanchat.auth.secrets import OPERATOR_PASSWORD_ENV, PASSWORD_ENV, read_token
    from lanchat.client import Credentials
    from lanchat.join import Password
    from lanchat.netinfo import is_this_computer
    from lanchat.protocol import LOGIN_CONSOLE, LOGIN_OPERATOR, LOGIN_ROOM

    if not operator:
        room = os.environ.get(PASSWORD_ENV)
        return Password(Credentials(LOGIN_ROOM, room) if room else None)
    token = read_token(port) if host is not None and is_this_computer(host) else None
    if token is not None:
        return Password(Credentials(LOGIN_CONSOLE, token), operator=True)
    secret = os.environ.get(OPERATOR_PASSWORD_ENV)
    password = Password(Credentials(LOGIN_OPERATOR, secret) if secret else None, operator=True)
    if password.credentials is None:
        password.ask(host_port(host, port) if host is not None else "the server")
    return password


def _login_name() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # no login name in this environment (a container, a service)
        return "guest"
