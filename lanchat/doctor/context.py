"""What the server-side checks are asked about: the port, this PC's LAN facts (LanFacts, which
checks/lan.py chooses), the program that listens (for per-program firewall rules), and how to run
the doctor again. Shared by checks/ and the firewall faces, so it imports neither."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

MDNS_PORT = 5353
COMMAND_TIMEOUT = 2.0  # any one firewall command; they answer in milliseconds when healthy
POWERSHELL_TIMEOUT = 4.0  # PowerShell starts slowly; one call for everything


@dataclass(frozen=True)
class LanFacts:
    """The address to tell others, its interface and network, and a stand-in peer per family."""

    address: str
    interface: str
    network: str  # e.g. "10.213.0.0/24"
    family: int
    address6: str | None  # an IPv6 address on the same interface (for the IPv6 rule check)
    network6: str | None
    peer: str  # an address of another PC in the network (the firewall question's source)
    peer6: str | None
    default_route: bool  # whether the address came from the default route

    def join_host(self) -> str:
        """The address as `lanchat join` takes it."""
        return f"[{self.address}]" if ":" in self.address else self.address

    def to_dict(self) -> dict[str, Any]:
        """Plain data for JSON output."""
        return dict(self.__dict__)


@dataclass(frozen=True)
class ServerContext:
    """The question the firewall checks answer: can a LAN peer reach `port` on `lan`?"""

    port: int
    lan: LanFacts | None
    exe: str | None = None  # the listening server's executable (psutil), if known
    rerun: str = "lanchat doctor"  # this doctor's command line, for "run again as admin"
