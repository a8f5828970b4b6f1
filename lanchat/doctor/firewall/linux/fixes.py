"""Linux fix texts and commands: ufw, firewalld, or nft/iptables rules inserted into the very chain
that blocks, with the real port, subnet, interface and zone filled in (linux_fixes picks them for
the front-end in charge). Every function returns data (a Fix); nothing here runs anything."""

from __future__ import annotations

import re
import shlex

from lanchat.doctor.context import MDNS_PORT, ServerContext
from lanchat.doctor.firewall.linux.collect import LinuxFindings, active_services, blocked_families
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


def linux_fixes(findings: LinuxFindings, ctx: ServerContext, proto: str, port: int) -> list[Fix]:
    """The commands that let the packet in, for the front-end in charge."""
    report = findings.tcp if proto == "tcp" else findings.mdns
    lan = ctx.lan
    assert lan is not None  # noqa: S101 - findings exist only with a LAN
    blocked = blocked_families(report)
    frontends = (*report.frontends, *active_services(findings.services))
    sources = {"ip": lan.network, "ip6": lan.network6}
    mdns = (proto, port) == ("udp", MDNS_PORT)
    if "ufw" in frontends:
        wanted = [sources[f.packet.family] for f in blocked] or [lan.network]
        return [ufw_allow(port, proto, [s for s in wanted if s], mdns=mdns)]
    if "firewalld" in frontends:
        # Unknown zone: let the shell ask firewalld for the interface's zone.
        zone = findings.zone or f"$(firewall-cmd --get-zone-of-interface={lan.interface})"
        return [firewalld_mdns(zone) if mdns else firewalld_open(port, proto, zone)]
    commands: list[str] = []
    nft_only = True
    for family in blocked:
        for source in family.sources:
            for chain in source.evaluation.chains:
                if chain.verdict.outcome != "blocked":
                    continue
                packet_family = family.packet.family
                src = sources[packet_family]
                if chain.chain.startswith("nft "):
                    command = nft_accept(
                        chain.chain, packet_family, lan.interface, src, port, proto
                    )
                else:
                    nft_only = False
                    command = iptables_accept(chain.chain, lan.interface, src, port, proto)
                if command and command not in commands:
                    commands.append(command)
    if not commands:
        return [chains_fix(port, proto)]
    return [raw_rules_fix(commands, port, proto, nft=nft_only)]
