"""The hub over socket pairs: a chat line goes reader -> room -> fan-out, encoded once per kind,
and a broken listener or a member's leave leave nothing half done."""

from __future__ import annotations

import socket
from collections.abc import Iterator

import pytest

from conftest import WAIT
from lanchat.fanout import Client
from lanchat.hub import Hub
from lanchat.protocol import Event, Hello
from lanchat.room import Room


@pytest.fixture
def hub() -> Iterator[Hub]:
    hub = Hub(Room(history=5))
    hub.fanout.start()
    yield hub
    hub.shutdown()
    hub.fanout.stop(WAIT)


def pair(hub: Hub, name: str | None) -> tuple[Client, socket.socket]:
    ours, theirs = socket.socketpair()
    client = Client(ours, ("127.0.0.1", 1))
    hub.join(client, Hello(1, name) if name else None)
    theirs.settimeout(WAIT)
    return client, theirs


def read_until(sock: socket.socket, text: bytes) -> bytes:
    data = b""
    while text not in data:
        chunk = sock.recv(65536)
        assert chunk, f"closed after {data!r}"
        data += chunk
    return data


def test_a_line_reaches_both_kinds_encoded_for_each(hub: Hub) -> None:
    seen: list[Event] = []
    hub.listeners.append(lambda event, client: seen.append(event))
    ana, ana_far = pair(hub, "ana")
    raw, raw_far = pair(hub, None)
    hub.handle(raw, ["hello from raw"])
    assert b'"text":"hello from raw"' in read_until(ana_far, b"hello from raw")
    hub.handle(ana, ["hi from ana"])
    assert b"<ana> hi from ana" in read_until(raw_far, b"hi from ana")
    assert [type(e).__name__ for e in seen][-2:] == ["Chat", "Chat"]
    for sock in (ana_far, raw_far):
        sock.close()
    hub.shutdown()
    for client in (ana, raw):
        assert client.done.wait(WAIT)
        client.close_socket()


def test_a_leave_hangs_up_and_frees_the_name_even_with_a_broken_listener(hub: Hub) -> None:
    def broken(event: Event, client: object) -> None:
        raise RuntimeError("a broken log")

    hub.listeners.append(broken)
    ana, ana_far = pair(hub, "ana")
    hub.drop(ana, "quit")
    assert b"Goodbye." in read_until(ana_far, b"Goodbye.")
    assert ana.done.wait(WAIT)  # the writer hung up on it
    assert ana.close_reason == "quit" and hub.size == 0
    again, again_far = pair(hub, "ana")
    assert again.name == "ana"
    ana_far.close()
    again_far.close()
    hub.shutdown()
    for client in (ana, again):
        assert client.done.wait(WAIT)
        client.close_socket()


def test_promote_tells_the_room_and_a_join_can_make_an_operator(hub: Hub) -> None:
    ana, ana_far = pair(hub, "ana")
    bob, bob_far = socket.socketpair()
    bob_client = Client(bob, ("127.0.0.1", 2))
    hub.join(bob_client, Hello(1, "bob"), operator=True)
    bob_far.settimeout(WAIT)
    assert b"bob is now an operator" in read_until(ana_far, b"bob is now an operator")
    hub.promote(ana)
    assert b'"action":"operator","name":"ana"' in read_until(bob_far, b'"name":"ana"')
    assert ana.member is not None and ana.member.operator
    hub.drop(ana, "quit")
    hub.promote(ana)  # gone: nothing happens, nothing breaks
    for sock in (ana_far, bob_far):
        sock.close()
    hub.shutdown()
    for client in (ana, bob_client):
        assert client.done.wait(WAIT)
        client.close_socket()
