"""Looking for servers over mDNS: a Watcher browses `_lanchat._tcp` with a fresh cache (so every
server it lists answered it) and reports changes; discover() waits until the answers settle."""

from __future__ import annotations

import logging
import queue
import socket
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from lanchat import netinfo
from lanchat.discovery.mdns import describe_error, ignore, mdns_errors, open_zeroconf
from lanchat.discovery.plan import browse_interfaces
from lanchat.discovery.records import SERVICE_TYPE, Server, parse_service
from lanchat.errors import UnreachableError
from lanchat.netinfo import LocalAddress

if TYPE_CHECKING:
    from zeroconf import ServiceInfo, Zeroconf

RESOLVE_MS = 1500  # a PTR answer carries SRV, TXT and addresses; a resolve rarely waits
DISCOVER_TIMEOUT = 3.0  # the browser queries at ~0.1 s and ~1.1 s: two chances
MIN_BROWSE_SECONDS = 1.0  # never settle before this: answers are delayed 20-120 ms, twice
QUIET_SECONDS = 0.5  # answers have settled when nothing changed for this long
REVALIDATE_SECONDS = 10.0  # --watch re-checks servers whose records expired (crashed ones)

log = logging.getLogger(__name__)

LocalAddresses = Callable[[], Sequence[LocalAddress]]


@dataclass(frozen=True)
class Change:
    """A server appeared, changed (addresses, TXT) or disappeared."""

    kind: Literal["added", "updated", "removed"]
    server: Server
    time: float  # seconds since 1970-01-01 UTC

    def to_dict(self) -> dict[str, Any]:
        return {"event": self.kind, "time": round(self.time, 3), "server": self.server.to_dict()}


@dataclass(frozen=True)
class _Record:
    """A resolved ServiceInfo with link-local scopes as interface names ('%eth0', not '%2')."""

    name: str
    server: str | None
    port: int | None
    properties: dict[bytes, bytes | None]
    addresses: tuple[str, ...]

    def parsed_scoped_addresses(self) -> list[str]:
        return list(self.addresses)


def _record_of(info: ServiceInfo) -> _Record:
    return _Record(
        name=info.name,
        server=info.server,
        port=info.port,
        properties=dict(info.properties),
        addresses=tuple(_scope_name(a) for a in info.parsed_scoped_addresses()),
    )


def _scope_name(address: str) -> str:
    bare, sep, scope = address.partition("%")
    if sep and scope.isdigit():
        try:
            return f"{bare}%{socket.if_indextoname(int(scope))}"
        except OSError:
            pass
    return address


class Watcher:
    """Browses for lanchat servers; every server listed answered this watcher (a fresh cache),
    and each change is put on `changes`."""

    def __init__(self, *, local_addresses: LocalAddresses = netinfo.local_addresses) -> None:
        self.changes: queue.Queue[Change] = queue.Queue()
        self._local = local_addresses
        self._known: dict[str, Server] = {}
        self._lock = threading.Lock()
        self._zc: Zeroconf | None = None
        self._browser: Any = None
        self._qm_browser: Any = None

    def start(self) -> Watcher:
        """Open the mDNS sockets and start browsing; UnreachableError if that cannot be done."""
        from zeroconf import DNSQuestionType, ServiceBrowser

        ipv4, ipv6 = browse_interfaces(self._local())
        if not ipv4 and not ipv6:
            raise UnreachableError(
                "This computer has no network address: there is no LAN to look for servers on.",
                "Connect to the network (Wi-Fi or cable) and try again.",
            )
        try:
            self._zc = open_zeroconf(ipv4, ipv6)
        except mdns_errors() as e:
            raise UnreachableError(
                f"Cannot listen for mDNS answers on this computer: {describe_error(e)}.",
                "Type the server's address instead: lanchat join 192.168.1.23",
            ) from None
        # Both kinds of question at once. The default first question asks for unicast (QU)
        # answers, which responders send at once; but a unicast answer to port 5353 reaches
        # only one of the programs sharing it on a PC (a server on this PC, avahi). Multicast
        # (QM) answers reach every program, but a responder that multicast the record in the
        # last second must wait a second (RFC 6762 section 14): a server that just started.
        self._browser = ServiceBrowser(self._zc, SERVICE_TYPE, handlers=[self._on_change])
        self._qm_browser = ServiceBrowser(
            self._zc, SERVICE_TYPE, handlers=[ignore], question_type=DNSQuestionType.QM
        )
        return self

    def servers(self) -> list[Server]:
        """The servers known now, by room, host and name."""
        with self._lock:
            found = list(self._known.values())
        return sorted(found, key=lambda s: (s.room.casefold(), s.host.casefold(), s.name))

    def _emit(self, kind: Literal["added", "updated", "removed"], server: Server) -> None:
        self.changes.put(Change(kind, server, time.time()))

    def _on_change(
        self, zeroconf: Zeroconf, service_type: str, name: str, state_change: Any
    ) -> None:
        """Runs in the browser's thread, which must survive anything a foreign device sends."""
        from zeroconf import ServiceStateChange

        key = name.lower()
        try:
            server = None
            if state_change is not ServiceStateChange.Removed:
                server = self._resolve(zeroconf, service_type, name)
        except Exception:  # a record no parser expected: ignore it, keep browsing
            log.debug("ignoring the record %r", name, exc_info=True)
            server = None
        with self._lock:
            old = self._known.pop(key, None)
            if server is not None:
                self._known[key] = server
        if server is None:
            if old is not None:
                self._emit("removed", old)
        elif old is None:
            self._emit("added", server)
        elif old != server:
            self._emit("updated", server)

    def _resolve(self, zeroconf: Zeroconf, service_type: str, name: str) -> Server | None:
        from zeroconf import DNSQuestionType

        # Usually answered from the cache: a PTR answer carries SRV, TXT and addresses.
        info = zeroconf.get_service_info(
            service_type, name, timeout=RESOLVE_MS, question_type=DNSQuestionType.QM
        )
        return None if info is None else parse_service(_record_of(info))

    def refresh(self) -> None:
        """Read the known servers again from the cache (no packets sent).

        zeroconf reports no change when a link-local AAAA record first learned over IPv4
        (unscoped, unusable) arrives again over IPv6 with its scope; this picks that up.
        """
        if self._zc is None:
            return
        with self._lock:
            known = list(self._known.items())
        for key, old in known:
            try:
                server = self._from_cache(self._zc, key)
            except Exception:  # as in _on_change: a strange record must not end the watch
                log.debug("ignoring the record %r", key, exc_info=True)
                continue
            if server is None or server == old:
                continue
            with self._lock:
                if key not in self._known:
                    continue  # removed meanwhile
                self._known[key] = server
            self._emit("updated", server)

    def _from_cache(self, zc: Zeroconf, key: str) -> Server | None:
        from zeroconf import ServiceInfo

        info = ServiceInfo(SERVICE_TYPE, key)
        if not info.load_from_cache(zc):
            return None
        return parse_service(_record_of(info))

    def revalidate(self, timeout_ms: int = RESOLVE_MS) -> None:
        """Drop servers that no longer answer: one that crashed sent no goodbye, and its PTR
        record lives ~19 min in zeroconf's cache, but its SRV record expires after 2 min; then
        a fresh query (sent only for those) decides."""
        from zeroconf import DNSQuestionType, ServiceInfo

        if self._zc is None:
            return
        with self._lock:
            keys = list(self._known)  # lower-case names; the cache ignores case too
        for key in keys:
            info = ServiceInfo(SERVICE_TYPE, key)
            if info.load_from_cache(self._zc) or info.request(
                self._zc, timeout_ms, question_type=DNSQuestionType.QM
            ):
                continue
            with self._lock:
                gone = self._known.pop(key, None)
            if gone is not None:
                self._emit("removed", gone)

    def close(self) -> None:
        zc, self._zc = self._zc, None
        for browser in (self._browser, self._qm_browser):
            if browser is not None:
                browser.cancel()
        self._browser = self._qm_browser = None
        if zc is not None:
            zc.close()

    def __enter__(self) -> Watcher:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()


def discover(
    timeout: float = DISCOVER_TIMEOUT,
    *,
    minimum: float = MIN_BROWSE_SECONDS,
    quiet: float = QUIET_SECONDS,
    on_progress: Callable[[list[Server]], None] | None = None,
) -> list[Server]:
    """The servers that answered: returns once answers settled (nothing new for `quiet` s,
    after at least `minimum` s) or at `timeout` when none answered."""
    with Watcher() as watcher:
        start = time.monotonic()
        deadline = start + timeout
        last_change = start
        while True:
            now = time.monotonic()
            if now >= deadline:
                break
            settle_at = max(start + minimum, last_change + quiet)
            if watcher.servers():
                if now >= settle_at:
                    break
                wait = min(deadline, settle_at) - now
            else:  # nothing to settle: the next query (at ~1.1 s) may still bring an answer
                wait = deadline - now
            try:
                watcher.changes.get(timeout=max(0.01, wait))
            except queue.Empty:
                continue
            last_change = time.monotonic()
            if on_progress is not None:
                on_progress(watcher.servers())
        watcher.refresh()
        return watcher.servers()
