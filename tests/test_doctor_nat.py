"""`--internet` (checks/nat.py): NAT-PMP, the default gateway per OS, and the WAN class."""

from __future__ import annotations

import pytest
from doctor_fakes import FakeProbe, natpmp

from lanchat.doctor.checks.nat import (
    NATPMP_REQUEST,
    check_router,
    check_wan,
    classify_wan,
    default_gateway,
    parse_natpmp,
    parse_proc_net_route,
)

PORT = 7000


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
