"""server.bind: is a lanchat server listening on the port, and where (every network, the LAN
address, loopback only)? If another program holds the port, name it."""

from __future__ import annotations

import ipaddress
from typing import Any

from lanchat.doctor.context import LanFacts
from lanchat.doctor.probe.interface import Listener, Probe
from lanchat.doctor.result import CheckResult, Fix
from lanchat.netinfo import host_port

TITLE = "A lanchat server listens where other PCs can reach it"
ASK_TIMEOUT = 1.0  # the relay answers its own PC in milliseconds; something else may stay silent
EVERYWHERE = ("", "0.0.0.0", "::", "*")


def _is_loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host.split("%", maxsplit=1)[0]).is_loopback
    except ValueError:
        return host == "localhost"


def _ask_targets(listeners: list[Listener] | None) -> list[str]:
    """Where to ask for the relay's status: loopback for wildcard sockets, else the address."""
    if not listeners:
        return ["127.0.0.1", "::1"]
    targets: list[str] = []
    for row in listeners:
        if row.address in ("0.0.0.0", ""):
            targets.append("127.0.0.1")
        elif row.address == "::":
            targets.append("::1")
        else:
            targets.append(row.address)
    return list(dict.fromkeys(targets))


def find_owner_fix(port: int, platform: str) -> Fix:
    """How to find the program holding a port when the OS did not tell us."""
    commands = {
        "linux": (f"sudo ss -ltnp 'sport = :{port}'",),
        "darwin": (f"sudo lsof -nP -iTCP:{port} -sTCP:LISTEN",),
        "windows": (
            f"Get-NetTCPConnection -LocalPort {port} -State Listen | "
            "Select-Object LocalAddress, OwningProcess, "
            "@{n='Process';e={(Get-Process -Id $_.OwningProcess).ProcessName}}",
        ),
    }.get(platform, (f"lsof -nP -iTCP:{port} -sTCP:LISTEN",))
    return Fix(
        f"Find out which program holds port {port}:",
        commands,
        needs_admin=platform != "windows",
    )


def check_server_bind(probe: Probe, port: int, lan: LanFacts | None) -> CheckResult:
    """server.bind: running or not, on which address; the port's other owner named."""
    listeners = probe.listeners(port)
    evidence = [
        f"listening on port {port}: {row.address} by {row.describe()}" for row in listeners or []
    ]
    if listeners is None:
        evidence.append("the OS did not list its listening sockets (run as admin to see them)")
    answers: list[str] = []
    document: dict[str, Any] | None = None
    for host in _ask_targets(listeners):
        answer = probe.ask_relay(host, port, ASK_TIMEOUT)
        if isinstance(answer, dict):
            document = answer
            break
        answers.append(f"status query to {host_port(host, port)}: {answer}")
    if document is not None:
        return _running(document, port, lan, evidence)
    evidence.extend(answers)
    if listeners:
        return _taken(listeners, port, probe.platform, evidence)
    busy = probe.try_bind(port)
    if busy is not None:
        evidence.append(f"binding port {port} here fails: {busy}")
        return CheckResult(
            "server.bind",
            TITLE,
            "fail",
            f"Port {port} is held by a program the operating system does not name "
            f"(probably another user's), so lanchat cannot listen there.",
            tuple(evidence),
            (
                find_owner_fix(port, probe.platform),
                Fix(
                    f"Or choose another port: lanchat serve --port {_other_port(port)}",
                    (f"lanchat serve --port {_other_port(port)}",),
                ),
            ),
            {"running": False, "scope": "taken", "port": port},
        )
    elsewhere = [row for row in probe.lanchat_listeners() if row.port != port]
    fixes = [Fix("Start the server on this PC:", (f"lanchat serve --port {port}",))]
    summary = f"No lanchat server is running on port {port} on this PC, so nobody can join yet."
    if elsewhere:
        other = elsewhere[0]
        summary += f" A lanchat server is listening on port {other.port} ({other.describe()})."
        fixes.insert(
            0,
            Fix(
                f"Check that one instead: lanchat doctor --port {other.port}",
                (f"lanchat doctor --port {other.port}",),
            ),
        )
    return CheckResult(
        "server.bind",
        TITLE,
        "warn",
        summary,
        tuple(evidence),
        tuple(fixes),
        {"running": False, "scope": "none", "port": port, "elsewhere": [r.port for r in elsewhere]},
    )


def _other_port(port: int) -> int:
    return port + 1 if port < 65535 else port - 1


def _running(
    document: dict[str, Any], port: int, lan: LanFacts | None, evidence: list[str]
) -> CheckResult:
    server = document.get("server") or {}
    host = str(server.get("host", ""))
    pid = server.get("pid")
    facts = {
        "running": True,
        "host": host,
        "pid": pid,
        "port": port,
        "room": server.get("room"),
        "lanchat": server.get("lanchat"),
    }
    who = f"lanchat {server.get('lanchat', '?')} (pid {pid}, room {server.get('room')!r})"
    evidence.insert(0, f"the relay answered a status query: {who}, bound to {host or '*'}")
    if host in EVERYWHERE:
        scope = "every IPv4 and IPv6 network" if host in ("", "::", "*") else "every IPv4 network"
        return CheckResult(
            "server.bind",
            TITLE,
            "pass",
            f"{who} listens on {scope} ({host_port(host or '*', port)}).",
            tuple(evidence),
            facts={**facts, "scope": "all"},
        )
    if _is_loopback(host):
        return CheckResult(
            "server.bind",
            TITLE,
            "fail",
            f"{who} listens on {host} only: it works on this PC, but every other PC is refused.",
            tuple(evidence),
            (
                Fix(
                    "Stop that server (Ctrl-C in its window) and start it again without "
                    "--host, so it listens on every network:",
                    (f"lanchat serve --port {port}",),
                ),
            ),
            {**facts, "scope": "loopback"},
        )
    if lan is not None and host.split("%", maxsplit=1)[0] in (lan.address, lan.address6):
        return CheckResult(
            "server.bind",
            TITLE,
            "pass",
            f"{who} listens on this PC's LAN address {host_port(host, port)}.",
            tuple(evidence),
            facts={**facts, "scope": "lan"},
        )
    lan_text = f"the LAN address {lan.address}" if lan else "a LAN address"
    return CheckResult(
        "server.bind",
        TITLE,
        "warn",
        f"{who} listens on {host} only, not on {lan_text}: PCs that reach this one through "
        "another network are refused.",
        tuple(evidence),
        (
            Fix(
                "If others should join through the LAN, restart the server without --host:",
                (f"lanchat serve --port {port}",),
            ),
        ),
        {**facts, "scope": "other"},
    )


def _taken(listeners: list[Listener], port: int, platform: str, evidence: list[str]) -> CheckResult:
    owner = listeners[0]
    named = owner.pid is not None or owner.program is not None
    fixes: list[Fix] = []
    if named:
        stop = {
            "windows": f"Stop-Process -Id {owner.pid}",
            "linux": f"kill {owner.pid}",
            "darwin": f"kill {owner.pid}",
        }.get(platform)
        fixes.append(
            Fix(
                f"Stop {owner.describe()} if you do not need it"
                + (":" if stop and owner.pid else "."),
                (stop,) if stop and owner.pid else (),
            )
        )
    else:
        fixes.append(find_owner_fix(port, platform))
    fixes.append(
        Fix(
            "Or run lanchat on another port (and tell the others that port):",
            (f"lanchat serve --port {_other_port(port)}",),
        )
    )
    return CheckResult(
        "server.bind",
        TITLE,
        "fail",
        f"Port {port} is already used by {owner.describe()}, which is not a lanchat server, so "
        "lanchat cannot listen there (and clients reach that program instead).",
        tuple(evidence),
        tuple(fixes),
        {
            "running": False,
            "scope": "taken",
            "port": port,
            "owner": owner.to_dict(),
        },
    )
