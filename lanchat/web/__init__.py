"""A browser is a client: the page, HTTP and the WebSocket on the relay's own port.

http.py reads one HTTP request on a connection's reader thread (size and header limits) and
answers it: the page's static files, a proper HTTP error, or the WebSocket handshake
(websockets' sans-IO protocol); websocket.py turns a WebSocket's bytes into the protocol's lines
(one text message, one frame) and the room's JSON frames into WebSocket messages, made once per
message for every browser. static/ is the page itself (index.html, app.js, style.css,
icon.svg), shipped inside the package.
"""

from __future__ import annotations

from dataclasses import dataclass

WEB_PATH = "/"  # the page
WS_PATH = "/ws"  # the WebSocket the page opens


def page_url(address: str, port: int, *, tls: bool = False) -> str:
    """The address a browser opens: 'http://10.0.0.5:7420/' ('http://[fe80::1]:7420/');
    https:// on a relay with TLS."""
    host = f"[{address}]" if ":" in address else address
    return f"{'https' if tls else 'http'}://{host}:{port}{WEB_PATH}"


@dataclass(frozen=True)
class WebOptions:
    """What a relay's HTTP side allows: origins besides the page's own (`--web-origin`)."""

    origins: tuple[str, ...] = ()
