"""Running `lanchat serve`: the relay, its mDNS announcement, the signals that stop it, and the
stream of events for the log. Rendering is the caller's (a ServeLog from lanchat.output), so
this module prints nothing.

Threads: the main thread runs the log (it sleeps LOG_EVERY, then hands the log what the room
queued meanwhile, in batches of at most LOG_BATCH: lanchat/logqueue.py), and is the one that
Ctrl-C and SIGTERM interrupt. Everything else runs in the relay's threads."""

from __future__ import annotations

import errno
import ipaddress
import os
import socket
import threading
import time
import uuid
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from lanchat import __version__, netinfo
from lanchat.admission import AddressRules, Refusal, Refusals
from lanchat.auth.login import Gate
from lanchat.auth.secrets import Secrets, new_token, remove_token, write_token
from lanchat.cores import CoreKeeper, core_of_thread
from lanchat.errors import AddressInUseError, UsageError
from lanchat.logqueue import LOG_QUEUE, LogQueue
from lanchat.netinfo import LocalAddress, endpoint_text
from lanchat.protocol import (
    DEFAULT_HISTORY,
    DEFAULT_KEEPALIVE_SECONDS,
    DEFAULT_MAX_CLIENTS,
    DEFAULT_MAX_PER_ADDRESS,
    DEFAULT_MAX_RATE,
    DEFAULT_PORT,
    DEFAULT_ROOM,
    Event,
)
from lanchat.relay import FD_RESERVE, Relay, raise_fd_limit
from lanchat.stopping import (
    StopRequested,
    ignore_stop_signals,
    restore_sigterm,
    stop_on_sigterm,
)
from lanchat.tuning import THREAD_STACK_BYTES
from lanchat.web import WEB_PATH, WebOptions

if TYPE_CHECKING:
    from lanchat.backplane import Backplane
    from lanchat.discovery import Advertisement, Advertiser
    from lanchat.protocol.status import BackplaneStatus
    from lanchat.tls.transport import ServerTls

ADVERTISE_WAIT_SECONDS = 5.0  # registering takes ~1.7 s (probing for a name clash first)
# The log's pace: what the room queued is written every LOG_EVERY seconds, LOG_BATCH lines per
# write at most (a write lets the relay's threads have the GIL; the log thread holds it while
# it formats a batch, 2-5 µs a line). Waking per event cost the room a thread wake-up per line.
LOG_EVERY = 0.05
LOG_BATCH = 256
REFUSALS_EVERY = 0.5  # refused connections are logged at most this often, counted


@dataclass(frozen=True)
class ServeOptions:
    """What `lanchat serve` was asked for."""

    host: str = ""
    port: int = DEFAULT_PORT
    room: str = DEFAULT_ROOM
    history: int = DEFAULT_HISTORY
    max_clients: int = DEFAULT_MAX_CLIENTS
    quiet: bool = False
    keepalive: float = DEFAULT_KEEPALIVE_SECONDS
    max_rate: float = DEFAULT_MAX_RATE  # lines/s per client before the relay reads less
    max_per_address: int = DEFAULT_MAX_PER_ADDRESS  # connections one address may have open
    allow: tuple[str, ...] = ()  # --allow networks: only these may connect (lanchat/admission.py)
    deny: tuple[str, ...] = ()  # --deny networks: these may not
    mdns: bool = True
    interfaces: tuple[str, ...] = ()
    one_core: bool = True  # a busy room's threads share one CPU core (lanchat.cores)
    store: str | None = None  # the history file (SQLite); None: history in memory only
    store_keep: int = 100_000  # room events kept in the store (0: no limit by count)
    store_days: float = 0  # ... and for at most this many days (0: no limit by age)
    web: bool = True  # the chat page and its WebSocket on the same port (lanchat/web/)
    web_origins: tuple[str, ...] = ()  # pages elsewhere allowed to open the WebSocket
    qr: bool = True  # the banner shows a QR code of the page's address
    backplane: str | None = None  # redis://HOST:PORT/DB: one room with other relays
    relay_name: str | None = None  # this relay's name among them (default: host[:port])
    # The room password and the operator password, as verifiers only (lanchat/auth/secrets.py);
    # None: no passwords. Every run adds its own operator token.
    secrets: Secrets | None = None
    allow_plain_login: bool = False  # cleartext passwords without TLS (raw /login, browsers)
    tls: bool = False  # TLS on the same port (lanchat/tls/), with the relay's own key
    allow_plain: bool = False  # with tls: plain clients are let in too


@dataclass(frozen=True)
class TlsInfo:
    """The relay's TLS side, for the banner: what clients pin, and how browsers show it."""

    fingerprint: str  # 'ABCD-EFGH-...' (lanchat/tls/fingerprint.py)
    spki_sha256: str  # '3F:A2:...': the same key as a browser's "Public Key" SHA-256
    allow_plain: bool
    key_path: str  # where the key is kept
    new_key: bool  # made just now: clients that pinned an earlier one will refuse it

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class Listening:
    """The server is up: what others need to know to join."""

    host: str  # as asked ('' = every network)
    bound_host: str
    port: int
    room: str
    addresses: tuple[LocalAddress, ...]
    max_clients: int
    notes: tuple[str, ...]
    advertisement: Advertisement
    store: str | None = None  # where history is kept; None: in memory only
    restored: int = 0  # messages restored from the store
    web: bool = False  # the chat page is served (the banner shows its address per LAN address)
    qr: bool = False  # ... and a QR code of the first one
    allow: tuple[str, ...] = ()  # --allow and --deny, as networks (CIDR)
    deny: tuple[str, ...] = ()
    backplane: BackplaneStatus | None = None  # the link to the room's other relays
    password: bool = False  # joining needs a password
    plain_login: bool = False  # ... and ncat's /login and browsers may send it on plain TCP
    operator_token: str | None = None  # the operator token's file (None: it could not be written)
    tls: TlsInfo | None = None  # serve --tls; None: plain only
    pid: int = field(default_factory=os.getpid)
    version: str = __version__


@dataclass(frozen=True)
class Stopped:
    """How the run ended."""

    clients: int  # people told the server is shutting down
    messages: int
    log_lines_dropped: int  # events the log could not keep up with (skipped, counted)


class ServeLog(Protocol):
    """Where a running server reports: the banner, the room's events, mDNS changes, the end."""

    def listening(self, info: Listening) -> None: ...

    def events(self, batch: Sequence[tuple[Event, str | None]]) -> None:
        """Room events in order, each with the address of the client that caused it (joins);
        written at once (one write for the batch)."""
        ...

    def skipped(self, count: int) -> None:
        """`count` more events were skipped: the log could not keep up with the room."""
        ...

    def advertisement(self, state: Advertisement) -> None: ...

    def refused(self, refusal: Refusal) -> None: ...

    def stopped(self, summary: Stopped) -> None: ...


def capacity_notes(max_clients: int) -> tuple[int, list[str]]:
    """The clients this process can hold (after raising its open-files limit), and a note when
    fewer than asked."""
    capacity = max(1, raise_fd_limit() - FD_RESERVE)
    notes = []
    if max_clients > capacity:
        notes.append(
            f"Only {capacity} people can connect: the open-files limit is too low for "
            f"--max-clients {max_clients}. Raise it with `ulimit -n {max_clients + FD_RESERVE}`."
        )
    return min(max_clients or capacity, capacity), notes


def run_server(options: ServeOptions, log: ServeLog) -> Stopped:
    """Serve until Ctrl-C or SIGTERM, then tell everyone and stop; AddressInUseError names the
    program holding the port."""
    check_listen_host(options.host)
    rules = address_rules(options.allow, options.deny)
    max_clients, notes = capacity_notes(options.max_clients)
    notes += password_notes(options)
    # A process-wide setting, made here and not by Relay (tests run relays in-process): every
    # thread started from now on, thousands of readers among them, gets this stack size.
    threading.stack_size(THREAD_STACK_BYTES)
    tls, tls_info = _tls(options) if options.tls else (None, None)
    store = None
    if options.store is not None:
        from lanchat.store import open_store

        store = open_store(options.store, keep=options.store_keep, keep_days=options.store_days)
    backplane = _backplane(options) if options.backplane is not None else None
    token = new_token()  # this run's operator token: its file is written once the port is known
    secrets = (options.secrets or Secrets()).with_console(token)
    relay = Relay(
        options.host,
        options.port,
        room=options.room,
        history=options.history,
        max_clients=max_clients,
        keepalive=options.keepalive,
        max_rate=options.max_rate,
        max_per_address=options.max_per_address,
        rules=rules,
        store=store,
        web=WebOptions(options.web_origins) if options.web else None,
        backplane=backplane,
        gate=Gate(
            secrets,
            allow_plain_login=options.allow_plain_login,
            tls_offered=options.tls,
        ),
        tls=tls,
    )
    restored = len(relay.room.history)  # before anyone can join
    events = LogQueue(LOG_QUEUE)
    if not options.quiet:
        relay.hub.listeners.append(events.put)  # under the room lock: never blocks
    # The handler is in place before anyone can learn the port, so a prompt SIGTERM is clean.
    previous = stop_on_sigterm()
    advertiser: Advertiser | None = None
    keeper: CoreKeeper | None = None
    people = 0
    token_port: int | None = None
    try:
        _start(relay, options.port)
        token_port, token_file = relay.address[1], _write_token(relay.address[1], token, notes)
        if options.one_core:
            fanout = relay.hub.fanout
            keeper = CoreKeeper(lambda: fanout.holds, lambda: core_of_thread(fanout.writer_id))
            keeper.start()
        bound_host, bound_port = relay.address
        advertisement = _off()
        if options.mdns:
            fingerprint = tls_info.fingerprint if tls_info is not None else None
            group = backplane.epoch if backplane is not None else None
            advertiser = _advertise(options, bound_port, events.put_always, fingerprint, group)
            advertisement = advertiser.wait_settled(ADVERTISE_WAIT_SECONDS)
        log.listening(
            Listening(
                host=options.host,
                bound_host=bound_host,
                port=bound_port,
                room=options.room,
                addresses=tuple(netinfo.lan_addresses()),
                max_clients=relay.room.max_clients,
                notes=tuple(notes),
                advertisement=advertisement,
                store=options.store,
                restored=restored,
                web=options.web,
                qr=options.qr,
                allow=rules.to_texts()[0],
                deny=rules.to_texts()[1],
                backplane=backplane.status() if backplane is not None else None,
                password=secrets.required,
                plain_login=options.allow_plain_login,
                operator_token=token_file,
                tls=tls_info,
            )
        )
        _log_events(events, log, relay.refusals)
    except (KeyboardInterrupt, StopRequested):
        pass
    finally:
        ignore_stop_signals()
        events.close()  # the goodbyes of the stop are not logged (what happened before is)
        if advertiser is not None:
            advertiser.withdraw()  # the mDNS goodbye goes out while the relay says its own
        people = relay.hub.size
        if keeper is not None:
            keeper.stop()
        relay.stop()
        if store is not None:
            store.close()  # again, harmless: it is closed even if the relay never started
        if advertiser is not None:
            advertiser.close()
        if token_port is not None:
            remove_token(token_port, token)
        restore_sigterm(previous)
    _write_log(events, log, len(events))
    summary = Stopped(people, relay.room.messages, events.skipped)
    log.stopped(summary)
    return summary


def _tls(options: ServeOptions) -> tuple[ServerTls, TlsInfo]:
    """The relay's key (made on the first `serve --tls` here) and a certificate naming this PC
    and its addresses now (reissued for the same key when they changed)."""
    from lanchat.tls.identity import certificate_names, load_identity, server_tls

    addresses = [a.address for a in netinfo.lan_addresses()]
    if options.host not in ("", "::", "*", "0.0.0.0"):
        addresses.insert(0, options.host)
    identity = load_identity(certificate_names(socket.gethostname(), addresses))
    info = TlsInfo(
        fingerprint=identity.fingerprint_text,
        spki_sha256=identity.spki_sha256,
        allow_plain=options.allow_plain,
        key_path=str(identity.key_path),
        new_key=identity.created,
    )
    return server_tls(identity, allow_plain=options.allow_plain), info


def address_rules(allow: tuple[str, ...], deny: tuple[str, ...]) -> AddressRules:
    """--allow and --deny as rules; UsageError names a network that is not one."""
    for option, texts in (("--allow", allow), ("--deny", deny)):
        for text in texts:
            try:
                AddressRules.parse((text,))
            except ValueError as e:
                raise UsageError(
                    f"{option} {e}",
                    f"Examples: {option} 192.168.1.0/24, {option} 10.0.0.7, {option} fd00::/8.",
                ) from None
    return AddressRules.parse(allow, deny)


def _write_token(port: int, token: str, notes: list[str]) -> str | None:
    """Write the operator token's file; where it is, or None (and a note saying why not)."""
    try:
        return str(write_token(port, token))
    except OSError as e:
        notes.append(
            f"The operator token could not be written ({e.strerror or e}): `lanchat join "
            "--operator` on this PC will ask for the operator password instead."
        )
        return None


def password_notes(options: ServeOptions) -> list[str]:
    """What the banner warns about a room password: logins on plain TCP (no --tls, or
    --allow-plain) can be guessed at offline; --allow-plain-login sends passwords in clear."""
    if options.secrets is None or not options.secrets.required:
        return []
    notes = []
    if not options.tls or options.allow_plain:
        where = "" if not options.tls else " on plain connections (--allow-plain)"
        notes.append(
            "The room password never crosses the network (SCRAM) and a recorded login cannot "
            f"be replayed, but someone who records a login{where} can try guesses at it "
            "offline: choose a long password, and use --tls where you can."
        )
    if options.allow_plain_login and (not options.tls or options.allow_plain):
        notes.append(
            "--allow-plain-login: passwords typed in ncat or a browser on plain connections "
            "travel in clear text; anyone on the network can read them."
        )
    return notes


def check_listen_host(host: str) -> None:
    """UsageError when `--host` cannot be listened on: not an address of this PC, a name that
    does not resolve, a link-local IPv6 address. Binding port 0 asks the OS without using the
    real port (whose conflicts AddressInUseError explains)."""
    if host in ("", "::", "*", "0.0.0.0"):
        return
    every = "Leave out --host: the server then listens on every address of this PC."
    plain = host.split("%", 1)[0]
    try:
        ip = ipaddress.ip_address(plain)
    except ValueError:
        ip = None
    if isinstance(ip, ipaddress.IPv6Address) and ip.is_link_local:
        # The relay binds (host, port), which drops the %zone; a link-local address without
        # its interface is ambiguous anyway (every interface has one).
        scope = "" if "%" in host else f" it needs its interface ({plain}%eth0, say), and"
        raise UsageError(
            f"Cannot listen on {host} alone: it is a link-local address,{scope} lanchat cannot "
            "listen on a single link-local address.",
            f"{every} Others then join with `lanchat join [{plain}%INTERFACE]:PORT`, naming "
            "their own interface.",
        )
    family = socket.AF_INET6 if ":" in plain else socket.AF_INET
    try:
        with socket.socket(family, socket.SOCK_STREAM) as probe:
            probe.bind((host, 0))
    except socket.gaierror as e:
        raise UsageError(f"--host {host}: cannot find that name ({e.strerror}).", every) from None
    except OSError as e:
        if e.errno == errno.EADDRNOTAVAIL:
            raise UsageError(
                f"Cannot listen on {host}: it is not an address of this computer.",
                f"{every} Or give one of this PC's own addresses (see `ip addr` or `ipconfig`).",
            ) from None
        # anything else: the relay's own bind says it, with the port


def _start(relay: Relay, port: int) -> None:
    try:
        relay.start()
    except AddressInUseError as e:
        owners = netinfo.port_owners(port)
        if owners:
            e.message += f" It is held by {', '.join(o.describe() for o in owners)}."
        raise


def _log_events(events: LogQueue, log: ServeLog, refusals: Refusals) -> None:
    """Hand the events to the log, in order and in batches, until a signal ends the run, and
    say when some were skipped; refused connections are counted by the relay and logged here,
    one line per address and reason at most every REFUSALS_EVERY seconds (a port scan is a
    line, not thousands)."""
    next_refusals = time.monotonic() + REFUSALS_EVERY
    told = 0  # skipped events the log has been told of
    while True:
        time.sleep(LOG_EVERY)  # (a sleep, not a wait on a lock: Ctrl-C ends it on Windows too)
        # Skips counted by now happened while the queue was full, after what is in it now.
        skipped, waiting = events.skipped, len(events)
        _write_log(events, log, waiting)
        if skipped > told:
            log.skipped(skipped - told)
            told = skipped
        if time.monotonic() >= next_refusals:
            next_refusals = time.monotonic() + REFUSALS_EVERY
            for refusal in refusals.take():
                log.refused(refusal)


def _write_log(events: LogQueue, log: ServeLog, count: int) -> None:
    """Give the log the next `count` queued items: room events in batches, mDNS changes alone."""
    if not count:
        return
    from lanchat.discovery import Advertisement

    batch: list[tuple[Event, str | None]] = []
    for item, client in events.take(count):
        if isinstance(item, Advertisement):  # the addresses changed, or mDNS failed
            if batch:
                log.events(batch)
                batch = []
            log.advertisement(item)
            continue
        batch.append((item, endpoint_text(client.address) if client is not None else None))
        if len(batch) >= LOG_BATCH:
            log.events(batch)
            batch = []
    if batch:
        log.events(batch)


def _off() -> Advertisement:
    from lanchat.discovery import Advertisement

    return Advertisement("off", message="--no-mdns or LANCHAT_NO_MDNS")


def _advertise(
    options: ServeOptions, port: int, enqueue: Any, fingerprint: str | None, group: str | None
) -> Advertiser:
    """Start announcing the server (with TLS: tls=1 and its key's fingerprint; `group`: the
    room's history id on a backplane, which tells `discover` the relays of one room apart);
    later changes go to the event queue."""
    from lanchat.discovery import advertise

    return advertise(
        room=options.room,
        port=port,
        bind_host=options.host,
        wanted=list(options.interfaces),
        on_change=enqueue,  # called in the advertiser's thread: enqueue never blocks
        web=WEB_PATH if options.web else None,
        password=options.secrets is not None and options.secrets.required,
        fingerprint=fingerprint,
        group=group,
    )


def _backplane(options: ServeOptions) -> Backplane:
    """The link to the room's other relays (`--backplane`); it connects when the relay is made."""
    from lanchat.backplane import Backplane, default_relay_name, parse_address

    address = parse_address(options.backplane or "")
    port = options.port or os.getpid()  # --port 0: no port to tell two relays of a PC apart
    name = options.relay_name or default_relay_name(socket.gethostname(), port, uuid.getnode())
    return Backplane(address, options.room, name, host=options.host, port=options.port)
