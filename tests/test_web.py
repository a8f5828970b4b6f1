"""Browsers without a browser: a real relay, WebSocket clients that are not ours (websockets'
sync client; wsproto for one that stops reading), and raw sockets that send HTTP junk."""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import ExitStack
from typing import Any

import pytest
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.sync.client import ClientConnection
from websockets.sync.client import connect as ws_connect
from wsproto import ConnectionType, WSConnection
from wsproto.events import AcceptConnection, Request, TextMessage

from conftest import WAIT, LineClient, Ncat
from lanchat.protocol import MAX_LINE_BYTES
from lanchat.relay import Relay
from lanchat.web.http import MAX_HEAD_BYTES


def ws_url(relay: Relay) -> str:
    return f"ws://127.0.0.1:{relay.address[1]}/ws"


def hello(name: str, **extra: Any) -> str:
    return json.dumps({"type": "hello", "version": 1, "name": name, "exact": True, **extra})


def wait_frame(ws: ClientConnection, predicate: Any, timeout: float = WAIT) -> dict[str, Any]:
    """Frames until one satisfies `predicate` (each message is one JSON frame)."""
    deadline = time.monotonic() + timeout
    while True:
        frame: dict[str, Any] = json.loads(ws.recv(max(0.0, deadline - time.monotonic())))
        if predicate(frame):
            return frame


@pytest.fixture
def browser(relay: Relay) -> Iterator[Any]:
    """Open WebSocket clients that said hello; all closed at teardown."""
    with ExitStack() as opened:

        def make(name: str, **extra: Any) -> ClientConnection:
            ws = opened.enter_context(ws_connect(ws_url(relay), open_timeout=WAIT, **extra))
            ws.send(hello(name))
            wait_frame(ws, lambda f: f["type"] == "welcome")
            return ws

        yield make


@pytest.mark.ncat
def test_a_browser_chats_in_one_order_with_ncat_and_a_lanchat_client(
    relay: Relay, connect: Any, browser: Any
) -> None:
    web = browser("webby")
    lanchat = connect()
    lanchat.hello("lanny")
    ncat = Ncat(relay.address[1])
    try:
        ncat.send("hello from ncat")  # once it is in the room, the others speak (at once)
        lanchat.wait_json(lambda f: f.get("text") == "hello from ncat")
        web.send(json.dumps({"type": "message", "text": "hello from the web"}))
        lanchat.send_json({"type": "message", "text": "hello from lanchat"})
        texts = {"hello from ncat", "hello from the web", "hello from lanchat"}

        def three(read: Any) -> list[str]:
            seen: list[str] = []
            while len(seen) < 3:
                seen += [t for t in [read()] if t in texts and t not in seen]
            return seen

        seen_web = three(lambda: wait_frame(web, lambda f: f["type"] == "message")["text"])
        seen_lanchat = ["hello from ncat"] + [
            lanchat.wait_json(lambda f: f["type"] == "message")["text"] for _ in range(2)
        ]
        assert seen_web == seen_lanchat  # one order for everyone
        for text in seen_web[1:]:  # the same order; a raw sender gets no echo of its own
            ncat.wait_line(text)
    finally:
        ncat.close()


def test_the_web_member_is_its_own_kind_with_its_browser_name(
    relay: Relay, connect: Any, browser: Any
) -> None:
    watcher = connect()
    watcher.hello("watcher")
    browser("webby", user_agent_header="Mozilla/5.0 (X11; Linux x86_64) Firefox/128.0")
    joined = watcher.wait_json(lambda f: f["type"] == "join" and f["name"] == "webby")
    assert joined["kind"] == "web"
    status = relay.status()
    (row,) = [c for c in status["connections"] if c.get("name") == "webby"]
    assert row["kind"] == "web"
    assert row["program"] == "Firefox 128 on Linux"


def test_a_page_from_another_origin_is_refused(relay: Relay, connect: Any) -> None:
    with pytest.raises(InvalidStatus) as refused:
        ws_connect(ws_url(relay), origin="http://evil.example", open_timeout=WAIT)  # type: ignore[arg-type]
    assert refused.value.response.status_code == 403
    port = relay.address[1]
    with ws_connect(ws_url(relay), origin=f"http://127.0.0.1:{port}", open_timeout=WAIT) as ws:  # type: ignore[arg-type]
        ws.send(hello("same-origin"))
        assert wait_frame(ws, lambda f: f["type"] == "welcome")["name"] == "same-origin"


def http(port: int, request: bytes) -> bytes:
    """Send one request (or junk); everything the relay says before it closes."""
    with socket.create_connection(("127.0.0.1", port), timeout=WAIT) as sock:
        sock.sendall(request)
        sock.shutdown(socket.SHUT_WR)
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
        return data


def test_the_page_and_its_files_are_served(relay: Relay) -> None:
    port = relay.address[1]
    page = http(port, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
    assert page.startswith(b"HTTP/1.1 200 OK\r\n")
    assert b"Content-Security-Policy: " in page and b'src="app.js"' in page
    script = http(port, b"GET /app.js HTTP/1.1\r\nHost: x\r\n\r\n")
    assert b"text/javascript" in script and b"textContent" in script
    assert b"innerHTML" not in script
    head = http(port, b"HEAD /style.css HTTP/1.1\r\nHost: x\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200 OK\r\n") and head.endswith(b"\r\n\r\n")


@pytest.mark.parametrize(
    ("request_bytes", "status"),
    [
        (b"GET /nope HTTP/1.1\r\nHost: x\r\n\r\n", b"404"),
        (b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabc", b"405"),
        (b"GET / HTTP/1.1\r\n\x00\x01\x02 junk\r\n\r\n", b"400"),
        (b"GET / HTTP/1.1\r\nX: " + b"a" * (2 * MAX_HEAD_BYTES), b"431"),
        (b"GET /ws HTTP/1.1\r\nHost: x\r\n\r\n", b"426"),
        (
            b"GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n",
            b"400",  # no key, no version: the handshake is refused
        ),
    ],
)
def test_http_junk_gets_an_http_error_and_never_reaches_the_room(
    relay: Relay, connect: Any, request_bytes: bytes, status: bytes
) -> None:
    watcher = connect()
    watcher.hello("watcher")
    answer = http(relay.address[1], request_bytes)
    assert answer.startswith(b"HTTP/1.1 " + status + b" ")
    watcher.send_json({"type": "message", "text": "after"})
    watcher.wait_json(lambda f: f.get("text") == "after")
    frames = [json.loads(line) for line in watcher.lines]
    assert [f for f in frames if f["type"] in ("join", "message")] == [
        {**frames[2], "type": "join", "name": "watcher"},  # welcome, who, then its own join
        {**frames[-1], "type": "message", "text": "after"},  # no junk line, nobody else
    ]
    assert relay.room.size == 1


def test_no_web_answers_http_with_503_and_the_room_sees_nothing() -> None:
    relay = Relay("127.0.0.1", 0, web=None)
    relay.start()
    try:
        answer = http(relay.address[1], b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        assert answer.startswith(b"HTTP/1.1 503 ")
        assert relay.room.size == 0
    finally:
        relay.stop()


def test_an_oversize_message_gets_line_too_long_and_the_browser_stays(browser: Any) -> None:
    ws = browser("big")
    ws.send(json.dumps({"type": "message", "text": "x" * (2 * MAX_LINE_BYTES)}))
    error = wait_frame(ws, lambda f: f["type"] == "error")
    assert error["code"] == "line-too-long"
    ws.send(json.dumps({"type": "message", "text": "small"}))
    assert wait_frame(ws, lambda f: f["type"] == "message")["text"] == "small"


def test_a_binary_message_closes_the_websocket_with_1003(connect: Any, browser: Any) -> None:
    watcher = connect()
    watcher.hello("watcher")
    ws = browser("binary")
    ws.send(b"\x00\x01binary")
    with pytest.raises(ConnectionClosed) as closed:
        wait_frame(ws, lambda f: False)
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 1003
    left = watcher.wait_json(lambda f: f["type"] == "leave")
    assert left["name"] == "binary" and left["reason"] == "closed"


def test_a_ping_is_answered_and_a_close_leaves_the_room(connect: Any, browser: Any) -> None:
    watcher = connect()
    watcher.hello("watcher")
    ws = browser("pinger")
    assert ws.ping(b"are you there").wait(WAIT)
    ws.close()
    assert ws.close_code == 1000  # our close was answered
    left = watcher.wait_json(lambda f: f["type"] == "leave")
    assert left["name"] == "pinger" and left["reason"] == "closed"


def test_a_quit_gets_a_bye_then_a_close_frame(browser: Any) -> None:
    ws = browser("quitter")
    ws.send(json.dumps({"type": "bye"}))
    assert wait_frame(ws, lambda f: f["type"] == "bye")["reason"] == "quit"
    with pytest.raises(ConnectionClosed) as closed:
        ws.recv(WAIT)
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 1000


def test_a_first_message_that_is_not_a_hello_is_refused(relay: Relay) -> None:
    with ws_connect(ws_url(relay), open_timeout=WAIT) as ws:
        ws.send(json.dumps({"type": "message", "text": "hi"}))
        assert wait_frame(ws, lambda f: True)["type"] == "error"
        assert wait_frame(ws, lambda f: True)["reason"] == "refused"
        with pytest.raises(ConnectionClosed):
            ws.recv(WAIT)
    assert relay.room.size == 0


def test_a_browser_resumes_without_duplicates(relay: Relay, connect: Any, browser: Any) -> None:
    other = connect()
    other.hello("other")
    ws = browser("roamer")
    other.send_json({"type": "message", "text": "one"})
    seen = wait_frame(ws, lambda f: f["type"] == "message")
    welcome_epoch = relay.room.epoch
    ws.close()
    other.send_json({"type": "message", "text": "two"})
    other.wait_json(lambda f: f.get("text") == "two")
    with ws_connect(ws_url(relay), open_timeout=WAIT) as again:
        again.send(hello("roamer", resume={"epoch": welcome_epoch, "seq": seen["seq"]}))
        welcome = wait_frame(again, lambda f: f["type"] == "welcome")
        assert welcome["resumed"] is True
        replay = wait_frame(again, lambda f: f["type"] == "message")
        assert replay["text"] == "two" and replay["history"] is True  # not "one" again


class StuckBrowser:
    """A WebSocket client (wsproto) with a tiny receive buffer that never reads after its hello."""

    def __init__(self, port: int, name: str) -> None:
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        self.sock.settimeout(WAIT)
        self.sock.connect(("127.0.0.1", port))
        ws = WSConnection(ConnectionType.CLIENT)
        self.sock.sendall(ws.send(Request(host=f"127.0.0.1:{port}", target="/ws")))
        while not any(isinstance(e, AcceptConnection) for e in ws.events()):
            ws.receive_data(self.sock.recv(4096))
        self.sock.sendall(ws.send(TextMessage(hello(name))))

    def close(self) -> None:
        self.sock.close()


def test_a_browser_that_stops_reading_is_dropped_and_nobody_waits() -> None:
    relay = Relay("127.0.0.1", 0, max_backlog=1000, max_rate=0)
    relay.start()
    stuck = None
    try:
        port = relay.address[1]
        observer, sender = LineClient(port), LineClient(port)
        observer.hello("observer")
        stuck = StuckBrowser(port, "stuck")
        observer.wait_json(lambda f: f["type"] == "join" and f["name"] == "stuck")
        count, text = 4000, "z" * 3000  # 12 MB: far more than the stuck socket's buffers

        def send_all() -> None:
            for i in range(count):
                sender.send(f"{i} {text}\n")

        sending = threading.Thread(target=send_all)
        sending.start()
        got, left = 0, None
        while got < count:
            frame = observer.wait_json(lambda f: f["type"] in ("message", "leave"))
            if frame["type"] == "leave":
                left = frame
            else:
                assert frame["text"].startswith(f"{got} ")
                got += 1
        sending.join(WAIT)
        if left is None:
            left = observer.wait_json(lambda f: f["type"] == "leave")
        assert left["name"] == "stuck" and left["reason"] == "too-slow"
        observer.close()
        sender.close()
    finally:
        if stuck is not None:
            stuck.close()
        relay.stop()
