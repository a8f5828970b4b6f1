"""The plain line client `lanchat join` becomes when the server is not a lanchat relay (the
classroom's `ncat -l`, `ncat --chat`, any program that reads and writes lines): lines go out as
typed, lines received are printed with control characters removed. Nothing is sent before the
server is known not to be a relay (client.Connection.open(listen_first=True))."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterable, Iterator
from typing import TextIO

from lanchat.client import MAX_SERVER_LINE, LineServer
from lanchat.errors import ExitCode, UnreachableError
from lanchat.netinfo import host_port
from lanchat.output import notice, print_json, quiet_output, stderr_console, stdout_console
from lanchat.protocol import LineDecoder, LineTooLong, clean_text, decode_line

LINE_LINGER_SECONDS = 2.0  # after our input ends: how long a line server may take to hang up


def run_line_client(
    server: LineServer, lines: Iterable[str] | None, *, as_json: bool, out: TextIO
) -> int:
    """Chat with a server that is not a lanchat relay (ncat -l, ncat --chat): every line goes
    out as typed, every line received is printed (control characters removed). `lines` None:
    read them at a terminal prompt."""
    sock, where = server.sock, host_port(server.host, server.port)
    stderr_console().print(
        notice(
            f"* {where} is not a lanchat relay: chatting as a plain line client (lines go out "
            "as typed; no names, /commands or reconnecting; lanchat's own port is 7420)."
            + (
                " It greeted like a relay, so it received lanchat's hello (one line of JSON)."
                if server.hello_sent
                else ""
            ),
            "dim",
        )
    )
    console = stdout_console(out)
    ended = threading.Event()

    def show(raw: bytes | LineTooLong) -> None:
        text = clean_text(decode_line(raw)) if isinstance(raw, bytes) else "! (a line too long)"
        try:
            if as_json:
                print_json({"type": "line", "text": text}, out)
            else:
                console.print(notice(text))
        except (BrokenPipeError, SystemExit):  # rich's word for a broken pipe is SystemExit
            quiet_output(out)

    def receive() -> None:
        decoder = LineDecoder(MAX_SERVER_LINE)
        try:
            for line in decoder.feed(server.first):
                show(line)
            while True:
                try:
                    data = sock.recv(65536)
                except OSError:
                    data = b""
                if not data:
                    for line in decoder.finish():
                        show(line)
                    return
                for line in decoder.feed(data):
                    show(line)
        finally:
            ended.set()

    # Blocking before the receiver starts: the greeting wait's timeout (client._listen_first)
    # must not reach its recv, or a server quiet for a second would look like a hang-up.
    sock.settimeout(None)
    receiver = threading.Thread(target=receive, name="lanchat-receive", daemon=True)
    receiver.start()
    input_left = False
    try:
        for line in lines if lines is not None else _prompted_lines(ended):
            if ended.is_set():
                input_left = True
                break
            try:
                sock.sendall(line.rstrip("\r\n").encode("utf-8", "surrogateescape") + b"\n")
            except OSError:
                input_left = True
                break
        try:
            sock.shutdown(socket.SHUT_WR)  # our end of the chat; the server may still talk
        except OSError:
            pass
        ended.wait(LINE_LINGER_SECONDS)
    finally:
        try:
            sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        sock.close()
        receiver.join(1.0)
    if input_left:
        raise UnreachableError(
            f"{where} closed the connection before the rest of the input was sent.",
            "Send it again when the server is back.",
        )
    return ExitCode.OK


def _prompted_lines(ended: threading.Event) -> Iterator[str]:
    """Lines typed at a prompt that what arrives does not garble; ends at Ctrl-D or when the
    server hangs up."""
    from prompt_toolkit import PromptSession
    from prompt_toolkit.patch_stdout import patch_stdout

    session: PromptSession[str] = PromptSession()
    with patch_stdout(raw=True):
        while not ended.is_set():
            try:
                yield session.prompt("> ")
            except (EOFError, KeyboardInterrupt):
                return
