"""mDNS self-tests for `lanchat doctor`: can this PC see its own advertisement, and does it hear
any other mDNS host on the link? The self-test advertises under its own service type, so that
nobody's `lanchat discover` lists it."""

from __future__ import annotations

import secrets
import socket
import struct
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from lanchat.discovery.mdns import (
    describe_error,
    mdns_errors,
    open_zeroconf,
    refuse_if_switched_off,
)

SELFTEST_TYPE = "_lanchat-test._tcp.local."  # service names have at most 15 bytes
MDNS_GROUP = "224.0.0.251"
MDNS_PORT = 5353
# A standard query for every service type on the link (RFC 6763 section 9), multicast answer.
_SERVICES_QUERY = (
    struct.pack("!6H", 0, 0, 1, 0, 0, 0)
    + b"".join(bytes([len(p)]) + p for p in (b"_services", b"_dns-sd", b"_udp", b"local"))
    + b"\x00"
    + struct.pack("!2H", 12, 1)  # PTR, class IN
)
NEIGHBOUR_SETTLE_SECONDS = 0.3  # after the first other host answers, wait this long for more


@dataclass(frozen=True)
class SelfSight:
    """Whether this PC saw its own test advertisement, and after how long."""

    seen: bool
    seconds: float | None
    name: str | None
    error: str | None


def see_own_advertisement(address: str, timeout: float) -> SelfSight:
    """Advertise a throwaway service on `address` and browse for it with separate sockets, as
    another program on this PC would; the answer must come back through the network stack."""
    from zeroconf import ServiceBrowser, ServiceInfo, ServiceStateChange

    wanted = f"doctor-{secrets.token_hex(3)}.{SELFTEST_TYPE}"
    seen = threading.Event()
    started = time.monotonic()
    arrived: list[float] = []

    # zeroconf passes these by keyword; this runs in its thread, so it must never raise.
    def on_change(zeroconf: Any, service_type: str, name: str, state_change: Any) -> None:
        if state_change is ServiceStateChange.Added and str(name).lower() == wanted.lower():
            arrived.append(time.monotonic() - started)
            seen.set()

    advertiser = browser_zc = browser = None
    info = ServiceInfo(
        SELFTEST_TYPE,
        wanted,
        port=9,
        parsed_addresses=[address],
        server=f"{wanted.split('.', maxsplit=1)[0]}.local.",
    )
    try:
        browser_zc = open_zeroconf([address], [])
        advertiser = open_zeroconf([address], [])
        browser = ServiceBrowser(browser_zc, SELFTEST_TYPE, handlers=[on_change])
        advertiser.register_service(info, allow_name_change=True)
        seen.wait(max(0.0, timeout - (time.monotonic() - started)))
    except mdns_errors() as e:
        return SelfSight(False, None, None, describe_error(e))
    finally:
        if browser is not None:
            browser.cancel()
        for zc in (advertiser, browser_zc):
            if zc is not None:
                try:
                    if zc is advertiser:
                        zc.unregister_service(info)
                    zc.close()
                except mdns_errors():
                    pass  # closing only
    if seen.is_set():
        return SelfSight(True, round(arrived[0], 3), wanted.split(".", maxsplit=1)[0], None)
    return SelfSight(False, None, None, None)


def hear_neighbours(interface_address: str, own: Sequence[str], timeout: float) -> list[str]:
    """Addresses of other hosts whose mDNS packets reach this PC: ask every host on the link
    which services it has (one multicast query) and listen. OSError when listening fails."""
    refuse_if_switched_off()
    own_set = {a.split("%")[0] for a in own}
    heard: list[str] = []
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM, socket.IPPROTO_UDP)
    try:
        # Share port 5353 with the mDNS stack already on this PC (avahi, Bonjour, a server).
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if hasattr(socket, "SO_REUSEPORT"):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        sock.bind(("", MDNS_PORT))
        membership = socket.inet_aton(MDNS_GROUP) + socket.inet_aton(interface_address)
        sock.setsockopt(socket.IPPROTO_IP, socket.IP_ADD_MEMBERSHIP, membership)
        sock.setsockopt(
            socket.IPPROTO_IP, socket.IP_MULTICAST_IF, socket.inet_aton(interface_address)
        )
        sock.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_TTL, 255)  # RFC 6762 section 11
        sock.sendto(_SERVICES_QUERY, (MDNS_GROUP, MDNS_PORT))
        deadline = time.monotonic() + timeout
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            sock.settimeout(remaining)
            try:
                _, (source, _port) = sock.recvfrom(9000)
            except TimeoutError:
                break
            if source not in own_set and source not in heard:
                if not heard:  # others may answer within the same moment: a short wait more
                    deadline = min(deadline, time.monotonic() + NEIGHBOUR_SETTLE_SECONDS)
                heard.append(source)
    finally:
        sock.close()
    return heard
