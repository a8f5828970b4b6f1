"""TlsSocket: TLS over a connection's own socket, used by two threads at once; and the server's
and the client's handshakes (standard library only).

Why not ssl.SSLSocket: a relay's reader thread blocks in recv() while the fan-out's writer sends
to the same client from another thread (fanout.py). OpenSSL does not allow SSL_read and
SSL_write on one SSL object at the same time, and an SSLSocket releases the GIL inside both. So
the TLS state is an ssl.SSLObject over two memory BIOs, and every call into it is made under one
lock, while the waiting (the raw socket's recv) happens outside it:

    recv()    takes the lock, asks the SSLObject for plaintext; if it has none, lets the lock
              go and waits in the raw socket's recv() (for at most settimeout()'s time, kept
              here: the raw socket itself is never timed, see __init__), then takes the lock
              again to feed the ciphertext in.
    send()    never blocks, whatever the flags (every caller of send() on a client socket means
              MSG_DONTWAIT: the fan-out, a client's keepalive ping): encrypts under the lock and
              hands the ciphertext to the raw socket with MSG_DONTWAIT.
    sendall() send() until everything is on the wire, waiting for room in select().

send() and the fan-out's backlog: the kernel may take only part of the ciphertext. What it did
not take is kept (`_unsent`) and goes out first on the next send(); until it has, send() takes
nothing new (BlockingIOError, or 0 when part of it went). So that the fan-out parks the client
and calls again once the socket is writable, send() then reports the last byte it encrypted as
not taken, and holds it (`_held`): the fan-out offers it again first, and it is skipped. (A
caller that ignores the count, as a client's ping does, never offers it again: the next data
starts with something else, and the byte counts as sent, which it is.) At most SEND_CHUNK bytes
of plaintext are encrypted per step, so `_unsent` holds at most one step's ciphertext: the rest
of what the client is owed stays in the fan-out, counted against MAX_BACKLOG_BYTES, and the
fan-out adds `unsent_bytes` to it (fanout.py, _owes_too_much).

Who owns what:

    field                          written by / under          read by / under
    _tls, _incoming, _outgoing     _lock (any thread)          _lock
    _unsent, _held                 _lock                       _lock; unsent_bytes reads the
                                                               length without it (a stale int)
    _eof                           _lock                       _lock
    _sock (the raw socket)         set once                    recv(): without the lock (it
                                                               blocks); sends: under the lock,
                                                               never blocking
    certificate, _binding,         set once by the handshake   anyone
      _fingerprint                 (or lazily, idempotent)

The handshakes run before a second thread knows the socket (the server's in the connection's
reader thread, blocking with a deadline; the client's before its threads start).
"""

from __future__ import annotations

import errno
import select
import socket
import ssl
import threading
import time
from typing import Any

SEND_FLAGS: int = getattr(socket, "MSG_DONTWAIT", 0)  # elsewhere the socket is non-blocking
SEND_CHUNK = 64 * 1024  # plaintext encrypted per step of send(): bounds the ciphertext kept
RAW_RECV_MIN = 1024  # the raw socket is read in at least this much (a record is up to 16 KiB)
HANDSHAKE_SECONDS = 10.0  # a slow phone on Wi-Fi is well within it (like HEAD_SECONDS)
TLS_RECORD = b"\x16"  # the first byte of a TLS handshake record (RFC 8446, 5.1): a ClientHello
# How long a relay with TLS waits for a client's first byte before it takes the client for a
# plain one that waits to be greeted (DETECT_SECONDS, 0.25 s, without TLS). A ClientHello that
# comes later cannot be served any more (the plain greeting went out first), so this is longer:
# a lost packet's retransmission (200 ms or more) or a client busy making many connections at
# once (1000 in scripts/bench lost a quarter at 0.25 s) still makes it. It stays well within
# what `lanchat join HOST` waits for a greeting (client.GREETING_WAIT_SECONDS, 1 s), so a plain
# join still hears the relay's greeting or its "TLS only" line in time.
FIRST_BYTE_SECONDS = 0.5


class TlsHandshakeError(ConnectionError):
    """The TLS handshake did not complete: its reason in words."""


class NotTls(TlsHandshakeError):
    """The peer answered the handshake with something that is not TLS (a plain server);
    `said` is what it sent (a relay refusing at accept says one plain line even to TLS)."""

    def __init__(self, reason: str, said: bytes = b"") -> None:
        super().__init__(reason)
        self.said = said


class TlsSocket:
    """A connected socket's TLS session, used like the socket it wraps (module docstring)."""

    is_tls = True

    def __init__(
        self,
        sock: socket.socket,
        tls: ssl.SSLObject,
        incoming: ssl.MemoryBIO,
        outgoing: ssl.MemoryBIO,
    ) -> None:
        self._sock = sock
        self._tls = tls
        self._incoming = incoming
        self._outgoing = outgoing
        self._lock = threading.Lock()
        self._unsent: bytes | memoryview = b""
        self._held = b""
        self._eof = False
        # recv()'s timeout, kept here: the raw socket itself stays blocking (or non-blocking),
        # never timed, because Python waits out a timed socket's timeout even in a send with
        # MSG_DONTWAIT, and a send under the lock must never wait.
        self._timeout: float | None = None
        self.certificate = b""  # the server's certificate (DER), ours or the peer's
        self._binding: bytes | None = None
        self._fingerprint: bytes | None = None

    # --- the handshake ------------------------------------------------------------------------

    def handshake(self, seconds: float) -> None:
        """Complete the handshake within `seconds`; TlsHandshakeError says why not."""
        sock = self._sock
        before = sock.gettimeout()
        deadline = time.monotonic() + seconds
        said = b""  # the peer's first bytes, for a NotTls
        try:
            while True:
                with self._lock:
                    try:
                        self._tls.do_handshake()
                        done = True
                    except ssl.SSLWantReadError:
                        done = False
                    except ssl.SSLError as e:
                        # An alert is TLS saying no; anything else is not TLS at all.
                        reason = _reason(e)
                        if "alert" in reason:
                            raise TlsHandshakeError(reason) from None
                        raise NotTls(reason, said) from None
                    out = self._outgoing.read()
                if out:
                    sock.settimeout(max(0.001, deadline - time.monotonic()))
                    sock.sendall(out)
                if done:
                    break
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise TlsHandshakeError(f"it took longer than {seconds:g} s")
                sock.settimeout(remaining)
                try:
                    data = sock.recv(16384)
                except TimeoutError:
                    raise TlsHandshakeError(f"it took longer than {seconds:g} s") from None
                if not data:
                    raise TlsHandshakeError("the peer closed the connection during it")
                said = said or data[:RAW_RECV_MIN]
                with self._lock:
                    self._incoming.write(data)
        finally:
            self.settimeout(before)

    # --- receiving (the reader thread) ----------------------------------------------------------

    def recv(self, size: int, *, wait: bool = True) -> bytes:
        """Up to `size` bytes of plaintext, waiting for them (settimeout: TimeoutError when
        none came in time); b"" when the peer has closed.

        `wait` False, for a caller whose select() said the socket is readable: one read of the
        raw socket at most, then BlockingIOError when it brought no whole record. A plain
        socket's recv() after select() never blocks; without this, a record cut short by a peer
        that then went silent (a PC switched off mid-burst) would hold the caller, and its
        keepalive, for ever (client.Connection.frames)."""
        timeout = self._timeout
        deadline = None if not timeout else time.monotonic() + timeout
        read_once = False
        while True:
            with self._lock:
                data = self._read(size)
                out = self._take_output()
            if out:
                self._send_output(out)
            if data is not None:
                return data
            if read_once and not wait:
                raise BlockingIOError(errno.EAGAIN, "no whole TLS record yet")
            if deadline is not None and not _wait(self._sock, deadline - time.monotonic()):
                raise TimeoutError("timed out")
            read_once = True
            chunk = self._sock.recv(max(size, RAW_RECV_MIN))
            with self._lock:
                if chunk:
                    self._incoming.write(chunk)
                else:
                    self._incoming.write_eof()
                    self._eof = True

    def _read(self, size: int) -> bytes | None:
        """Plaintext already here, up to `size` bytes (several records); None: none yet
        (lock held)."""
        parts: list[bytes] = []
        got = 0
        while got < size:
            try:
                data = self._tls.read(size - got)
            except ssl.SSLWantReadError:
                if parts or not self._eof:
                    break
                return b""  # closed after a record cut short: nothing more will come
            except (ssl.SSLZeroReturnError, ssl.SSLEOFError):
                if parts:
                    break  # this time the data, next time the end
                return b""  # close_notify, or the peer just closed (no close_notify)
            if not data:  # the peer's close_notify (the SSLObject says it with b"")
                if parts:
                    break
                return b""
            parts.append(data)
            got += len(data)
        if not parts:
            return None
        return parts[0] if len(parts) == 1 else b"".join(parts)

    def pending(self) -> bool:
        """Whether recv() has something without waiting for the socket (a select() on the raw
        socket would not see it)."""
        with self._lock:
            return self._tls.pending() > 0 or self._incoming.pending > 0 or self._eof

    # --- sending (any thread) -------------------------------------------------------------------

    def send(self, data: bytes | memoryview, flags: int = 0) -> int:
        """Encrypt and send without blocking; how many bytes were taken (module docstring).
        BlockingIOError when nothing could go."""
        view = memoryview(data).cast("B")
        with self._lock:
            if self._unsent:
                before = len(self._unsent)
                if not self._flush():
                    if len(self._unsent) == before:
                        raise BlockingIOError(errno.EAGAIN, "the socket is full")
                    return 0
            taken = 0
            if self._held:
                if len(view) and view[0] == self._held[0]:
                    taken = 1  # offered again, as asked: it was encrypted already
                self._held = b""
            while taken < len(view):
                step = view[taken : taken + SEND_CHUNK]
                self._tls.write(step)
                taken += len(step)
                self._unsent = self._outgoing.read()
                if not self._flush():
                    # The kernel did not take it all: ask to be called again (module docstring).
                    self._held = bytes(view[taken - 1 : taken])
                    return taken - 1
            return taken

    def sendall(self, data: bytes | memoryview) -> None:
        """Send everything, waiting for room (for at most settimeout()'s time)."""
        view = memoryview(data).cast("B")
        timeout = self._timeout
        deadline = None if timeout is None else time.monotonic() + timeout
        done = 0
        while True:
            try:
                done += self.send(view[done:])
            except BlockingIOError:
                pass
            if done >= len(view) and not self._unsent:
                return
            wait = None if deadline is None else deadline - time.monotonic()
            if wait is not None and wait <= 0:
                raise TimeoutError("timed out sending over TLS")
            _wait(self._sock, wait, writable=True)

    @property
    def unsent_bytes(self) -> int:
        """Ciphertext kept because the kernel did not take it yet (a stale read is fine)."""
        return len(self._unsent)

    def _flush(self) -> bool:
        """Hand `_unsent` to the kernel without blocking; True when all of it went (lock held)."""
        while self._unsent:
            try:
                sent = self._sock.send(self._unsent, SEND_FLAGS)
            except (BlockingIOError, InterruptedError):
                return False
            if sent <= 0:
                return False
            unsent = self._unsent
            self._unsent = (
                b"" if sent >= len(unsent) else memoryview(unsent)[sent:]
            )  # a view: no copy of what is left
        return True

    def _take_output(self) -> bytes:
        """Ciphertext that reading made (a key update's answer): after what waits (lock held)."""
        return self._outgoing.read() if self._outgoing.pending else b""

    def _send_output(self, out: bytes) -> None:
        with self._lock:
            self._unsent = bytes(self._unsent) + out if self._unsent else out
            try:
                self._flush()
            except OSError:
                pass  # the reader learns it from its next recv()

    # --- the end ------------------------------------------------------------------------------

    def shutdown(self, how: int) -> None:
        """Say close_notify (best effort, without blocking) before shutting the socket's
        sending side; the receiving side just closes."""
        if how in (socket.SHUT_WR, socket.SHUT_RDWR):
            with self._lock:
                try:
                    self._tls.unwrap()
                except (ssl.SSLError, ValueError):
                    pass  # SSLWantReadError: the peer's close_notify is not awaited
                close_notify = self._take_output()
                if close_notify:
                    self._unsent = (
                        bytes(self._unsent) + close_notify if self._unsent else close_notify
                    )
                try:
                    self._flush()
                except OSError:
                    pass
        self._sock.shutdown(how)

    def close(self) -> None:
        self._sock.close()

    # --- what the plain socket says -----------------------------------------------------------

    def fileno(self) -> int:
        return self._sock.fileno()

    def getsockname(self) -> Any:
        return self._sock.getsockname()

    def getpeername(self) -> Any:
        return self._sock.getpeername()

    def setsockopt(self, level: int, option: int, value: int | bytes) -> None:
        self._sock.setsockopt(level, option, value)

    def getsockopt(self, level: int, option: int) -> int:
        return self._sock.getsockopt(level, option)

    def settimeout(self, value: float | None) -> None:
        """recv() and sendall() wait at most `value` seconds (None: as long as it takes; 0:
        not at all, the raw socket is then non-blocking, as on Windows: fanout.SEND_FLAGS)."""
        self._timeout = value
        self._sock.setblocking(value != 0)

    def gettimeout(self) -> float | None:
        return self._timeout

    def setblocking(self, flag: bool) -> None:
        self.settimeout(None if flag else 0.0)

    # --- what TLS adds ------------------------------------------------------------------------

    def channel_binding(self) -> bytes:
        """RFC 5929's "tls-server-end-point" data: the hash of the server's certificate, with
        the hash its signature uses (SHA-256 for ours; SHA-256 also for MD5 and SHA-1)."""
        if self._binding is None:
            from lanchat.tls.certificates import end_point_hash

            self._binding = end_point_hash(self.certificate)
        return self._binding

    @property
    def fingerprint(self) -> bytes:
        """The server key's fingerprint (SHA-256 of its SubjectPublicKeyInfo)."""
        if self._fingerprint is None:
            from lanchat.tls.certificates import key_fingerprint

            self._fingerprint = key_fingerprint(self.certificate)
        return self._fingerprint

    @property
    def version(self) -> str | None:
        """'TLSv1.3', 'TLSv1.2'."""
        return self._tls.version()


def _wait(sock: socket.socket, seconds: float | None, *, writable: bool = False) -> bool:
    """Wait until the socket is readable (or writable); False when `seconds` passed first.
    poll(), not select(): a relay's descriptors go past select()'s 1024."""
    if seconds is not None and seconds <= 0:
        seconds = 0
    if not hasattr(select, "poll"):  # Windows
        ready = select.select([] if writable else [sock], [sock] if writable else [], [], seconds)
        return bool(ready[0] or ready[1])
    poller = select.poll()
    poller.register(sock, select.POLLOUT if writable else select.POLLIN)
    return bool(poller.poll(None if seconds is None else seconds * 1000))


def _reason(error: ssl.SSLError) -> str:
    """An SSLError in words: OpenSSL's reason ('wrong version number'), lower case."""
    reason = getattr(error, "reason", None)
    if reason:
        return str(reason).replace("_", " ").lower()
    return str(error)


# --- the two sides --------------------------------------------------------------------------


class ServerTls:
    """What a relay's TLS side needs: its context (key and certificate), its certificate for
    the channel binding, its fingerprint, and whether plain clients may still connect."""

    def __init__(
        self,
        context: ssl.SSLContext,
        certificate: bytes,
        fingerprint: bytes,
        *,
        allow_plain: bool = False,
        handshake_seconds: float = HANDSHAKE_SECONDS,
    ) -> None:
        self.context = context
        self.certificate = certificate
        self.fingerprint = fingerprint
        self.allow_plain = allow_plain
        self.handshake_seconds = handshake_seconds

    def accept(self, sock: socket.socket) -> TlsSocket:
        """The server's side of a handshake on an accepted socket; TlsHandshakeError or
        OSError when it fails."""
        incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
        tls = self.context.wrap_bio(incoming, outgoing, server_side=True)
        wrapped = TlsSocket(sock, tls, incoming, outgoing)
        wrapped.certificate = self.certificate
        wrapped._fingerprint = self.fingerprint
        wrapped.handshake(self.handshake_seconds)
        return wrapped


def server_context(certificate_path: str, key_path: str) -> ssl.SSLContext:
    """TLS 1.2 or newer, no session tickets (nothing to resume: a chat connection lives long,
    and a ticket key would be one more secret to keep)."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.num_tickets = 0
    context.options |= ssl.OP_NO_TICKET
    context.load_cert_chain(certificate_path, key_path)
    return context


def client_context() -> ssl.SSLContext:
    """No certificate authority is asked: the server's key is checked against the pin or the
    fingerprint given (lanchat/tls/trust.py), which is what a self-signed relay can offer."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    return context


def connect_tls(
    sock: socket.socket, seconds: float, context: ssl.SSLContext | None = None
) -> TlsSocket:
    """The client's side of a handshake on a connected socket; the server's certificate is in
    `.certificate`, not yet checked (trust.py does that)."""
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    tls = (context or client_context()).wrap_bio(incoming, outgoing, server_side=False)
    wrapped = TlsSocket(sock, tls, incoming, outgoing)
    wrapped.handshake(seconds)
    certificate = tls.getpeercert(binary_form=True)
    if not certificate:
        raise TlsHandshakeError("the server presented no certificate")
    wrapped.certificate = certificate
    return wrapped
