"""One connection's life on its own reader thread: setup, handle, finish (socketserver's shape).

setup: socket options; on a relay with TLS (serve --tls), the first byte says whether the client
starts a TLS handshake (0x16, a ClientHello: docs/protocol.md, "TLS"), and if so the handshake
runs here and the client's socket is replaced by its TLS session (lanchat/tls/transport.py)
before anything else is read; then the first line (or a short silence) tells what kind of client
this is (lanchat/protocol/detect.py), over TLS or not alike. A plain client of a relay that takes
TLS only is told how to connect (a redirect to https://, an error frame `tls-required`, a line
for ncat) and closed; the status and probe questions are answered in plain all the same.

handle: a question (status, probe) is answered and closed; an HTTP
request goes to lanchat/web/ (a page, an error, or a WebSocket whose messages are then read here
like lines, through the same loop and limits); a chat client joins the room through the hub and
its lines are read and handed over in batches until it leaves. Where the relay has a room
password (or the client asks to log in as an operator) the chat client logs in first, talking
with lanchat/auth/login.py's Conversation, and is no member of anything until it has.
finish: the client leaves the room (once), the writer sends what is owed, and the socket
closes. A misbehaving peer costs its own connection and one log line, never the server; an
unexpected error likewise costs one connection and never leaves a ghost member.

The reader owns its socket's receiving side, its LineDecoder and Client.lines_in/bytes_in, and
Client.sock until the join (it swaps in the TLS session then, when nobody else knows the socket);
everything it sends goes through the hub and the fan-out, except the answers it gives before a
client joins, a login's among them (nobody else writes to the socket then). A member's /login
is answered through the hub (Hub.reply), like everything else it is sent.

Flow control: each client may send `max_rate` lines per second, with bursts of up to
`burst_seconds` times that. Beyond it the reader hands over no more lines and reads nothing
until the client is within its rate again, so the kernel's buffers fill and TCP slows the
sender down: a flooder slows itself, and nobody else falls behind because of it
(docs/reliability.md).

Longer than ~300 lines because it holds one connection's whole life in order (setup, logging
in, handle, flow control, finish) and the two small parsers of lines into room items, so a
reader of one connection's path reads one file; what a login means is lanchat/auth/login.py.
"""

from __future__ import annotations

import ipaddress
import json
import logging
import select
import socket
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import partial
from typing import Any, cast

from lanchat.admission import Refusals
from lanchat.auth.login import LOGIN_SECONDS, Admitted, Conversation, Gate, Leave, Step
from lanchat.fanout import SEND_FLAGS, Client
from lanchat.hub import Hub, encode_for, refusal_frames
from lanchat.netinfo import host_port
from lanchat.protocol import (
    DEFAULT_MAX_RATE,
    DETECT_SECONDS,
    ClientKind,
    FrameError,
    Goodbye,
    Hello,
    LineDecoder,
    LineTooLong,
    Login,
    ProbeAnswer,
    Problem,
    decode_line,
    encode_json,
    parse_raw_line,
    parse_request,
)
from lanchat.protocol.detect import Opening, client_kind, detect_client, hello_or_none
from lanchat.protocol.scram import channel_binding
from lanchat.room import Item, Refused
from lanchat.tls.transport import FIRST_BYTE_SECONDS, TLS_RECORD, ServerTls, TlsHandshakeError
from lanchat.tuning import RECV_BUSY_BYTES, RECV_BYTES
from lanchat.web import WebOptions
from lanchat.web.handshake import WebStart, open_web, redirect_to_tls
from lanchat.web.websocket import MessageDecoder, encode_close

log = logging.getLogger(__name__)

BURST_SECONDS = 2.0  # a burst may be this many seconds' worth of lines (400 by default)

Lines = list[bytes | LineTooLong]
ToItems = Callable[[Sequence[bytes | LineTooLong]], list[Item]]
OnLogin = Callable[[Login], None]  # a member's /login: handled here, never relayed
JOIN_WAIT_SECONDS = 10.0  # how long a leaving reader waits for the writer to hang up
LOGIN_SEND_SECONDS = 5.0  # a client that does not read its login's answers is let go
# What a plain client of a relay that takes TLS only is told (lanchat/client.py knows the words)
TLS_ONLY = "This relay takes TLS connections only"


@dataclass(frozen=True)
class ConnectionPolicy:
    """What every connection of one relay is allowed, and what it is told about."""

    keepalive: float  # notice a vanished peer within about this many seconds
    max_rate: float = DEFAULT_MAX_RATE  # lines/s a client may send; 0: no limit
    burst_seconds: float = BURST_SECONDS
    stopping: threading.Event = field(default_factory=threading.Event)  # the relay stops
    web: WebOptions | None = field(default_factory=WebOptions)  # None: no page (--no-web)
    gate: Gate | None = None  # logins (lanchat/auth); None: no passwords, no operators
    tls: ServerTls | None = None  # serve --tls: its key, and whether plain clients may connect

    @property
    def burst(self) -> float:
        return max(1.0, self.max_rate * self.burst_seconds)


class Connection:
    """Serves one client from its first byte to its last; `run()` is the reader thread."""

    def __init__(
        self,
        client: Client,
        hub: Hub,
        policy: ConnectionPolicy,
        *,
        status: Callable[[], dict[str, Any]],
        same_machine: Callable[[Any, Any], bool],
        refusals: Refusals | None = None,
    ) -> None:
        self.client = client
        self.hub = hub
        self.policy = policy
        self._status = status
        self._same_machine = same_machine
        self._refusals = refusals if refusals is not None else Refusals()
        self._tokens = policy.burst  # lines the client may send now (flow control)
        self._refilled = time.monotonic()
        self._decoder: LineDecoder | MessageDecoder = LineDecoder()
        self._head = b""  # the bytes read before the kind was known (an HTTP request's head)
        self._joined = False
        self._plain_refused = False  # a plain client of a relay that takes TLS only

    def run(self) -> None:
        client = self.client
        reason = "lost"
        try:
            reason = self.handle(self.setup())
        except TlsHandshakeError as e:
            log.info("TLS handshake with %s failed: %s", client.address, e)
        except OSError as e:
            log.info("connection from %s failed: %s", client.address, e)
        except Exception as e:  # a bug: it costs this connection, never a ghost member
            log.error("connection from %s ended by an internal error: %r", client.address, e)
        finally:
            self.finish(reason)

    # --- setup: options and the first line --------------------------------------------------

    def setup(self) -> tuple[Opening, Lines, bool]:
        """Socket options, then (what the first line says, the lines read, peer closed)."""
        client = self.client
        sock = client.sock
        configure(sock, self.policy.keepalive)
        client.local = sock.getsockname()
        deadline = time.monotonic() + DETECT_SECONDS
        tls = self.policy.tls
        if tls is not None:
            deadline = time.monotonic() + FIRST_BYTE_SECONDS  # (transport.py says why)
            if _first_byte(sock, deadline) == TLS_RECORD:
                # A TlsSocket offers every socket method a client's socket is used with
                # (lanchat/tls/transport.py); from here on, everything is read through it.
                client.sock = cast(socket.socket, tls.accept(sock))
                deadline = time.monotonic() + DETECT_SECONDS
            elif not tls.allow_plain:
                self._plain_refused = True
        lines, eof = self._first_lines(deadline)
        opening = detect_client(lines[0] if lines else None)
        if opening.kind != "http":
            self._head = b""  # only a request head is read again
        return opening, lines, eof

    def _first_lines(self, deadline: float) -> tuple[Lines, bool]:
        """Wait until `deadline` for the first complete line; (lines, peer closed)."""
        while True:
            data = self._receive(deadline)
            if data is None:
                return [], False
            if not data:
                rest: Lines = [*self._decoder.finish()]
                self.client.lines_in += len(rest)
                return rest, True
            self._head += data
            lines = self._decoder.feed(data)
            if lines:
                self.client.lines_in += len(lines)
                return lines, False

    def _receive(self, deadline: float) -> bytes | None:
        """What arrives before `deadline` (b"": the peer closed; None: nothing in time), for
        the reads before the client joins (then the reader waits without a deadline)."""
        sock = self.client.sock
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return None
        sock.settimeout(remaining)
        try:
            data = sock.recv(RECV_BYTES)
        except TimeoutError:
            return None
        finally:
            sock.settimeout(None)
        self.client.bytes_in += len(data)
        return data

    # --- handle: answer, or join and read ---------------------------------------------------

    def handle(self, start: tuple[Opening, Lines, bool]) -> str:
        """Serve the client; returns why it left ("closed" or "lost")."""
        opening, lines, eof = start
        if self._plain_refused and opening.kind not in ("status", "probe"):
            self._refuse_plain(opening)
        elif opening.kind == "status":
            self._answer_status()
        elif opening.kind == "probe":  # `lanchat doctor HOST` asks without joining the room
            answer = ProbeAnswer(self.hub.room.seq, time.time(), room=self.hub.room.name)
            self._say_and_close(encode_json(answer), peer_closes=True)
        elif opening.kind == "http":
            return self._web()
        elif opening.refusal is not None:  # a lanchat client with a bad hello: say why
            self._refuse("lanchat", Refused(opening.refusal.code, opening.refusal.message))
        else:
            return self._enter(opening.hello, lines[1:] if opening.consumed else lines, eof)
        return "closed"

    def _web(self) -> str:
        """A browser: a page or an error (closed), or a WebSocket that chats like the rest."""
        start = open_web(self.client.sock, self._head, self.policy.web)
        self._head = b""
        if not isinstance(start, WebStart):
            if start.status in (403, 431):
                self._refused(f"http-{start.status}")
            self._say_and_close(start.data)
            return "closed"
        if isinstance(start.hello, FrameError):
            self._refuse("web", Refused(start.hello.code, start.hello.message))
            return "closed"
        self._decoder = start.decoder
        start.decoder.reply = self._send_before_join  # pongs while logging in: with a deadline
        return self._enter(start.hello, start.lines, start.eof, web=True)

    def _enter(self, hello: Hello | None, lines: Lines, eof: bool, *, web: bool = False) -> str:
        """Into the room: at once, or once logged in where the relay asks for a login."""
        gate = self.policy.gate
        if gate is None or not gate.asks(hello):
            return self._chat(hello, lines, eof, web=web)
        admitted, lines, eof = self._log_in(self._login(gate, hello, web=web), lines, eof)
        if admitted is None:
            return "closed"
        return self._chat(admitted.hello, lines, eof, web=web, operator=admitted.operator)

    def _chat(
        self,
        hello: Hello | None,
        lines: Lines,
        eof: bool,
        *,
        web: bool = False,
        operator: bool | None = None,
    ) -> str:
        """Join the room, then read until the client leaves. `operator` is None for a client
        that did not log in (True or False: it did, and has spoken, so it is announced)."""
        client = self.client
        self._joined = True  # from here on, whatever happens, finish() makes it leave
        # A raw client that has said nothing yet is greeted, but not announced.
        announce = hello is not None or bool(lines) or operator is not None
        try:
            self.hub.join(client, hello, announce=announce, web=web, operator=bool(operator))
        except Refused as refused:
            self._joined = False
            self._refuse(client_kind(hello, web=web), refused)
            return "closed"
        if isinstance(self._decoder, MessageDecoder):  # a browser's pongs and closes go
            self._decoder.reply = lambda data: self.hub.reply(client, data)  # in order now
        to_items = self._items(hello)
        if lines:
            self._hand_over(to_items(lines))
        # A lanchat hello that came after the raw greeting (a slow network) still counts, as
        # long as it is the first line this client sends (and it has not logged in as raw).
        upgradable = hello is None and not lines and operator is None
        reason = "closed" if eof else self._read_loop(to_items, upgradable)
        if client.close_reason is None:
            self._hand_over(to_items(self._decoder.finish()))  # nothing typed is lost
        return reason

    def _read_loop(self, to_items: ToItems, upgradable: bool) -> str:
        """Read until the peer closes; "closed", or "lost" on a socket error."""
        client = self.client
        sock = client.sock
        if SEND_FLAGS == 0:  # no MSG_DONTWAIT (Windows): non-blocking socket, wait in select()
            sock.setblocking(False)
        recv = sock.recv
        pending = getattr(sock, "pending", None)  # a TLS session's (lanchat/tls/transport.py)
        size = RECV_BYTES
        dropped = False  # the relay is stopping and left some of our lines unrelayed
        while True:
            try:
                if SEND_FLAGS == 0 and not (pending is not None and pending()):
                    select.select([sock], [], [])  # (what TLS holds already, it cannot see)
                data = recv(size)
            except (BlockingIOError, InterruptedError):
                continue
            except OSError:
                return "lost"
            if not data:
                return "closed"
            size = RECV_BUSY_BYTES if len(data) == size else RECV_BYTES
            if client.close_reason is not None or dropped:
                # Hanging up: drain what still arrives so the close stays graceful. Or the relay
                # is stopping and dropped some of this client's lines (paced): a later line must
                # not overtake them (the client sends them again after it resumes).
                continue
            if not client.bytes_in and self.policy.tls is not None and data[:1] == TLS_RECORD:
                # A ClientHello after the plain greeting (later than FIRST_BYTE_SECONDS): too
                # late for TLS, and never a chat line. The client sees its handshake fail.
                return "lost"
            client.bytes_in += len(data)
            lines = self._decoder.feed(data)
            if not lines:
                if self._decoder.closing:  # a browser's close, answered: it is leaving
                    return "closed"
                continue
            client.lines_in += len(lines)
            if upgradable:
                upgradable = False
                hello = hello_or_none(lines[0])
                if hello is not None:
                    to_items = self._items(hello)
                    lines = lines[1:]
                    self.hub.upgrade(client, hello)
            if self.policy.max_rate:
                dropped = not self._hand_over_paced(lines, to_items)
            else:
                self._hand_over(to_items(lines))

    def _items(self, hello: Hello | None) -> ToItems:
        """How this client's lines become room items: raw lines or lanchat frames, its /login
        lines taken out on the way (handled here, never relayed or logged)."""
        return partial(_raw_items if hello is None else _lanchat_items, on_login=self._member_login)

    def _hand_over(self, items: list[Item]) -> None:
        if items:
            self.hub.handle(self.client, items)

    def _hand_over_paced(self, lines: Lines, to_items: ToItems) -> bool:
        """Hand lines over at most a burst at a time, waiting (and so not reading) while the
        client is over its rate: TCP back-pressure does the rest. False: the relay began to
        stop meanwhile, and some of the lines were not handed over."""
        rate, burst = self.policy.max_rate, self.policy.burst
        done = 0
        while done < len(lines):
            now = time.monotonic()
            self._tokens = min(burst, self._tokens + (now - self._refilled) * rate)
            self._refilled = now
            if self._tokens < 1:
                if self.policy.stopping.wait((1 - self._tokens) / rate):
                    return False  # the relay is stopping: what is left is not relayed
                continue
            count = min(len(lines) - done, int(self._tokens))
            self._tokens -= count
            self._hand_over(to_items(lines[done : done + count]))
            done += count
        return True

    # --- logging in: before joining, and a member's /login -----------------------------------

    def _login(self, gate: Gate, hello: Hello | None, *, web: bool) -> Conversation:
        """The login conversation of this connection (lanchat/auth/login.py)."""
        client = self.client
        host, port = str(client.local[0]), int(client.local[1])
        return Conversation(
            gate,
            hello=hello,
            web=web,
            address=str(client.address[0]),
            local=(host.removeprefix("::ffff:"), port),
            binding=channel_binding(client.sock),
            seq=lambda: self.hub.room.seq,  # a snapshot (hub.py's table)
        )

    def _log_in(
        self, login: Conversation, lines: Lines, eof: bool
    ) -> tuple[Admitted | None, Lines, bool]:
        """Talk with the client until it has logged in (Admitted, the lines that came after
        its login, peer closed) or not (None): it is not a member meanwhile, and all it is
        sent goes straight to its socket."""
        pending = deque(lines)
        deadline = time.monotonic() + LOGIN_SECONDS
        step = login.start()
        while True:
            if not self._perform(step, login.kind):
                return None, [], eof
            if isinstance(step.outcome, Admitted):
                return step.outcome, list(pending), eof
            if step.outcome is not None:
                return None, [], eof
            while not pending:
                if eof:
                    return None, [], eof  # gone without logging in: nobody is told
                more, eof = self._read_more(deadline)
                if more is None:
                    break
                pending.extend(more)
            step = login.feed(pending.popleft()) if pending else login.expired()

    def _perform(self, step: Step, kind: ClientKind) -> bool:
        """Pause, count, say what `step` says (and hang up if it ends the login); False when
        the relay is stopping meanwhile."""
        if step.pause and self.policy.stopping.wait(step.pause):
            return False  # the relay stops: nobody waits for this answer
        if step.refusal is not None:
            self._refused(step.refusal)
        data = b"".join(encode_for(kind, event) for event in step.say)
        if isinstance(step.outcome, Leave):
            if step.outcome.refused and kind != "raw":
                seq, now = self.hub.room.seq, time.time()
                data += encode_for(kind, Goodbye(seq, now, "refused", "Not logged in."))
            self._say_and_close(data + (encode_close() if kind == "web" else b""))
        elif data:
            self._send_before_join(data)
        return True

    def _send_before_join(self, data: bytes) -> None:
        """Send straight to the socket (nobody else writes to it before the join); a client
        that does not read it within LOGIN_SEND_SECONDS is let go (TimeoutError)."""
        sock = self.client.sock
        sock.settimeout(LOGIN_SEND_SECONDS)
        try:
            sock.sendall(data)
        finally:
            sock.settimeout(None)

    def _read_more(self, deadline: float) -> tuple[Lines | None, bool]:
        """The next lines before `deadline` (None: none came in time), and whether the peer
        closed."""
        data = self._receive(deadline)
        if data is None:
            return None, False
        lines: Lines = self._decoder.feed(data) if data else [*self._decoder.finish()]
        self.client.lines_in += len(lines)
        return lines, not data or self._decoder.closing

    def _member_login(self, request: Login) -> None:
        """A member's /login: the operator password or token makes it an operator. Answered
        through the hub (the fan-out owns the socket now), never relayed, never logged."""
        client, gate = self.client, self.policy.gate
        kind = client.kind
        if gate is None or request.password is None:
            text = (
                "This relay has no operator login."
                if gate is None
                else "Log in before joining: `lanchat join --operator HOST`."
            )
            self.hub.reply(
                client, encode_for(kind, Problem(self.hub.room.seq, time.time(), "bad-login", text))
            )
            return
        login = self._login(gate, None, web=kind == "web")
        step = login.member_login(request.password)
        if step.pause and self.policy.stopping.wait(step.pause):
            return
        if step.refusal is not None:
            self._refused(step.refusal)
        self.hub.reply(client, b"".join(encode_for(kind, event) for event in step.say))
        if isinstance(step.outcome, Admitted) and step.outcome.operator:
            self.hub.promote(client)  # the room tells everyone (moderation's Room.promote)

    # --- answers before (or instead of) joining ---------------------------------------------

    def _answer_status(self) -> None:
        """The status document, only to a program on this same computer."""
        client = self.client
        if self._same_machine(client.address, client.local):
            answer = json.dumps(self._status(), ensure_ascii=False).encode() + b"\n"
        else:
            self._refused("status-refused")
            answer = encode_json(
                Problem(
                    self.hub.room.seq,
                    time.time(),
                    "status-refused",
                    "The status is only given to programs on the server's own computer.",
                )
            )
        self._say_and_close(answer, peer_closes=True)

    def _refuse_plain(self, opening: Opening) -> None:
        """A plain client of a relay that takes TLS only: tell it how to connect, and close."""
        self._refused("tls-required")
        host, port = reachable_as(self.client.local)
        if opening.kind == "http":  # the same address with https://
            answer = redirect_to_tls(self.client.sock, self._head, host_port(host, port))
            self._head = b""
            self._say_and_close(answer.data)
        elif opening.kind == "lanchat":  # `lanchat join` reconnects over TLS at once
            refused = Refused("tls-required", f"{TLS_ONLY}: connect with TLS.")
            self._say_and_close(refusal_frames("lanchat", refused, self.hub.room.seq))
        else:
            shown = f"[{host}]" if ":" in host else host
            self._say_and_close(
                f"! {TLS_ONLY}. Connect with: ncat --ssl {host} {port}, or "
                f"lanchat join {shown}:{port}\n".encode()
            )

    def _refuse(self, kind: ClientKind, refused: Refused) -> None:
        """Say why this client is not let in, count it for the log, and close."""
        reason = (
            refused.code if refused.code in ("server-full", "shutdown", "banned") else "bad-hello"
        )
        self._refused(reason)
        self._say_and_close(refusal_frames(kind, refused, self.hub.room.seq))

    def _refused(self, reason: str) -> None:
        self._refusals.add(str(self.client.address[0]), reason)

    def _say_and_close(self, data: bytes, *, peer_closes: bool = False) -> None:
        """Send, then close gracefully (drain first, so the words aren't lost to a reset).

        `peer_closes`: the peer hangs up first (our own status tool does), so the TIME_WAIT
        stays on its side instead of piling up on the relay's port for `lanchat status` to show.
        """
        sock = self.client.sock
        try:
            sock.settimeout(1.0)
            sock.sendall(data)
            if not peer_closes:
                sock.shutdown(socket.SHUT_WR)
            deadline = time.monotonic() + 1.0
            while time.monotonic() < deadline and sock.recv(RECV_BYTES):
                pass
        except OSError:
            pass  # the peer is gone already; nothing more to tell it

    # --- finish ---------------------------------------------------------------------------

    def finish(self, reason: str) -> None:
        """Leave the room (if in it), let the writer send what is owed, close the socket."""
        client = self.client
        try:
            if self._joined:
                self.hub.drop(client, reason)  # nothing if the room let it go already
                if client.member is not None:  # the fan-out serves it: wait for its hang-up
                    client.done.wait(JOIN_WAIT_SECONDS)
        finally:
            client.close_socket()


def _first_byte(sock: socket.socket, deadline: float) -> bytes | None:
    """The client's first byte, left unread (MSG_PEEK); None when it said nothing by
    `deadline`, b"" when it closed."""
    remaining = deadline - time.monotonic()
    if remaining <= 0:
        return None
    sock.settimeout(remaining)
    try:
        return sock.recv(1, socket.MSG_PEEK)
    except TimeoutError:
        return None
    finally:
        sock.settimeout(None)


def reachable_as(local: Any) -> tuple[str, int]:
    """The address and port a client reached us at (an IPv4-mapped IPv6 address as IPv4)."""
    host, port = str(local[0]).split("%", 1)[0], int(local[1])
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        return host, port
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped:
        ip = ip.ipv4_mapped
    return str(ip), port


def configure(sock: socket.socket, keepalive: float) -> None:
    """Per-connection options: no Nagle delay, and notice within about `keepalive` seconds a
    peer that vanished without closing (a PC switched off, a cable pulled)."""
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
    idle = max(1, int(keepalive / 2))
    interval = max(1, int(keepalive / 6))
    options = (
        ("TCP_KEEPIDLE", idle),
        ("TCP_KEEPINTVL", interval),
        ("TCP_KEEPCNT", 3),
        ("TCP_USER_TIMEOUT", int(keepalive * 1000)),  # unacknowledged data, too (Linux)
    )
    for option, value in options:
        if hasattr(socket, option):
            sock.setsockopt(socket.IPPROTO_TCP, getattr(socket, option), value)


# A raw line starting with one of these may be a command (" /login pw" among them): it is parsed.
_COMMAND_STARTS = ("/", "", " ", "\t")


def _raw_items(lines: Sequence[bytes | LineTooLong], on_login: OnLogin) -> list[Item]:
    items: list[Item] = []
    for line in lines:
        if isinstance(line, LineTooLong):
            items.append(line)
            continue
        text = decode_line(line)
        if text[:1] not in _COMMAND_STARTS and not text.isspace():
            items.append(text)  # the common case, a plain message: no request object needed
            continue
        try:
            item = parse_raw_line(text)
        except FrameError as e:
            items.append(e)
            continue
        if type(item) is Login:
            on_login(item)
        elif item is not None:
            items.append(item)
    return items


def _lanchat_items(lines: Sequence[bytes | LineTooLong], on_login: OnLogin) -> list[Item]:
    items: list[Item] = []
    for line in lines:
        if isinstance(line, LineTooLong):
            items.append(line)
        elif line.strip():
            try:
                item = parse_request(line)
            except FrameError as e:
                items.append(e)
                continue
            if type(item) is Login:
                on_login(item)
            else:
                items.append(item)
    return items
