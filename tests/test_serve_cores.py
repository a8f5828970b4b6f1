"""`lanchat serve`'s core keeper seen from outside (Linux): a busy room's threads are held on one
CPU core and let go when it is quiet again; `--all-cores` never holds them. The keeper's own
logic is tests/test_cores.py; these run the real entry point and read /proc."""

from __future__ import annotations

import os
import selectors
import socket
import threading
import time
from typing import Any

import psutil
import pytest

from conftest import WAIT


def _thread_affinities(pid: int) -> list[set[int]]:
    affinities = []
    for thread in psutil.Process(pid).threads():
        try:
            affinities.append(os.sched_getaffinity(thread.id))
        except ProcessLookupError:
            pass  # a reader that ended since the listing (clients leave)
    return affinities


class BusyRoom:
    """80 raw clients, 4 of them sending a burst of 8 lines every 5 ms (~500 k deliveries/s; the
    server lets them: --max-rate 0), every client's input read and thrown away: a room whose
    writer is short of CPU, so it holds (its passes would need 2 to 3 cores here, measured;
    lanchat/tuning.py's HOLD_DEMAND is 0.7; 40 clients measured 1.1 to 1.3)."""

    def __init__(self, port: int, clients: int = 80, senders: int = 4) -> None:
        self.socks = [socket.create_connection(("127.0.0.1", port), timeout=WAIT)]
        self.socks += [
            socket.create_connection(("127.0.0.1", port), timeout=WAIT) for _ in range(clients - 1)
        ]
        self.senders = self.socks[:senders]
        self.stop = threading.Event()
        self.threads = [threading.Thread(target=self._drain, daemon=True)]
        self.threads += [threading.Thread(target=self._send, args=(s,)) for s in self.senders]
        for t in self.threads:
            t.start()

    def _send(self, sock: socket.socket) -> None:
        burst = b"".join(b"busy line %03d\n" % i for i in range(8))
        for _ in range(10_000):  # bounded: 50 s at most; stopped long before
            try:
                sock.sendall(burst)
            except OSError:
                return
            if self.stop.wait(0.005):  # the pace of the load, not a synchronisation
                return

    def _drain(self) -> None:
        with selectors.DefaultSelector() as selector:
            for sock in self.socks:
                selector.register(sock, selectors.EVENT_READ)
            while not self.stop.is_set():
                for key, _ in selector.select(0.1):
                    try:
                        key.fileobj.recv(65536)  # type: ignore[union-attr]
                    except OSError:
                        selector.unregister(key.fileobj)

    def close(self) -> None:
        self.stop.set()
        for t in self.threads:
            t.join(WAIT)
        for sock in self.socks:
            sock.close()


needs_two_cores = pytest.mark.skipif(
    not hasattr(os, "sched_getaffinity") or len(os.sched_getaffinity(0)) < 2,
    reason="needs Linux and at least two usable CPU cores",
)


def _quiet_server(lanchat_process: Any, *options: str) -> tuple[Any, int]:
    """`lanchat serve` on 127.0.0.1 that logs only start and stop and reads as fast as clients
    send (the busy room's senders are above the default --max-rate); (process, port)."""
    serve = lanchat_process(
        "serve", "--host", "127.0.0.1", "--port", "0", "--json", "--quiet", "--no-mdns",
        "--max-rate", "0", *options,
    )  # fmt: skip
    return serve, int(serve.wait_json(lambda e: e.get("event") == "listening", timeout=10)["port"])


def _throughout(check: Any, seconds: float) -> bool:
    """Whether `check` holds at every look for `seconds` (an observation, not a wait)."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if not check():
            return False
        time.sleep(0.05)  # polling /proc, not synchronising with the relay
    return True


def _until(check: Any, timeout: float = WAIT) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.05)  # polling /proc, not synchronising with the relay
    return False


@needs_two_cores
def test_a_busy_room_shares_one_core_and_a_quiet_one_lets_go(lanchat_process: Any) -> None:
    allowed = os.sched_getaffinity(0)
    serve, port = _quiet_server(lanchat_process)
    pid = serve.proc.pid
    assert all(a == allowed for a in _thread_affinities(pid))  # quiet: free
    room = BusyRoom(port)
    try:
        held = _until(lambda: all(len(a) == 1 for a in _thread_affinities(pid)))
        affinities = _thread_affinities(pid)
        assert held, affinities
        (core,) = affinities[0]
        assert core in allowed and all(a == {core} for a in affinities)
        # main, accept, writer, keeper and 80 readers: 84, less one reader that may be ending
        assert len(affinities) >= 83
        # Held for the load, not for the join storm: the keeper would have let go after two
        # quiet looks (~1 s) if the room's holds had stopped with the joins.
        assert _throughout(lambda: all(len(a) == 1 for a in _thread_affinities(pid)), 2.0)
    finally:
        room.close()
    assert _until(lambda: all(a == allowed for a in _thread_affinities(pid)))  # quiet again
    assert serve.terminate() == 0


@needs_two_cores
def test_all_cores_never_holds_a_busy_room_to_one(lanchat_process: Any) -> None:
    allowed = os.sched_getaffinity(0)
    serve, port = _quiet_server(lanchat_process, "--all-cores")
    room = BusyRoom(port)
    try:  # the keeper would have held it within ~1 s; watch three times that long
        held = _until(lambda: any(a != allowed for a in _thread_affinities(serve.proc.pid)), 3)
    finally:
        room.close()
    assert not held
    assert serve.terminate() == 0
