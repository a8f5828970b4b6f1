"""run_doctor over fake probes: every check of each mode in order, the report's JSON and its
text, and the mDNS checks running beside the others."""

from __future__ import annotations

import io
import json
import threading
from collections.abc import Sequence

from doctor_fakes import (
    LAB_ADDRESSES,
    WIFI,
    FakeMdns,
    FakeProbe,
    linux_commands,
    natpmp,
    relay_document,
)
from rich.console import Console

from lanchat.doctor.probe.interface import (
    ConnectResult,
    HandshakeResult,
    Listener,
    MdnsBrowse,
    MdnsNeighbours,
    MdnsSelf,
    MdnsService,
    PageResult,
)
from lanchat.doctor.run import DoctorOptions, run_doctor
from lanchat.output.doctor import doctor_view

PORT = 7000
PAGE = PageResult(200, "HTTP 200 OK", "text/html; charset=utf-8", csp=True, size=1200)


def full_probe(case: str = "nft-drop-port") -> FakeProbe:
    return FakeProbe(
        commands=linux_commands(case),
        listeners=[Listener("::", PORT, 4711, "lanchat")],
        relay={"::1": relay_document("::", PORT)},
        exes={4711: "/usr/bin/python3"},
        page=PAGE,
    )


def test_a_server_run_has_every_check_in_order_and_the_answer() -> None:
    report = run_doctor(DoctorOptions(PORT), full_probe(), FakeMdns())
    assert [c.id for c in report.checks] == [
        "server.bind",
        "web.page",
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
    assert data["checks"][5]["fixes"][0]["needs_admin"] is True


def test_after_the_printed_fix_the_answer_says_the_rule_in_place_lets_it_in() -> None:
    """nft-subnet is nft-drop-port with the printed fix in place (a default drop, and the
    accept rule for the subnet): the rule is what lets the port in, not something unneeded."""
    fixed = run_doctor(DoctorOptions(PORT), full_probe("nft-subnet"), FakeMdns())
    assert fixed.check("firewall.tcp").status == "pass"  # type: ignore[union-attr]
    assert fixed.answer.firewall_rule == (
        "In place: the firewall (nftables) lets TCP 7000 in with the rules "
        "`ip saddr 10.213.0.0/24 tcp dport 7000 accept` and "
        "`ip6 saddr fd00:213::/64 tcp dport 7000 accept`; keep them (a rule added with nft "
        "is lost at reboot unless saved)."
    )
    assert "No firewall rule" not in fixed.answer.verdict
    assert fixed.answer.verdict.endswith(
        "The firewall rule in place lets them in; no port forwarding needed."
    )
    # Only a firewall that lets everything in by default means no rule is needed.
    open_ = run_doctor(DoctorOptions(PORT), full_probe("nft-udp-mdns-drop"), FakeMdns())
    assert open_.answer.firewall_rule == (
        "Not needed: the firewall (nftables) lets new connections in by default (no rule "
        "decided, so the chain policy accept applies)."
    )
    assert open_.answer.verdict.endswith("No firewall rule and no port forwarding needed.")


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
        page=PAGE,
    )
    report = run_doctor(DoctorOptions(PORT, host="10.213.0.1"), probe, FakeMdns())
    assert [c.id for c in report.checks] == [
        "peer.resolve",
        "peer.network",
        "peer.tcp",
        "peer.lanchat",
        "web.page",
        "peer.mdns",
    ]
    assert report.target == "10.213.0.1:7000" and not report.failed
    assert probe.fetched == [("10.213.0.1", PORT)]
    assert report.answer.verdict.startswith("Yes")


def test_a_client_run_on_the_server_pc_itself_advises_the_next_step_not_itself() -> None:
    """`lanchat doctor 127.0.0.1:PORT` on the server PC: loopback proves nothing about other
    PCs, so the advice is the server-mode doctor here and this PC's LAN address for the others,
    never the command just run."""
    probe = FakeProbe(
        connect=ConnectResult("connected", "127.0.0.1", PORT, 0.001, source="127.0.0.1"),
        handshake=HandshakeResult(
            "lanchat", "lanchat 0.1.0 answered the handshake", "lanchat 0.1.0", "lobby"
        ),
        addresses=LAB_ADDRESSES,
    )
    report = run_doctor(DoctorOptions(PORT, host="127.0.0.1"), probe, FakeMdns())
    network = report.check("peer.network")
    assert network is not None and network.status == "warn"
    commands = [c for fix in network.fixes for c in fix.commands]
    assert commands == [f"lanchat doctor --port {PORT}", f"lanchat doctor 10.213.0.1:{PORT}"]
    assert [fix.run_on for fix in network.fixes] == ["this PC", "the other PCs"]
    answer = report.answer
    everything = json.dumps(report.to_dict())
    assert f"lanchat doctor 127.0.0.1:{PORT}" not in everything
    assert answer.firewall_rule.startswith("Not tested from this PC")
    assert f"Check this PC as the server: lanchat doctor --port {PORT}" in answer.next_steps
    assert any(f"lanchat doctor 10.213.0.1:{PORT}" in step for step in answer.next_steps)


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
    assert lines[-1].startswith("11 checks: ") and "Exit code 3" in lines[-1]


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
