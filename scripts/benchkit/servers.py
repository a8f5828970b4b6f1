"""Starting and stopping the relays under test: a fresh lanchat, a fresh ``ncat --chat``, or an
external server given by address (and optionally pid)."""

from __future__ import annotations

import contextlib
import json
import os
import select
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parents[2]
HOST = "127.0.0.1"
# The command that starts lanchat's relay; its first stdout line is a JSON "listening" event.
LANCHAT_SERVE = [
    sys.executable,
    # --no-mdns: the relay is what is measured (and nothing is announced beyond 127.0.0.1).
    *("-m", "lanchat", "serve", "--host", HOST, "--port", "0", "--json", "--quiet", "--no-mdns"),
    # --max-rate 0: the per-person flood limit (200 lines/s) would cap each sender; what is
    # measured is how much the relay can carry (docs/performance.md, "The tool").
    *("--max-rate", "0"),
]
# ncat accepts 100 clients unless told otherwise; the benchmark wants its real ceiling.
NCAT_MAX_CONNS = 100_000
START_TIMEOUT = 10.0  # seconds for a server to start listening
STOP_TIMEOUT = 3.0  # seconds for a server to exit after SIGTERM, and again after SIGKILL
PORT_ATTEMPTS = 5  # free ports tried for ncat (another program may take one in between)
TAIL_BYTES = 4096  # how much of a server's stderr is kept for error messages


class BenchError(Exception):
    """An expected failure, told to the user in one line."""


@dataclass
class Server:
    """A relay under test and, if the benchmark started it, its process."""

    name: str  # lanchat | ncat | external
    host: str
    port: int
    pid: int | None = None
    proc: subprocess.Popen[bytes] | None = None
    tail: bytearray = field(default_factory=bytearray)  # the end of its stderr
    exit_code: int | None = None

    def outputs(self) -> list[int]:
        """The pipes to keep reading so the server never blocks on its output."""
        if self.proc is None:
            return []
        return [p.fileno() for p in (self.proc.stdout, self.proc.stderr) if p and not p.closed]

    def drain(self) -> None:
        """Read whatever the server has written (its stderr tail is kept)."""
        if self.proc is None:
            return
        for pipe in (self.proc.stdout, self.proc.stderr):
            if pipe is None or pipe.closed:
                continue
            for _ in range(64):  # at most 4 MiB per call
                try:
                    chunk = os.read(pipe.fileno(), 65536)
                except BlockingIOError:
                    break
                if not chunk:
                    pipe.close()
                    break
                if pipe is self.proc.stderr:
                    self.tail += chunk
                    del self.tail[:-TAIL_BYTES]

    def gone(self) -> str | None:
        """A sentence if the server process has exited, else None."""
        if self.proc is None or self.proc.poll() is None:
            return None
        self.drain()
        return f"{self.name} exited with code {self.proc.returncode}{self.last_words()}"

    def last_words(self) -> str:
        """The last line the server wrote to stderr, as ': line', or ''."""
        lines = bytes(self.tail).decode("utf-8", "replace").strip().splitlines()
        return f": {lines[-1].strip()}" if lines else ""

    def stop(self) -> None:
        """SIGTERM, then SIGKILL if it has not exited in time (by pid, the one we started)."""
        proc = self.proc
        if proc is None:
            return
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                proc.kill()
                with contextlib.suppress(subprocess.TimeoutExpired):
                    proc.wait(STOP_TIMEOUT)
        self.exit_code = proc.returncode
        self.drain()
        for pipe in (proc.stdout, proc.stderr):
            if pipe is not None and not pipe.closed:
                pipe.close()


def _free_port(host: str) -> int:
    """A port that was free a moment ago (the kernel picks it)."""
    with socket.socket() as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def _accepts(host: str, port: int) -> bool:
    """Whether something accepts connections on ``host:port`` right now."""
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False


def find_ncat(ncat: str = "ncat") -> str:
    """The path of the ncat program ``ncat`` (a name on PATH or a path)."""
    exe = shutil.which(ncat)
    if exe is None:
        raise BenchError(f"ncat not found ({ncat}); install Nmap's ncat or pass --ncat PATH")
    return exe


def make_certificate(directory: Path) -> tuple[Path, Path]:
    """A key and a self-signed certificate for ``ncat --ssl``, made by lanchat's own generator
    (lanchat/tls/identity.py) in ``directory``: (certificate, key). Run as lanchat, in a
    process of its own, so that this package stays standard library only."""
    make = (
        "import sys; from pathlib import Path; "
        "from lanchat.tls.identity import certificate_names, load_identity; "
        "load_identity(certificate_names('localhost', ['127.0.0.1']), Path(sys.argv[1]))"
    )
    done = subprocess.run(
        [sys.executable, "-c", make, str(directory)],
        check=False,
        cwd=PROJECT_ROOT,
        env=_lanchat_env(directory),
        capture_output=True,
        text=True,
        timeout=START_TIMEOUT,
    )
    if done.returncode != 0:
        said = done.stderr.strip().splitlines()[-1:] or ["no message"]
        raise BenchError(f"could not make a TLS certificate: {said[0]}")
    return directory / "certificate.pem", directory / "key.pem"


def start_ncat(ncat: str = "ncat", tls: tuple[Path, Path] | None = None) -> Server:
    """A fresh ``ncat --chat`` on a free loopback port, accepting connections (``--ssl`` with
    the certificate and key ``tls``, when given)."""
    exe = find_ncat(ncat)
    ssl = ["--ssl", "--ssl-cert", str(tls[0]), "--ssl-key", str(tls[1])] if tls else []
    for _ in range(PORT_ATTEMPTS):
        port = _free_port(HOST)
        proc = subprocess.Popen(
            [exe, "--chat", *ssl, "--listen", HOST, str(port), "--max-conns", str(NCAT_MAX_CONNS)],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            start_new_session=True,  # Ctrl-C reaches the benchmark, which stops it in order
        )
        server = Server("ncat", HOST, port, proc.pid, proc)
        _unblock(server)
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                break
            if _accepts(HOST, port):
                return server
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(0.02)  # a pause that also notices an early exit
        server.stop()
        if b"in use" not in bytes(server.tail):
            raise BenchError(f"ncat did not start listening{server.last_words() or ' in time'}")
    raise BenchError(f"ncat found no free port in {PORT_ATTEMPTS} attempts")


def _lanchat_env(config: Path | None) -> dict[str, str]:
    """The environment of a lanchat process: this project's lanchat, and with ``config`` its
    own config directory (the relay's TLS key: never the user's own)."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(PROJECT_ROOT), env.get("PYTHONPATH")]))
    if config is not None:
        env["LANCHAT_CONFIG_DIR"] = str(config)
    return env


def start_lanchat(options: Sequence[str] = (), tls: Path | None = None) -> Server:
    """A fresh lanchat relay (with extra `lanchat serve` options; with ``tls``, `--tls` and that
    config directory for its key); its port is read from its first (JSON) line."""
    proc = subprocess.Popen(
        [*LANCHAT_SERVE, *(["--tls"] if tls is not None else []), *options],
        cwd=PROJECT_ROOT,
        env=_lanchat_env(tls),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )
    server = Server("lanchat", HOST, 0, proc.pid, proc)
    stdout = proc.stdout
    if stdout is None:
        raise BenchError("lanchat relay: no stdout pipe")
    line = b""
    deadline = time.monotonic() + START_TIMEOUT
    while not line.endswith(b"\n") and time.monotonic() < deadline:
        ready, _, _ = select.select([stdout], [], [], max(deadline - time.monotonic(), 0))
        if not ready:
            break
        chunk = os.read(stdout.fileno(), 1)  # byte by byte: later output stays in the pipe
        if not chunk:
            break
        line += chunk
    _unblock(server)
    try:
        event = json.loads(line)
        port = int(event["port"])
        if event.get("event") != "listening":
            raise ValueError(event)
    except (ValueError, KeyError, TypeError):
        server.stop()
        said = server.last_words() or (f": {line.decode(errors='replace').strip()}" if line else "")
        hint = ""
        if "ModuleNotFoundError" in said:
            hint = " (run the benchmark with the Python that has lanchat's dependencies, e.g. "
            hint += ".venv/bin/python scripts/bench)"
        raise BenchError(f"lanchat relay did not start{said or ' in time'}{hint}") from None
    server.port = port
    return server


def external_server(address: str, pid: int | None) -> Server:
    """A relay somebody else started, at ``HOST:PORT``; its /proc figures need ``pid``."""
    host, sep, port_text = address.rpartition(":")
    if not sep or not port_text.isdigit() or not host:
        raise BenchError(f"--address wants HOST:PORT, not {address!r}")
    host = host.strip("[]")
    if not _accepts(host, int(port_text)):
        raise BenchError(f"nothing accepts connections at {address}")
    if pid is not None and not os.path.exists(f"/proc/{pid}"):
        raise BenchError(f"no process with pid {pid}")
    return Server("external", host, int(port_text), pid)


def _unblock(server: Server) -> None:
    """Make the server's output pipes non-blocking, so draining them never waits."""
    for fd in server.outputs():
        os.set_blocking(fd, False)
