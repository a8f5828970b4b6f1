"""Fix texts and commands, per OS and per firewall, with the real port, subnet, interface and
zone filled in. Every function returns data (a Fix); nothing here runs anything."""

from __future__ import annotations

import re
import shlex

from lanchat.doctor.result import Fix

NFT_CHAIN = re.compile(r"^nft table (\S+) (\S+) chain (\S+)$")
IPT_CHAIN = re.compile(r"^(ip6?tables(?:-legacy)?) (\w+)/(\S+)$")
MDNS_GROUPS = {"ip": "224.0.0.251", "ip6": "ff02::fb"}
PERSIST_NFT = (
    "Rules added with nft are lost at reboot: add the same rule to /etc/nftables.conf (or your "
    "distribution's firewall configuration) to keep it."
)
PERSIST_IPTABLES = (
    "Rules added with iptables are lost at reboot: save them with your distribution's tool "
    "(e.g. sudo netfilter-persistent save, or iptables-save > /etc/iptables/rules.v4)."
)


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


def ufw_allow(port: int, proto: str, sources: list[str], *, mdns: bool = False) -> Fix:
    """ufw: allow the port from the LAN subnet(s) only."""
    commands = tuple(
        f"sudo ufw allow from {source} to any port {port} proto {proto} comment 'lanchat'"
        for source in sources
    )
    what = "discovery (mDNS, UDP 5353)" if mdns else f"TCP {port}"
    return Fix(
        f"Let {what} in from your network with ufw (it stays after a reboot):", commands, True
    )


def firewalld_open(port: int, proto: str, zone: str) -> Fix:
    """firewalld: open the port in the interface's zone, now and after a reboot."""
    return Fix(
        f"Open {proto.upper()} {port} in the firewalld zone '{zone}' (the first command works "
        "at once, the second keeps it after a reboot):",
        (
            f"sudo firewall-cmd --zone={zone} --add-port={port}/{proto}",
            f"sudo firewall-cmd --permanent --zone={zone} --add-port={port}/{proto}",
        ),
        True,
    )


def firewalld_mdns(zone: str) -> Fix:
    """firewalld: the mdns service in the interface's zone."""
    return Fix(
        f"Let discovery (mDNS) in through the firewalld zone '{zone}':",
        (
            f"sudo firewall-cmd --zone={zone} --add-service=mdns",
            f"sudo firewall-cmd --permanent --zone={zone} --add-service=mdns",
        ),
        True,
    )


def nft_accept(
    where: str, family: str, iface: str, source: str | None, port: int, proto: str
) -> str | None:
    """`nft insert rule` putting an accept at the top of the chain that blocks; None if unknown."""
    found = NFT_CHAIN.match(where)
    if not found:
        return None
    table_family, table, chain = found.groups()
    parts = ["sudo", "nft", "insert", "rule", table_family, table, chain]
    parts += ["iifname", iface]
    if source:
        parts += ["ip" if family == "ip" else "ip6", "saddr", source]
    if proto == "udp" and port == 5353:
        parts += ["ip" if family == "ip" else "ip6", "daddr", MDNS_GROUPS[family]]
    parts += [proto, "dport", str(port), "accept"]
    return shlex.join(parts)


def iptables_accept(
    where: str, iface: str, source: str | None, port: int, proto: str
) -> str | None:
    """`iptables -I` putting an ACCEPT at the top of the chain that blocks; None if unknown."""
    found = IPT_CHAIN.match(where)
    if not found:
        return None
    tool, table, chain = found.groups()
    parts = ["sudo", tool]
    if table != "filter":
        parts += ["-t", table]
    parts += ["-I", chain, "-i", iface, "-p", proto]
    if source:
        parts += ["-s", source]
    if proto == "udp" and port == 5353:
        parts += ["-d", MDNS_GROUPS["ip6" if tool.startswith("ip6") else "ip"]]
    parts += ["--dport", str(port), "-j", "ACCEPT"]
    return shlex.join(parts)


def raw_rules_fix(commands: list[str], port: int, proto: str, *, nft: bool) -> Fix:
    """The nft/iptables commands, with the note that they do not survive a reboot."""
    what = "discovery (mDNS, UDP 5353)" if (proto, port) == ("udp", 5353) else f"TCP {port}"
    return Fix(
        f"Let {what} in from your network ({PERSIST_NFT if nft else PERSIST_IPTABLES})",
        tuple(commands),
        True,
    )


def chains_fix(port: int, proto: str) -> Fix:
    """When the blocking chain is not one the doctor can write a rule for."""
    return Fix(
        f"Add a rule accepting {proto} dport {port} from your network to every input-hook chain "
        "that drops it; list them with:",
        ("sudo nft list ruleset",),
        True,
    )


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


def macos_allow_app(exe: str) -> Fix:
    """Add the interpreter to the Application Firewall and unblock it."""
    tool = "/usr/libexec/ApplicationFirewall/socketfilterfw"
    return Fix(
        "Allow the Python program that runs lanchat in the macOS firewall (or System Settings > "
        "Network > Firewall > Options):",
        (f'sudo {tool} --add "{exe}"', f'sudo {tool} --unblockapp "{exe}"'),
        True,
    )


def macos_block_all() -> Fix:
    """The macOS 'Block all incoming connections' option."""
    return Fix(
        "The macOS firewall blocks all incoming connections: System Settings > Network > "
        'Firewall > Options... > turn off "Block all incoming connections".',
        ("sudo /usr/libexec/ApplicationFirewall/socketfilterfw --setblockall off",),
        True,
    )


def discovery_is_optional(host: str, port: int) -> Fix:
    """Said with every mDNS fix: joining by address works without discovery."""
    return Fix(
        f"Discovery is optional: others can still connect by address with lanchat join "
        f"{host}:{port}.",
        run_on="the other PCs",
    )
