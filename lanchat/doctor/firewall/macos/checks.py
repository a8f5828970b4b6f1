"""macOS: the Application Firewall (socketfilterfw getters, no sudo) and pf's status, decided
for the Python program that runs lanchat: firewall.detect, firewall.tcp, firewall.app-block."""

from __future__ import annotations

from dataclasses import dataclass

from lanchat.doctor.context import COMMAND_TIMEOUT, ServerContext
from lanchat.doctor.firewall.fixes import rerun_as_admin
from lanchat.doctor.firewall.macos.decide import MacDecision, decide_macos_inbound
from lanchat.doctor.firewall.macos.fixes import macos_allow_app, macos_block_all
from lanchat.doctor.firewall.macos.parse import (
    PF_INFO_COMMAND,
    SOCKETFILTERFW,
    SOCKETFILTERFW_GETTERS,
    AlfState,
    parse_pf_info,
    parse_socketfilterfw,
)
from lanchat.doctor.probe.interface import Probe
from lanchat.doctor.result import CheckResult, Fix

FIREWALL = "macOS Application Firewall"


@dataclass(frozen=True)
class MacFindings:
    """What socketfilterfw and pfctl said, and the decision for the program."""

    alf: AlfState | None
    decision: MacDecision | None
    problem: str | None


def collect_macos(probe: Probe, ctx: ServerContext) -> MacFindings:
    """Run each getter (stdout and stderr together, as the parser expects)."""
    texts: dict[str, str | None] = {}
    for getter in SOCKETFILTERFW_GETTERS:
        out = probe.run([SOCKETFILTERFW, getter], COMMAND_TIMEOUT)
        texts[getter] = None if out is None else f"{out.stdout}\n{out.stderr}".strip()
    if texts["--getglobalstate"] is None:
        return MacFindings(None, None, f"{SOCKETFILTERFW} is not available")
    blocked = None
    if ctx.exe:
        out = probe.run([SOCKETFILTERFW, "--getappblocked", ctx.exe], COMMAND_TIMEOUT)
        blocked = None if out is None else f"{out.stdout}\n{out.stderr}".strip()
    alf = parse_socketfilterfw(
        globalstate=texts["--getglobalstate"],
        blockall=texts["--getblockall"],
        stealthmode=texts["--getstealthmode"],
        allowsigned=texts["--getallowsigned"],
        listapps=texts["--listapps"],
        appblocked=blocked,
    )
    pf_out = probe.run(PF_INFO_COMMAND, COMMAND_TIMEOUT)
    pf = (
        "unknown"
        if pf_out is None
        else parse_pf_info(pf_out.stdout, pf_out.stderr, pf_out.returncode)
    )
    decision = decide_macos_inbound(alf, ctx.exe or "", pf)
    return MacFindings(alf, decision, None)


def check_macos_detect(findings: MacFindings, ctx: ServerContext) -> CheckResult:
    """firewall.detect on macOS: the Application Firewall's state and pf's."""
    title = "Which firewall is in charge"
    if findings.alf is None or findings.decision is None:
        return CheckResult("firewall.detect", title, "unknown", f"Cannot tell: {findings.problem}.")
    alf, decision = findings.alf, findings.decision
    state = {0: "off", 1: "on", 2: "on, blocking all incoming connections"}.get(
        alf.global_state if alf.global_state is not None else -1, "in an unknown state"
    )
    stealth = ", stealth mode on" if alf.stealth else ""
    evidence = (*alf.problems, *decision.notes)
    summary = f"{FIREWALL} is {state}{stealth}; pf is {decision.pf}."
    fixes: tuple[Fix, ...] = ()
    status = "pass" if alf.global_state is not None else "unknown"
    if decision.pf == "cannot-read":
        fixes = (rerun_as_admin(ctx.rerun, "darwin"),)
    return CheckResult(
        "firewall.detect",
        title,
        status,  # type: ignore[arg-type]
        summary,
        evidence,
        fixes,
        {"frontend": FIREWALL, "state": alf.global_state, "pf": decision.pf},
    )


def check_macos_tcp(findings: MacFindings, ctx: ServerContext) -> CheckResult:
    """firewall.tcp on macOS: the Application Firewall works per program, not per port."""
    title = f"The firewall lets TCP {ctx.port} in from the LAN"
    if findings.decision is None:
        return CheckResult("firewall.tcp", title, "unknown", f"Cannot tell: {findings.problem}.")
    verdict = findings.decision.verdict
    evidence = tuple(x for x in (verdict.rule_text, *findings.decision.notes) if x)
    facts = {"verdict": verdict.to_dict(), "frontend": FIREWALL}
    exe = ctx.exe or "the Python program that runs lanchat"
    if verdict.outcome == "allowed":
        return CheckResult(
            "firewall.tcp", title, "pass", f"It gets in: {verdict.reason}.", evidence, facts=facts
        )
    if verdict.outcome == "blocked":
        fix = macos_block_all() if "block all" in verdict.source else macos_allow_app(exe)
        return CheckResult(
            "firewall.tcp",
            title,
            "fail",
            f"{FIREWALL} blocks lanchat: {verdict.reason}.",
            evidence,
            (fix,),
            facts,
        )
    return CheckResult(
        "firewall.tcp",
        title,
        "unknown",
        f"Cannot tell: {verdict.reason}. If macOS asks whether Python may accept incoming "
        "connections, answer Allow.",
        evidence,
        (macos_allow_app(exe),),
        facts,
    )


def check_macos_app_block(findings: MacFindings, ctx: ServerContext) -> CheckResult:
    """firewall.app-block on macOS: the program listed with 'Block incoming connections'."""
    title = "No firewall rule blocks the Python program itself"
    decision = findings.decision
    if decision is None:
        return CheckResult(
            "firewall.app-block", title, "unknown", f"Cannot tell: {findings.problem}."
        )
    if ctx.exe is None:
        return CheckResult(
            "firewall.app-block", title, "unknown", "The program that runs lanchat is not known."
        )
    app = decision.app
    if app is not None and not app.allowed:
        return CheckResult(
            "firewall.app-block",
            title,
            "fail",
            f"The firewall's app list blocks {app.path}.",
            (f"{app.path} ( Block incoming connections )",),
            (macos_allow_app(ctx.exe),),
            {"exe": ctx.exe, "app": app.to_dict()},
        )
    listed = f"listed as allowed ({app.path})" if app else "not listed as blocked"
    return CheckResult(
        "firewall.app-block", title, "pass", f"{ctx.exe} is {listed}.", facts={"exe": ctx.exe}
    )
