"""What a failed connect() says to the user, and how addresses are written (pure)."""

from __future__ import annotations

import errno

import pytest

from lanchat.client import describe_connect_error, parse_address
from lanchat.doctor.probe.system import SystemProbe
from lanchat.errors import UsageError
from lanchat.netinfo import host_port


@pytest.mark.parametrize(
    ("host", "text"),
    [("10.0.0.5", "10.0.0.5:7420"), ("fd00::1", "[fd00::1]:7420"), ("pc.local", "pc.local:7420")],
)
def test_host_port_brackets_ipv6(host: str, text: str) -> None:
    assert host_port(host, 7420) == text


def test_an_admin_prohibited_reject_is_named_and_the_hint_has_no_zone() -> None:
    error = PermissionError(errno.EACCES, "Permission denied")
    said = describe_connect_error("fe80::1%eth0", 7420, error, 3.0)
    assert said.message.startswith(
        "A firewall rejected the connection to [fe80::1%eth0]:7420 as 'administratively prohibited'"
    )
    # eth0 is this PC's interface: on the server the address is fe80::1.
    assert said.hint == "Run `lanchat doctor --port 7420` on fe80::1: it prints the rule to add."


def test_other_failures_name_the_endpoint_with_brackets() -> None:
    said = describe_connect_error("fd00::1", 7420, OSError(errno.EADDRNOTAVAIL, "no"), 3.0)
    assert "Run `lanchat doctor [fd00::1]:7420` here" in (said.hint or "")


def test_resolve_keeps_an_ipv6_zone() -> None:
    # A numeric address: getaddrinfo answers without any lookup on the network.
    resolved = SystemProbe().resolve("fe80::1%lo", 7420)
    assert resolved.addresses == ("fe80::1%lo",)
    assert SystemProbe().resolve("fd00::1", 7420).addresses == ("fd00::1",)


@pytest.mark.parametrize(
    ("text", "parsed"),
    [
        ("10.0.0.5", ("10.0.0.5", 7420)),
        ("10.0.0.5:7421", ("10.0.0.5", 7421)),
        ("[::1]:17635", ("::1", 17635)),
        ("fe80::1%eth0", ("fe80::1%eth0", 7420)),
        ("fe80::1:7420", ("fe80::1:7420", 7420)),  # a valid address as it stands: its own host
        (None, ("127.0.0.1", 7420)),
    ],
)
def test_parse_address(text: str | None, parsed: tuple[str, int]) -> None:
    assert parse_address(text) == parsed


@pytest.mark.parametrize(("text", "said"), [("", "An empty address"), ("  ", "An empty address")])
def test_an_empty_address_is_refused_not_taken_for_this_pc(text: str, said: str) -> None:
    with pytest.raises(UsageError) as raised:
        parse_address(text)
    assert raised.value.message.startswith(said)


@pytest.mark.parametrize(
    ("text", "hint"),
    [("::1:17635", "Write [::1]:17635."), ("fd00::2:65000", "Write [fd00::2]:65000.")],
)
def test_an_ipv6_address_with_an_unbracketed_port_asks_for_brackets(text: str, hint: str) -> None:
    with pytest.raises(UsageError) as raised:
        parse_address(text)
    assert "needs brackets" in raised.value.message
    assert raised.value.hint == hint
