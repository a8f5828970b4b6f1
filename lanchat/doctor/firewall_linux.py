"""Linux: read every rule store (nft, iptables-nft, iptables-legacy) and the no-root facts
(systemctl, iptables -V), evaluate a new TCP packet to the port and an mDNS packet from the LAN,
and turn the verdicts into firewall.detect, firewall.tcp and firewall.mdns with fixes."""

from __future__ import annotations

from dataclasses import dataclass

from lanchat.doctor.context import COMMAND_TIMEOUT, MDNS_PORT, ServerContext
from lanchat.doctor.fixes import (
    chains_fix,
    discovery_is_optional,
    firewalld_mdns,
    firewalld_open,
    iptables_accept,
    nft_accept,
    raw_rules_fix,
    rerun_as_admin,
    ufw_allow,
)
from lanchat.doctor.linux_firewall import (
    CommandOutput,
    FamilyReport,
    LinuxFirewallOutputs,
    LinuxFirewallReport,
    assess_linux_firewall,
)
from lanchat.doctor.packet import Packet
from lanchat.doctor.probes import TIMED_OUT_RC, Probe
from lanchat.doctor.result import CheckResult, Fix

SERVICES = ("ufw", "firewalld", "nftables")
FAMILY_WORDS = {"ip": "IPv4", "ip6": "IPv6"}


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
    if zone is None and "firewalld" in (*tcp.frontends, *_active(services)):
        zone = _firewalld_zone(probe, lan.interface)
    return LinuxFindings(tcp, mdns, services, backend, zone)


def _active(services: dict[str, str]) -> list[str]:
    return [unit for unit, state in services.items() if state == "active"]


def _firewalld_zone(probe: Probe, iface: str) -> str | None:
    """firewall-cmd works without root for this query on most distributions; short timeout."""
    out = probe.run(["firewall-cmd", f"--get-zone-of-interface={iface}"], COMMAND_TIMEOUT)
    if out is None or out.returncode != 0 or out.returncode == TIMED_OUT_RC:
        return None
    zone = out.stdout.strip()
    return zone if zone and " " not in zone else None


def _frontend(findings: LinuxFindings) -> str:
    report = findings.tcp
    if report.status in ("read", "no-firewall"):
        return report.frontend
    active = _active(findings.services)
    return active[0] if active else "unknown"


def check_firewall_detect(findings: LinuxFindings | None, ctx: ServerContext) -> CheckResult:
    """firewall.detect: which firewall is in charge, from the rules or the no-root facts."""
    title = "Which firewall is in charge"
    if findings is None:
        return CheckResult(
            "firewall.detect", title, "unknown", "No IPv4 LAN address to check the firewall for."
        )
    report = findings.tcp
    facts = {
        "status": report.status,
        "frontend": _frontend(findings),
        "frontends": list(report.frontends),
        "services": findings.services,
        "iptables_backend": findings.backend,
        "zone": findings.zone,
    }
    evidence = [report.reason]
    if findings.services:
        evidence.append(
            "systemctl is-active: " + ", ".join(f"{u} {s}" for u, s in findings.services.items())
        )
    if findings.backend:
        evidence.append(f"iptables -V: {findings.backend} backend")
    evidence.extend(report.notes)
    if report.status == "no-firewall":
        return CheckResult(
            "firewall.detect",
            title,
            "pass",
            "No firewall rules are loaded: nothing filters incoming connections on this PC.",
            tuple(evidence),
            facts=facts,
        )
    if report.status == "read":
        zone = f", zone '{findings.zone}'" if findings.zone else ""
        return CheckResult(
            "firewall.detect",
            title,
            "pass",
            f"{' + '.join(report.frontends)} is in charge{zone} (rules read and evaluated).",
            tuple(evidence),
            facts=facts,
        )
    active = _active(findings.services)
    known = f" {', '.join(active)} is active (systemctl)." if active else ""
    why = (
        "the rules can only be read as root"
        if report.status == "cannot-read"
        else f"the rules could not be read ({report.reason})"
    )
    return CheckResult(
        "firewall.detect",
        title,
        "unknown",
        f"Cannot tell which rules apply: {why}.{known}",
        tuple(evidence),
        (rerun_as_admin(ctx.rerun, "linux"),),
        facts,
    )


def _blocked(report: LinuxFirewallReport) -> list[FamilyReport]:
    return [f for f in report.families if f.verdict.outcome == "blocked"]


def _words(blocked: list[FamilyReport]) -> str:
    """'it drops IPv4 and IPv6 (other PCs see a timeout): rule `...` in nft table ...'."""
    parts = []
    groups: dict[tuple[str | None, str, str | None], list[str]] = {}
    for family in blocked:
        verdict = family.verdict
        source = verdict.source.split(" rule ")[0]
        key = (verdict.action, source, verdict.rule_text)
        groups.setdefault(key, []).append(FAMILY_WORDS[family.packet.family])
    for (action, source, rule), families in groups.items():
        effect = {
            "drop": "drops",
            "reject": "rejects",
        }.get(action or "", "blocks")
        tcp = blocked[0].packet.proto == "tcp"
        seen = {
            "drop": " (other PCs see a timeout)" if tcp else "",
            "reject": " (other PCs see 'connection refused')" if tcp else "",
        }.get(action or "", "")
        by = f"rule `{rule}` in {source}" if rule else source
        parts.append(f"it {effect} {' and '.join(families)}{seen}: {by}")
    return "; ".join(parts)


def _evidence(report: LinuxFirewallReport) -> tuple[str, ...]:
    lines = [report.reason]
    for family in report.families:
        verdict = family.verdict
        lines.append(
            f"{family.packet.describe()}: {verdict.outcome} ({verdict.source}): {verdict.reason}"
        )
        if verdict.rule_text:
            lines.append(f"rule: {verdict.rule_text}")
    lines.extend(report.notes)
    return tuple(lines)


def linux_fixes(findings: LinuxFindings, ctx: ServerContext, proto: str, port: int) -> list[Fix]:
    """The commands that let the packet in, for the front-end in charge."""
    report = findings.tcp if proto == "tcp" else findings.mdns
    lan = ctx.lan
    assert lan is not None  # noqa: S101 - findings exist only with a LAN
    blocked = _blocked(report)
    frontends = (*report.frontends, *_active(findings.services))
    sources = {"ip": lan.network, "ip6": lan.network6}
    mdns = (proto, port) == ("udp", MDNS_PORT)
    if "ufw" in frontends:
        wanted = [sources[f.packet.family] for f in blocked] or [lan.network]
        return [ufw_allow(port, proto, [s for s in wanted if s], mdns=mdns)]
    if "firewalld" in frontends:
        # Unknown zone: let the shell ask firewalld for the interface's zone.
        zone = findings.zone or f"$(firewall-cmd --get-zone-of-interface={lan.interface})"
        return [firewalld_mdns(zone) if mdns else firewalld_open(port, proto, zone)]
    commands: list[str] = []
    nft_only = True
    for family in blocked:
        for source in family.sources:
            for chain in source.evaluation.chains:
                if chain.verdict.outcome != "blocked":
                    continue
                packet_family = family.packet.family
                src = sources[packet_family]
                if chain.chain.startswith("nft "):
                    command = nft_accept(
                        chain.chain, packet_family, lan.interface, src, port, proto
                    )
                else:
                    nft_only = False
                    command = iptables_accept(chain.chain, lan.interface, src, port, proto)
                if command and command not in commands:
                    commands.append(command)
    if not commands:
        return [chains_fix(port, proto)]
    return [raw_rules_fix(commands, port, proto, nft=nft_only)]


def check_firewall_tcp(findings: LinuxFindings | None, ctx: ServerContext) -> CheckResult:
    """firewall.tcp: would a new TCP connection from the LAN to the port get in?"""
    title = f"The firewall lets TCP {ctx.port} in from the LAN"
    if findings is None:
        return CheckResult(
            "firewall.tcp", title, "unknown", "No IPv4 LAN address to check the firewall for."
        )
    report = findings.tcp
    lan = ctx.lan
    assert lan is not None  # noqa: S101
    where = f"from {lan.network} on {lan.interface}"
    facts = {
        "verdicts": {f.packet.family: f.verdict.to_dict() for f in report.families},
        "frontend": _frontend(findings),
        "zone": findings.zone,
    }
    if report.status == "cannot-read":
        fixes = [rerun_as_admin(ctx.rerun, "linux")]
        active = _active(findings.services)
        if active:
            fixes.append(_if_closed(linux_fixes(findings, ctx, "tcp", ctx.port)))
        return CheckResult(
            "firewall.tcp",
            title,
            "unknown",
            f"Cannot tell whether TCP {ctx.port} gets in: reading the firewall rules needs root.",
            _evidence(report),
            tuple(fixes),
            facts,
        )
    blocked = _blocked(report)
    by_family = {f.packet.family: f for f in report.families}
    if blocked:
        v4_blocked = by_family["ip"].verdict.outcome == "blocked"
        return CheckResult(
            "firewall.tcp",
            title,
            "fail" if v4_blocked else "warn",
            f"The firewall ({_frontend(findings)}) blocks new TCP connections to port {ctx.port} "
            f"{where}: {_words(blocked)}.",
            _evidence(report),
            tuple(linux_fixes(findings, ctx, "tcp", ctx.port)),
            facts,
        )
    unsure = [f for f in report.families if f.verdict.outcome == "unknown"]
    if unsure:
        return CheckResult(
            "firewall.tcp",
            title,
            "unknown",
            f"Cannot tell whether TCP {ctx.port} gets in {where}: {unsure[0].verdict.reason}",
            _evidence(report),
            (
                Fix(
                    "Test it for real: on another PC, run lanchat doctor "
                    f"{lan.join_host()}:{ctx.port}",
                    (f"lanchat doctor {lan.join_host()}:{ctx.port}",),
                    run_on="the other PCs",
                ),
            ),
            facts,
        )
    return CheckResult(
        "firewall.tcp",
        title,
        "pass",
        f"New TCP connections to port {ctx.port} {where} get in ("
        + ("no firewall rules" if report.status == "no-firewall" else _frontend(findings))
        + ").",
        _evidence(report),
        facts=facts,
    )


def _if_closed(fixes: list[Fix]) -> Fix:
    fix = fixes[0]
    return Fix("If the port turns out to be closed: " + fix.text, fix.commands, fix.needs_admin)


def check_firewall_mdns(findings: LinuxFindings | None, ctx: ServerContext) -> CheckResult:
    """firewall.mdns: would discovery packets (UDP 5353 to the mDNS group) get in? A warning."""
    title = "The firewall lets discovery (mDNS, UDP 5353) in"
    if findings is None or ctx.lan is None:
        return CheckResult("firewall.mdns", title, "unknown", "No IPv4 LAN address to check.")
    report = findings.mdns
    lan = ctx.lan
    optional = discovery_is_optional(lan.join_host(), ctx.port)
    facts = {"verdicts": {f.packet.family: f.verdict.to_dict() for f in report.families}}
    if report.status == "cannot-read":
        return CheckResult(
            "firewall.mdns",
            title,
            "unknown",
            "Cannot tell whether discovery packets get in: reading the rules needs root.",
            _evidence(report),
            (rerun_as_admin(ctx.rerun, "linux"), optional),
            facts,
        )
    blocked = _blocked(report)
    if blocked:
        return CheckResult(
            "firewall.mdns",
            title,
            "warn",
            "The firewall blocks discovery (mDNS, UDP 5353): other PCs will not find this "
            f"server with `lanchat discover`; {_words(blocked)}.",
            _evidence(report),
            (*linux_fixes(findings, ctx, "udp", MDNS_PORT), optional),
            facts,
        )
    unsure = [f for f in report.families if f.verdict.outcome == "unknown"]
    if unsure:
        return CheckResult(
            "firewall.mdns",
            title,
            "unknown",
            f"Cannot tell whether discovery packets get in: {unsure[0].verdict.reason}",
            _evidence(report),
            (optional,),
            facts,
        )
    return CheckResult(
        "firewall.mdns",
        title,
        "pass",
        "Discovery packets (UDP 5353 to 224.0.0.251 / ff02::fb) get in.",
        _evidence(report),
        facts=facts,
    )
