"""The browser's side of the protocol without sockets: detection of HTTP, the WebSocket codec
(the relay's, over websockets' sans-IO protocol, against another implementation's client:
wsproto's), the request answers (h11)."""

from __future__ import annotations

import json

import pytest
from wsproto import ConnectionType, WSConnection
from wsproto.events import (
    AcceptConnection,
    BytesMessage,
    CloseConnection,
    Ping,
    Pong,
    Request,
    TextMessage,
)

from lanchat.protocol import MAX_LINE_BYTES, LineTooLong
from lanchat.protocol.detect import detect_client
from lanchat.web import WebOptions
from lanchat.web.http import Answer, Upgrade, answer_request, browser_name, page_weight
from lanchat.web.websocket import (
    MAX_MESSAGE_BYTES,
    MessageDecoder,
    encode_close,
    encode_message,
    server_protocol,
)


@pytest.mark.parametrize(
    "line",
    [b"GET / HTTP/1.1", b"GET /ws HTTP/1.1\r", b"POST /x?y=1 HTTP/1.0", b"HEAD / HTTP/1.1"],
)
def test_a_request_line_is_http_never_chat(line: bytes) -> None:
    assert detect_client(line).kind == "http"


@pytest.mark.parametrize(
    "line", [b"GET / now please", b"get / HTTP/1.1", b"GET / HTTP/2", b"hello GET / HTTP/1.1"]
)
def test_chat_lines_that_look_a_little_like_http_stay_chat(line: bytes) -> None:
    assert detect_client(line).kind == "raw"


def _pair() -> tuple[WSConnection, MessageDecoder, list[bytes]]:
    """A wsproto client talking to our decoder, after the handshake handshake.py makes."""
    client = WSConnection(ConnectionType.CLIENT)
    server = server_protocol()
    server.receive_data(client.send(Request(host="h", target="/ws")))
    [request] = server.events_received()
    server.send_response(server.accept(request))  # type: ignore[arg-type]  # (an Event)
    client.receive_data(b"".join(server.data_to_send()))
    assert isinstance(next(client.events()), AcceptConnection)
    replies: list[bytes] = []
    return client, MessageDecoder(server, replies.append), replies


def test_text_messages_are_lines_whole_and_byte_by_byte() -> None:
    client, decoder, _ = _pair()
    data = client.send(TextMessage('{"type":"message","text":"héllo"}'))
    data += client.send(TextMessage("part one ", message_finished=False))
    data += client.send(TextMessage("and two"))
    assert decoder.feed(data) == ['{"type":"message","text":"héllo"}'.encode(), b"part one and two"]
    client2, decoder2, _ = _pair()
    data = client2.send(TextMessage("abc")) + client2.send(TextMessage("déf"))
    lines = [line for i in range(len(data)) for line in decoder2.feed(data[i : i + 1])]
    assert lines == [b"abc", "déf".encode()]


def test_an_oversize_message_is_one_line_too_long_then_the_next_is_read() -> None:
    client, decoder, _ = _pair()
    big = client.send(TextMessage("x" * (MAX_LINE_BYTES + 1)))
    big += client.send(TextMessage("y" * 3000, message_finished=False))
    big += client.send(TextMessage("y" * 3000))  # too long in two fragments
    lines = [line for i in range(0, len(big), 1000) for line in decoder.feed(big[i : i + 1000])]
    assert len(lines) == 2 and all(isinstance(line, LineTooLong) for line in lines)
    assert decoder.feed(client.send(TextMessage("next"))) == [b"next"]


def test_a_message_over_the_message_limit_closes_with_1009_unbuffered() -> None:
    client, decoder, replies = _pair()
    huge = client.send(TextMessage("x" * (MAX_MESSAGE_BYTES * 100)))
    assert decoder.feed(huge[:100]) == []  # the header alone says it is too big
    assert decoder.closing
    client.receive_data(replies.pop())
    event = next(client.events())
    assert isinstance(event, CloseConnection) and event.code == 1009


def test_ping_is_answered_and_close_is_answered_and_ends_reading() -> None:
    client, decoder, replies = _pair()
    assert decoder.feed(client.send(Ping(b"p1"))) == []
    client.receive_data(replies.pop())
    assert next(client.events()) == Pong(b"p1")
    assert decoder.feed(client.send(CloseConnection(1000))) == []
    assert decoder.closing
    client.receive_data(replies.pop())
    assert isinstance(next(client.events()), CloseConnection)


def test_a_binary_message_closes_with_unsupported_data() -> None:
    client, decoder, replies = _pair()
    assert decoder.feed(client.send(BytesMessage(b"\x00\x01"))) == []
    assert decoder.closing
    client.receive_data(replies.pop())
    event = next(client.events())
    assert isinstance(event, CloseConnection) and event.code == 1003


def test_encoded_messages_are_text_frames_a_client_reads() -> None:
    client, _, _ = _pair()
    line = b'{"type":"message","seq":1,"from":"a","text":"' + "é".encode() * 200 + b'"}\n'
    client.receive_data(encode_message(line) + encode_close())
    events = list(client.events())
    assert isinstance(events[0], TextMessage)
    assert json.loads(events[0].data)["text"] == "é" * 200
    assert isinstance(events[1], CloseConnection) and events[1].code == 1000


def _head(path: str = "/", *headers: str, method: str = "GET") -> bytes:
    lines = [f"{method} {path} HTTP/1.1", "Host: 10.0.0.5:7420", *headers]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def test_the_page_is_served_with_its_security_headers() -> None:
    answer = answer_request(_head("/"), WebOptions())
    assert isinstance(answer, Answer) and answer.status == 200
    head, _, body = answer.data.partition(b"\r\n\r\n")
    assert b"Content-Security-Policy: default-src 'none'; script-src 'self'" in head
    assert b"<script" in body and b"onclick" not in body
    assert b"<script>" not in body  # the script is its own file: no inline script
    assert page_weight() < 20_000


@pytest.mark.parametrize(
    ("head", "status"),
    [
        (_head("/nothing"), 404),
        (_head("/", method="POST"), 405),
        (_head("/ws"), 426),
        (b"GET / HTTP/1.1\r\nno colon here\r\n\r\n", 400),
        (_head("/", *[f"X-{i}: y" for i in range(100)]), 431),
    ],
)
def test_anything_else_gets_a_proper_http_error(head: bytes, status: int) -> None:
    answer = answer_request(head, WebOptions())
    assert isinstance(answer, Answer)
    assert answer.status == status
    assert answer.data.startswith(f"HTTP/1.1 {status} ".encode())


def test_no_web_answers_every_request_with_503() -> None:
    answer = answer_request(_head("/"), None)
    assert isinstance(answer, Answer) and answer.status == 503


UPGRADE = ("Upgrade: websocket", "Connection: Upgrade")


@pytest.mark.parametrize(
    ("origin", "allowed"),
    [
        (None, True),  # not a browser page
        ("http://10.0.0.5:7420", True),  # the page's own origin
        ("http://evil.example", False),
        ("http://10.0.0.5:7421", False),
        ("http://school.example", True),  # allowed with --web-origin
    ],
)
def test_the_upgrade_checks_the_origin(origin: str | None, allowed: bool) -> None:
    headers = (*UPGRADE, f"Origin: {origin}") if origin else UPGRADE
    answer = answer_request(_head("/ws", *headers), WebOptions(("http://school.example",)))
    assert isinstance(answer, Upgrade) == allowed
    if not allowed:
        assert isinstance(answer, Answer) and answer.status == 403


@pytest.mark.parametrize(
    ("host", "allowed"),
    [
        ("10.0.0.5:7420", True),
        ("[fe80::1%25eth0]:7420", True),
        ("localhost:7420", True),
        ("ana-pc.local:7420", True),
        ("evil.example:7420", False),  # DNS rebinding: a site's name pointed at the relay
        ("chat.school.example:7420", False),  # a DNS name: allow it with --web-origin
    ],
)
def test_a_page_is_its_own_origin_only_under_a_lan_name(host: str, allowed: bool) -> None:
    head = (
        f"GET /ws HTTP/1.1\r\nHost: {host}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        f"Origin: http://{host}\r\n\r\n"
    ).encode()
    assert isinstance(answer_request(head, WebOptions()), Upgrade) == allowed
    allow = WebOptions((f"http://{host}",))
    assert isinstance(answer_request(head, allow), Upgrade)


@pytest.mark.parametrize(
    ("agent", "name"),
    [
        (
            "Mozilla/5.0 (Linux; Android 14) AppleWebKit/537.36 Chrome/131.0.0.0 Mobile "
            "Safari/537.36",
            "Chrome 131 on Android",
        ),
        (
            "Mozilla/5.0 (Windows NT 10.0; rv:128.0) Gecko/20100101 Firefox/128.0",
            "Firefox 128 on Windows",
        ),
        (
            "Mozilla/5.0 (iPhone; CPU iPhone OS 17_0) Version/17.0 Mobile/15E148 Safari/604.1",
            "Safari 17 on iPhone",
        ),
        ("<script>", "browser"),
    ],
)
def test_browser_names_are_made_of_known_words(agent: str, name: str) -> None:
    assert browser_name(agent) == name
