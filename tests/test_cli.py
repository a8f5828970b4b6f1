"""The real entry point: `lanchat serve` and `lanchat join` as processes, with ncat where present;
exit codes and JSON on stdout, every error path in words."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import psutil
import pytest

from conftest import (
    ROOT,
    WAIT,
    LineClient,
    Terminal,
    free_port,
    lanchat_env,
    ncat_path,
    run_lanchat,
)
from lanchat import __version__
from lanchat.errors import ExitCode
from lanchat.relay import Relay

CHAT = re.compile(r"^\[\d\d:\d\d\] <([^>]+)> (.*)$")


def test_version() -> None:
    result = run_lanchat("--version")
    assert result.returncode == 0 and result.stdout.strip() == f"lanchat {__version__}"


def test_help_lists_commands_with_examples() -> None:
    assert all(c in run_lanchat("--help").stdout for c in ("serve", "join"))
    assert "Examples" in run_lanchat("serve", "--help").stdout
    assert "LANCHAT_NAME" in run_lanchat("join", "--help").stdout


@pytest.mark.parametrize(
    ("args", "said", "hint"),
    [
        (["join", "--nmae", "x"], "error: No such option: --nmae", "`lanchat join --help`"),
        (
            ["serve", "--no-mdns", "--port", "abc"],
            "error: Invalid value for '--port'",
            "`lanchat serve --help`",
        ),
        (["frobnicate"], "error: No such command 'frobnicate'.", "`lanchat --help` lists"),
        (["join", "a", "b"], "error: Got unexpected extra argument", "`lanchat join --help`"),
    ],
)
def test_option_parser_errors_say_error_and_hint_like_every_other(
    args: list[str], said: str, hint: str
) -> None:
    result = run_lanchat(*args)
    assert result.returncode == ExitCode.USAGE
    lines = result.stderr.splitlines()
    assert len(lines) == 2, result.stderr  # no "Usage:" block, no "Try ..." line
    assert lines[0].startswith(said)
    assert lines[1].startswith("hint: ") and hint in lines[1]


def test_install_completion_as_typer_documents(tmp_path: Path) -> None:
    env = {**lanchat_env(), "HOME": str(tmp_path)}
    result = run_lanchat("--install-completion", "bash", env=env)
    assert result.returncode == 0, result.stderr
    script = tmp_path / ".bash_completions" / "lanchat.sh"
    assert f"source '{script}'" in (tmp_path / ".bashrc").read_text()
    assert "complete -o default -F _lanchat_completion lanchat" in script.read_text()
    # What bash asks when Tab is pressed after `lanchat jo`:
    asked = {**env, "_LANCHAT_COMPLETE": "complete_bash", "COMP_WORDS": "lanchat jo"}
    answer = run_lanchat(env={**asked, "COMP_CWORD": "1"})
    assert answer.stdout.split() == ["join"]


def test_man_pages_are_the_current_help() -> None:
    done = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "manpages"), "--check"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    page = (ROOT / "docs" / "man" / "lanchat-join.1").read_text()
    assert page.startswith(".TH LANCHAT-JOIN 1")
    assert "Usage: lanchat join [OPTIONS] [address]" in page
    assert "\\-\\-name" in page  # options as troff writes a hyphen


def test_two_joins_and_ncat_chat_through_serve_in_one_order(
    server: Any, lanchat_process: Any
) -> None:
    """The 'done when' of the relay core: everyone sees everyone, named, in the same order."""
    serve, port = server
    ncat = ncat_path()
    ana = lanchat_process("join", f"127.0.0.1:{port}", "--name", "ana", stdin=subprocess.PIPE)
    ben = lanchat_process(
        "join", f"127.0.0.1:{port}", "--name", "ben", "--json", stdin=subprocess.PIPE
    )
    if ncat:
        raw = subprocess.Popen(
            [ncat, "127.0.0.1", str(port)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
        )
        raw_lines = _collect(raw)
    else:  # a plain socket is a raw client too
        raw_client = LineClient(port)
    joined: set[str] = set()
    while not {"ana", "ben"} <= joined:  # they join in either order
        joined.add(serve.wait_json(lambda e: e.get("event") == "join")["name"])
    if ncat:
        raw.stdin.write("hello from ncat\n")  # type: ignore[union-attr]
        raw.stdin.flush()  # type: ignore[union-attr]
    else:
        raw_client.send("hello from ncat\n")
    guest = serve.wait_json(lambda e: e.get("event") == "message")["from"]
    script = [(ana, "ana says hi"), (ben, "ben says hi"), (ana, "ana again"), (ben, "/me waves")]
    for proc, line in script:
        proc.proc.stdin.write(line + "\n")
        proc.proc.stdin.flush()
    # The server's own log gives the one order; every client must see exactly that order.
    order = [(guest, "hello from ncat")]
    for _ in script:
        event = serve.wait_json(lambda e: e.get("event") == "message")
        order.append((event["from"], f"* {event['text']}" if event["action"] else event["text"]))
    assert sorted(order[1:]) == sorted(
        [("ana", "ana says hi"), ("ben", "ben says hi"), ("ana", "ana again"), ("ben", "* waves")]
    )
    ana_view = []
    while len(ana_view) < 5:
        line = ana.wait_line(lambda t: CHAT.match(t) or "* ben waves" in t)
        match = CHAT.match(line)
        ana_view.append((match[1], match[2]) if match else ("ben", "* waves"))
    assert ana_view == order
    ben_view = []
    while len(ben_view) < 5:
        frame = ben.wait_json(lambda f: f["type"] in ("message", "action"))
        ben_view.append((frame["from"], frame["text"] if frame["type"] == "message" else "* waves"))
    assert ben_view == order
    raw_expected = [
        f"<{who}> {text}" if not text.startswith("* ") else f"* {who} {text[2:]}"
        for who, text in order[1:]
    ]
    for proc in (ana, ben):  # end of input: leave cleanly, exit 0
        proc.proc.stdin.close()
        assert proc.proc.wait(WAIT) == 0
    if ncat:
        raw.stdin.close()  # type: ignore[union-attr]
        raw.wait(WAIT)
        got = [re.sub(r"^\[\d\d:\d\d\] ", "", line) for line in raw_lines]
    else:
        got = [
            re.sub(r"^\[\d\d:\d\d\] ", "", raw_client.wait_line(lambda t: t.startswith("[")))
            for _ in raw_expected
        ]
        raw_client.close()
    chat = [line for line in got if line.startswith("<") or line.startswith("* ben waves")]
    assert chat == raw_expected  # named, in the same order, and not its own line back


def _collect(proc: subprocess.Popen[str]) -> list[str]:
    lines: list[str] = []

    def read() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            lines.append(line.rstrip("\n"))

    threading.Thread(target=read, daemon=True).start()
    return lines


def test_scripted_join_prints_own_lines_and_exits_zero(server: Any) -> None:
    _, port = server
    result = run_lanchat(
        "join", f"127.0.0.1:{port}", "--name", "solo", input="first\n\n/me thinks\nsecond\n"
    )
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == "* Welcome to lobby, solo."
    assert [m[2] for line in lines if (m := CHAT.match(line))] == ["first", "second"]
    assert any(line.endswith("* solo thinks") for line in lines)
    assert lines[-1] == "* Goodbye."


def test_join_with_json_prints_frames(server: Any) -> None:
    _, port = server
    result = run_lanchat("join", f"127.0.0.1:{port}", "--json", input="hi\n")
    assert result.returncode == 0
    frames = [json.loads(line) for line in result.stdout.splitlines()]
    assert [f["type"] for f in frames] == ["welcome", "who", "join", "message", "leave", "bye"]
    assert frames[3]["text"] == "hi" and frames[3]["from"] == frames[0]["name"]


def test_default_names_do_not_collide(server: Any) -> None:
    """Every PC in a classroom logs in as 'student': they all get in."""
    _, port = server
    env = {**lanchat_env(), "LOGNAME": "student", "USER": "student"}  # what getpass reads first
    first = LineClient(port)
    first.hello("student")
    result = run_lanchat("join", f"127.0.0.1:{port}", "--json", input="", env=env)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout.splitlines()[0])["name"] == "student-2"
    first.close()


def test_join_name_taken_is_rejected(server: Any) -> None:
    _, port = server
    holder = LineClient(port)
    holder.hello("alice")
    result = run_lanchat("join", f"127.0.0.1:{port}", "--name", "ALICE")
    assert result.returncode == ExitCode.REJECTED
    assert "error:" in result.stderr and "That name is taken: alice." in result.stderr
    assert "--name" in result.stderr and "Traceback" not in result.stderr
    holder.close()


def test_join_refused_names_the_cause_and_suggests_doctor() -> None:
    port = free_port()
    result = run_lanchat("join", f"127.0.0.1:{port}")
    assert result.returncode == ExitCode.UNREACHABLE
    assert f"127.0.0.1:{port} refused the connection" in result.stderr
    assert f"lanchat doctor 127.0.0.1:{port}" in result.stderr
    assert "Traceback" not in result.stderr


def test_join_to_a_port_that_hangs_up_at_once_is_unreachable() -> None:
    # (A server that answers with something else is chatted with: tests/test_line_servers.py.)
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(WAIT)
    port = listener.getsockname()[1]

    def hang_up() -> None:
        conn, _ = listener.accept()
        conn.close()

    thread = threading.Thread(target=hang_up)
    thread.start()
    result = run_lanchat("join", f"127.0.0.1:{port}", "--timeout", "0.5")
    thread.join(WAIT)
    listener.close()
    assert result.returncode == ExitCode.UNREACHABLE
    assert "closed it without a word" in result.stderr


def test_scripted_join_piped_into_head_ends_quietly_and_still_delivers(
    relay: Relay, connect: Any
) -> None:
    watcher = connect()
    join = subprocess.Popen(
        [sys.executable, "-m", "lanchat", "join", f"127.0.0.1:{relay.address[1]}"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=lanchat_env(),
        cwd=ROOT,
    )
    assert join.stdin is not None and join.stdout is not None and join.stderr is not None
    assert join.stdout.readline().startswith(b"* Welcome to")  # what `head -1` takes
    join.stdout.close()  # ... and then it is gone
    join.stdin.write(b"still delivered\n")
    join.stdin.close()
    watcher.wait_line(lambda line: line.endswith("still delivered"))
    assert join.wait(WAIT) == ExitCode.OK
    assert join.stderr.read() == b""  # no "connection was lost", no traceback
    join.stderr.close()


def test_join_shows_progress_on_a_terminal_while_a_connect_hangs() -> None:
    # A listener whose accept queue is full drops further SYNs, as a DROP rule does.
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(0)
    port = listener.getsockname()[1]
    fillers = []
    for _ in range(3):  # the kernel queues backlog + 1; then SYNs are dropped
        filler = socket.socket()
        filler.setblocking(False)
        filler.connect_ex(("127.0.0.1", port))
        fillers.append(filler)
    terminal = Terminal("join", f"127.0.0.1:{port}", "--timeout", "3")
    try:
        terminal.wait_for(f"Connecting to 127.0.0.1:{port} (up to 3 s)".encode())
    finally:
        terminal.close()
        for filler in fillers:
            filler.close()
        listener.close()
    piped = run_lanchat("join", f"127.0.0.1:{free_port()}")  # not a terminal: no spinner
    assert "Connecting to" not in piped.stderr


@pytest.mark.parametrize("address", ["127.0.0.1:99999", "host:port", "[::1", "[::1]x"])
def test_join_bad_address_is_a_usage_error(address: str) -> None:
    result = run_lanchat("join", address)
    assert result.returncode == ExitCode.USAGE
    assert "is not an address" in result.stderr and "HOST:PORT" in result.stderr


def test_serve_port_in_use_names_the_holder() -> None:
    holder = socket.create_server(("127.0.0.1", 0))
    port = holder.getsockname()[1]
    try:
        result = run_lanchat("serve", "--host", "127.0.0.1", "--port", str(port), "--no-mdns")
    finally:
        holder.close()
    assert result.returncode == ExitCode.ADDRESS_IN_USE
    assert f"Port {port} is already in use" in result.stderr
    holder_name = psutil.Process().name()  # "python3" or "pytest", however the suite started
    assert f"held by {holder_name} (pid {os.getpid()})" in result.stderr  # the holder, named
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize("host", ["203.0.113.9", "192.0.2.250"])
def test_serve_bad_host_is_a_usage_error_as_the_readme_says(host: str) -> None:
    result = run_lanchat("serve", "--host", host, "--port", "0", "--no-mdns")
    assert result.returncode == ExitCode.USAGE  # README: 2 for an unusable address
    assert f"error: Cannot listen on {host}: it is not an address of this computer" in (
        result.stderr
    )
    assert "hint: Leave out --host" in result.stderr


@pytest.mark.parametrize(
    ("host", "said"),
    [
        ("fe80::1%lo", "Cannot listen on fe80::1%lo alone: it is a link-local address, lanchat"),
        ("fe80::1", "it needs its interface (fe80::1%eth0, say)"),
    ],
)
def test_serve_on_a_link_local_address_says_why_not_invalid_argument(host: str, said: str) -> None:
    result = run_lanchat("serve", "--host", host, "--port", "0", "--no-mdns")
    assert result.returncode == ExitCode.USAGE
    assert said in result.stderr
    assert "Invalid argument" not in result.stderr
    assert "hint: Leave out --host" in result.stderr


def test_join_with_an_empty_address_is_a_usage_error_not_this_pc() -> None:
    result = run_lanchat("join", "")
    assert result.returncode == ExitCode.USAGE
    assert result.stderr.startswith("error: An empty address was given.\nhint: ")


def test_join_ipv6_with_an_unbracketed_port_asks_for_brackets() -> None:
    result = run_lanchat("join", "::1:17635")
    assert result.returncode == ExitCode.USAGE
    assert "hint: Write [::1]:17635." in result.stderr
    assert "[::1:17635]" not in result.stderr  # the old, wrong, doctor suggestion


def test_serve_banner_lists_ipv6_addresses_bracketed() -> None:
    from io import StringIO

    from rich.console import Console

    from lanchat.netinfo import LocalAddress
    from lanchat.output.serve import serve_banner
    from lanchat.serving import Listening, _off

    addresses = (
        LocalAddress("192.168.1.23", "wlan0", 4, "255.255.255.0", True, ()),
        LocalAddress("2001:db8::23", "wlan0", 6, None, False, ()),
        LocalAddress("fe80::23", "wlan0", 6, None, False, ("link-local",)),
    )
    info = Listening("", "::", 7420, "lobby", addresses, 10, (), _off())
    out = StringIO()
    serve_banner(Console(file=out, width=200, no_color=True), info)
    text = out.getvalue()
    assert "lanchat join 192.168.1.23:7420" in text
    assert "lanchat join [2001:db8::23]:7420" in text
    assert "ncat 2001:db8::23 7420" in text
    assert "fe80::23" not in text  # link-local: not an address to tell the room


@pytest.mark.parametrize(
    ("host", "bound", "typed"),
    [("", "::", "127.0.0.1"), ("0.0.0.0", "0.0.0.0", "127.0.0.1"), ("::1", "::1", "[::1]")],
)
def test_serve_banner_tells_the_operator_an_address_to_type(
    host: str, bound: str, typed: str
) -> None:
    """On every interface the bound address is "::": `join --operator [::]:7420` was shown."""
    from io import StringIO

    from rich.console import Console

    from lanchat.output.serve import serve_banner
    from lanchat.serving import Listening, _off

    token_file = "/tmp/lanchat/operator/7420.token"
    info = Listening(host, bound, 7420, "lobby", (), 10, (), _off(), operator_token=token_file)
    out = StringIO()
    serve_banner(Console(file=out, width=200, no_color=True), info)
    assert f"`lanchat join --operator {typed}:7420` on this PC" in out.getvalue()


def test_serve_banner_says_what_to_type(lanchat_process: Any) -> None:
    serve = lanchat_process("serve", "--port", "0", "--no-mdns")
    line = serve.wait_line("lanchat join", timeout=10)
    assert re.search(r"lanchat join \S+:\d+", line)
    assert re.search(r"ncat \S+ \d+", serve.wait_line("ncat "))
    serve.wait_line("Press Ctrl-C to stop")
    assert serve.terminate() == 0


def test_serve_on_loopback_warns_others_cannot_connect(lanchat_process: Any) -> None:
    serve = lanchat_process("serve", "--host", "127.0.0.1", "--port", "0", "--no-mdns")
    assert "other PCs cannot connect" in serve.wait_line("127.0.0.1 only", timeout=10)
    assert serve.terminate() == 0


@pytest.mark.parametrize("how", ["SIGTERM", "SIGINT"])
def test_serve_stops_on_signal_tells_everyone_and_exits_zero(server: Any, how: str) -> None:
    serve, port = server
    raw = LineClient(port)
    raw.send("bye soon\n")
    raw.wait_line("* Welcome")
    fancy = LineClient(port)
    fancy.hello("fancy")
    serve.wait_json(lambda e: e.get("event") == "join" and e["name"] == "fancy")
    serve.proc.send_signal(getattr(__import__("signal"), how))
    assert serve.proc.wait(WAIT) == 0  # the deadline; how fast it stops is Relay.stop's test
    assert "* Server shutting down. Goodbye." in raw.read_all()
    assert any(json.loads(line).get("reason") == "shutdown" for line in fancy.read_all())
    assert json.loads(serve.rest()[-1])["event"] == "shutdown"
    raw.close()
    fancy.close()


@pytest.mark.skipif(ncat_path() is None, reason="ncat is not installed")
def test_max_clients_refuses_ncat_with_a_message(lanchat_process: Any) -> None:
    serve = lanchat_process(
        "serve", "--host", "127.0.0.1", "--port", "0", "--json", "--max-clients", "1", "--no-mdns"
    )
    port = serve.wait_json(lambda e: e.get("event") == "listening", timeout=10)["port"]
    first = LineClient(port)
    first.hello("first")
    result = subprocess.run(
        [str(ncat_path()), "127.0.0.1", str(port)],
        input="knock knock\n",
        capture_output=True,
        text=True,
        timeout=WAIT,
    )
    assert "The server is full (1 person). Try again later." in result.stdout
    first.close()


def test_serve_json_events(server: Any) -> None:
    serve, port = server
    client = LineClient(port)
    client.send("/nick zed\nhello\n/quit\n")
    join = serve.wait_json(lambda e: e.get("event") == "join")
    assert join["address"].startswith("127.0.0.1:") and join["kind"] == "raw"
    nick = serve.wait_json(lambda e: e.get("event") == "nick")
    assert nick["new"] == "zed"
    message = serve.wait_json(lambda e: e.get("event") == "message")
    assert (message["from"], message["text"], message["action"]) == ("zed", "hello", False)
    assert serve.wait_json(lambda e: e.get("event") == "leave")["reason"] == "quit"
    client.close()


def test_scripted_join_reports_lines_it_could_not_send(lanchat_process: Any) -> None:
    relay = Relay("127.0.0.1", 0)
    relay.start()
    port = relay.address[1]
    join = lanchat_process(
        "join", f"127.0.0.1:{port}", "--name", "late", "--reconnect", "0.5", stdin=subprocess.PIPE
    )
    join.proc.stdin.write("one\n")
    join.proc.stdin.flush()
    join.wait_line("<late> one")
    relay.stop()  # the server goes away while input is still coming
    join.wait_line("Server shutting down")
    join.proc.stdin.write("two\n")
    join.proc.stdin.close()
    assert join.proc.wait(WAIT) == ExitCode.UNREACHABLE
    stderr = join.stderr()
    assert "the server shut down before we were done" in stderr
    assert "1 line(s) were not sent: 'two'" in stderr  # named, not only counted


@pytest.mark.parametrize("room", ["", "x" * 41, "bad\x1b[31m"])
def test_serve_rejects_a_bad_room_name(room: str) -> None:
    result = run_lanchat("serve", "--port", "0", "--room", room, "--no-mdns")
    assert result.returncode == ExitCode.USAGE and "room name" in result.stderr


def test_scripted_join_notices_a_dead_server_and_exits_4(server: Any, lanchat_process: Any) -> None:
    """A server that vanished without a FIN or a reset (a PC switched off; here a relay
    stopped by SIGSTOP, which neither answers nor closes): a scripted join with idle input
    waited for ever. Now it pings after half of --keepalive and gives up after the rest."""
    serve, port = server
    join = lanchat_process(
        "join", f"127.0.0.1:{port}", "--name", "idle", "--keepalive", "2", "--reconnect", "0",
        stdin=subprocess.PIPE,
    )  # fmt: skip
    join.wait_line("* Welcome")
    join.proc.stdin.write("before the server stops\n")
    join.proc.stdin.flush()
    join.wait_line("<idle> before the server stops")
    os.kill(serve.proc.pid, signal.SIGSTOP)
    try:
        assert join.proc.wait(4 * WAIT) == ExitCode.UNREACHABLE  # its input still open
    finally:
        os.kill(serve.proc.pid, signal.SIGCONT)
    stderr = join.stderr()
    assert "the connection was lost before we were done" in stderr
    assert "Traceback" not in stderr


def test_a_named_join_gets_back_in_after_the_relay_was_frozen(
    server: Any, lanchat_process: Any
) -> None:
    """A relay frozen longer than the client's keepalive (SIGSTOP here; a server PC that hung
    for a while), then back. join reconnected while its old connection stayed open, so the
    thawed relay still gave that connection the name: "That name is taken" until --reconnect
    ran out. join now hangs up the old connection before reconnecting."""
    serve, port = server
    join = lanchat_process(
        "join", f"127.0.0.1:{port}", "--name", "alice", "--keepalive", "2", "--reconnect", "60",
        stdin=subprocess.PIPE,
    )  # fmt: skip
    join.wait_line("* Welcome")
    serve.wait_json(lambda e: e.get("event") == "join" and e["name"] == "alice")
    first = {c.laddr.port for c in psutil.Process(join.proc.pid).net_connections("tcp")}
    os.kill(serve.proc.pid, signal.SIGSTOP)
    try:
        # join's keepalive gives up on the silent relay, and a new connection (the kernel
        # accepts it for the frozen relay) shows it is reconnecting.
        deadline = time.monotonic() + 4 * WAIT
        while (
            not {c.laddr.port for c in psutil.Process(join.proc.pid).net_connections("tcp")} - first
        ):
            assert time.monotonic() < deadline, "join did not start reconnecting"
            threading.Event().wait(0.05)  # polling /proc: there is no event to wait on
    finally:
        os.kill(serve.proc.pid, signal.SIGCONT)
    serve.wait_json(lambda e: e.get("event") == "join" and e["name"] == "alice", timeout=6 * WAIT)
    join.proc.stdin.write("back again\n")
    join.proc.stdin.close()
    join.wait_line("<alice> back again")
    assert join.proc.wait(WAIT) == ExitCode.OK
    assert "Traceback" not in join.stderr()


def test_scripted_join_keepalive_pings_are_not_shown(relay: Relay, lanchat_process: Any) -> None:
    join = lanchat_process(
        "join", f"127.0.0.1:{relay.address[1]}", "--json", "--name", "pinger",
        "--keepalive", "0.4", stdin=subprocess.PIPE,
    )  # fmt: skip
    join.wait_json(lambda f: f["type"] == "welcome")

    def lines_from_pinger() -> int:
        return sum(c.lines_in for c in relay.hub.fanout.clients if c.name == "pinger")

    deadline = time.monotonic() + WAIT
    while lines_from_pinger() < 3:  # the hello and two keepalive pings
        assert time.monotonic() < deadline, "no keepalive pings came"
        time.sleep(0.05)  # the relay's reader counts them on its own thread; this only looks
    join.proc.stdin.close()
    assert join.proc.wait(WAIT) == ExitCode.OK
    assert not [line for line in join.seen + join.rest() if '"pong"' in line]


def test_a_scripted_join_dropped_as_too_slow_exits_4() -> None:
    """A join whose output is not read (a stuck pipe) falls behind and is dropped: it exited
    0 as if all went well. Now it says so and exits 4, its input still open or not."""
    relay = Relay("127.0.0.1", 0, max_rate=0, max_backlog_bytes=256 * 1024)
    relay.start()
    join = subprocess.Popen(
        [sys.executable, "-m", "lanchat", "join", f"127.0.0.1:{relay.address[1]}", "-n", "stuck"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,  # and nobody reads it until it has been dropped
        stderr=subprocess.PIPE,
        env=lanchat_env(),
        cwd=ROOT,
    )
    try:
        port = relay.address[1]
        watcher = LineClient(port)
        watcher.hello("watcher")
        talker = LineClient(port)
        text = "x" * 3000
        dropped = None
        for burst in range(100):  # 30 MB at most; the relay gives up on it well before
            talker.send("".join(f"{burst:03d}-{i:02d} {text}\n" for i in range(100)))
            while dropped is None:
                try:
                    frame = watcher.wait_json(lambda f: f["type"] == "leave", timeout=0.01)
                except TimeoutError:
                    break
                dropped = frame if frame["name"] == "stuck" else None
            if dropped is not None:
                break
        if dropped is None:
            dropped = watcher.wait_json(lambda f: f["type"] == "leave" and f["name"] == "stuck")
        assert dropped["reason"] == "too-slow"
        out, err = join.communicate(timeout=4 * WAIT)  # reads its output now, closes its input
        assert join.returncode == ExitCode.UNREACHABLE
        assert "disconnected us for falling behind" in err.decode()
        assert "Traceback" not in err.decode()
        assert out.decode().splitlines()[-1].startswith("! You were disconnected")
        for client in (watcher, talker):
            client.close()
    finally:
        if join.poll() is None:
            join.kill()
            join.communicate(timeout=WAIT)
        relay.stop()
