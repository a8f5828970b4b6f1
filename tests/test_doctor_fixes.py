"""The fix texts of every OS (firewall/fixes.py and linux/, windows/, macos/fixes.py): the real
port, subnet, interface and zone filled in, quoted for the shell, never a bare sudo."""

from __future__ import annotations

import shlex

import pytest

from lanchat.doctor.firewall import fixes
from lanchat.doctor.firewall.linux import fixes as linux_fixes
from lanchat.doctor.firewall.windows import fixes as windows_fixes
from lanchat.doctor.result import CheckResult, Fix

PORT = 7000


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
