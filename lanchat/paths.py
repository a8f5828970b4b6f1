"""Where lanchat keeps its own files: the relay's TLS key, pinned servers, the operator token.

One directory per user, the platform's usual place for configuration (standard library only):
`$LANCHAT_CONFIG_DIR` if set (tests and portable installs), else `%APPDATA%\\lanchat` on Windows,
`~/Library/Application Support/lanchat` on macOS, `$XDG_CONFIG_HOME/lanchat` or
`~/.config/lanchat` elsewhere. It is created readable by its owner only (0700 where the
platform has modes): it holds secrets.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

CONFIG_DIR_ENV = "LANCHAT_CONFIG_DIR"


def config_dir(*, create: bool = True) -> Path:
    """The user's lanchat directory; made (owner-only) when `create` and missing."""
    explicit = os.environ.get(CONFIG_DIR_ENV)
    if explicit:
        path = Path(explicit)
    elif sys.platform == "win32":
        path = Path(os.environ.get("APPDATA") or Path.home() / "AppData" / "Roaming") / "lanchat"
    elif sys.platform == "darwin":
        path = Path.home() / "Library" / "Application Support" / "lanchat"
    else:
        base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
        path = Path(base) / "lanchat"
    if create:
        path.mkdir(mode=0o700, parents=True, exist_ok=True)
    return path


def write_private(path: Path, data: bytes) -> None:
    """Write a file only its owner can read, whole or not at all (a crash leaves the old one)."""
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    temporary = path.with_name(path.name + ".tmp")
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        with os.fdopen(descriptor, "wb") as file:
            file.write(data)
            file.flush()
            os.fsync(file.fileno())
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
    os.replace(temporary, path)
