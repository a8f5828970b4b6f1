"""Matching one parsed iptables condition (-p, -s/-d, -i, --dport, -m multiport/conntrack/...)
against one packet: True, False, or the reason it cannot be decided (a rate limit, an ipset, a
mark set elsewhere...), which makes the chain walk follow the rule both ways."""

from __future__ import annotations

from lanchat.doctor.firewall.linux.iptables.parse import Condition
from lanchat.doctor.firewall.linux.netmatch import (
    address_in_range,
    address_in_spec,
    iface_matches,
    port_number,
    proto_number,
)
from lanchat.doctor.firewall.verdict import Packet

# Modules whose result depends on state or data the evaluator does not have.
STATEFUL = {
    "limit": "a rate limit (depends on the traffic seen so far)",
    "hashlimit": "a rate limit (depends on the traffic seen so far)",
    "recent": "a recent-list check (depends on earlier packets)",
    "connlimit": "a connection-count limit",
    "set": "an ipset lookup (the set's contents are not in iptables-save)",
    "mark": "a packet mark set elsewhere",
    "connmark": "a connection mark set elsewhere",
    "time": "a time-of-day match",
    "statistic": "a random or nth-packet match",
    "quota": "a byte quota",
    "string": "a payload string match",
    "u32": "a raw u32 payload match",
    "bpf": "a BPF program",
    "owner": "a socket owner match",
    "socket": "a socket lookup",
    "mac": "a MAC address match",
    "physdev": "a bridge port match",
    "policy": "an IPsec policy match",
    "rpfilter": "a reverse-path (routing) check",
    "geoip": "a GeoIP lookup",
    "length": "a packet length match",
    "ttl": "a TTL match",
    "hl": "a hop-limit match",
    "dscp": "a DSCP match",
    "tos": "a TOS match",
    "ecn": "an ECN match",
    "helper": "a conntrack helper match",
    "connbytes": "a per-connection byte count",
    "cgroup": "a cgroup match",
    "devgroup": "a device group match",
    "realm": "a routing realm match",
    "nfacct": "an accounting object",
    "ipv6header": "an IPv6 extension header match",
    "cluster": "a cluster hash match",
}
# IPv6 extension headers a plain TCP/UDP packet does not carry.
EXTENSION_HEADERS = frozenset({"rt", "frag", "hbh", "dst", "mh"})


def condition_matches(cond: Condition, packet: Packet) -> bool | str:
    """One condition for the packet: True, False, or why it cannot be decided."""
    result = _positive(cond, packet)
    if isinstance(result, str) or not cond.negated:
        return result
    return not result


def _positive(cond: Condition, pkt: Packet) -> bool | str:
    kind, args = cond.kind, cond.args
    if kind.startswith("module "):
        name = kind.split(" ", 1)[1]
        if name in EXTENSION_HEADERS:
            return False  # the packet model carries no IPv6 extension headers
        if name in STATEFUL:
            return f"-m {name}: {STATEFUL[name]}"
        return True  # the module's options carry the tests
    if kind == "in":
        return iface_matches(args[0], pkt.iif, "+")
    if kind == "out":
        return "-o (an output interface) on an input path"
    if kind in ("src", "dst"):
        address = pkt.source if kind == "src" else pkt.destination
        results = [address_in_spec(address, spec) for spec in args[0].split(",")]
        if any(r is None for r in results):
            return f"the address {args[0]!r} is not understood"
        return any(results)
    if kind == "proto":
        wanted = proto_number(args[0])
        if wanted is None:
            return f"the protocol {args[0]!r} is not understood"
        return wanted in (-1, 0) or wanted == (6 if pkt.proto == "tcp" else 17)
    if kind == "fragment":
        return False  # a connection's first packet is not a fragment
    owner, _, option = kind.partition(" ")
    if owner in ("tcp", "udp", "udplite", "sctp", "dccp"):
        return _l4_option(owner, option, args, pkt)
    if owner in ("icmp", "icmp6", "ipv6-icmp", "icmpv6"):
        return False  # only ICMP packets match, and ours is tcp or udp
    if owner == "multiport":
        return _multiport(option, args, pkt)
    if owner in ("conntrack", "state"):
        return _conntrack(option, args, pkt)
    if owner == "comment":
        return True
    if owner == "addrtype":
        if option == "--dst-type":
            types = {t.upper() for t in ",".join(args).split(",") if t}
            return pkt.dst_type in types
        return f"-m addrtype {option} (the address type of the sender needs the routing table)"
    if owner == "pkttype" and option == "--pkt-type" and args:
        have = {"LOCAL": "unicast", "MULTICAST": "multicast"}.get(pkt.dst_type, "broadcast")
        return args[0].lower() == have
    if owner == "iprange" and option in ("--src-range", "--dst-range") and args:
        low, _, high = args[0].partition("-")
        address = pkt.source if option == "--src-range" else pkt.destination
        inside = address_in_range(address, low, high)
        return f"the range {args[0]!r} is not understood" if inside is None else inside
    if owner in STATEFUL:
        return f"-m {owner}: {STATEFUL[owner]}"
    return f"{owner} {option} is not understood".strip()


def _ports(spec: str) -> list[tuple[int, int]] | None:
    """'7000', '8000:8099', '5353,7000:7001' -> [(low, high), ...]; None if malformed."""
    found: list[tuple[int, int]] = []
    for part in spec.split(","):
        low_text, sep, high_text = part.partition(":")
        low = port_number(low_text) if low_text else 0
        high = port_number(high_text) if sep and high_text else (65535 if sep else low)
        if low is None or high is None:
            return None
        found.append((low, high))
    return found


def _in_ports(port: int, spec: str) -> bool | str:
    ranges = _ports(spec)
    if ranges is None:
        return f"the port list {spec!r} is not understood"
    return any(low <= port <= high for low, high in ranges)


def _l4_option(owner: str, option: str, args: tuple[str, ...], pkt: Packet) -> bool | str:
    if owner != pkt.proto:
        return False  # the module only matches its own protocol
    if option in ("--dport", "--destination-port") and args:
        return _in_ports(pkt.dport, args[0])
    if option in ("--sport", "--source-port"):
        return f"-m {owner} {option} (the client's source port is not known)"
    if owner == "tcp" and option == "--syn":
        return True  # a new TCP connection starts with a bare SYN
    if owner == "tcp" and option == "--tcp-flags" and len(args) == 2:
        mask = {f.upper() for f in args[0].split(",")}
        comp = {f.upper() for f in args[1].split(",")}
        if "ALL" in mask:
            mask = {"SYN", "ACK", "FIN", "RST", "URG", "PSH", "ECE", "CWR"}
        if "NONE" in comp:
            comp = set()
        return ({"SYN"} & mask) == comp
    return f"-m {owner} {option} is not evaluated"


def _multiport(option: str, args: tuple[str, ...], pkt: Packet) -> bool | str:
    if not args:
        return f"-m multiport {option} without ports"
    if option in ("--dports", "--destination-ports"):
        return _in_ports(pkt.dport, args[0])
    if option == "--ports":
        inside = _in_ports(pkt.dport, args[0])
        return True if inside is True else "-m multiport --ports (also tests the source port)"
    return f"-m multiport {option} (the client's source port is not known)"


def _conntrack(option: str, args: tuple[str, ...], pkt: Packet) -> bool | str:
    if option in ("--ctstate", "--state") and args:
        return "NEW" in {s.upper() for s in args[0].split(",")}
    if option == "--ctdir" and args:
        return args[0].upper() == "ORIGINAL"
    if option == "--ctproto" and args:
        wanted = proto_number(args[0])
        return wanted == (6 if pkt.proto == "tcp" else 17)
    if option in ("--ctorigsrc", "--ctorigdst") and args:
        address = pkt.source if option == "--ctorigsrc" else pkt.destination
        inside = address_in_spec(address, args[0])
        return f"the address {args[0]!r} is not understood" if inside is None else inside
    if option == "--ctorigdstport" and args:
        return _in_ports(pkt.dport, args[0])
    return f"-m conntrack {option} is not evaluated"
