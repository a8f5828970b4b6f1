"""Announcing a server over mDNS: an Advertiser thread registers the service, keeps the record
matching this PC's addresses (plan.refresh_action) and sends the goodbye on close()."""

from __future__ import annotations

import socket
import threading
import uuid
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

from lanchat import __version__, netinfo
from lanchat.discovery.mdns import describe_error, ignore, mdns_errors, open_zeroconf
from lanchat.discovery.plan import AdvertPlan, plan_advertisement, refresh_action
from lanchat.discovery.records import (
    SERVICE_TYPE,
    Advertisement,
    instance_name,
    srv_target,
    txt_properties,
)
from lanchat.netinfo import LocalAddress

if TYPE_CHECKING:
    from zeroconf import ServiceInfo, Zeroconf

ADDRESS_CHECK_SECONDS = 3.0  # how often a server looks at its addresses again (Wi-Fi, VPN)
CLOSE_WAIT_SECONDS = 3.0  # goodbye packets take ~0.3 s; a registration in progress ~1.7 s

LocalAddresses = Callable[[], Sequence[LocalAddress]]


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
        web: str | None = None,
        password: bool = False,
        fingerprint: str | None = None,
        group: str | None = None,
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
        self.web = web  # the chat page's path, for the TXT record
        self.password = password  # joining needs a password (TXT password=1)
        self.fingerprint = fingerprint  # serve --tls: its key's, for the TXT record
        self.group = group  # the room's history id on a backplane, for the TXT record
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
        errors = mdns_errors()
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
            properties=txt_properties(
                self.room,
                self.version,
                password=self.password,
                web=self.web,
                fingerprint=self.fingerprint,
                group=self.group,
            ),
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
            self._zc, SERVICE_TYPE, handlers=[ignore], question_type=DNSQuestionType.QM
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
        except mdns_errors():
            pass
        finally:
            try:
                zc.close()
            except mdns_errors():
                pass


def _instance(full_name: str) -> str:
    return full_name[: -len(SERVICE_TYPE) - 1]


def _describe(error: BaseException) -> str:
    """An mDNS failure in words, for the warning that replaces the announcement."""
    return f"mDNS does not work here ({describe_error(error)}); others must type the address"


def advertise(
    *,
    room: str,
    port: int,
    bind_host: str = "",
    wanted: Sequence[str] = (),
    on_change: Callable[[Advertisement], None] | None = None,
    check_seconds: float = ADDRESS_CHECK_SECONDS,
    web: str | None = None,
    password: bool = False,
    fingerprint: str | None = None,
    group: str | None = None,
) -> Advertiser:
    """Start announcing a server (`fingerprint`: its TLS key's, with serve --tls); the
    returned Advertiser's close() withdraws it."""
    return Advertiser(
        room=room,
        port=port,
        bind_host=bind_host,
        wanted=wanted,
        on_change=on_change,
        check_seconds=check_seconds,
        web=web,
        password=password,
        fingerprint=fingerprint,
        group=group,
    ).start()
