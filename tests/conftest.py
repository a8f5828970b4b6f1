"""Shared test helpers: real relays on 127.0.0.1 with ephemeral ports, line clients that wait on
lines with deadlines, real `lanchat` processes, and a check that no test leaves a thread behind."""

from __future__ import annotations

import atexit
import json
import os
import queue
import select
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest
from redis_kit import redis_server  # noqa: F401  (a real redis-server, tests/redis_kit.py)

from lanchat.relay import Relay
from netlab import (
    Host,
    LabUnavailable,
    lab_factory,  # noqa: F401  (the multi-host lab fixture, tests/netlab.py)
)

ROOT = Path(__file__).resolve().parent.parent
WAIT = 5.0  # default deadline for anything a test waits on


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    """A test that finds a system tool (or namespaces, or root) missing is skipped with the
    reason, never failed: the suite passes on any machine (netlab.LabUnavailable)."""
    outcome: Any = yield
    report = outcome.get_result()
    if call.excinfo is not None and call.excinfo.errisinstance(LabUnavailable):
        report.outcome = "skipped"
        reason = str(call.excinfo.value)
        if "not installed" in reason:
            reason += " (scripts/install-system-packages installs the tools)"
        report.longrepr = (str(item.path), item.location[1] or 0, f"Skipped: {reason}")


@pytest.fixture(autouse=True)
def no_threads_left_behind() -> Iterator[None]:
    """Every thread a test starts must have ended by its teardown (python-zeroconf's check)."""
    before = set(threading.enumerate())
    yield
    deadline = time.monotonic() + WAIT
    for thread in set(threading.enumerate()) - before:
        thread.join(max(0.0, deadline - time.monotonic()))
    left = [t.name for t in set(threading.enumerate()) - before if t.is_alive()]
    assert not left, f"threads left running: {left}"


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class LineClient:
    """A plain TCP client that reads whole lines, waiting with a deadline (like ncat, in code)."""

    def __init__(self, port: int, host: str = "127.0.0.1") -> None:
        self.sock = socket.create_connection((host, port), timeout=WAIT)
        self._buffer = b""
        self.lines: list[str] = []  # every line received so far

    def send(self, data: str | bytes) -> None:
        self.sock.sendall(data.encode() if isinstance(data, str) else data)

    def send_json(self, obj: dict[str, Any]) -> None:
        self.send(json.dumps(obj) + "\n")

    def hello(self, name: str | None = None, *, exact: bool = True) -> dict[str, Any]:
        """Handshake as a lanchat client; returns the welcome frame."""
        hello: dict[str, Any] = {"type": "hello", "version": 1, "exact": exact}
        if name is not None:
            hello["name"] = name
        self.send_json(hello)
        return self.wait_json(lambda f: f["type"] in ("welcome", "error"))

    def read_line(self, timeout: float = WAIT) -> str | None:
        """The next line, or None at end of stream; TimeoutError after `timeout` seconds."""
        deadline = time.monotonic() + timeout
        while b"\n" not in self._buffer:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError(f"no complete line within {timeout} s; have {self._buffer!r}")
            self.sock.settimeout(remaining)
            data = self.sock.recv(65536)
            if not data:
                return None
            self._buffer += data
        line, self._buffer = self._buffer.split(b"\n", 1)
        text = line.decode("utf-8", "replace")
        self.lines.append(text)
        return text

    def wait_line(self, predicate: Any, timeout: float = WAIT) -> str:
        """Read until a line satisfies `predicate` (a substring or a callable)."""
        deadline = time.monotonic() + timeout
        while True:
            line = self.read_line(max(0.0, deadline - time.monotonic()))
            if line is None:
                raise EOFError(f"connection closed; lines so far: {self.lines}")
            if (predicate in line) if isinstance(predicate, str) else predicate(line):
                return line

    def wait_json(self, predicate: Any, timeout: float = WAIT) -> dict[str, Any]:
        """Read until a JSON line satisfies `predicate`; other lines are skipped."""

        def matches(text: str) -> bool:
            try:
                return bool(predicate(json.loads(text)))
            except ValueError:
                return False

        frame: dict[str, Any] = json.loads(self.wait_line(matches, timeout))
        return frame

    def read_all(self, timeout: float = WAIT) -> list[str]:
        """Every line until the server closes the connection."""
        deadline = time.monotonic() + timeout
        out = []
        while (line := self.read_line(max(0.0, deadline - time.monotonic()))) is not None:
            out.append(line)
        return out

    def close(self) -> None:
        self.sock.close()


@pytest.fixture
def relay() -> Iterator[Relay]:
    """A real relay in this process on 127.0.0.1 and a free port."""
    server = Relay("127.0.0.1", 0, history=5)
    server.start()
    yield server
    server.stop()
    assert server.readers == 0, "reader threads left running after stop()"


@pytest.fixture
def connect(relay: Relay) -> Iterator[Any]:
    """Open LineClients to the relay; all are closed at teardown."""
    clients: list[LineClient] = []

    def make() -> LineClient:
        client = LineClient(relay.address[1])
        clients.append(client)
        return client

    yield make
    for client in clients:
        client.close()


# lanchat's own files (the relay's TLS key, pinned servers, the operator token) go to a directory
# of this test run, never to the home directory of whoever runs the tests; a test that needs its
# own sets LANCHAT_CONFIG_DIR in the environment it gives a process.
_CONFIG_DIR = tempfile.mkdtemp(prefix="lanchat-tests-")
atexit.register(shutil.rmtree, _CONFIG_DIR, ignore_errors=True)
os.environ["LANCHAT_CONFIG_DIR"] = _CONFIG_DIR

# The last line of defence against multicast out of this machine's real interfaces: every lanchat
# started from the root namespace (and this pytest process) has mDNS switched off at the socket
# level. Lab hosts switch it back on (lanchat_env(lab=True), netlab.Host.environ).
os.environ["LANCHAT_NO_MDNS"] = "1"


def lanchat_env(*, lab: bool = False) -> dict[str, str]:
    """The environment for a lanchat process: in a lab host mDNS is on, elsewhere off."""
    env = dict(os.environ)
    env["LANCHAT_NO_MDNS"] = "0" if lab else "1"
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    env["NO_COLOR"] = "1"
    env.pop("LANCHAT_PORT", None)
    env.pop("LANCHAT_NAME", None)
    return env


class MdnsGuardError(RuntimeError):
    """A test tried to run a lanchat command that would send mDNS from the root namespace."""


# Options of `join` that take a value: whatever follows them is not the ADDRESS.
_JOIN_VALUE_OPTIONS = {"--name", "-n", "--port", "-p", "--timeout", "--room", "--fingerprint"}


def check_mdns_safe(args: Sequence[str], *, host: Host | None) -> None:
    """Refuse, outside a lab host, `serve` without --no-mdns, `discover`, and `join` without an
    address: each would send mDNS out of this machine's real interfaces (docs/discovery.md)."""
    if host is not None or "--help" in args or "-h" in args:
        return  # inside a lab namespace its only link is the lab's bridge; help sends nothing
    words = list(args)
    command = next((w for w in words if not w.startswith("-")), None)
    rest = words[words.index(command) + 1 :] if command is not None else []
    if command == "serve" and "--no-mdns" not in rest:
        raise MdnsGuardError(
            f"`lanchat {' '.join(args)}` would advertise over mDNS from the root namespace: "
            "add --no-mdns, or run it in a lab host (host=...)."
        )
    if command == "doctor" and "--no-mdns" not in rest:
        raise MdnsGuardError(
            f"`lanchat {' '.join(args)}` would advertise and listen over mDNS from the root "
            "namespace: add --no-mdns, or run it in a lab host (host=...)."
        )
    if command == "discover":
        raise MdnsGuardError("`lanchat discover` browses over mDNS: run it in a lab host.")
    if command == "join" and not _positionals(rest, _JOIN_VALUE_OPTIONS):
        raise MdnsGuardError(
            "`lanchat join` without an address browses over mDNS: give the address, "
            "or run it in a lab host."
        )


def _positionals(args: Sequence[str], value_options: set[str]) -> list[str]:
    found: list[str] = []
    skip = False
    for i, word in enumerate(args):
        if skip:
            skip = False
        elif word == "--":
            return found + list(args[i + 1 :])
        elif word in value_options:
            skip = True
        elif not word.startswith("-") or word == "-":
            found.append(word)
    return found


def run_lanchat(
    *args: str,
    input: str | None = None,
    timeout: float = 15.0,
    env: dict[str, str] | None = None,
    host: Host | None = None,
) -> subprocess.CompletedProcess[str]:
    """Run the real entry point (`python -m lanchat`) to completion; in a lab host if given."""
    check_mdns_safe(args, host=host)
    if host is not None:
        return host.run(
            [sys.executable, "-m", "lanchat", *args],
            input=input if input is not None else "",
            timeout=timeout,
            env=env or lanchat_env(lab=True),
        )
    return subprocess.run(
        [sys.executable, "-m", "lanchat", *args],
        input=input if input is not None else "",
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env or lanchat_env(),
        cwd=ROOT,
    )


class LanchatProcess:
    """A running `lanchat` process whose stdout lines arrive on a queue (read by a thread)."""

    def __init__(
        self,
        *args: str,
        stdin: Any = subprocess.DEVNULL,
        host: Host | None = None,
        env: dict[str, str] | None = None,
    ) -> None:
        check_mdns_safe(args, host=host)
        argv = [sys.executable, "-m", "lanchat", *args]
        streams: dict[str, Any] = {"stdout": subprocess.PIPE, "stderr": subprocess.PIPE}
        if host is not None:  # the lab ends it too, at close(), should this object not
            self.proc = host.popen(
                argv, env=lanchat_env(lab=True), stdin=stdin, cwd=ROOT, **streams
            )
        else:
            self.proc = subprocess.Popen(
                argv, stdin=stdin, text=True, env=env or lanchat_env(), cwd=ROOT, **streams
            )
        self.lines: queue.Queue[str | None] = queue.Queue()
        self.seen: list[str] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.put(line.rstrip("\n"))
        self.lines.put(None)

    def wait_line(self, predicate: Any, timeout: float = WAIT) -> str:
        deadline = time.monotonic() + timeout
        while True:
            try:
                line = self.lines.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                raise TimeoutError(
                    f"no matching line within {timeout} s; saw {self.seen}"
                ) from None
            if line is None:
                raise EOFError(f"process ended; saw {self.seen}; stderr {self.stderr()!r}")
            self.seen.append(line)
            if (predicate in line) if isinstance(predicate, str) else predicate(line):
                return line

    def wait_json(self, predicate: Any, timeout: float = WAIT) -> dict[str, Any]:
        def matches(line: str) -> bool:
            try:
                return bool(predicate(json.loads(line)))
            except ValueError:
                return False

        obj: dict[str, Any] = json.loads(self.wait_line(matches, timeout))
        return obj

    def say(self, text: str) -> None:
        """A line on the process's stdin (started with stdin=subprocess.PIPE)."""
        assert self.proc.stdin is not None
        self.proc.stdin.write(text + "\n")
        self.proc.stdin.flush()

    def chat_texts(self) -> list[str]:
        """The chat texts a `join --json` printed so far (read by the test), in its order."""
        texts = []
        for line in self.seen:
            try:
                frame = json.loads(line)
            except ValueError:
                continue
            if frame.get("type") == "message":
                texts.append(frame["text"])
        return texts

    def rest(self, timeout: float = WAIT) -> list[str]:
        """Every remaining stdout line until the process closes stdout."""
        deadline = time.monotonic() + timeout
        out = []
        while True:
            try:
                line = self.lines.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                raise TimeoutError(f"stdout still open after {timeout} s; got {out}") from None
            if line is None:
                return out
            self.seen.append(line)
            out.append(line)

    def stderr(self) -> str:
        if self.proc.poll() is None or self.proc.stderr is None:
            return ""
        return self.proc.stderr.read()

    def terminate(self, timeout: float = WAIT) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout)

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(WAIT)
        self._reader.join(WAIT)
        for stream in (self.proc.stdout, self.proc.stderr, self.proc.stdin):
            if stream is not None:
                stream.close()


@pytest.fixture
def lanchat_process() -> Iterator[Any]:
    """Start real `lanchat` processes; each is ended (by its PID) at teardown."""
    started: list[LanchatProcess] = []

    def start(*args: str, **kwargs: Any) -> LanchatProcess:
        process = LanchatProcess(*args, **kwargs)
        started.append(process)
        return process

    yield start
    for process in started:
        process.close()


@pytest.fixture
def server(lanchat_process: Any) -> Any:
    """`lanchat serve --port 0 --json` on 127.0.0.1; yields (process, port)."""
    process = lanchat_process("serve", "--host", "127.0.0.1", "--port", "0", "--json", "--no-mdns")
    listening = process.wait_json(lambda e: e.get("event") == "listening", timeout=10)
    return process, int(listening["port"])


class Terminal:
    """A process on a pseudo-terminal, and everything it has written to the screen."""

    def __init__(self, *args: str, env: dict[str, str] | None = None) -> None:
        import pty  # POSIX only: tests using Terminal skip elsewhere

        check_mdns_safe(args, host=None)  # this terminal lives in the root namespace
        self.master, slave = pty.openpty()
        env = {**(env if env is not None else lanchat_env()), "TERM": "xterm"}
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "lanchat", *args],
            stdin=slave,
            stdout=slave,
            stderr=slave,
            env=env,
            cwd=ROOT,
            close_fds=True,
        )
        os.close(slave)
        self.screen = b""

    def wait_for(self, text: bytes, timeout: float = WAIT) -> None:
        deadline = time.monotonic() + timeout
        while text not in self.screen:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError(f"{text!r} not on screen; last output {self.screen[-300:]!r}")
            ready, _, _ = select.select([self.master], [], [], remaining)
            if ready:
                try:
                    self.screen += os.read(self.master, 65536)
                except OSError:  # the process ended and the terminal closed
                    raise EOFError(f"terminal closed; last output {self.screen[-300:]!r}") from None

    def type(self, keys: bytes) -> None:
        os.write(self.master, keys)

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(WAIT)
        os.close(self.master)


def ncat_path() -> str | None:
    return shutil.which("ncat")


class Ncat:
    """A real ncat as a raw client: lines in on stdin, lines out on stdout."""

    def __init__(self, port: int, *, tls: bool = False) -> None:
        path = ncat_path()
        if path is None:
            pytest.skip("ncat is not installed (scripts/install-system-packages installs it)")
        self.proc = subprocess.Popen(
            [path, *(["--ssl"] if tls else []), "127.0.0.1", str(port)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
        )
        self._buffer = b""

    def send(self, line: str) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(line.encode() + b"\n")
        self.proc.stdin.flush()

    def wait_line(self, text: str, timeout: float = WAIT) -> str:
        assert self.proc.stdout is not None
        fd = self.proc.stdout.fileno()
        deadline = time.monotonic() + timeout
        while True:
            while b"\n" in self._buffer:
                line, self._buffer = self._buffer.split(b"\n", 1)
                if text in line.decode():
                    return line.decode()
            remaining = deadline - time.monotonic()
            if remaining <= 0 or not select.select([fd], [], [], remaining)[0]:
                raise TimeoutError(f"ncat never printed {text!r}")
            data = os.read(fd, 65536)
            if not data:
                raise EOFError("ncat ended")
            self._buffer += data

    def close(self) -> None:
        self.proc.terminate()
        self.proc.wait(WAIT)
        for stream in (self.proc.stdin, self.proc.stdout):
            if stream is not None:
                stream.close()


def assert_dropped_at_a_line_end(sock: Any, text: str, timeout: float = WAIT) -> None:
    """A reader the relay dropped for being slow reads, to the end of the stream, whole lines
    only (the chat lines all end in `text`) and then the goodbye that says why."""
    sock.settimeout(timeout)
    received = b""
    deadline = time.monotonic() + timeout
    while (data := sock.recv(65536)) and time.monotonic() < deadline:
        received += data
    assert received.endswith(b"\n"), f"the stream ends inside a line: {received[-60:]!r}"
    lines = received.decode().splitlines()
    assert lines[-1].startswith("! You were disconnected: you could not keep up")
    chats = [line for line in lines if "> " in line and line.endswith(text[-1])]
    assert chats and all(line.endswith(" " + text) for line in chats), "a line was cut"
