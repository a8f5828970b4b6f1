"""Admission: the per-address limit, refusals counted per address, address rules (--allow,
--deny) and bans; then the rules at work in a real `lanchat serve`, from other 127/8 addresses."""

from __future__ import annotations

import json
import re
import selectors
import socket
from typing import Any

import pytest

from conftest import WAIT, LineClient, run_lanchat
from lanchat.admission import (
    AddressBans,
    AddressLimit,
    AddressRules,
    Refusal,
    Refusals,
    Refuser,
    own_computer,
    parse_network,
    plain_ip,
)
from lanchat.errors import ExitCode


def test_an_address_gets_its_limit_and_a_released_slot_comes_back() -> None:
    limit = AddressLimit(2)
    assert limit.admit("10.0.0.5") and limit.admit("10.0.0.5")
    assert not limit.admit("10.0.0.5")
    assert limit.admit("10.0.0.6")  # another address has its own count
    limit.release("10.0.0.5")
    assert limit.admit("10.0.0.5")


def test_loopback_is_not_limited_unless_asked() -> None:
    free = AddressLimit(1)
    for address in ("127.0.0.1", "::1", "::ffff:127.0.0.1"):
        assert free.admit(address) and free.admit(address)
    strict = AddressLimit(1, loopback_too=True)
    assert strict.admit("127.0.0.1") and not strict.admit("127.0.0.1")


def test_no_limit_means_no_limit() -> None:
    limit = AddressLimit(0)
    assert all(limit.admit("10.0.0.5") for _ in range(1000))


def test_refusals_are_counted_per_address_and_reason_until_taken() -> None:
    refusals = Refusals()
    for _ in range(3):
        refusals.add("10.0.0.5", "too-many-connections")
    refusals.add("10.0.0.6", "server-full")
    taken = sorted(refusals.take(), key=lambda r: r.address)
    assert taken == [
        Refusal("10.0.0.5", "too-many-connections", 3),
        Refusal("10.0.0.6", "server-full", 1),
    ]
    assert taken[0].why == "too many connections from one address"
    assert refusals.take() == [] and refusals.total == 4


def test_a_refused_socket_hears_its_line_then_the_end() -> None:
    ours, theirs = socket.socketpair()
    with selectors.DefaultSelector() as selector:
        refuser = Refuser(selector)
        refuser.refuse(ours, "! Go away, politely.")
        theirs.settimeout(WAIT)
        assert theirs.recv(100) == b"! Go away, politely.\n"
        assert theirs.recv(100) == b""  # our side is shut
        theirs.close()  # the peer hangs up: the refuser closes its socket
        for key, _ in selector.select(WAIT):
            refuser.readable(key.fileobj)  # type: ignore[arg-type]
        assert refuser.timeout() is None  # nothing lingers any more
        assert ours.fileno() == -1


# --- address rules: --allow and --deny --------------------------------------------------------


def rules(allow: tuple[str, ...] = (), deny: tuple[str, ...] = ()) -> AddressRules:
    return AddressRules.parse(allow, deny)


@pytest.mark.parametrize(
    ("text", "network"),
    [
        ("10.0.0.0/8", "10.0.0.0/8"),
        ("10.0.0.7", "10.0.0.7/32"),
        (" 192.168.1.0/24 ", "192.168.1.0/24"),
        ("2001:db8::/32", "2001:db8::/32"),
        ("fe80::1", "fe80::1/128"),
        ("::ffff:10.0.0.0/104", "10.0.0.0/8"),  # an IPv4-mapped network is the IPv4 one
        ("::ffff:10.1.2.3", "10.1.2.3/32"),
    ],
)
def test_a_rule_is_a_network_or_a_bare_address(text: str, network: str) -> None:
    assert str(parse_network(text)) == network


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("10.0.0.5/8", "did you mean 10.0.0.0/8?"),
        ("bob", "not an IP address or network"),
        ("300.1.1.1", "not an IP address or network"),
        ("10.0.0.0/33", "not an IP address or network"),
        ("", "not an IP address or network"),
    ],
)
def test_a_bad_rule_says_what_is_wrong(text: str, says: str) -> None:
    with pytest.raises(ValueError, match=re.escape(says)):
        parse_network(text)


def test_deny_wins_and_an_allow_list_lets_in_only_its_networks() -> None:
    only = rules(allow=("10.0.0.0/8", "2001:db8::/32"), deny=("10.9.0.0/16",))
    assert only.admits("10.1.2.3") and only.admits("2001:db8::5")
    assert not only.admits("10.9.1.1")  # denied inside an allowed network
    assert not only.admits("192.168.1.5") and not only.admits("fd00::1")
    assert only.admits("::ffff:10.1.2.3")  # what a dual-stack listener sees for 10.1.2.3
    assert not only.admits("::ffff:10.9.1.1")
    assert only.admits("fe80::1%eth0") is False  # a zone does not hide an address
    deny = rules(deny=("192.168.1.66",))
    assert not deny.admits("192.168.1.66") and deny.admits("192.168.1.67")
    assert rules().admits("192.168.1.66") and not rules().active


def test_loopback_is_judged_only_by_rules_about_loopback() -> None:
    wide = rules(allow=("10.0.0.0/8",), deny=("0.0.0.0/0", "::/0"))
    for own in ("127.0.0.1", "::1", "::ffff:127.0.0.1", "127.0.0.2"):
        assert wide.admits(own), own  # the server's own `lanchat status` still works
    named = rules(allow=("127.0.0.1",), deny=("127.0.0.3",))
    assert named.admits("127.0.0.1")
    assert not named.admits("127.0.0.2")  # a loopback allow list applies to loopback
    assert not named.admits("127.0.0.3") and not named.admits("::1")
    assert rules(deny=("127.0.0.0/8",)).admits("::1")  # an IPv4 rule says nothing of ::1


def test_rules_read_back_as_people_write_them() -> None:
    assert rules(("10.0.0.0/8", "10.0.0.7"), ("fe80::1",)).to_texts() == (
        ("10.0.0.0/8", "10.0.0.7"),
        ("fe80::1",),
    )


def test_plain_ip_and_bans_compare_addresses_as_the_same_address() -> None:
    assert plain_ip("::ffff:10.0.0.5") == "10.0.0.5"
    assert plain_ip("fe80::1%eth0") == "fe80::1"
    assert plain_ip("2001:DB8::1") == "2001:db8::1"
    assert plain_ip("not an address") == "not an address"
    bans = AddressBans()
    bans.add("10.0.0.5")
    assert bans.barred("::ffff:10.0.0.5") and bans.barred("10.0.0.5")
    assert not bans.barred("10.0.0.6")


def test_the_servers_own_computer_is_its_usual_loopback_or_the_address_it_reached() -> None:
    assert own_computer("127.0.0.1", "127.0.0.1") and own_computer("::1", None)
    assert own_computer("::ffff:127.0.0.1", "::ffff:127.0.0.1")
    assert own_computer("192.168.1.10", "::ffff:192.168.1.10")  # to its own LAN address
    assert not own_computer("192.168.1.11", "192.168.1.10")
    assert not own_computer("127.0.0.2", "127.0.0.1")  # a source chosen on purpose


# --- with a real `lanchat serve`: refused at accept, said to both kinds, counted in the log -----


def connect_from(source: str, port: int) -> LineClient:
    """A client whose packets come from `source` (any 127/8 address is this machine's)."""
    client = LineClient.__new__(LineClient)
    client.sock = socket.create_connection(("127.0.0.1", port), WAIT, source_address=(source, 0))
    client._buffer = b""
    client.lines = []
    return client


def test_serve_refuses_denied_and_unlisted_addresses_with_a_line_and_logs_them(
    lanchat_process: Any,
) -> None:
    process = lanchat_process(
        "serve", "--host", "127.0.0.1", "--port", "0", "--json", "--no-mdns",
        "--allow", "127.0.0.1", "--allow", "127.0.0.2", "--deny", "127.0.0.2",
        "--allow", "127.0.0.4",
    )  # fmt: skip
    listening = process.wait_json(lambda e: e.get("event") == "listening", timeout=10)
    port = int(listening["port"])
    assert listening["allow"] == ["127.0.0.1", "127.0.0.2", "127.0.0.4"]
    assert listening["deny"] == ["127.0.0.2"]
    denied = connect_from("127.0.0.2", port)  # allowed, but denied too: deny wins
    assert denied.read_all() == [
        "! This server does not accept connections from your address (127.0.0.2)."
    ]
    unlisted = connect_from("127.0.0.3", port)
    unlisted.send_json({"type": "hello", "version": 1, "name": "x"})  # a lanchat client, too
    assert unlisted.read_all() == [
        "! This server does not accept connections from your address (127.0.0.3)."
    ]
    logged = {
        (e["address"], e["reason"], e["count"])
        for e in (
            process.wait_json(lambda e: e.get("event") == "refused", timeout=WAIT) for _ in range(2)
        )
    }
    assert logged == {("127.0.0.2", "denied", 1), ("127.0.0.3", "denied", 1)}
    allowed = connect_from("127.0.0.4", port)
    assert allowed.hello("ana")["type"] == "welcome"
    joined = process.wait_json(lambda e: e.get("event") == "join")
    assert joined["name"] == "ana" and joined["address"].startswith("127.0.0.4:")
    status = run_lanchat("status", "--port", str(port), "--json")  # from 127.0.0.1: let in
    moderation = json.loads(status.stdout)["moderation"]
    assert moderation["allow"] == ["127.0.0.1", "127.0.0.2", "127.0.0.4"]
    assert moderation["deny"] == ["127.0.0.2"]
    for client in (denied, unlisted, allowed):
        client.close()


def test_lanchat_join_from_a_denied_address_is_told_why(lanchat_process: Any) -> None:
    process = lanchat_process(
        "serve", "--host", "127.0.0.1", "--port", "0", "--no-mdns", "--deny", "127.0.0.1"
    )
    port = int(process.wait_line("lanchat join 127.0.0.1:").split(":")[1].split()[0])
    result = run_lanchat("join", f"127.0.0.1:{port}", "--name", "ana", input="hi\n")
    assert result.returncode == ExitCode.REJECTED, result.stderr
    assert "does not accept connections from your address (127.0.0.1)" in result.stderr
    line = process.wait_line("Refused")
    assert (
        line == "! Refused 1 connection from 127.0.0.1: an address --allow/--deny does not let in."
    )


@pytest.mark.parametrize(
    ("option", "value", "says"),
    [("--allow", "10.0.0.5/8", "did you mean 10.0.0.0/8?"), ("--deny", "eve", "not an IP")],
)
def test_a_bad_rule_is_a_usage_error(option: str, value: str, says: str) -> None:
    result = run_lanchat("serve", "--port", "0", "--no-mdns", option, value)
    assert result.returncode == ExitCode.USAGE
    assert says in result.stderr and f"{option} {value!r}" in result.stderr
    assert "Traceback" not in result.stderr
