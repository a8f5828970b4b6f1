"""The firewall checks (firewall.detect/tcp/mdns/app-block, windows.profile) over fake probes that
answer with the recorded Linux, Windows and macOS outputs under tests/fixtures."""

from __future__ import annotations

from typing import Any

import pytest
from doctor_fakes import (
    MAC_EXE,
    WIFI,
    WINDOWS_EXE,
    FakeProbe,
    linux_commands,
    macos_commands,
    windows_commands,
)

from lanchat.doctor.checks.firewall import firewall_checks
from lanchat.doctor.checks.lan import choose_lan
from lanchat.doctor.context import ServerContext
from lanchat.doctor.probe.interface import CommandOutput
from lanchat.doctor.result import CheckResult

PORT = 7000


def run(probe: FakeProbe, port: int = PORT, exe: str | None = None) -> dict[str, CheckResult]:
    ctx = ServerContext(port, choose_lan(probe.addresses()), exe, "lanchat doctor --port 7000")
    results = firewall_checks(probe, ctx)
    assert [r.id for r in results] == [
        "firewall.detect",
        "firewall.tcp",
        "firewall.app-block",
        "windows.profile",
        "firewall.mdns",
    ]
    return {r.id: r for r in results}


def commands_of(result: CheckResult) -> list[str]:
    return [c for fix in result.fixes for c in fix.commands]


# ---- Linux -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("case", "port", "detect", "tcp", "mdns"),
    [
        ("empty", PORT, "pass", "pass", "pass"),
        ("nft-drop-port", PORT, "pass", "fail", "pass"),
        ("nft-reject-port", PORT, "pass", "fail", "warn"),
        ("nft-subnet", PORT, "pass", "pass", "warn"),
        ("nft-udp-mdns-drop", PORT, "pass", "pass", "warn"),
        ("ufw-stock", PORT, "pass", "pass", "pass"),
        ("ufw-stock", 8082, "pass", "fail", "pass"),
        ("ufw-stock", 7002, "pass", "fail", "pass"),
        ("firewalld-closed", PORT, "pass", "fail", "pass"),
        ("firewalld-open", PORT, "pass", "pass", "pass"),
        ("legacy", PORT, "pass", "fail", "unknown"),  # legacy rules that let it in: unsure
        ("nonroot", PORT, "unknown", "unknown", "unknown"),
    ],
)
def test_linux_statuses_on_recorded_rulesets(
    case: str, port: int, detect: str, tcp: str, mdns: str
) -> None:
    found = run(FakeProbe(commands=linux_commands(case)), port)
    assert found["firewall.detect"].status == detect
    assert found["firewall.tcp"].status == tcp, found["firewall.tcp"].summary
    assert found["firewall.mdns"].status == mdns, found["firewall.mdns"].summary
    assert found["firewall.app-block"].status == "skip"
    assert found["windows.profile"].status == "skip"


def test_linux_runs_every_rule_store_and_the_no_root_facts() -> None:
    probe = FakeProbe(commands=linux_commands("empty"))
    run(probe)
    assert probe.ran[:3] == [
        ("iptables", "-V"),
        ("systemctl", "is-active", "ufw", "firewalld", "nftables"),
        ("nft", "-j", "list", "ruleset"),
    ]
    assert {("iptables-save",), ("ip6tables-save",), ("iptables-legacy-save",)} <= set(probe.ran)
    assert ("ip6tables-legacy-save",) in probe.ran
    assert not any(argv[0] == "sudo" for argv in probe.ran), "never sudo by itself"


def test_nft_drop_says_timeout_and_prints_an_nft_rule_for_both_families() -> None:
    tcp = run(FakeProbe(commands=linux_commands("nft-drop-port")))["firewall.tcp"]
    assert "drops IPv4 and IPv6 (other PCs see a timeout)" in tcp.summary
    assert "from 10.213.0.0/24 on eth0" in tcp.summary
    assert commands_of(tcp) == [
        "sudo nft insert rule inet filter input iifname eth0 ip saddr 10.213.0.0/24 tcp dport "
        "7000 accept",
        "sudo nft insert rule inet filter input iifname eth0 ip6 saddr fd00:213::/64 tcp dport "
        "7000 accept",
    ]
    assert tcp.fixes[0].needs_admin and tcp.fixes[0].run_on == "this PC"
    assert "lost at reboot" in tcp.fixes[0].text


def test_nft_reject_says_refused() -> None:
    tcp = run(FakeProbe(commands=linux_commands("nft-reject-port")))["firewall.tcp"]
    assert "rejects IPv4 and IPv6 (other PCs see 'connection refused')" in tcp.summary


def test_ufw_fix_is_a_ufw_command_scoped_to_the_subnet() -> None:
    tcp = run(FakeProbe(commands=linux_commands("ufw-stock")), 8082)["firewall.tcp"]
    assert tcp.facts["frontend"] == "ufw"
    assert commands_of(tcp) == [
        "sudo ufw allow from 10.213.0.0/24 to any port 8082 proto tcp comment 'lanchat'",
        "sudo ufw allow from fd00:213::/64 to any port 8082 proto tcp comment 'lanchat'",
    ]
    assert "rejects" in tcp.summary  # ufw's `reject 8082/tcp`


def test_ufw_default_deny_drops() -> None:
    tcp = run(FakeProbe(commands=linux_commands("ufw-stock")), 7002)["firewall.tcp"]
    assert "drops" in tcp.summary and "timeout" in tcp.summary


def test_firewalld_fix_names_the_zone_of_the_interface() -> None:
    found = run(FakeProbe(commands=linux_commands("firewalld-closed")))
    tcp = found["firewall.tcp"]
    assert commands_of(tcp) == [
        "sudo firewall-cmd --zone=home --add-port=7000/tcp",
        "sudo firewall-cmd --permanent --zone=home --add-port=7000/tcp",
    ]
    assert "zone 'home'" in found["firewall.detect"].summary


def test_mdns_drop_is_a_warning_with_an_mdns_rule_and_the_address_to_join() -> None:
    mdns = run(FakeProbe(commands=linux_commands("nft-udp-mdns-drop")))["firewall.mdns"]
    assert mdns.status == "warn"
    assert commands_of(mdns)[0] == (
        "sudo nft insert rule inet filter input iifname eth0 ip saddr 10.213.0.0/24 "
        "ip daddr 224.0.0.251 udp dport 5353 accept"
    )
    assert "lanchat join 10.213.0.1:7000" in mdns.fixes[-1].text


def test_legacy_rules_get_an_iptables_legacy_fix() -> None:
    tcp = run(FakeProbe(commands=linux_commands("legacy")))["firewall.tcp"]
    assert commands_of(tcp) == [
        "sudo iptables-legacy -I INPUT -i eth0 -p tcp -s 10.213.0.0/24 --dport 7000 -j ACCEPT"
    ]
    assert "netfilter-persistent" in tcp.fixes[0].text


def test_without_root_the_answer_is_unknown_with_the_command_to_run() -> None:
    commands = linux_commands("nonroot")
    commands["systemctl"] = CommandOutput("active\ninactive\ninactive\n", "", 0)
    found = run(FakeProbe(commands=commands))
    for check in ("firewall.detect", "firewall.tcp", "firewall.mdns"):
        assert found[check].status == "unknown"
        assert "sudo lanchat doctor --port 7000" in commands_of(found[check])
    assert "ufw is active (systemctl)" in found["firewall.detect"].summary
    tcp = found["firewall.tcp"]
    assert "needs root" in tcp.summary
    assert tcp.fixes[1].text.startswith("If the port turns out to be closed")
    assert "sudo ufw allow from 10.213.0.0/24" in tcp.fixes[1].commands[0]


def test_no_systemd_and_no_tools_is_unknown_not_no_firewall() -> None:
    probe = FakeProbe(commands={"systemctl": CommandOutput("", "System has not been booted", 1)})
    found = run(probe)
    assert found["firewall.detect"].status == "unknown"
    assert found["firewall.tcp"].status == "unknown"


def test_a_command_that_times_out_is_unknown() -> None:
    commands = linux_commands("empty")
    commands["nft"] = CommandOutput("", "timed out after 2 s", 124)
    assert run(FakeProbe(commands=commands))["firewall.tcp"].status == "unknown"


def test_without_a_lan_address_nothing_is_guessed() -> None:
    found = run(FakeProbe(commands=linux_commands("empty"), addresses=[]))
    assert found["firewall.tcp"].status == "unknown"
    assert "No IPv4 LAN address" in found["firewall.tcp"].summary


def test_unsure_rules_are_unknown_and_suggest_the_peer_test() -> None:
    # An anti-spoofing rule (--src-type LOCAL) the evaluator cannot decide comes before the
    # accept for 7000: if it matched, the packet would be dropped. Never a guess.
    tcp = run(FakeProbe(commands=linux_commands("ipt-addrtype")))["firewall.tcp"]
    assert tcp.status == "unknown", tcp.summary
    assert commands_of(tcp) == ["lanchat doctor 10.213.0.1:7000"]
    assert tcp.fixes[0].run_on == "the other PCs"


# ---- Windows -------------------------------------------------------------------------------


def windows(fixture: str, exe: str | None = WINDOWS_EXE) -> dict[str, CheckResult]:
    probe = FakeProbe("windows", commands=windows_commands(fixture), addresses=[WIFI])
    found = run(probe, exe=exe)
    assert probe.ran[0][0] == "powershell" and len(probe.ran) == 1, "one PowerShell call"
    return found


def statuses(found: dict[str, CheckResult]) -> dict[str, str]:
    return {k: v.status for k, v in found.items()}


def test_windows_private_network_with_an_allow_rule_passes() -> None:
    found = windows("private-allow")
    assert statuses(found) == {
        "firewall.detect": "pass",
        "firewall.tcp": "pass",
        "firewall.app-block": "pass",
        "windows.profile": "pass",
        "firewall.mdns": "pass",
    }
    assert "Private profile for Wi-Fi" in found["firewall.detect"].summary


def test_windows_python_block_rule_fails_app_block_with_the_removal_command() -> None:
    found = windows("python-blocked")
    assert found["firewall.tcp"].status == "fail"
    app = found["firewall.app-block"]
    assert app.status == "fail"
    (command,) = commands_of(app)
    assert command.startswith(f'Get-NetFirewallApplicationFilter -Program "{WINDOWS_EXE}"')
    assert command.endswith("Remove-NetFirewallRule")
    assert app.fixes[0].needs_admin
    assert "Remove-NetFirewallRule" in commands_of(found["firewall.tcp"])[0]


def test_windows_public_network_fails_with_make_private_and_a_port_rule() -> None:
    found = windows("public-network")
    profile = found["windows.profile"]
    assert profile.status == "fail"
    assert commands_of(profile) == [
        "Set-NetConnectionProfile -InterfaceIndex 12 -NetworkCategory Private"
    ]
    tcp = found["firewall.tcp"]
    assert tcp.status == "fail"
    assert (
        commands_of(tcp)[0]
        == "Set-NetConnectionProfile -InterfaceIndex 12 -NetworkCategory Private"
    )
    assert commands_of(tcp)[1] == (
        'New-NetFirewallRule -DisplayName "lanchat 7000" -Direction Inbound -Protocol TCP '
        "-LocalPort 7000 -Action Allow -Profile Private -RemoteAddress LocalSubnet"
    )


def test_windows_block_all_names_the_setting() -> None:
    tcp = windows("block-all")["firewall.tcp"]
    assert tcp.status == "fail"
    assert "Block all incoming connections" in tcp.fixes[0].text
    assert commands_of(tcp) == ["Set-NetFirewallProfile -Profile Private -AllowInboundRules True"]


def test_windows_firewall_off_passes() -> None:
    found = windows("firewall-off")
    assert found["firewall.tcp"].status == "pass"
    assert "off" in found["firewall.tcp"].summary


def test_windows_cmdlet_error_is_unknown() -> None:
    found = windows("cmdlet-error")
    assert found["firewall.tcp"].status == "unknown"


@pytest.mark.parametrize("fixture", ["enum-ints", "single-object"])
def test_windows_other_json_shapes_are_read(fixture: str) -> None:
    found = windows(fixture)
    assert found["firewall.detect"].status == "pass"
    assert found["firewall.tcp"].status in ("pass", "fail")


def test_windows_without_the_program_leaves_app_block_unknown() -> None:
    assert windows("python-blocked", exe=None)["firewall.app-block"].status == "unknown"


def test_windows_without_powershell_is_unknown() -> None:
    probe = FakeProbe("windows", commands={}, addresses=[WIFI])
    found = run(probe, exe=WINDOWS_EXE)
    assert all(r.status == "unknown" for r in found.values())
    assert "PowerShell is not available" in found["firewall.tcp"].summary


def test_windows_timeout_is_unknown() -> None:
    probe = FakeProbe(
        "windows",
        commands={"powershell": CommandOutput("", "timed out after 4 s", 124)},
        addresses=[WIFI],
    )
    assert run(probe, exe=WINDOWS_EXE)["firewall.detect"].status == "unknown"


# ---- macOS ---------------------------------------------------------------------------------


def macos(scenario: str) -> dict[str, Any]:
    probe = FakeProbe("darwin", commands=macos_commands(scenario), addresses=[WIFI])
    return run(probe, exe=MAC_EXE)


@pytest.mark.parametrize(
    ("scenario", "tcp", "app"),
    [
        ("off", "pass", "pass"),
        ("on-allowed", "pass", "pass"),
        ("on-blocked", "fail", "fail"),
        ("block-all", "fail", "pass"),
        ("unlisted", "unknown", "pass"),
        ("pf-enabled", "unknown", "pass"),
        ("pf-nonroot", "pass", "pass"),
    ],
)
def test_macos_scenarios(scenario: str, tcp: str, app: str) -> None:
    found = macos(scenario)
    assert found["firewall.tcp"].status == tcp, found["firewall.tcp"].summary
    assert found["firewall.app-block"].status == app
    assert found["windows.profile"].status == "skip"
    assert found["firewall.mdns"].status == "skip"


def test_macos_blocked_app_gets_the_socketfilterfw_commands() -> None:
    found = macos("on-blocked")
    tool = "/usr/libexec/ApplicationFirewall/socketfilterfw"
    expected = [f'sudo {tool} --add "{MAC_EXE}"', f'sudo {tool} --unblockapp "{MAC_EXE}"']
    assert commands_of(found["firewall.app-block"]) == expected
    assert commands_of(found["firewall.tcp"]) == expected


def test_macos_block_all_points_at_the_setting() -> None:
    tcp = macos("block-all")["firewall.tcp"]
    assert "Block all incoming connections" in tcp.fixes[0].text


def test_macos_pf_without_root_suggests_sudo() -> None:
    detect = macos("pf-nonroot")["firewall.detect"]
    assert "pf is cannot-read" in detect.summary
    assert commands_of(detect) == ["sudo lanchat doctor --port 7000"]


def test_other_systems_skip_every_firewall_check() -> None:
    found = run(FakeProbe("freebsd14", commands={}))
    assert {r.status for r in found.values()} == {"skip"}
