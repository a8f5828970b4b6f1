"""The doctor stays pure: only probe/ touches the OS (commands, sockets, psutil, zeroconf through
lanchat.discovery); every other module, in every subpackage, uses the standard library and the
doctor's own modules, runs nothing and prints nothing. The firewall's parse/match/decide modules
are stricter still: text and packets in, verdicts out, not even `os`."""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import pytest
from import_graph import PACKAGE, imports_of, module_name, selected_names

DOCTOR = PACKAGE / "doctor"
# The real probes: the OS one, and mDNS over lanchat.discovery.
PROBES = {"probe/system.py", "probe/mdns.py"}
MODULES = sorted(p for p in DOCTOR.rglob("*.py") if p.relative_to(DOCTOR).as_posix() not in PROBES)
FORBIDDEN = {
    *("subprocess", "socket", "shutil", "ctypes", "multiprocessing", "signal", "select"),
    *("rich", "typer", "zeroconf", "psutil", "lanchat.cli", "lanchat.output"),
}
# What the checks may take from outside the doctor: a data type and one pure text helper.
SHARED_TYPES = {"lanchat.netinfo": {"LocalAddress", "host_port"}}
# The firewall's pure core: parsers, matchers, deciders, the chain walk, the verdict model.
PURE_NAMES = {"parse.py", "match.py", "decide.py", "render.py", "chainwalk.py", "netmatch.py"}
PURE = sorted(p for p in (DOCTOR / "firewall").rglob("*.py") if p.name in PURE_NAMES)
PURE_EXTRA_FORBIDDEN = {"os", "time", "threading", "concurrent", "pathlib", "io"}


def rel(path: Path) -> str:
    return path.relative_to(DOCTOR).as_posix()


@pytest.mark.parametrize("path", MODULES, ids=rel)
def test_module_is_pure(path: Path) -> None:
    for name in imports_of(path):
        top = name.split(".")[0]
        assert name not in FORBIDDEN and top not in FORBIDDEN, f"{rel(path)} imports {name}"
        assert (
            top in sys.stdlib_module_names
            or top == "__future__"
            or name.startswith("lanchat.doctor")
            or name in SHARED_TYPES
        ), f"{rel(path)} imports {name}, which is neither the standard library nor lanchat.doctor"
    for module, allowed in SHARED_TYPES.items():
        names = selected_names(path, module)
        assert names <= allowed, f"{rel(path)} imports {names} from {module}"
    tree = ast.parse(path.read_text())
    calls = {
        node.func.id
        for node in ast.walk(tree)
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name)
    }
    assert not calls & {"print", "exec", "eval", "input", "open"}, rel(path)


@pytest.mark.parametrize("path", PURE, ids=rel)
def test_parse_and_decide_take_text_and_give_verdicts(path: Path) -> None:
    """No OS at all, and from the doctor only the firewall and the probe's data types."""
    for name in imports_of(path):
        top = name.split(".")[0]
        assert top not in PURE_EXTRA_FORBIDDEN, f"{rel(path)} imports {name}"
        if name.startswith("lanchat"):
            assert name.startswith("lanchat.doctor.firewall") or name == (
                "lanchat.doctor.probe.interface"
            ), f"{rel(path)} imports {name}"
    assert selected_names(path, "lanchat.doctor.probe.interface") <= {"CommandOutput"}, rel(path)


def test_only_the_probe_touches_the_system() -> None:
    """probe/system.py is where commands and sockets are; everything else is tested with fakes."""
    assert {"subprocess", "socket"} <= imports_of(DOCTOR / "probe" / "system.py")
    assert "lanchat.discovery" in {
        ".".join(n.split(".")[:2]) for n in imports_of(DOCTOR / "probe" / "mdns.py")
    }


def test_every_module_is_checked() -> None:
    """The walk is recursive: every subpackage's modules are among the checked ones."""
    checked = {rel(p) for p in MODULES}
    assert checked | PROBES == {rel(p) for p in DOCTOR.rglob("*.py")}
    assert {
        "firewall/verdict.py",
        "firewall/linux/decide.py",
        "firewall/linux/nft/match.py",
        "firewall/linux/iptables/parse.py",
        "firewall/windows/decide.py",
        "firewall/macos/parse.py",
        "probe/interface.py",
        "checks/virtual.py",
        "run.py",
    } <= checked
    assert {rel(p) for p in PURE} >= {"firewall/windows/parse.py", "firewall/linux/nft/decide.py"}
    assert module_name(DOCTOR / "probe" / "system.py") == "lanchat.doctor.probe.system"
