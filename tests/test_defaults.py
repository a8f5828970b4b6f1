"""The defaults of lanchat.protocol.defaults are the ones the relay, `--help` and the docs use."""

from __future__ import annotations

import inspect

from conftest import ROOT, run_lanchat
from lanchat.client import GREETING_WAIT_SECONDS, HELLO_ANSWER_SECONDS
from lanchat.protocol import (
    DEFAULT_HISTORY,
    DEFAULT_KEEPALIVE_SECONDS,
    DEFAULT_MAX_CLIENTS,
    DEFAULT_MAX_PER_ADDRESS,
    DEFAULT_MAX_RATE,
    DEFAULT_PORT,
    DEFAULT_ROOM,
)
from lanchat.relay import Relay
from lanchat.room import Room
from lanchat.serving import ServeOptions


def test_the_relay_and_serve_use_the_defaults() -> None:
    relay = inspect.signature(Relay).parameters
    assert relay["port"].default == DEFAULT_PORT
    assert relay["room"].default == DEFAULT_ROOM
    assert relay["history"].default == DEFAULT_HISTORY
    assert relay["max_clients"].default == DEFAULT_MAX_CLIENTS
    assert relay["keepalive"].default == DEFAULT_KEEPALIVE_SECONDS
    assert relay["max_rate"].default == DEFAULT_MAX_RATE
    assert relay["max_per_address"].default == DEFAULT_MAX_PER_ADDRESS
    room = inspect.signature(Room).parameters
    assert (room["name"].default, room["history"].default) == (DEFAULT_ROOM, DEFAULT_HISTORY)
    options = ServeOptions()
    assert (options.port, options.room, options.history) == (
        DEFAULT_PORT,
        DEFAULT_ROOM,
        DEFAULT_HISTORY,
    )
    assert (options.max_clients, options.keepalive, options.max_rate) == (
        DEFAULT_MAX_CLIENTS,
        DEFAULT_KEEPALIVE_SECONDS,
        DEFAULT_MAX_RATE,
    )


def test_serve_help_shows_the_defaults() -> None:
    shown = " ".join(run_lanchat("serve", "--help").stdout.split())  # unwrapped
    for default in (
        f"default: {DEFAULT_PORT};",
        f"default: {DEFAULT_ROOM}]",
        f"default: {DEFAULT_HISTORY};",
        f"default: {DEFAULT_MAX_CLIENTS};",
        f"default: {DEFAULT_KEEPALIVE_SECONDS};",
        f"default: {DEFAULT_MAX_RATE};",
        f"default: {DEFAULT_MAX_PER_ADDRESS};",
    ):
        assert default in shown


def test_the_docs_state_the_defaults() -> None:
    def doc(name: str) -> str:
        return " ".join((ROOT / "docs" / name).read_text().split())

    assert f"(`--history`, default {DEFAULT_HISTORY})" in doc("protocol.md")
    assert f"`ncat HOST {DEFAULT_PORT}`" in doc("protocol.md")
    assert f"(default {DEFAULT_KEEPALIVE_SECONDS:g})" in doc("status.md")
    assert f"(`--max-rate`, default {DEFAULT_MAX_RATE:g} lines per second)" in doc("protocol.md")
    assert f"(`--max-per-address`, default {DEFAULT_MAX_PER_ADDRESS};" in doc("protocol.md")
    assert f"a port other than {DEFAULT_PORT}" in doc("discovery.md")
    assert f"({DEFAULT_PORT} by default)" in doc("troubleshooting.md")
    waits = (
        f"(`GREETING_WAIT_SECONDS`, {GREETING_WAIT_SECONDS:g} s,",
        f"(`HELLO_ANSWER_SECONDS`, {HELLO_ANSWER_SECONDS:g} s)",
    )
    assert all(wait in doc("protocol.md") for wait in waits)
