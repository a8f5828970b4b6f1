"""The macOS socketfilterfw / pfctl parsers and the per-application decision."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lanchat.doctor.firewall.macos.decide import decide_macos_inbound
from lanchat.doctor.firewall.macos.parse import (
    SOCKETFILTERFW_GETTERS,
    AlfState,
    parse_pf_info,
    parse_socketfilterfw,
)

FIXTURES = Path(__file__).parent / "fixtures" / "macos"
BUNDLE = "/Library/Frameworks/Python.framework/Versions/3.12/Resources/Python.app"
PYTHON = f"{BUNDLE}/Contents/MacOS/Python"  # the real binary of a python.org interpreter


def text(scenario: str, name: str) -> str | None:
    """A recorded-style output, or None when the scenario has no such file."""
    path = FIXTURES / scenario / name
    return path.read_text() if path.exists() else None


def alf(scenario: str) -> AlfState:
    """The parsed getters of one scenario."""
    return parse_socketfilterfw(
        globalstate=text(scenario, "globalstate.txt"),
        blockall=text(scenario, "blockall.txt"),
        stealthmode=text(scenario, "stealthmode.txt"),
        allowsigned=text(scenario, "allowsigned.txt"),
        listapps=text(scenario, "listapps.txt"),
        appblocked=text(scenario, "appblocked.txt"),
    )


def pf(scenario: str) -> str:
    """The pf status of one scenario, stderr and exit code included."""
    return parse_pf_info(
        text(scenario, "pfctl-info.txt") or "",
        text(scenario, "pfctl-info.txt.stderr") or "",
        int(text(scenario, "pfctl-info.txt.rc") or 0),
    )


@pytest.mark.parametrize(
    ("scenario", "outcome", "action", "source"),
    [
        ("off", "allowed", None, "(State = 0)"),
        ("on-allowed", "allowed", "accept", "app list"),
        ("on-blocked", "blocked", "drop", "app list"),
        ("block-all", "blocked", "drop", "block all"),
        ("unlisted", "unknown", None, "macos application firewall"),
        ("pf-enabled", "unknown", None, "macos pf"),
        ("pf-nonroot", "allowed", "accept", "app list"),
    ],
)
def test_scenarios(scenario: str, outcome: str, action: str | None, source: str) -> None:
    decision = decide_macos_inbound(alf(scenario), PYTHON, pf(scenario))  # type: ignore[arg-type]
    verdict = decision.verdict
    assert (verdict.outcome, verdict.action) == (outcome, action), verdict
    assert source in verdict.source
    json.dumps(decision.to_dict())


def test_getters_are_read() -> None:
    state = alf("on-blocked")
    assert state.global_state == 1 and state.block_all is False and state.stealth is True
    assert (state.allow_signed_builtin, state.allow_signed_downloaded) == (True, True)
    assert [a.path for a in state.apps] == [
        "/Applications/Spotify.app",
        "/Applications/Zoom.us.app",
        BUNDLE,
    ]
    assert [a.allowed for a in state.apps] == [True, True, False]
    assert state.app_blocked is True
    off = alf("off")
    assert (off.global_state, off.block_all, off.stealth) == (0, False, False)


def test_the_bundle_entry_covers_the_binary_inside_it() -> None:
    decision = decide_macos_inbound(alf("on-blocked"), PYTHON)
    assert decision.app is not None and decision.app.path == BUNDLE
    assert decision.verdict.rule_text == f"{BUNDLE} ( Block incoming connections )"


def test_unlisted_app_is_unknown_even_if_getappblocked_says_permitted() -> None:
    state = alf("unlisted")
    assert state.app_blocked is False  # "Incoming connection is permitted"
    decision = decide_macos_inbound(state, PYTHON)
    assert decision.verdict.outcome == "unknown"
    assert "not in its app list" in decision.verdict.reason
    assert "signed downloaded software is allowed automatically" in decision.verdict.reason


def test_block_all_state_two_and_stealth_note() -> None:
    decision = decide_macos_inbound(alf("block-all"), PYTHON)
    assert "Block all incoming connections" in decision.verdict.reason
    stealthy = decide_macos_inbound(alf("on-allowed"), PYTHON)
    assert any("stealth mode" in note for note in stealthy.notes)


def test_pf_status() -> None:
    assert pf("off") == "disabled"
    assert pf("pf-enabled") == "enabled"
    assert pf("pf-nonroot") == "cannot-read"
    assert parse_pf_info("something else") == "unknown"
    nonroot = decide_macos_inbound(alf("pf-nonroot"), PYTHON, "cannot-read")
    assert any("sudo pfctl -s info" in note for note in nonroot.notes)


def test_pf_enabled_does_not_hide_an_application_firewall_block() -> None:
    decision = decide_macos_inbound(alf("on-blocked"), PYTHON, "enabled")
    assert decision.verdict.outcome == "blocked"


@pytest.mark.parametrize(
    ("output", "state"),
    [
        ("Firewall is enabled. (State = 1)", 1),
        ("Firewall is disabled. (State = 0)", 0),
        ("Firewall is blocking all non-essential incoming connections. (State = 2)", 2),
        ("Firewall is enabled.", 1),
        ("Firewall is disabled.", 0),
    ],
)
def test_global_state_wordings(output: str, state: int) -> None:
    assert parse_socketfilterfw(globalstate=output).global_state == state


def test_permission_denied_is_unknown_not_off() -> None:
    state = parse_socketfilterfw(globalstate="socketfilterfw: Permission denied\n")
    assert state.global_state is None and state.problems
    verdict = decide_macos_inbound(state, PYTHON).verdict
    assert verdict.outcome == "unknown" and "Permission denied" in verdict.reason


def test_missing_app_list_is_unknown() -> None:
    state = parse_socketfilterfw(globalstate="Firewall is enabled. (State = 1)")
    verdict = decide_macos_inbound(state, PYTHON).verdict
    assert verdict.outcome == "unknown" and "--listapps" in verdict.reason


def test_getters_constant() -> None:
    assert "--listapps" in SOCKETFILTERFW_GETTERS and "--getglobalstate" in SOCKETFILTERFW_GETTERS


@settings(max_examples=150, deadline=None)
@given(
    parts=st.lists(
        st.text(max_size=80)
        | st.sampled_from(
            [
                "State = 1",
                "( Block incoming connections )",
                "1 :  /x.app",
                "ENABLED",
                "Permission denied",
                "( Allow incoming connections )",
                "\n",
            ]
        ),
        max_size=12,
    )
)
def test_parsers_never_raise(parts: list[str]) -> None:
    blob = " ".join(parts)
    state = parse_socketfilterfw(
        globalstate=blob,
        blockall=blob,
        stealthmode=blob,
        allowsigned=blob,
        listapps=blob,
        appblocked=blob,
    )
    decision = decide_macos_inbound(state, "/x.app/Contents/MacOS/x", parse_pf_info(blob))
    assert decision.verdict.outcome in ("allowed", "blocked", "unknown")
