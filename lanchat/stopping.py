"""Stopping a long-running command (serve, discover --watch, status --watch) on Ctrl-C or SIGTERM:
the signal raises in the main thread, and further signals are ignored while goodbyes go out."""

from __future__ import annotations

import signal
from types import FrameType
from typing import Any


class StopRequested(Exception):
    """Raised in the main thread by SIGTERM (Ctrl-C raises KeyboardInterrupt)."""


def _raise_stop(signum: int, frame: FrameType | None) -> None:
    # Raising, not setting an Event: a second signal arriving inside Event.set() would deadlock
    # on the Event's own lock (GNU timeout sends SIGTERM twice; docs/netlab.md, "Signal handlers
    # and locks").
    raise StopRequested


def stop_on_sigterm() -> Any:
    """Make SIGTERM raise StopRequested (where the OS has it); returns the previous handler."""
    if not hasattr(signal, "SIGTERM"):
        return None
    return signal.signal(signal.SIGTERM, _raise_stop)


def ignore_stop_signals() -> None:
    """A second Ctrl-C or SIGTERM must not cut the goodbyes short."""
    for name in ("SIGINT", "SIGTERM"):
        if hasattr(signal, name):
            signal.signal(getattr(signal, name), signal.SIG_IGN)


def restore_sigterm(previous: Any) -> None:
    if previous is not None and hasattr(signal, "SIGTERM"):
        signal.signal(signal.SIGTERM, previous)
