"""The zeroconf side of discovery, shared by advertise.py and browse.py: a Zeroconf on exactly
the right interfaces, what counts as an mDNS failure, and failures in words. zeroconf is imported
inside the functions, so that `lanchat --help` and the pure parts stay light."""

from __future__ import annotations

import errno
import logging
import os
import socket
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from zeroconf import Zeroconf


NO_MDNS_ENV = "LANCHAT_NO_MDNS"  # set to 1: lanchat sends and listens for no mDNS at all


def mdns_switched_off() -> bool:
    """Whether LANCHAT_NO_MDNS forbids mDNS in this process (checked at every socket)."""
    return os.environ.get(NO_MDNS_ENV, "").strip().lower() not in ("", "0", "no", "false")


def refuse_if_switched_off() -> None:
    """OSError when mDNS is switched off: the last line of defence, below every option."""
    if mdns_switched_off():
        raise OSError(f"mDNS is switched off ({NO_MDNS_ENV} is set)")


def quiet_zeroconf() -> None:
    """zeroconf logs socket trouble on its own; lanchat reports problems in words instead."""
    logging.getLogger("zeroconf").setLevel(logging.CRITICAL)


def mdns_errors() -> tuple[type[BaseException], ...]:
    """What zeroconf raises for network trouble: a warning, never a crash of the relay."""
    from zeroconf import Error

    return (OSError, RuntimeError, ValueError, Error)


def open_zeroconf(ipv4: Sequence[str], ipv6_interfaces: Sequence[str]) -> Zeroconf:
    """A Zeroconf on exactly these IPv4 addresses and IPv6 interfaces (never loopback).

    An explicit list needs no multicast route (InterfaceChoice.Default does), speaks IPv4 and
    IPv6 (the default is IPv4 only) and avoids ::1; docs/discovery.md, "zeroconf and mDNS
    pitfalls": "A multicast route for the default interface", "IPv4 only unless asked", "Not on
    loopback". Where IPv6 cannot be used it falls back to IPv4.
    """
    from zeroconf import IPVersion, Zeroconf

    refuse_if_switched_off()
    quiet_zeroconf()
    indexes: list[int] = []
    for name in ipv6_interfaces:
        try:
            indexes.append(socket.if_nametoindex(name))
        except OSError:
            continue  # the interface went away since it was listed
    if ipv4 and indexes:
        try:
            return Zeroconf(interfaces=[*ipv4, *indexes], ip_version=IPVersion.All)
        except (OSError, RuntimeError):
            pass  # IPv6 disabled or half-configured: IPv4 alone still finds most LANs
    if ipv4:
        return Zeroconf(interfaces=list(ipv4), ip_version=IPVersion.V4Only)
    if indexes:
        return Zeroconf(interfaces=list(indexes), ip_version=IPVersion.V6Only)
    raise OSError("no network interface to use")


def ignore(**change: Any) -> None:
    """A browser handler for a browser that only fills the cache."""


def describe_error(error: BaseException) -> str:
    if isinstance(error, OSError) and error.errno == errno.EADDRINUSE:
        return "another program holds UDP port 5353 and does not share it"
    return getattr(error, "strerror", None) or str(error) or type(error).__name__
