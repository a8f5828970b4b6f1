"""The rule evaluators and parsers stay pure: standard library only, no commands, no printing."""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import pytest

DOCTOR = Path(__file__).parent.parent / "lanchat" / "doctor"
MODULES = sorted(DOCTOR.glob("*.py"))
FORBIDDEN = {"subprocess", "socket", "rich", "typer", "zeroconf", "psutil", "lanchat.cli"}


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
        assert top in sys.stdlib_module_names or name.startswith("lanchat.doctor"), (
            f"{path.name} imports {name}, which is neither the standard library nor lanchat.doctor"
        )
    calls = {
        node.func.id
        for node in ast.walk(tree)
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name)
    }
    assert not calls & {"print", "exec", "eval", "input"}, path.name


def test_every_module_is_checked() -> None:
    assert {p.name for p in MODULES} >= {
        "__init__.py",
        "packet.py",
        "chainwalk.py",
        "netmatch.py",
        "nft.py",
        "iptables.py",
        "linux_firewall.py",
        "windows.py",
        "macos.py",
    }
