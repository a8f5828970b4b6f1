"""This computer's network facts: its LAN addresses (which one others should use, which ones are
virtual) and which program holds a TCP port. psutil is imported inside the functions so that
`lanchat --help` stays fast.
"""

from __future__ import annotations

import ipaddress
import re
import socket
from dataclasses import asdict, dataclass
from typing import Any

# Interface names of adapters other PCs on the LAN normally cannot reach this one through.
_VIRTUAL_NAMES = (
    (
        re.compile(r"^(docker\d*|br-[0-9a-f]+|veth|cni|flannel|podman|virbr|lxc|lxd)", re.I),
        "container/VM bridge",
    ),
    (re.compile(r"^(vboxnet|vmnet|vmenet|vnic|hyper-?v)", re.I), "virtual machine"),
    (re.compile(r"vEthernet \((WSL|Default Switch)", re.I), "WSL/Hyper-V"),
    (re.compile(r"^(tun|tap|utun|ppp|wg|ipsec|nordlynx|proton|mullvad)", re.I), "VPN"),
    (re.compile(r"^(tailscale|zt|zerotier)", re.I), "VPN overlay"),
)
_CGNAT = ipaddress.ip_network("100.64.0.0/10")


@dataclass(frozen=True)
class LocalAddress:
    """One address of this computer, with what kind of network it is on."""

    address: str
    interface: str
    family: int  # 4 or 6
    netmask: str | None
    primary: bool  # the source address of the default route: the one to tell others
    tags: tuple[str, ...]  # "loopback", "link-local", "VPN", "container/VM bridge", ...

    @property
    def usable(self) -> bool:
        """Whether other PCs on a LAN could plausibly reach us at this address."""
        return not self.tags

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["usable"] = self.usable
        return d


def default_route_address(family: int = socket.AF_INET) -> str | None:
    """The address this PC would send from to reach the outside; None without a default route.

    A UDP connect() only asks the routing table; no packet leaves the machine.
    """
    target = "203.0.113.1" if family == socket.AF_INET else "2001:db8::1"
    probe = socket.socket(family, socket.SOCK_DGRAM)
    try:
        probe.connect((target, 9))
        return str(probe.getsockname()[0])
    except OSError:
        return None
    finally:
        probe.close()


def interface_tags(interface: str, address: str) -> tuple[str, ...]:
    """Why an address is not a plain LAN address ('' reasons mean it is one)."""
    ip = ipaddress.ip_address(address.split("%", maxsplit=1)[0])
    tags: list[str] = []
    if ip.is_loopback:
        tags.append("loopback")
    elif ip.is_link_local:
        tags.append("link-local")
    for pattern, tag in _VIRTUAL_NAMES:
        if pattern.search(interface):
            tags.append(tag)
            break
    if ip.version == 4 and ip in _CGNAT and not tags:
        tags.append("carrier-grade NAT range")
    return tuple(tags)


def local_addresses() -> list[LocalAddress]:
    """Every up interface's IPv4 and IPv6 addresses, the primary one first, virtual ones last."""
    import psutil

    primary4 = default_route_address(socket.AF_INET)
    primary6 = default_route_address(socket.AF_INET6)
    stats = psutil.net_if_stats()
    found: list[LocalAddress] = []
    for interface, addrs in psutil.net_if_addrs().items():
        if interface in stats and not stats[interface].isup:
            continue
        for a in addrs:
            if a.family not in (socket.AF_INET, socket.AF_INET6):
                continue
            address = a.address.split("%")[0]
            family = 4 if a.family == socket.AF_INET else 6
            primary = address in (primary4, primary6)
            found.append(
                LocalAddress(
                    address=address,
                    interface=interface,
                    family=family,
                    netmask=a.netmask,
                    primary=primary,
                    tags=interface_tags(interface, address),
                )
            )
    found.sort(key=lambda x: (not x.primary, not x.usable, x.family, x.interface, x.address))
    return found


def lan_addresses() -> list[LocalAddress]:
    """The addresses worth telling other PCs, best first (IPv4 before IPv6)."""
    return [a for a in local_addresses() if "loopback" not in a.tags and "link-local" not in a.tags]


def is_this_computer(host: str) -> bool:
    """Whether `host` names this computer: loopback, or one of its own addresses."""
    try:
        infos = socket.getaddrinfo(host, None, proto=socket.IPPROTO_TCP)
    except (OSError, UnicodeError):
        return False
    own: set[str] | None = None
    for info in infos:
        ip = ipaddress.ip_address(str(info[4][0]).split("%", 1)[0])
        if ip.is_loopback:
            return True
        if own is None:
            own = {a.address for a in local_addresses()}
        if str(ip) in own:
            return True
    return False


def endpoint_text(address: Any) -> str | None:
    """'ip:port' ('[v6]:port') of a socket address; IPv4-mapped IPv6 is shown as plain IPv4."""
    if not address:
        return None
    host = str(address[0])
    if host.startswith("::ffff:"):
        host = host[7:]
    return host_port(host, address[1])


def host_port(host: str, port: int) -> str:
    """'host:port', with an IPv6 address in brackets so that the port stays readable."""
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


@dataclass(frozen=True)
class PortOwner:
    """A process listening on a port, as far as the OS tells."""

    pid: int | None
    name: str | None
    address: str

    def describe(self) -> str:
        who = self.name or "a program"
        return f"{who} (pid {self.pid})" if self.pid else who

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def port_owners(port: int) -> list[PortOwner] | None:
    """Who listens on TCP `port`; None when the OS will not say (e.g. macOS without root)."""
    import psutil

    try:
        conns = psutil.net_connections(kind="tcp")
    except (psutil.AccessDenied, PermissionError):
        return None
    owners: list[PortOwner] = []
    for c in conns:
        if c.status != psutil.CONN_LISTEN or not c.laddr or c.laddr.port != port:
            continue
        name = None
        if c.pid:
            try:
                name = psutil.Process(c.pid).name()
            except (psutil.NoSuchProcess, psutil.AccessDenied):
                name = None
        owners.append(PortOwner(c.pid, name, f"{c.laddr.ip}:{c.laddr.port}"))
    return owners
