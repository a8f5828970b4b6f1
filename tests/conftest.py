"""Shared fixtures: the multi-host lab (tests/netlab.py); merge into the main conftest."""

from netlab import lab_factory  # noqa: F401
