"""A browser's connection up to its hello, on the connection's own reader thread.

`open_web` reads the rest of the HTTP request head (the first line told the reader it was HTTP),
answers it (http.py), and for the WebSocket completes the handshake (the `websockets` library's
sans-IO ServerProtocol checks the key and version and makes the 101) and waits for the first
message, which must be a lanchat `hello`. Nothing else writes to the socket yet, so it sends
directly; from the join on, everything the browser is sent goes through the hub's fan-out.
"""

from __future__ import annotations

import socket
import time
from dataclasses import dataclass, replace

from websockets.http11 import Request
from websockets.server import ServerProtocol

from lanchat.protocol import FrameError, Hello, LineTooLong, parse_hello
from lanchat.tuning import RECV_BYTES
from lanchat.web import WebOptions
from lanchat.web.http import (
    HEAD_SECONDS,
    MAX_HEAD_BYTES,
    Answer,
    Upgrade,
    answer_request,
    error,
    head_end,
    https_redirect,
)
from lanchat.web.websocket import MessageDecoder, server_protocol

HELLO_SECONDS = 10.0  # from the handshake to the page's hello


@dataclass
class WebStart:
    """A browser that said hello: join it, then read on with `decoder`."""

    hello: Hello | FrameError  # a FrameError: the first message was not a usable hello
    decoder: MessageDecoder
    lines: list[bytes | LineTooLong]  # messages that came with the hello
    eof: bool


def open_web(sock: socket.socket, head: bytes, options: WebOptions | None) -> Answer | WebStart:
    """Read and answer one HTTP request; a WebStart when it became a WebSocket with a hello."""
    head, eof = _read_head(sock, head)
    end = head_end(head)
    if end < 0:
        if eof:
            return Answer(b"", 400)  # it hung up halfway: nobody to answer
        if len(head) <= MAX_HEAD_BYTES:  # out of time (HEAD_SECONDS)
            return error(408, "The request took too long to arrive.")
        return error(431, f"The request head must fit in {MAX_HEAD_BYTES} bytes.")
    rest = head[end:]
    answer = answer_request(head[:end], options)
    if isinstance(answer, Answer):
        return answer
    protocol = _accept(sock, answer)
    if isinstance(protocol, Answer):
        return protocol
    decoder = MessageDecoder(protocol, reply=sock.sendall)
    return _await_hello(sock, decoder, rest, answer.browser)


def redirect_to_tls(sock: socket.socket, head: bytes, reached: str) -> Answer:
    """A plain request to a relay that takes TLS only: read its head, answer with a redirect
    to the same address over https:// (`reached`: our HOST:PORT, when it named none)."""
    head, eof = _read_head(sock, head)
    end = head_end(head)
    if end < 0:
        return Answer(b"", 400) if eof else error(400, "Use https:// for this relay.")
    return https_redirect(head[:end], reached)


def _read_head(sock: socket.socket, data: bytes) -> tuple[bytes, bool]:
    """Read until the head's blank line, MAX_HEAD_BYTES or HEAD_SECONDS; (bytes, peer closed)."""
    deadline = time.monotonic() + HEAD_SECONDS
    try:
        while head_end(data) < 0 and len(data) <= MAX_HEAD_BYTES:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            sock.settimeout(remaining)
            try:
                chunk = sock.recv(RECV_BYTES)
            except TimeoutError:
                break
            if not chunk:
                return data, True
            data += chunk
        return data, False
    finally:
        sock.settimeout(None)


def _accept(sock: socket.socket, upgrade: Upgrade) -> ServerProtocol | Answer:
    """The protocol object's side of the handshake: the 101 response, or why not."""
    protocol = server_protocol()
    protocol.receive_data(upgrade.head)
    request = next((e for e in protocol.events_received() if isinstance(e, Request)), None)
    if request is None:
        return error(400, "That WebSocket handshake is not one this relay understands.")
    # No extensions offered back: no per-message compression (websocket.py says why).
    response = protocol.accept(request)
    protocol.send_response(response)
    data = b"".join(protocol.data_to_send())
    if response.status_code != 101:  # a key or version it refused: its own answer says why
        return Answer(data, response.status_code)
    sock.sendall(data)
    return protocol


def _await_hello(
    sock: socket.socket, decoder: MessageDecoder, data: bytes, browser: str
) -> Answer | WebStart:
    deadline = time.monotonic() + HELLO_SECONDS
    lines = decoder.feed(data) if data else []
    eof = False
    try:
        while not lines and not decoder.closing:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return Answer(b"", 408)  # the WebSocket is closed without a word
            sock.settimeout(remaining)
            try:
                chunk = sock.recv(RECV_BYTES)
            except TimeoutError:
                continue
            if not chunk:
                eof = True
                break
            lines = decoder.feed(chunk)
    finally:
        sock.settimeout(None)
    if not lines:
        return Answer(b"", 400)
    first = lines[0]
    try:
        if isinstance(first, LineTooLong):
            raise FrameError("line-too-long", "The hello is too long.")
        hello = parse_hello(first)
        if hello is None:
            raise FrameError("bad-frame", "A browser's first message must be a hello.")
    except FrameError as e:
        return WebStart(e, decoder, [], eof)
    # `lanchat status` shows the browser, not what the page calls itself.
    return WebStart(replace(hello, client=browser), decoder, lines[1:], eof)
