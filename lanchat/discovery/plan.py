"""Decisions of discovery, pure: which of this PC's addresses a server advertises (and on which
interfaces), what to do when they change, which server a join goes to and in which order it tries
that server's addresses (reach_server). Unit-tested without sockets."""

from __future__ import annotations

import ipaddress
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Generic, Literal, TypeVar

from lanchat.discovery.records import Server
from lanchat.errors import LanchatError, UnreachableError, UsageError
from lanchat.netinfo import LocalAddress

T = TypeVar("T")

# Tags of addresses a server still advertises: a link-local address is on the LAN (two PCs on
# one cable without DHCP have only those); a CGNAT address on a plain interface may be a LAN.
_LAN_TAGS = frozenset({"link-local", "carrier-grade NAT range"})

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


@dataclass(frozen=True)
class AdvertPlan:
    """What to put in the mDNS record and which interfaces zeroconf should use for it."""

    addresses: tuple[str, ...] = ()  # for the record: IPv4 first, link-local last
    ipv4_interfaces: tuple[str, ...] = ()  # zeroconf binds IPv4 per address
    ipv6_interfaces: tuple[str, ...] = ()  # and IPv6 per interface (by name here)
    reason: str | None = None  # why nothing is advertised, when addresses is empty
    left_out: tuple[str, ...] = field(default=(), compare=False)  # 'ADDR (VPN)' not advertised

    def to_dict(self) -> dict[str, Any]:
        return {
            "addresses": list(self.addresses),
            "ipv4_interfaces": list(self.ipv4_interfaces),
            "ipv6_interfaces": list(self.ipv6_interfaces),
            "reason": self.reason,
            "left_out": list(self.left_out),
        }


def plan_advertisement(
    local: Sequence[LocalAddress], *, bind_host: str = "", wanted: Sequence[str] = ()
) -> AdvertPlan:
    """The addresses to advertise: those the relay listens on, never loopback, and by default
    not virtual adapters (VPN, containers); `wanted` (--interface) names addresses or
    interfaces to use instead."""
    host = bind_host.strip("[]")
    if host in ("localhost",) or _is_loopback(host):
        return AdvertPlan(reason=f"the server listens on {host} only (--host)")
    candidates = [a for a in local if "loopback" not in a.tags]
    if host == "0.0.0.0":
        candidates = [a for a in candidates if a.family == 4]
    elif host not in ("", "::", "*"):
        candidates = [a for a in candidates if _same_address(a.address, host)]
        if not candidates:
            return AdvertPlan(reason=f"{host} (--host) is not an address of this computer now")
    left_out: list[str] = []
    if wanted:
        chosen = [a for a in candidates if a.address in wanted or a.interface in wanted]
        missing = [w for w in wanted if not any(w in (a.address, a.interface) for a in chosen)]
        if not chosen:
            have = ", ".join(sorted({a.interface for a in candidates})) or "none"
            return AdvertPlan(
                reason=f"--interface {', '.join(wanted)} matches no address of this computer "
                f"now (interfaces: {have})"
            )
        left_out += [f"{w} (--interface: not found)" for w in missing]
    else:
        chosen = [a for a in candidates if set(a.tags) <= _LAN_TAGS]
        left_out += [f"{a.address} ({', '.join(a.tags)})" for a in candidates if a not in chosen]
        if not chosen:
            reason = "this computer has no LAN address now"
            if candidates:
                reason += " (only virtual adapters: use --interface to advertise on one)"
            return AdvertPlan(reason=reason, left_out=tuple(left_out))
    ordered = sorted(chosen, key=_advert_order)
    addresses = tuple(dict.fromkeys(a.address for a in ordered))
    ipv4 = tuple(dict.fromkeys(a.address for a in ordered if a.family == 4))
    ipv6 = tuple(dict.fromkeys(a.interface for a in ordered if a.family == 6))
    return AdvertPlan(addresses, ipv4, ipv6, None, tuple(left_out))


def _advert_order(a: LocalAddress) -> tuple[bool, int, bool]:
    return (not a.primary, a.family, "link-local" in a.tags)


def _is_loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host.partition("%")[0]).is_loopback
    except ValueError:
        return False


def _same_address(a: str, b: str) -> bool:
    try:
        ip_a, ip_b = (ipaddress.ip_address(x.partition("%")[0]) for x in (a, b))
    except ValueError:
        return a == b
    return ip_a == ip_b


RefreshAction = Literal["keep", "update", "restart", "withdraw", "register"]


def refresh_action(old: AdvertPlan | None, new: AdvertPlan) -> RefreshAction:
    """What the advertiser does when this PC's addresses were checked again.

    Only additions go through zeroconf's update_service: it sends no goodbye for an address that
    went away, so a removal (or a new interface, which needs new sockets) re-registers instead.
    """
    if old is None or not old.addresses:
        return "register" if new.addresses else "keep"
    if not new.addresses:
        return "withdraw"
    if new.addresses == old.addresses:
        return "keep"
    same_sockets = (new.ipv4_interfaces, new.ipv6_interfaces) == (
        old.ipv4_interfaces,
        old.ipv6_interfaces,
    )
    if same_sockets and set(old.addresses) <= set(new.addresses):
        return "update"
    return "restart"


# --- the client's side -----------------------------------------------------------------------


def matching_servers(servers: Sequence[Server], room: str | None) -> list[Server]:
    """The servers a join may pick from: all, or those of `room` (case does not matter)."""
    if room is None:
        return list(servers)
    return [s for s in servers if s.room.casefold() == room.casefold()]


NO_SERVER_HINT = (
    "Type the address the server shows (lanchat join 192.168.1.23), or run `lanchat doctor` "
    "to find out why: a firewall blocking UDP 5353, a guest Wi-Fi, another subnet or a VPN "
    "stop discovery (docs/discovery.md)."
)


def describe_server(server: Server) -> str:
    """'lobby on h1' (10.0.0.5:7420), for messages."""
    return f"{server.name!r} ({server.endpoint(server.addresses[0])})"


def choose_server(
    servers: Sequence[Server],
    room: str | None,
    *,
    seconds: float,
    pick: Callable[[list[Server]], Server | None] | None,
) -> Server:
    """The server a `join` without an address goes to: the only one (of `room`), or the one
    `pick` chooses among several; errors that say what to try when that cannot be decided."""
    if not servers:
        raise UnreachableError(
            f"No lanchat server answered on this network within {seconds:g} s.", NO_SERVER_HINT
        )
    candidates = matching_servers(servers, room)
    if not candidates:
        found = ", ".join(f"{s.room!r} on {s.host}" for s in servers)
        raise UnreachableError(
            f"No server for room {room!r} answered; found: {found}.",
            "Leave out --room to choose among them, or type the server's address.",
        )
    if len(candidates) == 1:
        return candidates[0]
    if pick is not None:
        chosen = pick(candidates)
        if chosen is not None:
            return chosen
    listed = "; ".join(describe_server(s) for s in candidates)
    rooms = {s.room.casefold() for s in candidates}
    how = "choose one with --room NAME or type" if len(rooms) > 1 else "type"
    raise UsageError(
        f"{len(candidates)} lanchat servers answered: {listed}.",
        f"To join without being asked, {how} its address: "
        f"lanchat join {candidates[0].endpoint(candidates[0].addresses[0])}",
    )


def try_in_turn(
    addresses: Sequence[str], connect: Callable[[str, bool], T]
) -> tuple[T, str, list[tuple[str, LanchatError]]]:
    """Call connect(address, is_last) for each address until one works; the result, that
    address, and the (address, error) of those that failed before. UnreachableError only moves
    on to the next address: a server that answered and refused us (RejectedError) ends it."""
    failed: list[tuple[str, LanchatError]] = []
    for i, address in enumerate(addresses):
        try:
            return connect(address, i == len(addresses) - 1), address, failed
        except UnreachableError as e:
            failed.append((address, e))
    tried = "; ".join(f"{a}: {e.message}" for a, e in failed) or "it listed no address"
    raise UnreachableError(
        f"The server answered discovery, but none of its addresses could be reached ({tried}).",
        "A firewall on the server may block its TCP port; run `lanchat doctor` there.",
    )


@dataclass(frozen=True)
class Reached(Generic[T]):
    """Where a `join` without an address went: the server, the connection, the address that
    worked, and the (address, error) of those tried before it."""

    server: Server
    connection: T
    address: str
    failed: tuple[tuple[str, LanchatError], ...]


def reach_server(
    servers: Sequence[Server],
    room: str | None,
    *,
    seconds: float,
    networks: Sequence[IPNetwork],
    pick: Callable[[list[Server]], Server | None] | None,
    connect: Callable[[Server, str, bool], T],
) -> Reached[T]:
    """The whole choice of a `join` without an address, given what discovery found: the server
    (choose_server; `pick` asks the user among several), then its addresses in order
    (order_addresses over this PC's `networks`), each given to connect(server, address, is_last)
    until one works (try_in_turn). Prints nothing; the errors say what to try."""
    # The relays of one room (a backplane) are one choice: the nearest of them.
    servers = [group.relays[0] for group in group_rooms(servers, networks)]
    server = choose_server(servers, room, seconds=seconds, pick=pick)
    order = order_addresses(server.addresses, networks)
    connection, address, failed = try_in_turn(
        order, lambda address, last: connect(server, address, last)
    )
    return Reached(server, connection, address, tuple(failed))


def local_networks(local: Sequence[LocalAddress]) -> list[IPNetwork]:
    """The LAN networks this PC is directly on, from its addresses and netmasks (not its
    loopback, VPN or container networks: a server's address there is rarely the way in)."""
    networks: list[IPNetwork] = []
    for a in local:
        if not set(a.tags) <= _LAN_TAGS or not a.netmask:
            continue
        try:
            mask = ipaddress.ip_address(a.netmask)
            prefix = bin(int(mask)).count("1")
            networks.append(ipaddress.ip_network(f"{a.address}/{prefix}", strict=False))
        except ValueError:
            continue
    return networks


def order_addresses(addresses: Sequence[str], networks: Sequence[IPNetwork]) -> list[str]:
    """A server's addresses in the order a client tries them.

    Own subnet first (IPv4, then IPv6), then scoped link-local IPv6 (on our link by definition),
    then the rest (perhaps routed, perhaps a virtual adapter of the server). Stable otherwise.
    """

    return sorted(addresses, key=lambda text: address_rank(text, networks))


def address_rank(text: str, networks: Sequence[IPNetwork]) -> int:
    """How near an address is, for order_addresses: 0 (our IPv4 subnet) ... 9 (not one)."""
    try:
        ip = ipaddress.ip_address(text.partition("%")[0])
    except ValueError:
        return 9
    if any(ip.version == n.version and ip in n for n in networks):
        return 0 if ip.version == 4 else 1
    if ip.version == 6 and ip.is_link_local:
        return 2
    return 3 if ip.version == 4 else 4


@dataclass(frozen=True)
class RoomRelays:
    """One room as discovery sees it: its relays (several with a backplane), nearest first."""

    room: str
    group: str | None  # the backplane's group (TXT `group`); None: a room of one server
    relays: tuple[Server, ...]


def group_rooms(servers: Sequence[Server], networks: Sequence[IPNetwork]) -> list[RoomRelays]:
    """Servers as rooms: those with the same room and backplane group together, the nearest
    first (an address on our own subnet beats a routed one), in the order rooms were found."""
    rooms: dict[tuple[str, str], list[Server]] = {}
    for server in servers:
        key = (server.room.casefold(), server.group) if server.group else ("", server.name)
        rooms.setdefault(key, []).append(server)

    def distance(server: Server) -> int:
        return min((address_rank(a, networks) for a in server.addresses), default=9)

    grouped = []
    for members in rooms.values():
        nearest = sorted(members, key=distance)  # stable: equally near keep their order
        grouped.append(RoomRelays(nearest[0].room, nearest[0].group, tuple(nearest)))
    return grouped


def browse_interfaces(local: Sequence[LocalAddress]) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """Where a client listens for answers: every IPv4 address and every interface with IPv6,
    loopback excepted (zeroconf on ::1 only logs 'Network is unreachable': docs/discovery.md,
    "Not on loopback")."""
    lan = [a for a in local if "loopback" not in a.tags]
    ipv4 = tuple(dict.fromkeys(a.address for a in lan if a.family == 4))
    ipv6 = tuple(dict.fromkeys(a.interface for a in lan if a.family == 6))
    return ipv4, ipv6
