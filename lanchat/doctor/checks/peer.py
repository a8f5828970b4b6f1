"""Client mode, `lanchat doctor HOST[:PORT]`: resolve, same network or not, connect with a
timeout and classify (refused, timeout, unreachable), then whether lanchat answered the
handshake. The causes and next steps follow docs/doctor-rules.md, "What a connect() result
means"."""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence

from lanchat.doctor.checks.lan import choose_lan, network_of
from lanchat.doctor.probe.interface import ConnectResult, HandshakeResult, Resolved
from lanchat.doctor.result import CheckResult, Fix
from lanchat.netinfo import LocalAddress, host_port

CONNECT_TIMEOUT = 3.0  # a DROP rule costs exactly this; well under the 5 s budget


def _on_server(port: int) -> Fix:
    return Fix(
        "On the server PC, run the doctor: it checks the listening address and the firewall "
        "and prints the exact fix.",
        (f"lanchat doctor --port {port}",),
        run_on="the server PC",
    )


def check_peer_resolve(resolved: Resolved, host: str) -> CheckResult:
    """peer.resolve: the name (or address) to connect to."""
    title = f"The name {host!r} resolves to an address"
    if resolved.error or not resolved.addresses:
        return CheckResult(
            "peer.resolve",
            title,
            "fail",
            f"Cannot find the computer {host!r} ({resolved.error or 'no address'}).",
            fixes=(
                Fix(
                    "Use the numeric address the server printed (lanchat serve shows it), e.g. "
                    "lanchat join 192.168.1.23:7420. Names ending in .local need mDNS on both "
                    "PCs."
                ),
            ),
            facts=resolved.to_dict(),
        )
    literal = _is_address(host)
    return CheckResult(
        "peer.resolve",
        title if not literal else f"{host} is an address",
        "pass",
        f"{host} is {', '.join(resolved.addresses)}." if not literal else f"{host} is an address.",
        facts=resolved.to_dict(),
    )


def _is_address(host: str) -> bool:
    try:
        ipaddress.ip_address(host.split("%", maxsplit=1)[0])
        return True
    except ValueError:
        return False


def same_network(addresses: Sequence[LocalAddress], target: str) -> tuple[str, str | None]:
    """('self', iface) for this PC, ('on-link', network) or ('off-link', None)."""
    ip = ipaddress.ip_address(target.split("%", maxsplit=1)[0])
    if ip.is_loopback:
        return "self", "loopback"
    for a in addresses:
        if a.address == str(ip):
            return "self", a.interface
    if ip.is_link_local:
        return "on-link", "link-local"
    for a in addresses:
        net = network_of(a)
        if net is not None and net.version == ip.version and ip in net and net.num_addresses > 2:
            return "on-link", str(net)
    return "off-link", None


def check_peer_network(addresses: Sequence[LocalAddress], target: str, port: int) -> CheckResult:
    """peer.network: the server on this PC's own subnet? Discovery cannot cross routers."""
    title = "The server is on the same network as this PC"
    where, detail = same_network(addresses, target)
    ours = [f"{a.address} ({a.interface})" for a in addresses if a.usable]
    facts = {"relation": where, "network": detail, "local": ours}
    if where == "self":
        lan = choose_lan(addresses)
        lan_target = host_port(lan.address, port) if lan is not None else None
        facts["lan_target"] = lan_target
        return CheckResult(
            "peer.network",
            title,
            "warn",
            f"{target} is this PC itself: the connection goes over loopback, which firewalls "
            "let through, so this test says nothing about other PCs.",
            fixes=_from_the_server_itself(lan_target, port),
            facts=facts,
        )
    if where == "on-link":
        return CheckResult(
            "peer.network",
            title,
            "pass",
            f"{target} is on this PC's network ({detail}).",
            facts=facts,
        )
    return CheckResult(
        "peer.network",
        title,
        "warn",
        f"{target} is on a different network than this PC ({', '.join(ours) or 'no address'}): "
        "discovery (mDNS) cannot cross routers; joining by address works only if the networks "
        "are routed to each other.",
        fixes=(
            Fix(
                "Connect both PCs to the same Wi-Fi or switch (not a guest network), or ask "
                "whoever runs the network whether the two networks may talk; for PCs that are "
                "really far apart use a VPN such as Tailscale or ZeroTier.",
            ),
        ),
        facts=facts,
    )


def _from_the_server_itself(lan_target: str | None, port: int) -> tuple[Fix, ...]:
    """What tells more than a test of this PC against itself (never the command just run): the
    server-mode doctor here, then the client-mode one from another PC, at this PC's LAN address."""
    here = Fix(
        "This PC runs the server: the server-mode doctor checks what other PCs meet here (the "
        f"listening address, the firewall): lanchat doctor --port {port}",
        (f"lanchat doctor --port {port}",),
    )
    if lan_target is None:
        return (here,)
    other = f"lanchat doctor {lan_target}"
    return (
        here,
        Fix(f"Then, on another PC on this network: {other}", (other,), run_on="the other PCs"),
    )


def check_peer_tcp(result: ConnectResult, relation: str, timeout: float) -> CheckResult:
    """peer.tcp: connect() classified, with the likely causes and what to do next."""
    where = host_port(result.address, result.port)
    title = f"A TCP connection to {where} gets through"
    facts = result.to_dict()
    evidence = tuple(
        x
        for x in (
            f"connect() ended after {result.seconds:.3f} s: {result.outcome}"
            + (f" (errno {result.errno})" if result.errno else ""),
            result.message,
        )
        if x
    )
    port = result.port
    if result.outcome == "connected":
        return CheckResult(
            "peer.tcp",
            title,
            "pass",
            f"Connected to {where} in {result.seconds * 1000:.1f} ms (from {result.source}).",
            evidence,
            facts=facts,
        )
    if result.outcome == "refused":
        return CheckResult(
            "peer.tcp",
            title,
            "fail",
            f"{result.address} answered, but nothing accepts port {port} there (connection "
            "refused). On the server PC: lanchat serve is not running, runs on another port, "
            "listens on 127.0.0.1 only, or a firewall rule rejects the port.",
            evidence,
            (_on_server(port),),
            facts,
        )
    if result.outcome == "timeout":
        return CheckResult(
            "peer.tcp",
            title,
            "fail",
            f"No answer from {where} within {timeout:g} s. Most likely the server's firewall "
            "drops the connection (on Windows: the network is 'Public' or Python was blocked), "
            "the server PC is asleep or off, or the Wi-Fi isolates devices (guest networks).",
            evidence,
            (
                _on_server(port),
                Fix(
                    "Check that both PCs are on the same Wi-Fi or switch, not a guest network, "
                    "and that the server PC is awake."
                ),
            ),
            facts,
        )
    if result.outcome == "host-unreachable":
        local = relation == "on-link"
        summary = (
            f"This PC cannot find {result.address} on the local network (no route to host): the "
            "address is wrong, the server PC is off or asleep, the Wi-Fi isolates devices, or "
            "(Fedora-like servers) a firewall rejects the port with 'admin prohibited'."
            if local
            else f"There is no route to {result.address} from this PC."
        )
        return CheckResult("peer.tcp", title, "fail", summary, evidence, (_on_server(port),), facts)
    if result.outcome == "prohibited":
        return CheckResult(
            "peer.tcp",
            title,
            "fail",
            f"A firewall rejected the connection to {where} as 'administratively prohibited' "
            "(this PC reports it as 'permission denied'). Most likely the firewall on the "
            f"server PC does not let port {port} in; firewalld (Fedora, RHEL) rejects this way.",
            evidence,
            (_on_server(port),),
            facts,
        )
    if result.outcome == "net-unreachable":
        return CheckResult(
            "peer.tcp",
            title,
            "fail",
            f"This PC has no route to {result.address}'s network: it is on a different network "
            "(or this PC is not connected). Discovery cannot cross routers either.",
            evidence,
            (
                Fix(
                    "Connect this PC to the network the server is on (same Wi-Fi or switch), or "
                    "use a VPN such as Tailscale or ZeroTier for PCs on other networks."
                ),
            ),
            facts,
        )
    return CheckResult(
        "peer.tcp",
        title,
        "fail",
        f"The connection to {where} failed: {result.message or result.outcome}.",
        evidence,
        (_on_server(port),),
        facts,
    )


def check_peer_lanchat(result: ConnectResult, answer: HandshakeResult | None) -> CheckResult:
    """peer.lanchat: once connected, does a lanchat server answer the handshake?"""
    where = host_port(result.address, result.port)
    title = f"A lanchat server answers on {where}"
    if result.outcome != "connected" or answer is None:
        return CheckResult("peer.lanchat", title, "skip", "The TCP connection did not get through.")
    facts = answer.to_dict()
    if answer.outcome == "lanchat":
        return CheckResult(
            "peer.lanchat",
            title,
            "pass",
            f"{answer.detail} (asked with a probe: nobody in the room saw it).",
            facts=facts,
        )
    if answer.outcome == "rejected":
        return CheckResult(
            "peer.lanchat",
            title,
            "warn",
            f"A lanchat server answered but let nobody in: {answer.detail}",
            facts=facts,
        )
    return CheckResult(
        "peer.lanchat",
        title,
        "fail",
        f"{answer.detail} Another program may hold that port, or the port number is wrong "
        "(lanchat's default is 7420).",
        fixes=(_on_server(result.port),),
        facts=facts,
    )
