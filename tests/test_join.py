"""lanchat/join.py's front end for `join` without an address: the question which server to
join, asked on a stream (the terminal in real use). The interactive chat itself is
tests/test_join_interactive.py; which server and address to use, tests/test_discovery.py."""

from __future__ import annotations

import io

from lanchat.discovery import Server
from lanchat.join import MAX_PICK_TRIES, ask_server
from lanchat.output import stdout_console


def srv(room: str, host: str, address: str) -> Server:
    return Server(f"{room} on {host}", room, host, (address,), 7420, 1, "", False)


def test_ask_server_asks_until_a_number_on_the_list() -> None:
    servers = [srv("lobby", "h1", "10.0.0.5"), srv("lobby", "h3", "10.0.0.6")]
    out = io.StringIO()
    console = stdout_console(out)
    assert ask_server(servers, console, io.StringIO("x\n9\n2\n")) is servers[1]
    shown = out.getvalue()
    assert "Several lanchat servers answered:" in shown
    assert "  2. lobby on h3   (10.0.0.6:7420)" in shown
    assert shown.count("Join which one? [1-2]: ") == 3
    assert shown.count("Type a number from 1 to 2.") == 2
    assert ask_server(servers, console, io.StringIO("")) is None  # end of input
    many_wrong = io.StringIO("0\n" * (MAX_PICK_TRIES + 5))
    assert ask_server(servers, console, many_wrong) is None  # gives up, bounded
    assert many_wrong.read() == "0\n" * 5  # after exactly MAX_PICK_TRIES answers
