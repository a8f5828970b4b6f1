"""The two front ends of `lanchat join`: scripted (stdin is not a terminal: each line is sent, every
frame is printed) and interactive (a prompt_toolkit input line that incoming messages do not
garble, names in colour, reconnecting when the server goes away). Without an address, which
server and address to use is decided by lanchat.discovery (reach_server); this module asks the
user to pick among several and prints what happened.

Somewhat over ~300 lines: two front ends that share their bookkeeping (lanchat/session.py) and
the question which server to join.
"""

from __future__ import annotations

import getpass
import os
import queue
import sys
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import replace
from enum import Enum
from typing import TYPE_CHECKING, Any, Protocol, TextIO

from lanchat.client import (
    Connection,
    ConnectionLost,
    Credentials,
    PasswordNeeded,
    TlsOptions,
    goodbye_reason,
)
from lanchat.errors import (
    ExitCode,
    LoginFailedError,
    RejectedError,
    ServerKeyError,
    UnreachableError,
)
from lanchat.output import (
    chat_text,
    notice,
    print_json,
    quiet_output,
    stderr_console,
    stdout_console,
)
from lanchat.protocol import (
    DEFAULT_JOIN_KEEPALIVE_SECONDS,
    LOGIN_CONSOLE,
    LOGIN_OPERATOR,
    LOGIN_ROOM,
    OPERATOR_HELP,
    RAW_HELP,
    AskHelp,
    FrameError,
    Goodbye,
    Login,
    Quit,
    Request,
    Resume,
    Say,
    ServerFrame,
    parse_raw_line,
)
from lanchat.session import Opener, Session

if TYPE_CHECKING:
    from lanchat.discovery import Server

QUIT_WAIT_SECONDS = 10.0  # how long to wait for the server to confirm our last lines
# A session that ended early lists the lines it did not send; input still coming (a pipe left
# open) is waited for this long, then called "the rest of the input".
INPUT_END_WAIT_SECONDS = 0.5
CANDIDATE_TIMEOUT = 2.0  # per address of a discovered server, while others remain to try
# Goodbyes after which we do not reconnect: we left, the server let us go for falling behind,
# or an operator removed us (a kick or a ban is final: coming back is a person's decision).
FINAL_GOODBYES = frozenset({"quit", "too-slow", "kicked", "banned"})
REMOVED = frozenset({"kicked", "banned"})
PASSWORD_TRIES = 3  # a password typed at the terminal may be mistyped this many times
LOGIN_NOT_SENT = (
    "Not sent: /login is for ncat and browsers. Here, leave and join again with "
    "`lanchat join --operator` to log in as an operator."
)


class Password:
    """The login `join` uses: given (LANCHAT_PASSWORD, the operator token), or asked at the
    terminal once and kept for reconnects, which log in again without asking."""

    def __init__(self, credentials: Credentials | None, *, operator: bool = False) -> None:
        self.credentials = credentials
        self.operator = operator
        self.asked = False  # typed at the terminal (so a wrong one may be typed again)

    def ask(self, where: str) -> Credentials:
        """Ask at the terminal (never echoed); LoginFailedError where nobody can be asked."""
        if not can_ask():
            variable = "LANCHAT_OPERATOR_PASSWORD" if self.operator else "LANCHAT_PASSWORD"
            raise LoginFailedError(
                f"{where} needs a password, and there is no terminal to ask for it.",
                f"Set {variable} for scripts.",
            )
        which = "Operator password" if self.operator else "Password"
        secret = getpass.getpass(f"{which} for {where}: ")
        self.credentials = Credentials(LOGIN_OPERATOR if self.operator else LOGIN_ROOM, secret)
        self.asked = True
        return self.credentials

    def open(
        self,
        where: str,
        first: Callable[[Credentials | None], Connection],
        again: Callable[[Credentials | None], Connection],
    ) -> Connection:
        """Open with `first`; when the relay asks for a password we do not have, ask and open
        with `again` (a relay answered: no need to listen first). A password typed wrong at
        the terminal may be typed again (PASSWORD_TRIES in all); a stale operator token
        (another run's) gives way to asking for the operator password."""
        opener, mistakes = first, 0
        while True:
            try:
                return opener(self.credentials)
            except PasswordNeeded as e:
                if self.credentials is not None:
                    raise
                if e.tls_note:  # the fingerprint before the password: the user can stop here
                    stderr_console().print(notice(f"* {e.tls_note}", "dim"))
                self.ask(where)
            except LoginFailedError as e:
                stale = self.credentials is not None and self.credentials.username == LOGIN_CONSOLE
                mistakes += not stale
                if e.code != "wrong-password" or not (self.asked or stale):
                    raise
                if mistakes >= PASSWORD_TRIES:
                    raise
                if not stale:
                    stderr_console().print(f"! {e.message}")
                self.ask(where)
            opener = again


def can_ask() -> bool:
    """Whether a password can be typed: stdin is a terminal, or the controlling terminal can be
    opened (getpass asks there; piped stdin is the script's lines, never a password)."""
    if sys.stdin.isatty() or os.name == "nt":
        return sys.stdin.isatty()
    try:
        with open("/dev/tty", "rb"):
            return True
    except OSError:
        return False


def _request_for(line: str) -> Request | FrameError | None:
    try:
        return parse_raw_line(line)
    except FrameError as e:
        return e


def run_scripted(
    conn: Connection,
    lines: Iterable[str],
    *,
    as_json: bool,
    out: TextIO,
    open_again: Opener | None = None,
    reconnect_for: float = 0.0,
) -> int:
    """Send each line, print every frame; at end of input leave once our lines are confirmed.
    A lost connection is resumed for up to `reconnect_for` seconds: lines read meanwhile wait
    and are sent on the new connection; whatever could not be sent is reported at the end."""
    console = stdout_console(out)
    err = stderr_console()
    session = Session(conn, open_again)
    ended = threading.Event()  # no more frames will come: the session is over
    ending: list[str | None] = [None]  # the goodbye reason, if one came
    farewell: list[str] = [""]  # ... and its words
    uncertain: list[Say] = []  # sent, then the server lost track: may not have reached anyone
    # A reconnect found another key, or its login no longer works: the session ends.
    refused: list[ServerKeyError | LoginFailedError] = []
    leftover: list[str] = []  # lines read but never handed to the session (it was over)
    # The input is read on a thread of its own, so that a session that ends while the input is
    # idle (a dead server, a drop) ends the program too, instead of waiting for the next line.
    # Each thread marks its end in the inbox: the input's after its last line, the session's
    # whenever it ends, so lines can still follow that mark.
    inbox: queue.Queue[str | _End] = queue.Queue()
    input_ended = threading.Event()

    def show(frame: ServerFrame) -> None:
        session.saw(frame)
        try:
            if as_json:
                print_json(frame.to_dict(), out)
            else:
                console.print(chat_text(frame, session.name))
        # `| head -1`: the reader has what it wanted; we go on sending. (rich's Console says a
        # broken pipe as SystemExit, after pointing stdout at the null device.)
        except (BrokenPipeError, SystemExit):
            quiet_output(out)

    def receive() -> None:
        current = conn
        try:
            for frame in _greeting_frames(current):
                show(frame)
            while True:
                reason = None
                for frame in current.frames():
                    show(frame)
                    reason = goodbye_reason(frame)
                    if reason is not None:
                        farewell[0] = frame.message if isinstance(frame, Goodbye) else ""
                        break
                ending[0] = reason
                session.lost(current)
                if reason in FINAL_GOODBYES or reconnect_for <= 0 or open_again is None:
                    return
                err.print(f"* Connection lost; reconnecting (for up to {reconnect_for:g} s)...")
                current.hang_up()  # before reconnecting: the relay lets our name go
                try:
                    new = session.reconnect(
                        stop=ended,
                        on_wait=lambda delay, e: err.print(
                            f"* {_retry_note(e)}; next try in {delay:.2g} s."
                        ),
                        until=time.monotonic() + reconnect_for,
                    )
                except (ServerKeyError, LoginFailedError) as e:  # never retried: said at the end
                    refused.append(e)
                    new = None
                current.close()
                if new is None:
                    return
                current = new
                for frame in _greeting_frames(new):
                    show(frame)
                lost = session.settle(new)
                ending[0] = None
                err.print(f"* Reconnected to {new.host}:{new.port} as {new.name}.")
                if lost:
                    uncertain.extend(lost)
                    err.print(f"! {_uncertain_note(lost)}")
        finally:
            ended.set()
            session.wake()
            inbox.put(_End.SESSION)  # wakes the loop below even while the input is idle

    def read_input() -> None:
        try:
            for line in lines:
                inbox.put(line)
        except (OSError, ValueError):
            pass  # stdin closed or unreadable: as the end of input
        finally:
            input_ended.set()
            inbox.put(_End.INPUT)

    receiver = threading.Thread(target=receive, name="lanchat-receive", daemon=True)
    receiver.start()
    threading.Thread(target=read_input, name="lanchat-input", daemon=True).start()
    input_left = False  # the session was over before the input was
    while True:
        raw = inbox.get()
        if raw is _End.INPUT:
            break
        if raw is _End.SESSION:
            input_left = True  # the server ended the session; we never said we were done
            break
        request = _request_for(raw.rstrip("\r\n"))
        if request is None:
            continue
        if isinstance(request, FrameError):
            err.print(f"! {request.message}")
            continue
        if isinstance(request, AskHelp):
            err.print(f"* {RAW_HELP}" + (f" {OPERATOR_HELP}" if session.operator else ""))
            continue
        if isinstance(request, Login):  # never sent: it would carry the password
            err.print(f"! {LOGIN_NOT_SENT}")
            continue
        if isinstance(request, Quit):
            break
        if ended.is_set():
            input_left = True
            leftover.append(raw)
            break
        session.submit(request, typed=raw)  # sent now, or kept until we are reconnected
    session.wait_done(QUIT_WAIT_SECONDS + reconnect_for, ended)
    if not ended.is_set():
        session.submit(Quit())  # the server answers once everything before it went out
    ended.wait(QUIT_WAIT_SECONDS)
    session.conn.close()
    receiver.join(1.0)
    if refused:
        raise refused[0]
    _, unconfirmed = session.outstanding()
    if ending[0] in REMOVED:
        raise RejectedError(
            f"{session.conn.host}:{session.conn.port}: {farewell[0] or 'an operator removed us'}",
            _removed_hint(ending[0]),
        )
    if session.muted:
        raise RejectedError(
            f"{session.conn.host}:{session.conn.port}: {session.muted} line(s) were not relayed: "
            "an operator muted us.",
            "Send them again when the mute is over (the server said for how long).",
        )
    if ending[0] == "quit":
        unconfirmed = 0  # the server relays everything before it answers our bye
    rest_unread = False
    if input_left:  # the session ended first: what is left of the input was not sent
        # Seen before the inbox is drained: once the input has ended, all its lines are there.
        rest_unread = not input_ended.wait(INPUT_END_WAIT_SECONDS)
        leftover += [line for line in _drain(inbox) if _is_a_line(line)]
    not_sent = [*session.waiting_to_send(), *leftover]
    dropped = ending[0] == "too-slow"  # whatever was said to us meanwhile, we did not hear
    lines_lost = bool(not_sent or rest_unread or unconfirmed or uncertain)
    if not (dropped or lines_lost):
        return ExitCode.OK
    why = _ENDINGS.get(ending[0] or "", "the connection was lost") + " before we were done"
    last_failure = session.last_failure
    if last_failure is not None:  # it ended while we tried to get back in: say what stopped us
        why += f", and we could not get back in (last try: {last_failure})"
    lost = [f"{unconfirmed} line(s) sent but not confirmed"] if unconfirmed else []
    lost += [_uncertain_note(uncertain)] if uncertain else []
    lost += [f"{len(not_sent)} line(s) were not sent: {_shown(not_sent)}"] if not_sent else []
    lost += ["the rest of the input was not read"] if rest_unread else []
    lost = lost or ["what the room said meanwhile did not reach us"]
    message = f"{session.conn.host}:{session.conn.port}: {why}; {' and '.join(lost)}."
    hint = "Those lines may not have reached everyone; send them again when the server is back."
    if not lines_lost:  # dropped as too slow, with every line of ours through
        hint = "Read the output as it comes (a pipe that is read slowly makes the server drop us)."
    if isinstance(last_failure, RejectedError):  # "That name is taken": exit 5
        raise RejectedError(message, last_failure.hint or hint)
    raise UnreachableError(message, hint)


class _End(Enum):
    """The marks that end the lines in run_scripted's inbox."""

    INPUT = "the input ended"
    SESSION = "the session ended"


def _is_a_line(raw: str) -> bool:
    """Whether an input line would have been sent (not blank, /help, /login or /quit)."""
    request = _request_for(raw.rstrip("\r\n"))
    return request is not None and not isinstance(request, (FrameError, AskHelp, Login, Quit))


def _retry_note(e: Exception) -> str:
    """What a failed reconnect attempt met."""
    if isinstance(e, RejectedError):
        return f"The server did not let us back in ({e})"
    return f"Still unreachable ({e})"


def _drain(inbox: queue.Queue[str | _End]) -> list[str]:
    """The lines waiting in `inbox`, without waiting for more."""
    lines: list[str] = []
    while True:
        try:
            line = inbox.get_nowait()
        except queue.Empty:
            return lines
        if isinstance(line, str):
            lines.append(line)


def _shown(lines: list[str]) -> str:
    """A few lines as the user typed them, then how many more."""
    shown = ", ".join(repr(line.rstrip("\r\n")) for line in lines[:3])
    return shown + (f" and {len(lines) - 3} more" if len(lines) > 3 else "")


def _removed_hint(reason: str | None) -> str:
    if reason == "banned":
        return (
            "This address cannot join this server again until it restarts; ask the operator "
            "(the teacher) if that was a mistake."
        )
    return "You may join again, but ask the operator (the teacher) first."


def _uncertain_note(lines: list[Say]) -> str:
    shown = ", ".join(repr(s.text) for s in lines[:3]) + (", ..." if len(lines) > 3 else "")
    return (
        f"{len(lines)} line(s) sent just before the connection was lost may not have reached "
        f"everyone (the server could not replay what was missed): {shown}"
    )


_ENDINGS = {
    "shutdown": "the server shut down",
    "too-slow": "the server disconnected us for falling behind",
}


def _greeting_frames(conn: Connection) -> list[ServerFrame]:
    g = conn.greeting
    return [g.welcome, *([g.who] if g.who else []), *([g.gap] if g.gap else []), *g.history]


HELP_TEXT = (
    "Type a line and press Enter to send it. Commands: /me TEXT (action), /nick NAME, /who, "
    "/topic, /help, /quit (or Ctrl-D). Start a line with // to send a line beginning with /."
)


def run_interactive(first: Connection, open_again: Opener) -> int:
    """The chat window: prompt at the bottom, messages above it, reconnects on its own (each
    reconnect resumes: nothing twice, a note for what is gone, typed lines sent afterwards)."""
    from prompt_toolkit import PromptSession
    from prompt_toolkit.patch_stdout import patch_stdout

    session = Session(first, open_again)
    leaving = threading.Event()

    with patch_stdout(raw=True):
        console = stdout_console(
            force_terminal=sys.__stdout__ is not None and sys.__stdout__.isatty()
        )

        def say(text: object) -> None:
            console.print(text)

        def show(frame: ServerFrame) -> None:
            session.saw(frame)
            say(chat_text(frame, session.name))

        def receive() -> None:
            conn = first
            for frame in _greeting_frames(conn):
                show(frame)
            while not leaving.is_set():
                reason = None
                for frame in conn.frames():
                    show(frame)
                    reason = goodbye_reason(frame)
                    if reason is not None:
                        if reason in REMOVED and isinstance(frame, Goodbye):
                            removed[:] = [reason, frame.message]
                        break
                session.lost(conn)
                if reason in REMOVED:
                    end_prompt()  # nothing typed could go anywhere now
                if leaving.is_set() or reason in FINAL_GOODBYES:
                    return
                say(notice("* Connection to the server lost. Reconnecting...", "bold yellow"))
                conn.hang_up()  # before reconnecting: the relay lets our name go
                try:
                    new = session.reconnect(
                        stop=leaving,
                        on_wait=lambda delay, e: say(
                            notice(f"* {_retry_note(e)}; next try in {delay:.2g} s.", "dim")
                        ),
                    )
                except (ServerKeyError, LoginFailedError) as e:  # never retried: it ends here
                    say(notice(f"! {e.message}", "bold red"))
                    if e.hint:
                        say(notice(f"* {e.hint}", "dim"))
                    new = None
                conn.close()
                if new is None:
                    return
                conn = new
                say(notice(f"* Reconnected to {new.host}:{new.port} as {new.name}.", "bold green"))
                for frame in _greeting_frames(new):
                    show(frame)
                lost = session.settle(new)
                if lost:
                    say(notice(f"! {_uncertain_note(lost)}", "bold red"))

        prompt: PromptSession[str] = PromptSession()
        removed: list[str] = []  # [reason, the server's words] once an operator removed us

        def exit_prompt() -> None:
            """End the prompt as Ctrl-D would (in its event loop), once."""
            future = prompt.app.future
            if future is not None and not future.done():
                prompt.app.exit(exception=EOFError())

        def end_prompt() -> None:
            """From the receiving thread: end a prompt that runs now; one that starts later
            ends itself (pre_run below), so there is no moment in between that misses it."""
            loop = prompt.app.loop
            if prompt.app.is_running and loop is not None:
                loop.call_soon_threadsafe(exit_prompt)

        receiver = threading.Thread(target=receive, name="lanchat-receive", daemon=True)
        receiver.start()
        say(notice(f"* {HELP_TEXT}", "dim"))
        try:
            while receiver.is_alive():
                try:
                    line = prompt.prompt(
                        lambda: f"{session.name}> ",
                        pre_run=lambda: exit_prompt() if removed else None,
                    )
                except (EOFError, KeyboardInterrupt):
                    break
                request = _request_for(line)
                if request is None:
                    continue
                if isinstance(request, FrameError):
                    say(notice(f"! {request.message}", "bold red"))
                    continue
                if isinstance(request, AskHelp):
                    extra = f" {OPERATOR_HELP}" if session.operator else ""
                    say(notice(f"* {HELP_TEXT}{extra}", "dim"))
                    continue
                if isinstance(request, Login):  # never sent: it would carry the password
                    say(notice(f"! {LOGIN_NOT_SENT}", "bold red"))
                    continue
                if isinstance(request, Quit):
                    break
                if not session.submit(request):
                    say(notice("* Not connected right now; that line is sent once reconnected."))
        finally:
            leaving.set()
            unsent, unconfirmed = session.outstanding()
            try:
                session.conn.send(Quit())
            except ConnectionLost:
                pass
            receiver.join(2.0)
            session.conn.close()
            if unsent or unconfirmed:
                say(
                    notice(
                        f"! Left with {unsent + unconfirmed} line(s) not confirmed by the server; "
                        "they may not have reached everyone.",
                        "bold red",
                    )
                )
    if removed:
        reason, message = removed
        raise RejectedError(
            f"{session.conn.host}:{session.conn.port}: {message}", _removed_hint(reason)
        )
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


def announced_tls(options: TlsOptions, server: Server) -> TlsOptions:
    """A discovered server: TLS when it announced tls=1, and its key must be the one it
    announced (which saves nothing but a typo: the pin or --fingerprint is the check)."""
    if not server.tls:
        return options
    from lanchat.tls.fingerprint import parse_fingerprint

    announced = parse_fingerprint(server.fingerprint) if server.fingerprint else None
    return replace(options, wanted=True, expect=replace(options.expect, announced=announced))


def reopen(
    open_as: Callable[[str, bool], Connection], *, asked: str | None, exact: bool, current: str
) -> Connection:
    """Open the chat again under `current`, the name we had (`open_as(name, exact)`). A join
    that insisted on its name (`--name`) insists on this one too. One that did not, whose name
    someone else has taken meanwhile, takes a variant of the name it first asked for (kim-3,
    not kim-2-2)."""
    if exact or asked is None or current == asked:
        return open_as(current, exact)
    try:
        return open_as(current, True)
    except RejectedError as e:
        if e.code != "name-taken":
            raise
    return open_as(asked, False)


def connect_discovered(
    *,
    room: str | None,
    name: str | None,
    exact: bool,
    timeout: float,
    interactive: bool,
    keepalive: float = DEFAULT_JOIN_KEEPALIVE_SECONDS,
    password: Password | None = None,
    tls: TlsOptions | None = None,
) -> tuple[Connection, Opener]:
    """`join` without an address: look for servers, then reach_server (lanchat.discovery) takes
    the only one (of `room`) or the one the user picks and tries its addresses, own subnet
    first; say on stderr which one worked. A server whose record says it needs a password gets
    it asked for before the first connection. Returns the connection and how to open it again
    (same address, resuming, same login) for reconnecting."""
    from lanchat import netinfo
    from lanchat.discovery import discover, local_networks, reach_server
    from lanchat.output.discovery import reach_report, searching

    err = stderr_console()
    login = password if password is not None else Password(None)
    with searching(err, timeout) as progress:
        servers = discover(timeout, on_progress=progress)

    options = tls if tls is not None else TlsOptions()

    def connect(server: Server, address: str, last: bool) -> Connection:
        wait = timeout if last else min(timeout, CANDIDATE_TIMEOUT)
        where = server.endpoint(address)
        if server.password and login.credentials is None:
            login.ask(where)

        def opener(credentials: Credentials | None) -> Connection:
            return Connection.open(
                address,
                server.port,
                name=name,
                exact=exact,
                timeout=wait,
                keepalive=keepalive,
                tls=announced_tls(options, server),
                credentials=credentials,
            )

        return login.open(where, opener, opener)

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
    # reconnects: TLS, with the key the first connection accepted
    again = announced_tls(options, server).again(reached.connection.server_key)

    def open_again(resume: Resume | None, current: str) -> Connection:
        def open_as(name: str, exact: bool) -> Connection:
            return Connection.open(
                address,
                server.port,
                name=name,
                exact=exact,
                timeout=timeout,
                resume=resume,
                keepalive=keepalive,
                tls=again,
                credentials=login.credentials,
            )

        return reopen(open_as, asked=name, exact=exact, current=current)

    return reached.connection, open_again
