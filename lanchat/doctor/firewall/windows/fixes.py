"""Windows fix texts: PowerShell (and netsh) to allow the port, remove a program block rule, make
a network Private, or untick "Block all incoming connections". Data only; nothing runs."""

from __future__ import annotations

from lanchat.doctor.result import Fix


def windows_allow_port(port: int, proto: str, profile: str) -> Fix:
    """PowerShell and netsh: allow the port for the current profile, from the local subnet."""
    p = proto.upper()
    return Fix(
        f"Allow {p} {port} from your network (PowerShell as Administrator; or the netsh line "
        "in cmd as Administrator):",
        (
            f'New-NetFirewallRule -DisplayName "lanchat {port}" -Direction Inbound -Protocol {p} '
            f"-LocalPort {port} -Action Allow -Profile {profile} -RemoteAddress LocalSubnet",
            f'netsh advfirewall firewall add rule name="lanchat {port}" dir=in action=allow '
            f"protocol={p} localport={port} profile={profile.lower()} remoteip=localsubnet",
        ),
        True,
    )


def windows_remove_program_block(exe: str) -> Fix:
    """Remove the inbound block rules a cancelled security prompt left for the interpreter."""
    return Fix(
        f"Windows blocks {exe} because an earlier security prompt was cancelled or denied; block "
        "rules win over allow rules. Remove them (PowerShell as Administrator), or in wf.msc > "
        "Inbound Rules delete the Python rules with a red icon:",
        (
            f'Get-NetFirewallApplicationFilter -Program "{exe}" | Get-NetFirewallRule | '
            "Where-Object { $_.Direction -eq 'Inbound' -and $_.Action -eq 'Block' } | "
            "Remove-NetFirewallRule",
        ),
        True,
    )


def windows_make_private(network: str, alias: str, index: int | None) -> Fix:
    """Switch a trusted network from Public to Private."""
    command = (
        f"Set-NetConnectionProfile -InterfaceIndex {index} -NetworkCategory Private"
        if index is not None
        else f'Set-NetConnectionProfile -InterfaceAlias "{alias}" -NetworkCategory Private'
    )
    return Fix(
        f'Windows treats "{network}" as a Public network, where it blocks incoming connections. '
        f"If it is your home, school or office network, make it Private: Settings > Network & "
        f"Internet > {alias} > Network profile type > Private (or PowerShell as Administrator). "
        "Do not do this on cafe or hotel Wi-Fi.",
        (command,),
        True,
    )


def windows_block_all(profile: str) -> Fix:
    """The 'Block all incoming connections' box."""
    return Fix(
        f'Windows Firewall is set to "Block all incoming connections" for the {profile} profile: '
        f"turn it off in Windows Security > Firewall & network protection > {profile} network > "
        'uncheck "Blocks all incoming connections, including those in the list of allowed apps".',
        (f"Set-NetFirewallProfile -Profile {profile} -AllowInboundRules True",),
        True,
    )
