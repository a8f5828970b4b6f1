"""Loading the recorded Linux firewall outputs under tests/fixtures/linux/cases (see record.sh)."""

from __future__ import annotations

from pathlib import Path

from lanchat.doctor.firewall.linux.decide import LinuxFirewallOutputs
from lanchat.doctor.firewall.verdict import Packet
from lanchat.doctor.probe.interface import CommandOutput

CASES = Path(__file__).parent / "fixtures" / "linux" / "cases"
SERVER_V4 = "10.213.0.1"  # the lab addresses: server h1, client h2 (tests/netlab.py)
CLIENT_V4 = "10.213.0.2"
SERVER_V6 = "fd00:213::1"
CLIENT_V6 = "fd00:213::2"


def read(case: str, name: str) -> str:
    """One recorded output file's text."""
    return (CASES / case / name).read_text()


def command(case: str, name: str) -> CommandOutput | None:
    """A recorded command: stdout, stderr and exit code; None if it was not recorded."""
    base = CASES / case / name
    if not base.exists():
        return None
    stderr = base.with_name(name + ".stderr")
    rc = base.with_name(name + ".rc")
    return CommandOutput(
        base.read_text(),
        stderr.read_text() if stderr.exists() else "",
        int(rc.read_text()) if rc.exists() else 0,
    )


def outputs(case: str) -> LinuxFirewallOutputs:
    """Everything recorded for one case, as the doctor would collect it."""
    return LinuxFirewallOutputs(
        nft=command(case, "nft.json"),
        iptables=command(case, "iptables-save.txt"),
        ip6tables=command(case, "ip6tables-save.txt"),
        iptables_legacy=command(case, "iptables-legacy-save.txt"),
        ip6tables_legacy=command(case, "ip6tables-legacy-save.txt"),
    )


def v4(proto: str, port: int, saddr: str = CLIENT_V4, daddr: str = SERVER_V4) -> Packet:
    """A new IPv4 packet arriving on eth0."""
    return Packet("ip", proto, port, "eth0", saddr, daddr)  # type: ignore[arg-type]


def v6(proto: str, port: int, saddr: str = CLIENT_V6, daddr: str = SERVER_V6) -> Packet:
    """A new IPv6 packet arriving on eth0."""
    return Packet("ip6", proto, port, "eth0", saddr, daddr)  # type: ignore[arg-type]
