"""The answer block (computed from check results), the fix texts, NAT-PMP and the gateway, the
report's data and its rendering, and a whole run over fake probes."""

from __future__ import annotations

import io
import json
import shlex
import struct
import threading
from collections.abc import Sequence

import pytest
from doctor_fakes import WIFI, FakeMdns, FakeProbe, linux_commands, relay_document
from rich.console import Console

from lanchat.doctor.answer import client_answer, server_answer
from lanchat.doctor.checks.nat import (
    NATPMP_REQUEST,
    check_router,
    check_wan,
    classify_wan,
    default_gateway,
    parse_natpmp,
    parse_proc_net_route,
)
from lanchat.doctor.firewall import fixes
from lanchat.doctor.firewall.linux import fixes as linux_fixes
from lanchat.doctor.firewall.windows import fixes as windows_fixes
from lanchat.doctor.probe.interface import (
    ConnectResult,
    HandshakeResult,
    Listener,
    MdnsBrowse,
    MdnsNeighbours,
    MdnsSelf,
    MdnsService,
)
from lanchat.doctor.result import CheckResult, Fix
from lanchat.doctor.run import DoctorOptions, run_doctor
from lanchat.output.doctor import doctor_view

PORT = 7000


def check(check_id: str, status: str, summary: str = "words", **facts: object) -> CheckResult:
    return CheckResult(check_id, check_id, status, summary, facts=dict(facts))  # type: ignore[arg-type]


def server_checks(tcp: CheckResult, **extra: CheckResult) -> list[CheckResult]:
    base = {
        "server.bind": check("server.bind", "pass", "listens everywhere", running=True),
        "lan.address": check(
            "lan.address",
            "pass",
            address="10.213.0.1",
            join="lanchat join 10.213.0.1:7000",
        ),
        "env.virtualized": check("env.virtualized", "pass"),
        "firewall.tcp": tcp,
        "firewall.mdns": check("firewall.mdns", "pass"),
    }
    base.update(extra)
    return list(base.values())


# ---- the answer block ----------------------------------------------------------------------


def test_all_clear_no_rule_no_forwarding_and_the_join_line() -> None:
    answer = server_answer(server_checks(check("firewall.tcp", "pass", frontend="none")), PORT)
    assert answer.verdict == (
        "Yes: other PCs on this network can join with `lanchat join 10.213.0.1:7000`. "
        "No firewall rule and no port forwarding needed."
    )
    assert (
        answer.firewall_rule == "Not needed: no firewall filters incoming connections on this PC."
    )
    assert answer.port_forwarding.startswith("Not needed for people on this network")
    assert "Tell the others on this network: lanchat join 10.213.0.1:7000" in answer.next_steps
    assert any("lanchat doctor 10.213.0.1:7000" in s for s in answer.next_steps)


def test_a_firewall_that_already_allows_is_named() -> None:
    answer = server_answer(server_checks(check("firewall.tcp", "pass", frontend="ufw")), PORT)
    assert answer.firewall_rule == "Not needed: the firewall (ufw) already lets the port in."


def test_a_blocking_firewall_makes_the_rule_needed_with_its_command() -> None:
    tcp = CheckResult(
        "firewall.tcp",
        "t",
        "fail",
        "The firewall (ufw) blocks new TCP connections to port 7000: it drops IPv4",
        fixes=(linux_fixes.ufw_allow(PORT, "tcp", ["10.213.0.0/24"]),),
    )
    answer = server_answer(server_checks(tcp), PORT)
    assert answer.verdict.startswith("Not yet: firewall.tcp (The firewall (ufw) blocks")
    assert answer.firewall_rule == (
        "Needed on this PC, as administrator (firewall.tcp above): `sudo ufw allow from "
        "10.213.0.0/24 to any port 7000 proto tcp comment 'lanchat'`"
    )
    assert answer.port_forwarding.startswith("Not needed")
    assert [line.status for line in answer.lan].count("fail") == 1


def test_an_app_block_rule_is_the_rule_to_fix_first() -> None:
    app = CheckResult(
        "firewall.app-block",
        "a",
        "fail",
        "blocked",
        fixes=(windows_fixes.windows_remove_program_block("C:\\Python312\\python.exe"),),
    )
    tcp = check("firewall.tcp", "fail", "blocked")
    answer = server_answer(server_checks(tcp, **{"firewall.app-block": app}), PORT)
    assert "(firewall.app-block above)" in answer.firewall_rule
    assert "Remove-NetFirewallRule" in answer.firewall_rule


def test_unknown_firewall_says_how_to_find_out() -> None:
    tcp = CheckResult(
        "firewall.tcp",
        "t",
        "unknown",
        "Cannot tell whether TCP 7000 gets in: reading the firewall rules needs root.",
        fixes=(fixes.rerun_as_admin("lanchat doctor --port 7000", "linux"),),
    )
    answer = server_answer(server_checks(tcp), PORT)
    assert answer.verdict.startswith("Probably, but the firewall could not be checked")
    assert answer.firewall_rule.startswith("Unknown: Cannot tell")
    assert "`sudo lanchat doctor --port 7000`" in answer.firewall_rule


def test_no_server_yet() -> None:
    bind = check("server.bind", "warn", "No lanchat server", running=False)
    answer = server_answer(
        server_checks(check("firewall.tcp", "pass"), **{"server.bind": bind}), PORT
    )
    assert "start it with `lanchat serve --port 7000`" in answer.verdict
    assert "Then tell the others on this network: lanchat join 10.213.0.1:7000" in answer.next_steps


def test_internet_lines_without_and_with_the_router_check() -> None:
    checks = server_checks(check("firewall.tcp", "pass", frontend="none"))
    answer = server_answer(checks, PORT)
    assert "port forwarding TCP 7000 -> 10.213.0.1:7000" in answer.internet[0].text
    assert answer.internet[1].status == "unknown" and "--internet" in answer.internet[1].text
    cgnat = check_wan("100.77.1.2", PORT, "10.213.0.1")
    answer = server_answer([*checks, cgnat], PORT)
    assert answer.internet[1].status == "fail" and "carrier-grade NAT" in answer.internet[1].text
    assert "no passwords and no encryption" in answer.alternatives[0]
    assert "Tailscale or ZeroTier" in answer.alternatives[1]
    assert "ssh -L 7000:localhost:7000" in answer.alternatives[2]


@pytest.mark.parametrize(
    ("outcome", "hello", "verdict", "rule"),
    [
        ("connected", "pass", "Yes: `lanchat join 10.213.0.1:7000` works", "Not needed"),
        ("timeout", None, "No: the connection gets no answer", "Probably needed on the server PC"),
        ("refused", None, "No: the server PC refuses the connection", "Maybe: a reject rule"),
        ("connected", "fail", "The connection gets through, but", "Not the problem"),
        ("prohibited", None, "No: a firewall rejects the connection", "Probably needed on the"),
        ("host-unreachable", None, "No: ", "Maybe: a firewall that rejects"),
    ],
)
def test_client_answers(outcome: str, hello: str | None, verdict: str, rule: str) -> None:
    checks = [
        check("peer.resolve", "pass"),
        check("peer.network", "pass", relation="on-link"),
        check("peer.tcp", "pass" if outcome == "connected" else "fail", outcome=outcome),
    ]
    if hello:
        checks.append(check("peer.lanchat", hello, "something else answered"))
    answer = client_answer(checks, "10.213.0.1:7000", PORT)
    assert answer.verdict.startswith(verdict)
    assert answer.firewall_rule.startswith(rule)
    assert answer.port_forwarding.startswith("Not needed")


def test_client_off_link_forwarding_explained() -> None:
    checks = [
        check("peer.network", "warn", relation="off-link"),
        check("peer.tcp", "fail", outcome="timeout"),
    ]
    answer = client_answer(checks, "192.168.5.5:7000", PORT)
    assert "another network" in answer.port_forwarding


# ---- fix texts -----------------------------------------------------------------------------


def test_fix_commands_have_the_real_values_filled_in() -> None:
    assert linux_fixes.firewalld_open(7000, "tcp", "home").commands == (
        "sudo firewall-cmd --zone=home --add-port=7000/tcp",
        "sudo firewall-cmd --permanent --zone=home --add-port=7000/tcp",
    )
    assert linux_fixes.firewalld_mdns("public").commands[1] == (
        "sudo firewall-cmd --permanent --zone=public --add-service=mdns"
    )
    assert linux_fixes.nft_accept(
        "nft table ip filter chain INPUT", "ip", "wlan0", "192.168.1.0/24", 7420, "tcp"
    ) == (
        "sudo nft insert rule ip filter INPUT iifname wlan0 ip saddr 192.168.1.0/24 "
        "tcp dport 7420 accept"
    )
    assert linux_fixes.iptables_accept(
        "ip6tables mangle/INPUT", "eth0", "fe80::/64", 7420, "tcp"
    ) == ("sudo ip6tables -t mangle -I INPUT -i eth0 -p tcp -s fe80::/64 --dport 7420 -j ACCEPT")
    assert linux_fixes.nft_accept("iptables filter/INPUT", "ip", "eth0", None, 1, "tcp") is None
    windows = windows_fixes.windows_allow_port(7420, "tcp", "Private").commands
    assert windows[1] == (
        'netsh advfirewall firewall add rule name="lanchat 7420" dir=in action=allow '
        "protocol=TCP localport=7420 profile=private remoteip=localsubnet"
    )
    assert windows_fixes.windows_make_private("Home", "Wi-Fi", 12).commands == (
        "Set-NetConnectionProfile -InterfaceIndex 12 -NetworkCategory Private",
    )
    assert (
        "Do not do this on cafe or hotel Wi-Fi"
        in windows_fixes.windows_make_private("x", "y", 1).text
    )


def test_odd_interface_names_are_quoted_for_the_shell() -> None:
    command = linux_fixes.nft_accept(
        "nft table inet filter chain input", "ip", "Wi Fi", None, 7, "tcp"
    )
    assert command is not None
    assert shlex.split(command)[7:9] == ["iifname", "Wi Fi"]


def test_rerun_is_never_a_bare_sudo() -> None:
    fix = fixes.rerun_as_admin("lanchat doctor", "linux")
    assert fix.commands == ("sudo lanchat doctor",) and fix.needs_admin
    assert fixes.rerun_as_admin("lanchat doctor", "windows").commands == ("lanchat doctor",)


def test_fix_rejects_an_unknown_place() -> None:
    with pytest.raises(ValueError, match="run_on"):
        Fix("x", run_on="the moon")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="status"):
        CheckResult("x", "x", "maybe", "x")  # type: ignore[arg-type]


# ---- NAT-PMP, gateway, WAN class -----------------------------------------------------------


def natpmp(result: int, address: str, version: int = 0, opcode: int = 128) -> bytes:
    return struct.pack("!BBHI", version, opcode, result, 4242) + bytes(
        int(x) for x in address.split(".")
    )


def test_parse_natpmp() -> None:
    answer = parse_natpmp(natpmp(0, "81.2.69.142"))
    assert not isinstance(answer, str)
    assert (answer.result, answer.epoch, answer.external) == (0, 4242, "81.2.69.142")
    assert "too short" in str(parse_natpmp(b"\x00\x80"))
    assert "PCP" in str(parse_natpmp(natpmp(0, "1.2.3.4", version=2)))
    assert "opcode" in str(parse_natpmp(natpmp(0, "1.2.3.4", opcode=129)))
    assert NATPMP_REQUEST == b"\x00\x00"


def test_proc_net_route_default_gateway() -> None:
    text = (
        "Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT\n"
        "eth0\t00000000\t010200C0\t0003\t0\t0\t100\t00000000\t0\t0\t0\n"
        "wlan0\t00000000\t0101A8C0\t0003\t0\t0\t600\t00000000\t0\t0\t0\n"
        "eth0\t000200C0\t00000000\t0001\t0\t0\t0\t00FFFFFF\t0\t0\t0\n"
    )
    assert parse_proc_net_route(text) == "192.0.2.1"
    assert parse_proc_net_route(text.splitlines()[0] + "\ngarbage\n") is None
    scope_link = "Iface\tDestination\tGateway\n eth0\t00000000\t00000000\t0001\t0\t0\t0\t0\n"
    assert parse_proc_net_route(scope_link) is None  # `default dev eth0`: no gateway


def test_gateway_per_os() -> None:
    from lanchat.doctor.probe.interface import CommandOutput

    mac = FakeProbe(
        "darwin", commands={"route": CommandOutput("   route to: default\ngateway: 192.168.1.1\n")}
    )
    assert default_gateway(mac) == "192.168.1.1"
    win = FakeProbe("windows", commands={"powershell": CommandOutput("192.168.0.1\r\n")})
    assert default_gateway(win) == "192.168.0.1"
    assert (
        default_gateway(FakeProbe("windows", commands={"powershell": CommandOutput("oops")}))
        is None
    )


@pytest.mark.parametrize(
    ("address", "kind"),
    [
        ("81.2.69.142", "public"),
        ("100.64.0.1", "cgnat"),
        ("100.127.255.254", "cgnat"),
        ("192.168.0.2", "private"),
        ("10.1.1.1", "private"),
        ("172.16.9.9", "private"),
        ("not an address", "unknown"),
    ],
)
def test_classify_wan(address: str, kind: str) -> None:
    assert classify_wan(address) == kind


def test_router_check_asks_the_gateway_only() -> None:
    probe = FakeProbe(udp=natpmp(0, "100.77.1.2"))
    result, external = check_router(probe, "10.213.0.1")
    assert probe.sent == [("10.213.0.1", 5351, b"\x00\x00")]
    assert result.status == "pass" and external == "100.77.1.2"
    silent, none = check_router(FakeProbe(udp=None), "10.213.0.1")
    assert silent.status == "unknown" and none is None
    assert "http://10.213.0.1" in silent.fixes[0].text and silent.fixes[0].run_on == "the router"
    refused, _ = check_router(FakeProbe(udp=natpmp(2, "0.0.0.0")), "10.213.0.1")
    assert refused.status == "unknown" and "switched off" in refused.summary


@pytest.mark.parametrize(
    ("external", "status", "words"),
    [
        ("100.77.1.2", "fail", "port forwarding on your router cannot make lanchat reachable"),
        ("192.168.1.2", "warn", "double NAT"),
        ("81.2.69.142", "pass", "forwarding TCP 7000 on the router to 10.213.0.1:7000"),
        (None, "unknown", "unknown"),
    ],
)
def test_wan_verdicts(external: str | None, status: str, words: str) -> None:
    result = check_wan(external, PORT, "10.213.0.1")
    assert result.status == status and words in result.summary


# ---- a whole run over fakes, its JSON and its text ------------------------------------------


def full_probe(case: str = "nft-drop-port") -> FakeProbe:
    return FakeProbe(
        commands=linux_commands(case),
        listeners=[Listener("::", PORT, 4711, "lanchat")],
        relay={"::1": relay_document("::", PORT)},
        exes={4711: "/usr/bin/python3"},
    )


def test_a_server_run_has_every_check_in_order_and_the_answer() -> None:
    report = run_doctor(DoctorOptions(PORT), full_probe(), FakeMdns())
    assert [c.id for c in report.checks] == [
        "server.bind",
        "lan.address",
        "env.virtualized",
        "firewall.detect",
        "firewall.tcp",
        "firewall.app-block",
        "windows.profile",
        "firewall.mdns",
        "mdns.self",
        "mdns.neighbours",
    ]
    assert report.failed and report.check("firewall.tcp").status == "fail"  # type: ignore[union-attr]
    data = json.loads(json.dumps(report.to_dict()))
    assert data["mode"] == "server" and data["failed"] is True
    assert data["counts"]["fail"] == 1
    assert data["answer"]["firewall_rule"].startswith("Needed on this PC")
    assert data["checks"][4]["fixes"][0]["needs_admin"] is True


def test_the_internet_checks_run_only_when_asked() -> None:
    probe = full_probe("empty")
    probe.files["/proc/net/route"] = (
        "Iface\tDestination\tGateway\tFlags\tRefCnt\tUse\tMetric\tMask\n"
        "eth0\t00000000\t01D50D0A\t0003\t0\t0\t0\t00000000\n"
    )
    probe.udp = natpmp(0, "192.168.178.20")
    quiet = run_doctor(DoctorOptions(PORT), probe, FakeMdns())
    assert probe.sent == [] and quiet.check("nat.gateway") is None
    report = run_doctor(DoctorOptions(PORT, internet=True), probe, FakeMdns())
    assert probe.sent == [("10.13.213.1", 5351, b"\x00\x00")]
    assert [c.status for c in report.checks[-3:]] == ["pass", "pass", "warn"]


def test_a_client_run() -> None:
    probe = FakeProbe(
        connect=ConnectResult("connected", "10.213.0.1", PORT, 0.001, source="10.213.0.2"),
        handshake=HandshakeResult(
            "lanchat", "lanchat 0.1.0 answered the handshake", "lanchat 0.1.0", "lobby"
        ),
        addresses=[WIFI],
    )
    report = run_doctor(DoctorOptions(PORT, host="10.213.0.1"), probe, FakeMdns())
    assert [c.id for c in report.checks] == [
        "peer.resolve",
        "peer.network",
        "peer.tcp",
        "peer.lanchat",
        "peer.mdns",
    ]
    assert report.target == "10.213.0.1:7000" and not report.failed
    assert report.answer.verdict.startswith("Yes")


def render(report_probe: FakeProbe, unicode: bool = True) -> str:
    report = run_doctor(DoctorOptions(PORT), report_probe, FakeMdns())
    console = Console(width=200, record=True, no_color=True, file=io.StringIO())
    console.print(doctor_view(report, unicode=unicode))
    return console.export_text()


def test_the_text_shows_marks_details_fixes_and_the_answer_last() -> None:
    text = render(full_probe())
    lines = text.splitlines()
    assert lines[0].startswith("lanchat doctor - this PC as a lanchat server on port 7000")
    tcp = next(i for i, line in enumerate(lines) if line.startswith("[✗] firewall.tcp"))
    below = "\n".join(lines[tcp : tcp + 12])
    assert "Fix (run on this PC, needs sudo):" in below
    assert "sudo nft insert rule inet filter input iifname eth0" in below
    assert any(line.startswith("[✓] server.bind") for line in lines)
    assert any(line.startswith("[·] windows.profile") for line in lines)
    answer = next(i for i, line in enumerate(lines) if line.startswith("Answer:"))
    assert answer > tcp
    assert "Port forwarding: Not needed" in text
    assert lines[-1].startswith("10 checks: ") and "Exit code 3" in lines[-1]


def test_ascii_marks_for_terminals_without_unicode() -> None:
    text = render(full_probe(), unicode=False)
    assert "[x] firewall.tcp" in text and "[+] server.bind" in text and "✓" not in text


class MeetingMdns(FakeMdns):
    """mdns.self only succeeds if mdns.neighbours is running at the same time."""

    def __init__(self) -> None:
        super().__init__()
        self.met = threading.Event()

    def see_self(self, address: str, timeout: float) -> MdnsSelf:
        seen = self.met.wait(timeout)
        return MdnsSelf(seen, 0.1 if seen else None, error=None if seen else "alone")

    def neighbours(self, own: Sequence[str], timeout: float) -> MdnsNeighbours:
        self.met.set()
        return super().neighbours(own, timeout)


def test_mdns_checks_run_beside_each_other_to_fit_the_time_budget() -> None:
    report = run_doctor(DoctorOptions(PORT), full_probe("empty"), MeetingMdns())
    assert report.check("mdns.self").status == "pass"  # type: ignore[union-attr]
    assert report.check("mdns.neighbours").status == "pass"  # type: ignore[union-attr]


def test_peer_mdns_browses_while_the_connection_is_tested() -> None:
    reached = threading.Event()

    class Probe(FakeProbe):
        def reach(
            self, address: str, port: int, timeout: float
        ) -> tuple[ConnectResult, HandshakeResult | None]:
            reached.set()
            return super().reach(address, port, timeout)

    class Mdns(FakeMdns):
        def browse_lanchat(self, timeout: float) -> MdnsBrowse:
            assert reached.wait(timeout), "browsing waited for the connection test"
            return MdnsBrowse((MdnsService("h1", ("10.213.0.1",), PORT),))

    probe = Probe(connect=ConnectResult("refused", "10.213.0.1", PORT, 0.001), addresses=[WIFI])
    report = run_doctor(DoctorOptions(PORT, host="10.213.0.1"), probe, Mdns())
    assert report.check("peer.mdns").status == "pass"  # type: ignore[union-attr]
