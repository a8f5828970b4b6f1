"""Admission without a relay: the per-address limit, and refusals counted per address."""

from __future__ import annotations

import selectors
import socket

from conftest import WAIT
from lanchat.admission import AddressLimit, Refusal, Refusals, Refuser


def test_an_address_gets_its_limit_and_a_released_slot_comes_back() -> None:
    limit = AddressLimit(2)
    assert limit.admit("10.0.0.5") and limit.admit("10.0.0.5")
    assert not limit.admit("10.0.0.5")
    assert limit.admit("10.0.0.6")  # another address has its own count
    limit.release("10.0.0.5")
    assert limit.admit("10.0.0.5")


def test_loopback_is_not_limited_unless_asked() -> None:
    free = AddressLimit(1)
    for address in ("127.0.0.1", "::1", "::ffff:127.0.0.1"):
        assert free.admit(address) and free.admit(address)
    strict = AddressLimit(1, loopback_too=True)
    assert strict.admit("127.0.0.1") and not strict.admit("127.0.0.1")


def test_no_limit_means_no_limit() -> None:
    limit = AddressLimit(0)
    assert all(limit.admit("10.0.0.5") for _ in range(1000))


def test_refusals_are_counted_per_address_and_reason_until_taken() -> None:
    refusals = Refusals()
    for _ in range(3):
        refusals.add("10.0.0.5", "too-many-connections")
    refusals.add("10.0.0.6", "server-full")
    taken = sorted(refusals.take(), key=lambda r: r.address)
    assert taken == [
        Refusal("10.0.0.5", "too-many-connections", 3),
        Refusal("10.0.0.6", "server-full", 1),
    ]
    assert taken[0].why == "too many connections from one address"
    assert refusals.take() == [] and refusals.total == 4


def test_a_refused_socket_hears_its_line_then_the_end() -> None:
    ours, theirs = socket.socketpair()
    with selectors.DefaultSelector() as selector:
        refuser = Refuser(selector)
        refuser.refuse(ours, "! Go away, politely.")
        theirs.settimeout(WAIT)
        assert theirs.recv(100) == b"! Go away, politely.\n"
        assert theirs.recv(100) == b""  # our side is shut
        theirs.close()  # the peer hangs up: the refuser closes its socket
        for key, _ in selector.select(WAIT):
            refuser.readable(key.fileobj)  # type: ignore[arg-type]
        assert refuser.timeout() is None  # nothing lingers any more
        assert ours.fileno() == -1
