"""Discovery's pure parts, without sockets: TXT keys and instance names, parsing records (also
zeroconf's own ServiceInfo, built with sockets forbidden), the advertise plan, the refresh
decision, choosing a server and the order of its addresses; rendering and the test guard."""

from __future__ import annotations

import io
import ipaddress
import json
import socket
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from conftest import MdnsGuardError, check_mdns_safe, run_lanchat
from lanchat import __version__
from lanchat.discovery import (
    SERVICE_TYPE,
    Advertisement,
    AdvertPlan,
    Change,
    Reached,
    Server,
    choose_server,
    group_rooms,
    instance_name,
    local_networks,
    matching_servers,
    order_addresses,
    parse_service,
    plan_advertisement,
    reach_server,
    refresh_action,
    try_in_turn,
    txt_properties,
)
from lanchat.discovery.records import (
    MAX_INSTANCE_BYTES,
    host_label,
    srv_target,
    usable_addresses,
)
from lanchat.errors import ExitCode, LanchatError, RejectedError, UnreachableError, UsageError
from lanchat.netinfo import LocalAddress, interface_tags
from lanchat.output import stdout_console
from lanchat.output.discovery import WatchView, print_servers, reach_report
from lanchat.output.serve import advertisement_text
from lanchat.protocol import room_problem
from lanchat.tls.fingerprint import format_fingerprint

TXT = txt_properties("lobby", "0.1.0")


@dataclass(frozen=True)
class Record:
    """A ServiceInfo-like record (the attributes parse_service reads)."""

    name: str = f"lobby on h1.{SERVICE_TYPE}"
    server: str | None = "h1.local."
    port: int | None = 7420
    properties: Mapping[bytes, bytes | None] = field(
        default_factory=lambda: {k.encode(): v.encode() for k, v in TXT.items()}
    )
    addresses: tuple[str, ...] = ("10.0.0.5", "fe80::1%eth0")

    def parsed_scoped_addresses(self) -> list[str]:
        return list(self.addresses)


def props(**changes: str | None) -> dict[bytes, bytes | None]:
    """The TXT of a valid server with some keys changed (None: the key is left out)."""
    txt: dict[str, str | None] = {**TXT, **changes}
    return {k.encode(): v.encode() for k, v in txt.items() if v is not None}


# --- records -----------------------------------------------------------------------------------


def test_txt_keys_are_documented_and_parse_back() -> None:
    assert TXT == {"protocol": "1", "room": "lobby", "version": "0.1.0", "password": "0"}
    server = parse_service(Record())
    assert server == Server(
        name="lobby on h1",
        room="lobby",
        host="h1",
        addresses=("10.0.0.5", "fe80::1%eth0"),
        port=7420,
        protocol=1,
        version="0.1.0",
        password=False,
    )
    assert server.to_dict()["addresses"] == ["10.0.0.5", "fe80::1%eth0"]
    assert json.loads(json.dumps(server.to_dict()))["room"] == "lobby"
    with_password = txt_properties("lobby", "0.1.0", password=True)  # serve --password-file
    assert with_password["password"] == "1"
    parsed = parse_service(Record(properties=props(**with_password)))
    assert parsed is not None and parsed.password is True
    assert [server.endpoint(a) for a in server.addresses] == [
        "10.0.0.5:7420",
        "[fe80::1%eth0]:7420",
    ]


def test_a_tls_server_announces_tls_and_its_fingerprint_and_reads_back() -> None:
    """serve --tls: TXT tls=1 and fp (how lanchat shows it); read back in any writing of the
    fingerprint; a bad fp is dropped (the server still says TLS); fp means nothing without tls."""
    digest = bytes(range(32))
    shown = format_fingerprint(digest)
    txt = txt_properties("lobby", "0.1.0", web="/", fingerprint=shown)
    assert txt == {**TXT, "web": "/", "tls": "1", "fp": shown}
    record = Record(properties={k.encode(): v.encode() for k, v in txt.items()})
    server = parse_service(record)
    assert server is not None and server.tls and server.fingerprint == shown
    assert server.web_url("10.0.0.5") == "https://10.0.0.5:7420/"
    assert server.to_dict()["tls"] is True and server.to_dict()["fingerprint"] == shown
    out = io.StringIO()
    print_servers(stdout_console(out), group_rooms([server], []), 1.0)
    assert "https://10.0.0.5:7420/" in out.getvalue()
    assert f"key fingerprint as announced {shown}" in " ".join(out.getvalue().split())
    lower = parse_service(Record(properties=props(tls="1", fp=shown.lower().replace("-", ""))))
    assert lower is not None and lower.fingerprint == shown
    bad = parse_service(Record(properties=props(tls="1", fp="ABCD")))
    assert bad is not None and bad.tls and bad.fingerprint is None
    plain = parse_service(Record(properties=props(fp=shown)))  # no tls=1
    assert plain is not None and not plain.tls and plain.fingerprint is None


def test_parses_zeroconf_service_info_without_opening_a_socket(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from zeroconf import ServiceInfo

    def no_socket(*args: Any, **kwargs: Any) -> None:
        raise AssertionError("a socket was opened")

    monkeypatch.setattr(socket, "socket", no_socket)
    info = ServiceInfo(
        SERVICE_TYPE,
        f"physics on pc-7.{SERVICE_TYPE}",
        port=7421,
        properties=txt_properties("physics", __version__),
        server="pc-7.local.",
        parsed_addresses=["192.168.1.23", "2001:db8::23", "127.0.0.1"],
    )
    server = parse_service(info)
    assert server is not None
    assert (server.name, server.room, server.host, server.port) == (
        "physics on pc-7",
        "physics",
        "pc-7",
        7421,
    )
    assert server.addresses == ("192.168.1.23", "2001:db8::23")  # never loopback
    assert (server.protocol, server.version, server.password) == (1, __version__, False)


@pytest.mark.parametrize(
    "record",
    [
        Record(name="lobby on h1._other._tcp.local."),  # another service type
        Record(name=SERVICE_TYPE),  # no instance name
        Record(port=0),
        Record(port=None),
        Record(port=70000),
        Record(properties=props(protocol=None)),
        Record(properties=props(protocol="abc")),
        Record(properties=props(protocol="0")),
        Record(properties=props(protocol="-1")),
        Record(properties=props(protocol="\uff11")),  # a fullwidth digit: isdigit() but not ascii
        Record(properties=props(protocol="123456")),
        Record(properties=props(room=None)),
        Record(properties=props(room="")),
        Record(properties=props(room="x" * 41)),
        Record(properties=props(room="evil\x1b[2J")),
        Record(properties={**props(), b"password": b"yes"}),
        Record(properties={b"protocol": b"1", b"room": b"\xff\xfe"}),  # not UTF-8
        Record(properties={b"\xff": b"1", b"room": b"lobby", b"protocol": b"1"}),
        Record(properties={}),
        Record(addresses=()),
        Record(addresses=("127.0.0.1", "::1", "fe80::1", "224.0.0.251", "0.0.0.0", "junk")),
    ],
)
def test_malformed_or_foreign_records_are_ignored(record: Record) -> None:
    assert parse_service(record) is None


def test_what_a_record_says_is_cleaned_of_terminal_controls() -> None:
    record = Record(
        name=f"lobby\x1b[31m on h1.{SERVICE_TYPE}",
        server="h\x07x.local.",
        properties=props(version="9\x1b]0;pwned\x07.1"),
    )
    server = parse_service(record)
    assert server is not None
    assert (server.name, server.host, server.version) == ("lobby on h1", "hx", "9.1")


def test_missing_optional_keys_and_host() -> None:
    server = parse_service(Record(server=None, properties=props(version=None, password=None)))
    assert server is not None
    assert (server.host, server.version, server.password) == ("h1", "", False)
    needs_password = parse_service(Record(properties={**props(), b"password": b"1"}))
    assert needs_password is not None and needs_password.password is True


def test_usable_addresses() -> None:
    assert usable_addresses(
        ["10.0.0.5", "10.0.0.5", "fe80::1", "fe80::2%eth0", "2001:db8::1", "ff02::fb", "::1"]
    ) == ("10.0.0.5", "fe80::2%eth0", "2001:db8::1")


TEXT = st.text(max_size=50)
BYTES = st.binary(max_size=30)


@given(
    name=st.one_of(TEXT, TEXT.map(lambda t: f"{t}.{SERVICE_TYPE}")),
    server=st.one_of(st.none(), TEXT),
    port=st.one_of(st.none(), st.integers(-5, 70000)),
    properties=st.dictionaries(
        st.one_of(BYTES, st.sampled_from([b"protocol", b"room", b"version", b"password"])),
        st.one_of(st.none(), BYTES, st.sampled_from([b"1", b"0", b"lobby"])),
        max_size=6,
    ),
    addresses=st.lists(
        st.one_of(TEXT, st.ip_addresses().map(str), st.just("fe80::1%eth0")), max_size=4
    ),
)
def test_parse_never_raises_and_only_returns_valid_servers(
    name: str,
    server: str | None,
    port: int | None,
    properties: dict[bytes, bytes | None],
    addresses: list[str],
) -> None:
    parsed = parse_service(Record(name, server, port, properties, tuple(addresses)))
    if parsed is not None:
        assert room_problem(parsed.room) is None
        assert 0 < parsed.port < 65536 and parsed.protocol > 0 and parsed.addresses
        for address in parsed.addresses:
            ip = ipaddress.ip_address(address.partition("%")[0])
            assert not ip.is_loopback and not ip.is_multicast


@pytest.mark.parametrize(
    ("room", "host", "port", "expected"),
    [
        ("lobby", "h1", 7420, "lobby on h1"),
        ("lobby", "h1", 7421, "lobby on h1:7421"),  # two servers on one PC never clash
        ("physics.101", "pc-7.example.org", 7420, "physics-101 on pc-7"),
        ("bad\x1b[31m", "h1", 7420, "bad on h1"),
    ],
)
def test_instance_name_is_room_on_host(room: str, host: str, port: int, expected: str) -> None:
    assert instance_name(room, host, port) == expected


@given(
    room=st.text(min_size=1, max_size=40),
    host=st.text(max_size=80),
    port=st.integers(1, 65535),
)
def test_instance_name_leaves_room_for_zeroconf_renaming(room: str, host: str, port: int) -> None:
    name = instance_name(room, host, port)
    assert len(name.encode()) <= MAX_INSTANCE_BYTES  # + "-99" still fits a 63-byte label
    assert "." not in name and " on " in name


def test_srv_target_is_unique_per_machine_and_reads_back_as_the_host() -> None:
    target = srv_target("pc-7.example.org", 0x0200_0AD5_0003)
    assert target == "pc-7-d50003.local."
    assert srv_target("pc-7", 0x0200_0AD5_0004) != target  # a clone with the same name
    server = parse_service(Record(server=target))
    assert server is not None and server.host == "pc-7"


def test_host_label_is_one_dns_label() -> None:
    assert host_label("Ana's PC.home") == "Ana-s-PC"
    assert host_label("...") == "lanchat"
    assert len(host_label("x" * 100)) == 20


# --- the advertise plan ------------------------------------------------------------------------


def addr(address: str, interface: str, *, primary: bool = False, mask: str | None = None) -> Any:
    family = 6 if ":" in address else 4
    netmask = mask or ("255.255.255.0" if family == 4 else "ffff:ffff:ffff:ffff::")
    tags = interface_tags(interface, address)
    return LocalAddress(address, interface, family, netmask, primary, tags)


PC = [
    addr("127.0.0.1", "lo", mask="255.0.0.0"),
    addr("::1", "lo", mask="ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff"),
    addr("fe80::5", "eth0"),
    addr("192.168.1.23", "eth0", primary=True),
    addr("2001:db8::23", "eth0"),
    addr("10.0.0.7", "wlan0"),
    addr("172.17.0.1", "docker0", mask="255.255.0.0"),
    addr("10.8.0.2", "tun0"),
]


def test_plan_advertises_lan_addresses_never_loopback_or_virtual() -> None:
    plan = plan_advertisement(PC)
    assert plan.addresses == ("192.168.1.23", "10.0.0.7", "2001:db8::23", "fe80::5")
    assert plan.ipv4_interfaces == ("192.168.1.23", "10.0.0.7")
    assert plan.ipv6_interfaces == ("eth0",)
    assert plan.reason is None
    assert plan.left_out == ("172.17.0.1 (container/VM bridge)", "10.8.0.2 (VPN)")
    assert json.loads(json.dumps(plan.to_dict()))["addresses"][0] == "192.168.1.23"


def test_plan_follows_the_listening_address() -> None:
    assert plan_advertisement(PC, bind_host="0.0.0.0").addresses == ("192.168.1.23", "10.0.0.7")
    only = plan_advertisement(PC, bind_host="10.0.0.7")
    assert (only.addresses, only.ipv6_interfaces) == (("10.0.0.7",), ())
    for loopback in ("127.0.0.1", "::1", "[::1]", "localhost"):
        plan = plan_advertisement(PC, bind_host=loopback)
        assert not plan.addresses and "only" in (plan.reason or "")
    gone = plan_advertisement(PC, bind_host="192.168.9.9")
    assert not gone.addresses and "not an address of this computer" in (gone.reason or "")


def test_plan_with_interface_option() -> None:
    wifi = plan_advertisement(PC, wanted=["wlan0"])
    assert wifi.addresses == ("10.0.0.7",)
    vpn = plan_advertisement(PC, wanted=["10.8.0.2", "eth9"])  # asked for: even a VPN
    assert vpn.addresses == ("10.8.0.2",) and vpn.left_out == ("eth9 (--interface: not found)",)
    none = plan_advertisement(PC, wanted=["eth9"])
    assert not none.addresses and "--interface eth9 matches no address" in (none.reason or "")
    assert "loopback" not in str(plan_advertisement(PC, wanted=["lo"]).addresses)
    assert not plan_advertisement(PC, wanted=["lo"]).addresses


def test_plan_without_a_lan() -> None:
    assert "no LAN address" in (plan_advertisement(PC[:2]).reason or "")
    virtual_only = plan_advertisement([*PC[:2], PC[6]])
    assert "--interface" in (virtual_only.reason or "")
    link_local_only = plan_advertisement([addr("169.254.7.7", "eth0", mask="255.255.0.0")])
    assert link_local_only.addresses == ("169.254.7.7",)  # two PCs on a cable, no DHCP


A = AdvertPlan(("10.0.0.5", "fe80::5"), ("10.0.0.5",), ("eth0",))


@pytest.mark.parametrize(
    ("old", "new", "action"),
    [
        (None, A, "register"),
        (None, AdvertPlan(reason="no LAN"), "keep"),
        (A, A, "keep"),
        (A, AdvertPlan(reason="no LAN"), "withdraw"),
        (A, AdvertPlan(("10.0.0.5", "2001:db8::5", "fe80::5"), ("10.0.0.5",), ("eth0",)), "update"),
        (A, AdvertPlan(("10.0.0.5",), ("10.0.0.5",), ("eth0",)), "restart"),  # a removal
        (A, AdvertPlan(("10.0.0.9", "fe80::5"), ("10.0.0.9",), ("eth0",)), "restart"),
        (A, AdvertPlan((*A.addresses, "10.0.0.6"), ("10.0.0.5", "10.0.0.6"), ("eth0",)), "restart"),
    ],
)
def test_refresh_action(old: AdvertPlan | None, new: AdvertPlan, action: str) -> None:
    assert refresh_action(old, new) == action


# --- the client's choice -----------------------------------------------------------------------


def srv(
    room: str, host: str, *addresses: str, port: int = 7420, group: str | None = None
) -> Server:
    return Server(
        f"{room} on {host}",
        room,
        host,
        addresses or ("10.0.0.5",),
        port,
        1,
        "",
        False,
        group=group,
    )


# --- several relays of one room (a backplane) ------------------------------------------------


def test_relays_of_one_room_are_one_room_the_nearest_first() -> None:
    networks = local_networks(PC)  # this PC is on 192.168.1.0/24
    far = srv("lobby", "h2", "10.1.0.2", group="9f2c41d07a3b5e86")
    near = srv("lobby", "h1", "192.168.1.40", group="9f2c41d07a3b5e86")
    other_backplane = srv("lobby", "h3", "192.168.1.41", group="00aa")
    alone = srv("lobby", "h4", "192.168.1.42")
    rooms = group_rooms([far, near, other_backplane, alone], networks)
    assert [[s.host for s in room.relays] for room in rooms] == [["h1", "h2"], ["h3"], ["h4"]]
    assert rooms[0].group == "9f2c41d07a3b5e86"
    out = io.StringIO()
    print_servers(stdout_console(out, wide=True), rooms, 1.0)
    text = out.getvalue()
    assert text.startswith("4 lanchat servers answered in 3 rooms")
    assert "lobby (2 relays, nearest first)" in text and "another relay of it" in text


def test_join_without_an_address_takes_the_nearest_relay_of_a_room_without_asking() -> None:
    far = srv("lobby", "h2", "10.1.0.2", group="9f2c")
    near = srv("lobby", "h1", "192.168.1.40", group="9f2c")
    asked: list[list[Server]] = []

    def pick(servers: list[Server]) -> Server | None:
        asked.append(servers)
        return None

    reached = reach_server(
        [far, near],
        None,
        seconds=1.0,
        networks=local_networks(PC),
        pick=pick,
        connect=lambda server, address, last: address,
    )
    assert reached.server is near and reached.connection == "192.168.1.40" and not asked


def test_the_txt_group_round_trips_and_a_strange_one_is_ignored() -> None:
    txt = txt_properties("lobby", "1.0", group="9f2c41d07a3b5e86")
    assert txt["group"] == "9f2c41d07a3b5e86"
    assert "group" not in txt_properties("lobby", "1.0")
    for value, seen in (("9f2c41d07a3b5e86", "9f2c41d07a3b5e86"), ("Nope!", None), ("", None)):
        server = parse_service(Record(properties=props(group=value)))
        assert server is not None and server.group == seen


def test_order_prefers_own_subnet_then_link_local() -> None:
    networks = local_networks(PC)
    assert ipaddress.ip_network("192.168.1.0/24") in networks
    assert ipaddress.ip_network("2001:db8::/64") in networks
    assert ipaddress.ip_network("172.17.0.0/16") not in networks  # its docker bridge
    assert not any(n.version == 4 and n.prefixlen == 8 for n in networks)  # no loopback
    addresses = ["172.17.0.1", "fe80::9%eth0", "2001:db8::9", "203.0.113.9", "192.168.1.40"]
    assert order_addresses(addresses, networks) == [
        "192.168.1.40",
        "fe80::9%eth0",  # fe80::/64 is on eth0 too
        "2001:db8::9",
        "172.17.0.1",
        "203.0.113.9",
    ]
    assert order_addresses(["fe80::9%eth0", "10.9.9.9"], []) == ["fe80::9%eth0", "10.9.9.9"]


def test_choose_server() -> None:
    lobby, physics = srv("lobby", "h1"), srv("Physics", "h3")
    with pytest.raises(UnreachableError, match=r"No lanchat server answered .* within 3 s") as e:
        choose_server([], None, seconds=3, pick=None)
    assert e.value.exit_code == ExitCode.UNREACHABLE and "doctor" in (e.value.hint or "")
    assert choose_server([lobby], None, seconds=3, pick=None) is lobby
    assert choose_server([lobby, physics], "physics", seconds=3, pick=None) is physics
    with pytest.raises(UnreachableError, match=r"room 'chem'.*'lobby' on h1"):
        choose_server([lobby, physics], "chem", seconds=3, pick=None)
    with pytest.raises(UsageError, match="2 lanchat servers answered") as several:
        choose_server([lobby, physics], None, seconds=3, pick=None)
    assert "--room" in (several.value.hint or "")
    assert choose_server([lobby, physics], None, seconds=3, pick=lambda s: s[1]) is physics
    with pytest.raises(UsageError):  # the user gave no answer
        choose_server([lobby, physics], None, seconds=3, pick=lambda s: None)
    twins = [lobby, srv("lobby", "h3")]
    with pytest.raises(UsageError) as same_room:
        choose_server(twins, "LOBBY", seconds=3, pick=None)
    assert "--room" not in (same_room.value.hint or "")  # --room cannot tell them apart
    assert matching_servers(twins, "Lobby") == twins


def test_try_in_turn_moves_on_only_when_unreachable() -> None:
    calls: list[tuple[str, bool]] = []

    def connect(outcomes: dict[str, LanchatError | None]) -> Callable[[str, bool], str]:
        def attempt(address: str, last: bool) -> str:
            calls.append((address, last))
            error = outcomes[address]
            if error is not None:
                raise error
            return f"connected to {address}"

        return attempt

    dead = UnreachableError("No answer from a within 2 s")
    result, used, failed = try_in_turn(["a", "b", "c"], connect({"a": dead, "b": None, "c": None}))
    assert (result, used, [a for a, _ in failed]) == ("connected to b", "b", ["a"])
    assert calls == [("a", False), ("b", False)]
    with pytest.raises(RejectedError):  # the server answered: no point trying another address
        try_in_turn(["a", "b"], connect({"a": RejectedError("name taken"), "b": None}))
    with pytest.raises(UnreachableError, match="a: No answer") as e:
        try_in_turn(["a", "b"], connect({"a": dead, "b": dead}))
    assert e.value.exit_code == ExitCode.UNREACHABLE


def test_reach_server_picks_then_tries_own_subnet_first() -> None:
    lobby = srv("lobby", "h1", "203.0.113.9", "192.168.1.40")
    physics = srv("physics", "h3")
    tried: list[tuple[str, str, bool]] = []

    def connect(server: Server, address: str, last: bool) -> str:
        tried.append((server.host, address, last))
        if address == "192.168.1.40":
            raise UnreachableError("No answer within 2 s")
        return f"connection to {address}"

    asked: list[list[Server]] = []

    def pick(found: list[Server]) -> Server | None:
        asked.append(found)
        return found[0]

    reached = reach_server(
        [lobby, physics], None, seconds=3, networks=local_networks(PC), pick=pick, connect=connect
    )
    assert asked == [[lobby, physics]]
    assert tried == [("h1", "192.168.1.40", False), ("h1", "203.0.113.9", True)]
    assert (reached.server, reached.connection, reached.address) == (
        lobby,
        "connection to 203.0.113.9",
        "203.0.113.9",
    )
    assert [a for a, _ in reached.failed] == ["192.168.1.40"]
    with pytest.raises(UsageError):  # several, and nobody to ask
        reach_server([lobby, physics], None, seconds=3, networks=[], pick=None, connect=connect)


# --- rendering ---------------------------------------------------------------------------------


def test_reach_report_names_the_failed_addresses_then_the_one_used() -> None:
    server = srv("lobby", "h1", "10.0.0.9", "192.168.1.40")
    dead = UnreachableError("No answer within 2 s")
    reached = Reached(server, "conn", "192.168.1.40", (("10.0.0.9", dead),))
    lines = [line.plain for line in reach_report(reached)]
    assert lines == [
        "* 10.0.0.9:7420 did not work: No answer within 2 s",
        "* Found 'lobby on h1' (room 'lobby'); connected via 192.168.1.40:7420.",
    ]


@pytest.mark.parametrize(
    ("servers", "hint"),
    [
        ([srv("lobby", "h1")], "Join with: lanchat join   (or by address"),
        ([srv("lobby", "h1"), srv("my room", "h3")], "Join with: lanchat join --room lobby"),
        ([srv("lobby", "h1"), srv("lobby", "h3")], "Join with: lanchat join 10.0.0.5:7420"),
    ],
)
def test_print_servers_says_how_to_join(servers: list[Server], hint: str) -> None:
    out = io.StringIO()
    print_servers(stdout_console(out), group_rooms(servers, []), 1.04)
    text = out.getvalue()
    assert text.startswith(f"{len(servers)} lanchat server")
    assert "ROOM" in text and "lobby on h1" in text and hint in text


def test_advertisement_text_and_dict() -> None:
    ad = Advertisement("advertised", "lobby on h1", ("10.0.0.5",))
    assert "'lobby on h1'" in advertisement_text(ad).plain
    assert ad.to_dict() == {
        "advertised": True,
        "state": "advertised",
        "name": "lobby on h1",
        "addresses": ["10.0.0.5"],
        "message": None,
    }
    failed = Advertisement("failed", message="mDNS does not work here (x)")
    assert "Not announced on the LAN: mDNS does not work" in advertisement_text(failed).plain


def test_watch_view_prints_a_line_per_change_and_changes_as_json() -> None:
    change = Change("removed", srv("lobby", "h1"), 1764100861.5123)
    assert change.to_dict() == {
        "event": "removed",
        "time": 1764100861.512,
        "server": change.server.to_dict(),
    }
    out = io.StringIO()
    with WatchView(stdout_console(out)) as view:  # not a terminal: lines, no live table
        view.show(None, [])
        view.show(change, [])
    lines = out.getvalue().splitlines()
    assert lines[0] == "Watching for lanchat servers; Ctrl-C stops."
    assert lines[1].endswith("- removed 'lobby on h1' room 'lobby' at 10.0.0.5:7420")
    assert len(lines) == 2


# --- the command line and the test guard (no mDNS here: root namespace) ------------------------


def test_serve_no_mdns_says_so_in_the_listening_event(lanchat_process: Any) -> None:
    serve = lanchat_process("serve", "--host", "127.0.0.1", "--port", "0", "--json", "--no-mdns")
    listening = serve.wait_json(lambda e: e.get("event") == "listening", timeout=10)
    assert listening["mdns"]["advertised"] is False and listening["mdns"]["state"] == "off"
    assert serve.terminate() == 0


def test_help_shows_the_discovery_options() -> None:
    serve_help = run_lanchat("serve", "--help").stdout
    assert "--no-mdns" in serve_help and "--interface" in serve_help
    assert "--room" in run_lanchat("join", "--help").stdout
    discover_help = run_lanchat("discover", "--help")
    assert discover_help.returncode == 0
    assert all(o in discover_help.stdout for o in ("--watch", "--timeout", "--json"))


@pytest.mark.parametrize(
    "args",
    [
        ["serve"],
        ["serve", "--port", "0", "--json"],
        ["--debug", "serve", "--room", "x"],
        ["discover", "--json"],
        ["join"],
        ["join", "--name", "ana", "--room", "lobby", "--timeout", "1"],
        ["join", "--json", "-n", "ana"],
    ],
)
def test_guard_refuses_mdns_from_the_root_namespace(args: list[str]) -> None:
    with pytest.raises(MdnsGuardError):
        check_mdns_safe(args, host=None)
    with pytest.raises(MdnsGuardError):  # before any process starts
        run_lanchat(*args)


@pytest.mark.parametrize(
    "args",
    [
        ["serve", "--no-mdns"],
        ["serve", "--help"],
        ["join", "127.0.0.1:7420"],
        ["join", "--name", "ana", "127.0.0.1"],
        ["join", "--timeout", "1", "--", "127.0.0.1"],
        ["--version"],
    ],
)
def test_guard_lets_safe_commands_run(args: list[str]) -> None:
    check_mdns_safe(args, host=None)


def test_the_mdns_kill_switch_stops_every_socket(monkeypatch: pytest.MonkeyPatch) -> None:
    """LANCHAT_NO_MDNS refuses before any socket exists: the tests' guarantee that nothing
    multicasts from this machine's real interfaces (conftest sets it for the root namespace)."""
    from lanchat.discovery.mdns import open_zeroconf
    from lanchat.discovery.selftest import hear_neighbours, see_own_advertisement

    monkeypatch.setenv("LANCHAT_NO_MDNS", "1")
    with pytest.raises(OSError, match="LANCHAT_NO_MDNS"):
        open_zeroconf(["127.0.0.1"], [])
    with pytest.raises(OSError, match="LANCHAT_NO_MDNS"):
        hear_neighbours("127.0.0.1", [], 0.1)
    sight = see_own_advertisement("127.0.0.1", 0.1)
    assert not sight.seen and "LANCHAT_NO_MDNS" in (sight.error or "")


def test_the_kill_switch_reaches_the_commands() -> None:
    """Even without --no-mdns (bypassing the test guard on purpose), nothing is sent."""
    import subprocess
    import sys

    from conftest import ROOT, lanchat_env
    from netlab import LineReader

    env = lanchat_env()
    assert env["LANCHAT_NO_MDNS"] == "1"
    found = subprocess.run(
        [sys.executable, "-m", "lanchat", "discover", "--json", "--timeout", "0.5"],
        capture_output=True,
        text=True,
        timeout=20,
        env=env,
        cwd=ROOT,
    )
    assert found.returncode == 4 and "LANCHAT_NO_MDNS" in found.stderr
    serve = subprocess.Popen(
        [sys.executable, "-m", "lanchat", "serve", "--host", "127.0.0.1", "--port", "0", "--json"],
        stdout=subprocess.PIPE,
        text=True,
        env=env,
        cwd=ROOT,
    )
    try:
        assert serve.stdout is not None
        listening = json.loads(LineReader(serve.stdout).readline(10))
        assert listening["mdns"]["state"] == "off"
    finally:
        serve.terminate()
        serve.wait(10)
        serve.stdout.close()  # type: ignore[union-attr]
