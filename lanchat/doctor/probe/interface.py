"""The doctor's window on the machine, as interfaces: checks call these, tests pass fakes.

`Probe` runs commands (always with a timeout), reads files, lists addresses and listening
sockets, and opens sockets; `MdnsProbe` advertises and browses mDNS. The real ones are
probe/system.py and probe/mdns.py; a check never touches the OS except through them.
`CommandOutput` is what one command printed, as every OS's firewall parser takes it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any, Literal, Protocol

from lanchat.netinfo import LocalAddress

ConnectOutcome = Literal[
    "connected",
    "refused",
    "timeout",
    "host-unreachable",
    "net-unreachable",
    "prohibited",  # an ICMPv6 "administratively prohibited" reject: a firewall said no
    "error",
]
HandshakeOutcome = Literal["lanchat", "rejected", "foreign", "silent", "dropped", "error"]
TIMED_OUT_RC = 124  # what a command that ran out of time reports (as GNU timeout does)
NOT_AVAILABLE = "mDNS probe not available in this build"


@dataclass(frozen=True)
class CommandOutput:
    """What one command printed: stdout, stderr and its exit code."""

    stdout: str = ""
    stderr: str = ""
    returncode: int = 0

    def to_dict(self) -> dict[str, Any]:
        """Plain data for JSON output."""
        return {"stdout": self.stdout, "stderr": self.stderr, "returncode": self.returncode}


@dataclass(frozen=True)
class Listener:
    """A listening TCP socket: where it is bound and, where the OS tells, which process owns it."""

    address: str  # "0.0.0.0", "::", "127.0.0.1", "10.0.0.5", ...
    port: int
    pid: int | None = None
    program: str | None = None

    def describe(self) -> str:
        """'python3 (pid 4711)' or 'a program the OS does not name'."""
        who = self.program or "a program the OS does not name"
        return f"{who} (pid {self.pid})" if self.pid else who

    def to_dict(self) -> dict[str, Any]:
        """Plain data for JSON output."""
        return asdict(self)


@dataclass(frozen=True)
class ConnectResult:
    """How a TCP connect() to a peer ended, how long it took, and the words for it."""

    outcome: ConnectOutcome
    address: str
    port: int
    seconds: float
    errno: int | None = None
    message: str = ""  # lanchat.client.describe_connect_error's message and hint
    source: str | None = None  # our address for that connection, when connected

    def to_dict(self) -> dict[str, Any]:
        """Plain data for JSON output."""
        return asdict(self)


@dataclass(frozen=True)
class HandshakeResult:
    """What answered on a port that accepted the connection."""

    outcome: HandshakeOutcome
    detail: str  # the server software and room, or what went wrong, in words
    server: str | None = None  # e.g. "lanchat 0.1.0"
    room: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """Plain data for JSON output."""
        return asdict(self)


@dataclass(frozen=True)
class Resolved:
    """A name looked up: its addresses (IPv4 first), or why the lookup failed."""

    addresses: tuple[str, ...] = ()
    error: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """Plain data for JSON output."""
        return {"addresses": list(self.addresses), "error": self.error}


@dataclass(frozen=True)
class PageResult:
    """What `GET /` on a relay's port answered: its chat page for browsers, or not."""

    status: int | None  # the HTTP status; None: no HTTP answer at all
    detail: str  # what came back, or what went wrong, in words
    content_type: str = ""
    csp: bool = False  # it came with a Content-Security-Policy
    size: int = 0  # bytes of the page
    location: str = ""  # a redirect's Location (a relay with TLS only sends http:// to https://)

    def to_dict(self) -> dict[str, Any]:
        """Plain data for JSON output."""
        return asdict(self)


class Probe(Protocol):
    """Everything the checks may ask of the operating system."""

    platform: str  # "linux", "windows", "darwin" (sys.platform's words, win32 -> windows)

    def run(self, argv: Sequence[str], timeout: float) -> CommandOutput | None:
        """Run a command; None when it is not installed; rc TIMED_OUT_RC when out of time."""
        ...

    def read_text(self, path: str) -> str | None:
        """A small text file's content, or None when missing or unreadable."""
        ...

    def addresses(self) -> list[LocalAddress]:
        """This PC's addresses (lanchat.netinfo.local_addresses)."""
        ...

    def listeners(self, port: int) -> list[Listener] | None:
        """Listening TCP sockets on port; None when the OS will not list them."""
        ...

    def lanchat_listeners(self) -> list[Listener]:
        """Listening sockets of `lanchat serve` processes on any port (best effort)."""
        ...

    def ask_relay(self, host: str, port: int, timeout: float) -> dict[str, Any] | str:
        """The relay's status document from host:port on this PC, or why there is none."""
        ...

    def try_bind(self, port: int) -> str | None:
        """Bind the port on every interface and let go; None if free, else the error."""
        ...

    def process_exe(self, pid: int) -> str | None:
        """The real executable of a process (psutil.Process(pid).exe())."""
        ...

    def resolve(self, host: str, port: int) -> Resolved:
        """Look a name up (getaddrinfo)."""
        ...

    def reach(
        self, address: str, port: int, timeout: float
    ) -> tuple[ConnectResult, HandshakeResult | None]:
        """A TCP connect() with a timeout, classified; once connected, a lanchat hello on the
        same connection (lanchat.client.Connection.greet), then goodbye. None if not connected."""
        ...

    def udp_request(
        self, address: str, port: int, payload: bytes, timeouts: Sequence[float]
    ) -> bytes | None:
        """Send a datagram, resending after each timeout; the first answer, or None."""
        ...

    def fetch_page(self, address: str, port: int, timeout: float) -> PageResult:
        """`GET /` over HTTP on address:port: the chat page a browser would get."""
        ...

    def monotonic(self) -> float:
        """A clock for durations."""
        ...


@dataclass(frozen=True)
class MdnsSelf:
    """Whether this PC's own test advertisement came back through mDNS."""

    seen: bool
    seconds: float | None = None
    name: str | None = None
    error: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """Plain data for JSON output."""
        return asdict(self)


@dataclass(frozen=True)
class MdnsNeighbours:
    """Other hosts heard on the link (by address), or why listening failed."""

    hosts: tuple[str, ...] = ()
    seconds: float | None = None
    error: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """Plain data for JSON output."""
        return {"hosts": list(self.hosts), "seconds": self.seconds, "error": self.error}


@dataclass(frozen=True)
class MdnsService:
    """A lanchat server found through mDNS."""

    name: str
    addresses: tuple[str, ...]
    port: int

    def to_dict(self) -> dict[str, Any]:
        """Plain data for JSON output."""
        return {"name": self.name, "addresses": list(self.addresses), "port": self.port}


@dataclass(frozen=True)
class MdnsBrowse:
    """The lanchat servers seen while browsing, or why browsing failed."""

    services: tuple[MdnsService, ...] = ()
    seconds: float | None = None
    error: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """Plain data for JSON output."""
        return {
            "services": [s.to_dict() for s in self.services],
            "seconds": self.seconds,
            "error": self.error,
        }


class MdnsProbe(Protocol):
    """mDNS for the doctor: advertise-and-see-self, hear neighbours, find lanchat servers."""

    def unavailable(self) -> str | None:
        """None when the probe works in this build, else the reason it does not."""
        ...

    def see_self(self, address: str, timeout: float) -> MdnsSelf:
        """Advertise a throwaway service on address and browse until it is seen or time is up."""
        ...

    def neighbours(self, own: Sequence[str], timeout: float) -> MdnsNeighbours:
        """Listen for mDNS traffic from hosts whose address is not in own."""
        ...

    def browse_lanchat(self, timeout: float) -> MdnsBrowse:
        """Every _lanchat._tcp service seen within timeout."""
        ...


class UnavailableMdnsProbe:
    """The mDNS probe of a build without lanchat.discovery: every mDNS check is skipped."""

    def __init__(self, reason: str = NOT_AVAILABLE) -> None:
        self.reason = reason

    def unavailable(self) -> str | None:
        """Always the reason."""
        return self.reason

    def see_self(self, address: str, timeout: float) -> MdnsSelf:
        """Nothing can be seen without a probe."""
        return MdnsSelf(False, error=self.reason)

    def neighbours(self, own: Sequence[str], timeout: float) -> MdnsNeighbours:
        """Nothing can be heard without a probe."""
        return MdnsNeighbours(error=self.reason)

    def browse_lanchat(self, timeout: float) -> MdnsBrowse:
        """Nothing can be found without a probe."""
        return MdnsBrowse(error=self.reason)
