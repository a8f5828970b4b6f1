"""The threaded relay server: accepts connections, one reader thread each, tells lanchat clients
from raw ones, and hands what they say to the room. Writing is the fan-out's job (fanout.py).

Modelled on CPython's socketserver (ThreadingTCPServer) with what a chat server needs on top:
every thread ends and every socket closes when its client leaves, and stop() ends them all.
"""

from __future__ import annotations

import errno
import ipaddress
import json
import logging
import os
import select
import socket
import socketserver
import sys
import threading
import time
from typing import Any

from lanchat import __version__
from lanchat.errors import AddressInUseError, LanchatError
from lanchat.fanout import MAX_BACKLOG_FRAMES, SEND_FLAGS, Client
from lanchat.netinfo import endpoint_text
from lanchat.protocol import (
    DEFAULT_HISTORY,
    DEFAULT_KEEPALIVE_SECONDS,
    DEFAULT_PORT,
    DEFAULT_ROOM,
    DETECT_SECONDS,
    FrameError,
    Hello,
    LineDecoder,
    LineTooLong,
    ProbeAnswer,
    Problem,
    decode_line,
    encode_json,
    parse_hello,
    parse_raw_line,
    parse_request,
    service_request,
)
from lanchat.protocol.status import RelayConnection, RelayServer, RelayStatus
from lanchat.room import Item, Refused, Room, refusal_frames

# recv(n) holds an n-byte buffer while it waits, so thousands of idle readers wait with a small
# one; a read that fills it means the sender has more to say, and the next read takes more.
# (256 cost ~10 % more CPU per delivery at sat100: bursts of eight 64-byte lines took two reads.)
RECV_BYTES = 512
RECV_BUSY_BYTES = 16384
THREAD_STACK_BYTES = 1024 * 1024  # thousands of reader threads; json recursion needs room
FD_RESERVE = 32  # descriptors kept for the listener, the writer, logs and refusals
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


def configure(sock: socket.socket, keepalive: float) -> None:
    """Per-connection options: no Nagle delay, and notice within about `keepalive` seconds a
    peer that vanished without closing (a PC switched off, a cable pulled)."""
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
    idle = max(1, int(keepalive / 2))
    interval = max(1, int(keepalive / 6))
    options = (
        ("TCP_KEEPIDLE", idle),
        ("TCP_KEEPINTVL", interval),
        ("TCP_KEEPCNT", 3),
        ("TCP_USER_TIMEOUT", int(keepalive * 1000)),
    )  # unacknowledged data, too (Linux)
    for option, value in options:
        if hasattr(socket, option):
            sock.setsockopt(socket.IPPROTO_TCP, getattr(socket, option), value)


class _Server(socketserver.ThreadingTCPServer):
    daemon_threads = True
    block_on_close = False  # Relay.stop() joins the reader threads itself, with a deadline
    request_queue_size = min(socket.SOMAXCONN, 4096)
    allow_reuse_address = os.name != "nt"  # on Windows SO_REUSEADDR would allow port theft

    def __init__(
        self, relay: Relay, address: tuple[str, int], family: socket.AddressFamily
    ) -> None:
        self.address_family = family
        self.relay = relay
        super().__init__(address, socketserver.BaseRequestHandler, bind_and_activate=False)

    def server_bind(self) -> None:
        if self.address_family == socket.AF_INET6:
            self.socket.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)  # IPv4 too
        elif os.name == "nt" and hasattr(socket, "SO_EXCLUSIVEADDRUSE"):
            self.socket.setsockopt(socket.SOL_SOCKET, socket.SO_EXCLUSIVEADDRUSE, 1)
        super().server_bind()

    def process_request(self, request: Any, client_address: Any) -> None:
        self.relay._start_reader(request, client_address)

    def handle_error(self, request: Any, client_address: Any) -> None:
        log.warning("error with %s: %s", client_address, sys.exc_info()[1])


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
        keepalive: float = DEFAULT_KEEPALIVE_SECONDS,
    ) -> None:
        self.host = host
        self.port = port
        self.keepalive = keepalive
        self.room = Room(room, history=history, max_clients=max_clients, max_backlog=max_backlog)
        self._server: _Server | None = None
        self._accept_thread: threading.Thread | None = None
        self._readers = 0  # reader threads running
        self._readers_changed = threading.Condition()
        self._stopped = threading.Event()

    @property
    def address(self) -> tuple[str, int]:
        """The address actually bound (the real port when 0 was asked for)."""
        if self._server is None:
            raise RuntimeError("relay not started")
        host, port = self._server.server_address[:2]
        return str(host), int(port)

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
        family, host = _listen_family(self.host)
        server = _Server(self, (host, self.port), family)
        try:
            server.server_bind()
            server.server_activate()
        except OSError as e:
            server.server_close()
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
        self._server = server
        threading.stack_size(THREAD_STACK_BYTES)
        self.room.fanout.start()
        self._accept_thread = threading.Thread(
            target=server.serve_forever, args=(0.2,), name="lanchat-accept", daemon=True
        )
        self._accept_thread.start()

    def stop(self, timeout: float = 2.0) -> None:
        """Tell everyone, hang up on everyone, end every thread; returns within `timeout` or so."""
        if self._stopped.is_set() or self._server is None:
            return
        self._stopped.set()
        deadline = time.monotonic() + timeout
        self._server.shutdown()  # the accept loop ends (it polls every 0.2 s)
        self._server.server_close()
        self.room.shutdown()
        self.wait_readers(0, max(0.0, deadline - time.monotonic()))
        self.room.fanout.stop(max(0.1, deadline - time.monotonic()))

    # --- one reader thread per connection ---------------------------------------------------

    def _start_reader(self, sock: socket.socket, address: Any) -> None:
        # The Client is made here, on the accept thread: building it on the reader thread (it
        # held a threading.Event then) left each reader's stack one page deeper, 4 KB times
        # thousands of readers. Keep deep work off the reader threads.
        client = Client(sock, address)
        thread = threading.Thread(
            target=self._reader, args=(client,), name=f"lanchat-{address[0]}", daemon=True
        )
        with self._readers_changed:
            self._readers += 1
        try:
            thread.start()
        except RuntimeError:  # can't start new thread: the machine is at its limit
            self._reader_ended()
            sock.close()
            log.warning("refused %s: cannot start another thread", address)

    def _reader(self, client: Client) -> None:
        try:
            self._serve_connection(client)
        except Exception as e:  # a bug must cost one connection and one log line, not more
            log.error("connection from %s ended by an internal error: %r", client.address, e)
            client.close_socket()
        finally:
            self._reader_ended()

    def _reader_ended(self) -> None:
        with self._readers_changed:
            self._readers -= 1
            self._readers_changed.notify_all()

    def _serve_connection(self, client: Client) -> None:
        sock, address = client.sock, client.address
        joined = False
        try:
            configure(sock, self.keepalive)
            client.local = sock.getsockname()
            decoder = LineDecoder()
            lines, eof = _first_lines(sock, decoder, client)
            question = None
            if lines and not isinstance(lines[0], LineTooLong):
                question = service_request(lines[0])
            if question == "status":
                self._answer_status(client)
                return
            if question == "probe":  # `lanchat doctor HOST` asks without joining the room
                answer = ProbeAnswer(self.room.seq, time.time(), room=self.room.name)
                self._say_and_close(client, encode_json(answer), peer_closes=True)
                return
            hello: Hello | None = None
            if lines and not isinstance(lines[0], LineTooLong):
                try:
                    hello = parse_hello(lines[0])
                except FrameError as e:  # a lanchat client with a bad hello: refuse it clearly
                    self._refuse(client, "lanchat", Refused(e.code, e.message))
                    return
            try:
                self.room.join(client, hello)
            except Refused as refused:
                self._refuse(client, "raw" if hello is None else "lanchat", refused)
                return
            joined = True
            if hello is not None:
                lines = lines[1:]
            # A lanchat hello that came after the raw greeting (a slow network) still counts,
            # as long as it is the first line this client sends.
            upgradable = hello is None and not lines
            to_items = _raw_items if hello is None else _lanchat_items
            if lines:
                self._hand_over(client, to_items(lines))
            reason = "closed" if eof else self._read_loop(client, decoder, to_items, upgradable)
            if not client.close_reason:
                self._hand_over(client, to_items(decoder.finish()))
            self.room.drop(client, reason)
        except OSError as e:
            log.info("connection from %s failed: %s", address, e)
            if joined:
                self.room.drop(client, "lost")
        except Exception as e:  # a bug: it costs this connection, never a ghost member
            log.error("connection from %s ended by an internal error: %r", address, e)
            if joined:
                self.room.drop(client, "lost")
        finally:
            if joined:
                client.done.wait(10.0)  # the writer sends what is queued, then hangs up
            client.close_socket()

    def _read_loop(
        self, client: Client, decoder: LineDecoder, to_items: Any, upgradable: bool
    ) -> str:
        """Read until the peer closes; returns the leave reason."""
        sock = client.sock
        if SEND_FLAGS == 0:  # no MSG_DONTWAIT (Windows): non-blocking socket, wait in select()
            sock.setblocking(False)
        recv = sock.recv
        size = RECV_BYTES
        while True:
            try:
                if SEND_FLAGS == 0:
                    select.select([sock], [], [])
                data = recv(size)
            except (BlockingIOError, InterruptedError):
                continue
            except OSError:
                return "lost"
            if not data:
                return "closed"
            size = RECV_BUSY_BYTES if len(data) == size else RECV_BYTES
            if client.close_reason is not None:
                continue  # hanging up: drain what still arrives so the close stays graceful
            client.bytes_in += len(data)
            lines = decoder.feed(data)
            if not lines:
                continue
            client.lines_in += len(lines)
            if upgradable:
                upgradable = False
                hello = _hello_or_none(lines[0])
                if hello is not None:
                    to_items = _lanchat_items
                    lines = lines[1:]
                    try:
                        self.room.upgrade(client, hello)
                    except Refused as refused:
                        self.room.refuse_member(client, refused)
                        continue
            self._hand_over(client, to_items(lines))

    def _hand_over(self, client: Client, items: list[Item]) -> None:
        if items:
            self.room.handle(client, items)

    def _refuse(self, client: Client, kind: Any, refused: Refused) -> None:
        self._say_and_close(client, refusal_frames(kind, refused, self.room.seq))

    def _answer_status(self, client: Client) -> None:
        """The status document, only to a program on this same computer."""
        if same_machine(client.address, client.local):
            answer = json.dumps(self.status(), ensure_ascii=False).encode() + b"\n"
        else:
            log.warning("refused a status query from %s", client.address[0])
            answer = encode_json(
                Problem(
                    self.room.seq,
                    time.time(),
                    "status-refused",
                    "The status is only given to programs on the server's own computer.",
                )
            )
        self._say_and_close(client, answer, peer_closes=True)

    def status(self) -> dict[str, Any]:
        """What `lanchat status` shows: the server and every connection it still holds."""
        room = self.room
        members = {c.id for c in room.members}
        end = room.fanout.end
        connections = tuple(
            RelayConnection(
                id=c.id,
                name=c.name,
                kind=c.kind,
                program=c.client,
                remote=endpoint_text(c.address),
                local=endpoint_text(c.local),
                connected_at=round(c.connected_at, 3),
                lines_in=c.lines_in,
                bytes_in=c.bytes_in,
                frames_out=c.frames_out,
                bytes_out=c.bytes_out,
                queue=c.backlog(end),
                state="in room" if c.id in members else "leaving",
            )
            for c in room.fanout.open_clients()
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
            clients=room.size,
            max_clients=room.max_clients,
            messages=room.messages,
            rate=room.rate(),
        )
        return RelayStatus(server, connections).to_dict()

    def _say_and_close(self, client: Client, data: bytes, *, peer_closes: bool = False) -> None:
        """Send, then close gracefully (drain first, so the words aren't lost to a reset).

        `peer_closes`: the peer hangs up first (our own status tool does), so the TIME_WAIT
        stays on its side instead of piling up on the relay's port for `lanchat status` to show.
        """
        sock = client.sock
        try:
            sock.settimeout(1.0)
            sock.sendall(data)
            if not peer_closes:
                sock.shutdown(socket.SHUT_WR)
            deadline = time.monotonic() + 1.0
            while time.monotonic() < deadline and sock.recv(RECV_BYTES):
                pass
        except OSError:
            pass  # the peer is gone already; nothing more to tell it


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


def _first_lines(
    sock: socket.socket, decoder: LineDecoder, client: Client
) -> tuple[list[bytes | LineTooLong], bool]:
    """Wait up to DETECT_SECONDS for the first complete line; (lines, peer closed)."""
    deadline = time.monotonic() + DETECT_SECONDS
    try:
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return [], False
            sock.settimeout(remaining)
            try:
                data = sock.recv(RECV_BYTES)
            except TimeoutError:
                return [], False
            if not data:
                rest: list[bytes | LineTooLong] = [*decoder.finish()]
                client.lines_in += len(rest)
                return rest, True
            client.bytes_in += len(data)
            lines = decoder.feed(data)
            if lines:
                client.lines_in += len(lines)
                return lines, False
    finally:
        sock.settimeout(None)


def _hello_or_none(line: bytes | LineTooLong) -> Hello | None:
    if isinstance(line, LineTooLong):
        return None
    try:
        return parse_hello(line)
    except FrameError:
        return None


def _raw_items(lines: list[bytes] | list[bytes | LineTooLong]) -> list[Item]:
    items: list[Item] = []
    for line in lines:
        if isinstance(line, LineTooLong):
            items.append(line)
            continue
        text = decode_line(line)
        if text[:1] not in ("/", "") and not text.isspace():
            items.append(text)  # the common case, a plain message: no request object needed
            continue
        try:
            item = parse_raw_line(text)
        except FrameError as e:
            items.append(e)
            continue
        if item is not None:
            items.append(item)
    return items


def _lanchat_items(lines: list[bytes] | list[bytes | LineTooLong]) -> list[Item]:
    items: list[Item] = []
    for line in lines:
        if isinstance(line, LineTooLong):
            items.append(line)
        elif line.strip():
            try:
                items.append(parse_request(line))
            except FrameError as e:
                items.append(e)
    return items
