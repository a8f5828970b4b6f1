"""Starting and stopping the relays under test: a fresh lanchat, a fresh ``ncat --chat``, or an
external server given by address (and optionally pid)."""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from . import procfs

PROJECT_ROOT = Path(__file__).resolve().parents[2]
HOST = "127.0.0.1"
# The command that starts lanchat's relay as the README starts it, its log on (a line per event,
# written to a file: LANCHAT_LOG); `--lanchat-option=--quiet` measures it without the log,
# `--lanchat-option=--json` with the JSON log. The port is added (a free one).
LANCHAT_SERVE = [
    sys.executable,
    # --no-mdns: the relay is what is measured (and nothing is announced beyond 127.0.0.1).
    *("-m", "lanchat", "serve", "--host", HOST, "--no-mdns"),
    # --max-rate 0: the per-person flood limit (200 lines/s) would cap each sender of a
    # saturation run; what is measured is how much the relay can carry (docs/benchmarking.md).
    *("--max-rate", "0"),
]
LANCHAT_IN_USE = 6  # lanchat's exit code when its port is taken: another free port is tried
# What the log's last line says when it skipped lines (lanchat/output/serve.py, text or JSON).
LOG_SKIPPED = re.compile(rb'(\d+) log lines? in all were skipped|"log_lines_dropped": (\d+)')
# ncat accepts 100 clients unless told otherwise; the benchmark wants its real ceiling.
NCAT_MAX_CONNS = 100_000
START_TIMEOUT = 10.0  # seconds for a server to start listening
STOP_TIMEOUT = 3.0  # seconds for a server to exit after SIGTERM, and again after SIGKILL
NCATS = ("ncat", "ncat-nodelay")  # the servers start_ncat() makes (ncat-nodelay: with the shim)
PORT_ATTEMPTS = 5  # free ports tried for ncat (another program may take one in between)
TAIL_BYTES = 4096  # how much of a server's stderr is kept for error messages


class BenchError(Exception):
    """An expected failure, told to the user in one line."""


@dataclass
class Server:
    """A relay under test and, if the benchmark started it, its process."""

    name: str  # lanchat | lanchat-quiet | ncat | ncat-nodelay | redis | external
    host: str
    port: int
    pid: int | None = None
    proc: subprocess.Popen[bytes] | None = None
    tail: bytearray = field(default_factory=bytearray)  # the end of its stderr
    exit_code: int | None = None
    log: IO[bytes] | None = None  # lanchat's stdout (its event log), a temporary file
    log_tail: bytes = b""  # the end of that log (after stop())
    log_skipped: int | None = None  # lines the log said it skipped (after stop())
    config: tempfile.TemporaryDirectory[str] | None = None  # its own config dir, if we made one
    # Several relays of one room (--relays): the other relays and the Redis between them, whose
    # CPU and memory count as the server's; clients are spread over the relays' ports.
    parts: list[Server] = field(default_factory=list)

    def ports(self) -> tuple[int, ...]:
        """Where clients connect: this relay, then the others of its room."""
        return (self.port, *(p.port for p in self.parts if p.name == "lanchat"))

    def pids(self) -> tuple[int, ...]:
        """Every process the server is made of (for /proc figures)."""
        own = (self.pid,) if self.pid is not None else ()
        return own + tuple(p.pid for p in self.parts if p.pid is not None)

    def outputs(self) -> list[int]:
        """The pipes to keep reading so the server never blocks on its output."""
        parts = [fd for p in self.parts for fd in p.outputs()]
        if self.proc is None:
            return parts
        own = [p.fileno() for p in (self.proc.stdout, self.proc.stderr) if p and not p.closed]
        return own + parts

    def drain(self) -> None:
        """Read whatever the server has written (its stderr tail is kept)."""
        for part in self.parts:
            part.drain()
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
        """A sentence if the server process (or a part) has exited, else None."""
        for part in self.parts:
            said = part.gone()
            if said:
                return said
        if self.proc is None or self.proc.poll() is None:
            return None
        self.drain()
        return f"{self.name} exited with code {self.proc.returncode}{self.last_words()}"

    def last_words(self) -> str:
        """The last line the server wrote to stderr, as ': line', or ''."""
        lines = bytes(self.tail).decode("utf-8", "replace").strip().splitlines()
        return f": {lines[-1].strip()}" if lines else ""

    def stop(self) -> None:
        """SIGTERM, then SIGKILL if it has not exited in time (by pid, the one we started);
        the other relays, then their Redis, after this one."""
        self._stop()
        for part in self.parts:
            part.stop()

    def _stop(self) -> None:
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
        if self.log is not None:
            self.log.seek(max(0, self.log.seek(0, os.SEEK_END) - TAIL_BYTES))
            self.log_tail = self.log.read()
            self.log_skipped = skipped_in_log(self.log_tail)
            self.log.close()  # (a temporary file: gone once closed)
            self.log = None
        if self.config is not None:
            self.config.cleanup()
            self.config = None


def skipped_in_log(tail: bytes) -> int | None:
    """How many lines lanchat's log said it skipped, from its last line (None: not said)."""
    lines = tail.strip().splitlines()
    found = LOG_SKIPPED.search(lines[-1]) if lines else None
    if found is None:
        return None
    return int(found.group(1) or found.group(2))


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


def build_nodelay_shim(directory: Path) -> Path:
    """The TCP_NODELAY shim (nodelay.c beside this file) compiled into ``directory``, for
    ``start_ncat(preload=...)``; BenchError, in one line, when it cannot be built."""
    compiler = os.environ.get("CC") or shutil.which("cc") or shutil.which("gcc")
    if compiler is None or not sys.platform.startswith("linux"):
        raise BenchError(
            "ncat-nodelay needs Linux and a C compiler for its TCP_NODELAY shim "
            "(scripts/benchkit/nodelay.c): apt install gcc, or leave ncat-nodelay out"
        )
    shim = directory / "nodelay.so"
    source = Path(__file__).with_name("nodelay.c")
    built = subprocess.run(
        [compiler, "-shared", "-fPIC", "-O2", "-o", str(shim), str(source), "-ldl"],
        check=False,
        capture_output=True,
        text=True,
        timeout=START_TIMEOUT * 3,
    )
    if built.returncode != 0:
        said = built.stderr.strip().splitlines()[-1:] or ["no message"]
        raise BenchError(f"could not build the TCP_NODELAY shim with {compiler}: {said[0]}")
    return shim


def start_ncat(
    ncat: str = "ncat", tls: tuple[Path, Path] | None = None, preload: Path | None = None
) -> Server:
    """A fresh ``ncat --chat`` on a free loopback port, accepting connections (``--ssl`` with
    the certificate and key ``tls``, when given). ``preload``: the TCP_NODELAY shim
    (build_nodelay_shim), making it the server called ncat-nodelay."""
    exe = find_ncat(ncat)
    ssl = ["--ssl", "--ssl-cert", str(tls[0]), "--ssl-key", str(tls[1])] if tls else []
    env = {**os.environ, "LD_PRELOAD": str(preload)} if preload else None
    for _ in range(PORT_ATTEMPTS):
        port = _free_port(HOST)
        proc = subprocess.Popen(
            [exe, "--chat", *ssl, "--listen", HOST, str(port), "--max-conns", str(NCAT_MAX_CONNS)],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=env,
            start_new_session=True,  # Ctrl-C reaches the benchmark, which stops it in order
        )
        server = Server("ncat-nodelay" if preload else "ncat", HOST, port, proc.pid, proc)
        _unblock(server)
        if _accepting(server):
            return server
        server.stop()
        if b"in use" not in bytes(server.tail):
            raise BenchError(f"ncat did not start listening{server.last_words() or ' in time'}")
    raise BenchError(f"ncat found no free port in {PORT_ATTEMPTS} attempts")


def start_redis() -> Server:
    """A fresh redis-server on a free loopback port, nothing kept on disk (the backplane)."""
    exe = shutil.which("redis-server")
    if exe is None:
        raise BenchError("redis-server not found (--backplane needs one): apt install redis-server")
    for _ in range(PORT_ATTEMPTS):
        port = _free_port(HOST)
        proc = subprocess.Popen(
            [exe, "--port", str(port), "--bind", HOST, "--save", "", "--appendonly", "no"],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            start_new_session=True,
        )
        server = Server("redis", HOST, port, proc.pid, proc)
        _unblock(server)
        if _accepting(server):
            return server
        server.stop()
    raise BenchError(f"redis-server did not start in {PORT_ATTEMPTS} attempts")


def start_relays(
    count: int,
    options: Sequence[str] = (),
    tree: Path = PROJECT_ROOT,
    *,
    config: Path | None = None,
    tls: bool = False,
) -> Server:
    """`count` lanchat relays of one room on one backplane (a fresh redis-server): the first is
    the Server, the others and Redis its parts (the rest as in start_lanchat)."""
    redis = start_redis()
    relays: list[Server] = []
    try:
        for i in range(count):
            backplane = ("--backplane", f"redis://{HOST}:{redis.port}/0", "--relay-name", f"r{i}")
            relays.append(start_lanchat([*backplane, *options], tree, config=config, tls=tls))
    except BaseException:
        for relay in relays:
            relay.stop()
        redis.stop()
        raise
    first = relays[0]
    first.parts = [*relays[1:], redis]
    return first


def _lanchat_env(config: Path, tree: Path = PROJECT_ROOT) -> dict[str, str]:
    """The environment of a lanchat process: the lanchat of checkout `tree`, and its own config
    directory (the relay's TLS key, its operator token: never the user's own)."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(tree), env.get("PYTHONPATH")]))
    env["LANCHAT_CONFIG_DIR"] = str(config)
    return env


def start_lanchat(
    options: Sequence[str] = (),
    tree: Path = PROJECT_ROOT,
    *,
    config: Path | None = None,
    tls: bool = False,
) -> Server:
    """A fresh lanchat relay (with extra `lanchat serve` options; the lanchat of checkout `tree`;
    with `tls`, `--tls`) on a free loopback port, accepting connections; its log goes to a
    temporary file, which never blocks it. Its files (the TLS key, the operator token) go to
    `config`, never to the user's own config directory."""
    own = None
    if config is None:
        own = tempfile.TemporaryDirectory(prefix="bench-lanchat-")  # Server.stop() removes it
        config = Path(own.name)
    env = _lanchat_env(config, tree)
    for _ in range(PORT_ATTEMPTS):
        port = _free_port(HOST)
        log = tempfile.TemporaryFile(prefix="bench-lanchat-log-")  # noqa: SIM115 (stop() closes it)
        proc = subprocess.Popen(
            [*LANCHAT_SERVE, "--port", str(port), *(["--tls"] if tls else []), *options],
            cwd=tree,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.PIPE,
            start_new_session=True,
        )
        server = Server("lanchat", HOST, port, proc.pid, proc, log=log, config=own)
        _unblock(server)
        if _accepting(server):
            return server
        server.stop()
        if server.exit_code != LANCHAT_IN_USE:
            said = server.last_words()
            hint = ""
            if "ModuleNotFoundError" in said:
                hint = " (run the benchmark with the Python that has lanchat's dependencies, "
                hint += "e.g. .venv/bin/python scripts/bench)"
            raise BenchError(f"lanchat relay did not start{said or ' in time'}{hint}")
    raise BenchError(f"lanchat found no free port in {PORT_ATTEMPTS} attempts")


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


def _accepting(server: Server) -> bool:
    """Whether a server just started accepts connections within START_TIMEOUT (False: it exited
    first, or took too long).

    ncat is asked through /proc, not with a connection: ncat --chat announces each newcomer
    with everyone's address, and quits ("getpeername ... failed. QUITTING.") when a probe that
    connected and closed has not been reaped yet (its greeting made the probe's end reset)."""
    proc = server.proc
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline and proc is not None and proc.poll() is None:
        if server.name in NCATS:
            if procfs.listening(proc.pid, server.port):
                return True
        elif _accepts(server.host, server.port):
            return True
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(0.02)  # a pause that also notices an early exit
    return False


def _unblock(server: Server) -> None:
    """Make the server's output pipes non-blocking, so draining them never waits."""
    for fd in server.outputs():
        os.set_blocking(fd, False)
