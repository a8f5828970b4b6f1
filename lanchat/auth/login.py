"""Logging in before joining, sans-IO: one connection's conversation with the relay's Gate.

A relay with a room password lets nobody into the room before they log in: until then a
client sees nothing of the room, is announced to nobody and counts for nothing there (only the
per-address connection limit applies). The connection's reader thread (lanchat/connection.py)
feeds this conversation the client's lines and sends what it returns straight to the socket
(nobody else writes to it before the client joins); `Step.outcome` says when it is over:
Admitted (join the room, perhaps as an operator) or Leave (hang up). Gate is the relay's
policy, Conversation one connection's login.

How each kind of client logs in (docs/protocol.md, "Logging in"):

* lanchat clients: `login-needed`, then SCRAM (`login` / `login-challenge` / `login-ok`): the
  password never crosses the wire. A hello with `"login": true` asks for this conversation in a
  room without a password too: that is how an operator logs in.
* raw clients (ncat, telnet): `/login PASSWORD`, a cleartext password, so it is taken only over
  TLS or with `serve --allow-plain-login`; otherwise the client is told how to connect instead
  and the password is not checked. A raw client's first line may still be a lanchat hello
  (`lanchat join HOST` listens first, then says hello): the conversation becomes a lanchat one.
* browsers: a `login` message with the password, under the same rule as raw clients.

A wrong password costs a pause (FAILURE_DELAY, on the connection's own thread: nobody else
waits) and counts against the address (lanchat/auth/attempts.py); too many, and the address is
locked out for a while. Logins with the operator token are never locked out (attempts.py says
why), which is why a lanchat client's lock is checked once its SCRAM user name is known.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from lanchat.auth.attempts import LoginAttempts
from lanchat.auth.secrets import Secrets
from lanchat.protocol import (
    LOGIN_CONSOLE,
    LOGIN_OPERATOR,
    LOGIN_ROOM,
    ClientKind,
    Event,
    FrameError,
    Goodbye,
    Hello,
    LineTooLong,
    Login,
    LoginChallenge,
    LoginNeeded,
    LoginOk,
    Ping,
    Pong,
    Problem,
    Quit,
    decode_line,
    parse_raw_line,
    parse_request,
)
from lanchat.protocol.detect import client_kind, hello_or_none
from lanchat.protocol.scram import ScramError, ScramServer, matching, mechanisms

LOGIN_SECONDS = 120.0  # from the first byte to a login (a person typing on a phone)
MAX_LOGIN_LINES = 20  # lines (logins, blank ones, all) without a login: then a hang-up
MAX_WRONG = 3  # wrong passwords on one connection before it is hung up on
FAILURE_DELAY = 1.0  # seconds before a wrong password is answered
OPERATORS = (LOGIN_OPERATOR, LOGIN_CONSOLE)


@dataclass(frozen=True)
class Gate:
    """A relay's login policy: its secrets, the attempt limit, and what plain TCP may carry.
    Every reader thread shares it: it never changes, but for `attempts`, which has its own
    lock (lanchat/auth/attempts.py)."""

    secrets: Secrets
    attempts: LoginAttempts = field(default_factory=LoginAttempts)
    allow_plain_login: bool = False  # take cleartext passwords without TLS (a documented risk)
    tls_offered: bool = False  # this relay's port speaks TLS: `ncat --ssl` can log in

    @property
    def required(self) -> bool:
        """Whether joining needs a password."""
        return self.secrets.required

    def asks(self, hello: Hello | None) -> bool:
        """Whether a client with this hello logs in before it joins."""
        return self.required or (hello is not None and hello.login)

    def cleartext_ok(self, encrypted: bool) -> bool:
        """Whether a cleartext password may be taken on a connection (TLS or not)."""
        return encrypted or self.allow_plain_login


@dataclass(frozen=True)
class Admitted:
    """Logged in: join the room with `hello` (a raw client may have said one meanwhile)."""

    hello: Hello | None
    operator: bool


@dataclass(frozen=True)
class Leave:
    """The conversation is over without a login: hang up (`refused`: the client did not leave
    by itself, so it gets a refusal's last words)."""

    refused: bool = True


@dataclass(frozen=True)
class Step:
    """What the reader does next: wait `pause` seconds, send `say`, count `refusal` in the
    refusal log (lanchat/admission.py's reasons), and stop when `outcome` is set."""

    say: tuple[Event, ...] = ()
    pause: float = 0.0
    refusal: str | None = None
    outcome: Admitted | Leave | None = None


class Conversation:
    """One connection's login (see the module's docstring); not thread-safe: its reader's."""

    def __init__(
        self,
        gate: Gate,
        *,
        hello: Hello | None,
        web: bool,
        address: str,
        local: tuple[str, int],
        binding: bytes | None,
        seq: Callable[[], int],
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.gate = gate
        self.hello = hello
        self.kind: ClientKind = client_kind(hello, web=web)
        self.address = address
        self._local = local
        self._binding = binding
        self._seq = seq
        self._clock = clock
        self._scram: ScramServer | None = None
        self._lines = 0  # lines read so far
        self._failures = 0
        self._fresh = True  # nothing read yet: a raw client's lanchat hello may still come

    @property
    def cleartext_ok(self) -> bool:
        return self.gate.cleartext_ok(self._binding is not None)

    # --- what the reader calls ---------------------------------------------------------------

    def start(self) -> Step:
        """The first words: what to do to log in, or a lock that is still on."""
        locked = self.gate.attempts.locked_for(self.address)
        if locked and self.kind != "lanchat":  # a lanchat client may hold the operator token
            return self._locked(locked)
        return Step((self._needed(),))

    def feed(self, line: bytes | LineTooLong) -> Step:
        """One line (a WebSocket message for a browser) from the client. Every line counts,
        logins and blank ones too: a client cannot keep its reader busy without logging in."""
        self._lines += 1
        if self._lines > MAX_LOGIN_LINES:
            text = f"{MAX_LOGIN_LINES} lines and no login; goodbye."
            return self._leave(self._problem("login-needed", text), "no-login")
        fresh, self._fresh = self._fresh, False
        if self.kind == "raw":
            hello = hello_or_none(line) if fresh else None
            if hello is not None:  # `lanchat join HOST` listened first, then said hello
                self.hello, self.kind = hello, "lanchat"
                return Step((self._needed(),))
            return self._raw(line)
        return self._frame(line)

    def expired(self) -> Step:
        """LOGIN_SECONDS passed without a login."""
        text = f"No login within {LOGIN_SECONDS:g} s; goodbye."
        return self._leave(Problem(self._seq(), self._clock(), "login-timeout", text), "no-login")

    # --- raw clients and frames --------------------------------------------------------------

    def _raw(self, line: bytes | LineTooLong) -> Step:
        try:
            request = None if isinstance(line, LineTooLong) else parse_raw_line(decode_line(line))
        except FrameError as e:
            if e.code == "bad-login":  # "/login" without a password, "//login ..."
                return Step((self._problem(e.code, e.message),))
            request = None
        if isinstance(request, Login) and request.password is not None:
            return self._cleartext(request.password)
        if isinstance(request, Quit):
            return self._bye()
        if request is None and not isinstance(line, LineTooLong) and not line.strip():
            return Step()  # a blank line: nothing to remind anyone of
        return self._reminder()

    def _frame(self, line: bytes | LineTooLong) -> Step:
        if isinstance(line, LineTooLong):
            return self._reminder()
        try:
            request = parse_request(line)
        except FrameError as e:
            return Step((self._problem(e.code, e.message),))
        if isinstance(request, Login):
            if request.password is not None:
                return self._cleartext(request.password)
            if request.mechanism:
                return self._scram_first(request.mechanism, request.data)
            return self._scram_final(request.data)
        if isinstance(request, Quit):
            return self._bye()
        if isinstance(request, Ping):
            return Step((Pong(self._seq(), self._clock(), request.token),))
        return self._reminder()

    # --- SCRAM -------------------------------------------------------------------------------

    def _scram_first(self, mechanism: str, data: str) -> Step:
        server = ScramServer(self.gate.secrets.lookup, binding=self._binding)
        try:
            challenge = server.first(mechanism, data)
        except ScramError as e:
            if e.code == "unknown-user":
                return Step((self._problem(e.code, self._unknown(server.username)),))
            return Step((self._problem(e.code, e.message),))
        locked = self.gate.attempts.locked_for(self.address)
        if locked and server.username != LOGIN_CONSOLE:
            return self._locked(locked)
        self._scram = server
        return Step((LoginChallenge(self._seq(), self._clock(), challenge),))

    def _scram_final(self, data: str) -> Step:
        server, self._scram = self._scram, None
        if server is None:
            return Step((self._problem("bad-login", "A login must start with a mechanism."),))
        with self.gate.attempts.one_at_a_time(self.address):
            # Checked again here: a challenge taken before the lock must not get its proof
            # checked after it (a guess per open connection, the lock an oracle for the right one).
            locked = self.gate.attempts.locked_for(self.address)
            if locked and server.username != LOGIN_CONSOLE:
                return self._locked(locked)
            try:
                proof = server.final(data)
            except ScramError as e:
                if e.code == "wrong-password":
                    return self._wrong()
                return Step((self._problem(e.code, e.message),), refusal="bad-login")
            return self._admit(server.username, proof)

    def _unknown(self, username: str) -> str:
        if username == LOGIN_OPERATOR:
            return "This relay has no operator password (serve --operator-password-file)."
        if username == LOGIN_ROOM:
            return "This room has no password."
        return f"No login named {username[:40]!r} here (room, operator, console)."

    # --- cleartext passwords (raw clients, browsers) ---------------------------------------

    def _cleartext(self, password: str) -> Step:
        if not self.cleartext_ok:
            text = f"The password was not checked: {self._not_encrypted()}"
            return self._leave(self._problem("plain-login", text), "plain-login")
        with self.gate.attempts.one_at_a_time(self.address):  # (attempts.py says why)
            locked = self.gate.attempts.locked_for(self.address)
            if locked:
                return self._locked(locked)
            login = self._login_of(password)
            return self._wrong() if login is None else self._admit(login, "")

    def member_login(self, password: str) -> Step:
        """A member's /login (a raw client; a browser's `login`): the operator password or the
        token makes it an operator. Never hangs up: a member stays a member."""
        if not self.cleartext_ok:
            text = f"The password was not checked: {self._not_encrypted(operator=True)}"
            return Step((self._problem("plain-login", text),), refusal="plain-login")
        with self.gate.attempts.one_at_a_time(self.address):  # (attempts.py says why)
            locked = self.gate.attempts.locked_for(self.address)
            if locked:
                return Step((self._problem("login-locked", self._lock_text(locked)),))
            login = self._login_of(password)
            if login in OPERATORS:
                return self._admit(login, "")
            if login == LOGIN_ROOM:
                text = "That is the room's password; here /login takes the operator password."
                return Step((self._problem("bad-login", text),))
            wrong = self._wrong()
            return Step(wrong.say, wrong.pause, wrong.refusal)

    def _login_of(self, password: str) -> str | None:
        """Whose secret a cleartext password is: an operator's first, then the room's."""
        found = matching(self.gate.secrets.by_name(), password)
        return next((name for name in found if name in OPERATORS), None) or next(iter(found), None)

    # --- outcomes ----------------------------------------------------------------------------

    def _admit(self, username: str, proof: str) -> Step:
        self.gate.attempts.succeeded(self.address)
        operator = username in OPERATORS
        ok = LoginOk(self._seq(), self._clock(), proof, operator)
        return Step((ok,), outcome=Admitted(self.hello, operator))

    def _wrong(self) -> Step:
        self._failures += 1
        locked = self.gate.attempts.failed(self.address)
        if locked:
            problem = self._problem("login-locked", self._lock_text(locked))
            return Step((problem,), FAILURE_DELAY, "bad-password", Leave())
        if self._failures >= MAX_WRONG:
            text = f"Wrong password, {MAX_WRONG} times on this connection; goodbye."
            return Step(
                (self._problem("wrong-password", text),), FAILURE_DELAY, "bad-password", Leave()
            )
        again = " Try again: /login PASSWORD" if self.kind == "raw" else ""
        problem = self._problem("wrong-password", f"Wrong password.{again}")
        return Step((problem,), FAILURE_DELAY, "bad-password")

    def _locked(self, seconds: float) -> Step:
        return self._leave(self._problem("login-locked", self._lock_text(seconds)), "login-locked")

    def _lock_text(self, seconds: float) -> str:
        minutes = max(1, math.ceil(seconds / 60))
        unit = "minute" if minutes == 1 else "minutes"
        return f"Too many wrong passwords from {self.address}; try again in {minutes} {unit}."

    def _reminder(self) -> Step:
        if not self.cleartext_ok and self.kind != "lanchat":
            text = self._not_encrypted()
        elif self.kind == "raw":
            text = "Log in first: type /login PASSWORD. Nothing reaches the room before."
        else:
            text = "Log in first (a login frame); nothing reaches the room before."
        return Step((self._problem("login-needed", text),))

    def _bye(self) -> Step:
        bye = Goodbye(self._seq(), self._clock(), "quit", "Goodbye.")
        return Step((bye,), outcome=Leave(refused=False))

    def _leave(self, problem: Problem, refusal: str) -> Step:
        return Step((problem,), refusal=refusal, outcome=Leave())

    # --- the words ---------------------------------------------------------------------------

    def _needed(self) -> LoginNeeded:
        ok = self.cleartext_ok
        if self.kind == "raw":
            text = (
                "This room needs a password: type /login PASSWORD (or /quit to leave)."
                if ok
                else f"This room needs a password, and {self._not_encrypted()}"
            )
        elif self.kind == "web" and not ok:
            text = f"This room needs a password, and {self._not_encrypted()}"
        elif not self.gate.required:
            text = "Log in as an operator."
        else:
            text = "This room needs a password."
        return LoginNeeded(self._seq(), self._clock(), mechanisms(self._binding), ok, text)

    def _not_encrypted(self, *, operator: bool = False) -> str:
        """Why no cleartext password is taken here, and how to connect instead."""
        host, port = self._local
        shown = f"[{host}]" if ":" in host else host
        join = f"lanchat join {'--operator ' if operator else ''}{shown}:{port}"
        if self.kind == "web":
            instead = (
                f"open https://{shown}:{port}/" if self.gate.tls_offered else f"join with `{join}`"
            )
            return (
                "this page is not encrypted, so it takes no password (others on the network "
                f"could read it): {instead} instead."
            )
        tls = f", or over TLS: `ncat --ssl {host} {port}`" if self.gate.tls_offered else ""
        return (
            "this connection is not encrypted, so it takes no password (others on the network "
            f"could read it). Join with `{join}` (it never sends the "
            f"password itself){tls}."
        )

    def _problem(self, code: str, message: str) -> Problem:
        return Problem(self._seq(), self._clock(), code, message)
