"""Who may connect: the per-address connection limit, and refusals that are said, counted and
closed without blocking anyone.

Every connection from one address beyond `max_per_address` is refused on the accept thread,
before a reader thread exists for it: 2000 sockets from one PC cost 2000 accepts and one log
line, not 2000 threads. Loopback (the server's own PC) is not limited unless asked: benchmarks
and tests run thousands of clients there, and whoever sits at the server can stop it anyway.

A refused socket gets one line (`! ...`: a person at ncat reads it, and `lanchat join` knows
it for a refusal), then our side is shut; it stays open a moment, its input drained, until the
peer closes or LINGER_SECONDS pass, so the line is not lost to a TCP reset. The accept loop
owns those sockets (its selector watches them); everything else here is under one small lock.
"""

from __future__ import annotations

import ipaddress
import selectors
import socket
import threading
import time
from dataclasses import dataclass

LINGER_SECONDS = 1.0  # how long a refused socket may take to hear its line and hang up
MAX_LINGERING = 256  # refused sockets kept open at once; beyond, they are closed at once
REASONS = {
    "too-many-connections": "too many connections from one address",
    "server-full": "the room is full",
    "shutdown": "the server was shutting down",
    "bad-hello": "a lanchat hello the room refused (name, version)",
    "status-refused": "a status query from another computer",
    "no-thread": "the machine could not start another thread",
    "tls-required": "a plain connection to a relay that takes TLS only (serve --tls)",
}


@dataclass(frozen=True)
class Refusal:
    """Connections refused from one address for one reason since the last report."""

    address: str
    reason: str
    count: int

    @property
    def why(self) -> str:
        return REASONS.get(self.reason, self.reason)

    def to_dict(self) -> dict[str, object]:
        return {"address": self.address, "reason": self.reason, "count": self.count}


class Refusals:
    """A count of refused connections per (address, reason), taken by whoever logs them."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counts: dict[tuple[str, str], int] = {}
        self.total = 0

    def add(self, address: str, reason: str) -> None:
        with self._lock:
            key = (address, reason)
            self._counts[key] = self._counts.get(key, 0) + 1
            self.total += 1

    def take(self) -> list[Refusal]:
        """The counts since the last take, and start again (a log line each, not per socket)."""
        with self._lock:
            counts, self._counts = self._counts, {}
        return [Refusal(address, reason, n) for (address, reason), n in counts.items()]


class AddressLimit:
    """Connections open per address, at most `limit` each (0: no limit)."""

    def __init__(self, limit: int, *, loopback_too: bool = False) -> None:
        self.limit = limit
        self.loopback_too = loopback_too
        self._lock = threading.Lock()
        self._open: dict[str, int] = {}

    def admit(self, address: str) -> bool:
        """Count one more connection from `address`, or False if it has its limit already."""
        with self._lock:
            count = self._open.get(address, 0)
            if self.limit and count >= self.limit and self._limited(address):
                return False
            self._open[address] = count + 1
            return True

    def release(self, address: str) -> None:
        with self._lock:
            count = self._open.get(address, 0) - 1
            if count > 0:
                self._open[address] = count
            else:
                self._open.pop(address, None)

    def _limited(self, address: str) -> bool:
        if self.loopback_too:
            return True
        try:
            ip = ipaddress.ip_address(address.split("%", maxsplit=1)[0])
        except ValueError:
            return True
        if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped:
            ip = ip.ipv4_mapped
        return not ip.is_loopback


class Refuser:
    """Says one line to refused sockets and closes them gracefully, from the accept loop."""

    def __init__(self, selector: selectors.BaseSelector) -> None:
        self._selector = selector
        self._lingering: dict[socket.socket, float] = {}  # socket -> when to give up

    def refuse(self, sock: socket.socket, line: str) -> None:
        try:
            sock.setblocking(False)
            sock.send(line.encode() + b"\n")  # a fresh socket's buffer takes one line
            sock.shutdown(socket.SHUT_WR)
        except OSError:
            sock.close()
            return
        if len(self._lingering) >= MAX_LINGERING:
            sock.close()  # under a storm, closing now beats holding thousands open
            return
        self._selector.register(sock, selectors.EVENT_READ, self)
        self._lingering[sock] = time.monotonic() + LINGER_SECONDS

    def readable(self, sock: socket.socket) -> None:
        """Drain what the peer sent; close once it has hung up."""
        try:
            if sock.recv(4096):
                return
        except BlockingIOError:
            return
        except OSError:
            pass
        self._close(sock)

    def timeout(self) -> float | None:
        """Seconds until the next refused socket is given up on (None: none lingers)."""
        if not self._lingering:
            return None
        return max(0.0, min(self._lingering.values()) - time.monotonic())

    def expire(self) -> None:
        now = time.monotonic()
        for sock in [s for s, deadline in self._lingering.items() if deadline <= now]:
            self._close(sock)

    def close_all(self) -> None:
        for sock in list(self._lingering):
            self._close(sock)

    def _close(self, sock: socket.socket) -> None:
        self._lingering.pop(sock, None)
        try:
            self._selector.unregister(sock)
        except (KeyError, ValueError):
            pass
        sock.close()
