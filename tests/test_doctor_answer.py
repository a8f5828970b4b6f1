"""The answer block, computed from check results: is a firewall rule needed (and which), port
forwarding is not, how others join; and the client-mode answers."""

from __future__ import annotations

import pytest

from lanchat.doctor.answer import client_answer, server_answer
from lanchat.doctor.checks.nat import (
    check_wan,
)
from lanchat.doctor.firewall import fixes
from lanchat.doctor.firewall.linux import fixes as linux_fixes
from lanchat.doctor.firewall.windows import fixes as windows_fixes
from lanchat.doctor.result import CheckResult

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
    assert "`lanchat serve --tls` with a room password" in answer.alternatives[0]
    assert "docs/security.md" in answer.alternatives[0]
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
