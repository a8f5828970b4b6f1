"""A real redis-server for the backplane's tests: started on a free port of 127.0.0.1 (or in a
lab host), in a directory of the test's own, killed by its PID at teardown. Stdlib only (like
netlab.py); the fixture `redis_server` skips with the reason where redis-server is missing.

Persistence is off (`--save "" --appendonly no`) unless a test asks for it (`persist=True`:
AOF with appendfsync always, so that a SIGKILL and a restart lose nothing, as a production
Redis for a backplane should be set up: docs/reliability.md, "Several relays").
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from netlab import Host, LabUnavailable, LineReader

READY_SECONDS = 10.0  # redis-server starts in milliseconds; loading an AOF a little longer


def redis_path() -> str:
    """The redis-server binary; LabUnavailable (a skip) names the package when it is missing."""
    path = shutil.which("redis-server")
    if path is None:
        raise LabUnavailable(
            "redis-server is not installed (the backplane's tests need a real one; "
            "scripts/install-system-packages installs it)"
        )
    return path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class RedisServer:
    """One redis-server process; stop() and start() again keep its port and its directory."""

    def __init__(
        self, directory: Path, *, persist: bool = False, host: Host | None = None, bind: str = ""
    ) -> None:
        self.directory = directory
        self.persist = persist
        self.host = host  # a lab host to run in, or None: this machine's 127.0.0.1
        self.bind = bind or ("127.0.0.1" if host is None else host.ip)
        self.port = free_port() if host is None else 6379
        self.proc: subprocess.Popen[str] | None = None

    @property
    def url(self) -> str:
        return f"redis://{self.bind}:{self.port}/0"

    def argv(self) -> list[str]:
        persistence = ["--appendonly", "yes", "--appendfsync", "always"] if self.persist else []
        return [
            redis_path(),
            "--port", str(self.port),
            "--bind", self.bind,
            "--save", "",
            "--appendonly", "no",
            *persistence,  # (a later option wins)
            "--dir", str(self.directory),
            "--protected-mode", "no",  # a lab host's clients come from another address
            "--daemonize", "no",
            "--loglevel", "notice",
        ]  # fmt: skip

    def start(self) -> RedisServer:
        """Start it and wait until it accepts connections (its log says so)."""
        argv = self.argv()
        if self.host is not None:
            self.proc = self.host.popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        else:
            self.proc = subprocess.Popen(
                argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
            )
        assert self.proc.stdout is not None
        reader = LineReader(self.proc.stdout)
        seen = []
        while True:
            try:
                line = reader.readline(READY_SECONDS)
            except (TimeoutError, EOFError) as e:
                self.kill()
                raise RuntimeError(f"redis-server did not start: {e}; it said {seen}") from None
            seen.append(line)
            if "Ready to accept connections" in line:
                return self

    def kill(self) -> None:
        """SIGKILL, by PID: no shutdown save, as when the machine loses power."""
        proc = self.proc
        if proc is None:
            return
        self.proc = None
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGKILL)
        proc.wait(READY_SECONDS)
        if proc.stdout is not None:
            proc.stdout.close()

    def command(self, *args: str) -> Any:
        """One command through redis-py (for a test's own look at the data)."""
        import redis

        client = redis.Redis.from_url(self.url, socket_timeout=5)
        try:
            return client.execute_command(*args)
        finally:
            client.close()


@pytest.fixture
def redis_server(tmp_path: Path) -> Iterator[Callable[..., RedisServer]]:
    """make(persist=False) -> a started RedisServer on 127.0.0.1; all are killed at teardown."""
    started: list[RedisServer] = []

    def make(*, persist: bool = False) -> RedisServer:
        redis_path()
        directory = tmp_path / f"redis{len(started)}"
        directory.mkdir()
        server = RedisServer(directory, persist=persist).start()
        started.append(server)
        return server

    yield make
    for server in started:
        server.kill()
