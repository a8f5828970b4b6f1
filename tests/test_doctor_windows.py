"""The Windows PowerShell JSON parser and the inbound decision, on recorded-style fixtures."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lanchat.doctor.firewall.windows.decide import decide_windows_inbound
from lanchat.doctor.firewall.windows.parse import (
    WINDOWS_FIREWALL_COMMAND,
    WINDOWS_FIREWALL_SCRIPT,
    parse_windows_firewall,
)

FIXTURES = Path(__file__).parent / "fixtures" / "windows"
PYTHON = r"C:\Users\ana\AppData\Local\Programs\Python\Python312\python.exe"


def fixture(name: str) -> str:
    """One fixture document's text."""
    return (FIXTURES / f"{name}.json").read_text()


@pytest.mark.parametrize(
    ("name", "port", "proto", "outcome", "source"),
    [
        ("private-allow", 7000, "tcp", "allowed", "windows rule 'lanchat 7000'"),
        ("private-allow", 5353, "udp", "allowed", "windows rule 'python.exe'"),
        ("public-network", 7000, "tcp", "blocked", "profile Public DefaultInboundAction"),
        ("python-blocked", 7000, "tcp", "blocked", "windows rule 'python.exe'"),
        ("python-blocked", 5353, "udp", "blocked", "windows rule 'python.exe'"),
        ("firewall-off", 7000, "tcp", "allowed", "windows firewall profile Private"),
        ("block-all", 7000, "tcp", "blocked", "profile Private AllowInboundRules"),
        ("single-object", 7000, "tcp", "allowed", "windows rule 'lanchat 7000'"),
        ("single-object", 8080, "tcp", "blocked", "profile Private DefaultInboundAction"),
        ("enum-ints", 7000, "tcp", "allowed", "windows rule 'lanchat 7000'"),
        ("cmdlet-error", 7000, "tcp", "unknown", "windows firewall profile Private"),
    ],
)
def test_fixture_decisions(name: str, port: int, proto: str, outcome: str, source: str) -> None:
    decision = decide_windows_inbound(
        fixture(name), port, proto=proto, interface_alias="Wi-Fi", program=PYTHON
    )
    assert decision.verdict.outcome == outcome, decision.verdict
    assert source in decision.verdict.source
    json.dumps(decision.to_dict())


def test_block_rule_for_python_beats_the_port_allow_rule() -> None:
    decision = decide_windows_inbound(
        fixture("python-blocked"), 7000, interface_alias="Wi-Fi", program=PYTHON
    )
    assert [r.display_name for r in decision.allow_rules] == ["lanchat 7000"]
    assert len(decision.block_rules) == 1 and len(decision.program_block_rules) == 2
    assert "block rules win over allow rules" in decision.verdict.reason
    # Windows compares program paths case-insensitively (the prompt stores them lower-case).
    assert decision.block_rules[0].program == PYTHON.lower()
    assert (
        decision.verdict.rule_text is not None and "Block Inbound TCP" in decision.verdict.rule_text
    )


def test_public_network_explains_that_the_allow_rule_is_private_only() -> None:
    decision = decide_windows_inbound(
        fixture("public-network"), 7000, interface_alias="Wi-Fi", program=PYTHON
    )
    assert decision.profile == "Public"
    assert decision.network is not None and decision.network.name == "Campus-Guest"
    assert "covers this port only for the Private profile" in decision.verdict.reason
    assert "not configured: the Windows default" in decision.verdict.reason


def test_block_all_incoming_wins_over_everything() -> None:
    decision = decide_windows_inbound(fixture("block-all"), 7000, interface_alias="Wi-Fi")
    assert decision.verdict.action == "drop"
    assert "Block all incoming connections" in decision.verdict.reason


def test_single_object_and_array_forms_parse_alike() -> None:
    single = parse_windows_firewall(fixture("single-object"))
    assert len(single.connection_profiles) == 1 and len(single.rules) == 1
    assert single.rules[0].local_ports == ("7000",)
    assert single.rules[0].remote_addresses == ("LocalSubnet",)
    assert single.errors == ()


def test_enum_numbers_and_names_give_the_same_state() -> None:
    names = parse_windows_firewall(fixture("private-allow"))
    numbers = parse_windows_firewall(fixture("enum-ints"))
    assert numbers.connection_profiles == names.connection_profiles
    assert numbers.firewall_profiles == names.firewall_profiles
    assert [(r.action, r.profiles, r.enabled, r.direction) for r in numbers.rules] == [
        (r.action, r.profiles, r.enabled, r.direction) for r in names.rules
    ]


def test_unknown_program_leaves_program_rules_undecided() -> None:
    # tcp 8080 is only allowed by the prompt's python.exe rule; for an unknown program: unknown.
    decision = decide_windows_inbound(fixture("private-allow"), 8080, interface_alias="Wi-Fi")
    assert decision.verdict.outcome == "unknown"
    assert "listening program is not known" in decision.verdict.reason
    known = decide_windows_inbound(
        fixture("private-allow"), 8080, interface_alias="Wi-Fi", program=PYTHON
    )
    assert known.verdict.outcome == "allowed"
    other = decide_windows_inbound(
        fixture("private-allow"), 8080, interface_alias="Wi-Fi", program=r"C:\Other\app.exe"
    )
    assert other.verdict.outcome == "blocked"


def test_choosing_the_network() -> None:
    text = fixture("private-allow")  # Wi-Fi (Private) and a WSL adapter (Public)
    ambiguous = decide_windows_inbound(text, 7000)
    assert ambiguous.verdict.outcome == "unknown" and "several network" in ambiguous.verdict.reason
    wsl = decide_windows_inbound(text, 7000, interface_alias="vEthernet (WSL (Hyper-V firewall))")
    assert wsl.profile == "Public" and wsl.verdict.outcome == "blocked"
    forced = decide_windows_inbound(text, 7000, profile="Private")
    assert forced.verdict.outcome == "allowed"
    missing = decide_windows_inbound(text, 7000, interface_alias="Ethernet 3")
    assert missing.verdict.outcome == "unknown" and "Ethernet 3" in missing.verdict.reason
    bogus = decide_windows_inbound(text, 7000, profile="Hotel")
    assert bogus.verdict.outcome == "unknown"


def test_remote_address_limited_rules_are_uncertain() -> None:
    doc: dict[str, Any] = json.loads(fixture("single-object"))
    doc["InboundRules"]["RemoteAddress"] = ["192.168.7.0/24"]
    decision = decide_windows_inbound(json.dumps(doc), 7000, program=PYTHON)
    assert decision.verdict.outcome == "unknown"
    assert "192.168.7.0/24" in decision.verdict.reason


def test_the_command_is_one_batched_powershell_call() -> None:
    assert WINDOWS_FIREWALL_COMMAND[:4] == (
        "powershell",
        "-NoProfile",
        "-NonInteractive",
        "-Command",
    )
    assert WINDOWS_FIREWALL_COMMAND[4] == WINDOWS_FIREWALL_SCRIPT
    for part in (
        "Get-NetConnectionProfile",
        "Get-NetFirewallProfile",
        "Get-NetFirewallRule",
        "Get-NetFirewallPortFilter",
        "Get-NetFirewallApplicationFilter",
        "ConvertTo-Json -Depth 4",
    ):
        assert part in WINDOWS_FIREWALL_SCRIPT
    assert '"' not in WINDOWS_FIREWALL_SCRIPT  # survives Windows command-line quoting


@pytest.mark.parametrize("text", ["", "not json", "[1, 2]", "null", '{"InboundRules": 5}'])
def test_malformed_documents_give_unknown(text: str) -> None:
    decision = decide_windows_inbound(text, 7000, profile="Private")
    assert decision.verdict.outcome == "unknown"


JSONISH = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-3, 70000)
    | st.sampled_from(
        [
            "Any",
            "True",
            "False",
            "Allow",
            "Block",
            "Inbound",
            "Private",
            "Public",
            "TCP",
            "7000",
            "7000-7010",
            "NotConfigured",
            "Private, Public",
            PYTHON,
        ]
    ),
    lambda children: (
        st.lists(children, max_size=4)
        | st.dictionaries(
            st.sampled_from(
                [
                    "Name",
                    "Enabled",
                    "Action",
                    "Profile",
                    "Protocol",
                    "LocalPort",
                    "Program",
                    "Direction",
                    "NetworkCategory",
                    "InterfaceAlias",
                    "DefaultInboundAction",
                    "AllowInboundRules",
                    "RemoteAddress",
                ]
            ),
            children,
            max_size=5,
        )
    ),
    max_leaves=20,
)


@settings(max_examples=150, deadline=None)
@given(connections=JSONISH, profiles=JSONISH, rules=JSONISH)
def test_decision_never_raises(connections: Any, profiles: Any, rules: Any) -> None:
    text = json.dumps(
        {"ConnectionProfiles": connections, "FirewallProfiles": profiles, "InboundRules": rules}
    )
    decision = decide_windows_inbound(text, 7000, program=PYTHON)
    assert decision.verdict.outcome in ("allowed", "blocked", "unknown")
    json.dumps(decision.to_dict())
