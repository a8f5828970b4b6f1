"""mDNS through python-zeroconf, the only code that imports it: advertise a server (and keep the
record matching this PC's addresses), and watch the network for servers. zeroconf is imported
inside the functions, so that `lanchat --help` and the pure parts stay light."""

from __future__ import annotations

import errno
import logging
import queue
import socket
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from lanchat import __version__, netinfo
from lanchat.discovery.plan import AdvertPlan, browse_interfaces, plan_advertisement, refresh_action
from lanchat.discovery.records import (
    SERVICE_TYPE,
    Advertisement,
    Server,
    instance_name,
    parse_service,
    srv_target,
    txt_properties,
)
from lanchat.errors import UnreachableError
from lanchat.netinfo import LocalAddress

if TYPE_CHECKING:
    from zeroconf import ServiceInfo, Zeroconf

ADDRESS_CHECK_SECONDS = 3.0  # how often a server looks at its addresses again (Wi-Fi, VPN)
CLOSE_WAIT_SECONDS = 3.0  # goodbye packets take ~0.3 s; a registration in progress ~1.7 s
RESOLVE_MS = 1500  # a PTR answer carries SRV, TXT and addresses; a resolve rarely waits
DISCOVER_TIMEOUT = 3.0  # the browser queries at ~0.1 s and ~1.1 s: two chances
MIN_BROWSE_SECONDS = 1.0  # never settle before this: answers are delayed 20-120 ms, twice
QUIET_SECONDS = 0.5  # answers have settled when nothing changed for this long
REVALIDATE_SECONDS = 10.0  # --watch re-checks servers whose records expired (crashed ones)

log = logging.getLogger(__name__)

LocalAddresses = Callable[[], Sequence[LocalAddress]]


def _quiet_zeroconf() -> None:
    """zeroconf logs socket trouble on its own; lanchat reports problems in words instead."""
    logging.getLogger("zeroconf").setLevel(logging.CRITICAL)


def _mdns_errors() -> tuple[type[BaseException], ...]:
    """What zeroconf raises for network trouble: a warning, never a crash of the relay."""
    from zeroconf import Error

    return (OSError, RuntimeError, ValueError, Error)


def open_zeroconf(ipv4: Sequence[str], ipv6_interfaces: Sequence[str]) -> Zeroconf:
    """A Zeroconf on exactly these IPv4 addresses and IPv6 interfaces (never loopback).

    An explicit list needs no multicast route (InterfaceChoice.Default does: pitfall 2), speaks
    IPv4 and IPv6 (the default is IPv4 only: pitfall 3) and avoids ::1 (pitfall 4). Where IPv6
    cannot be used it falls back to IPv4.
    """
    from zeroconf import IPVersion, Zeroconf

    _quiet_zeroconf()
    indexes: list[int] = []
    for name in ipv6_interfaces:
        try:
            indexes.append(socket.if_nametoindex(name))
        except OSError:
            continue  # the interface went away since it was listed
    if ipv4 and indexes:
        try:
            return Zeroconf(interfaces=[*ipv4, *indexes], ip_version=IPVersion.All)
        except (OSError, RuntimeError):
            pass  # IPv6 disabled or half-configured: IPv4 alone still finds most LANs
    if ipv4:
        return Zeroconf(interfaces=list(ipv4), ip_version=IPVersion.V4Only)
    if indexes:
        return Zeroconf(interfaces=list(indexes), ip_version=IPVersion.V6Only)
    raise OSError("no network interface to use")


# --- advertising ---------------------------------------------------------------------------


class Advertiser:
    """Announces one server over mDNS from its own thread and keeps the record matching this
    PC's addresses; close() unregisters it (goodbye packets), so others see it vanish at once."""

    def __init__(
        self,
        *,
        room: str,
        port: int,
        bind_host: str = "",
        wanted: Sequence[str] = (),
        version: str = __version__,
        hostname: str | None = None,
        check_seconds: float = ADDRESS_CHECK_SECONDS,
        on_change: Callable[[Advertisement], None] | None = None,
        local_addresses: LocalAddresses = netinfo.local_addresses,
    ) -> None:
        self.room = room
        self.port = port
        self.bind_host = bind_host
        self.wanted = tuple(wanted)
        self.version = version
        self.hostname = hostname or socket.gethostname()
        self.check_seconds = check_seconds
        self.on_change = on_change
        self._local = local_addresses
        self._state = Advertisement("starting")
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._settled = threading.Event()
        self._zc: Zeroconf | None = None
        self._info: ServiceInfo | None = None
        self._thread = threading.Thread(target=self._run, name="lanchat-mdns", daemon=True)

    @property
    def state(self) -> Advertisement:
        with self._lock:
            return self._state

    def start(self) -> Advertiser:
        self._thread.start()
        return self

    def wait_settled(self, timeout: float) -> Advertisement:
        """The state once the first registration finished or failed (or `timeout` passed)."""
        self._settled.wait(timeout)
        return self.state

    def withdraw(self) -> None:
        """Start unregistering (the thread sends the goodbye packets) without waiting."""
        self._stop.set()

    def close(self, timeout: float = CLOSE_WAIT_SECONDS) -> None:
        """Unregister and wait until the goodbye went out, at most `timeout` s."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout)

    def _set(self, state: Advertisement) -> None:
        with self._lock:
            changed, self._state = state != self._state, state
        if changed and self.on_change is not None and self._settled.is_set():
            self.on_change(state)

    def _run(self) -> None:
        errors = _mdns_errors()
        plan: AdvertPlan | None = None  # what is registered now (None: nothing)
        try:
            while True:
                try:
                    new = plan_advertisement(
                        self._local(), bind_host=self.bind_host, wanted=self.wanted
                    )
                    action = refresh_action(plan, new)
                    if action in ("withdraw", "restart"):
                        self._withdraw()
                        plan = None
                    if action in ("register", "restart"):
                        self._register(new)
                    elif action == "update":
                        self._update(new)
                    plan = new if new.addresses else None
                    if not new.addresses:
                        self._set(Advertisement("not-advertised", message=new.reason))
                except errors as e:
                    self._withdraw()
                    plan = None
                    self._set(Advertisement("failed", message=_describe(e)))
                self._settled.set()
                if self._stop.wait(self.check_seconds):
                    return
        finally:
            self._withdraw()
            self._settled.set()

    def _register(self, plan: AdvertPlan) -> None:
        from zeroconf import DNSQuestionType, ServiceBrowser, ServiceInfo

        name = instance_name(self.room, self.hostname, self.port)
        info = ServiceInfo(
            SERVICE_TYPE,
            f"{name}.{SERVICE_TYPE}",
            port=self.port,
            properties=txt_properties(self.room, self.version),
            server=srv_target(self.hostname, uuid.getnode()),
            parsed_addresses=[a.partition("%")[0] for a in plan.addresses],
        )
        self._zc = open_zeroconf(plan.ipv4_interfaces, plan.ipv6_interfaces)
        # A clash (same room on a PC with the same name) renames to 'lobby on pc-2': no crash.
        # zeroconf's probes ask for unicast answers, and on a PC where several programs share
        # UDP 5353 (avahi, another lanchat) the kernel hands a unicast answer to one of them,
        # maybe not us. A browser asking by multicast (QM) also puts the other server's
        # records into the cache that the probing checks (usually within ~0.2 s of its ~1.2 s).
        look = ServiceBrowser(
            self._zc, SERVICE_TYPE, handlers=[_ignore], question_type=DNSQuestionType.QM
        )
        try:
            self._zc.register_service(info, allow_name_change=True)
        finally:
            look.cancel()
        self._info = info
        self._set(Advertisement("advertised", _instance(info.name), plan.addresses))

    def _update(self, plan: AdvertPlan) -> None:
        if self._zc is None or self._info is None:  # nothing registered: register instead
            self._register(plan)
            return
        self._info.addresses = [a.partition("%")[0] for a in plan.addresses]
        self._zc.update_service(self._info)
        self._set(Advertisement("advertised", _instance(self._info.name), plan.addresses))

    def _withdraw(self) -> None:
        """Send goodbyes and close; problems here only mean there is nothing left to undo."""
        zc, info = self._zc, self._info
        self._zc = self._info = None
        if zc is None:
            return
        try:
            if info is not None:
                zc.unregister_service(info)
        except _mdns_errors():
            pass
        finally:
            try:
                zc.close()
            except _mdns_errors():
                pass


def _ignore(**change: Any) -> None:
    """A browser handler for a browser that only fills the cache."""


def _instance(full_name: str) -> str:
    return full_name[: -len(SERVICE_TYPE) - 1]


def _describe(error: BaseException) -> str:
    """An mDNS failure in words, for the warning that replaces the announcement."""
    return f"mDNS does not work here ({_describe_plain(error)}); others must type the address"


def advertise(
    *,
    room: str,
    port: int,
    bind_host: str = "",
    wanted: Sequence[str] = (),
    on_change: Callable[[Advertisement], None] | None = None,
    check_seconds: float = ADDRESS_CHECK_SECONDS,
) -> Advertiser:
    """Start announcing a server; the returned Advertiser's close() withdraws it."""
    return Advertiser(
        room=room,
        port=port,
        bind_host=bind_host,
        wanted=wanted,
        on_change=on_change,
        check_seconds=check_seconds,
    ).start()


# --- browsing ------------------------------------------------------------------------------


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
        except _mdns_errors() as e:
            raise UnreachableError(
                f"Cannot listen for mDNS answers on this computer: {_describe_plain(e)}.",
                "Type the server's address instead: lanchat join 192.168.1.23",
            ) from None
        # Both kinds of question at once. The default first question asks for unicast (QU)
        # answers, which responders send at once; but a unicast answer to port 5353 reaches
        # only one of the programs sharing it on a PC (a server on this PC, avahi). Multicast
        # (QM) answers reach every program, but a responder that multicast the record in the
        # last second must wait a second (RFC 6762 section 14): a server that just started.
        self._browser = ServiceBrowser(self._zc, SERVICE_TYPE, handlers=[self._on_change])
        self._qm_browser = ServiceBrowser(
            self._zc, SERVICE_TYPE, handlers=[_ignore], question_type=DNSQuestionType.QM
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


def _describe_plain(error: BaseException) -> str:
    if isinstance(error, OSError) and error.errno == errno.EADDRINUSE:
        return "another program holds UDP port 5353 and does not share it"
    return getattr(error, "strerror", None) or str(error) or type(error).__name__


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
