"""`lanchat discover`: the servers announced on the LAN, once or live."""

from __future__ import annotations

import queue
from typing import Annotated

import typer

EPILOG = (  # the examples under --help
    "Examples:\n\n"
    "  lanchat discover                   # list the servers on this network\n\n"
    "  lanchat discover --watch           # a live table until Ctrl-C\n\n"
    "  lanchat discover --json            # one JSON array (--watch: one object per change)\n\n"
    "Exit code 4 when no server answered. Discovery uses mDNS (UDP 5353)."
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

    from lanchat import netinfo
    from lanchat.discovery import DISCOVER_TIMEOUT, NO_SERVER_HINT, group_rooms, local_networks
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
    # Relays of one room (a backplane: the same room and TXT group) are shown as one room,
    # the nearest (on our own subnet) first.
    rooms = group_rooms(servers, local_networks(netinfo.local_addresses()))
    if json_out:
        print_json(
            [
                {**s.to_dict(), "nearest": i == 0}
                for room in rooms
                for i, s in enumerate(room.relays)
            ]
        )
    elif servers:
        from lanchat.output import stdout_console

        print_servers(stdout_console(), rooms, time.monotonic() - started)
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
