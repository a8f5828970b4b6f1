"""The firewall checks in their fixed order, for whichever OS this is; the others are `skip`:
firewall.detect, firewall.tcp, firewall.app-block, windows.profile, firewall.mdns."""

from __future__ import annotations

import lanchat.doctor.firewall.linux.checks as linux_checks
import lanchat.doctor.firewall.linux.collect as linux
import lanchat.doctor.firewall.macos.checks as macos
import lanchat.doctor.firewall.windows.checks as windows
from lanchat.doctor.context import ServerContext
from lanchat.doctor.probe.interface import Probe
from lanchat.doctor.result import CheckResult, skipped

TITLES = {
    "firewall.app-block": "No firewall rule blocks the Python program itself",
    "windows.profile": "The LAN connection is not in the Public profile",
    "firewall.mdns": "The firewall lets discovery (mDNS, UDP 5353) in",
}


def firewall_checks(probe: Probe, ctx: ServerContext) -> list[CheckResult]:
    """Read the firewall once (commands with timeouts) and answer every firewall check."""
    if probe.platform == "linux":
        found = linux.collect_linux(probe, ctx)
        return [
            linux_checks.check_firewall_detect(found, ctx),
            linux_checks.check_firewall_tcp(found, ctx),
            skipped(
                "firewall.app-block",
                TITLES["firewall.app-block"],
                "Linux firewalls filter by port and address, not by program.",
            ),
            skipped("windows.profile", TITLES["windows.profile"], "Only Windows has profiles."),
            linux_checks.check_firewall_mdns(found, ctx),
        ]
    if probe.platform == "windows":
        win = windows.collect_windows(probe, ctx)
        return [
            windows.check_windows_detect(win),
            windows.check_windows_tcp(win, ctx),
            windows.check_windows_app_block(win, ctx),
            windows.check_windows_profile(win, ctx),
            windows.check_windows_mdns(win, ctx),
        ]
    if probe.platform == "darwin":
        mac = macos.collect_macos(probe, ctx)
        return [
            macos.check_macos_detect(mac, ctx),
            macos.check_macos_tcp(mac, ctx),
            macos.check_macos_app_block(mac, ctx),
            skipped("windows.profile", TITLES["windows.profile"], "Only Windows has profiles."),
            skipped(
                "firewall.mdns",
                TITLES["firewall.mdns"],
                "On macOS the system's mDNSResponder receives discovery packets for every app; "
                "the Application Firewall has no per-port rule for it.",
            ),
        ]
    why = f"The doctor does not know the firewalls of {probe.platform}."
    return [
        skipped("firewall.detect", "Which firewall is in charge", why),
        skipped("firewall.tcp", "The firewall lets the port in from the LAN", why),
        *(skipped(check_id, title, why) for check_id, title in TITLES.items()),
    ]
