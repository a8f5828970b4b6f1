"""macOS: socketfilterfw's getters and `pfctl -s info`, read into data (AlfState, PfStatus).

The getters' output differs between macOS versions ("ENABLED", "is on", "State = 1"); what is
not understood stays None, and a getter refused for lack of rights is named in `problems`.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass
from typing import Any, Literal

SOCKETFILTERFW = "/usr/libexec/ApplicationFirewall/socketfilterfw"
# The getters, one call each (the caller runs them; some need sudo on some macOS versions).
SOCKETFILTERFW_GETTERS: tuple[str, ...] = (
    "--getglobalstate",
    "--getblockall",
    "--getstealthmode",
    "--getallowsigned",
    "--listapps",
)
PF_INFO_COMMAND: tuple[str, ...] = ("pfctl", "-s", "info")

PfStatus = Literal["enabled", "disabled", "cannot-read", "unknown"]
_STATE = re.compile(r"State\s*=\s*(\d)")
_APP_LINE = re.compile(r"^\s*\d+\s*:\s*(.+?)\s*$")
_APP_RULE = re.compile(r"\(\s*(Allow|Block) incoming connections\s*\)", re.IGNORECASE)
_DENIED = re.compile(r"permission denied|operation not permitted|must be root|not permitted", re.I)


@dataclass(frozen=True)
class AppEntry:
    """An application in the firewall's list and whether it may accept incoming connections."""

    path: str
    allowed: bool

    def to_dict(self) -> dict[str, Any]:
        """Plain data for JSON output."""
        return asdict(self)


@dataclass(frozen=True)
class AlfState:
    """What socketfilterfw said; None where a getter was not run or not understood."""

    global_state: int | None = None  # 0 off, 1 on, 2 block all
    block_all: bool | None = None
    stealth: bool | None = None
    allow_signed_builtin: bool | None = None
    allow_signed_downloaded: bool | None = None
    apps: tuple[AppEntry, ...] = ()
    apps_listed: bool = False  # whether --listapps output was read
    app_blocked: bool | None = None  # --getappblocked for the executable
    problems: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        """Plain data for JSON output."""
        data = asdict(self)
        data["apps"] = [a.to_dict() for a in self.apps]
        data["problems"] = list(self.problems)
        return data


def _on_off(text: str | None) -> bool | None:
    """'ENABLED', 'is on', 'enabled' -> True; 'DISABLED', 'off' -> False; else None."""
    if not text:
        return None
    low = text.lower()
    if re.search(r"\bdisabled\b|\bis off\b|set to disabled|\boff\b", low):
        return False
    if re.search(r"\benabled\b|\bis on\b|set to enabled|\bon\b", low):
        return True
    return None


def parse_socketfilterfw(
    *,
    globalstate: str | None = None,
    blockall: str | None = None,
    stealthmode: str | None = None,
    allowsigned: str | None = None,
    listapps: str | None = None,
    appblocked: str | None = None,
) -> AlfState:
    """Read the getters' outputs (stdout and stderr together); never raises."""
    problems: list[str] = []
    for name, text in (
        ("--getglobalstate", globalstate),
        ("--getblockall", blockall),
        ("--getstealthmode", stealthmode),
        ("--getallowsigned", allowsigned),
        ("--listapps", listapps),
        ("--getappblocked", appblocked),
    ):
        if text and _DENIED.search(text):
            problems.append(f"socketfilterfw {name}: {text.strip().splitlines()[0]}")
    state = _global_state(globalstate)
    if globalstate is not None and state is None and not problems:
        problems.append(
            f"--getglobalstate printed something unexpected: {globalstate.strip()[:80]!r}"
        )
    builtin, downloaded = _allow_signed(allowsigned)
    apps = _apps(listapps) if listapps and not _DENIED.search(listapps) else ()
    return AlfState(
        state,
        _on_off(blockall) if blockall and not _DENIED.search(blockall) else None,
        _on_off(stealthmode) if stealthmode and not _DENIED.search(stealthmode) else None,
        builtin,
        downloaded,
        apps,
        bool(listapps) and not _DENIED.search(listapps or ""),
        _app_blocked(appblocked),
        tuple(problems),
    )


def _global_state(text: str | None) -> int | None:
    if not text or _DENIED.search(text):
        return None
    found = _STATE.search(text)
    if found:
        return int(found.group(1))
    low = text.lower()
    if "blocking all" in low:
        return 2
    on = _on_off(text)
    return None if on is None else int(on)


def _allow_signed(text: str | None) -> tuple[bool | None, bool | None]:
    """Two lines on recent macOS (built-in / downloaded); one line on older ones."""
    if not text or _DENIED.search(text):
        return None, None
    builtin: bool | None = None
    downloaded: bool | None = None
    for line in text.splitlines():
        low = line.lower()
        if "downloaded" in low:
            downloaded = _on_off(line)
        elif "signed" in low:
            builtin = _on_off(line)
            if "built-in" not in low:  # old single line covers both kinds
                downloaded = builtin
    return builtin, downloaded


def _apps(text: str) -> tuple[AppEntry, ...]:
    """'N :  /path' lines, each followed by '( Allow|Block incoming connections )'."""
    found: list[AppEntry] = []
    pending: str | None = None
    for line in text.splitlines():
        rule = _APP_RULE.search(line)
        if rule and pending is not None:
            found.append(AppEntry(pending, rule.group(1).lower() == "allow"))
            pending = None
            continue
        app = _APP_LINE.match(line)
        if app and not line.lstrip().startswith("ALF"):
            pending = app.group(1)
    return tuple(found)


def _app_blocked(text: str | None) -> bool | None:
    if not text or _DENIED.search(text):
        return None
    low = text.lower()
    if "permitted" in low or "allowed" in low or "accepted" in low:
        return False
    if "blocked" in low:
        return True
    return None


def parse_pf_info(stdout: str, stderr: str = "", returncode: int = 0) -> PfStatus:
    """`pfctl -s info`: 'Status: Enabled ...' / 'Status: Disabled ...'; needs root."""
    text = f"{stdout}\n{stderr}"
    if _DENIED.search(text) or (returncode != 0 and "/dev/pf" in text):
        return "cannot-read"
    found = re.search(r"^\s*Status:\s*(Enabled|Disabled)", stdout, re.MULTILINE | re.IGNORECASE)
    if not found:
        return "unknown"
    return "enabled" if found.group(1).lower() == "enabled" else "disabled"
