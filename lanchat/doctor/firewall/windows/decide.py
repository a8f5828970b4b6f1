"""Windows: one PowerShell JSON document (profiles, firewall profiles, inbound rules) -> a verdict.

The question answered: is inbound TCP (or UDP) port P allowed for the profile of the network
this PC is on, and does a block rule for the Python executable win? Windows' order: a profile
with the firewall off lets everything in; "Block all incoming connections"
(AllowInboundRules False) blocks everything; otherwise a matching block rule beats any allow
rule; a matching allow rule lets it in; else the profile's default inbound action (Block
unless configured) decides. ConvertTo-Json writes enums as numbers unless they are converted
to strings, and one item as an object instead of an array: both forms are read.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from lanchat.doctor.firewall.verdict import Verdict, unknown
from lanchat.doctor.firewall.windows.parse import (
    ALL_PROFILES,
    ConnectionProfile,
    FirewallRule,
    WindowsFirewallState,
    parse_windows_firewall,
)

CATEGORY_TO_PROFILE = {"Public": "Public", "Private": "Private", "DomainAuthenticated": "Domain"}
# Remote addresses that a peer on the same LAN always matches.
LAN_REMOTE = frozenset({"any", "*", "localsubnet"})


@dataclass(frozen=True)
class WindowsDecision:
    """The verdict for one port and profile, with the rules that mattered."""

    verdict: Verdict
    profile: str | None  # the firewall profile used: Domain, Private or Public
    network: ConnectionProfile | None = None
    allow_rules: tuple[FirewallRule, ...] = ()  # matching allow rules
    block_rules: tuple[FirewallRule, ...] = ()  # matching block rules
    program_block_rules: tuple[FirewallRule, ...] = field(default=())  # any block rule for the exe

    def to_dict(self) -> dict[str, Any]:
        """Plain data for JSON output."""
        return {
            "verdict": self.verdict.to_dict(),
            "profile": self.profile,
            "network": self.network.to_dict() if self.network else None,
            "allow_rules": [r.to_dict() for r in self.allow_rules],
            "block_rules": [r.to_dict() for r in self.block_rules],
            "program_block_rules": [r.to_dict() for r in self.program_block_rules],
        }


@dataclass(frozen=True)
class _Query:
    """What is asked: a port and protocol, in a firewall profile, for a program (if known)."""

    port: int
    proto: str  # TCP or UDP
    profile: str  # Domain, Private or Public
    program: str | None


# ---- the decision ---------------------------------------------------------------------------


def decide_windows_inbound(
    state: WindowsFirewallState | str | bytes,
    port: int,
    *,
    proto: str = "tcp",
    interface_alias: str | None = None,
    profile: str | None = None,
    program: str | None = None,
) -> WindowsDecision:
    """Whether inbound ``proto``/``port`` gets in on the network of ``interface_alias``.

    ``profile`` (Domain/Private/Public) overrides the network's category. ``program`` is the
    listening executable (e.g. C:\\Python312\\python.exe); None means unknown, which leaves
    program-specific rules undecided. Never raises.
    """
    if not isinstance(state, WindowsFirewallState):
        state = parse_windows_firewall(state)
    network, chosen = _choose_profile(state, interface_alias, profile)
    if isinstance(chosen, Verdict):
        return WindowsDecision(chosen, None, network)
    return _decide(state, _Query(port, proto.upper(), chosen, program), network)


def _choose_profile(
    state: WindowsFirewallState, alias: str | None, profile: str | None
) -> tuple[ConnectionProfile | None, str | Verdict]:
    network: ConnectionProfile | None = None
    if alias is not None:
        found = [c for c in state.connection_profiles if c.interface_alias.lower() == alias.lower()]
        network = found[0] if found else None
    elif len(state.connection_profiles) == 1:
        network = state.connection_profiles[0]
    if profile is not None:
        wanted = CATEGORY_TO_PROFILE.get(profile, profile)
        if wanted not in ALL_PROFILES:
            return network, unknown("windows", f"{profile!r} is not a firewall profile")
        return network, wanted
    if network is None:
        listed = ", ".join(f"{c.interface_alias} ({c.category})" for c in state.connection_profiles)
        why = (
            f"no network connection named {alias!r}"
            if alias is not None
            else "several network connections and none was chosen"
            if state.connection_profiles
            else "Windows listed no network connection profile"
        )
        return None, unknown(
            "windows",
            f"cannot tell which firewall profile applies: {why}"
            + (f" (connections: {listed})" if listed else ""),
        )
    name = CATEGORY_TO_PROFILE.get(network.category)
    if name is None:
        return network, unknown(
            "windows", f"the network category {network.category!r} is not known"
        )
    return network, name


def _decide(
    state: WindowsFirewallState, query: _Query, network: ConnectionProfile | None
) -> WindowsDecision:
    port, proto, profile, program = query.port, query.proto, query.profile, query.program
    on = f" on network {network.name!r} ({network.interface_alias})" if network else ""
    settings = {p.name: p for p in state.firewall_profiles}.get(profile)
    if settings is None:
        reason = f"the {profile} firewall profile was not read"
        if state.errors:
            reason += f" ({'; '.join(state.errors)})"
        return WindowsDecision(
            unknown(f"windows firewall profile {profile}", reason), profile, network
        )
    where = f"windows firewall profile {profile}"
    program_blocks = tuple(
        r for r in state.rules if _is_block(r) and program and _same_program(r.program, program)
    )
    if settings.enabled == "False":
        verdict = Verdict(
            "allowed", None, where, f"the firewall is off for the {profile} profile{on}"
        )
        return WindowsDecision(verdict, profile, network, program_block_rules=program_blocks)
    if settings.allow_inbound_rules == "False":
        verdict = Verdict(
            "blocked",
            "drop",
            f"{where} AllowInboundRules",
            f'the {profile} profile{on} is set to "Block all incoming connections, including '
            'those in the list of allowed apps" (AllowInboundRules False): no allow rule helps',
        )
        return WindowsDecision(verdict, profile, network, program_block_rules=program_blocks)
    blocks, maybe_blocks = _matching(state.rules, "Block", query)
    allows, maybe_allows = _matching(state.rules, "Allow", query)

    def decision(verdict: Verdict) -> WindowsDecision:
        return WindowsDecision(verdict, profile, network, allows, blocks, program_blocks)

    if blocks:
        rule = blocks[0]
        why = "a block rule for this program" if rule.program.lower() != "any" else "a block rule"
        verdict = Verdict(
            "blocked",
            "drop",
            f"windows rule {rule.display_name!r} ({rule.name})",
            f"{why} matches {proto} {port} in the {profile} profile{on}, and block rules win "
            "over allow rules"
            + (f" (there are also {len(allows)} matching allow rules)" if allows else ""),
            rule.describe(),
        )
        return decision(verdict)
    if maybe_blocks:
        rule, doubt = maybe_blocks[0]
        verdict = unknown(
            f"windows rule {rule.display_name!r} ({rule.name})",
            f"a block rule may apply ({doubt}); if it does, it wins over any allow rule",
            rule.describe(),
        )
        return decision(verdict)
    if allows:
        rule = allows[0]
        verdict = Verdict(
            "allowed",
            "accept",
            f"windows rule {rule.display_name!r} ({rule.name})",
            f"an allow rule matches {proto} {port} in the {profile} profile{on}",
            rule.describe(),
        )
        return decision(verdict)
    default = settings.default_inbound_action
    if default == "Allow":
        verdict = Verdict(
            "allowed",
            "accept",
            f"{where} DefaultInboundAction",
            f"no rule matches and the {profile} profile's default inbound action is Allow",
        )
        return decision(verdict)
    if maybe_allows:
        rule, doubt = maybe_allows[0]
        verdict = unknown(
            f"windows rule {rule.display_name!r} ({rule.name})",
            f"only an allow rule that may not apply could let it in ({doubt})",
            rule.describe(),
        )
        return decision(verdict)
    elsewhere = [
        r
        for r in state.rules
        if r.action == "Allow" and r.enabled and _port_and_proto(r, port, proto) is True
    ]
    hint = ""
    if elsewhere:
        names = ", ".join(sorted(elsewhere[0].profiles))
        hint = (
            f"; the allow rule {elsewhere[0].display_name!r} covers this port only for the "
            f"{names} profile"
        )
    unset = " (not configured: the Windows default)" if default != "Block" else ""
    verdict = Verdict(
        "blocked",
        "drop",
        f"{where} DefaultInboundAction",
        f"no allow rule matches {proto} {port} in the {profile} profile{on}, and the default "
        f"inbound action is Block{unset}{hint}",
    )
    return decision(verdict)


def _is_block(rule: FirewallRule) -> bool:
    return rule.enabled and rule.direction == "Inbound" and rule.action == "Block"


def _matching(
    rules: Sequence[FirewallRule], action: str, query: _Query
) -> tuple[tuple[FirewallRule, ...], tuple[tuple[FirewallRule, str], ...]]:
    """Rules with ``action`` that surely match, and those that may match (with the doubt)."""
    port, proto, profile, program = query.port, query.proto, query.profile, query.program
    sure: list[FirewallRule] = []
    maybe: list[tuple[FirewallRule, str]] = []
    for rule in rules:
        if not rule.enabled or rule.direction != "Inbound" or rule.action != action:
            continue
        if profile not in rule.profiles or _port_and_proto(rule, port, proto) is not True:
            continue
        doubts = []
        if rule.program.lower() != "any":
            if program is None:
                doubts.append(
                    f"it is for the program {rule.program} and the listening program is not known"
                )
            elif not _same_program(rule.program, program):
                continue
        remote = {a.lower() for a in rule.remote_addresses}
        if not remote <= LAN_REMOTE:
            doubts.append(f"it only applies to remote addresses {', '.join(rule.remote_addresses)}")
        if doubts:
            maybe.append((rule, "; ".join(doubts)))
        else:
            sure.append(rule)
    return tuple(sure), tuple(maybe)


def _port_and_proto(rule: FirewallRule, port: int, proto: str) -> bool:
    protocol = rule.protocol.upper()
    numbers = {"TCP": "6", "UDP": "17"}
    if protocol not in ("ANY", proto, numbers.get(proto, "")):
        return False
    return any(_port_in(spec, port) for spec in rule.local_ports)


def _port_in(spec: str, port: int) -> bool:
    """'Any', '7000', '7000-7010' (keywords such as RPC or IPHTTPSIn never match a plain port)."""
    text = spec.strip()
    if text.lower() in ("any", "*"):
        return True
    low, sep, high = text.partition("-")
    if low.strip().isdigit() and (not sep or high.strip().isdigit()):
        return int(low) <= port <= int(high if sep else low)
    return False


def _same_program(rule_program: str, program: str) -> bool:
    """Windows compares program paths case-insensitively; rules may use %SystemRoot% etc."""
    return _norm(rule_program) == _norm(program)


def _norm(path: str) -> str:
    return path.strip().strip('"').replace("/", "\\").lower()
