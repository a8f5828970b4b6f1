"""The real probe: commands with timeouts, files, psutil, sockets. With probe/mdns.py, the only
doctor code that touches the operating system; tests replace it with a fake of probe.interface's
Probe."""

from __future__ import annotations

import errno
import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Sequence
from typing import Any

from lanchat.client import HandshakeFailed, describe_connect_error, probe_server, query_relay
from lanchat.doctor.probe.interface import (
    TIMED_OUT_RC,
    CommandOutput,
    ConnectOutcome,
    ConnectResult,
    HandshakeResult,
    Listener,
    PageResult,
    Resolved,
)
from lanchat.errors import RejectedError, UnreachableError
from lanchat.netinfo import LocalAddress, host_port, local_addresses

MAX_FILE_BYTES = 1 << 16  # the files read (/proc/net/route, os-release...) are small
MAX_PAGE_BYTES = 1 << 16  # the chat page is ~10 KB with its files; its HTML is ~1 KB
# Where system tools live when PATH lacks the sbin directories (non-root shells on Debian).
_SYSTEM_PATH = ("/usr/local/sbin", "/usr/sbin", "/sbin")


def platform_name() -> str:
    """'linux', 'windows', 'darwin' or sys.platform for anything else."""
    if sys.platform.startswith("linux"):
        return "linux"
    if sys.platform in ("win32", "cygwin"):
        return "windows"
    return sys.platform


class SystemProbe:
    """The doctor's access to this machine (see lanchat.doctor.probe.interface.Probe)."""

    def __init__(self) -> None:
        self.platform = platform_name()

    def run(self, argv: Sequence[str], timeout: float) -> CommandOutput | None:
        """Run argv without a shell; None if not installed, rc 124 when out of time."""
        path = os.pathsep.join([os.environ.get("PATH", ""), *_SYSTEM_PATH])
        program = shutil.which(argv[0], path=path)
        if program is None:
            return None
        try:
            done = subprocess.run(
                [program, *argv[1:]],
                capture_output=True,
                text=True,
                errors="replace",
                timeout=timeout,
                stdin=subprocess.DEVNULL,
                check=False,
                env={**os.environ, "LC_ALL": "C"},  # messages in English, as the parsers expect
            )
        except subprocess.TimeoutExpired:
            return CommandOutput("", f"timed out after {timeout:g} s", TIMED_OUT_RC)
        except OSError as e:
            return CommandOutput("", str(e), 126)
        return CommandOutput(done.stdout, done.stderr, done.returncode)

    def read_text(self, path: str) -> str | None:
        """A small file, or None when missing or unreadable."""
        try:
            with open(path, encoding="utf-8", errors="replace") as f:
                return f.read(MAX_FILE_BYTES)
        except OSError:
            return None

    def addresses(self) -> list[LocalAddress]:
        """lanchat.netinfo.local_addresses()."""
        return local_addresses()

    def listeners(self, port: int) -> list[Listener] | None:
        """Listening TCP sockets on port, with their processes where the OS tells."""
        rows = _listening()
        if rows is None:
            return None
        return [row for row in rows if row.port == port]

    def lanchat_listeners(self) -> list[Listener]:
        """Listening sockets of processes whose command line is `... lanchat serve ...`."""
        import psutil

        found = []
        for row in _listening() or []:
            if row.pid is None:
                continue
            try:
                cmdline = psutil.Process(row.pid).cmdline()
            except (psutil.Error, OSError):
                continue
            words = [os.path.basename(w) for w in cmdline]
            if "serve" in words and any(w.startswith("lanchat") for w in words):
                found.append(row)
        return found

    def ask_relay(self, host: str, port: int, timeout: float) -> dict[str, Any] | str:
        """lanchat.client.query_relay, with the failure as words."""
        try:
            return query_relay(host, port, timeout)
        except (OSError, ValueError) as e:
            return str(e) or type(e).__name__

    def try_bind(self, port: int) -> str | None:
        """Whether `lanchat serve --port port` could listen (IPv4, every interface)."""
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            if os.name != "nt":
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as the relay does
            sock.bind(("0.0.0.0", port))
            return None
        except OSError as e:
            return e.strerror or str(e)
        finally:
            sock.close()

    def process_exe(self, pid: int) -> str | None:
        """psutil.Process(pid).exe(), or None when the OS will not say."""
        import psutil

        try:
            return str(psutil.Process(pid).exe()) or None
        except (psutil.Error, OSError):
            return None

    def resolve(self, host: str, port: int) -> Resolved:
        """getaddrinfo for TCP; IPv4 addresses first (what lanchat join tries first)."""
        try:
            infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        except (socket.gaierror, UnicodeError) as e:
            return Resolved(error=str(getattr(e, "strerror", None) or e))
        ordered = sorted(infos, key=lambda info: info[0] != socket.AF_INET)
        return Resolved(tuple(dict.fromkeys(_scoped(info[4]) for info in ordered)))

    def reach(
        self, address: str, port: int, timeout: float
    ) -> tuple[ConnectResult, HandshakeResult | None]:
        """connect() classified in describe_connect_error's words, then the hello on that socket."""
        started = time.monotonic()
        try:
            sock = socket.create_connection((address, port), timeout=timeout)
        except OSError as e:
            seconds = time.monotonic() - started
            described = describe_connect_error(address, port, e, timeout)
            message = described.message + (f" {described.hint}" if described.hint else "")
            return ConnectResult(_outcome(e), address, port, seconds, e.errno, message), None
        seconds = time.monotonic() - started
        try:
            source = str(sock.getsockname()[0])
        except OSError:
            source = None
        connected = ConnectResult("connected", address, port, seconds, source=source)
        return connected, _greet(sock, address, port, timeout)

    def fetch_page(self, address: str, port: int, timeout: float) -> PageResult:
        """One GET / with http.client (the stdlib), its answer in words."""
        import http.client

        connection = http.client.HTTPConnection(address, port, timeout=timeout)
        try:
            connection.request("GET", "/", headers={"User-Agent": "lanchat doctor"})
            response = connection.getresponse()
            body = response.read(MAX_PAGE_BYTES)
        except (OSError, http.client.HTTPException) as e:
            return PageResult(None, f"no HTTP answer: {e or type(e).__name__}")
        finally:
            connection.close()
        return PageResult(
            response.status,
            f"HTTP {response.status} {response.reason}",
            response.getheader("Content-Type", ""),
            response.getheader("Content-Security-Policy") is not None,
            len(body),
            response.getheader("Location", ""),
        )

    def udp_request(
        self, address: str, port: int, payload: bytes, timeouts: Sequence[float]
    ) -> bytes | None:
        """Send, wait, resend (RFC 6886 style); the first datagram from address:port, or None."""
        family = socket.AF_INET6 if ":" in address else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_DGRAM)
        try:
            sock.connect((address, port))  # only the gateway's answers are accepted
            for wait in timeouts:
                try:
                    sock.send(payload)
                except OSError:
                    return None
                sock.settimeout(wait)
                try:
                    return sock.recv(1100)
                except TimeoutError:
                    continue
                except OSError:  # ICMP port unreachable: nothing listens there
                    return None
            return None
        finally:
            sock.close()

    def monotonic(self) -> float:
        """time.monotonic()."""
        return time.monotonic()


def _greet(sock: socket.socket, address: str, port: int, timeout: float) -> HandshakeResult:
    """Ask whether a lanchat server is there (a probe: nobody in the room sees it), then hang up."""
    try:
        answer = probe_server(sock, address, port, timeout)
    except HandshakeFailed as e:
        return HandshakeResult(_handshake_kind(e.kind), e.message)
    except RejectedError as e:
        return HandshakeResult("rejected", e.message)
    except UnreachableError as e:
        return HandshakeResult("error", e.message)
    except OSError as e:  # sending the probe failed: the peer reset the connection
        where = host_port(address, port)
        return HandshakeResult("dropped", f"{where} closed the connection ({e}).")
    finally:
        sock.close()
    return HandshakeResult(
        "lanchat",
        f"{answer.server} answered the handshake (room {answer.room!r})",
        answer.server,
        answer.room,
    )


def _listening() -> list[Listener] | None:
    """Every listening TCP socket (psutil), or None when the OS refuses (macOS without root)."""
    import psutil

    try:
        conns = psutil.net_connections(kind="tcp")
    except (psutil.AccessDenied, PermissionError):
        return None
    rows = []
    for c in conns:
        if c.status != psutil.CONN_LISTEN or not c.laddr:
            continue
        program = None
        if c.pid:
            try:
                program = psutil.Process(c.pid).name()
            except (psutil.Error, OSError):
                program = None
        ip = str(c.laddr.ip).split("%")[0]
        rows.append(Listener(ip, int(c.laddr.port), c.pid or None, program))
    return rows


def _scoped(sockaddr: tuple[Any, ...]) -> str:
    """The address of a getaddrinfo result, keeping an IPv6 zone ('fe80::1%eth0'): without it
    a link-local address cannot be connected to."""
    address = str(sockaddr[0])
    if len(sockaddr) < 4 or not sockaddr[3] or "%" in address:
        return address
    try:
        zone = socket.if_indextoname(sockaddr[3])
    except OSError:
        zone = str(sockaddr[3])
    return f"{address}%{zone}"


def _outcome(error: OSError) -> ConnectOutcome:
    if isinstance(error, ConnectionRefusedError):
        return "refused"
    if isinstance(error, TimeoutError):
        return "timeout"
    if error.errno in (errno.EHOSTUNREACH, getattr(errno, "WSAEHOSTUNREACH", -1)):
        return "host-unreachable"
    if error.errno in (errno.ENETUNREACH, getattr(errno, "WSAENETUNREACH", -1)):
        return "net-unreachable"
    if error.errno == errno.EACCES:  # Linux reports an ICMPv6 admin-prohibited reject so
        return "prohibited"
    return "error"


def _handshake_kind(kind: str) -> Any:
    return kind if kind in ("foreign", "silent", "dropped") else "error"
