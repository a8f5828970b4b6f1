"""Who may connect: address rules (--allow, --deny), the addresses operators banned, the
per-address connection limit, and refusals that are said, counted and closed without blocking
anyone.

Address rules: a connection is refused if any --deny network holds its address; if any --allow
is given, only addresses an --allow network holds are let in. IPv4-mapped IPv6 peers
(::ffff:10.0.0.5, what a dual-stack listener sees) are judged as the IPv4 address they are.
Loopback (the server's own computer) is judged only by rules that lie inside loopback
(127.0.0.0/8, ::1): `--allow 10.0.0.0/8` or `--deny 0.0.0.0/0` never shut out the server's own
`lanchat status` and `lanchat join`, while `--deny 127.0.0.2` or `--allow 127.0.0.1` apply
to loopback as written. Bans (an operator's /ban, lanchat/room/moderation.py) are addresses
the hub adds while the room runs; they last until the server stops. Both are decided here, on
the accept thread, before a reader thread exists.

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

import functools
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
    "denied": "an address --allow/--deny does not let in",
    "banned": "an address an operator banned",
    "bad-password": "a wrong password",
    "login-locked": "a login while locked out after too many wrong passwords",
    "plain-login": "a password offered over an unencrypted connection (not checked)",
    "no-login": "no login in time (or too many lines before one)",
    "bad-login": "a login that failed otherwise (channel binding, a malformed message)",
}
DENIED_LINE = "! This server does not accept connections from your address ({address})."
BANNED_LINE = (
    "! Your address ({address}) was banned from this room by an operator, until the server "
    "restarts or an operator lifts the ban."
)
_LOOPBACK_V4 = ipaddress.IPv4Network("127.0.0.0/8")
_LOOPBACK_V6 = ipaddress.IPv6Network("::1/128")
_MAPPED = ipaddress.IPv6Network("::ffff:0:0/96")

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


# Cached: every reader thread asks for its peer's address once, and ipaddress's parsing is deep
# enough to leave 4 KB more of each reader's stack resident for good (conn5000 in
# docs/performance.md: 150 MB without the cache, 131 MB with it). Peers are few addresses.
@functools.lru_cache(maxsize=4096)
def plain_ip(address: str) -> str:
    """`address` as rules and bans compare it: no %zone, an IPv4-mapped IPv6 address as the
    IPv4 address it is, in its canonical form; unchanged when it is not an IP address."""
    try:
        ip = ipaddress.ip_address(address.split("%", maxsplit=1)[0])
    except ValueError:
        return address
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped:
        return str(ip.ipv4_mapped)
    return str(ip)


# Where programs on the server's own computer connect from unless they choose otherwise.
DEFAULT_LOOPBACK = frozenset({"127.0.0.1", "::1"})


def own_computer(address: str, local: str | None) -> bool:
    """Whether a connection from `address` to our `local` address is one the server's own
    computer makes as a matter of course: from 127.0.0.1 or ::1, or from the very address it
    reached (a PC connecting to its own LAN address). Every program there shares that
    address, `lanchat status` included; another 127/8 source is only ever chosen on purpose."""
    peer = plain_ip(address)
    return peer in DEFAULT_LOOPBACK or (local is not None and peer == plain_ip(local))


def parse_network(text: str) -> Network:
    """A rule's network from `10.0.0.0/8`, `2001:db8::/32`, or a bare address (/32, /128);
    an IPv4-mapped IPv6 network becomes the IPv4 network it is. ValueError says what is wrong,
    in words for the command line."""
    cleaned = text.strip()
    try:
        network = ipaddress.ip_network(cleaned, strict=True)
    except ValueError:
        try:
            loose = ipaddress.ip_network(cleaned, strict=False)
        except ValueError:
            raise ValueError(
                f"{text!r} is not an IP address or network: write an address "
                "(192.168.1.20, fe80::1) or a network in CIDR form (192.168.1.0/24, 2001:db8::/32)."
            ) from None
        raise ValueError(
            f"{text!r} has bits set after its /{loose.prefixlen}: did you mean {loose}?"
        ) from None
    if isinstance(network, ipaddress.IPv6Network) and network.subnet_of(_MAPPED):
        base = int(network.network_address) & 0xFFFFFFFF
        return ipaddress.IPv4Network((base, network.prefixlen - 96))
    return network


def _within_loopback(network: Network) -> bool:
    if isinstance(network, ipaddress.IPv4Network):
        return network.subnet_of(_LOOPBACK_V4)
    return network.subnet_of(_LOOPBACK_V6)


@dataclass(frozen=True)
class AddressRules:
    """--allow and --deny: which addresses may connect at all (the module's docstring)."""

    allow: tuple[Network, ...] = ()
    deny: tuple[Network, ...] = ()

    @classmethod
    def parse(cls, allow: tuple[str, ...] = (), deny: tuple[str, ...] = ()) -> AddressRules:
        """The rules from the command line's texts; ValueError names a bad one."""
        return cls(tuple(parse_network(a) for a in allow), tuple(parse_network(d) for d in deny))

    @property
    def active(self) -> bool:
        return bool(self.allow or self.deny)

    def admits(self, address: str) -> bool:
        """Whether a connection from `address` may come in."""
        if not self.active:
            return True
        try:
            ip = ipaddress.ip_address(plain_ip(address))
        except ValueError:
            return not self.allow  # not an IP address (a test's socket pair): no rule holds it
        if ip.is_loopback:  # only rules about loopback itself apply to it
            allow = [n for n in self.allow if _within_loopback(n)]
            deny = [n for n in self.deny if _within_loopback(n)]
        else:
            allow, deny = list(self.allow), list(self.deny)
        if any(ip in network for network in deny):
            return False
        return not allow or any(ip in network for network in allow)

    def to_texts(self) -> tuple[tuple[str, ...], tuple[str, ...]]:
        """(allow, deny) as text, for `lanchat status` and the banner."""
        return tuple(map(_network_text, self.allow)), tuple(map(_network_text, self.deny))


def _network_text(network: Network) -> str:
    """A network as a person wrote it: a single address without its /32 or /128."""
    return str(network.network_address) if network.num_addresses == 1 else str(network)


class AddressBans:
    """Addresses operators banned while the server runs. The hub adds (under its lock, as the
    room says), the accept thread asks; one small lock of its own between them."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._addresses: set[str] = set()

    def add(self, address: str) -> None:
        with self._lock:
            self._addresses.add(plain_ip(address))

    def remove(self, address: str) -> None:
        with self._lock:
            self._addresses.discard(plain_ip(address))

    def barred(self, address: str) -> bool:
        with self._lock:
            if not self._addresses:  # the usual case, at every accept: nothing to parse
                return False
        ip = plain_ip(address)
        with self._lock:
            return ip in self._addresses


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
