"""Linux: firewall.detect, firewall.tcp and firewall.mdns from what collect.py read, in
words (drop means a timeout for the others, reject a refusal) and with the fix commands."""

from __future__ import annotations

from lanchat.doctor.context import MDNS_PORT, ServerContext
from lanchat.doctor.firewall.fixes import discovery_is_optional, rerun_as_admin
from lanchat.doctor.firewall.linux.collect import (
    LinuxFindings,
    active_services,
    blocked_families,
    frontend_of,
)
from lanchat.doctor.firewall.linux.decide import FamilyReport, LinuxFirewallReport
from lanchat.doctor.firewall.linux.fixes import linux_fixes
from lanchat.doctor.result import CheckResult, Fix

FAMILY_WORDS = {"ip": "IPv4", "ip6": "IPv6"}


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
        "frontend": frontend_of(findings),
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
    active = active_services(findings.services)
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
        "frontend": frontend_of(findings),
        "zone": findings.zone,
    }
    if report.status == "cannot-read":
        fixes = [rerun_as_admin(ctx.rerun, "linux")]
        active = active_services(findings.services)
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
    blocked = blocked_families(report)
    by_family = {f.packet.family: f for f in report.families}
    if blocked:
        v4_blocked = by_family["ip"].verdict.outcome == "blocked"
        return CheckResult(
            "firewall.tcp",
            title,
            "fail" if v4_blocked else "warn",
            f"The firewall ({frontend_of(findings)}) blocks new TCP connections to port {ctx.port} "
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
        + ("no firewall rules" if report.status == "no-firewall" else frontend_of(findings))
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
    blocked = blocked_families(report)
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
