"""The real MdnsProbe of the doctor, over lanchat.discovery (which holds every zeroconf use)."""

from __future__ import annotations

import time
from collections.abc import Sequence

from lanchat.discovery import discover
from lanchat.discovery.selftest import hear_neighbours, see_own_advertisement
from lanchat.doctor.probe.interface import MdnsBrowse, MdnsNeighbours, MdnsSelf, MdnsService
from lanchat.errors import LanchatError


class DiscoveryMdnsProbe:
    """mDNS as the doctor needs it: see itself, hear others, find lanchat servers."""

    def unavailable(self) -> str | None:
        """Always available: discovery is part of this build."""
        return None

    def see_self(self, address: str, timeout: float) -> MdnsSelf:
        """Advertise a throwaway service on `address` and look for it from other sockets."""
        sight = see_own_advertisement(address, timeout)
        return MdnsSelf(sight.seen, sight.seconds, sight.name, sight.error)

    def neighbours(self, own: Sequence[str], timeout: float) -> MdnsNeighbours:
        """Other hosts whose mDNS answers reach this PC, listening on its LAN IPv4 address."""
        ipv4 = [a for a in own if "." in a and not a.startswith("127.")]
        if not ipv4:
            return MdnsNeighbours(error="no IPv4 LAN address to listen on")
        started = time.monotonic()
        try:
            hosts = hear_neighbours(ipv4[0], own, timeout)
        except OSError as e:
            return MdnsNeighbours(error=e.strerror or str(e))
        return MdnsNeighbours(tuple(hosts), round(time.monotonic() - started, 3))

    def browse_lanchat(self, timeout: float) -> MdnsBrowse:
        """Every lanchat server that answered within `timeout`."""
        started = time.monotonic()
        try:
            servers = discover(timeout)
        except LanchatError as e:
            return MdnsBrowse(error=e.message)
        found = tuple(MdnsService(s.name, tuple(s.addresses), s.port) for s in servers)
        return MdnsBrowse(found, round(time.monotonic() - started, 3))
