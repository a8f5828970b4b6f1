"""Fix texts every OS's firewall checks share: run the doctor again with the rights to read the
rules, and "discovery is optional". Each OS's own fixes are in its package (linux/fixes.py,
windows/fixes.py, macos/fixes.py). Data only; nothing runs."""

from __future__ import annotations

from lanchat.doctor.result import Fix


def rerun_as_admin(command: str, platform: str) -> Fix:
    """Run the doctor again with the rights to read the firewall rules (never sudo by itself)."""
    if platform == "windows":
        return Fix(
            "Run the doctor again in a PowerShell window opened with 'Run as administrator':",
            (command,),
            needs_admin=True,
        )
    return Fix(
        "Reading the firewall rules needs root. Run the doctor again with sudo to get the "
        "complete answer:",
        (f"sudo {command}",),
        needs_admin=True,
    )


def discovery_is_optional(host: str, port: int) -> Fix:
    """Said with every mDNS fix: joining by address works without discovery."""
    return Fix(
        f"Discovery is optional: others can still connect by address with lanchat join "
        f"{host}:{port}.",
        run_on="the other PCs",
    )
