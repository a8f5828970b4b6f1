"""The real entry point: `lanchat serve` and `lanchat join` as processes, with ncat where present;
exit codes and JSON on stdout, every error path in words."""

from __future__ import annotations

import json
import os
import re
import selectors
import socket
import subprocess
import threading
import time
from typing import Any

import psutil
import pytest

from conftest import WAIT, LineClient, lanchat_env, ncat_path, run_lanchat
from lanchat import __version__
from lanchat.errors import ExitCode
from lanchat.relay import Relay

CHAT = re.compile(r"^\[\d\d:\d\d\] <([^>]+)> (.*)$")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_version() -> None:
    result = run_lanchat("--version")
    assert result.returncode == 0 and result.stdout.strip() == f"lanchat {__version__}"


def test_help_lists_commands_with_examples() -> None:
    assert all(c in run_lanchat("--help").stdout for c in ("serve", "join"))
    assert "Examples" in run_lanchat("serve", "--help").stdout
    assert "LANCHAT_NAME" in run_lanchat("join", "--help").stdout


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


@pytest.mark.parametrize(
    ("greeting", "expected"),
    [
        (b"SSH-2.0-OpenSSH_9.2\r\n", "not a lanchat server"),
        (b"", "did not answer the lanchat handshake"),
    ],
)
def test_join_to_something_else(greeting: bytes, expected: str) -> None:
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(WAIT)
    port = listener.getsockname()[1]
    accepted: list[socket.socket] = []

    def answer() -> None:
        conn, _ = listener.accept()
        accepted.append(conn)
        conn.sendall(greeting)

    thread = threading.Thread(target=answer)
    thread.start()
    result = run_lanchat("join", f"127.0.0.1:{port}", "--timeout", "0.5")
    thread.join(WAIT)
    for conn in accepted:
        conn.close()
    listener.close()
    assert result.returncode == ExitCode.UNREACHABLE
    assert expected in result.stderr


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


def test_serve_bad_host_is_explained() -> None:
    result = run_lanchat("serve", "--host", "192.0.2.250", "--port", "0", "--no-mdns")
    assert result.returncode == ExitCode.ERROR
    assert "Cannot listen on 192.0.2.250" in result.stderr and "--host" in result.stderr


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
    started = time.monotonic()
    serve.proc.send_signal(getattr(__import__("signal"), how))
    assert serve.proc.wait(WAIT) == 0
    assert time.monotonic() - started < 2.5
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
    join = lanchat_process("join", f"127.0.0.1:{port}", "--name", "late", stdin=subprocess.PIPE)
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
    assert "the rest of the input was not sent" in stderr


@pytest.mark.parametrize("room", ["", "x" * 41, "bad\x1b[31m"])
def test_serve_rejects_a_bad_room_name(room: str) -> None:
    result = run_lanchat("serve", "--port", "0", "--room", room, "--no-mdns")
    assert result.returncode == ExitCode.USAGE and "room name" in result.stderr


def _thread_affinities(pid: int) -> list[set[int]]:
    affinities = []
    for thread in psutil.Process(pid).threads():
        try:
            affinities.append(os.sched_getaffinity(thread.id))
        except ProcessLookupError:
            pass  # a reader that ended since the listing (clients leave)
    return affinities


class BusyRoom:
    """40 raw clients, 4 of them sending a burst of 8 lines every 5 ms (~250 k deliveries/s),
    every client's input read and thrown away: a room the relay calls busy."""

    def __init__(self, port: int, clients: int = 40, senders: int = 4) -> None:
        self.socks = [socket.create_connection(("127.0.0.1", port), timeout=WAIT)]
        self.socks += [
            socket.create_connection(("127.0.0.1", port), timeout=WAIT) for _ in range(clients - 1)
        ]
        self.senders = self.socks[:senders]
        self.stop = threading.Event()
        self.threads = [threading.Thread(target=self._drain, daemon=True)]
        self.threads += [threading.Thread(target=self._send, args=(s,)) for s in self.senders]
        for t in self.threads:
            t.start()

    def _send(self, sock: socket.socket) -> None:
        burst = b"".join(b"busy line %03d\n" % i for i in range(8))
        for _ in range(10_000):  # bounded: 50 s at most; stopped long before
            try:
                sock.sendall(burst)
            except OSError:
                return
            if self.stop.wait(0.005):  # the pace of the load, not a synchronisation
                return

    def _drain(self) -> None:
        with selectors.DefaultSelector() as selector:
            for sock in self.socks:
                selector.register(sock, selectors.EVENT_READ)
            while not self.stop.is_set():
                for key, _ in selector.select(0.1):
                    try:
                        key.fileobj.recv(65536)  # type: ignore[union-attr]
                    except OSError:
                        selector.unregister(key.fileobj)

    def close(self) -> None:
        self.stop.set()
        for t in self.threads:
            t.join(WAIT)
        for sock in self.socks:
            sock.close()


needs_two_cores = pytest.mark.skipif(
    not hasattr(os, "sched_getaffinity") or len(os.sched_getaffinity(0)) < 2,
    reason="needs Linux and at least two usable CPU cores",
)


def _quiet_server(lanchat_process: Any, *options: str) -> tuple[Any, int]:
    """`lanchat serve` on 127.0.0.1 that logs only start and stop; (process, port)."""
    serve = lanchat_process(
        "serve", "--host", "127.0.0.1", "--port", "0", "--json", "--quiet", "--no-mdns", *options
    )
    return serve, int(serve.wait_json(lambda e: e.get("event") == "listening", timeout=10)["port"])


def _until(check: Any, timeout: float = WAIT) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.05)  # polling /proc, not synchronising with the relay
    return False


@needs_two_cores
def test_a_busy_room_shares_one_core_and_a_quiet_one_lets_go(lanchat_process: Any) -> None:
    allowed = os.sched_getaffinity(0)
    serve, port = _quiet_server(lanchat_process)
    pid = serve.proc.pid
    assert all(a == allowed for a in _thread_affinities(pid))  # quiet: free
    room = BusyRoom(port)
    try:
        held = _until(lambda: all(len(a) == 1 for a in _thread_affinities(pid)))
        affinities = _thread_affinities(pid)
        assert held, affinities
        (core,) = affinities[0]
        assert core in allowed and all(a == {core} for a in affinities)
        # main, accept, writer, keeper and 40 readers: 44, less one reader that may be ending
        assert len(affinities) >= 43
    finally:
        room.close()
    assert _until(lambda: all(a == allowed for a in _thread_affinities(pid)))  # quiet again
    assert serve.terminate() == 0


@needs_two_cores
def test_all_cores_never_holds_a_busy_room_to_one(lanchat_process: Any) -> None:
    allowed = os.sched_getaffinity(0)
    serve, port = _quiet_server(lanchat_process, "--all-cores")
    room = BusyRoom(port)
    try:  # the keeper would have held it within ~1 s; watch three times that long
        held = _until(lambda: any(a != allowed for a in _thread_affinities(serve.proc.pid)), 3)
    finally:
        room.close()
    assert not held
    assert serve.terminate() == 0
