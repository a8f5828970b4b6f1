"""The packet a firewall evaluator is asked about, and the verdict it gives back, as plain data."""

from __future__ import annotations

import ipaddress
from dataclasses import asdict, dataclass
from typing import Any, Literal

Family = Literal["ip", "ip6"]
Proto = Literal["tcp", "udp"]
Outcome = Literal["allowed", "blocked", "unknown"]
Action = Literal["accept", "drop", "reject"]

FAMILIES: tuple[Family, ...] = ("ip", "ip6")
PROTOS: tuple[Proto, ...] = ("tcp", "udp")
OUTCOMES: tuple[Outcome, ...] = ("allowed", "blocked", "unknown")
ACTIONS: tuple[Action, ...] = ("accept", "drop", "reject")


@dataclass(frozen=True)
class Packet:
    """A NEW inbound packet (ct state new, no NAT, no IPv6 extension headers, not a fragment).

    ``daddr`` is an address of this host (its LAN address) or the multicast group the packet
    is sent to (224.0.0.251 / ff02::fb for mDNS); evaluators rely on that to answer questions
    such as "is the destination a local address".
    """

    family: Family
    proto: Proto
    dport: int
    iif: str
    saddr: str
    daddr: str

    def __post_init__(self) -> None:
        if self.family not in FAMILIES:
            raise ValueError(f"family must be 'ip' or 'ip6', not {self.family!r}")
        if self.proto not in PROTOS:
            raise ValueError(f"proto must be 'tcp' or 'udp', not {self.proto!r}")
        if isinstance(self.dport, bool) or not isinstance(self.dport, int):
            raise ValueError(f"dport must be an integer, not {self.dport!r}")
        if not 0 < self.dport < 65536:
            raise ValueError(f"dport must be 1-65535, not {self.dport}")
        if not self.iif:
            raise ValueError("iif (the input interface name) must not be empty")
        want = 4 if self.family == "ip" else 6
        for name in ("saddr", "daddr"):
            value = getattr(self, name)
            try:
                address = ipaddress.ip_address(value)
            except ValueError:
                raise ValueError(f"{name} is not an IP address: {value!r}") from None
            if address.version != want:
                raise ValueError(
                    f"{name} {value} is not an IPv{want} address (family {self.family})"
                )

    @property
    def source(self) -> ipaddress.IPv4Address | ipaddress.IPv6Address:
        """The source address as an ipaddress object."""
        return ipaddress.ip_address(self.saddr)

    @property
    def destination(self) -> ipaddress.IPv4Address | ipaddress.IPv6Address:
        """The destination address as an ipaddress object."""
        return ipaddress.ip_address(self.daddr)

    @property
    def dst_type(self) -> str:
        """The kernel's address type of the destination: LOCAL, MULTICAST or BROADCAST.

        On the input path the destination is this host, a multicast group, or a broadcast
        address; a subnet-directed broadcast cannot be told from a host address without the
        prefix, so callers pass a host address or a group (see the class docstring).
        """
        dst = self.destination
        if dst.is_multicast:
            return "MULTICAST"
        if dst == ipaddress.IPv4Address("255.255.255.255"):
            return "BROADCAST"
        return "LOCAL"

    def describe(self) -> str:
        """One line such as 'new tcp to 10.213.0.1:7000 from 10.213.0.2 on eth0 (IPv4)'."""
        version = "IPv4" if self.family == "ip" else "IPv6"
        dst = f"[{self.daddr}]" if self.family == "ip6" else self.daddr
        return f"new {self.proto} to {dst}:{self.dport} from {self.saddr} on {self.iif} ({version})"

    def to_dict(self) -> dict[str, Any]:
        """Plain data for JSON output."""
        return asdict(self)


@dataclass(frozen=True)
class Verdict:
    """What a firewall does with a Packet, and the evidence: which rule decided, in plain words."""

    outcome: Outcome
    action: Action | None
    source: str
    reason: str
    rule_text: str | None = None

    def __post_init__(self) -> None:
        if self.outcome not in OUTCOMES:
            raise ValueError(f"outcome must be one of {OUTCOMES}, not {self.outcome!r}")
        if self.action is not None and self.action not in ACTIONS:
            raise ValueError(f"action must be one of {ACTIONS} or None, not {self.action!r}")

    def to_dict(self) -> dict[str, Any]:
        """Plain data for JSON output."""
        return asdict(self)


def unknown(source: str, reason: str, rule_text: str | None = None) -> Verdict:
    """An 'unknown' verdict: the evaluator could not tell, and says why."""
    return Verdict("unknown", None, source, reason, rule_text)
