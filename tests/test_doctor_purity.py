"""The doctor stays pure: its evaluators, parsers and checks use the standard library only, run no
commands and print nothing. One module, system.py, is the real probe that touches the OS."""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import pytest

DOCTOR = Path(__file__).parent.parent / "lanchat" / "doctor"
PROBE = "probe/system.py"  # the real probe: commands, sockets, psutil, lanchat.client
# The real probes: the OS one, and mDNS over lanchat.discovery.
PROBES = {PROBE, "probe/mdns.py"}
MODULES = sorted(p for p in DOCTOR.rglob("*.py") if p.relative_to(DOCTOR).as_posix() not in PROBES)
FORBIDDEN = {"subprocess", "socket", "rich", "typer", "zeroconf", "psutil", "lanchat.cli"}
# What the checks may take from outside the doctor: a data type and one pure text helper.
SHARED_TYPES = {"lanchat.netinfo": {"LocalAddress", "host_port"}}


def imported(tree: ast.AST) -> set[str]:
    """Every module name an AST imports."""
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
    return names


@pytest.mark.parametrize("path", MODULES, ids=lambda p: p.name)
def test_module_is_pure(path: Path) -> None:
    tree = ast.parse(path.read_text())
    for name in imported(tree):
        top = name.split(".")[0]
        assert name not in FORBIDDEN and top not in FORBIDDEN, f"{path.name} imports {name}"
        assert (
            top in sys.stdlib_module_names
            or name.startswith("lanchat.doctor")
            or name in SHARED_TYPES
        ), f"{path.name} imports {name}, which is neither the standard library nor lanchat.doctor"
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module in SHARED_TYPES:
            names = {alias.name for alias in node.names}
            assert names <= SHARED_TYPES[node.module], f"{path.name} imports {names}"
    calls = {
        node.func.id
        for node in ast.walk(tree)
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name)
    }
    assert not calls & {"print", "exec", "eval", "input"}, path.name


def test_only_the_probe_touches_the_system() -> None:
    """system.py is where commands and sockets are; everything else is tested with fakes."""
    tree = ast.parse((DOCTOR / PROBE).read_text())
    assert {"subprocess", "socket"} <= imported(tree)


def test_every_module_is_checked() -> None:
    assert {p.relative_to(DOCTOR).as_posix() for p in MODULES} >= {
        "__init__.py",
        "firewall/verdict.py",
        "firewall/linux/chainwalk.py",
        "firewall/linux/netmatch.py",
        "firewall/linux/nft/decide.py",
        "firewall/linux/iptables/decide.py",
        "firewall/linux/decide.py",
        "firewall/windows/decide.py",
        "firewall/macos/decide.py",
        "result.py",
        "probe/interface.py",
        "checks/server.py",
        "checks/peer.py",
        "firewall/linux/collect.py",
        "answer.py",
        "run.py",
    }
