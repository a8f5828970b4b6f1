"""One HTTP request, answered (pure): the page's files, a proper error, or a WebSocket upgrade.

The relay answers one request per connection (`Connection: close`): a page load is three small
files and a WebSocket, and a reader thread per keep-alive connection would hold threads for
nothing. h11 parses the request head (a sans-IO HTTP/1.1 parser); the limits are ours, named
here: the whole head within MAX_HEAD_BYTES, at most MAX_HEADERS header lines.

Safety: the page and its files carry a Content-Security-Policy that allows scripts, styles and
connections from the page's own origin only (no inline script: a message that became markup
still could not run), `nosniff`, no referrer and no framing. The WebSocket upgrade is refused
(403) unless its Origin is the page's own (`http://` + the Host the browser asked for) or one
allowed with `--web-origin`; a request without an Origin is not from a browser page and is
let in, like a lanchat client. "The page's own" counts only for a Host that names this relay
the way a LAN does (an IP address, localhost, a .local name, this PC's own name): with DNS
rebinding, a page from any web site can be served under a name of its own that points at the
relay, and its Origin then equals its Host.
"""

from __future__ import annotations

import ipaddress
import re
import socket
from dataclasses import dataclass
from functools import cache
from importlib.resources import files

import h11

from lanchat.protocol import SOFTWARE
from lanchat.web import WS_PATH, WebOptions

MAX_HEAD_BYTES = 8192  # the request line and headers (browsers send ~1 KB; a cookie jar more)
MAX_HEADERS = 64
HEAD_SECONDS = 10.0  # to send the whole head (a slow phone on Wi-Fi is well within it)

CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; "
    "img-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)
_STATIC = {  # path -> (file in static/, content type)
    "/": ("index.html", "text/html; charset=utf-8"),
    "/index.html": ("index.html", "text/html; charset=utf-8"),
    "/app.js": ("app.js", "text/javascript; charset=utf-8"),
    "/style.css": ("style.css", "text/css; charset=utf-8"),
    "/icon.svg": ("icon.svg", "image/svg+xml"),
}
_REASONS = {
    200: "OK",
    308: "Permanent Redirect",
    400: "Bad Request",
    403: "Forbidden",
    404: "Not Found",
    405: "Method Not Allowed",
    408: "Request Timeout",
    426: "Upgrade Required",
    431: "Request Header Fields Too Large",
    503: "Service Unavailable",
}


@dataclass(frozen=True)
class Upgrade:
    """The request is a WebSocket handshake the relay accepts: websockets completes it."""

    head: bytes  # the request head as received, for the WebSocket handshake
    browser: str  # from the User-Agent, for `lanchat status`


@dataclass(frozen=True)
class Answer:
    """What to send back before closing: a page, a file, or an error."""

    data: bytes
    status: int


def head_end(data: bytes) -> int:
    """Where the request head ends in `data` (after its blank line), or -1."""
    end = data.find(b"\r\n\r\n")
    if end >= 0:
        return end + 4
    end = data.find(b"\n\n")  # a hand-typed request (ncat) may use bare newlines
    return end + 2 if end >= 0 else -1


def _parse_head(head: bytes) -> h11.Request | Answer:
    """The request in one complete head, or the 400 that says why there is none."""
    parser = h11.Connection(h11.SERVER, max_incomplete_event_size=MAX_HEAD_BYTES)
    parser.receive_data(head)
    try:
        request = parser.next_event()
    except h11.RemoteProtocolError:
        return error(400, "That is not an HTTP request this relay understands.")
    if not isinstance(request, h11.Request):
        return error(400, "The request is incomplete.")
    return request


def answer_request(head: bytes, options: WebOptions | None) -> Answer | Upgrade:
    """What to do with one complete request head (`options` None: the web page is off)."""
    if options is None:
        return error(503, "The web page is turned off on this relay (serve --no-web).")
    if head.count(b"\n") > MAX_HEADERS + 2:
        return error(431, f"At most {MAX_HEADERS} header lines, please.")
    request = _parse_head(head)
    if isinstance(request, Answer):
        return request
    method = request.method.decode("ascii", "replace")
    path = request.target.decode("ascii", "replace").split("?", 1)[0]
    headers = {name.decode("latin-1"): value.decode("latin-1") for name, value in request.headers}
    if method not in ("GET", "HEAD"):
        return error(405, "Only GET is answered here.", extra=[("Allow", "GET, HEAD")])
    if path == WS_PATH:
        if "websocket" not in headers.get("upgrade", "").lower():
            return error(426, "This address is the chat's WebSocket.", extra=_UPGRADE)
        origin = headers.get("origin")
        if origin is not None and not origin_allowed(origin, headers.get("host", ""), options):
            return error(403, "WebSocket refused: the page must come from this relay.")
        return Upgrade(head, browser_name(headers.get("user-agent", "")))
    if path not in _STATIC:
        return error(404, "Nothing here. The chat is at /.")
    name, content_type = _STATIC[path]
    body = static_file(name)
    return Answer(
        response(200, content_type, body, head_only=method == "HEAD", extra=_PAGE_HEADERS), 200
    )


# A Host header as a redirect may repeat it: a name or an address, and a port.
_HOST = re.compile(
    r"[A-Za-z0-9.\-]+(:[0-9]{1,5})?"  # a name or an IPv4 address
    r"|\[[0-9A-Fa-f:.]+(%[A-Za-z0-9]+)?\](:[0-9]{1,5})?"  # [an IPv6 address]
)


def https_redirect(head: bytes, reached: str) -> Answer:
    """The same request over https:// on this port (serve --tls without --allow-plain): a 308
    to the Host the browser asked for (`reached`, our own HOST:PORT, when it named none or one
    that cannot be repeated), not kept in the browser's cache: the relay may run without TLS
    another day."""
    request = _parse_head(head)
    if isinstance(request, Answer):
        return request
    target = request.target.decode("ascii", "replace")
    host = next((v.decode("latin-1") for k, v in request.headers if k == b"host"), "")
    if not _HOST.fullmatch(host):
        host = reached
    if not target.startswith("/") or any(c in target for c in "\r\n "):
        target = "/"
    location = f"https://{host}{target}"
    body = f"308 Permanent Redirect: this relay takes TLS only: {location}\n".encode()
    extra = [("Location", location), ("Cache-Control", "no-store")]
    return Answer(response(308, "text/plain; charset=utf-8", body, extra=extra), 308)


_UPGRADE = [("Upgrade", "websocket"), ("Connection", "Upgrade")]
_PAGE_HEADERS = [
    ("Content-Security-Policy", CSP),
    ("X-Content-Type-Options", "nosniff"),
    ("Referrer-Policy", "no-referrer"),
    ("X-Frame-Options", "DENY"),
    ("Cache-Control", "no-cache"),
]


def origin_allowed(origin: str, host: str, options: WebOptions) -> bool:
    """Whether a browser page at `origin` may open the WebSocket of a relay reached as `host`."""
    origin = origin.rstrip("/").lower()
    if origin in {o.rstrip("/").lower() for o in options.origins}:
        return True
    own = {f"http://{host}".lower(), f"https://{host}".lower()}
    return bool(host) and origin in own and lan_host(host)


def lan_host(host: str) -> bool:
    """Whether a Host header names the relay as a LAN does: an IP address, localhost, a .local
    (mDNS) name or this PC's own name; not a web site's name (DNS rebinding)."""
    name = host.rsplit(":", 1)[0] if not host.endswith("]") else host
    name = name.strip("[]").rstrip(".").lower()
    try:
        ipaddress.ip_address(name.split("%", 1)[0])
        return True
    except ValueError:
        pass
    own = socket.gethostname().lower()
    return name in ("localhost", own, own.split(".", 1)[0]) or name.endswith(
        (".local", ".localhost")
    )


def error(status: int, message: str, *, extra: list[tuple[str, str]] | None = None) -> Answer:
    body = f"{status} {_REASONS[status]}: {message}\n".encode()
    return Answer(response(status, "text/plain; charset=utf-8", body, extra=extra), status)


def response(
    status: int,
    content_type: str,
    body: bytes,
    *,
    head_only: bool = False,
    extra: list[tuple[str, str]] | None = None,
) -> bytes:
    """A whole HTTP/1.1 response that closes the connection."""
    headers = [
        ("Server", SOFTWARE),
        ("Content-Type", content_type),
        ("Content-Length", str(len(body))),
        ("Connection", "close"),
        *(extra or []),
    ]
    lines = [f"HTTP/1.1 {status} {_REASONS[status]}", *(f"{k}: {v}" for k, v in headers)]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + (b"" if head_only else body)


@cache
def static_file(name: str) -> bytes:
    """One of the page's files, read from the package once."""
    return (files("lanchat.web") / "static" / name).read_bytes()


def page_weight() -> int:
    """The page's bytes: the HTML, its script, its style sheet and its icon."""
    return sum(len(static_file(n)) for n, _ in set(_STATIC.values()))


# Browser names for `lanchat status`: the first token found wins (Edge and Opera also say
# Chrome; Chrome also says Safari).
_BROWSERS = (
    ("Edg/", "Edge"),
    ("OPR/", "Opera"),
    ("SamsungBrowser/", "Samsung Internet"),
    ("Firefox/", "Firefox"),
    ("Chromium/", "Chromium"),
    ("HeadlessChrome/", "Chrome (headless)"),
    ("Chrome/", "Chrome"),
    ("CriOS/", "Chrome"),
    ("Version/", "Safari"),
)
_SYSTEMS = (
    ("Android", "Android"),
    ("iPhone", "iPhone"),
    ("iPad", "iPad"),
    ("CrOS", "ChromeOS"),
    ("Windows", "Windows"),
    ("Mac OS X", "macOS"),
    ("Linux", "Linux"),
)


def browser_name(user_agent: str) -> str:
    """A short browser name ("Firefox 128 on Android") from a User-Agent; "browser" if unknown.
    Built from fixed words and digits only: nothing the browser sent is echoed."""
    name = "browser"
    for token, label in _BROWSERS:
        at = user_agent.find(token)
        if at >= 0:
            version = re.match(r"\d+", user_agent[at + len(token) :])
            name = f"{label} {version.group()}" if version else label
            break
    system = next((label for token, label in _SYSTEMS if token in user_agent), None)
    return f"{name} on {system}" if system else name
