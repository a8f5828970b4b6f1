"""How a connection ends at the socket: room for a dropped client's last words, and a hang-up
that frees the peer's socket once it has everything we sent.

Stdlib only, no state: the fan-out (fanout.py) calls these under a client's `sock_lock`.
"""

from __future__ import annotations

import socket
import struct
import sys

SNDBUF_SLACK = 64 * 1024  # the kernel counts its own overhead per buffer against SO_SNDBUF


def _wmem_max() -> int:
    """The most a process may ask SO_SNDBUF for (Linux: half of what the kernel then uses)."""
    try:
        with open("/proc/sys/net/core/wmem_max", encoding="ascii") as f:
            return int(f.read())
    except (OSError, ValueError):
        return 1 << 30  # elsewhere a too-big request fails (ENOBUFS) instead of being capped


WMEM_MAX = _wmem_max()
# linux/sockios.h (== TIOCOUTQ, asm-generic: x86, arm, riscv; termios has it, but termios is the
# terminal's module and terminals are the front ends' business, tests/test_architecture.py).
SIOCOUTQ = 0x5411


def grow_send_buffer(sock: socket.socket, extra: int) -> None:
    """Make a socket's send buffer `extra` bytes bigger than it is now, where the OS allows;
    never smaller (Linux caps SO_SNDBUF at wmem_max, below what it may have grown to itself)."""
    try:
        size = sock.getsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF)
        want = size + 2 * extra + SNDBUF_SLACK
        if sys.platform == "linux":
            want = want // 2 + 1  # Linux doubles the value it is given (and reports that)
        if want <= WMEM_MAX:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, want)
    except OSError:
        pass  # the buffer stays as it is: the goodbye waits for the client to read


def unacknowledged_bytes(sock: socket.socket) -> int | None:
    """Bytes (and our FIN) sent but not yet acknowledged by the peer; None where the OS does
    not say (only Linux does, through SIOCOUTQ)."""
    if sys.platform != "linux":
        return None
    import fcntl

    try:
        answer = fcntl.ioctl(sock.fileno(), SIOCOUTQ, b"\0\0\0\0")
    except (OSError, ValueError):  # ValueError: closed already (fd -1)
        return None  # or another number on this architecture: the close stays graceful
    return int(struct.unpack("i", answer)[0])


def reset_on_close_if_delivered(sock: socket.socket) -> bool:
    """After our FIN and the linger, a peer that has not closed (ncat, nc: they wait for
    their stdin) would sit in CLOSE-WAIT for ever: once it has acknowledged everything we sent,
    the close resets the connection (SO_LINGER 0), which frees its socket and ours. Data it
    has not acknowledged is never thrown away: then the close stays graceful."""
    if unacknowledged_bytes(sock) != 0:
        return False
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    except OSError:
        return False
    return True
