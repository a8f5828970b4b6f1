"""server.bind, lan.address, env.virtualized, the client-mode peer.* checks and the mDNS checks,
each over a fake probe."""

from __future__ import annotations

import errno

import pytest
from doctor_fakes import (
    LAB_ADDRESSES,
    LOOPBACK,
    WIFI,
    FakeMdns,
    FakeProbe,
    relay_document,
)

from lanchat.doctor.checks.lan import check_lan_address, choose_lan
from lanchat.doctor.checks.mdns import check_mdns_neighbours, check_mdns_self, check_peer_mdns
from lanchat.doctor.checks.peer import (
    check_peer_lanchat,
    check_peer_network,
    check_peer_resolve,
    check_peer_tcp,
    same_network,
)
from lanchat.doctor.checks.server import check_server_bind
from lanchat.doctor.checks.virtual import check_env_virtualized
from lanchat.doctor.probe.interface import (
    NOT_AVAILABLE,
    ConnectOutcome,
    ConnectResult,
    HandshakeResult,
    Listener,
    MdnsBrowse,
    MdnsNeighbours,
    MdnsSelf,
    MdnsService,
    Resolved,
    UnavailableMdnsProbe,
)
from lanchat.doctor.result import CheckResult
from lanchat.netinfo import LocalAddress

PORT = 7000
LAN = choose_lan(LAB_ADDRESSES)


# ---- server.bind ---------------------------------------------------------------------------


def bind(probe: FakeProbe) -> tuple[str, str, list[str], dict[str, object]]:
    result = check_server_bind(probe, PORT, LAN)
    assert result.id == "server.bind"
    commands = [c for fix in result.fixes for c in fix.commands]
    return result.status, result.summary, commands, result.facts


@pytest.mark.parametrize(
    ("bound", "listener", "asked", "status", "scope"),
    [
        ("::", "::", "::1", "pass", "all"),
        ("0.0.0.0", "0.0.0.0", "127.0.0.1", "pass", "all"),
        ("10.213.0.1", "10.213.0.1", "10.213.0.1", "pass", "lan"),
        ("127.0.0.1", "127.0.0.1", "127.0.0.1", "fail", "loopback"),
        ("::1", "::1", "::1", "fail", "loopback"),
        ("172.17.0.1", "172.17.0.1", "172.17.0.1", "warn", "other"),
    ],
)
def test_a_running_relay_and_where_it_listens(
    bound: str, listener: str, asked: str, status: str, scope: str
) -> None:
    probe = FakeProbe(
        listeners=[Listener(listener, PORT, 4711, "python3")],
        relay={asked: relay_document(bound, PORT)},
    )
    got, summary, commands, facts = bind(probe)
    assert (got, facts["scope"], facts["running"]) == (status, scope, True)
    assert probe.asked == [(asked, PORT)], "asks where the socket is, loopback for wildcards"
    assert "lanchat 0.1.0 (pid 4711, room 'lobby')" in summary
    if scope == "loopback":
        assert f"listens on {bound} only" in summary and "every other PC is refused" in summary
        assert commands == [f"lanchat serve --port {PORT}"]


def test_another_program_on_the_port_is_named() -> None:
    probe = FakeProbe(
        listeners=[Listener("0.0.0.0", PORT, 999, "nginx")],
        relay={"127.0.0.1": "not a lanchat relay"},
    )
    status, summary, commands, facts = bind(probe)
    assert status == "fail" and facts["scope"] == "taken"
    assert "Port 7000 is already used by nginx (pid 999)" in summary
    assert commands == ["kill 999", "lanchat serve --port 7001"]
    assert facts["owner"] == {"address": "0.0.0.0", "port": PORT, "pid": 999, "program": "nginx"}


def test_a_hidden_owner_gives_the_command_to_find_it() -> None:
    probe = FakeProbe(bind_error="Address already in use")
    status, summary, commands, _ = bind(probe)
    assert status == "fail"
    assert "does not name" in summary
    assert commands[0] == "sudo ss -ltnp 'sport = :7000'"


@pytest.mark.parametrize(
    ("platform", "command"),
    [
        ("darwin", "sudo lsof -nP -iTCP:7000 -sTCP:LISTEN"),
        ("windows", "Get-NetTCPConnection -LocalPort 7000 -State Listen"),
    ],
)
def test_find_owner_commands_per_os(platform: str, command: str) -> None:
    probe = FakeProbe(platform, listeners=[Listener("0.0.0.0", PORT, None, None)])
    _, _, commands, _ = bind(probe)
    assert commands[0].startswith(command)


def test_no_server_is_a_warning_that_says_how_to_start_it() -> None:
    status, summary, commands, facts = bind(FakeProbe())
    assert status == "warn" and facts["running"] is False
    assert "No lanchat server is running on port 7000" in summary
    assert commands == ["lanchat serve --port 7000"]


def test_a_server_on_another_port_is_pointed_at() -> None:
    probe = FakeProbe(lanchat=[Listener("::", 7420, 55, "lanchat")])
    _, summary, commands, _ = bind(probe)
    assert "A lanchat server is listening on port 7420 (lanchat (pid 55))" in summary
    assert commands[0] == "lanchat doctor --port 7420"


def test_unreadable_socket_table_still_asks_the_relay() -> None:
    relay = {"127.0.0.1": relay_document("0.0.0.0", PORT)}
    probe = FakeProbe(socket_table=False, relay=relay)  # macOS without root
    status, _, _, _ = bind(probe)
    assert status == "pass"
    assert probe.asked[0] == ("127.0.0.1", PORT)


# ---- lan.address ---------------------------------------------------------------------------


def addr(
    address: str, iface: str, *, primary: bool = False, tags: tuple[str, ...] = ()
) -> LocalAddress:
    family = 6 if ":" in address else 4
    mask = "255.255.255.0" if family == 4 else "ffff:ffff:ffff:ffff::"
    return LocalAddress(address, iface, family, mask, primary, tags)


def test_the_default_route_address_is_the_one_to_tell() -> None:
    result = check_lan_address(LAB_ADDRESSES, PORT)
    assert result.status == "pass"
    assert result.facts["join"] == "lanchat join 10.213.0.1:7000"
    assert result.facts["network"] == "10.213.0.0/24" and result.facts["interface"] == "eth0"
    assert LAN is not None and (LAN.peer, LAN.peer6) == ("10.213.0.2", "fd00:213::2")


def test_link_local_only_is_a_failure() -> None:
    apipa = addr("169.254.7.9", "wlan0", tags=("link-local",))
    result = check_lan_address([apipa, LOOPBACK], PORT)
    assert result.status == "fail"
    assert "169.254.7.9" in result.summary and "got no address from the router" in result.summary


def test_no_address_at_all_is_a_failure() -> None:
    result = check_lan_address([LOOPBACK], PORT)
    assert result.status == "fail" and "no network address at all" in result.summary


def test_virtual_candidates_are_tagged_and_a_vpn_default_route_warns() -> None:
    vpn = addr("10.8.0.2", "tun0", primary=True, tags=("VPN",))
    docker = addr("172.17.0.1", "docker0", tags=("container/VM bridge",))
    wifi = addr("192.168.1.23", "wlan0")
    result = check_lan_address([vpn, docker, wifi, LOOPBACK], PORT)
    assert result.status == "warn"
    assert "goes through tun0 (VPN)" in result.summary and "192.168.1.23" in result.summary
    assert "172.17.0.1 on docker0 (container/VM bridge)" in result.evidence


def test_two_networks_without_a_default_route_warn() -> None:
    result = check_lan_address([addr("192.168.1.23", "wlan0"), addr("10.0.0.5", "eth1")], PORT)
    assert result.status == "warn" and "several networks" in result.summary


# ---- env.virtualized -----------------------------------------------------------------------


def env(
    files: dict[str, str], addresses: list[LocalAddress] | None = None, platform: str = "linux"
) -> CheckResult:
    return check_env_virtualized(FakeProbe(platform, files=files), addresses or LAB_ADDRESSES, PORT)


def test_bare_metal_passes() -> None:
    result = env(
        {"/sys/class/dmi/id/sys_vendor": "LENOVO\n", "/proc/sys/kernel/osrelease": "6.1.0"}
    )
    assert result.status == "pass"


def test_wsl2_with_a_nat_address_fails_with_the_mirrored_mode_fix() -> None:
    files = {"/proc/sys/kernel/osrelease": "5.15.153.1-microsoft-standard-WSL2\n"}
    result = env(files, [addr("172.28.112.5", "eth0", primary=True)])
    assert result.status == "fail"
    assert "networkingMode=mirrored" in result.fixes[0].text
    assert "-LocalPorts 7000" in result.fixes[0].commands[0]


def test_wsl2_mirrored_looking_address_warns_and_wsl1_warns() -> None:
    files = {"/proc/sys/kernel/osrelease": "5.15.153.1-microsoft-standard-WSL2\n"}
    assert env(files, [addr("192.168.1.23", "eth0", primary=True)]).status == "warn"
    wsl1 = env({"/proc/sys/kernel/osrelease": "4.4.0-19041-Microsoft\n"})
    assert wsl1.status == "warn" and "WSL 1" in wsl1.summary


def test_a_container_without_host_networking_warns() -> None:
    result = env({"/.dockerenv": ""})
    assert result.status == "warn" and "docker run -p 7000:7000" in result.fixes[0].text
    podman = env({"/proc/1/cgroup": "0::/machine.slice/libpod-abc.scope\n"})
    assert podman.status == "warn"


def test_a_container_with_host_networking_passes() -> None:
    docker0 = addr("172.17.0.1", "docker0", tags=("container/VM bridge",))
    assert env({"/.dockerenv": ""}, [*LAB_ADDRESSES, docker0]).status == "pass"


def test_a_nat_vm_fails_and_a_bridged_vm_passes() -> None:
    files = {
        "/sys/class/dmi/id/sys_vendor": "innotek GmbH",
        "/sys/class/dmi/id/product_name": "VirtualBox",
    }
    nat = env(files, [addr("10.0.2.15", "enp0s3", primary=True)])
    assert nat.status == "fail" and "Bridged" in nat.fixes[0].text
    assert env(files, [addr("192.168.1.40", "enp0s3", primary=True)]).status == "pass"


def test_windows_hotspot_is_mentioned() -> None:
    hotspot = addr("192.168.137.1", "Local Area Connection* 2")
    result = env({}, [WIFI, hotspot], platform="windows")
    assert result.status == "pass" and "192.168.137.1" in result.summary


# ---- client mode ---------------------------------------------------------------------------


def test_resolve_failure_is_a_failure_with_advice() -> None:
    result = check_peer_resolve(Resolved(error="Name or service not known"), "nosuchpc.local")
    assert result.status == "fail" and "nosuchpc.local" in result.summary
    assert "numeric address" in result.fixes[0].text


def test_resolved_names_and_literal_addresses_pass() -> None:
    assert check_peer_resolve(Resolved(("10.213.0.1",)), "h1").status == "pass"
    assert check_peer_resolve(Resolved(("10.213.0.1",)), "10.213.0.1").title.endswith("an address")


@pytest.mark.parametrize(
    ("target", "relation", "status"),
    [
        ("10.213.0.9", "on-link", "pass"),
        ("fd00:213::9", "on-link", "pass"),
        ("fe80::1", "on-link", "pass"),
        ("10.213.0.1", "self", "warn"),
        ("127.0.0.1", "self", "warn"),
        ("192.168.5.5", "off-link", "warn"),
    ],
)
def test_same_network(target: str, relation: str, status: str) -> None:
    assert same_network(LAB_ADDRESSES, target)[0] == relation
    result = check_peer_network(LAB_ADDRESSES, target, PORT)
    assert result.status == status and result.facts["relation"] == relation


@pytest.mark.parametrize(
    ("outcome", "code", "words"),
    [
        ("refused", errno.ECONNREFUSED, "listens on 127.0.0.1 only, or a firewall rule rejects"),
        ("timeout", None, "Most likely the server's firewall drops the connection"),
        ("host-unreachable", errno.EHOSTUNREACH, "cannot find 10.213.0.1 on the local network"),
        ("net-unreachable", errno.ENETUNREACH, "different network"),
        ("prohibited", errno.EACCES, "rejected the connection to 10.213.0.1:7000 as 'admin"),
        ("error", errno.EADDRNOTAVAIL, "failed"),
    ],
)
def test_connect_failures_are_classified(outcome: str, code: int | None, words: str) -> None:
    result = check_peer_tcp(
        ConnectResult(outcome, "10.213.0.1", PORT, 3.0, code, "described"),  # type: ignore[arg-type]
        "on-link",
        3.0,
    )
    assert result.status == "fail"
    assert words in result.summary
    assert result.facts["outcome"] == outcome


def test_refused_and_timeout_send_the_user_to_the_server_pc() -> None:
    outcomes: tuple[ConnectOutcome, ...] = ("refused", "timeout")
    for outcome in outcomes:
        result = check_peer_tcp(ConnectResult(outcome, "10.213.0.1", PORT, 0.01), "on-link", 3.0)
        assert result.fixes[0].run_on == "the server PC"
        assert result.fixes[0].commands == ("lanchat doctor --port 7000",)


def test_connected_then_the_handshake() -> None:
    connected = ConnectResult("connected", "10.213.0.1", PORT, 0.002, source="10.213.0.2")
    assert check_peer_tcp(connected, "on-link", 3.0).status == "pass"
    lanchat = HandshakeResult("lanchat", "lanchat 0.1.0 answered", "lanchat 0.1.0", "lobby")
    assert check_peer_lanchat(connected, lanchat).status == "pass"
    said = "10.213.0.1:7000 answered, but it is not a lanchat server (it said: 'SSH-2.0')."
    result = check_peer_lanchat(connected, HandshakeResult("foreign", said))
    assert result.status == "fail" and "SSH-2.0" in result.summary
    full = HandshakeResult("rejected", "the room is full")
    assert check_peer_lanchat(connected, full).status == "warn"


def test_no_handshake_without_a_connection() -> None:
    refused = ConnectResult("refused", "10.213.0.1", PORT, 0.001)
    assert check_peer_lanchat(refused, None).status == "skip"


# ---- mDNS ----------------------------------------------------------------------------------


def test_without_an_mdns_probe_every_mdns_check_is_skipped_with_the_reason() -> None:
    none = UnavailableMdnsProbe()
    for result in (
        check_mdns_self(none, LAN, PORT),
        check_mdns_neighbours(none, ["10.213.0.1"]),
        check_peer_mdns(none, ["10.213.0.1"], PORT, True),
    ):
        assert result.status == "skip"
        assert result.summary == NOT_AVAILABLE == "mDNS probe not available in this build"


def test_mdns_self() -> None:
    mdns = FakeMdns()
    assert check_mdns_self(mdns, LAN, PORT).status == "pass"
    assert mdns.timeouts and max(mdns.timeouts) <= 3
    unseen = FakeMdns(self_seen=MdnsSelf(False, error="no answer in 3 s"))
    result = check_mdns_self(unseen, LAN, PORT)
    assert result.status == "warn" and "lanchat join 10.213.0.1:7000" in result.fixes[0].text


def test_mdns_neighbours() -> None:
    assert check_mdns_neighbours(FakeMdns(), ["10.213.0.1"]).status == "pass"
    lonely = check_mdns_neighbours(FakeMdns(neighbours=MdnsNeighbours(())), ["10.213.0.1"])
    assert lonely.status == "warn" and "isolation" in lonely.summary
    broken = FakeMdns(neighbours=MdnsNeighbours(error="ENODEV"))
    assert check_mdns_neighbours(broken, ["10.213.0.1"]).status == "unknown"


def test_peer_mdns_matches_address_and_port() -> None:
    seen = MdnsBrowse((MdnsService("h1._lanchat._tcp.local.", ("10.213.0.1",), PORT),))
    assert check_peer_mdns(FakeMdns(browse=seen), ["10.213.0.1"], PORT, True).status == "pass"
    wrong_port = check_peer_mdns(FakeMdns(browse=seen), ["10.213.0.1"], 7420, True)
    assert wrong_port.status == "warn" and "Joining by address works" in wrong_port.summary
    assert wrong_port.fixes[0].run_on == "the server PC"


def test_web_page_passes_on_the_chat_page_and_says_why_not_otherwise() -> None:
    from lanchat.doctor.checks.web import check_web_page
    from lanchat.doctor.probe.interface import PageResult

    page = PageResult(200, "HTTP 200 OK", "text/html; charset=utf-8", csp=True, size=1200)
    passed = check_web_page(page, "10.0.0.5", 7420)
    assert passed.status == "pass" and "http://10.0.0.5:7420/" in passed.summary
    off = check_web_page(PageResult(503, "HTTP 503 Service Unavailable"), "10.0.0.5", 7420)
    assert off.status == "warn" and "--no-web" in off.summary
    old = check_web_page(PageResult(None, "no HTTP answer: timed out"), "10.0.0.5", 7420)
    assert old.status == "fail" and old.fixes
    assert check_web_page(None, "10.0.0.5", 7420).status == "skip"
    location = "https://10.0.0.5:7420/"
    tls = check_web_page(PageResult(308, "HTTP 308", location=location), "10.0.0.5", 7420)
    assert tls.status == "pass" and "serve --tls" in tls.summary and location in tls.summary
