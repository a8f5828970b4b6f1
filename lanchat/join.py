"""The two front ends of `lanchat join`: scripted (stdin is not a terminal: each line is sent, every
frame is printed) and interactive (a prompt_toolkit input line that incoming messages do not
garble, names in colour, reconnecting when the server goes away). Without an address, which
server and address to use is decided by lanchat.discovery (reach_server); this module asks the
user to pick among several and prints what happened."""

from __future__ import annotations

import sys
import threading
from collections.abc import Callable, Iterable, Sequence
from typing import TYPE_CHECKING, Any, Protocol, TextIO

from lanchat.client import Connection, ConnectionLost, goodbye_reason, reconnect
from lanchat.errors import ExitCode, UnreachableError
from lanchat.output import (
    chat_text,
    notice,
    print_json,
    quiet_output,
    stderr_console,
    stdout_console,
)
from lanchat.protocol import (
    RAW_HELP,
    AskHelp,
    Chat,
    FrameError,
    Quit,
    Renamed,
    Request,
    Say,
    ServerFrame,
    parse_raw_line,
)

if TYPE_CHECKING:
    from lanchat.discovery import Server

QUIT_WAIT_SECONDS = 10.0  # how long to wait for the server to confirm our last lines
CANDIDATE_TIMEOUT = 2.0  # per address of a discovered server, while others remain to try


class _Tally:
    """Our own messages sent vs echoed back by the server: the echo confirms delivery."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.sent = 0
        self.confirmed = 0
        self.lock = threading.Lock()

    def saw(self, frame: ServerFrame) -> None:
        with self.lock:
            if isinstance(frame, Renamed) and frame.old == self.name:
                self.name = frame.new
            elif isinstance(frame, Chat) and not frame.history and frame.sender == self.name:
                self.confirmed += 1


def _request_for(line: str) -> Request | FrameError | None:
    try:
        return parse_raw_line(line)
    except FrameError as e:
        return e


def run_scripted(conn: Connection, lines: Iterable[str], *, as_json: bool, out: TextIO) -> int:
    """Send each line, print every frame; at end of input leave once our lines are confirmed."""
    console = stdout_console(out)
    err = stderr_console()
    tally = _Tally(conn.name)
    ended = threading.Event()
    ending: list[str | None] = [None]  # the goodbye reason, if one came

    def show(frame: ServerFrame) -> None:
        try:
            if as_json:
                print_json(frame.to_dict(), out)
            else:
                console.print(chat_text(frame, tally.name))
        # `| head -1`: the reader has what it wanted; we go on sending. (rich's Console says a
        # broken pipe as SystemExit, after pointing stdout at the null device.)
        except (BrokenPipeError, SystemExit):
            quiet_output(out)

    def receive() -> None:
        try:
            for frame in _greeting_frames(conn):
                show(frame)
            for frame in conn.frames():
                tally.saw(frame)
                show(frame)
                reason = goodbye_reason(frame)
                if reason is not None:
                    ending[0] = reason
                    return
        finally:
            ended.set()

    receiver = threading.Thread(target=receive, name="lanchat-receive", daemon=True)
    receiver.start()
    input_left = False  # a line we could not send (and whatever followed it)
    for raw in lines:
        request = _request_for(raw.rstrip("\r\n"))
        if request is None:
            continue
        if isinstance(request, FrameError):
            err.print(f"! {request.message}")
            continue
        if isinstance(request, AskHelp):
            err.print(f"* {RAW_HELP}")
            continue
        if isinstance(request, Quit):
            break
        try:
            if ended.is_set():
                raise ConnectionLost("the session ended")
            conn.send(request)
        except ConnectionLost:
            input_left = True
            break
        if isinstance(request, Say):
            with tally.lock:
                tally.sent += 1
    if not ended.is_set():
        try:
            conn.send(Quit())  # the server answers once everything before it went out
        except ConnectionLost:
            pass
    ended.wait(QUIT_WAIT_SECONDS)
    conn.close()
    receiver.join(1.0)
    unconfirmed = 0 if ending[0] == "quit" else max(0, tally.sent - tally.confirmed)
    if not input_left and not unconfirmed:
        return ExitCode.OK
    why = _ENDINGS.get(ending[0] or "", "the connection was lost")
    lost = [f"{unconfirmed} line(s) sent but not confirmed"] if unconfirmed else []
    lost += ["the rest of the input was not sent"] if input_left else []
    raise UnreachableError(
        f"{conn.host}:{conn.port}: {why} before we were done; {' and '.join(lost)}.",
        "Those lines may not have reached everyone; send them again when the server is back.",
    )


_ENDINGS = {
    "shutdown": "the server shut down",
    "too-slow": "the server disconnected us for falling behind",
}


def _greeting_frames(conn: Connection) -> list[ServerFrame]:
    g = conn.greeting
    return [g.welcome, *([g.who] if g.who else []), *g.history]


HELP_TEXT = (
    "Type a line and press Enter to send it. Commands: /me TEXT (action), /nick NAME, /who, "
    "/help, /quit (or Ctrl-D). Start a line with // to send a line beginning with /."
)


def run_interactive(first: Connection, open_again: Callable[[], Connection]) -> int:
    """The chat window: prompt at the bottom, messages above it, reconnects on its own."""
    from prompt_toolkit import PromptSession
    from prompt_toolkit.patch_stdout import patch_stdout

    state = {"conn": first}
    lock = threading.Lock()
    leaving = threading.Event()

    with patch_stdout(raw=True):
        console = stdout_console(
            force_terminal=sys.__stdout__ is not None and sys.__stdout__.isatty()
        )

        def say(text: object) -> None:
            console.print(text)

        def receive() -> None:
            conn = first
            for frame in _greeting_frames(conn):
                say(chat_text(frame, conn.name))
            while not leaving.is_set():
                reason = None
                for frame in conn.frames():
                    if isinstance(frame, Renamed) and frame.old == conn.name:
                        conn.name = frame.new
                    say(chat_text(frame, conn.name))
                    reason = goodbye_reason(frame)
                    if reason is not None:
                        break
                if leaving.is_set() or reason in ("quit", "too-slow"):
                    return
                say(notice("* Connection to the server lost. Reconnecting...", "bold yellow"))
                new = reconnect(
                    open_again,
                    stop=leaving,
                    on_wait=lambda delay, e: say(
                        notice(f"* Still unreachable ({e}); next try in {delay:g} s.", "dim")
                    ),
                )
                if new is None:
                    return
                with lock:
                    state["conn"] = new
                conn = new
                say(notice(f"* Reconnected to {new.host}:{new.port} as {new.name}.", "bold green"))
                for frame in _greeting_frames(new):
                    say(chat_text(frame, new.name))

        receiver = threading.Thread(target=receive, name="lanchat-receive", daemon=True)
        receiver.start()
        session: PromptSession[str] = PromptSession()
        say(notice(f"* {HELP_TEXT}", "dim"))
        try:
            while receiver.is_alive():
                try:
                    line = session.prompt(lambda: f"{state['conn'].name}> ")
                except (EOFError, KeyboardInterrupt):
                    break
                request = _request_for(line)
                if request is None:
                    continue
                if isinstance(request, FrameError):
                    say(notice(f"! {request.message}", "bold red"))
                    continue
                if isinstance(request, AskHelp):
                    say(notice(f"* {HELP_TEXT}", "dim"))
                    continue
                if isinstance(request, Quit):
                    break
                with lock:
                    conn = state["conn"]
                try:
                    conn.send(request)
                except ConnectionLost:
                    say(notice("! Not connected right now; that line was not sent.", "bold red"))
        finally:
            leaving.set()
            with lock:
                conn = state["conn"]
            try:
                conn.send(Quit())
            except ConnectionLost:
                pass
            receiver.join(2.0)
            conn.close()
    return ExitCode.OK


MAX_PICK_TRIES = 5


class Printer(Protocol):
    """Where the question goes: a rich Console (lanchat.output.stderr_console)."""

    def print(self, *objects: Any, end: str = "\n") -> None: ...


def ask_server(
    servers: Sequence[Server], console: Printer, stream: TextIO | None = None
) -> Server | None:
    """Ask which of several servers to join, by number; None at end of input or after
    MAX_PICK_TRIES answers that are not a number on the list (Ctrl-C leaves, as anywhere)."""
    from lanchat.output.discovery import pick_list, pick_question, pick_retry

    source = stream if stream is not None else sys.stdin
    console.print(pick_list(servers))
    for _ in range(MAX_PICK_TRIES):
        console.print(pick_question(len(servers)), end="")
        line = source.readline()
        if not line:
            return None
        answer = line.strip()
        if answer.isdigit() and 1 <= int(answer) <= len(servers):
            return servers[int(answer) - 1]
        console.print(pick_retry(len(servers)))
    return None


def connect_discovered(
    *, room: str | None, name: str | None, exact: bool, timeout: float, interactive: bool
) -> tuple[Connection, Callable[[], Connection]]:
    """`join` without an address: look for servers, then reach_server (lanchat.discovery) takes
    the only one (of `room`) or the one the user picks and tries its addresses, own subnet
    first; say on stderr which one worked. Returns the connection and how to open it again
    (same address) for reconnecting."""
    from lanchat import netinfo
    from lanchat.discovery import discover, local_networks, reach_server
    from lanchat.output.discovery import reach_report, searching

    err = stderr_console()
    with searching(err, timeout) as progress:
        servers = discover(timeout, on_progress=progress)

    def connect(server: Server, address: str, last: bool) -> Connection:
        wait = timeout if last else min(timeout, CANDIDATE_TIMEOUT)
        return Connection.open(address, server.port, name=name, exact=exact, timeout=wait)

    reached = reach_server(
        servers,
        room,
        seconds=timeout,
        networks=local_networks(netinfo.local_addresses()),
        pick=(lambda found: ask_server(found, err)) if interactive else None,
        connect=connect,
    )
    for line in reach_report(reached):
        err.print(line)
    server, address = reached.server, reached.address

    def open_again() -> Connection:
        return Connection.open(address, server.port, name=name, exact=exact, timeout=timeout)

    return reached.connection, open_again
