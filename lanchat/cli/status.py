"""`lanchat status`: the netstat-style view of a server on this PC."""

from __future__ import annotations

from typing import Annotated

import typer

from lanchat.cli.app import JsonOption, PortOption
from lanchat.errors import ExitCode
from lanchat.protocol import DEFAULT_PORT

EPILOG = (  # the examples under --help
    "Examples:\n\n"
    "  lanchat status                 # the relay on port 7420 of this PC\n\n"
    "  lanchat status --watch         # live; Ctrl-C to leave\n\n"
    "  lanchat status --json | jq '.connections[].name'\n\n"
    "Run it on the server PC; the relay answers only its own computer. "
    "Exit code 4 when no server is running."
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
