"""Shared pieces of rule matching: interface wildcards, address prefixes and ranges, ports."""

from __future__ import annotations

import ipaddress

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

# Names nft and iptables accept for ports; nft -j prints numbers, but hand-written rules and
# iptables-save may carry names. A name not listed here makes the rule "unknown", not a guess.
SERVICE_PORTS: dict[str, int] = {
    "ftp": 21,
    "ssh": 22,
    "telnet": 23,
    "smtp": 25,
    "domain": 53,
    "bootps": 67,
    "bootpc": 68,
    "tftp": 69,
    "http": 80,
    "www": 80,
    "ntp": 123,
    "netbios-ns": 137,
    "netbios-dgm": 138,
    "netbios-ssn": 139,
    "snmp": 161,
    "https": 443,
    "microsoft-ds": 445,
    "dhcpv6-client": 546,
    "dhcpv6-server": 547,
    "ipp": 631,
    "mdns": 5353,
    "llmnr": 5355,
    "ssdp": 1900,
}

PROTO_NUMBERS: dict[str, int] = {
    "icmp": 1,
    "igmp": 2,
    "tcp": 6,
    "udp": 17,
    "gre": 47,
    "esp": 50,
    "ah": 51,
    "icmpv6": 58,
    "ipv6-icmp": 58,
    "udplite": 136,
    "sctp": 132,
    "dccp": 33,
    "all": -1,  # iptables: -p all matches every protocol
}


def port_number(value: object) -> int | None:
    """A port given as a number or a known service name; None if it is neither."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value if 0 <= value <= 65535 else None
    if isinstance(value, str):
        text = value.strip()
        if text.isdigit():
            number = int(text)
            return number if number <= 65535 else None
        return SERVICE_PORTS.get(text.lower())
    return None


def proto_number(value: object) -> int | None:
    """A layer-4 protocol given as a number or a name; None if unknown."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str):
        text = value.strip().lower()
        if text.isdigit():
            return int(text)
        return PROTO_NUMBERS.get(text)
    return None


def iface_matches(pattern: str, name: str, wildcard: str) -> bool:
    """Whether interface ``name`` matches ``pattern``; a trailing ``wildcard`` matches any rest.

    nft uses "eth*" (a literal star is written "\\*"), iptables uses "eth+".
    """
    if pattern.endswith(wildcard) and not pattern.endswith("\\" + wildcard):
        return name.startswith(pattern[: -len(wildcard)])
    return name == pattern.replace("\\" + wildcard, wildcard)


def parse_address_spec(spec: str) -> ipaddress.IPv4Network | ipaddress.IPv6Network | None:
    """An address or prefix ("10.0.0.0/8", "fe80::1", "10.0.0.0/255.0.0.0"); None if malformed."""
    try:
        return ipaddress.ip_network(spec.strip(), strict=False)
    except ValueError:
        return None


def address_in_spec(address: IPAddress, spec: str) -> bool | None:
    """Whether ``address`` is inside ``spec``; None when ``spec`` is not an address or prefix."""
    network = parse_address_spec(spec)
    if network is None:
        return None
    if network.version != address.version:
        return False
    return address in network


def address_in_range(address: IPAddress, low: str, high: str) -> bool | None:
    """Whether ``low <= address <= high``; None if the bounds are not addresses of one family."""
    try:
        first = ipaddress.ip_address(low.strip())
        last = ipaddress.ip_address(high.strip())
    except ValueError:
        return None
    if first.version != last.version:
        return None
    if first.version != address.version:
        return False
    return int(first) <= int(address) <= int(last)
