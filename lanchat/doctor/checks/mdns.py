"""mdns.self, mdns.neighbours and peer.mdns, over an MdnsProbe: does this PC see its own test
advertisement, does it hear other hosts on the link, does it see the server it wants to join?"""

from __future__ import annotations

from collections.abc import Sequence

from lanchat.doctor.context import LanFacts
from lanchat.doctor.probe.interface import MdnsBrowse, MdnsProbe
from lanchat.doctor.result import CheckResult, Fix

SELF_TIMEOUT = 3.0
LISTEN_TIMEOUT = 2.5
BROWSE_TIMEOUT = 2.5
SELF_TITLE = "This PC sees its own mDNS advertisement"
NEIGHBOURS_TITLE = "This PC hears other mDNS hosts on the network"
PEER_TITLE = "Discovery (mDNS) sees that server from here"


def check_mdns_self(mdns: MdnsProbe, lan: LanFacts | None, port: int) -> CheckResult:
    """mdns.self: advertise a throwaway service and look for it (the mDNS stack works)."""
    reason = mdns.unavailable()
    if reason:
        return CheckResult("mdns.self", SELF_TITLE, "skip", reason)
    if lan is None:
        return CheckResult("mdns.self", SELF_TITLE, "skip", "No LAN address to advertise on.")
    seen = mdns.see_self(lan.address, SELF_TIMEOUT)
    facts = seen.to_dict()
    if seen.seen:
        return CheckResult(
            "mdns.self",
            SELF_TITLE,
            "pass",
            f"The test service {seen.name or ''} was seen after {seen.seconds or 0:.2f} s.".replace(
                "  ", " "
            ),
            facts=facts,
        )
    # A warning, like firewall.mdns: discovery is a convenience, joining by address still works.
    return CheckResult(
        "mdns.self",
        SELF_TITLE,
        "warn",
        "This PC does not see its own mDNS advertisement"
        + (f" ({seen.error})" if seen.error else "")
        + ": discovery will not work from here (a firewall dropping UDP 5353, mDNS bound to the "
        "wrong network, WSL, or no multicast on this interface); joining by address still works.",
        fixes=(
            Fix(
                f"Others can still join by address: lanchat join {lan.join_host()}:{port}",
                run_on="the other PCs",
            ),
        ),
        facts=facts,
    )


def check_mdns_neighbours(mdns: MdnsProbe, own: Sequence[str]) -> CheckResult:
    """mdns.neighbours: any other host's mDNS traffic on the link? None: isolation or a filter."""
    reason = mdns.unavailable()
    if reason:
        return CheckResult("mdns.neighbours", NEIGHBOURS_TITLE, "skip", reason)
    heard = mdns.neighbours(own, LISTEN_TIMEOUT)
    facts = heard.to_dict()
    if heard.error:
        return CheckResult(
            "mdns.neighbours",
            NEIGHBOURS_TITLE,
            "unknown",
            f"Could not listen: {heard.error}.",
            facts=facts,
        )
    if heard.hosts:
        return CheckResult(
            "mdns.neighbours",
            NEIGHBOURS_TITLE,
            "pass",
            f"Heard {len(heard.hosts)} other host(s): {', '.join(heard.hosts[:5])}.",
            facts=facts,
        )
    return CheckResult(
        "mdns.neighbours",
        NEIGHBOURS_TITLE,
        "warn",
        f"No other PC, phone or printer announced itself within {LISTEN_TIMEOUT:g} s: multicast "
        "from other devices may not reach this PC (guest Wi-Fi or 'AP/client isolation', a "
        "different VLAN, or a firewall), or nobody else is on this network.",
        fixes=(
            Fix(
                "If other devices are on this network: use a non-guest Wi-Fi or a cable, or ask "
                "whoever runs the network to turn client isolation off."
            ),
        ),
        facts=facts,
    )


def check_peer_mdns(
    mdns: MdnsProbe,
    addresses: Sequence[str],
    port: int,
    tcp_ok: bool,
    browse: MdnsBrowse | None = None,
) -> CheckResult:
    """peer.mdns (client mode): is a _lanchat._tcp service at that address and port visible?

    ``browse`` is a browse already done (run beside the connection test); else one is made.
    """
    reason = mdns.unavailable()
    if reason:
        return CheckResult("peer.mdns", PEER_TITLE, "skip", reason)
    browse = browse or mdns.browse_lanchat(BROWSE_TIMEOUT)
    facts = browse.to_dict()
    if browse.error:
        return CheckResult(
            "peer.mdns", PEER_TITLE, "unknown", f"Could not browse: {browse.error}.", facts=facts
        )
    wanted = set(addresses)
    match = [s for s in browse.services if s.port == port and wanted & set(s.addresses)]
    if match:
        return CheckResult(
            "peer.mdns",
            PEER_TITLE,
            "pass",
            f"Discovery sees it as {match[0].name!r}: `lanchat discover` lists it.",
            facts=facts,
        )
    others = ", ".join(f"{s.name} ({', '.join(s.addresses)}:{s.port})" for s in browse.services)
    return CheckResult(
        "peer.mdns",
        PEER_TITLE,
        "warn",
        "Discovery does not see that server from here"
        + (f" (it sees {others})" if others else "")
        + ": UDP 5353 is blocked on one side, or the PCs are on different networks."
        + (" Joining by address works." if tcp_ok else ""),
        fixes=(
            Fix(
                "On the server PC, run lanchat doctor: firewall.mdns says whether discovery "
                "packets get in.",
                ("lanchat doctor",),
                run_on="the server PC",
            ),
        ),
        facts=facts,
    )
