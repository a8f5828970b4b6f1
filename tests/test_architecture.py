"""The dependency direction of house-style.md, checked by parsing every import (ast), including
the ones inside functions and relative ones, in every package and subpackage; the doctor's
subpackages have layers of their own (DOCTOR_LAYERS)."""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import pytest
from import_graph import PACKAGE, imports_of, module_name

# A module may import lanchat modules of a lower layer only.
LAYERS = {
    "lanchat": 0,
    "lanchat.errors": 0,
    "lanchat.tuning": 0,
    "lanchat.protocol": 1,
    "lanchat.stopping": 1,
    "lanchat.admission": 1,  # who may connect: stdlib only
    "lanchat.cores": 1,
    "lanchat.paths": 1,  # where lanchat's own files live: stdlib only
    "lanchat.hangup": 1,  # how a connection ends at the socket: stdlib only
    "lanchat.logqueue": 1,  # the room's events on their way to serve's log: stdlib only
    "lanchat.room": 2,  # the room's rules: protocol only, no sockets, no threads
    "lanchat.netinfo": 2,
    "lanchat.auth": 2,  # logins: secrets as verifiers, attempts, the conversation (sans-IO)
    "lanchat.fanout": 3,  # delivery (knows the room's Member type only)
    "lanchat.store": 3,  # history on disk (SQLite): protocol, errors and the room's Past
    "lanchat.web": 3,  # HTTP (h11) and WebSocket (websockets) for browsers, the page's files
    "lanchat.tls": 3,  # TLS: the relay's key (cryptography), TlsSocket, pins and trust
    "lanchat.hub": 4,  # applies the room's outputs to the fan-out
    "lanchat.connection": 5,
    "lanchat.backplane": 5,  # several relays, one room: Redis (redis-py) under the hub
    "lanchat.relay": 6,
    "lanchat.client": 6,
    "lanchat.discovery": 6,
    "lanchat.status": 7,
    "lanchat.session": 7,  # a chat across reconnects: resume and the outbox (client)
    "lanchat.doctor": 7,
    "lanchat.serving": 7,
    "lanchat.output": 8,
    "lanchat.join": 9,
    "lanchat.line_client": 9,
    "lanchat.cli": 10,
    "lanchat.__main__": 11,
}
# Inside the doctor, the same rule one level down: data, then the parsers and deciders, then the
# faces that collect through the probe, then the checks that call them, then the run. The longest
# matching prefix gives a module's layer.
DOCTOR_LAYERS = {
    "lanchat.doctor": 0,
    "lanchat.doctor.result": 0,  # what every check returns
    "lanchat.doctor.probe": 0,  # probe.interface: the Probe, MdnsProbe and their data types
    "lanchat.doctor.firewall": 0,  # the package's docstring; firewall.verdict: the verdict model
    "lanchat.doctor.context": 1,  # what the server-side checks are asked about
    "lanchat.doctor.answer": 1,
    "lanchat.doctor.probe.system": 1,  # the real probes: above the interface they implement
    "lanchat.doctor.probe.mdns": 1,
    "lanchat.doctor.firewall.linux": 2,  # parse, match, decide: text and packets in, verdicts out
    "lanchat.doctor.firewall.windows": 2,
    "lanchat.doctor.firewall.macos": 2,
    "lanchat.doctor.firewall.fixes": 3,  # fix texts and the collection through the probe
    "lanchat.doctor.firewall.linux.fixes": 3,
    "lanchat.doctor.firewall.linux.collect": 3,
    "lanchat.doctor.firewall.windows.fixes": 3,
    "lanchat.doctor.firewall.macos.fixes": 3,
    "lanchat.doctor.firewall.linux.checks": 4,  # each OS's face: check results
    "lanchat.doctor.firewall.windows.checks": 4,
    "lanchat.doctor.firewall.macos.checks": 4,
    "lanchat.doctor.checks": 5,  # one module per concern; checks.firewall picks the OS's face
    "lanchat.doctor.run": 6,
}
# Third-party packages and the only modules allowed to use them.
THIRD_PARTY = {
    "typer": {"lanchat.cli"},
    "click": set(),
    "rich": {"lanchat.cli", "lanchat.output"},
    "zeroconf": {"lanchat.discovery"},
    "prompt_toolkit": {"lanchat.join", "lanchat.line_client"},
    "psutil": {"lanchat.netinfo", "lanchat.status", "lanchat.doctor"},
    "websockets": {"lanchat.web"},
    "h11": {"lanchat.web"},
    "segno": {"lanchat.output"},
    "redis": {"lanchat.backplane"},
    "cryptography": {"lanchat.tls"},
}


def layer_of(module: str) -> int:
    """The layer of a lanchat module; a module of a subpackage sits in its package's layer."""
    while module not in LAYERS and module.count(".") > 1:
        module = module.rsplit(".", 1)[0]
    if module not in LAYERS:
        raise KeyError(f"{module} has no layer in LAYERS: add it where it belongs")
    return LAYERS[module]


def doctor_layer(module: str) -> int:
    """The layer of a doctor module: its longest prefix in DOCTOR_LAYERS."""
    while module not in DOCTOR_LAYERS:
        module = module.rpartition(".")[0]
        if not module:
            raise KeyError("not a doctor module")
    return DOCTOR_LAYERS[module]


MODULES = sorted(PACKAGE.rglob("*.py"))
DOCTOR_MODULES = [p for p in MODULES if module_name(p).startswith("lanchat.doctor")]


@pytest.mark.parametrize("path", MODULES, ids=module_name)
def test_imports_point_down_the_layers(path: Path) -> None:
    me = module_name(path)
    package = ".".join(me.split(".")[:2])  # the feature package: lanchat.doctor, lanchat.output...
    for imported in imports_of(path):
        top = imported.split(".")[0]
        if top == "lanchat":
            inside = imported == package or imported.startswith(package + ".")
            if inside and package != "lanchat":
                continue  # inside a feature package, its own layers apply (doctor: below)
            assert layer_of(imported) < layer_of(me) or imported == "lanchat", (
                f"{me} imports {imported}: dependencies must point down the layers"
            )
        elif top in THIRD_PARTY:
            allowed = THIRD_PARTY[top]
            assert any(me == a or me.startswith(a + ".") for a in allowed), (
                f"{me} imports {top}; only {sorted(allowed) or 'nobody'} may"
            )
        else:
            assert top in sys.stdlib_module_names or top == "__future__", (
                f"{me} imports {top}, which is neither stdlib nor a chosen dependency"
            )


def test_protocol_and_errors_use_the_standard_library_only() -> None:
    pure = [PACKAGE / "errors.py", *sorted((PACKAGE / "protocol").glob("*.py"))]
    assert len(pure) > 2  # the protocol package was found
    for path in pure:
        for imported in imports_of(path):
            top = imported.split(".")[0]
            inside = imported == "lanchat" or imported.startswith("lanchat.protocol")
            assert top in sys.stdlib_module_names or inside or top == "__future__", (path, imported)


def test_the_room_does_no_io() -> None:
    """The room decides; it neither sends, nor waits, nor locks (tests/test_room.py needs no
    socket because of this). Every module of the room package uses the protocol and itself."""
    modules = sorted((PACKAGE / "room").glob("*.py"))
    assert len(modules) >= 4
    for path in modules:
        imported = imports_of(path)
        tops = {name.split(".")[0] for name in imported}
        assert not tops & {"socket", "select", "selectors", "threading", "asyncio"}, path
        lanchat = {name for name in imported if name.startswith("lanchat.")}
        assert all(n.startswith(("lanchat.protocol", "lanchat.room")) for n in lanchat), path


def test_the_backplanes_data_does_no_io() -> None:
    """The backplane's entries, outbox and scripts are pure (tests/test_backplane_entries.py
    needs no Redis because of this): only link.py talks to Redis, with threads."""
    pure = [PACKAGE / "backplane" / f"{name}.py" for name in ("entries", "outbox", "scripts")]
    for path in pure:
        tops = {name.split(".")[0] for name in imports_of(path)}
        assert not tops & {"socket", "select", "selectors", "threading", "redis"}, path


def test_every_module_has_a_layer() -> None:
    for path in MODULES:
        layer_of(module_name(path))  # raises KeyError for a module the table does not know
    with pytest.raises(KeyError):
        layer_of("lanchat.not_a_module")


@pytest.mark.parametrize("path", DOCTOR_MODULES, ids=module_name)
def test_doctor_subpackages_point_down_their_layers(path: Path) -> None:
    me = module_name(path)
    for imported in imports_of(path):
        if imported.startswith("lanchat.doctor.") and not me.startswith(imported + "."):
            assert doctor_layer(imported) <= doctor_layer(me), (
                f"{me} imports {imported}: inside the doctor, dependencies point down "
                "(data, parse/decide, fixes/collect, OS faces, checks, run)"
            )


def test_the_firewall_never_imports_the_checks_and_the_doctor_never_renders() -> None:
    for path in DOCTOR_MODULES:
        me, imported = module_name(path), imports_of(path)
        rendering = {
            i for i in imported if i.split(".")[:2] in (["lanchat", "output"], ["lanchat", "cli"])
        }
        assert not rendering, (
            f"{me} imports {rendering}: the doctor returns data, output renders it"
        )
        if me.startswith("lanchat.doctor.firewall"):
            assert not {i for i in imported if i.startswith("lanchat.doctor.checks")}, me


def test_every_doctor_subpackage_has_a_layer() -> None:
    packages = {module_name(p) for p in DOCTOR_MODULES if p.name == "__init__.py"}
    assert {
        "lanchat.doctor.probe",
        "lanchat.doctor.checks",
        "lanchat.doctor.firewall.linux.nft",
    } <= packages
    for package in packages:
        doctor_layer(package)
    assert doctor_layer("lanchat.doctor.firewall.linux.nft.match") == 2
    assert doctor_layer("lanchat.doctor.firewall.windows.checks") == 4


# The front ends: the only modules that read the terminal and the only users of lanchat.output.
FRONT_ENDS = ("lanchat.cli", "lanchat.join", "lanchat.line_client", "lanchat.__main__")
TERMINAL_INPUT = ("prompt_toolkit", "getpass", "readline", "termios", "tty", "msvcrt")
PROMPTERS = ("typer", "click", "Prompt", "Confirm", "IntPrompt", "FloatPrompt")
PROMPTS = ("confirm", "ask", "getchar", "edit")


def reads_input(path: Path) -> list[str]:
    """Where a module reads the terminal: input(), sys.stdin, a prompt (typer/click/rich), or
    an input library; each as 'line: what'."""
    tree = ast.parse(path.read_text(), filename=str(path))
    found: list[str] = []
    for node in ast.walk(tree):
        what = None
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name):
            what = node.func.id if node.func.id in ("input", "getpass") else None
        elif isinstance(node, ast.Attribute):
            owner = node.value.id if isinstance(node.value, ast.Name) else "?"
            stdin = node.attr in ("stdin", "__stdin__") and owner == "sys"
            prompt = node.attr == "prompt" or (owner in PROMPTERS and node.attr in PROMPTS)
            if stdin or prompt:  # `session.prompt` (prompt_toolkit), `typer.confirm`, ...
                what = f"{owner}.{node.attr}"
        elif isinstance(node, ast.Name) and node.id == "stdin":
            what = "stdin"
        if what is not None:
            found.append(f"{node.lineno}: {what}")
    for imported in imports_of(path):
        if imported.split(".")[0] in TERMINAL_INPUT or imported.startswith("rich.prompt"):
            found.append(f"imports {imported}")
    return found


def is_front_end(module: str) -> bool:
    return any(module == f or module.startswith(f + ".") for f in FRONT_ENDS)


@pytest.mark.parametrize("path", MODULES, ids=module_name)
def test_only_the_front_ends_read_input(path: Path) -> None:
    if not is_front_end(module_name(path)):
        assert reads_input(path) == [], "terminal input belongs in cli/ or join.py, not here"


@pytest.mark.parametrize("path", MODULES, ids=module_name)
def test_features_never_import_output(path: Path) -> None:
    me = module_name(path)
    if is_front_end(me) or me.startswith("lanchat.output"):
        return
    used = {i for i in imports_of(path) if i == "lanchat.output" or i.startswith("lanchat.output.")}
    assert not used, f"{me} imports {used}: rendering is for the front ends (cli, join)"


def test_the_input_check_finds_input(tmp_path: Path) -> None:
    cases = {
        "import sys\nline = sys.stdin.readline()\n": "sys.stdin",
        "answer = input('which? ')\n": "input",
        "import typer\nname = typer.prompt('name')\n": "typer.prompt",
        "from prompt_toolkit import PromptSession\n": "prompt_toolkit",
        "from rich.prompt import Prompt\n": "rich.prompt",
        "import click\nok = click.confirm('sure?')\n": "click.confirm",
        "def ask(stream=None):\n    from sys import stdin\n    return stdin\n": "stdin",
    }
    for source, expected in cases.items():
        module = tmp_path / "module.py"
        module.write_text(source)
        assert any(expected in found for found in reads_input(module)), source
    module.write_text("def render(text: str) -> str:\n    return text.upper()\n")
    assert reads_input(module) == []
