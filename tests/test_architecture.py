"""The dependency direction of house-style.md, checked by parsing every import (ast), including
the ones inside functions."""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "lanchat"

# A module may import lanchat modules of a lower layer only.
LAYERS = {
    "lanchat": 0,
    "lanchat.errors": 0,
    "lanchat.protocol": 1,
    "lanchat.stopping": 1,
    "lanchat.cores": 1,
    "lanchat.fanout": 2,
    "lanchat.netinfo": 2,
    "lanchat.room": 3,
    "lanchat.relay": 4,
    "lanchat.client": 4,
    "lanchat.discovery": 4,
    "lanchat.status": 5,
    "lanchat.doctor": 5,
    "lanchat.serving": 5,
    "lanchat.output": 6,
    "lanchat.join": 7,
    "lanchat.cli": 8,
    "lanchat.__main__": 9,
}
# Third-party packages and the only modules allowed to use them.
THIRD_PARTY = {
    "typer": {"lanchat.cli"},
    "click": set(),
    "rich": {"lanchat.cli", "lanchat.output"},
    "zeroconf": {"lanchat.discovery"},
    "prompt_toolkit": {"lanchat.join"},
    "psutil": {"lanchat.netinfo", "lanchat.status", "lanchat.doctor"},
}


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports_of(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.add(node.module)
            if node.module == "lanchat":  # `from lanchat import x` may name a module
                found.update(
                    f"lanchat.{a.name}"
                    for a in node.names
                    if (PACKAGE / f"{a.name}.py").exists() or (PACKAGE / a.name).is_dir()
                )
    return found


def layer_of(module: str) -> int:
    """The layer of a lanchat module; a module of a subpackage sits in its package's layer."""
    while module not in LAYERS and module.count(".") > 1:
        module = module.rsplit(".", 1)[0]
    if module not in LAYERS:
        raise KeyError(f"{module} has no layer in LAYERS: add it where it belongs")
    return LAYERS[module]


MODULES = sorted(PACKAGE.rglob("*.py"))


@pytest.mark.parametrize("path", MODULES, ids=module_name)
def test_imports_point_down_the_layers(path: Path) -> None:
    me = module_name(path)
    package = me if path.name == "__init__.py" else me.rsplit(".", 1)[0]
    for imported in imports_of(path):
        top = imported.split(".")[0]
        if top == "lanchat":
            inside = imported == package or imported.startswith(package + ".")
            if inside and package != "lanchat":
                continue  # modules of one subpackage (doctor) may use each other
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


def test_every_module_has_a_layer() -> None:
    for path in MODULES:
        layer_of(module_name(path))  # raises KeyError for a module the table does not know
    with pytest.raises(KeyError):
        layer_of("lanchat.not_a_module")


# The front ends: the only modules that read the terminal and the only users of lanchat.output.
FRONT_ENDS = ("lanchat.cli", "lanchat.join", "lanchat.__main__")
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
