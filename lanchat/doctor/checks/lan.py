"""Which address other PCs should use (lan.address): the default route's, other candidates tagged
(virtual, VPN), link-local only is a failure. Pure: the addresses come from a Probe."""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence

from lanchat.doctor.context import LanFacts
from lanchat.doctor.result import CheckResult, Fix
from lanchat.netinfo import LocalAddress

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
LINK_LOCAL_V6 = ipaddress.ip_network("fe80::/10")


def network_of(address: LocalAddress) -> IPNetwork | None:
    """The network an address is in, from its netmask ('255.255.255.0' or 'ffff:ffff::')."""
    if not address.netmask:
        return None
    try:
        mask = ipaddress.ip_address(address.netmask)
        prefix = bin(int(mask)).count("1")
        return ipaddress.ip_interface(f"{address.address}/{prefix}").network
    except ValueError:
        try:
            return ipaddress.ip_interface(f"{address.address}/{address.netmask}").network
        except ValueError:
            return None


def _another_host(network: IPNetwork, ours: str) -> str:
    """An address in the network that is not ours (the first host, or the second)."""
    own = ipaddress.ip_address(ours)
    first = network.network_address + 1
    if first == own or first not in network:
        first = network.network_address + 2
    return str(first if first in network else own)


def choose_lan(addresses: Sequence[LocalAddress]) -> LanFacts | None:
    """The address other PCs should use: the default route's if usable, else the first usable."""
    usable4 = [a for a in addresses if a.usable and a.family == 4]
    usable = usable4 or [a for a in addresses if a.usable]
    if not usable:
        return None
    chosen = next((a for a in usable if a.primary), usable[0])
    net = network_of(chosen) or ipaddress.ip_network(
        f"{chosen.address}/{32 if chosen.family == 4 else 128}"
    )
    six = [a for a in addresses if a.family == 6 and a.interface == chosen.interface]
    six.sort(key=lambda a: (ipaddress.ip_address(a.address) in LINK_LOCAL_V6, a.address))
    address6 = six[0].address if six else None
    net6 = network_of(six[0]) if six else None
    if address6 is not None and net6 is None:
        net6 = ipaddress.ip_network(f"{address6}/64", strict=False)
    peer6 = None
    if address6 is not None and net6 is not None:
        peer6 = _another_host(net6, address6)
    return LanFacts(
        chosen.address,
        chosen.interface,
        str(net),
        chosen.family,
        address6,
        str(net6) if net6 is not None else None,
        _another_host(net, chosen.address),
        peer6,
        chosen.primary,
    )


def _describe(a: LocalAddress) -> str:
    tags = f" ({', '.join(a.tags)})" if a.tags else ""
    primary = ", default route" if a.primary else ""
    return f"{a.address} on {a.interface}{primary}{tags}"


def check_lan_address(addresses: Sequence[LocalAddress], port: int) -> CheckResult:
    """lan.address: the address others should use; link-local only or none is a failure."""
    title = "The address other PCs should use"
    evidence = tuple(_describe(a) for a in addresses if "loopback" not in a.tags)
    lan = choose_lan(addresses)
    if lan is None:
        apipa = [a for a in addresses if a.family == 4 and "link-local" in a.tags]
        if apipa:
            return CheckResult(
                "lan.address",
                title,
                "fail",
                f"This PC only has the self-assigned address {apipa[0].address} (169.254.x.x): "
                "it got no address from the router, so other PCs cannot reach it.",
                evidence,
                (
                    Fix(
                        "Reconnect to the Wi-Fi or plug the cable in again, or restart the "
                        "router; then run lanchat doctor again."
                    ),
                ),
            )
        virtual = [a for a in addresses if a.tags and "loopback" not in a.tags]
        why = (
            "only virtual or VPN addresses (" + ", ".join(_describe(a) for a in virtual[:3]) + ")"
            if virtual
            else "no network address at all"
        )
        return CheckResult(
            "lan.address",
            title,
            "fail",
            f"This PC has {why}: other PCs on a LAN cannot reach it.",
            evidence,
            (Fix("Connect this PC to the network (Wi-Fi or cable) the others are on."),),
        )
    join = f"lanchat join {lan.join_host()}:{port}"
    facts = {**lan.to_dict(), "join": join}
    primary = next((a for a in addresses if a.primary and a.family == lan.family), None)
    others = [
        a
        for a in addresses
        if a.usable and a.family == 4 and a.address != lan.address and lan.family == 4
    ]
    if primary is not None and not primary.usable:
        return CheckResult(
            "lan.address",
            title,
            "warn",
            f"This PC's default route goes through {primary.interface} "
            f"({', '.join(primary.tags)}); on the LAN others should use {lan.address} "
            f"({lan.interface}, {lan.network}): {join}",
            evidence,
            (
                Fix(
                    "A VPN that takes the default route can also block LAN traffic "
                    "(a 'kill switch' or 'block LAN' setting): allow LAN access in the VPN app "
                    "if other PCs cannot connect."
                ),
            ),
            facts,
        )
    if not lan.default_route and others:
        listed = ", ".join(f"{a.address} ({a.interface})" for a in others)
        return CheckResult(
            "lan.address",
            title,
            "warn",
            f"This PC is on several networks and none is the default route: {lan.address} "
            f"({lan.interface}) or {listed}. Tell others the address of the network they "
            "share with you.",
            evidence,
            facts=facts,
        )
    kind = "" if ipaddress.ip_address(lan.address).is_private else " (a public address)"
    return CheckResult(
        "lan.address",
        title,
        "pass",
        f"Others on this network use {lan.address}{kind} ({lan.interface}, {lan.network}): {join}",
        evidence,
        facts=facts,
    )
