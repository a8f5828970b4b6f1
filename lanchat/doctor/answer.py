"""The answer block, computed from the check results: on this network, is a firewall rule needed
(and which), port forwarding is not, and how others join; from the internet, what it would take,
why not to, and the safer alternatives."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from lanchat.doctor.result import Answer, AnswerLine, CheckResult

SERVER_QUESTION = (
    "Can other PCs reach this lanchat server, and do I need a firewall rule or port forwarding?"
)
NO_FORWARDING = (
    "Not needed for people on this network: port forwarding only changes what the router does "
    "with connections arriving from the internet; PCs on the same network connect directly."
)
# docs/security.md is the longer answer (the threat model per mode).
SECURITY_DOC = "docs/security.md"
WHY_NOT = (
    "We recommend not exposing lanchat to the internet: anyone anywhere who finds the port can "
    "try it. If it must be reachable from outside, run `lanchat serve --tls` with a room "
    "password, so that the chat is encrypted and only people who know the password get in; "
    "without both, whoever finds the port can read the room, speak as anyone and flood it. A "
    f"VPN (next) is safer still. What each protects against: {SECURITY_DOC} in lanchat's "
    "documentation."
)


def _by_id(checks: Sequence[CheckResult]) -> dict[str, CheckResult]:
    return {c.id: c for c in checks}


def _line(check: CheckResult | None) -> AnswerLine | None:
    if check is None or check.status == "skip":
        return None
    return AnswerLine(check.status, check.summary)


def alternatives(port: int) -> tuple[str, ...]:
    """Safer ways to chat with people elsewhere than forwarding the port."""
    return (
        WHY_NOT,
        "For friends elsewhere, use a VPN: Tailscale or ZeroTier (everyone installs it; no port "
        f"forwarding, works behind CGNAT), then `lanchat join <their VPN address>:{port}`; or "
        "a WireGuard server on your router (needs one forwarded UDP port and a public address).",
        f"For one or two people with SSH access to this PC: an SSH tunnel, `ssh -L {port}:"
        f"localhost:{port} you@this-pc`, then `lanchat join 127.0.0.1:{port}` on their side.",
    )


def internet_lines(
    checks: dict[str, CheckResult], port: int, lan: str | None
) -> tuple[AnswerLine, ...]:
    """What reaching this server from the internet would take, from the nat.* checks if run."""
    target = f"{lan}:{port}" if lan else f"this PC's port {port}"
    need = AnswerLine(
        "skip",
        f"It would take: the firewall rule above, port forwarding TCP {port} -> {target} on the "
        "router, and a real public IPv4 address on the router (not carrier-grade NAT).",
    )
    wan = checks.get("nat.wan")
    if wan is None:
        return (
            need,
            AnswerLine(
                "unknown",
                "Whether this connection has a public address was not checked: run "
                "`lanchat doctor --internet` (it asks the router, nothing else).",
            ),
        )
    return (need, AnswerLine(wan.status, wan.summary))


def server_answer(checks: Sequence[CheckResult], port: int) -> Answer:
    """The answer for `lanchat doctor` on the server PC."""
    by = _by_id(checks)
    bind, lan, env = by.get("server.bind"), by.get("lan.address"), by.get("env.virtualized")
    tcp, app, profile = (
        by.get("firewall.tcp"),
        by.get("firewall.app-block"),
        by.get("windows.profile"),
    )
    mdns_fw, mdns_self, mdns_n = (
        by.get("firewall.mdns"),
        by.get("mdns.self"),
        by.get("mdns.neighbours"),
    )
    address = lan.facts.get("address") if lan else None
    join = lan.facts.get("join") if lan else None
    lines = [
        line
        for line in (_line(bind), _line(lan), _line(env), _line(tcp), _line(app), _line(profile))
        if line is not None
    ]
    mdns_lines = [x for x in (_line(mdns_fw), _line(mdns_self), _line(mdns_n)) if x is not None]
    lines += mdns_lines
    rule = _firewall_rule(tcp, app, profile, port)
    blockers = [
        c for c in (bind, lan, env, tcp, app, profile) if c is not None and c.status == "fail"
    ]
    unsure = [c for c in (tcp, app, profile) if c is not None and c.status == "unknown"]
    running = bool(bind and bind.facts.get("running"))
    steps: list[str] = []
    if blockers:
        verdict = "Not yet: " + "; ".join(_short(c) for c in blockers)
        steps.append(
            "Fix the items marked as failed above (each has its command), then run "
            "lanchat doctor again."
        )
    elif not running:
        verdict = (
            f"Nothing stops other PCs yet, but no lanchat server runs on port {port}: start it "
            f"with `lanchat serve --port {port}`."
        )
    elif unsure:
        verdict = "Probably, but the firewall could not be checked completely: " + "; ".join(
            _short(c) for c in unsure
        )
    else:
        verdict = (
            "Yes: other PCs on this network can join"
            + (f" with `{join}`" if join else "")
            + ". "
            + _no_forwarding_verdict(rule)
        )
    if join:
        then = "Then tell" if blockers or not running else "Tell"
        steps.append(f"{then} the others on this network: {join}")
        steps.append(f"To test it for real, run on one of them: lanchat doctor {join.split()[-1]}")
    return Answer(
        SERVER_QUESTION,
        verdict,
        tuple(lines),
        rule,
        NO_FORWARDING,
        tuple(steps),
        internet_lines(by, port, address),
        alternatives(port),
    )


def _no_forwarding_verdict(rule: str) -> str:
    if rule.startswith("Not needed"):
        return "No firewall rule and no port forwarding needed."
    if rule.startswith("In place"):
        return "The firewall rule in place lets them in; no port forwarding needed."
    return "No port forwarding needed."


def _short(check: CheckResult) -> str:
    return f"{check.id} ({check.summary.split(': ')[0].rstrip('.')})"


def _firewall_rule(
    tcp: CheckResult | None, app: CheckResult | None, profile: CheckResult | None, port: int
) -> str:
    """Whether a firewall rule is needed on this PC, and which."""
    for check in (app, profile, tcp):
        if check is not None and check.status == "fail" and check.fixes:
            fix = check.fixes[0]
            admin = ", as administrator" if fix.needs_admin else ""
            what = "; ".join(f"`{c}`" for c in fix.commands) or fix.text
            return f"Needed on this PC{admin} ({check.id} above): {what}"
    if tcp is None or tcp.status == "skip":
        return "Unknown: the firewall was not checked on this system."
    if tcp.status == "unknown":
        how = tcp.fixes[0].commands[0] if tcp.fixes and tcp.fixes[0].commands else None
        return "Unknown: " + tcp.summary + (f" Find out with `{how}`." if how else "")
    if tcp.status == "warn":
        return "Needed for IPv6 peers only: " + tcp.summary
    frontend = tcp.facts.get("frontend")
    if frontend in (None, "none"):
        return "Not needed: no firewall filters incoming connections on this PC."
    allowed = _allowed_verdicts(tcp)
    if not allowed:
        return f"Not needed: the firewall ({frontend}) already lets the port in."
    rules = list(dict.fromkeys(str(v["rule_text"]) for v in allowed if v.get("rule_text")))
    if not rules:
        why = f" ({allowed[0]['reason']})" if allowed[0].get("reason") else ""
        return f"Not needed: the firewall ({frontend}) lets new connections in by default{why}."
    # A rule lets it in (often the one this doctor printed): say so, never "not needed".
    which = " and ".join(f"`{r}`" for r in rules)
    keep = "keep it" if len(rules) == 1 else "keep them"
    if frontend == "nftables" or str(frontend).startswith("iptables"):
        tool = "iptables" if rules[0].startswith("-A ") else "nft"  # iptables-save's form
        keep += f" (a rule added with {tool} is lost at reboot unless saved)"
    rule = "the rule" if len(rules) == 1 else "the rules"
    return f"In place: the firewall ({frontend}) lets TCP {port} in with {rule} {which}; {keep}."


def _allowed_verdicts(tcp: CheckResult) -> list[dict[str, Any]]:
    """The firewall's verdicts (per family on Linux) that let the port in; each names the rule
    that did (`rule_text`), or none when a chain policy or a firewall that is off did."""
    verdicts = tcp.facts.get("verdicts")
    found = list(verdicts.values()) if isinstance(verdicts, dict) else [tcp.facts.get("verdict")]
    return [v for v in found if isinstance(v, dict) and v.get("outcome") == "allowed"]


CLIENT_QUESTION = "Can this PC reach the lanchat server at {target}?"


def client_answer(checks: Sequence[CheckResult], target: str, port: int) -> Answer:
    """The answer for `lanchat doctor HOST:PORT` on a client PC."""
    by = _by_id(checks)
    tcp, hello, net = by.get("peer.tcp"), by.get("peer.lanchat"), by.get("peer.network")
    lines = tuple(x for x in (_line(c) for c in checks) if x is not None)
    outcome = tcp.facts.get("outcome") if tcp else None
    steps: list[str] = []
    itself = net is not None and net.facts.get("relation") == "self"
    if hello is not None and hello.status == "pass":
        verdict = f"Yes: `lanchat join {target}` works from this PC."
        rule = "Not needed: the connection gets through the server's firewall."
        steps.append(f"Join: lanchat join {target}")
        if itself:
            # Over loopback the firewall never sees the connection: say what does test it.
            rule = (
                "Not tested from this PC: a connection to itself does not pass its firewall; "
                f"`lanchat doctor --port {port}` here says whether a rule is needed."
            )
            steps.append(f"Check this PC as the server: lanchat doctor --port {port}")
            lan_target = net.facts.get("lan_target") if net is not None else None
            if lan_target:
                steps.append(f"Then, on another PC on this network: lanchat doctor {lan_target}")
    elif outcome == "connected":
        what = hello.summary if hello else "no lanchat server answered."
        verdict = f"The connection gets through, but: {what}"
        rule = "Not the problem: the connection gets through."
    elif outcome == "timeout":
        verdict = (
            "No: the connection gets no answer (most likely a firewall on the server PC drops it)."
        )
        rule = (
            "Probably needed on the server PC: run `lanchat doctor` there; its firewall.tcp "
            "check prints the exact rule."
        )
    elif outcome == "prohibited":
        verdict = (
            "No: a firewall rejects the connection as 'administratively prohibited' (most "
            "likely the one on the server PC)."
        )
        rule = (
            "Probably needed on the server PC: run `lanchat doctor` there; its firewall.tcp "
            "check prints the exact rule."
        )
    elif outcome == "refused":
        verdict = (
            "No: the server PC refuses the connection (no server on that port, a server "
            "listening on 127.0.0.1 only, or a reject rule)."
        )
        rule = (
            "Maybe: a reject rule on the server PC causes this too; run `lanchat doctor` there "
            "to tell which."
        )
    else:
        first = next((c for c in checks if c.status == "fail"), None)
        verdict = "No: " + (first.summary if first else "the server could not be reached.")
        rule = "Unknown: the connection did not reach the server PC's firewall."
        if outcome == "host-unreachable" and net and net.facts.get("relation") == "on-link":
            # Over IPv4 Linux reports firewalld's "admin prohibited" reject as no route to host.
            rule = (
                "Maybe: a firewall that rejects with 'admin prohibited' (firewalld's default) "
                "looks like this; run `lanchat doctor` on the server PC to tell."
            )
    if outcome not in (None, "connected"):
        steps.append(f"On the server PC: lanchat doctor --port {port}")
    forwarding = NO_FORWARDING
    if net is not None and net.facts.get("relation") == "off-link":
        forwarding = (
            "Not for PCs on the same network. This server is on another network: joining "
            "works only if the networks are routed to each other (port forwarding is for the "
            "internet, and not recommended: see below)."
        )
    internet: tuple[AnswerLine, ...] = (
        AnswerLine(
            "skip",
            "Reaching a server from the internet is decided on the server's side: run "
            "`lanchat doctor --internet` on the server PC.",
        ),
    )
    if "nat.wan" in by:
        internet = internet_lines(by, port, None)
    return Answer(
        CLIENT_QUESTION.format(target=target),
        verdict,
        lines,
        rule,
        forwarding,
        tuple(steps),
        internet,
        alternatives(port),
    )
