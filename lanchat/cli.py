"""The command line: parse arguments, call one function, render its result, exit with a code.

Errors reach the user once, in words (`error:` and `hint:` on stderr); a traceback only with
--debug. Heavy imports happen inside the command that needs them.
"""

from __future__ import annotations

import getpass
import queue
import sys
from typing import TYPE_CHECKING, Annotated, Any

import typer

from lanchat import __version__
from lanchat.errors import ExitCode, LanchatError, UsageError
from lanchat.protocol import DEFAULT_PORT

if TYPE_CHECKING:
    pass

app = typer.Typer(
    name="lanchat",
    help="Chat with everyone on your LAN: a relay, a client, discovery and a network doctor.",
    epilog="Docs: README.md and docs/ in the project. Exit codes are listed in the README.",
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
    context_settings={"help_option_names": ["-h", "--help"]},
)

_debug = False


def _version(value: bool) -> None:
    if value:
        print(f"lanchat {__version__}")
        raise typer.Exit()


@app.callback()
def _main(
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Show the version.")
    ] = False,
    debug: Annotated[bool, typer.Option("--debug", help="Show tracebacks for errors.")] = False,
) -> None:
    global _debug
    _debug = debug


PortOption = Annotated[
    int,
    typer.Option(
        "--port",
        "-p",
        envvar="LANCHAT_PORT",
        min=0,
        max=65535,
        help=f"TCP port (default {DEFAULT_PORT}; 0 picks a free one).",
    ),
]
JsonOption = Annotated[
    bool, typer.Option("--json", help="Machine-readable output: one JSON object per line.")
]


# --- serve --------------------------------------------------------------------------------


@app.command(
    epilog=(
        "Examples:\n\n"
        "  lanchat serve                      # port 7420, every network\n\n"
        "  lanchat serve --room physics --max-clients 40\n\n"
        "  lanchat serve --port 0 --json      # a free port; events as JSON lines\n\n"
        "  lanchat serve --interface wlan0    # announce on the Wi-Fi only\n\n"
        "Environment: LANCHAT_PORT, LANCHAT_ROOM."
    )
)
def serve(
    host: Annotated[
        str,
        typer.Option("--host", help="Address to listen on (default: every network, IPv4+IPv6)."),
    ] = "",
    port: PortOption = DEFAULT_PORT,
    room: Annotated[
        str, typer.Option("--room", envvar="LANCHAT_ROOM", help="Room name.")
    ] = "lobby",
    history: Annotated[
        int, typer.Option("--history", min=0, max=10000, help="Messages replayed to newcomers.")
    ] = 50,
    max_clients: Annotated[
        int,
        typer.Option(
            "--max-clients", min=0, help="Most people at once (0: as many as the OS allows)."
        ),
    ] = 0,
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
    ] = 60.0,
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
) -> None:
    """Run the chat relay on this PC, for everyone on the network (announced over mDNS)."""
    from lanchat.protocol import room_problem
    from lanchat.serving import ServeOptions, run_server

    problem = room_problem(room)
    if problem:
        raise UsageError(problem, "Example: --room physics-101")
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
        mdns=not no_mdns,
        interfaces=tuple(interfaces or ()),
    )
    run_server(options, log)


# --- join ---------------------------------------------------------------------------------


@app.command(
    epilog=(
        "Examples:\n\n"
        "  lanchat join                       # the server on this network (mDNS)\n\n"
        "  lanchat join --room physics        # when several servers answer\n\n"
        "  lanchat join 192.168.1.20          # port 7420\n\n"
        "  lanchat join 192.168.1.20:7420 --name ana\n\n"
        "  echo 'hello all' | lanchat join 192.168.1.20   # scripted: send, print, leave\n\n"
        "Environment: LANCHAT_NAME, LANCHAT_PORT, LANCHAT_ROOM."
    )
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
) -> None:
    """Join a chat: type to talk. With stdin from a file or pipe, send each line and leave."""
    from lanchat.client import Connection, parse_address
    from lanchat.join import connect_discovered, run_interactive, run_scripted
    from lanchat.protocol import suggest_name

    exact = name is not None
    wanted = name if name is not None else suggest_name(_login_name())
    if address is None:
        interactive = sys.stdin.isatty() and sys.stderr.isatty()
        conn, open_connection = connect_discovered(
            room=room, name=wanted, exact=exact, timeout=timeout, interactive=interactive
        )
    else:
        host, parsed_port = parse_address(address, default_port=port or DEFAULT_PORT)

        def open_connection() -> Connection:
            return Connection.open(host, parsed_port, name=wanted, exact=exact, timeout=timeout)

        conn = open_connection()
    if sys.stdin.isatty() and sys.stdout.isatty() and not json_out:
        raise typer.Exit(run_interactive(conn, open_connection))
    raise typer.Exit(run_scripted(conn, sys.stdin, as_json=json_out, out=sys.stdout))


def _login_name() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # no login name in this environment (a container, a service)
        return "guest"


# --- discover -----------------------------------------------------------------------------


@app.command(
    epilog=(
        "Examples:\n\n"
        "  lanchat discover                   # list the servers on this network\n\n"
        "  lanchat discover --watch           # a live table until Ctrl-C\n\n"
        "  lanchat discover --json            # one JSON array (--watch: one object per change)\n\n"
        "Exit code 4 when no server answered. Discovery uses mDNS (UDP 5353)."
    )
)
def discover(
    timeout: Annotated[
        float | None,
        typer.Option(
            "--timeout",
            min=0.1,
            help="Seconds to look at most (default 3; with --watch: until Ctrl-C).",
        ),
    ] = None,
    watch: Annotated[
        bool, typer.Option("--watch", "-w", help="Keep a live list: servers come and go.")
    ] = False,
    json_out: Annotated[
        bool,
        typer.Option("--json", help="JSON: one array; with --watch one object per change."),
    ] = False,
) -> None:
    """Find the lanchat servers on this network (mDNS): room, host, addresses, port, versions."""
    import time

    from lanchat.discovery import DISCOVER_TIMEOUT, NO_SERVER_HINT
    from lanchat.discovery import discover as find_servers
    from lanchat.errors import UnreachableError
    from lanchat.output import print_json, stderr_console
    from lanchat.output.discovery import print_servers, searching

    if watch:
        _watch(timeout, json_out)
        return
    limit = timeout or DISCOVER_TIMEOUT
    started = time.monotonic()
    with searching(stderr_console(), limit) as progress:
        servers = find_servers(limit, on_progress=progress)
    if json_out:
        print_json([s.to_dict() for s in servers])
    elif servers:
        from lanchat.output import stdout_console

        print_servers(stdout_console(), servers, time.monotonic() - started)
    if not servers:
        raise UnreachableError(
            f"No lanchat server answered on this network within {limit:g} s.", NO_SERVER_HINT
        )


WATCH_TICK_SECONDS = 1.0  # the live view re-reads the cache this often


def _watch(timeout: float | None, json_out: bool) -> None:
    """`discover --watch`: until Ctrl-C, SIGTERM or `timeout`; every change is shown."""
    import time

    from lanchat.discovery import Watcher
    from lanchat.discovery.browse import REVALIDATE_SECONDS
    from lanchat.output import print_json, stdout_console
    from lanchat.output.discovery import WatchView
    from lanchat.stopping import (
        StopRequested,
        ignore_stop_signals,
        restore_sigterm,
        stop_on_sigterm,
    )

    deadline = None if timeout is None else time.monotonic() + timeout
    previous = stop_on_sigterm()
    watcher = Watcher()
    view = None if json_out else WatchView(stdout_console())
    try:
        watcher.start()
        next_check = time.monotonic() + REVALIDATE_SECONDS
        if view is not None:
            view.__enter__()
        while deadline is None or time.monotonic() < deadline:
            wait = WATCH_TICK_SECONDS
            if deadline is not None:
                wait = max(0.0, min(wait, deadline - time.monotonic()))
            change = None
            try:
                change = watcher.changes.get(timeout=wait)
            except queue.Empty:
                watcher.refresh()  # may queue an 'updated' change for the next round
                if time.monotonic() >= next_check:
                    watcher.revalidate()
                    next_check = time.monotonic() + REVALIDATE_SECONDS
            if json_out and change is not None:
                print_json(change.to_dict())
            elif view is not None:
                view.show(change, watcher.servers())
    except (KeyboardInterrupt, StopRequested):
        pass  # the normal way to stop watching: exit 0
    finally:
        ignore_stop_signals()
        if view is not None:
            view.__exit__(None, None, None)
        watcher.close()
        restore_sigterm(previous)


# --- status -------------------------------------------------------------------------------


@app.command(
    epilog=(
        "Examples:\n\n"
        "  lanchat status                 # the relay on port 7420 of this PC\n\n"
        "  lanchat status --watch         # live; Ctrl-C to leave\n\n"
        "  lanchat status --json | jq '.connections[].name'\n\n"
        "Run it on the server PC; the relay answers only its own computer. "
        "Exit code 4 when no server is running."
    )
)
def status(
    port: PortOption = DEFAULT_PORT,
    watch: Annotated[bool, typer.Option("--watch", "-w", help="Refresh every second.")] = False,
    json_out: JsonOption = False,
) -> None:
    """Show the relay's listening socket and every connection, with the person behind it."""
    import time

    from lanchat.output import print_json, stdout_console
    from lanchat.output.status import status_view
    from lanchat.status import collect_status

    console = stdout_console(wide=True)
    if not watch:
        report = collect_status(port)
        if json_out:
            print_json(report.to_dict())
        else:
            console.print(status_view(report, time.time()))
        raise typer.Exit(ExitCode.OK if report.server else ExitCode.UNREACHABLE)
    if json_out:  # one document per refresh, one per line
        try:
            while True:
                started = time.monotonic()
                print_json(collect_status(port).to_dict())
                time.sleep(max(0.0, 1.0 - (time.monotonic() - started)))
        except KeyboardInterrupt:
            raise typer.Exit(ExitCode.OK) from None
    from rich.live import Live

    try:
        with Live(console=console, auto_refresh=False, screen=False) as live:
            while True:
                started = time.monotonic()
                live.update(status_view(collect_status(port), time.time()), refresh=True)
                time.sleep(max(0.0, 1.0 - (time.monotonic() - started)))
    except KeyboardInterrupt:
        raise typer.Exit(ExitCode.OK) from None


# --- doctor -------------------------------------------------------------------------------


@app.command(
    epilog=(
        "Examples:\n\n"
        "  lanchat doctor                     # on the server PC: can others reach port 7420?\n\n"
        "  lanchat doctor --port 7000 --json\n\n"
        "  lanchat doctor 192.168.1.23:7420   # on another PC: can it reach that server?\n\n"
        "  sudo lanchat doctor                # Linux: read the firewall rules too\n\n"
        "  lanchat doctor --internet          # also ask the router (NAT-PMP)\n\n"
        "Reading firewall rules needs root on Linux (nft, iptables-save) and for pf on macOS; "
        "Windows rules are readable by everyone. The doctor never changes a setting. "
        "Exit code 3 when a check fails. Environment: LANCHAT_PORT."
    )
)
def doctor(
    target: Annotated[
        str | None,
        typer.Argument(
            help="HOST[:PORT] of a server to test from this PC (client mode).", show_default=False
        ),
    ] = None,
    peer: Annotated[
        str | None, typer.Option("--peer", help="Same as HOST[:PORT].", show_default=False)
    ] = None,
    port: Annotated[
        int,
        typer.Option(
            "--port", "-p", envvar="LANCHAT_PORT", min=1, max=65535, help="The lanchat TCP port."
        ),
    ] = DEFAULT_PORT,
    internet: Annotated[
        bool,
        typer.Option("--internet", help="Also ask the router for its internet address (NAT-PMP)."),
    ] = False,
    timeout: Annotated[
        float,
        typer.Option("--timeout", min=0.1, max=30, help="Seconds to wait for a server to answer."),
    ] = 3.0,
    json_out: Annotated[
        bool, typer.Option("--json", help="Machine-readable output: one JSON document.")
    ] = False,
    no_mdns: Annotated[
        bool,
        typer.Option(
            "--no-mdns",
            envvar="LANCHAT_NO_MDNS",
            help="Skip the mDNS checks (they advertise and listen on the LAN).",
        ),
    ] = False,
) -> None:
    """Find out why other PCs cannot connect, and whether you need a firewall rule or port
    forwarding."""
    from lanchat.client import parse_address
    from lanchat.doctor.run import DoctorOptions, run_doctor
    from lanchat.output import print_json, stdout_console
    from lanchat.output.doctor import print_doctor

    if target and peer:
        raise UsageError("Give the server once: HOST[:PORT] or --peer HOST[:PORT].")
    address = target or peer
    host = None
    if address:
        host, port = parse_address(address, default_port=port)
    rerun = "lanchat doctor" + (f" --port {port}" if port != DEFAULT_PORT else "")
    rerun += " --internet" if internet else ""
    mdns = None
    if no_mdns:
        from lanchat.doctor.probes import UnavailableMdnsProbe

        mdns = UnavailableMdnsProbe("skipped (--no-mdns or LANCHAT_NO_MDNS)")
    report = run_doctor(DoctorOptions(port, host, internet, timeout, rerun), mdns=mdns)
    if json_out:
        print_json(report.to_dict())
    else:
        print_doctor(stdout_console(), report)
    raise typer.Exit(ExitCode.CHECK_FAILED if report.failed else ExitCode.OK)


# --- entry point --------------------------------------------------------------------------


def main() -> None:
    """Run the command line; every error ends here as words and an exit code."""
    try:
        app()  # typer reports usage errors itself (exit 2) and ends with SystemExit
    except LanchatError as e:
        if _debug:
            import traceback

            traceback.print_exc()
        from lanchat.output import print_error

        print_error(e)
        sys.exit(int(e.exit_code))
    except KeyboardInterrupt:
        sys.exit(int(ExitCode.INTERRUPTED))
    except Exception as e:  # a bug: say so in one line, never a traceback without --debug
        if _debug:
            raise
        print(f"error: internal error: {type(e).__name__}: {e}", file=sys.stderr)
        print("hint: run again with --debug for the traceback, and report it.", file=sys.stderr)
        sys.exit(int(ExitCode.ERROR))
