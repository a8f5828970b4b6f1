"""macOS: the Application Firewall's decision for one executable, with pf beside it.

The Application Firewall works per application, not per port. State 0 is off; state 2 (or
"block all") lets nothing but essential services in; in state 1 an application listed with
"Block incoming connections" is blocked, one listed with "Allow incoming connections" gets
in, and an unlisted one depends on the prompt (or on "automatically allow signed software"),
which the doctor cannot predict. `--getappblocked` is reported to say "permitted" even for
paths that are not listed, so it never overrides the list. pf is a second, independent layer
whose rules need root to read; when it is enabled the answer cannot be "allowed".
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from lanchat.doctor.firewall.macos.parse import AlfState, AppEntry, PfStatus
from lanchat.doctor.firewall.verdict import Verdict, unknown


@dataclass(frozen=True)
class MacDecision:
    """The verdict for an executable, the list entry that decided, and notes."""

    verdict: Verdict
    app: AppEntry | None = None
    pf: PfStatus = "unknown"
    notes: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        """Plain data for JSON output."""
        return {
            "verdict": self.verdict.to_dict(),
            "app": self.app.to_dict() if self.app else None,
            "pf": self.pf,
            "notes": list(self.notes),
        }


def decide_macos_inbound(alf: AlfState, executable: str, pf: PfStatus = "unknown") -> MacDecision:
    """Whether incoming connections to ``executable`` get through; never raises.

    ``executable`` is the real binary of the listening process (psutil.Process(pid).exe()).
    """
    entry = _entry_for(alf.apps, executable)
    notes = list(alf.problems)
    if alf.stealth:
        notes.append(
            "stealth mode is on: closed ports and pings get no answer, so peers see timeouts "
            "instead of 'connection refused'"
        )
    if pf == "enabled":
        notes.append("pf is enabled; its rules are not read (sudo pfctl -s rules shows them)")
    elif pf == "cannot-read":
        notes.append("pf's status needs root to read (sudo pfctl -s info)")
    verdict = _alf_verdict(alf, executable, entry)
    if pf == "enabled" and verdict.outcome == "allowed":
        verdict = unknown(
            "macos pf",
            f"the Application Firewall lets it in ({verdict.reason}), but pf is enabled and "
            "its rules were not evaluated",
            verdict.rule_text,
        )
    return MacDecision(verdict, entry, pf, tuple(notes))


def _alf_verdict(alf: AlfState, executable: str, entry: AppEntry | None) -> Verdict:
    where = "macos application firewall"
    state = alf.global_state
    if state is None:
        why = "; ".join(alf.problems) or "its global state was not read"
        return unknown(where, f"cannot tell: {why}")
    if state == 0:
        return Verdict("allowed", None, f"{where} (State = 0)", "the Application Firewall is off")
    if state == 2 or alf.block_all:
        return Verdict(
            "blocked",
            "drop",
            f"{where} block all",
            "the firewall blocks all incoming connections except essential services "
            "(System Settings > Network > Firewall > Options: 'Block all incoming connections')",
        )
    if entry is not None:
        line = f"{entry.path} ( {'Allow' if entry.allowed else 'Block'} incoming connections )"
        if entry.allowed:
            return Verdict(
                "allowed",
                "accept",
                f"{where} app list",
                f"{entry.path} may accept incoming connections",
                line,
            )
        return Verdict(
            "blocked",
            "drop",
            f"{where} app list",
            f"{entry.path} is set to block incoming connections",
            line,
        )
    if alf.app_blocked:
        return Verdict(
            "blocked",
            "drop",
            f"{where} --getappblocked",
            f"socketfilterfw says {executable} is blocked",
        )
    if not alf.apps_listed:
        return unknown(where, "the firewall is on and the app list was not read (--listapps)")
    signed = ""
    if alf.allow_signed_downloaded:
        signed = (
            "; signed downloaded software is allowed automatically, so it gets in if this "
            "interpreter is signed"
        )
    return unknown(
        where,
        f"the firewall is on and {executable} is not in its app list: macOS asks the first time "
        f"it listens, and the answer decides{signed}",
    )


def _entry_for(apps: tuple[AppEntry, ...], executable: str) -> AppEntry | None:
    """The list entry for the executable: the same path, or the .app bundle that holds it."""
    target = executable.rstrip("/")
    for app in apps:
        path = app.path.rstrip("/")
        if target == path or (path.endswith(".app") and target.startswith(path + "/")):
            return app
    return None
