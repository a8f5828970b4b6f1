"""lanchat/hangup.py on real sockets: a reset only once the peer has everything, never a raise."""

from __future__ import annotations

import socket
import sys
from collections.abc import Iterator

import pytest

from lanchat.hangup import grow_send_buffer, reset_on_close_if_delivered, unacknowledged_bytes

linux_only = pytest.mark.skipif(sys.platform != "linux", reason="SIOCOUTQ is Linux's")


@pytest.fixture
def pair() -> Iterator[tuple[socket.socket, socket.socket]]:
    """A connected TCP pair on 127.0.0.1: (ours, the peer's, with a small receive buffer)."""
    with socket.create_server(("127.0.0.1", 0)) as listener:
        peer = socket.socket()
        peer.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        peer.connect(listener.getsockname())
        ours, _ = listener.accept()
    yield ours, peer
    ours.close()
    peer.close()


def test_a_closed_socket_is_left_alone() -> None:
    """The writer thread calls these: a socket closed meanwhile must not end it (fd -1)."""
    sock = socket.socket()
    sock.close()
    assert unacknowledged_bytes(sock) is None
    assert reset_on_close_if_delivered(sock) is False
    grow_send_buffer(sock, 1000)  # no raise


@linux_only
def test_reset_only_when_the_peer_acknowledged_everything(
    pair: tuple[socket.socket, socket.socket],
) -> None:
    ours, peer = pair
    ours.sendall(b"* Goodbye.\n")
    assert peer.recv(100) == b"* Goodbye.\n"  # so it was acknowledged, too
    assert unacknowledged_bytes(ours) == 0
    assert reset_on_close_if_delivered(ours) is True


@linux_only
def test_no_reset_while_the_peer_has_not_taken_everything(
    pair: tuple[socket.socket, socket.socket],
) -> None:
    ours, _ = pair
    ours.setblocking(False)
    sent = 0
    for _ in range(10_000):  # until its small window is full (well before the bound)
        try:
            sent += ours.send(b"x" * 65536)
        except BlockingIOError:
            break
    assert (unacknowledged_bytes(ours) or 0) > 0
    assert reset_on_close_if_delivered(ours) is False
    size = ours.getsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF)
    grow_send_buffer(ours, 1000)
    assert ours.getsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF) >= size  # never smaller
