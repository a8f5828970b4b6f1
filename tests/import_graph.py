"""Reading a module's imports with ast, for the guards (test_architecture.py and
test_doctor_purity.py): every import, also inside functions, relative ones resolved."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "lanchat"


def module_name(path: Path) -> str:
    """lanchat/doctor/firewall/linux/decide.py -> lanchat.doctor.firewall.linux.decide."""
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _is_module(name: str) -> bool:
    relative = Path(*name.split("."))
    root = PACKAGE.parent
    return (root / relative).with_suffix(".py").exists() or (root / relative).is_dir()


def _imports(path: Path) -> list[tuple[str, tuple[str, ...]]]:
    """(module, names taken from it) for every import statement; relative ones made absolute."""
    tree = ast.parse(path.read_text(), filename=str(path))
    inside = path.resolve().is_relative_to(PACKAGE.parent)  # a test's own sample file is not
    me = module_name(path) if inside else path.stem
    package = me if path.name == "__init__.py" else me.rpartition(".")[0]
    found: list[tuple[str, tuple[str, ...]]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(alias.name, ()) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            module = node.module or ""
            if node.level:  # from . import x, from ..probe import y
                base = package.split(".")
                base = base[: len(base) - (node.level - 1)]
                module = ".".join([*base, module] if module else base)
            found.append((module, tuple(alias.name for alias in node.names)))
    return found


def imports_of(path: Path) -> set[str]:
    """Every module the file imports; `from pkg import mod` names pkg and pkg.mod."""
    found: set[str] = set()
    for module, names in _imports(path):
        found.add(module)
        found.update(f"{module}.{name}" for name in names if _is_module(f"{module}.{name}"))
    return found


def selected_names(path: Path, module: str) -> set[str]:
    """The names the file takes with `from <module> import ...` (relative forms included)."""
    return {name for found, names in _imports(path) if found == module for name in names}
