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
    "lanchat.line_client": 7,
    "lanchat.cli": 8,
    "lanchat.__main__": 9,
}
# Third-party packages and the only modules allowed to use them.
THIRD_PARTY = {
    "typer": {"lanchat.cli"},
    "click": set(),
    "rich": {"lanchat.cli", "lanchat.output"},
    "zeroconf": {"lanchat.discovery"},
    "prompt_toolkit": {"lanchat.join", "lanchat.line_client"},
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
