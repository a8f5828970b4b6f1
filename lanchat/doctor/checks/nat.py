"""`--internet`, the only mode that talks to the router: the default gateway (nat.gateway), the
router's external address over NAT-PMP (RFC 6886, read-only opcode 0; nat.router) and what it
means for port forwarding (nat.wan): public, private (double NAT) or 100.64.0.0/10 (CGNAT)."""

from __future__ import annotations

import ipaddress
import re
import struct
from dataclasses import asdict, dataclass
from typing import Any, Literal

from lanchat.doctor.context import POWERSHELL_TIMEOUT
from lanchat.doctor.probe.interface import Probe
from lanchat.doctor.result import CheckResult, Fix

NATPMP_PORT = 5351
NATPMP_REQUEST = b"\x00\x00"  # version 0, opcode 0: "determine the external address"
# RFC 6886 3.1: resend after 250 ms, doubling; three tries keep --internet under two seconds.
NATPMP_TIMEOUTS = (0.25, 0.5, 1.0)
NATPMP_RESULTS = {
    0: "success",
    1: "unsupported version",
    2: "not authorized/refused (NAT-PMP is switched off on the router)",
    3: "network failure (the router has no internet address yet)",
    4: "out of resources",
    5: "unsupported opcode",
}
CGNAT = ipaddress.ip_network("100.64.0.0/10")
WanClass = Literal["public", "private", "cgnat", "unknown"]
_MACOS_GATEWAY = re.compile(r"^\s*gateway:\s*(\S+)", re.MULTILINE)
WINDOWS_GATEWAY_COMMAND = (
    "powershell",
    "-NoProfile",
    "-NonInteractive",
    "-Command",
    "(Get-NetRoute -DestinationPrefix 0.0.0.0/0 | Sort-Object RouteMetric | "
    "Select-Object -First 1).NextHop",
)


@dataclass(frozen=True)
class NatPmpAnswer:
    """A NAT-PMP external-address response (RFC 6886 3.2)."""

    result: int
    epoch: int
    external: str

    def to_dict(self) -> dict[str, Any]:
        """Plain data for JSON output."""
        return asdict(self)


def parse_natpmp(data: bytes) -> NatPmpAnswer | str:
    """The 12-byte response: version 0, opcode 128, result, seconds since epoch, address."""
    if len(data) < 12:
        return f"a {len(data)}-byte answer is too short for NAT-PMP (12 bytes)"
    version, opcode, result, epoch = struct.unpack("!BBHI", data[:8])
    if version != 0:
        return f"the router speaks version {version} (PCP), not NAT-PMP"
    if opcode != 128:
        return f"opcode {opcode} is not the answer to an external-address request (128)"
    return NatPmpAnswer(result, epoch, str(ipaddress.IPv4Address(data[8:12])))


def parse_proc_net_route(text: str) -> str | None:
    """Linux /proc/net/route: the gateway of the default route (little-endian hex)."""
    best: tuple[int, str] | None = None
    for line in text.splitlines()[1:]:
        fields = line.split()
        if len(fields) < 8:
            continue
        try:
            destination, gateway, flags, metric = (
                int(fields[1], 16),
                int(fields[2], 16),
                int(fields[3], 16),
                int(fields[6]),
            )
        except ValueError:
            continue
        if destination == 0 and flags & 0x2 and gateway:  # RTF_GATEWAY
            address = str(ipaddress.IPv4Address(struct.pack("<I", gateway)))
            if best is None or metric < best[0]:
                best = (metric, address)
    return best[1] if best else None


def default_gateway(probe: Probe) -> str | None:
    """The IPv4 default gateway, per OS; None when there is none or it cannot be read."""
    if probe.platform == "linux":
        text = probe.read_text("/proc/net/route")
        return parse_proc_net_route(text) if text else None
    if probe.platform == "darwin":
        out = probe.run(["route", "-n", "get", "default"], 2.0)
        found = _MACOS_GATEWAY.search(out.stdout) if out is not None else None
        return found.group(1) if found else None
    if probe.platform == "windows":
        out = probe.run(WINDOWS_GATEWAY_COMMAND, POWERSHELL_TIMEOUT)
        text = out.stdout.strip() if out is not None else ""
        try:
            return str(ipaddress.IPv4Address(text.splitlines()[0].strip())) if text else None
        except ValueError:
            return None
    return None


def classify_wan(address: str) -> WanClass:
    """public, private (RFC 1918 and similar: double NAT) or cgnat (100.64.0.0/10)."""
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return "unknown"
    if ip in CGNAT:
        return "cgnat"
    if ip.is_private or ip.is_unspecified or ip.is_loopback or ip.is_link_local:
        return "private"
    return "public" if ip.is_global else "private"


def check_gateway(gateway: str | None) -> CheckResult:
    """nat.gateway: where the router is."""
    title = "This PC has a router (default gateway)"
    if gateway is None:
        return CheckResult(
            "nat.gateway",
            title,
            "warn",
            "This PC has no IPv4 default gateway: it is on a network without a router (or not "
            "connected), so nothing from the internet can reach it.",
        )
    return CheckResult(
        "nat.gateway", title, "pass", f"The router is {gateway}.", facts={"gateway": gateway}
    )


def check_router(probe: Probe, gateway: str | None) -> tuple[CheckResult, str | None]:
    """nat.router: ask the gateway for its external address over NAT-PMP (read-only)."""
    title = "The router tells its internet address (NAT-PMP)"
    if gateway is None:
        return CheckResult("nat.router", title, "skip", "No router to ask."), None
    data = probe.udp_request(gateway, NATPMP_PORT, NATPMP_REQUEST, NATPMP_TIMEOUTS)
    look = Fix(
        f"Open the router's admin page (usually http://{gateway}) and look for its WAN or "
        "internet address.",
        run_on="the router",
    )
    if data is None:
        return (
            CheckResult(
                "nat.router",
                title,
                "unknown",
                f"The router {gateway} did not answer NAT-PMP on UDP {NATPMP_PORT} within "
                f"{sum(NATPMP_TIMEOUTS):g} s (often switched off, which is good for security).",
                fixes=(look,),
                facts={"gateway": gateway},
            ),
            None,
        )
    answer = parse_natpmp(data)
    if isinstance(answer, str):
        return (
            CheckResult(
                "nat.router",
                title,
                "unknown",
                f"The router answered, but not in NAT-PMP: {answer}.",
                (data[:32].hex(),),
                (look,),
                {"gateway": gateway},
            ),
            None,
        )
    if answer.result != 0:
        meaning = NATPMP_RESULTS.get(answer.result, "an unknown result code")
        return (
            CheckResult(
                "nat.router",
                title,
                "unknown",
                f"The router answered NAT-PMP with result {answer.result}: {meaning}.",
                fixes=(look,),
                facts={"gateway": gateway, **answer.to_dict()},
            ),
            None,
        )
    return (
        CheckResult(
            "nat.router",
            title,
            "pass",
            f"The router {gateway} says its internet address is {answer.external} (NAT-PMP).",
            facts={"gateway": gateway, **answer.to_dict()},
        ),
        answer.external,
    )


def check_wan(external: str | None, port: int, lan_address: str | None) -> CheckResult:
    """nat.wan: can port forwarding on this router make lanchat reachable from the internet?"""
    title = "Port forwarding could work on this connection"
    if external is None:
        return CheckResult(
            "nat.wan",
            title,
            "unknown",
            "The router's internet address is unknown, so the doctor cannot say whether port "
            "forwarding could work.",
        )
    kind = classify_wan(external)
    facts = {"external": external, "class": kind}
    target = f"{lan_address}:{port}" if lan_address else f"this PC, port {port}"
    if kind == "cgnat":
        return CheckResult(
            "nat.wan",
            title,
            "fail",
            f"The router's internet address {external} is a carrier-grade NAT address "
            "(100.64.0.0/10): your provider shares one public address among many customers, "
            "so port forwarding on your router cannot make lanchat reachable from the internet.",
            fixes=(
                Fix(
                    "Use a VPN such as Tailscale or ZeroTier (no port forwarding needed), or ask "
                    "your provider for a public IPv4 address."
                ),
            ),
            facts=facts,
        )
    if kind == "private":
        return CheckResult(
            "nat.wan",
            title,
            "warn",
            f"Your router's internet address {external} is itself private: it sits behind "
            f"another router (double NAT). Forwarding would be needed on both, to {target}.",
            fixes=(
                Fix(
                    "Forward the port on both routers, or switch the provider's box to "
                    "bridge / IP-passthrough mode; a VPN such as Tailscale avoids all of it.",
                    run_on="the router",
                ),
            ),
            facts=facts,
        )
    return CheckResult(
        "nat.wan",
        title,
        "pass",
        f"{external} is a public address: forwarding TCP {port} on the router to {target} "
        "would make lanchat reachable from the internet. Test it from outside (a phone on "
        "mobile data): tests from inside often fail (hairpin NAT).",
        facts=facts,
    )
