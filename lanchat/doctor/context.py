"""What the server-side checks are asked about: the port, this PC's LAN facts, the program that
listens (for per-program firewall rules), and how to run the doctor again."""

from __future__ import annotations

from dataclasses import dataclass

from lanchat.doctor.lan import LanFacts

MDNS_PORT = 5353
COMMAND_TIMEOUT = 2.0  # any one firewall command; they answer in milliseconds when healthy
POWERSHELL_TIMEOUT = 4.0  # PowerShell starts slowly; one call for everything


@dataclass(frozen=True)
class ServerContext:
    """The question the firewall checks answer: can a LAN peer reach `port` on `lan`?"""

    port: int
    lan: LanFacts | None
    exe: str | None = None  # the listening server's executable (psutil), if known
    rerun: str = "lanchat doctor"  # this doctor's command line, for "run again as admin"
