"""A connection to a relay: address parsing, the handshake, sending, receiving, reconnecting.

Both front ends of `lanchat join` (scripted and interactive) and the doctor's handshake probe use
it. Every failure to connect becomes an UnreachableError or RejectedError that names the cause.

TLS (lanchat/tls/): a connection is made over TLS when asked (`join --tls`, a fingerprint given,
a server announced with tls=1), when the server is pinned in known_servers, and at once again
when a plain hello is answered `tls-required`. The server's key is checked before anything is
said (lanchat/tls/trust.py); a pinned server is never joined in plain, and one that answers a
TLS handshake in plain is refused as a downgrade (ServerKeyError). The TlsSocket then stands
in for the socket everywhere below (both threads of `join` use it at once).

Longer than ~300 lines: address parsing, the handshake (including telling a relay from another
line server) and its failures, each worded for people, belong to one connection's opening.
"""

from __future__ import annotations

import errno
import ipaddress
import json
import re
import select
import socket
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from typing import Any, TypeVar, cast

from lanchat import __version__
from lanchat.admission import BANNED_LINE, DENIED_LINE
from lanchat.errors import (
    LoginFailedError,
    RejectedError,
    ServerKeyError,
    UnreachableError,
    UsageError,
)
from lanchat.netinfo import host_port
from lanchat.protocol import (
    DEFAULT_JOIN_KEEPALIVE_SECONDS,
    DEFAULT_PORT,
    LOGIN_ROOM,
    PROTOCOL_VERSION,
    Chat,
    FrameError,
    Gap,
    Goodbye,
    Hello,
    LineDecoder,
    LineTooLong,
    Login,
    LoginChallenge,
    LoginNeeded,
    LoginOk,
    Mark,
    Ping,
    Pong,
    ProbeAnswer,
    Problem,
    Request,
    Resume,
    ServerFrame,
    Welcome,
    WhoList,
    encode_probe_request,
    encode_request,
    encode_status_request,
    parse_event,
)
from lanchat.protocol.scram import ScramClient, ScramError, channel_binding
from lanchat.tls.pins import KnownServers, Pin
from lanchat.tls.transport import NotTls, TlsHandshakeError, TlsSocket, connect_tls
from lanchat.tls.trust import Expectation, check_server_key

T = TypeVar("T")
CONNECT_TIMEOUT = 5.0
MAX_SERVER_LINE = 1 << 20  # a who-list of thousands of names is one long line
RECONNECT_DELAYS = (1.0, 2.0, 4.0, 8.0, 15.0, 30.0)  # then every 30 s
QUERY_TIMEOUT = 2.0
# `join HOST` lets the server speak first and sends its hello only to one that greeted like a
# relay. A relay greets a silent client as raw after DETECT_SECONDS (0.25 s), unannounced; a late
# hello then makes it a lanchat client under its own name (room.upgrade). ncat --chat greets at
# once, but not like a relay; a silent server (ncat -l) is given nothing. The wait covers the
# relay's 0.25 s and a round trip of up to 0.75 s (a loaded server, a far VPN): it bounds only
# how long a silent server takes to be recognised, never what a relay costs (its own 0.25 s).
GREETING_WAIT_SECONDS = 1.0
HELLO_ANSWER_SECONDS = 2.0  # a server that greeted like a relay, to answer the hello as one
_RAW_WELCOME = re.compile(rb"\* Welcome to .*, guest-[0-9]+\.\r?")
# A relay with a room password greets a silent client with how to log in instead.
_RAW_LOGIN = re.compile(rb"[*!] This room needs a password[:,] .*\r?")
# Error codes that mean the login did not work (docs/protocol.md, "Logging in").
LOGIN_FAILURES = frozenset(
    {
        "wrong-password",
        "login-locked",
        "channel-binding",
        "bad-login",
        "unknown-user",
        "login-needed",
        "login-timeout",
        "server-not-verified",
    }
)
# What a relay says to a raw client it does not let in (then it hangs up): room.Refused's words.
_RAW_REFUSALS = {
    b"! Too many connections": "too-many-connections",
    b"! The server is full": "server-full",
    b"! The server is shutting down": "shutdown",
    b"! This relay takes TLS connections only": "tls-required",  # (connection.TLS_ONLY)
    # --allow/--deny and an operator's /ban, at accept (lanchat/admission.py); the room's own
    # word for a ban (a connection accepted just before it) starts the same way
    DENIED_LINE.partition(" (")[0].encode(): "denied",
    BANNED_LINE.partition(" (")[0].encode(): "banned",
    b"! Too many wrong passwords": "login-locked",
}


def _raw_refusal(line: bytes) -> str | None:
    """The refusal code of a relay's '! ' line to a client it does not let in, or None."""
    code = next((c for prefix, c in _RAW_REFUSALS.items() if line.startswith(prefix)), None)
    if code is None and line.startswith(b"! ") and b"taken" in line:
        code = "name-taken"  # a late hello's name, refused after the raw greeting
    return code


MAX_STATUS_LINE = 64 << 20  # thousands of connections make one long line
SEND_FLAGS: int = getattr(socket, "MSG_DONTWAIT", 0)  # a ping never waits for room
KEEPALIVE_PING = "lanchat-keepalive"  # our own pings' token: their pongs are not shown


def parse_address(
    text: str | None, *, default_host: str = "127.0.0.1", default_port: int = DEFAULT_PORT
) -> tuple[str, int]:
    """'host', 'host:port', '[v6]:port', 'v6', ':port' -> (host, port); None: the defaults."""
    if text is None:
        return default_host, default_port
    if not text.strip():  # `join ''` (an unset shell variable) must not join 127.0.0.1
        raise UsageError(
            "An empty address was given.",
            "Give HOST or HOST:PORT, for example 192.168.1.20:7420, or leave the address out "
            "to find the server on this network.",
        )
    host, port_text = text, ""
    if text.startswith("["):
        host, sep, rest = text[1:].partition("]")
        if not sep or (rest and not rest.startswith(":")):
            raise _bad_address(text)
        port_text = rest[1:]
    elif text.count(":") == 1:
        host, _, port_text = text.partition(":")
    elif not _is_ipv6(text):
        head, _, tail = text.rpartition(":")
        if tail.isdigit() and _is_ipv6(head):  # '::1:17635': a port written after an IPv6 address
            raise UsageError(
                f"{text!r} is not an address: an IPv6 address with a port needs brackets.",
                f"Write [{head}]:{tail}.",
            )
    host = host or default_host
    if not port_text:
        return host, default_port
    if not port_text.isdigit() or not 0 < int(port_text) < 65536:
        raise _bad_address(text)
    return host, int(port_text)


def _is_ipv6(text: str) -> bool:
    try:
        ipaddress.IPv6Address(text.split("%", 1)[0])
    except ValueError:
        return False
    return True


def _bad_address(text: str) -> UsageError:
    return UsageError(
        f"{text!r} is not an address.",
        "Use HOST or HOST:PORT, for example 192.168.1.20 or 192.168.1.20:7420 ([fe80::1]:7420).",
    )


def describe_connect_error(
    host: str, port: int, error: OSError, timeout: float
) -> UnreachableError:
    """Turn a failed connect() into words: what happened and the likely causes."""
    where = host_port(host, port)
    hint = f"Run `lanchat doctor {where}` here to find out why."
    if isinstance(error, socket.gaierror):
        return UnreachableError(f"Cannot find the computer {host!r} ({error.strerror}).", hint)
    if isinstance(error, ConnectionRefusedError):
        return UnreachableError(
            f"{where} refused the connection: nothing listens on that port there "
            "(or a firewall rejects it).",
            f"Is `lanchat serve` running on {host}, on port {port}? {hint}",
        )
    if isinstance(error, TimeoutError):
        return UnreachableError(
            f"No answer from {where} within {timeout:g} s: a firewall may be dropping the "
            "connection, or that computer is off, asleep or on another network.",
            hint,
        )
    if error.errno in (errno.EHOSTUNREACH, errno.ENETUNREACH, errno.EADDRNOTAVAIL):
        return UnreachableError(
            f"{host} cannot be reached from this computer ({error.strerror}): it may be off, "
            "or on a network this one has no route to.",
            hint,
        )
    if error.errno == errno.EACCES:  # Linux's word for an ICMPv6 "administratively prohibited"
        server = host.split("%", 1)[0]  # a link-local zone names an interface of this PC only
        return UnreachableError(
            f"A firewall rejected the connection to {where} as 'administratively prohibited' "
            f"({error.strerror}): most likely the firewall on {server} does not let port {port} "
            "in (a router's or this PC's rules can say the same).",
            f"Run `lanchat doctor --port {port}` on {server}: it prints the rule to add.",
        )
    return UnreachableError(f"Cannot connect to {where}: {error.strerror or error}.", hint)


class ConnectionLost(Exception):
    """The connection ended while we still used it."""


class TlsRequired(Exception):
    """A plain hello was answered `tls-required`: connect again, over TLS (Connection.open)."""


@dataclass(frozen=True)
class TlsOptions:
    """How a client uses TLS with a server: whether it asks for it, and which key it expects
    (the pin in `known`, the default known_servers file when None, is looked up as well)."""

    wanted: bool = False  # --tls, LANCHAT_TLS, or the server's announcement said tls=1
    expect: Expectation = field(default_factory=Expectation)
    known: KnownServers | None = None

    def required(self, pin: Pin | None) -> bool:
        """Whether this connection must be TLS (and never plain)."""
        e = self.expect
        return self.wanted or pin is not None or e.fingerprint is not None or bool(e.session)

    def again(self, server_key: bytes | None) -> TlsOptions:
        """For reconnecting after a connection that accepted `server_key` (None: plain):
        TLS, with that key, even where it could not be pinned."""
        if server_key is None:
            return self
        return replace(self, wanted=True, expect=replace(self.expect, session=server_key))


class LineServer(Exception):  # not an error: `join` goes on as a line client
    """The other end is not a lanchat relay but a plain line server (ncat -l, ncat --chat).

    ``sock`` is connected and now the caller's; ``first`` holds what the server said so far;
    ``hello_sent``: the server greeted like a relay but did not answer the hello as one, so it
    got that one line of JSON (a silent server gets nothing).
    """

    def __init__(
        self, sock: socket.socket, host: str, port: int, first: bytes, *, hello_sent: bool
    ) -> None:
        super().__init__(f"{host_port(host, port)} is not a lanchat relay")
        self.sock = sock
        self.host = host
        self.port = port
        self.first = first
        self.hello_sent = hello_sent


class HandshakeFailed(UnreachableError):
    """The port accepted the connection but no lanchat greeting came back.

    ``kind``: "foreign" (something else answered), "silent" (no answer in time) or "dropped"
    (the connection was closed or reset). The doctor tells these apart.
    """

    def __init__(
        self, message: str, hint: str | None = None, *, kind: str, said: bytes = b""
    ) -> None:
        super().__init__(message, hint)
        self.kind = kind
        self.said = said  # the lines a foreign server sent


@dataclass(frozen=True)
class Credentials:
    """A login: a SCRAM user name (LOGIN_ROOM, LOGIN_OPERATOR, LOGIN_CONSOLE) and its secret,
    kept for reconnects (which log in again without asking)."""

    username: str
    password: str = field(repr=False)

    @property
    def operator(self) -> bool:
        """Whether this login makes us an operator (then we ask for a login in any room)."""
        return self.username != LOGIN_ROOM


class PasswordNeeded(RejectedError):
    """The relay asks for a password and we were given none: ask, then open again."""

    tls_note: str | None = None  # the key was pinned on this connection: say so before asking


def _login_failed(where: str, code: str, message: str) -> LoginFailedError:
    hint = {
        "wrong-password": "Check the password (LANCHAT_PASSWORD, or type it again).",
        "login-locked": "Wait, then try again with the right password.",
        "server-not-verified": "Do not type the password there again; ask whoever runs the "
        "relay which address and port it has.",
        "channel-binding": "Someone may be between you and the relay; connect again on a "
        "network you trust.",
    }.get(code, "")
    return LoginFailedError(f"{where} did not log us in: {message}", hint or None, code=code)


@dataclass(frozen=True)
class Greeting:
    """What the server said right after the hello: who we are now, who is here, the history
    (after a resume: what we missed, and a gap when some of it is gone)."""

    welcome: Welcome
    who: WhoList | None
    history: tuple[Chat, ...]
    gap: Gap | None = None


class Connection:
    """One open session with a relay, after a successful handshake."""

    def __init__(self, sock: socket.socket, host: str, port: int, greeting: Greeting) -> None:
        self.sock = sock
        self.host = host
        self.port = port
        self.greeting = greeting
        # frames() pings a server silent for half this long, and ends (lost) when it is silent
        # for the other half too: a vanished server sends no FIN and no reset. 0: never.
        self.keepalive = DEFAULT_JOIN_KEEPALIVE_SECONDS
        self.name = greeting.welcome.name
        self.server_key: bytes | None = None  # over TLS: the server key's fingerprint
        self.tls_note: str | None = None  # over TLS, when its key was pinned just now
        # The highest seq read (the greeting covers everything up to the welcome's): where a
        # reconnect resumes. Written by the one thread that iterates frames().
        self.last_seq = greeting.welcome.seq
        self._decoder = LineDecoder(MAX_SERVER_LINE)
        self._ready: list[ServerFrame] = []
        self._send_lock = threading.Lock()

    @classmethod
    def open(
        cls,
        host: str,
        port: int,
        *,
        name: str | None,
        exact: bool = False,
        timeout: float = CONNECT_TIMEOUT,
        listen_first: bool = False,
        resume: Resume | None = None,
        keepalive: float = DEFAULT_JOIN_KEEPALIVE_SECONDS,
        tls: TlsOptions | None = None,
        credentials: Credentials | None = None,
    ) -> Connection:
        """Connect and say hello (resuming where `resume` says, if given); UnreachableError or
        RejectedError explain a failure, ServerKeyError a key that is not the one expected.

        `listen_first` (a typed address, which may be any line server): wait for the server to
        speak first and send the hello only if it greeted like a relay (its raw greeting);
        LineServer when it is silent, says something else, or does not answer the hello.
        `tls`: when to use TLS and which key to expect (the module's docstring).

        `credentials`: log in with these when the relay asks (SCRAM: the password never
        crosses the wire; -PLUS over TLS); operator credentials ask to log in in any room.
        PasswordNeeded when the relay asks and there are none; LoginFailedError when the
        login does not work."""
        tls = tls if tls is not None else TlsOptions()
        known = tls.known if tls.known is not None else KnownServers()
        pin = known.lookup(host_port(host, port))
        secure = tls.required(pin)
        args = (host, port, name, exact, timeout, listen_first, resume, keepalive, credentials)
        try:
            return cls._open(*args, tls=(tls, known, pin) if secure else None)
        except TlsRequired:  # a relay that takes TLS only: again, over TLS, at once
            return cls._open(*args, tls=(tls, known, pin))

    @classmethod
    def _open(
        cls,
        host: str,
        port: int,
        name: str | None,
        exact: bool,
        timeout: float,
        listen_first: bool,
        resume: Resume | None,
        keepalive: float,
        credentials: Credentials | None,
        *,
        tls: tuple[TlsOptions, KnownServers, Pin | None] | None,
    ) -> Connection:
        try:
            sock = socket.create_connection((host, port), timeout=timeout)
        except OSError as e:
            raise describe_connect_error(host, port, e, timeout) from None
        server_key = note = None
        try:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            if tls is not None:
                secured, server_key, note = _secure(sock, host, port, timeout, *tls)
                # A TlsSocket offers every socket method used below (lanchat/tls/transport.py).
                sock = cast(socket.socket, secured)
            said = None
            if listen_first:
                said = _listen_first(sock, host, port, min(timeout, GREETING_WAIT_SECONDS))
                first = said.split(b"\n", 1)[0].rstrip(b"\r") if said else b""
                code = _raw_refusal(first)
                if code == "tls-required" and tls is None:
                    raise TlsRequired()
                if code is not None:
                    message = first[2:].decode("utf-8", "replace")
                    if code in LOGIN_FAILURES:
                        raise _login_failed(host_port(host, port), code, message)
                    raise RejectedError(
                        f"{host_port(host, port)} refused to let us in: {message}",
                        _refusal_hint(code),
                        code=code,
                    )
                relay = _RAW_WELCOME.fullmatch(first) or _RAW_LOGIN.fullmatch(first)
                if said is None or not relay:
                    raise LineServer(sock, host, port, said or b"", hello_sent=False)
            operator = credentials is not None and credentials.operator
            software = f"lanchat {__version__}"
            hello = Hello(PROTOCOL_VERSION, name, exact, software, resume, login=operator)
            _send_then_listen(sock, encode_request(hello))
            wait = min(timeout, HELLO_ANSWER_SECONDS) if listen_first else timeout
            try:
                conn = cls._handshake(
                    sock,
                    host,
                    port,
                    wait,
                    greeted_as_raw=said is not None,
                    credentials=credentials,
                    timeout=timeout,
                )
            except HandshakeFailed as e:
                if listen_first and e.kind in ("foreign", "silent"):
                    # What it said first (the greeting that looked like a relay's) is shown
                    # too, before what it said after our hello.
                    first_words = (said or b"") + e.said
                    raise LineServer(sock, host, port, first_words, hello_sent=True) from None
                raise
        except LineServer:
            raise
        except BaseException as e:
            sock.close()
            if isinstance(e, PasswordNeeded):
                e.tls_note = note  # pinned here; the next connection will not say so
            raise
        sock.settimeout(None)
        conn.keepalive = keepalive
        conn.server_key, conn.tls_note = server_key, note
        return conn

    @classmethod
    def _handshake(
        cls,
        sock: socket.socket,
        host: str,
        port: int,
        wait: float,
        *,
        greeted_as_raw: bool,
        credentials: Credentials | None = None,
        timeout: float = CONNECT_TIMEOUT,
    ) -> Connection:
        """The answer to our hello: the greeting, after a login if the relay asks for one."""
        decoder = LineDecoder(MAX_SERVER_LINE)
        where = host_port(host, port)

        def greeted(frames: list[ServerFrame]) -> Connection | None:
            greeting = _greeting_from(frames)
            if greeting is None:
                return None
            conn = cls(sock, host, port, greeting)
            conn._decoder = decoder
            # After a raw greeting the relay's rename of the guest may come before the welcome.
            start = next(i for i, f in enumerate(frames) if isinstance(f, Welcome))
            conn._ready = frames[start + _greeting_length(greeting) :]
            return conn

        def greeted_or_asked(frames: list[ServerFrame]) -> Connection | LoginNeeded | None:
            asked = next((f for f in frames if isinstance(f, LoginNeeded)), None)
            return asked if asked is not None else greeted(frames)

        answer = cast(  # mypy cannot solve T from a callable that returns a union
            "Connection | LoginNeeded",
            _await_answer(
                sock, where, wait, decoder, greeted_or_asked, refused_as_raw=greeted_as_raw
            ),
        )
        if isinstance(answer, Connection):
            if credentials is not None and credentials.operator:
                raise LoginFailedError(
                    f"{where} let us in without a login, so not as an operator: its lanchat "
                    "does not know operator logins, or our hello came too late.",
                    "Try again; if it says the same, update lanchat on the server.",
                )
            return answer
        if credentials is None:
            raise PasswordNeeded(f"{where} needs a password to join.", answer.message)
        scram = ScramClient(
            credentials.username, credentials.password, binding=channel_binding(sock)
        )
        if scram.mechanism not in answer.mechanisms:
            raise LoginFailedError(
                f"{where} offers {', '.join(answer.mechanisms) or 'no login'} here, not "
                f"{scram.mechanism}: someone may be in between, or the relay is too new or old.",
                "Check that this is the relay you mean; update lanchat on one side.",
            )
        _send_then_listen(sock, encode_request(Login(scram.mechanism, scram.first())))

        def challenged(frames: list[ServerFrame]) -> LoginChallenge | None:
            return next((f for f in frames if isinstance(f, LoginChallenge)), None)

        challenge = _await_answer(sock, where, timeout, decoder, challenged)
        try:
            final = scram.final(challenge.data)
        except ScramError as e:
            raise _login_failed(where, e.code, e.message) from None
        _send_then_listen(sock, encode_request(Login(data=final)))
        verified: list[bool] = []

        def greeted_after_login(frames: list[ServerFrame]) -> Connection | None:
            ok = next((f for f in frames if isinstance(f, LoginOk)), None)
            if ok is None:
                return None
            if not verified:
                try:
                    scram.check(ok.data)  # the relay knows the verifier: it is the real one
                except ScramError as e:
                    raise _login_failed(where, e.code, e.message) from None
                verified.append(True)
            return greeted(frames)

        return _await_answer(sock, where, timeout, decoder, greeted_after_login)

    @property
    def resume(self) -> Resume | None:
        """What a reconnect sends to get exactly what this connection missed (None: the server
        does not resume)."""
        epoch = self.greeting.welcome.epoch
        return Resume(epoch, self.last_seq) if epoch else None

    def send(self, request: Request) -> None:
        """Send one request; ConnectionLost if the connection is gone."""
        try:
            with self._send_lock:
                self.sock.sendall(encode_request(request))
        except OSError as e:
            raise ConnectionLost(str(e)) from None

    def frames(self) -> Iterator[ServerFrame]:
        """Frames as they arrive; ends when the server closes the connection, or stays silent
        through a keepalive ping and its wait (`keepalive`)."""
        pinged = False  # a keepalive ping is out and nothing has come back since
        wait = self.keepalive / 2 if self.keepalive > 0 else None
        while True:
            while self._ready:
                frame = self._ready.pop(0)
                self.last_seq = max(self.last_seq, frame.seq)
                if type(frame) is Pong and frame.token == KEEPALIVE_PING:
                    continue  # ours: it only says the server is there
                if type(frame) is Mark:
                    continue  # only a resume point (taken above): nothing to show
                yield frame
            try:
                # select(), not a socket timeout: that would apply to our sends as well (what a
                # TLS session holds already is not on the socket for select() to see)
                if not self._buffered() and not select.select([self.sock], [], [], wait)[0]:
                    if pinged:
                        return  # silent through a whole keepalive: the server is gone
                    pinged = True
                    self._ping()
                    continue
                data = self._recv_ready()
            except BlockingIOError:
                continue  # part of a TLS record: wait for the rest like for anything else
            except (OSError, ValueError):  # ValueError: closed meanwhile (select on fd -1)
                return
            if not data:
                return
            pinged = False
            for line in self._decoder.feed(data):
                if isinstance(line, LineTooLong):
                    continue
                try:
                    self._ready.append(parse_event(line))
                except FrameError:
                    continue  # a frame from a newer server we do not know: skip it

    def _recv_ready(self) -> bytes:
        """What a readable socket holds, without waiting for more (over TLS: BlockingIOError
        while a record is incomplete)."""
        if isinstance(self.sock, TlsSocket):
            return self.sock.recv(65536, wait=False)
        return self.sock.recv(65536)

    def _buffered(self) -> bool:
        pending = getattr(self.sock, "pending", None)
        return bool(pending is not None and pending())

    @property
    def tls(self) -> bool:
        """Whether this connection is TLS."""
        return self.server_key is not None

    def _ping(self) -> None:
        """Ask the server to show it is there, without waiting: a sender stuck on a full socket
        (the server reads nothing) holds the lock, and then the ping is not needed to know."""
        if not self._send_lock.acquire(blocking=False):
            return
        try:
            self.sock.send(encode_request(Ping(KEEPALIVE_PING)), SEND_FLAGS)
        except OSError:
            pass  # a full socket or a broken one: the next silence ends the connection
        finally:
            self._send_lock.release()

    def hang_up(self) -> None:
        """Tell the server we are gone (a FIN) without closing the socket, which another thread
        may still be using: a relay frozen for a while and then back frees our name at once,
        instead of refusing our reconnect with "That name is taken" for as long as the old
        connection stays open."""
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass

    def close(self) -> None:
        self.hang_up()
        self.sock.close()


def _await_answer(
    sock: socket.socket,
    where: str,
    timeout: float,
    decoder: LineDecoder,
    answered: Callable[[list[ServerFrame]], T | None],
    *,
    refused_as_raw: bool = False,
) -> T:
    """Read frames until `answered` accepts them; HandshakeFailed says what came instead.
    `refused_as_raw`: we were greeted as a raw client, so a refusal comes as a '! ' line."""
    deadline = time.monotonic() + timeout
    frames: list[ServerFrame] = []
    foreign: list[bytes] = []
    closed = False  # the server hung up without answering
    while True:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            break
        sock.settimeout(remaining)
        try:
            data = sock.recv(65536)
        except TimeoutError:
            break
        except OSError as e:
            raise HandshakeFailed(
                f"{where} accepted the connection, then dropped it ({e.strerror or e}).",
                f"Is it a lanchat server? Run `lanchat doctor {where}`.",
                kind="dropped",
            ) from None
        if not data:
            closed = True
            break
        for line in decoder.feed(data):
            if isinstance(line, LineTooLong):
                continue
            try:
                frames.append(parse_event(line))
            except FrameError:
                foreign.append(line)
        result = answered(frames)
        if result is not None:
            return result
        for frame in frames:
            if isinstance(frame, Problem):
                if frame.code == "tls-required":
                    raise TlsRequired()
                if frame.code in LOGIN_FAILURES:
                    raise _login_failed(where, frame.code, frame.message)
                raise RejectedError(
                    f"{where} refused to let us in: {frame.message}",
                    _refusal_hint(frame.code),
                    code=frame.code,
                )
    refusal = next((line for line in foreign if line.startswith(b"! ")), None)
    # A refusal as a '! ' line: to a client greeted as raw, or at accept, before the relay
    # knows what kind of client this is (too many connections from one address).
    if (refused_as_raw or not frames) and closed and refusal is not None:
        said = refusal[2:].decode("utf-8", "replace")
        code = _raw_refusal(refusal) or ""
        if code == "tls-required":
            raise TlsRequired()
        raise RejectedError(f"{where} refused to let us in: {said}", _refusal_hint(code), code=code)
    if foreign and not frames:
        sample = foreign[0].decode("utf-8", "replace")[:60]
        raise HandshakeFailed(
            f"{where} answered, but it is not a lanchat server (it said: {sample!r}).",
            "Check the port number: lanchat's default is 7420.",
            kind="foreign",
            said=b"".join(line + b"\n" for line in foreign),
        )
    if closed:
        raise HandshakeFailed(
            f"{where} accepted the connection, then closed it without a lanchat greeting.",
            f"Something else may be using that port. Run `lanchat doctor {where}`.",
            kind="dropped",
        )
    raise HandshakeFailed(
        f"{where} accepted the connection but did not answer the lanchat handshake "
        f"within {timeout:g} s.",
        f"Something else may be using that port. Run `lanchat doctor {where}`.",
        kind="silent",
    )


def _secure(
    sock: socket.socket,
    host: str,
    port: int,
    timeout: float,
    options: TlsOptions,
    known: KnownServers,
    pin: Pin | None,
) -> tuple[TlsSocket, bytes, str | None]:
    """TLS on a connected socket, with the server's key checked before anything is said:
    (the TLS session, the key's fingerprint, a note when it was pinned now)."""
    where = host_port(host, port)
    try:
        secured = connect_tls(sock, timeout)
    except NotTls as e:
        first = e.said.split(b"\n", 1)[0].rstrip(b"\r")
        code = _raw_refusal(first)
        if code is not None and code != "tls-required":
            # Refused as the connection was accepted (too many, --deny, a ban): the relay says
            # that one plain line before it knows the client speaks TLS. Not a downgrade:
            # nothing is sent, and being told no is all it gets.
            message = first[2:].decode("utf-8", "replace")
            raise RejectedError(
                f"{where} refused to let us in: {message}", _refusal_hint(code), code=code
            ) from None
        if pin is not None:
            raise ServerKeyError(
                f"{where} answered without TLS, but it is pinned (line {pin.line} of "
                f"{pin.path}): refusing to fall back to a plain connection, which anyone in "
                f"between could read and change (a downgrade). It said: {e}.",
                f"If that server really runs without TLS now, delete line {pin.line} of "
                f"{pin.path} and join again.",
            ) from None
        raise UnreachableError(
            f"{where} answered, but not with TLS ({e}).",
            "Is it a lanchat relay started with `lanchat serve --tls`? A relay without TLS "
            "is joined without --tls and --fingerprint.",
        ) from None
    except (TlsHandshakeError, OSError) as e:
        raise UnreachableError(
            f"The TLS handshake with {where} did not complete: {e}.",
            f"Run `lanchat doctor {where}` to find out why.",
        ) from None
    key = secured.fingerprint
    return secured, key, check_server_key(where, key, options.expect, known)


def _send_then_listen(sock: socket.socket, data: bytes) -> None:
    """Send a step of the handshake. When the server has closed or reset the connection (a
    relay stopping or restarting as we reconnect, a refusal at accept), say nothing here: what
    it said before it went, and that it went, are read next (_await_answer), and become the
    refusal or the HandshakeFailed that reconnect() retries, not a bare OSError."""
    try:
        sock.sendall(data)
    except OSError:
        pass


def _listen_first(sock: socket.socket, host: str, port: int, seconds: float) -> bytes | None:
    """What the server says before we do, up to its first line, within `seconds`; None when
    it says nothing (a plain `ncat -l`; a relay greets after DETECT_SECONDS)."""
    deadline = time.monotonic() + seconds
    data = b""
    while b"\n" not in data:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            break
        sock.settimeout(remaining)
        try:
            chunk = sock.recv(65536)
        except TimeoutError:
            break
        except OSError as e:
            raise HandshakeFailed(
                f"{host_port(host, port)} accepted the connection, then dropped it "
                f"({e.strerror or e}).",
                f"Run `lanchat doctor {host_port(host, port)}`.",
                kind="dropped",
            ) from None
        if not chunk:
            if data:
                break
            raise HandshakeFailed(
                f"{host_port(host, port)} accepted the connection, then closed it without a word.",
                f"Something else may be using that port. Run `lanchat doctor "
                f"{host_port(host, port)}`.",
                kind="dropped",
            )
        data += chunk
    return data or None


def probe_server(sock: socket.socket, host: str, port: int, timeout: float) -> ProbeAnswer:
    """Ask a connected socket whether a lanchat server is there, without joining its room.

    HandshakeFailed (foreign, silent, dropped) when no lanchat server answers. The socket is
    left open for the caller to close (closing first keeps TIME_WAIT off the server).
    """
    sock.sendall(encode_probe_request())

    def probed(frames: list[ServerFrame]) -> ProbeAnswer | None:
        return next((f for f in frames if isinstance(f, ProbeAnswer)), None)

    return _await_answer(sock, f"{host}:{port}", timeout, LineDecoder(MAX_SERVER_LINE), probed)


def _greeting_from(frames: list[ServerFrame]) -> Greeting | None:
    """The greeting once welcome, who and all announced history frames have arrived."""
    for i, frame in enumerate(frames):
        if isinstance(frame, Welcome):
            rest = frames[i + 1 :]
            if not rest:
                return None
            who = rest[0] if isinstance(rest[0], WhoList) else None
            rest = rest[1 if who else 0 :]
            gap = rest[0] if rest and isinstance(rest[0], Gap) else None
            history = [f for f in rest if isinstance(f, Chat) and f.history]
            if len(history) < frame.history:
                return None
            return Greeting(frame, who, tuple(history[: frame.history]), gap)
    return None


def _greeting_length(greeting: Greeting) -> int:
    return 1 + (greeting.who is not None) + (greeting.gap is not None) + len(greeting.history)


def _refusal_hint(code: str) -> str:
    return {
        "name-taken": "Choose another name with --name.",
        "name-reserved": "Choose another name with --name.",
        "bad-name": "Names have 1-24 letters, digits, '-', '_' or '.'; choose one with --name.",
        "server-full": "Try again later, or ask whoever runs the server to raise --max-clients.",
        "unsupported-version": "Update lanchat on this computer or on the server.",
        "shutdown": "The server is stopping; try again when it is back.",
        "too-many-connections": "Close other lanchat windows on this PC, or ask whoever runs "
        "the server to raise --max-per-address.",
        "denied": "The server lets in only some addresses (lanchat serve --allow, --deny); "
        "ask whoever runs it.",
        "banned": "An operator banned this address until the server restarts; ask them to "
        "lift it (/unban) if that was a mistake.",
    }.get(code, "")


def reconnect(
    open_connection: Callable[[], Connection],
    *,
    stop: threading.Event,
    on_wait: Callable[[float, Exception], None],
    until: float | None = None,
) -> Connection | None:
    """Try again with growing pauses until connected, `stop` is set or the monotonic clock
    passes `until` (then None). A login that fails (LoginFailedError: the password changed,
    the relay is not verified) is raised at once: trying again would only lock us out."""
    attempt = 0
    while not stop.is_set():
        try:
            return open_connection()
        except (UnreachableError, RejectedError) as e:
            delay = RECONNECT_DELAYS[min(attempt, len(RECONNECT_DELAYS) - 1)]
            attempt += 1
            if until is not None:
                left = until - time.monotonic()
                if left <= 0:
                    return None
                delay = min(delay, left)
            on_wait(delay, e)
            if stop.wait(delay):
                return None
    return None


def goodbye_reason(frame: ServerFrame) -> str | None:
    """The reason when `frame` ends the session."""
    return frame.reason if isinstance(frame, Goodbye) else None


def query_relay(host: str, port: int, timeout: float = QUERY_TIMEOUT) -> dict[str, Any]:
    """Ask a relay for its status document; OSError or ValueError when that fails."""
    with socket.create_connection((host, port), timeout=timeout) as sock:
        sock.sendall(encode_status_request())
        decoder = LineDecoder(MAX_STATUS_LINE)
        deadline = time.monotonic() + timeout
        while True:
            sock.settimeout(max(0.01, deadline - time.monotonic()))
            data = sock.recv(1 << 20)
            lines = decoder.feed(data) if data else decoder.finish()
            if lines:
                line = lines[0]
                if not isinstance(line, bytes):
                    raise ValueError("the status answer was too long")
                document = json.loads(line)
                if not isinstance(document, dict):
                    raise ValueError("not a status document")
                if document.get("type") == "error":
                    raise ValueError(str(document.get("message")))
                if document.get("type") != "status":
                    raise ValueError("not a lanchat relay")
                return document
            if not data:
                raise ValueError("the connection closed without an answer")
