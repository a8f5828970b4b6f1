"""Fakes for the doctor's probes (lanchat.doctor.probe.interface): recorded command output, files,
addresses and socket outcomes, so every check runs on Linux CI for every OS."""

from __future__ import annotations

import struct
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from linux_fixtures import command

from lanchat.doctor.firewall.macos.parse import SOCKETFILTERFW
from lanchat.doctor.probe.interface import (
    CommandOutput,
    ConnectResult,
    HandshakeResult,
    Listener,
    MdnsBrowse,
    MdnsNeighbours,
    MdnsSelf,
    PageResult,
    Resolved,
)
from lanchat.netinfo import LocalAddress

FIXTURES = Path(__file__).parent / "fixtures"
LAN_V4 = LocalAddress("10.213.0.1", "eth0", 4, "255.255.255.0", True, ())
LAN_V6 = LocalAddress("fd00:213::1", "eth0", 6, "ffff:ffff:ffff:ffff::", False, ())
LOOPBACK = LocalAddress("127.0.0.1", "lo", 4, "255.0.0.0", False, ("loopback",))
LAB_ADDRESSES = [LAN_V4, LAN_V6, LOOPBACK]
WIFI = LocalAddress("192.168.1.23", "Wi-Fi", 4, "255.255.255.0", True, ())
WINDOWS_EXE = "C:\\Users\\ana\\AppData\\Local\\Programs\\Python\\Python312\\python.exe"
MAC_EXE = (
    "/Library/Frameworks/Python.framework/Versions/3.12/Resources/Python.app/Contents/MacOS/Python"
)
OK = CommandOutput("", "", 0)


class FakeProbe:
    """A Probe whose every answer is given in advance; it records the commands it was asked."""

    def __init__(
        self,
        platform: str = "linux",
        *,
        commands: dict[Any, CommandOutput | None] | None = None,
        files: dict[str, str] | None = None,
        addresses: Sequence[LocalAddress] = LAB_ADDRESSES,
        listeners: list[Listener] | None = None,
        socket_table: bool = True,  # False: the listening sockets cannot be read (macOS, no root)
        relay: dict[str, dict[str, Any] | str] | None = None,
        bind_error: str | None = None,
        exes: dict[int, str] | None = None,
        lanchat: Sequence[Listener] = (),
        resolved: Resolved | None = None,
        connect: ConnectResult | None = None,
        handshake: HandshakeResult | None = None,
        udp: bytes | None = None,
        page: PageResult | None = None,
    ) -> None:
        self.platform = platform
        self.commands = commands or {}
        self.files = files or {}
        self._addresses = list(addresses)
        self._listeners = (listeners or []) if socket_table else None
        self.relay = relay or {}
        self.bind_error = bind_error
        self.exes = exes or {}
        self._lanchat = list(lanchat)
        self.resolved = resolved
        self.connected = connect
        self.hello = handshake
        self.udp = udp
        self.page = page  # what GET / answers (PageResult); None: no page asked for
        self.fetched: list[tuple[str, int]] = []
        self.ran: list[tuple[str, ...]] = []
        self.asked: list[tuple[str, int]] = []
        self.sent: list[tuple[str, int, bytes]] = []
        self.clock = 100.0

    def run(self, argv: Sequence[str], timeout: float) -> CommandOutput | None:
        assert 0 < timeout <= 5, "every command runs with a short timeout"
        self.ran.append(tuple(argv))
        key = tuple(argv)
        if key in self.commands:
            return self.commands[key]
        return self.commands.get(argv[0])

    def read_text(self, path: str) -> str | None:
        return self.files.get(path)

    def addresses(self) -> list[LocalAddress]:
        return list(self._addresses)

    def listeners(self, port: int) -> list[Listener] | None:
        if self._listeners is None:
            return None
        return [row for row in self._listeners if row.port == port]

    def lanchat_listeners(self) -> list[Listener]:
        return list(self._lanchat)

    def ask_relay(self, host: str, port: int, timeout: float) -> dict[str, Any] | str:
        assert timeout <= 2
        self.asked.append((host, port))
        return self.relay.get(host, "[Errno 111] Connection refused")

    def try_bind(self, port: int) -> str | None:
        return self.bind_error

    def process_exe(self, pid: int) -> str | None:
        return self.exes.get(pid)

    def resolve(self, host: str, port: int) -> Resolved:
        return self.resolved or Resolved((host,))

    def fetch_page(self, address: str, port: int, timeout: float) -> PageResult:
        assert timeout <= 2
        self.fetched.append((address, port))
        return self.page or PageResult(None, "no HTTP answer: [Errno 111] Connection refused")

    def reach(
        self, address: str, port: int, timeout: float
    ) -> tuple[ConnectResult, HandshakeResult | None]:
        assert self.connected is not None
        hello = self.hello if self.connected.outcome == "connected" else None
        return self.connected, hello

    def udp_request(
        self, address: str, port: int, payload: bytes, timeouts: Sequence[float]
    ) -> bytes | None:
        assert sum(timeouts) <= 3
        self.sent.append((address, port, payload))
        return self.udp

    def monotonic(self) -> float:
        self.clock += 0.01
        return self.clock


class FakeMdns:
    """An MdnsProbe with canned answers."""

    def __init__(
        self,
        *,
        self_seen: MdnsSelf | None = None,
        neighbours: MdnsNeighbours | None = None,
        browse: MdnsBrowse | None = None,
    ) -> None:
        self.self_seen = self_seen or MdnsSelf(True, 0.12, "doctor-test._lanchat._tcp.local.")
        self.heard = neighbours or MdnsNeighbours(("10.213.0.7",), 2.5)
        self.browsed = browse or MdnsBrowse()
        self.timeouts: list[float] = []

    def unavailable(self) -> str | None:
        return None

    def see_self(self, address: str, timeout: float) -> MdnsSelf:
        self.timeouts.append(timeout)
        return self.self_seen

    def neighbours(self, own: Sequence[str], timeout: float) -> MdnsNeighbours:
        self.timeouts.append(timeout)
        return self.heard

    def browse_lanchat(self, timeout: float) -> MdnsBrowse:
        self.timeouts.append(timeout)
        return self.browsed


def relay_document(host: str = "::", port: int = 7000, pid: int = 4711) -> dict[str, Any]:
    """The part of a relay's status document the doctor reads."""
    return {
        "type": "status",
        "server": {"pid": pid, "lanchat": "0.1.0", "room": "lobby", "host": host, "port": port},
    }


def linux_commands(case: str, *, backend: str = "nf_tables") -> dict[Any, CommandOutput | None]:
    """The commands the Linux firewall checks run, answered from a recorded fixture case."""
    return {
        "nft": command(case, "nft.json"),
        "iptables-save": command(case, "iptables-save.txt"),
        "ip6tables-save": command(case, "ip6tables-save.txt"),
        "iptables-legacy-save": command(case, "iptables-legacy-save.txt"),
        "ip6tables-legacy-save": command(case, "ip6tables-legacy-save.txt"),
        ("iptables", "-V"): CommandOutput(f"iptables v1.8.9 ({backend})\n"),
        "systemctl": CommandOutput("inactive\ninactive\ninactive\n", "", 3),
    }


def windows_commands(fixture: str) -> dict[Any, CommandOutput | None]:
    """The one PowerShell call, answered with a recorded document."""
    text = (FIXTURES / "windows" / f"{fixture}.json").read_text()
    return {"powershell": CommandOutput(text)}


def macos_commands(scenario: str) -> dict[Any, CommandOutput | None]:
    """Each socketfilterfw getter and pfctl, answered from a scenario folder."""
    folder = FIXTURES / "macos" / scenario

    def out(name: str) -> CommandOutput | None:
        path = folder / name
        if not path.exists():
            return None
        stderr = folder / f"{name}.stderr"
        rc = folder / f"{name}.rc"
        return CommandOutput(
            path.read_text(),
            stderr.read_text() if stderr.exists() else "",
            int(rc.read_text()) if rc.exists() else 0,
        )

    commands: dict[Any, CommandOutput | None] = {
        (SOCKETFILTERFW, f"--get{name}"): out(f"{name}.txt")
        for name in ("globalstate", "blockall", "stealthmode", "allowsigned")
    }
    commands[(SOCKETFILTERFW, "--listapps")] = out("listapps.txt")
    commands[(SOCKETFILTERFW, "--getappblocked", MAC_EXE)] = out("appblocked.txt") or OK
    commands[("pfctl", "-s", "info")] = out("pfctl-info.txt")
    return commands


def natpmp(result: int, address: str, version: int = 0, opcode: int = 128) -> bytes:
    """A NAT-PMP answer to "what is your external address" (RFC 6886, opcode 128)."""
    return struct.pack("!BBHI", version, opcode, result, 4242) + bytes(
        int(x) for x in address.split(".")
    )
