"""The relay: listens on one TCP port, starts a reader thread per connection, and stops them all.

The listener and its accept loop are the relay's own (like CPython's socketserver, without its
request loop: the relay needs its own thread per connection with its own stop); each reader runs
a Connection (connection.py), which hands the client's lines to the hub (hub.py). stop() ends
the accept loop, tells the room, and waits for every reader, each with a deadline.

Threads: the accept thread owns the listener; readers are counted under `_readers_changed`.

Somewhat over ~300 lines: the listener, the accept loop, the reader-thread count and the status
document are the relay's own I/O; admission (lanchat/admission.py) and each connection
(lanchat/connection.py) are elsewhere.
"""

from __future__ import annotations

import errno
import ipaddress
import logging
import os
import selectors
import socket
import threading
import time
from typing import TYPE_CHECKING, Any

from lanchat import __version__
from lanchat.admission import (
    BANNED_LINE,
    DENIED_LINE,
    AddressBans,
    AddressLimit,
    AddressRules,
    Refusals,
    Refuser,
    plain_ip,
)
from lanchat.auth.login import Gate
from lanchat.connection import Connection, ConnectionPolicy
from lanchat.errors import AddressInUseError, LanchatError
from lanchat.fanout import MAX_BACKLOG_BYTES, MAX_BACKLOG_FRAMES, Client
from lanchat.hub import Hub
from lanchat.netinfo import endpoint_text
from lanchat.protocol import (
    DEFAULT_HISTORY,
    DEFAULT_KEEPALIVE_SECONDS,
    DEFAULT_MAX_PER_ADDRESS,
    DEFAULT_MAX_RATE,
    DEFAULT_PORT,
    DEFAULT_ROOM,
)
from lanchat.protocol.status import (
    RelayBan,
    RelayConnection,
    RelayModeration,
    RelayMute,
    RelayServer,
    RelayStatus,
)
from lanchat.room import Past, Room
from lanchat.store import Store
from lanchat.tls.fingerprint import format_fingerprint
from lanchat.tls.transport import ServerTls
from lanchat.web import WebOptions

if TYPE_CHECKING:
    from lanchat.backplane import Backplane

FD_RESERVE = 32  # descriptors kept for the listener, the writer, logs and refusals
LISTEN_BACKLOG = min(socket.SOMAXCONN, 4096)  # connections the OS queues before accept()
ACCEPT_RETRY_SECONDS = 0.1  # out of descriptors: wait this long before accepting again
TICK_SECONDS = 1.0  # how often the accept loop lets the room do what time brings (summaries)
BACKPLANE_STOP_SECONDS = 1.0  # of stop()'s time, for the farewells to reach the other relays
log = logging.getLogger(__name__)


def raise_fd_limit() -> int:
    """Raise the soft open-files limit to the hard one where the OS allows; return the limit."""
    try:
        import resource  # POSIX only
    except ImportError:
        return 16384  # Windows: sockets are not bounded by a C runtime fd table
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY:
        hard = 1 << 20
    if soft < hard:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
            soft = hard
        except (ValueError, OSError):
            pass
    return int(soft)


class Relay:
    """A chat relay on one TCP port: `start()`, then `stop()`."""

    def __init__(
        self,
        host: str = "",
        port: int = DEFAULT_PORT,
        *,
        room: str = DEFAULT_ROOM,
        history: int = DEFAULT_HISTORY,
        max_clients: int = 0,
        max_backlog: int = MAX_BACKLOG_FRAMES,
        max_backlog_bytes: int = MAX_BACKLOG_BYTES,
        keepalive: float = DEFAULT_KEEPALIVE_SECONDS,
        max_rate: float = DEFAULT_MAX_RATE,
        max_per_address: int = DEFAULT_MAX_PER_ADDRESS,
        limit_loopback: bool = False,
        rules: AddressRules = AddressRules(),  # noqa: B008 (frozen: one shared default is fine)
        store: Store | None = None,
        web: WebOptions | None = WebOptions(),  # noqa: B008 (frozen: one shared default is fine)
        backplane: Backplane | None = None,
        gate: Gate | None = None,  # passwords and operator logins (lanchat/auth); None: none
        tls: ServerTls | None = None,
    ) -> None:
        self.host = host
        self.port = port
        self._stopped = threading.Event()
        self.tls = tls
        self.policy = ConnectionPolicy(
            keepalive, max_rate, stopping=self._stopped, web=web, gate=gate, tls=tls
        )
        self.refusals = Refusals()  # counted here, logged by `lanchat serve`
        self._per_address = AddressLimit(max_per_address, loopback_too=limit_loopback)
        self.rules = rules  # --allow, --deny: decided at accept
        self.bans = AddressBans()  # what operators banned: the hub adds, accept refuses
        # With a store the room carries on from its history on disk (epoch, seq, chats), and
        # every pass commits its frames there before it sends them; without, history is in
        # memory only and a restart starts a new epoch.
        past: Past | None = store.load(history) if store is not None else None
        # With a backplane the history is the room's stream in Redis, shared by every relay
        # of the room, and the stream puts the events in order (lanchat/backplane/).
        if backplane is not None:
            past = backplane.open(history)
        self.backplane = backplane
        self.hub = Hub(
            Room(
                room,
                history=history,
                max_clients=max_clients,
                past=past,
                external_order=backplane is not None,
            ),
            max_backlog,
            max_backlog_bytes,
            save=store.save if store is not None else None,
            bans=self.bans,
        )
        self.store = store
        self._listener: socket.socket | None = None
        self._address: tuple[str, int] | None = None  # kept: it is asked for after stop(), too
        self._accept_thread: threading.Thread | None = None
        self._wake_recv, self._wake_send = socket.socketpair()  # ends the accept loop
        self._readers = 0  # reader threads running
        self._readers_changed = threading.Condition()

    @property
    def room(self) -> Room:
        """The room's state, for reading (changes go through `hub`)."""
        return self.hub.room

    @property
    def address(self) -> tuple[str, int]:
        """The address actually bound (the real port when 0 was asked for)."""
        if self._address is None:
            raise RuntimeError("relay not started")
        return self._address

    @property
    def readers(self) -> int:
        """Reader threads running (one per connection still being served)."""
        with self._readers_changed:
            return self._readers

    def wait_readers(self, count: int, timeout: float) -> bool:
        """Wait until at most `count` reader threads run; False if that took over `timeout` s."""
        with self._readers_changed:
            return self._readers_changed.wait_for(lambda: self._readers <= count, timeout)

    def start(self) -> None:
        """Bind, listen and start serving; AddressInUseError if the port is taken."""
        self._listener = self._listen()
        host, port = self._listener.getsockname()[:2]
        self._address = (str(host), int(port))
        self.hub.fanout.start()
        if self.backplane is not None:
            self.backplane.start(self.hub)
        self._accept_thread = threading.Thread(
            target=self._accept_loop, args=(self._listener,), name="lanchat-accept", daemon=True
        )
        self._accept_thread.start()

    def _listen(self) -> socket.socket:
        family, host = _listen_family(self.host)
        sock = socket.socket(family, socket.SOCK_STREAM)
        try:
            if family == socket.AF_INET6:
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)  # IPv4 too
            if os.name == "nt" and hasattr(socket, "SO_EXCLUSIVEADDRUSE"):
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_EXCLUSIVEADDRUSE, 1)
            elif os.name != "nt":  # on Windows SO_REUSEADDR would allow port theft
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind((host, self.port))
            sock.listen(LISTEN_BACKLOG)
            sock.setblocking(False)  # the accept loop waits in select(), with the wake-up
        except OSError as e:
            sock.close()
            if e.errno in (errno.EADDRINUSE, getattr(errno, "WSAEADDRINUSE", -1)):
                raise AddressInUseError(
                    f"Port {self.port} is already in use on this computer.",
                    f"Stop the program using it, or pick another port: --port {self.port + 1}.",
                ) from None
            where = self.host or "all interfaces"
            raise LanchatError(
                f"Cannot listen on {where} port {self.port}: {e.strerror or e}.",
                "Check --host (it must be an address of this computer) and --port.",
            ) from None
        return sock

    def stop(self, timeout: float = 2.0) -> None:
        """Tell everyone, hang up on everyone, end every thread; returns within `timeout` or so."""
        if self._listener is None and self.backplane is not None:
            self.backplane.stop(0)  # opened, never started (the port was taken)
        if self._stopped.is_set() or self._listener is None:
            return
        self._stopped.set()
        deadline = time.monotonic() + timeout
        self._wake_send.send(b"\0")
        if self._accept_thread is not None:
            self._accept_thread.join(timeout)
        self._listener.close()
        self.hub.shutdown()
        if self.backplane is not None:  # the room's farewells go to the other relays first
            self.backplane.stop(max(0.1, min(BACKPLANE_STOP_SECONDS, deadline - time.monotonic())))
        self.wait_readers(0, max(0.0, deadline - time.monotonic()))
        self.hub.fanout.stop(max(0.1, deadline - time.monotonic()))
        if self.store is not None:
            with self.hub.fanout.passes_paused():  # the store is the pass token holder's
                self.store.close()
        self._wake_recv.close()
        self._wake_send.close()

    # --- accepting, and one reader thread per connection --------------------------------------

    def _accept_loop(self, listener: socket.socket) -> None:
        with selectors.DefaultSelector() as selector:
            selector.register(listener, selectors.EVENT_READ)
            selector.register(self._wake_recv, selectors.EVENT_READ)
            refuser = Refuser(selector)  # refused sockets, until they hang up
            try:
                self._accept_until_stopped(listener, selector, refuser)
            finally:
                refuser.close_all()

    def _accept_until_stopped(
        self, listener: socket.socket, selector: selectors.BaseSelector, refuser: Refuser
    ) -> None:
        next_tick = time.monotonic() + TICK_SECONDS
        while True:
            linger = refuser.timeout()
            wait = max(0.0, next_tick - time.monotonic())
            for key, _ in selector.select(wait if linger is None else min(linger, wait)):
                if key.fileobj is self._wake_recv:
                    return
                if key.data is refuser:
                    refuser.readable(key.fileobj)
                    continue
                self._accept_one(listener, refuser)
            refuser.expire()
            if time.monotonic() >= next_tick:
                next_tick = time.monotonic() + TICK_SECONDS
                self.hub.tick()

    def _accept_one(self, listener: socket.socket, refuser: Refuser) -> None:
        try:
            sock, address = listener.accept()
        except (BlockingIOError, InterruptedError, ConnectionAbortedError):
            return  # the peer gave up before we took it
        except OSError as e:  # out of descriptors or memory: not a busy loop
            log.warning("cannot accept a connection: %s", e)
            self._stopped.wait(ACCEPT_RETRY_SECONDS)
            return
        ip = str(address[0])
        if not self.rules.admits(ip):
            self.refusals.add(ip, "denied")
            refuser.refuse(sock, DENIED_LINE.format(address=plain_ip(ip)))
            return
        if self.bans.barred(ip):
            self.refusals.add(ip, "banned")
            refuser.refuse(sock, BANNED_LINE.format(address=plain_ip(ip)))
            return
        if not self._per_address.admit(ip):
            self.refusals.add(ip, "too-many-connections")
            limit = self._per_address.limit
            refuser.refuse(
                sock,
                f"! Too many connections from your address ({limit}). Close one "
                "of them and try again.",
            )
            return
        sock.setblocking(True)  # some systems pass the listener's mode on
        self._start_reader(sock, address)

    def _start_reader(self, sock: socket.socket, address: Any) -> None:
        # The Client is made here, on the accept thread: building it on the reader thread (it
        # held a threading.Event then) left each reader's stack one page deeper, 4 KB times
        # thousands of readers. Keep deep work off the reader threads.
        client = Client(sock, address)
        connection = Connection(
            client,
            self.hub,
            self.policy,
            status=self.status,
            same_machine=same_machine,
            refusals=self.refusals,
        )
        thread = threading.Thread(
            target=self._reader, args=(connection,), name=f"lanchat-{address[0]}", daemon=True
        )
        with self._readers_changed:
            self._readers += 1
        try:
            thread.start()
        except RuntimeError:  # can't start new thread: the machine is at its limit
            self._reader_ended(str(address[0]))
            sock.close()
            self.refusals.add(str(address[0]), "no-thread")

    def _reader(self, connection: Connection) -> None:
        try:
            connection.run()
        finally:
            self._reader_ended(str(connection.client.address[0]))

    def _reader_ended(self, ip: str) -> None:
        self._per_address.release(ip)
        with self._readers_changed:
            self._readers -= 1
            self._readers_changed.notify_all()

    def status(self) -> dict[str, Any]:
        """What `lanchat status` shows: the server and every connection it still holds."""
        room = self.room
        members, messages, rate = self.hub.snapshot()
        in_room = {m.id for m in members}
        fanout = self.hub.fanout
        end = fanout.end
        connections = tuple(
            RelayConnection(
                id=c.id,
                name=c.name,
                kind=c.kind,
                program=c.member.program if c.member is not None else "",
                remote=endpoint_text(c.address),
                local=endpoint_text(c.local),
                connected_at=round(c.connected_at, 3),
                lines_in=c.lines_in,
                bytes_in=c.bytes_in,
                frames_out=c.frames_out,
                bytes_out=c.bytes_out,
                queue=c.backlog(end),
                state="in room" if c.id in in_room else "leaving",
                tls=bool(getattr(c.sock, "is_tls", False)),
            )
            for c in fanout.open_clients()
        )
        host, port = self.address
        server = RelayServer(
            pid=os.getpid(),
            lanchat=__version__,
            room=room.name,
            host=host,
            port=port,
            started=round(room.started, 3),
            uptime=round(time.time() - room.started, 3),
            clients=len(members),
            max_clients=room.max_clients,
            messages=messages,
            rate=rate,
            tls=self.tls is not None,
            fingerprint=format_fingerprint(self.tls.fingerprint) if self.tls else None,
            allow_plain=self.tls.allow_plain if self.tls else True,
        )
        backplane = self.backplane.status() if self.backplane is not None else None
        moderation = self._moderation_status()
        return RelayStatus(server, connections, moderation, backplane).to_dict()

    def _moderation_status(self) -> RelayModeration:
        """Who moderates, who is muted or banned, the topic, and the address rules."""
        view = self.hub.moderation()
        now = time.time()
        allow, deny = self.rules.to_texts()
        return RelayModeration(
            topic=view.topic,
            topic_by=view.topic_by,
            operators=view.operators,
            muted=tuple(
                RelayMute(m.name, round(m.ends, 3), m.by) for m in view.muted if m.ends > now
            ),
            bans=tuple(
                RelayBan(b.address, b.name, b.by, b.reason, round(b.time, 3)) for b in view.bans
            ),
            allow=allow,
            deny=deny,
        )


def same_machine(peer: Any, local: Any) -> bool:
    """A connection from this computer: loopback, or its source is our own address."""
    peer_ip = ipaddress.ip_address(str(peer[0]).split("%")[0])
    local_ip = ipaddress.ip_address(str(local[0]).split("%")[0])
    if isinstance(peer_ip, ipaddress.IPv6Address) and peer_ip.ipv4_mapped:
        peer_ip = peer_ip.ipv4_mapped
    if isinstance(local_ip, ipaddress.IPv6Address) and local_ip.ipv4_mapped:
        local_ip = local_ip.ipv4_mapped
    return peer_ip.is_loopback or peer_ip == local_ip


def _listen_family(host: str) -> tuple[socket.AddressFamily, str]:
    """All interfaces means IPv6 and IPv4 on one socket where the OS can, else IPv4."""
    if host in ("", "::", "*"):
        if socket.has_dualstack_ipv6():
            return socket.AF_INET6, "::"
        return socket.AF_INET, "0.0.0.0"
    return (socket.AF_INET6 if ":" in host else socket.AF_INET), host
