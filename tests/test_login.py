"""Logging in, end to end: real `lanchat serve --no-mdns` processes with a room password, real
`lanchat join` processes, raw line clients, WebSocket clients, and a recording forwarder
between a client and the relay that shows what crosses the wire. The conversation itself,
without sockets, is tests/test_auth.py; SCRAM, tests/test_scram.py."""

from __future__ import annotations

import base64
import json
import os
import select
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from websockets.frames import Frame, Opcode
from websockets.sync.client import connect as ws_connect

from conftest import (
    ROOT,
    WAIT,
    LanchatProcess,
    LineClient,
    Terminal,
    free_port,
    lanchat_env,
    run_lanchat,
)
from lanchat.auth.login import MAX_LOGIN_LINES
from lanchat.errors import ExitCode
from lanchat.protocol import LOGIN_ROOM
from lanchat.protocol.scram import ScramClient

ROOM_PW = "correct horse ünd battery"
OPERATOR_PW = "the teacher's own"
WRONG_PW = "nope"
EXIT_LOGIN_FAILED = ExitCode.LOGIN_FAILED


@pytest.fixture
def secrets_dir(tmp_path: Path) -> Path:
    (tmp_path / "room.pw").write_text(ROOM_PW + "\n", encoding="utf-8")
    (tmp_path / "operator.pw").write_text(OPERATOR_PW + "\n", encoding="utf-8")
    return tmp_path


def serve(lanchat_process: Any, *extra: str) -> tuple[LanchatProcess, int]:
    process = lanchat_process(
        "serve", "--host", "127.0.0.1", "--port", "0", "--json", "--no-mdns", *extra
    )
    listening = process.wait_json(lambda e: e.get("event") == "listening", timeout=10)
    return process, int(listening["port"])


@pytest.fixture
def password_server(lanchat_process: Any, secrets_dir: Path) -> tuple[LanchatProcess, int]:
    """A relay whose room needs ROOM_PW; cleartext logins allowed (raw clients can log in)."""
    return serve(
        lanchat_process,
        "--password-file",
        str(secrets_dir / "room.pw"),
        "--operator-password-file",
        str(secrets_dir / "operator.pw"),
        "--allow-plain-login",
    )


def join_env(**extra: str) -> dict[str, str]:
    env = lanchat_env()
    env.pop("LANCHAT_PASSWORD", None)
    env.pop("LANCHAT_OPERATOR_PASSWORD", None)
    return {**env, **extra}


def raw_member(port: int, password: str = ROOM_PW) -> LineClient:
    """A raw client that logged in and was welcomed."""
    client = LineClient(port)
    client.wait_line("This room needs a password")
    client.send(f"/login {password}\n")
    client.wait_line("* Password accepted")
    client.wait_line("* Welcome to")
    client.wait_line(" here:")  # the greeting's who-list
    return client


def refusals(process: LanchatProcess, reason: str, count: int) -> None:
    """Wait until the serve log has counted `count` refusals for `reason` (its lines add up)."""
    seen = 0
    while seen < count:
        event = process.wait_json(lambda e: e.get("event") == "refused" and e["reason"] == reason)
        seen += event["count"]
    assert seen == count


class Forwarder:
    """A listener on 127.0.0.1 in front of the relay at `target`: each connection accepted is
    joined to one of its own to the relay, and every chunk either side sends goes through
    `_forward` (within 30 s); close() stops it and its pumps."""

    def __init__(self, target: int) -> None:
        self.target = target
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = int(self.listener.getsockname()[1])
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._accept, daemon=True)]
        self._threads[0].start()

    def _accept(self) -> None:
        deadline = time.monotonic() + 30
        while not self._stop.is_set() and time.monotonic() < deadline:
            if select.select([self.listener], [], [], 0.05)[0]:
                self._connected(self.listener.accept()[0])

    def _connected(self, client: socket.socket) -> None:
        server = socket.create_connection(("127.0.0.1", self.target), timeout=WAIT)
        self._start(self._pump, client, server)

    def _pump(self, client: socket.socket, server: socket.socket) -> None:
        deadline = time.monotonic() + 30
        with client, server:
            while not self._stop.is_set() and time.monotonic() < deadline:
                for ready in select.select([client, server], [], [], 0.05)[0]:
                    data = ready.recv(65536)
                    if not data:
                        return
                    self._forward(data, client, server, from_client=ready is client)

    def _forward(
        self, data: bytes, client: socket.socket, server: socket.socket, *, from_client: bool
    ) -> None:
        (server if from_client else client).sendall(data)

    def _start(self, target: Any, *args: Any) -> None:
        pump = threading.Thread(target=target, args=args, daemon=True)
        self._threads.append(pump)
        pump.start()

    def close(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(WAIT)
        self.listener.close()


class Recorder(Forwarder):
    """A TCP forwarder between clients and the relay that keeps every byte the clients send
    (what someone on the network could record)."""

    def __init__(self, target: int) -> None:
        self.sent = bytearray()
        super().__init__(target)

    def _forward(
        self, data: bytes, client: socket.socket, server: socket.socket, *, from_client: bool
    ) -> None:
        if from_client:
            self.sent += data
        super()._forward(data, client, server, from_client=from_client)


# --- lanchat clients ------------------------------------------------------------------------


def test_the_right_password_joins_and_a_wrong_one_exits_with_its_code(
    password_server: tuple[LanchatProcess, int],
) -> None:
    process, port = password_server
    where = f"127.0.0.1:{port}"
    ok = run_lanchat(
        "join", where, "--name", "ana", input="hi all\n", env=join_env(LANCHAT_PASSWORD=ROOM_PW)
    )
    assert ok.returncode == 0, ok.stderr
    assert "* Welcome to lobby, ana." in ok.stdout
    process.wait_json(lambda e: e.get("event") == "message" and e["text"] == "hi all")
    wrong = run_lanchat("join", where, input="hi\n", env=join_env(LANCHAT_PASSWORD=WRONG_PW))
    assert wrong.returncode == EXIT_LOGIN_FAILED
    assert "did not log us in: Wrong password." in wrong.stderr
    refusals(process, "bad-password", 1)


def test_without_a_password_and_no_terminal_join_says_what_to_set(
    password_server: tuple[LanchatProcess, int],
) -> None:
    _, port = password_server
    done = subprocess.run(  # a session of its own: no terminal to ask at
        [sys.executable, "-m", "lanchat", "join", f"127.0.0.1:{port}"],
        input="hi\n",
        capture_output=True,
        text=True,
        timeout=15,
        env=join_env(),
        cwd=ROOT,
        start_new_session=True,
    )
    assert done.returncode == EXIT_LOGIN_FAILED
    assert "needs a password, and there is no terminal to ask for it" in done.stderr
    assert "LANCHAT_PASSWORD" in done.stderr


def test_nothing_secret_crosses_the_wire_and_a_recorded_login_does_not_replay(
    password_server: tuple[LanchatProcess, int],
) -> None:
    _, port = password_server
    recorder = Recorder(port)
    try:
        done = run_lanchat(
            "join",
            f"127.0.0.1:{recorder.port}",
            "--name",
            "ana",
            input="hello\n",
            env=join_env(LANCHAT_PASSWORD=ROOM_PW),
        )
        assert done.returncode == 0, done.stderr
    finally:
        recorder.close()
    sent = bytes(recorder.sent)
    assert b'"type":"login"' in sent and b"n=room," in sent  # the login was recorded...
    secret = ROOM_PW.encode()
    for form in (
        secret,
        base64.b64encode(secret),
        ROOM_PW.encode("utf-16-le"),
        json.dumps(ROOM_PW).encode(),
    ):
        assert form not in sent  # ...and the password is in it in no form
    logins = [json.loads(line) for line in sent.splitlines() if b'"type":"login"' in line]
    first, final = logins
    assert "p=" in final["data"]
    # Replayed on a new connection: the relay's nonce is new, so the proof is worthless.
    replay = LineClient(port)
    replay.send_json({"type": "hello", "version": 1, "name": "mallory"})
    assert replay.wait_json(lambda f: True)["type"] == "login-needed"
    replay.send_json(first)
    assert replay.wait_json(lambda f: True)["type"] == "login-challenge"
    replay.send_json(final)
    answer = replay.wait_json(lambda f: True)
    assert answer["type"] == "error" and answer["code"] in ("bad-login", "wrong-password")
    replay.send_json({"type": "who"})
    assert replay.wait_json(lambda f: True)["code"] == "login-needed"  # still not in
    replay.close()


# --- not a member before the login ----------------------------------------------------------


def test_before_logging_in_a_guest_is_no_member(
    password_server: tuple[LanchatProcess, int],
) -> None:
    _, port = password_server
    ann, ben = raw_member(port), raw_member(port)
    guest = LineClient(port)
    guest.wait_line("This room needs a password")
    guest.send("can anyone hear me?\n")
    guest.wait_line("! Log in first")
    ann.send("/who\n")
    assert ann.wait_line("here:") == "* 2 here: guest-1, guest-2."  # not the guest
    status = json.loads(run_lanchat("status", "--port", str(port), "--json").stdout)
    assert status["server"]["clients"] == 2  # the guest is not counted, and not named:
    assert sorted(str(c["name"]) for c in status["connections"]) == ["None", "guest-1", "guest-2"]
    ben.send("the secret plan\n")
    ann.wait_line("the secret plan")
    guest.send("/who\n")
    guest.wait_line("! Log in first")
    before = list(guest.lines)
    guest.send(f"/login {ROOM_PW}\n")
    guest.wait_line("* Password accepted")
    guest.wait_line("* Welcome to")  # a member now (the room greets it)
    assert all(not line.startswith("[") for line in before)  # no chat before the login
    assert all("joined" not in line for line in before)
    ann.send("/who\n")
    assert ann.wait_line("here:").startswith("* 3 here:")
    joined = [line for line in ann.lines if "joined" in line]
    assert joined == [f"* guest-{n} joined ({n} here)" for n in (1, 2, 3)]  # the guest: last
    for client in (ann, ben, guest):
        client.close()


# --- raw clients ----------------------------------------------------------------------------


def test_a_raw_login_on_plain_tcp_is_not_checked_and_says_how_to_connect(
    lanchat_process: Any, secrets_dir: Path
) -> None:
    process, port = serve(lanchat_process, "--password-file", str(secrets_dir / "room.pw"))
    raw = LineClient(port)
    first = raw.wait_line("This room needs a password")
    assert first.startswith("! This room needs a password, and this connection is not encrypted")
    assert f"`lanchat join 127.0.0.1:{port}`" in first
    raw.send(f"/login {ROOM_PW}\n")
    lines = raw.read_all()
    assert lines[0].startswith("! The password was not checked")
    assert not any("Welcome" in line for line in lines)  # and the connection closed
    refusals(process, "plain-login", 1)
    raw.close()


def test_wrong_passwords_pause_then_lock_the_address_but_not_the_token(
    password_server: tuple[LanchatProcess, int],
) -> None:
    process, port = password_server
    guesses = [LineClient(port) for _ in range(5)]
    for guess in guesses:
        guess.wait_line("This room needs a password")
    started = time.monotonic()
    for i, guess in enumerate(guesses):  # five at once: each waits on its own thread
        guess.send(f"/login guess-{i}\n")
    answers = [guess.wait_line("!") for guess in guesses]
    assert time.monotonic() - started >= 0.9  # about a second's pause; a lower bound only
    assert answers.count("! Wrong password. Try again: /login PASSWORD") == 4
    (last,) = (answer for answer in answers if "Wrong password" not in answer)
    assert last == "! Too many wrong passwords from 127.0.0.1; try again in 10 minutes."
    refusals(process, "bad-password", 5)
    locked = LineClient(port)  # the right password is refused too, at once
    assert locked.read_all() == [
        "! Too many wrong passwords from 127.0.0.1; try again in 10 minutes."
    ]
    refusals(process, "login-locked", 1)
    # The person at the server still gets in (the token's logins are never locked out).
    op = run_lanchat(
        "join",
        "--operator",
        f"127.0.0.1:{port}",
        "--name",
        "teacher",
        input="still here\n",
        env=join_env(),
    )
    assert op.returncode == 0, op.stderr
    assert "* teacher is now an operator" in op.stdout
    for client in (*guesses, locked):
        client.close()


def test_wrong_passwords_sent_at_once_are_still_only_five_guesses(
    password_server: tuple[LanchatProcess, int],
) -> None:
    """Cleartext logins arriving together each passed the lock check before any of them was
    counted (a PBKDF2 takes a while): a dozen connections from one address got a dozen
    guesses (and the loopback of a reverse proxy has no connection limit)."""
    process, port = password_server
    guesses = [LineClient(port) for _ in range(12)]
    for guess in guesses:
        guess.wait_line("This room needs a password")
    for i, guess in enumerate(guesses):
        guess.send(f"/login guess-{i}\n")
    for guess in guesses:
        guess.wait_line("!")
    counted = {"bad-password": 0, "login-locked": 0}
    while sum(counted.values()) < len(guesses):
        event = process.wait_json(lambda e: e.get("event") == "refused")
        counted[event["reason"]] += event["count"]
    assert counted == {"bad-password": 5, "login-locked": 7}  # checked: five; refused: the rest
    for guess in guesses:
        guess.close()


def scram_challenged(port: int, password: str) -> tuple[LineClient, ScramClient, str]:
    """A lanchat client that said hello and its SCRAM first message, and got the challenge."""
    client = LineClient(port)
    client.send_json({"type": "hello", "version": 1})
    assert client.wait_json(lambda f: True)["type"] == "login-needed"
    scram = ScramClient(LOGIN_ROOM, password)
    client.send_json({"type": "login", "mechanism": scram.mechanism, "data": scram.first()})
    challenge = client.wait_json(lambda f: True)
    assert challenge["type"] == "login-challenge", challenge
    return client, scram, challenge["data"]


def test_a_scram_login_begun_before_the_lock_is_refused_once_the_address_is_locked(
    password_server: tuple[LanchatProcess, int],
) -> None:
    """Challenges taken before the lock used to be answered after it: every proof was still
    checked, so an address got a guess per open connection, and the right password logged in
    while the address was locked (the lock an oracle)."""
    process, port = password_server
    guesses = [scram_challenged(port, f"guess-{i}") for i in range(5)]
    right, scram, challenge = scram_challenged(port, ROOM_PW)
    for guess, guess_scram, guess_challenge in guesses:  # five at once, then the lock
        guess.send_json({"type": "login", "data": guess_scram.final(guess_challenge)})
    codes = [guess.wait_json(lambda f: True)["code"] for guess, _, _ in guesses]
    assert sorted(codes) == ["login-locked", *["wrong-password"] * 4]
    refusals(process, "bad-password", 5)
    right.send_json({"type": "login", "data": scram.final(challenge)})
    answer = right.wait_json(lambda f: True)
    assert answer["type"] == "error" and answer["code"] == "login-locked", answer
    assert right.read_all()[-1].startswith('{"type":"bye"')  # hung up, not let in
    refusals(process, "login-locked", 1)
    for client in (*(guess for guess, _, _ in guesses), right):
        client.close()


def test_login_lines_never_reach_the_room_or_the_log(
    lanchat_process: Any, secrets_dir: Path
) -> None:
    """A room without a password: a raw member types /login lines (wrong, and on plain TCP
    where it is not checked); nobody sees them, the log never has them."""
    process, port = serve(
        lanchat_process, "--operator-password-file", str(secrets_dir / "operator.pw")
    )
    listener = LineClient(port)
    listener.hello("lisa")
    raw = LineClient(port)
    raw.wait_line("* Welcome to")
    for line in (
        "/login wrong-one",
        "  /LOGIN wrong-two",
        "//login wrong-three",
        f"/login {OPERATOR_PW}",
    ):
        raw.send(line + "\n")
        raw.wait_line("!")
    raw.send("a marker\n")
    listener.wait_json(lambda f: f.get("text") == "a marker")
    process.wait_json(lambda e: e.get("text") == "a marker")
    process.terminate()
    everything = "\n".join([*listener.lines, *process.seen, *process.rest(), process.stderr()])
    for secret in ("wrong-one", "wrong-two", "wrong-three", OPERATOR_PW, "login"):
        assert secret not in everything
    assert "not checked" in "\n".join(raw.lines)  # plain TCP: the operator password was refused
    listener.close()
    raw.close()


# --- operators ------------------------------------------------------------------------------


def test_operators_by_token_file_and_by_operator_password(
    lanchat_process: Any, secrets_dir: Path, tmp_path: Path
) -> None:
    _, port = serve(
        lanchat_process,
        "--operator-password-file",
        str(secrets_dir / "operator.pw"),
        "--allow-plain-login",
    )
    watcher = LineClient(port)
    watcher.hello("watcher")
    token = run_lanchat(
        "join",
        "--operator",
        f"127.0.0.1:{port}",
        "--name",
        "teach",
        input="from the console\n",
        env=join_env(),
    )
    assert token.returncode == 0, token.stderr
    watcher.wait_json(lambda f: f.get("type") == "moderation" and f.get("name") == "teach")
    # Elsewhere (another user: no token file), the operator password.
    elsewhere = join_env(
        LANCHAT_CONFIG_DIR=str(tmp_path / "other"), LANCHAT_OPERATOR_PASSWORD=OPERATOR_PW
    )
    by_password = run_lanchat(
        "join", "--operator", f"127.0.0.1:{port}", "--name", "helper", input="hi\n", env=elsewhere
    )
    assert by_password.returncode == 0, by_password.stderr
    watcher.wait_json(lambda f: f.get("type") == "moderation" and f.get("name") == "helper")
    wrong = {**elsewhere, "LANCHAT_OPERATOR_PASSWORD": "nope"}
    refused = run_lanchat("join", "--operator", f"127.0.0.1:{port}", input="", env=wrong)
    assert refused.returncode == EXIT_LOGIN_FAILED
    # A raw member's /login with the operator password (allowed in clear here).
    raw = LineClient(port)
    guest = raw.wait_line("* Welcome to").removeprefix("* Welcome to lobby, ").rstrip(".")
    raw.send("here\n")
    raw.send(f"/login {OPERATOR_PW}\n")
    raw.wait_line("* Password accepted: you are an operator.")
    watcher.wait_json(
        lambda f: f.get("type") == "moderation" and f.get("name", "").startswith("guest-")
    )
    # The role shows in `lanchat status`, for one that stays (the token, a session kept open).
    staying = lanchat_process(
        "join", "--operator", f"127.0.0.1:{port}", "--name", "chief", stdin=subprocess.PIPE
    )
    staying.wait_line("* chief is now an operator")
    status = run_lanchat("status", "--port", str(port), "--json")
    operators = json.loads(status.stdout)["moderation"]["operators"]
    assert operators == [guest, "chief"]
    for client in (watcher, raw):
        client.close()


def test_the_token_file_is_there_while_the_relay_runs(
    lanchat_process: Any,
) -> None:
    process, port = serve(lanchat_process)
    listening = json.loads(process.seen[-1])
    path = Path(listening["operator_token"])
    assert path == Path(os.environ["LANCHAT_CONFIG_DIR"]) / "operator" / f"{port}.token"
    assert oct(path.stat().st_mode & 0o777) == "0o600" and len(path.read_text().strip()) >= 40
    process.terminate()
    assert not path.exists()


# --- browsers -------------------------------------------------------------------------------


def ws_frames(ws: Any, count: int) -> list[dict[str, Any]]:
    return [json.loads(ws.recv(WAIT)) for _ in range(count)]


def test_a_browser_logs_in_with_its_password(
    password_server: tuple[LanchatProcess, int],
) -> None:
    _, port = password_server
    with ws_connect(f"ws://127.0.0.1:{port}/ws", open_timeout=WAIT) as ws:
        ws.send(json.dumps({"type": "hello", "version": 1, "name": "webby"}))
        (needed,) = ws_frames(ws, 1)
        assert needed["type"] == "login-needed" and needed["password"] is True
        ws.send(json.dumps({"type": "login", "password": "nope"}))
        (wrong,) = ws_frames(ws, 1)
        assert wrong["code"] == "wrong-password"
        ws.send(json.dumps({"type": "login", "password": ROOM_PW}))
        ok, welcome = ws_frames(ws, 2)
        assert ok["type"] == "login-ok" and welcome["type"] == "welcome"


def test_a_browser_on_plain_http_gets_no_password_field(
    lanchat_process: Any, secrets_dir: Path
) -> None:
    process, port = serve(lanchat_process, "--password-file", str(secrets_dir / "room.pw"))
    with ws_connect(f"ws://127.0.0.1:{port}/ws", open_timeout=WAIT) as ws:
        ws.send(json.dumps({"type": "hello", "version": 1, "name": "webby"}))
        (needed,) = ws_frames(ws, 1)
        assert needed["password"] is False
        assert f"`lanchat join 127.0.0.1:{port}`" in needed["message"]
        ws.send(json.dumps({"type": "login", "password": ROOM_PW}))
        problem, bye = ws_frames(ws, 2)
        assert problem["code"] == "plain-login" and bye["reason"] == "refused"
    refusals(process, "plain-login", 1)


def test_a_browser_that_pings_but_never_reads_before_its_login_is_let_go(
    lanchat_process: Any, secrets_dir: Path
) -> None:
    """The pongs owed before a login went out with a sendall without a deadline: a page that
    pinged and never read held its reader thread (and its connection) for as long as the kernel
    kept the socket, past the login's deadline. (--keepalive 3600: the kernel does not end it.)"""
    _, port = serve(
        lanchat_process, "--password-file", str(secrets_dir / "room.pw"), "--keepalive", "3600"
    )
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # full after a few pongs
    sock.settimeout(WAIT)
    sock.connect(("127.0.0.1", port))
    key = base64.b64encode(os.urandom(16)).decode()
    sock.sendall(
        f"GET /ws HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\n"
        f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
        f"Sec-WebSocket-Version: 13\r\nOrigin: http://127.0.0.1:{port}\r\n\r\n".encode()
    )
    head = b""
    while b"\r\n\r\n" not in head and len(head) < 4096:
        head += sock.recv(4096) or b"\r\n\r\n"
    assert head.startswith(b"HTTP/1.1 101"), head
    hello = json.dumps({"type": "hello", "version": 1}).encode()
    sock.sendall(Frame(Opcode.TEXT, hello).serialize(mask=True))
    ping = Frame(Opcode.PING, b"p" * 125).serialize(mask=True)
    sock.setblocking(False)
    deadline = time.monotonic() + 4 * WAIT
    for _ in range(1_000_000):  # until the relay stops reading: its pongs fill both buffers
        try:
            sock.send(ping)
        except BlockingIOError:
            if not select.select([], [sock], [], 1.0)[1] or time.monotonic() > deadline:
                break
    # Let go, the relay resets the connection (our pings unread): only then is there room to
    # write (an error to report). Held, the socket stays full.
    assert select.select([], [sock], [], 4 * WAIT)[1], "the relay still holds the connection"
    with pytest.raises(ConnectionError):
        sock.send(ping)
    sock.close()


# --- the interactive join: asked once, reconnects without asking ----------------------------


@pytest.mark.skipif(sys.platform == "win32", reason="needs a pseudo-terminal")
def test_join_asks_once_and_logs_in_again_on_reconnect(
    lanchat_process: Any, secrets_dir: Path
) -> None:
    port = free_port()
    args = (
        "serve",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--json",
        "--no-mdns",
        "--password-file",
        str(secrets_dir / "room.pw"),
    )
    first = lanchat_process(*args)
    first.wait_json(lambda e: e.get("event") == "listening", timeout=10)
    terminal = Terminal("join", f"127.0.0.1:{port}", "--name", "ana")
    try:
        terminal.wait_for(b"Password for 127.0.0.1:")
        terminal.type(ROOM_PW.encode() + b"\r")
        terminal.wait_for(b"Welcome to lobby, ana")
        assert ROOM_PW.encode() not in terminal.screen  # not echoed
        first.terminate()
        terminal.wait_for(b"Reconnecting")
        again = lanchat_process(*args)
        again.wait_json(lambda e: e.get("event") == "listening", timeout=10)
        terminal.wait_for(b"Reconnected to", timeout=3 * WAIT)
        assert terminal.screen.count(b"Password for") == 1  # asked once
    finally:
        terminal.close()


# --- serve's options ------------------------------------------------------------------------


def test_serve_refuses_passwords_it_cannot_use(tmp_path: Path, secrets_dir: Path) -> None:
    missing = run_lanchat(
        "serve", "--no-mdns", "--port", "0", "--password-file", str(tmp_path / "absent")
    )
    assert missing.returncode == 2 and "Cannot read the password file" in missing.stderr
    same = run_lanchat(
        "serve",
        "--no-mdns",
        "--port",
        "0",
        "--password-file",
        str(secrets_dir / "room.pw"),
        env=join_env(LANCHAT_OPERATOR_PASSWORD=ROOM_PW),
    )
    assert same.returncode == 2 and "everyone could moderate" in same.stderr


def test_serve_takes_the_password_from_the_environment_and_says_so(
    lanchat_process: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LANCHAT_PASSWORD", ROOM_PW)
    process = lanchat_process("serve", "--host", "127.0.0.1", "--port", "0", "--no-mdns")
    process.wait_line("Password: required")
    process.wait_line("can try guesses at it offline")


def test_lines_without_a_login_are_answered_then_hung_up_on(
    password_server: tuple[LanchatProcess, int],
) -> None:
    process, port = password_server
    chatty = LineClient(port)
    chatty.wait_line("This room needs a password")
    chatty.send("".join(f"line {i}\n" for i in range(MAX_LOGIN_LINES + 5)))
    lines = chatty.read_all()  # the relay hangs up
    assert lines.count(
        "! Log in first: type /login PASSWORD. Nothing reaches the room before."
    ) == (MAX_LOGIN_LINES)
    assert lines[-1] == f"! {MAX_LOGIN_LINES} lines and no login; goodbye."
    refusals(process, "no-login", 1)
    chatty.close()


def test_a_reset_during_the_login_is_a_dropped_handshake_that_reconnect_retries() -> None:
    """A relay that stops or restarts while a client reconnects can reset the connection
    between two steps of the handshake. The client's next send then failed with a bare
    ConnectionResetError, which reconnect() did not retry: join's receive thread died with a
    traceback and never reconnected. Here a server asks for a login, then resets."""
    from lanchat.client import Connection, Credentials, HandshakeFailed, reconnect
    from lanchat.protocol.events import LoginNeeded, encode_json

    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(WAIT)
    port = int(listener.getsockname()[1])

    def ask_then_reset(times: int) -> None:
        for _ in range(times):
            conn, _ = listener.accept()
            conn.settimeout(WAIT)
            hello = b""
            while not hello.endswith(b"\n"):
                hello += conn.recv(4096) or b"\n"
            conn.sendall(encode_json(LoginNeeded(0, 0.0, ("SCRAM-SHA-256",), False, "log in")))
            conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\1\0\0\0\0\0\0\0")  # RST
            conn.close()

    server = threading.Thread(target=ask_then_reset, args=(2,))
    server.start()
    credentials = Credentials(LOGIN_ROOM, ROOM_PW)
    try:
        with pytest.raises(HandshakeFailed) as failed:
            Connection.open("127.0.0.1", port, name="kim", credentials=credentials, timeout=WAIT)
        assert failed.value.kind == "dropped"
        stop, waits = threading.Event(), []

        def waiting(delay: float, error: Exception) -> None:
            waits.append(error)
            stop.set()  # one retry is enough to show it is retried

        opened = reconnect(
            lambda: Connection.open(
                "127.0.0.1", port, name="kim", credentials=credentials, timeout=WAIT
            ),
            stop=stop,
            on_wait=waiting,
        )
        assert opened is None and len(waits) == 1 and isinstance(waits[0], HandshakeFailed)
    finally:
        server.join(WAIT)
        listener.close()
