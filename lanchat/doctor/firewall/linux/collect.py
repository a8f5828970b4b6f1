"""Linux: read every rule store (nft, iptables-nft, iptables-legacy) and the no-root facts
(systemctl, iptables -V), evaluate a new TCP packet to the port and an mDNS packet from the LAN
(assess_linux_firewall); fixes.py writes the rule that would let a blocked packet in."""

from __future__ import annotations

from dataclasses import dataclass

from lanchat.doctor.context import COMMAND_TIMEOUT, MDNS_PORT, ServerContext
from lanchat.doctor.firewall.linux.decide import (
    FamilyReport,
    LinuxFirewallOutputs,
    LinuxFirewallReport,
    assess_linux_firewall,
)
from lanchat.doctor.firewall.verdict import Packet
from lanchat.doctor.probe.interface import CommandOutput, Probe

SERVICES = ("ufw", "firewalld", "nftables")


@dataclass(frozen=True)
class LinuxFindings:
    """The rules as read, the no-root facts, and the verdicts for the TCP and mDNS packets."""

    tcp: LinuxFirewallReport
    mdns: LinuxFirewallReport
    services: dict[str, str]  # systemctl is-active: unit -> active/inactive/...
    backend: str | None  # iptables -V: "nf_tables", "legacy" or None
    zone: str | None  # firewalld zone of the LAN interface


def _text(output: CommandOutput | None) -> str:
    return output.stdout if output is not None and output.returncode == 0 else ""


def collect_linux(probe: Probe, ctx: ServerContext) -> LinuxFindings | None:
    """Run the read-only commands (each with a timeout) and evaluate; None without a LAN."""
    lan = ctx.lan
    if lan is None or lan.family != 4:
        return None
    version = _text(probe.run(["iptables", "-V"], COMMAND_TIMEOUT))
    backend = "legacy" if "(legacy)" in version else "nf_tables" if "nf_tables" in version else None
    services: dict[str, str] = {}
    states = probe.run(["systemctl", "is-active", *SERVICES], COMMAND_TIMEOUT)
    lines = states.stdout.split() if states is not None else []
    if len(lines) == len(SERVICES):  # else no systemd (a container) or an error: say nothing
        services = dict(zip(SERVICES, lines, strict=True))
    nft = probe.run(["nft", "-j", "list", "ruleset"], COMMAND_TIMEOUT)
    ipt = probe.run(["iptables-save"], COMMAND_TIMEOUT)
    ip6t = probe.run(["ip6tables-save"], COMMAND_TIMEOUT)
    if backend == "legacy":  # iptables-save *is* the legacy store: read it once, as iptables
        outputs = LinuxFirewallOutputs(nft, ipt, ip6t)
    else:
        outputs = LinuxFirewallOutputs(
            nft,
            ipt,
            ip6t,
            probe.run(["iptables-legacy-save"], COMMAND_TIMEOUT),
            probe.run(["ip6tables-legacy-save"], COMMAND_TIMEOUT),
        )
    tcp_packets = [Packet("ip", "tcp", ctx.port, lan.interface, lan.peer, lan.address)]
    mdns_packets = [Packet("ip", "udp", MDNS_PORT, lan.interface, lan.peer, "224.0.0.251")]
    if lan.address6 and lan.peer6:
        tcp_packets.append(Packet("ip6", "tcp", ctx.port, lan.interface, lan.peer6, lan.address6))
        mdns_packets.append(Packet("ip6", "udp", MDNS_PORT, lan.interface, lan.peer6, "ff02::fb"))
    tcp = assess_linux_firewall(outputs, tcp_packets)
    mdns = assess_linux_firewall(outputs, mdns_packets)
    zone = tcp.zone
    if zone is None and "firewalld" in (*tcp.frontends, *active_services(services)):
        zone = _firewalld_zone(probe, lan.interface)
    return LinuxFindings(tcp, mdns, services, backend, zone)


def active_services(services: dict[str, str]) -> list[str]:
    return [unit for unit, state in services.items() if state == "active"]


def _firewalld_zone(probe: Probe, iface: str) -> str | None:
    """firewall-cmd works without root for this query on most distributions; short timeout."""
    out = probe.run(["firewall-cmd", f"--get-zone-of-interface={iface}"], COMMAND_TIMEOUT)
    if out is None or out.returncode != 0:  # not installed, not running, or timed out
        return None
    zone = out.stdout.strip()
    return zone if zone and " " not in zone else None


def frontend_of(findings: LinuxFindings) -> str:
    report = findings.tcp
    if report.status in ("read", "no-firewall"):
        return report.frontend
    active = active_services(findings.services)
    return active[0] if active else "unknown"


def blocked_families(report: LinuxFirewallReport) -> list[FamilyReport]:
    return [f for f in report.families if f.verdict.outcome == "blocked"]
