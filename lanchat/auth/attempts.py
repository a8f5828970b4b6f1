"""Wrong passwords per address: after MAX_FAILURES within WINDOW_SECONDS, an address is locked
until the oldest of them is WINDOW_SECONDS old; its logins are refused at once meanwhile.

An address is an IPv4 address, or an IPv6 /64 (one host can have a whole /64 to itself, so
counting single IPv6 addresses would give it billions of tries). A login that works forgets the
address's failures (someone who mistyped four times is not one typo from a lock).

Loopback is counted like any address: a relay behind a reverse proxy or an SSH tunnel sees
everyone as 127.0.0.1, and someone else logged in to the server's computer is just as much a
stranger. The person at the server has the operator token, whose logins are never locked out
(lanchat/auth/login.py): nobody guesses 256 random bits, so a lock would only let a stranger
on the same address lock the owner out.

Threads: every reader thread (one per connection) calls in; one lock guards the table, which
holds at most MAX_ADDRESSES addresses (a storm of addresses pushes out the oldest). The logins of
one address are checked one at a time (`one_at_a_time`): a lock check, the comparison and the
count together, or logins sent at once would all pass the check before any of them is counted.
"""

from __future__ import annotations

import ipaddress
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from lanchat.admission import plain_ip

MAX_FAILURES = 5
WINDOW_SECONDS = 600.0
MAX_ADDRESSES = 10_000


def address_key(address: str) -> str:
    """What one address counts as: itself (an IPv4-mapped IPv6 address as its IPv4 address,
    lanchat.admission.plain_ip), or its IPv6 /64."""
    plain = plain_ip(address)
    try:
        ip = ipaddress.ip_address(plain)
    except ValueError:
        return plain
    if isinstance(ip, ipaddress.IPv6Address):
        return str(ipaddress.IPv6Network(f"{ip}/64", strict=False))
    return plain


class LoginAttempts:
    """Failed logins per address in a sliding window, and the lock after too many."""

    def __init__(
        self,
        max_failures: int = MAX_FAILURES,
        window: float = WINDOW_SECONDS,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.max_failures = max_failures
        self.window = window
        self._clock = clock
        self._lock = threading.Lock()
        self._failures: dict[str, deque[float]] = {}  # by address_key, oldest address first
        self._serial: dict[str, tuple[threading.Lock, list[int]]] = {}  # by address_key: users

    @contextmanager
    def one_at_a_time(self, address: str) -> Iterator[None]:
        """Around a login's lock check, comparison and count: one per address at a time."""
        key = address_key(address)
        with self._lock:
            lock, users = self._serial.setdefault(key, (threading.Lock(), [0]))
            users[0] += 1
        try:
            with lock:
                yield
        finally:
            with self._lock:
                users[0] -= 1
                if not users[0]:
                    del self._serial[key]

    def locked_for(self, address: str) -> float:
        """Seconds until `address` may try again (0: it may now)."""
        with self._lock:
            return self._locked_for(address_key(address), self._clock())

    def failed(self, address: str) -> float:
        """Count a wrong password from `address`; how long it is locked now (0: not)."""
        key, now = address_key(address), self._clock()
        with self._lock:
            times = self._failures.pop(key, None) or deque(maxlen=self.max_failures)
            times.append(now)
            self._failures[key] = times  # to the end: the most recent address
            if len(self._failures) > MAX_ADDRESSES:
                del self._failures[next(iter(self._failures))]
            return self._locked_for(key, now)

    def succeeded(self, address: str) -> None:
        """A login from `address` worked: its failures are forgotten."""
        with self._lock:
            self._failures.pop(address_key(address), None)

    def _locked_for(self, key: str, now: float) -> float:
        times = self._failures.get(key)
        if not times:
            return 0.0
        while times and times[0] <= now - self.window:
            times.popleft()
        if not times:
            del self._failures[key]
            return 0.0
        if len(times) < self.max_failures:
            return 0.0
        return times[0] + self.window - now
