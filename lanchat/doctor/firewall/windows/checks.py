"""Windows: one PowerShell call (profiles, firewall profiles, inbound rules as JSON), decided by
decide_windows_inbound, turned into firewall.detect, firewall.tcp, firewall.app-block,
windows.profile and firewall.mdns with PowerShell fixes."""

from __future__ import annotations

from dataclasses import dataclass

from lanchat.doctor.context import MDNS_PORT, POWERSHELL_TIMEOUT, ServerContext
from lanchat.doctor.firewall.fixes import discovery_is_optional
from lanchat.doctor.firewall.windows.decide import WindowsDecision, decide_windows_inbound
from lanchat.doctor.firewall.windows.fixes import (
    windows_allow_port,
    windows_block_all,
    windows_make_private,
    windows_remove_program_block,
)
from lanchat.doctor.firewall.windows.parse import (
    WINDOWS_FIREWALL_COMMAND,
    WindowsFirewallState,
    parse_windows_firewall,
)
from lanchat.doctor.probe.interface import TIMED_OUT_RC, Probe
from lanchat.doctor.result import CheckResult, Fix

FIREWALL = "Windows Defender Firewall"


@dataclass(frozen=True)
class WindowsFindings:
    """The document as read (or why not) and the decisions for TCP port and UDP 5353."""

    state: WindowsFirewallState | None
    problem: str | None
    tcp: WindowsDecision | None
    mdns: WindowsDecision | None


def collect_windows(probe: Probe, ctx: ServerContext) -> WindowsFindings:
    """Run the PowerShell query once and decide for the LAN interface's profile."""
    out = probe.run(WINDOWS_FIREWALL_COMMAND, POWERSHELL_TIMEOUT)
    if out is None:
        return WindowsFindings(None, "PowerShell is not available", None, None)
    if out.returncode == TIMED_OUT_RC:
        return WindowsFindings(None, f"PowerShell {out.stderr}", None, None)
    if not out.stdout.strip():
        detail = out.stderr.strip().splitlines()[0] if out.stderr.strip() else "no output"
        return WindowsFindings(
            None, f"PowerShell failed (exit {out.returncode}): {detail}", None, None
        )
    state = parse_windows_firewall(out.stdout)
    alias = ctx.lan.interface if ctx.lan else None
    tcp = decide_windows_inbound(
        state, ctx.port, proto="tcp", interface_alias=alias, program=ctx.exe
    )
    mdns = decide_windows_inbound(
        state, MDNS_PORT, proto="udp", interface_alias=alias, program=ctx.exe
    )
    return WindowsFindings(state, None, tcp, mdns)


def _unknown(check_id: str, title: str, findings: WindowsFindings) -> CheckResult:
    return CheckResult(
        check_id, title, "unknown", f"Cannot read the Windows firewall: {findings.problem}."
    )


def check_windows_detect(findings: WindowsFindings) -> CheckResult:
    """firewall.detect on Windows: the profiles and which one the LAN connection uses."""
    title = "Which firewall is in charge"
    if findings.state is None or findings.tcp is None:
        return _unknown("firewall.detect", title, findings)
    state, decision = findings.state, findings.tcp
    evidence = [
        f"profile {p.name}: enabled {p.enabled}, default inbound {p.default_inbound_action}, "
        f"AllowInboundRules {p.allow_inbound_rules}"
        for p in state.firewall_profiles
    ]
    evidence += [
        f"network {c.name!r} on {c.interface_alias} (index {c.interface_index}): {c.category}"
        for c in state.connection_profiles
    ]
    evidence += list(state.errors)
    facts = {"frontend": FIREWALL, "profile": decision.profile}
    if decision.profile is None:
        return CheckResult(
            "firewall.detect",
            title,
            "unknown",
            f"{FIREWALL}: cannot tell which profile applies ({decision.verdict.reason}).",
            tuple(evidence),
            facts=facts,
        )
    network = decision.network
    on = f" for {network.interface_alias} ({network.name!r})" if network else ""
    return CheckResult(
        "firewall.detect",
        title,
        "pass",
        f"{FIREWALL}, {decision.profile} profile{on}.",
        tuple(evidence),
        facts=facts,
    )


def _rules_evidence(decision: WindowsDecision) -> tuple[str, ...]:
    """The rules that decided, as the firewall console shows them (the reason is the summary)."""
    lines = [f"decided by: {decision.verdict.source}"]
    lines += [f"block rule: {r.describe()}" for r in decision.block_rules]
    lines += [f"allow rule: {r.describe()}" for r in decision.allow_rules]
    if decision.verdict.rule_text and not (decision.block_rules or decision.allow_rules):
        lines.append(f"rule: {decision.verdict.rule_text}")
    return tuple(lines)


def _tcp_fixes(decision: WindowsDecision, ctx: ServerContext) -> list[Fix]:
    profile = decision.profile or "Private"
    source = decision.verdict.source
    if source.endswith("AllowInboundRules"):
        return [windows_block_all(profile)]
    if decision.block_rules:
        rule = decision.block_rules[0]
        if rule.program.lower() != "any":
            return [windows_remove_program_block(rule.program)]
        return [
            Fix(
                f"The rule {rule.display_name!r} blocks the port; disable it if it is not needed "
                "(PowerShell as Administrator):",
                (f'Disable-NetFirewallRule -Name "{rule.name}"',),
                True,
            )
        ]
    network = decision.network
    if profile == "Public" and network is not None:
        return [
            windows_make_private(network.name, network.interface_alias, network.interface_index),
            windows_allow_port(ctx.port, "tcp", "Private"),
        ]
    return [windows_allow_port(ctx.port, "tcp", profile)]


def check_windows_tcp(findings: WindowsFindings, ctx: ServerContext) -> CheckResult:
    """firewall.tcp on Windows."""
    title = f"The firewall lets TCP {ctx.port} in from the LAN"
    if findings.tcp is None:
        return _unknown("firewall.tcp", title, findings)
    decision = findings.tcp
    verdict = decision.verdict
    evidence = _rules_evidence(decision)
    facts = {"verdict": verdict.to_dict(), "profile": decision.profile, "frontend": FIREWALL}
    if verdict.outcome == "allowed":
        return CheckResult(
            "firewall.tcp",
            title,
            "pass",
            f"TCP {ctx.port} gets in: {verdict.reason}.",
            evidence,
            facts=facts,
        )
    if verdict.outcome == "blocked":
        return CheckResult(
            "firewall.tcp",
            title,
            "fail",
            f"{FIREWALL} blocks TCP {ctx.port}: {verdict.reason}. Other PCs see a timeout.",
            evidence,
            tuple(_tcp_fixes(decision, ctx)),
            facts,
        )
    return CheckResult(
        "firewall.tcp",
        title,
        "unknown",
        f"Cannot tell whether TCP {ctx.port} gets in: {verdict.reason}.",
        evidence,
        (windows_allow_port(ctx.port, "tcp", decision.profile or "Private"),),
        facts,
    )


def check_windows_app_block(findings: WindowsFindings, ctx: ServerContext) -> CheckResult:
    """firewall.app-block: a block rule for the Python program wins over every allow rule."""
    title = "No firewall rule blocks the Python program itself"
    if findings.tcp is None:
        return _unknown("firewall.app-block", title, findings)
    if ctx.exe is None:
        return CheckResult(
            "firewall.app-block",
            title,
            "unknown",
            "The program that runs lanchat is not known, so its block rules cannot be looked up.",
        )
    blocks = findings.tcp.program_block_rules
    if not blocks:
        return CheckResult(
            "firewall.app-block",
            title,
            "pass",
            f"No inbound block rule names {ctx.exe}.",
            facts={"exe": ctx.exe},
        )
    return CheckResult(
        "firewall.app-block",
        title,
        "fail",
        f"{len(blocks)} inbound block rule(s) name {ctx.exe} (left by a cancelled or denied "
        "security prompt); block rules win over allow rules.",
        tuple(rule.describe() for rule in blocks),
        (windows_remove_program_block(ctx.exe),),
        {"exe": ctx.exe, "rules": [r.to_dict() for r in blocks]},
    )


def check_windows_profile(findings: WindowsFindings, ctx: ServerContext) -> CheckResult:
    """windows.profile: a LAN connection in the Public profile blocks what Private would allow."""
    title = "The LAN connection is not in the Public profile"
    if findings.tcp is None:
        return _unknown("windows.profile", title, findings)
    decision = findings.tcp
    network = decision.network
    if network is None:
        return CheckResult(
            "windows.profile", title, "unknown", f"Cannot tell: {decision.verdict.reason}."
        )
    facts = {
        "network": network.name,
        "alias": network.interface_alias,
        "category": network.category,
    }
    if network.category != "Public":
        return CheckResult(
            "windows.profile",
            title,
            "pass",
            f'"{network.name}" ({network.interface_alias}) is {network.category}.',
            facts=facts,
        )
    blocked = decision.verdict.outcome == "blocked"
    return CheckResult(
        "windows.profile",
        title,
        "fail" if blocked else "warn",
        f'Windows treats "{network.name}" ({network.interface_alias}) as a Public network'
        + (", and that blocks lanchat's port." if blocked else "; lanchat's port gets in anyway."),
        fixes=(
            windows_make_private(network.name, network.interface_alias, network.interface_index),
        ),
        facts=facts,
    )


def check_windows_mdns(findings: WindowsFindings, ctx: ServerContext) -> CheckResult:
    """firewall.mdns on Windows: UDP 5353 for the current profile (a warning)."""
    title = "The firewall lets discovery (mDNS, UDP 5353) in"
    if findings.mdns is None:
        return _unknown("firewall.mdns", title, findings)
    verdict = findings.mdns.verdict
    host = ctx.lan.join_host() if ctx.lan else "SERVER"
    evidence = _rules_evidence(findings.mdns)
    if verdict.outcome == "allowed":
        return CheckResult(
            "firewall.mdns", title, "pass", f"UDP 5353 gets in: {verdict.reason}.", evidence
        )
    return CheckResult(
        "firewall.mdns",
        title,
        "warn" if verdict.outcome == "blocked" else "unknown",
        f"{'Discovery packets are blocked' if verdict.outcome == 'blocked' else 'Cannot tell'}: "
        f"{verdict.reason}.",
        evidence,
        (
            # Private even on a Public network: opening ports there is what not to do;
            # windows.profile says how to make a trusted network Private.
            windows_allow_port(MDNS_PORT, "udp", "Private"),
            discovery_is_optional(host, ctx.port),
        ),
    )
