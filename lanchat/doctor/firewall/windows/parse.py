"""The Windows firewall document: the PowerShell that prints it (WINDOWS_FIREWALL_COMMAND) and
its reader (ConvertTo-Json output -> connection profiles, firewall profiles, inbound rules)."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

# One PowerShell run for everything (PowerShell starts slowly). No double quotes inside, so
# the script survives Windows command-line quoting when passed as a single -Command argument.
# Filters are fetched once with -All and joined on InstanceID: piping every rule into
# Get-NetFirewallPortFilter is slow on PCs with hundreds of rules.
WINDOWS_FIREWALL_SCRIPT = (
    "$ErrorActionPreference = 'Stop'; $out = [ordered]@{}; "
    "try { $out.ConnectionProfiles = @(Get-NetConnectionProfile | ForEach-Object { [ordered]@{ "
    "Name = $_.Name; InterfaceAlias = $_.InterfaceAlias; InterfaceIndex = $_.InterfaceIndex; "
    "NetworkCategory = [string]$_.NetworkCategory } }) } "
    "catch { $out.ConnectionProfilesError = [string]$_ }; "
    "try { $out.FirewallProfiles = @(Get-NetFirewallProfile -PolicyStore ActiveStore | "
    "ForEach-Object { [ordered]@{ Name = [string]$_.Name; Enabled = [string]$_.Enabled; "
    "DefaultInboundAction = [string]$_.DefaultInboundAction; "
    "AllowInboundRules = [string]$_.AllowInboundRules } }) } "
    "catch { $out.FirewallProfilesError = [string]$_ }; "
    "try { $ports = @{}; Get-NetFirewallPortFilter -All -PolicyStore ActiveStore | "
    "ForEach-Object { $ports[$_.InstanceID] = $_ }; "
    "$apps = @{}; Get-NetFirewallApplicationFilter -All -PolicyStore ActiveStore | "
    "ForEach-Object { $apps[$_.InstanceID] = $_ }; "
    "$addrs = @{}; Get-NetFirewallAddressFilter -All -PolicyStore ActiveStore | "
    "ForEach-Object { $addrs[$_.InstanceID] = $_ }; "
    "$out.InboundRules = @(Get-NetFirewallRule -Direction Inbound -Enabled True "
    "-PolicyStore ActiveStore | ForEach-Object { $p = $ports[$_.InstanceID]; "
    "$a = $apps[$_.InstanceID]; $r = $addrs[$_.InstanceID]; [ordered]@{ Name = $_.Name; "
    "DisplayName = $_.DisplayName; Enabled = [string]$_.Enabled; "
    "Direction = [string]$_.Direction; Action = [string]$_.Action; Profile = [string]$_.Profile; "
    "Protocol = [string]$p.Protocol; LocalPort = @($p.LocalPort); Program = [string]$a.Program; "
    "RemoteAddress = @($r.RemoteAddress) } }) } "
    "catch { $out.InboundRulesError = [string]$_ }; "
    "$out | ConvertTo-Json -Depth 4 -Compress"
)
WINDOWS_FIREWALL_COMMAND: tuple[str, ...] = (
    "powershell",
    "-NoProfile",
    "-NonInteractive",
    "-Command",
    WINDOWS_FIREWALL_SCRIPT,
)

# Enum numbers as ConvertTo-Json writes them without string conversion (NetSecurity/NetConnection).
NETWORK_CATEGORY = {0: "Public", 1: "Private", 2: "DomainAuthenticated"}


GPO_BOOLEAN = {0: "False", 1: "True", 2: "NotConfigured"}


RULE_ENABLED = {1: "True", 2: "False"}


DIRECTION = {1: "Inbound", 2: "Outbound"}


ACTION = {0: "NotConfigured", 2: "Allow", 4: "Block"}


PROFILE_BITS = {1: "Domain", 2: "Private", 4: "Public"}


ALL_PROFILES = frozenset(PROFILE_BITS.values())


@dataclass(frozen=True)
class ConnectionProfile:
    """A network connection and the category Windows put it in."""

    name: str
    interface_alias: str
    interface_index: int | None
    category: str  # Public, Private, DomainAuthenticated, or what Windows printed

    def to_dict(self) -> dict[str, Any]:
        """Plain data for JSON output."""
        return asdict(self)


@dataclass(frozen=True)
class FirewallProfile:
    """One of the Domain/Private/Public firewall profiles."""

    name: str
    enabled: str  # True, False, NotConfigured (= on, the default)
    default_inbound_action: str  # Allow, Block, NotConfigured (= Block, the default)
    allow_inbound_rules: str  # True, False (= block all incoming), NotConfigured (= True)

    def to_dict(self) -> dict[str, Any]:
        """Plain data for JSON output."""
        return asdict(self)


@dataclass(frozen=True)
class FirewallRule:
    """An inbound rule with its port, program and address conditions."""

    name: str
    display_name: str
    enabled: bool
    direction: str
    action: str  # Allow, Block
    profiles: frozenset[str]
    protocol: str  # TCP, UDP, Any, or a number
    local_ports: tuple[str, ...]
    program: str  # "Any" or a path
    remote_addresses: tuple[str, ...] = ("Any",)

    def to_dict(self) -> dict[str, Any]:
        """Plain data for JSON output."""
        data = asdict(self)
        data["profiles"] = sorted(self.profiles)
        return data

    def describe(self) -> str:
        """How the rule looks in the firewall console, in one line."""
        ports = ",".join(self.local_ports)
        profiles = ", ".join(sorted(self.profiles)) if self.profiles != ALL_PROFILES else "Any"
        return (
            f"{self.action} {self.direction} {self.protocol} port {ports} program {self.program} "
            f"profile {profiles} ({self.display_name})"
        )


@dataclass(frozen=True)
class WindowsFirewallState:
    """Everything the PowerShell document held; ``errors`` lists parts that could not be read."""

    connection_profiles: tuple[ConnectionProfile, ...] = ()
    firewall_profiles: tuple[FirewallProfile, ...] = ()
    rules: tuple[FirewallRule, ...] = ()
    errors: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        """Plain data for JSON output."""
        return {
            "connection_profiles": [p.to_dict() for p in self.connection_profiles],
            "firewall_profiles": [p.to_dict() for p in self.firewall_profiles],
            "rules": [r.to_dict() for r in self.rules],
            "errors": list(self.errors),
        }


def parse_windows_firewall(text: str | bytes) -> WindowsFirewallState:
    """Read the JSON document WINDOWS_FIREWALL_COMMAND prints; never raises."""
    try:
        data = json.loads(text)
    except (ValueError, TypeError, RecursionError) as exc:
        return WindowsFirewallState(errors=(f"the PowerShell output is not JSON ({exc})",))
    if not isinstance(data, Mapping):
        return WindowsFirewallState(errors=("the PowerShell output is not a JSON object",))
    errors = [
        f"{key[: -len('Error')]}: {value}"
        for key, value in data.items()
        if isinstance(key, str) and key.endswith("Error") and value
    ]
    connections = tuple(_connection(item) for item in _items(data.get("ConnectionProfiles")))
    profiles = tuple(_profile(item) for item in _items(data.get("FirewallProfiles")))
    rules: list[FirewallRule] = []
    for item in _items(data.get("InboundRules")):
        rule = _rule(item)
        if rule is None:
            errors.append(f"a rule could not be read: {json.dumps(item)[:100]}")
        else:
            rules.append(rule)
    if "FirewallProfiles" not in data and "FirewallProfilesError" not in data:
        errors.append("FirewallProfiles: missing from the document")
    return WindowsFirewallState(connections, profiles, tuple(rules), tuple(errors))


def _items(value: Any) -> list[Mapping[str, Any]]:
    """ConvertTo-Json writes one item as an object and several as an array: accept both."""
    if value is None:
        return []
    found = value if isinstance(value, list) else [value]
    return [item for item in found if isinstance(item, Mapping)]


def _strings(value: Any) -> tuple[str, ...]:
    if value is None:
        return ("Any",)
    found = value if isinstance(value, list) else [value]
    out = tuple(str(v).strip() for v in found if v is not None and str(v).strip())
    return out or ("Any",)


def _enum(value: Any, names: Mapping[int, str]) -> str:
    """An enum value written as a name ("Private"), a number (1) or a bool."""
    if isinstance(value, bool):
        return "True" if value else "False"
    if isinstance(value, int):
        return names.get(value, str(value))
    if isinstance(value, str) and value.strip().lstrip("-").isdigit():
        return names.get(int(value), value.strip())
    return str(value).strip() if value is not None else ""


def _connection(item: Mapping[str, Any]) -> ConnectionProfile:
    index = item.get("InterfaceIndex")
    return ConnectionProfile(
        str(item.get("Name") or ""),
        str(item.get("InterfaceAlias") or ""),
        index if isinstance(index, int) and not isinstance(index, bool) else None,
        _enum(item.get("NetworkCategory"), NETWORK_CATEGORY),
    )


def _profile(item: Mapping[str, Any]) -> FirewallProfile:
    name = _enum(item.get("Name"), PROFILE_BITS)
    return FirewallProfile(
        name,
        _enum(item.get("Enabled"), GPO_BOOLEAN) or "NotConfigured",
        _enum(item.get("DefaultInboundAction"), ACTION) or "NotConfigured",
        _enum(item.get("AllowInboundRules"), GPO_BOOLEAN) or "NotConfigured",
    )


def _profiles(value: Any) -> frozenset[str] | None:
    """ "Any", "Private, Public", 6, or ["Private", "Public"] -> a set of profile names."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int) or (isinstance(value, str) and value.strip().isdigit()):
        bits = int(value)
        if bits == 0 or bits >= 0x7FFFFFFF:
            return ALL_PROFILES
        return frozenset(name for bit, name in PROFILE_BITS.items() if bits & bit)
    names = value if isinstance(value, list) else str(value or "Any").split(",")
    found = {str(n).strip() for n in names if str(n).strip()}
    if not found or "Any" in found or "All" in found:
        return ALL_PROFILES
    if not found <= ALL_PROFILES:
        return None
    return frozenset(found)


def _rule(item: Mapping[str, Any]) -> FirewallRule | None:
    profiles = _profiles(item.get("Profile"))
    if profiles is None:
        return None
    enabled = _enum(item.get("Enabled"), RULE_ENABLED)
    return FirewallRule(
        str(item.get("Name") or ""),
        str(item.get("DisplayName") or item.get("Name") or ""),
        enabled.lower() == "true",
        _enum(item.get("Direction"), DIRECTION) or "Inbound",
        _enum(item.get("Action"), ACTION),
        profiles,
        _enum(item.get("Protocol"), {}) or "Any",
        _strings(item.get("LocalPort")),
        str(item.get("Program") or "Any").strip() or "Any",
        _strings(item.get("RemoteAddress")),
    )
