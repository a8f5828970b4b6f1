"""One generator process: it holds a share of the clients, sends for its share of the senders, and
accounts for everything its clients receive. A coordinator drives it through a pipe (see runner).

Client ``i`` belongs to worker ``load.owner(i)`` (``i % procs``, or by role: results.SHAPES);
senders are clients ``0 .. K-1``. Window mode needs to know when a line has reached *every*
receiver, whichever worker holds it: each worker publishes, per sender, how many lines all of its
own receivers have (``Shared.done``), and wakes the sender's worker through a pipe when that
moves.
"""

from __future__ import annotations

import contextlib
import errno
import os
import select
import socket
import ssl
import struct
import time
from collections.abc import Callable
from dataclasses import dataclass
from multiprocessing.connection import Connection
from typing import Any

from .accounting import Accounting, Receiver
from .payload import PayloadFormat, frame, frame_type, hello_line, probe_text, sender_id
from .results import Load
from .shared import Shared
from .websocket import UPGRADE, FrameReader, frame_lines

# Every read goes into one buffer per worker. A fresh 256 KiB bytes object per read was, in
# glibc, an mmap() and a munmap() each time (above its 128 KiB mmap threshold, which rises only
# when a chunk that large is freed, and a read's result is first shrunk): the generator of an
# invocation's first run spent 1.7 cores on page faults instead of 0.6, and the relay of that
# run looked cheap (docs/benchmarking.md, "The generator's reads").
RECV_BYTES = 256 * 1024
FLOOD_BATCH = 256  # lines per write in flood mode: enough to keep the socket full
MAX_SENDS_PER_TURN = 10_000  # rate mode: lines sent in one loop turn when behind schedule
TICK = 0.05  # longest sleep in the event loop, so control messages and deadlines are seen
PROBE_INTERVAL = 0.1  # seconds between set-up probe rounds
CONFIRM_AFTER = 0.5  # seconds after which a connected client the server is silent to counts
SO_TIMESTAMPNS = getattr(socket, "SO_TIMESTAMPNS", 35)  # Linux; Python does not name it
STAMP_SPACE = socket.CMSG_SPACE(16)  # one struct timespec
EPOLL_IN = select.EPOLLIN | select.EPOLLRDHUP
EPOLL_OUT = select.EPOLLOUT


@dataclass(frozen=True)
class WorkerConfig:
    """What one worker needs to know: the load, and where and how its clients connect."""

    index: int  # this worker's number, 0 .. load.procs - 1
    host: str
    port: int
    kind: str  # the clients' kind for this server (ncat: always raw)
    connect_window: int  # connections not yet confirmed by the server at once; 0: no limit
    load: Load
    # Rate mode: each sender's first line as a share of the period (by client number), or None:
    # this worker's senders take turns, evenly spaced.
    phases: tuple[float, ...] | None = None
    tls: bool = False  # every client starts with a TLS handshake (no certificate is checked)
    ports: tuple[int, ...] = ()  # several relays of one room: client i goes to ports[i % n]

    def port_for(self, client: int) -> int:
        """Where client number `client` connects: the relays of a room take turns."""
        return self.ports[client % len(self.ports)] if self.ports else self.port


class Client:
    """One connection of the generator."""

    __slots__ = (
        "closed",
        "connected",
        "fd",
        "handshaking",
        "index",
        "out",
        "pending",
        "rcv",
        "sender",
        "seq",
        "sock",
        "welcomed",
        "writing",
        "ws",
    )

    def __init__(self, index: int, sock: socket.socket, sender: bool) -> None:
        """Client number ``index`` on ``sock``; ``sender`` if it sends lines too."""
        self.index = index
        self.sock = sock
        self.fd = sock.fileno()
        self.sender = sender
        self.rcv = Receiver(sender_id(index) if sender else None)
        self.out = bytearray()
        self.seq = 0  # next sequence number to send
        self.connected = False
        self.handshaking = False  # TLS: the handshake is under way
        self.welcomed = False
        self.closed = False
        self.writing = False  # registered for EPOLLOUT
        self.pending = b""  # lanchat: bytes read before the welcome frame
        self.ws: FrameReader | None = None  # web: the relay's frames back to lines


class Worker:
    """The event loop of one generator process."""

    def __init__(
        self,
        cfg: WorkerConfig,
        conn: Connection,
        shared: Shared,
        wake_fds: list[tuple[int, int]],
    ) -> None:
        """A worker driven through ``conn``; ``wake_fds`` holds every worker's wake-up pipe."""
        self.cfg = cfg
        self.conn = conn
        self.shared = shared
        self.wake_read = wake_fds[cfg.index][0]
        self.wake_writes = [w for _, w in wake_fds]
        self.fmt = PayloadFormat(cfg.load.line_bytes)
        window = cfg.load.window if cfg.load.mode == "window" else 0
        self.acct = Accounting(self.fmt, cfg.kind, window)
        self.ep = select.epoll()
        self.by_fd: dict[int, Client] = {}
        self.clients: list[Client] = []
        self.senders: list[Client] = []  # local senders
        self.sender_by_id: dict[bytes, Client] = {}
        self.inbox: list[tuple[Any, ...]] = []
        self.failed: dict[str, int] = {}  # connect errors by name
        self.closed: dict[str, int] = {}  # connections lost, by how
        self.refusals: list[str] = []  # lanchat error frames during the handshake
        self.sending = False
        self.probing = False
        self.probe_round = 0
        self.next_probe = 0.0
        self.dirty: set[Client] = set()  # window mode: senders to refill
        self.rate_due = 0
        self.rate_turn = 0
        self.rate_lag_ns = 0
        self.rate_plan: list[tuple[int, Client]] = []  # (ns into each period, sender), in order
        self.rate_t0 = 0  # ns: the start of the first period
        self.receivers_of: list[int] = []  # per sender: local receivers open when the load began
        self.to_open: list[int] = []  # client numbers not connected yet (last one first)
        self.unconfirmed: dict[Client, float] = {}  # connecting: client -> when to stop waiting
        self.connecting = False
        self.silent = 0  # clients the server said nothing to within CONFIRM_AFTER
        self.clock_offset = _clock_offset()
        self.recv_buffer = bytearray(RECV_BYTES)
        self.recv_view = memoryview(self.recv_buffer)
        self.tls: ssl.SSLContext | None = None
        if cfg.tls:  # the relay's key is not checked: what is measured is the work, not trust
            self.tls = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
            self.tls.check_hostname = False
            self.tls.verify_mode = ssl.CERT_NONE

    # ---- the loop -------------------------------------------------------------------------------

    def loop(self, until: Callable[[], bool], deadline: float, timer: float | None = None) -> bool:
        """Serve sockets and messages until ``until()`` (True) or ``deadline`` (False)."""
        for _ in range(100_000_000):  # bounded by the deadline; the count is a backstop
            now = time.monotonic()
            if until():
                return True
            if now >= deadline:
                return False
            wait = min(deadline - now, TICK)
            if timer is not None:
                wait = min(wait, max(timer - now, 0.0))
            if self.sending:
                wait = min(wait, self._send_wait())
            self._turn(max(wait, 0.0))
        return False

    def _turn(self, wait: float) -> None:
        """One round: wait for events up to ``wait`` seconds, handle them, then send."""
        for fd, ev in self.ep.poll(wait):
            client = self.by_fd.get(fd)
            if client is None:
                if fd == self.wake_read:
                    self._drain_wake()
                else:
                    self._read_control()
                continue
            if not client.connected:
                self._finish_connect(client)
                continue
            if client.handshaking:
                self._handshake(client)
                continue
            if ev & (select.EPOLLIN | select.EPOLLRDHUP | select.EPOLLHUP | select.EPOLLERR):
                self._read(client)
            if ev & EPOLL_OUT and not client.closed:
                self._flush(client)
        if self.acct.advanced:
            self._publish_done()
        if self.unconfirmed:
            self._expire_unconfirmed()
        if self.probing and time.monotonic() >= self.next_probe:
            self._probe()
        if self.sending:
            self._send()

    def _read_control(self) -> None:
        """Queue the coordinator's messages; leave quietly if it is gone."""
        try:
            while self.conn.poll(0):
                self.inbox.append(self.conn.recv())
        except (EOFError, OSError):
            raise SystemExit(3) from None

    def command(self, name: str) -> bool:
        """Whether the coordinator's message ``name`` has arrived (it stays queued)."""
        return any(msg[0] == name for msg in self.inbox)

    def take(self, name: str) -> tuple[Any, ...]:
        """Remove and return the first queued message ``name``."""
        for i, msg in enumerate(self.inbox):
            if msg[0] == name:
                return self.inbox.pop(i)
        raise LookupError(name)

    def await_command(self, name: str, timeout: float) -> tuple[Any, ...]:
        """Serve sockets until the coordinator sends ``name``."""
        if not self.loop(lambda: self.command(name), time.monotonic() + timeout):
            raise SystemExit(4)  # the coordinator went quiet: it reports the failure
        return self.take(name)

    # ---- connecting -----------------------------------------------------------------------------

    def connect_all(self) -> None:
        """Open every local client (all at once, or ``connect_window`` unconfirmed at a time)
        and wait until each is usable or has failed."""
        cfg = self.cfg
        self.to_open = list(cfg.load.clients_of(cfg.index))
        self.to_open.reverse()  # popped from the end: lowest index first
        self.connecting = True
        self._open_more()
        self.loop(self._all_usable, time.monotonic() + cfg.load.setup_timeout)
        self.connecting = False
        self.senders = [c for c in self.clients if c.sender]
        self.sender_by_id = {c.rcv.own: c for c in self.senders if c.rcv.own is not None}

    def _open_more(self) -> None:
        """Start connections while the connect window has room."""
        cfg = self.cfg
        limit = len(self.to_open)
        if cfg.connect_window:
            limit = max(1, cfg.connect_window // cfg.load.procs)
        while self.to_open and len(self.unconfirmed) < limit:
            index = self.to_open.pop()
            sock = socket.socket(socket.AF_INET6 if ":" in cfg.host else socket.AF_INET)
            sock.setblocking(False)
            # The generator must never be the one holding lines back (Nagle).
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            if cfg.load.kernel_time:
                sock.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
            client = Client(index, sock, index < cfg.load.senders)
            self.clients.append(client)
            err = sock.connect_ex((cfg.host, cfg.port_for(index)))
            if err not in (0, errno.EINPROGRESS):
                self._fail(client, err)
                continue
            self.by_fd[client.fd] = client
            self.ep.register(client.fd, EPOLL_OUT)
            if cfg.connect_window:  # only pacing needs to know when the server serves it
                self.unconfirmed[client] = time.monotonic() + CONFIRM_AFTER + cfg.load.setup_timeout

    def _confirm(self, client: Client) -> None:
        """The server has shown it serves ``client`` (or the client failed): free its slot."""
        if self.unconfirmed.pop(client, None) is not None and self.connecting:
            self._open_more()

    def _expire_unconfirmed(self) -> None:
        """A server may say nothing to a silent client: after a while, assume it serves it."""
        now = time.monotonic()
        for client, deadline in list(self.unconfirmed.items()):
            if now >= deadline:
                self.silent += 1
                self._confirm(client)

    def _all_usable(self) -> bool:
        """Every local client is opened and connected (lanchat: welcomed), or has failed."""
        if self.to_open or self.unconfirmed:
            return False
        return all(c.closed or (c.connected and c.welcomed) for c in self.clients)

    def _fail(self, client: Client, err: int) -> None:
        """Record a connection that could not be made."""
        name = errno.errorcode.get(err, str(err))
        self.failed[name] = self.failed.get(name, 0) + 1
        client.closed = True
        client.sock.close()
        self._confirm(client)

    def _finish_connect(self, client: Client) -> None:
        """The non-blocking connect ended: keep the socket or record why not."""
        err = client.sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
        if err:
            self.ep.unregister(client.fd)
            del self.by_fd[client.fd]
            self._fail(client, err)
            return
        client.connected = True
        if client in self.unconfirmed:
            self.unconfirmed[client] = time.monotonic() + CONFIRM_AFTER
        self.ep.modify(client.fd, EPOLL_IN)
        if self.tls is not None:
            client.sock = self.tls.wrap_socket(client.sock, do_handshake_on_connect=False)
            client.handshaking = True
            self._handshake(client)
            return
        self._start_talking(client)

    def _handshake(self, client: Client) -> None:
        """TLS: take the handshake one step further; once done, the client starts talking."""
        sock = client.sock
        if not isinstance(sock, ssl.SSLSocket):
            return
        try:
            sock.do_handshake()
        except ssl.SSLWantReadError:
            self.ep.modify(client.fd, EPOLL_IN)
            return
        except ssl.SSLWantWriteError:
            self.ep.modify(client.fd, EPOLL_IN | EPOLL_OUT)
            return
        except (ssl.SSLError, OSError):
            self.ep.unregister(client.fd)
            del self.by_fd[client.fd]
            self._fail(client, errno.EPROTO)
            return
        client.handshaking = False
        self.ep.modify(client.fd, EPOLL_IN)
        self._start_talking(client)

    def _start_talking(self, client: Client) -> None:
        """Connected (and through TLS): the hello, or nothing for a raw client."""
        if self.cfg.kind == "lanchat":
            client.out += hello_line(f"b{client.index}")
            self._flush(client)
        elif self.cfg.kind == "web":  # the upgrade and the hello at once: no round trip
            client.ws = FrameReader()
            client.out += UPGRADE + frame_lines(hello_line(f"b{client.index}"))
            self._flush(client)
        else:
            client.welcomed = True

    def _welcome(self, client: Client, data: bytes) -> bytes:
        """lanchat: look for the welcome frame; return what follows it."""
        data = client.pending + data
        for _ in range(1000):  # frames before the welcome: at most a handful
            end = data.find(b"\n")
            if end < 0:
                break
            line, data = data[:end], data[end + 1 :]
            kind = frame_type(line)
            if kind == "welcome":
                client.welcomed = True
                client.pending = b""
                self._confirm(client)
                return data
            if kind == "error" and len(self.refusals) < 5:
                self.refusals.append(line.decode("utf-8", "replace")[:200])
        client.pending = data[-4096:]
        return b""

    # ---- reading and writing --------------------------------------------------------------------

    def _read(self, client: Client) -> None:
        """Read what is there and account for it."""
        try:
            if self.cfg.load.kernel_time:
                size, ancillary, _, _ = client.sock.recvmsg_into([self.recv_buffer], STAMP_SPACE)
            else:
                size, ancillary = client.sock.recv_into(self.recv_buffer), []
            data = bytes(self.recv_view[:size])
            if self.tls is not None:
                data = self._tls_rest(client, data, self.recv_view)
        except (BlockingIOError, InterruptedError, ssl.SSLWantReadError, ssl.SSLWantWriteError):
            return
        except ssl.SSLZeroReturnError:
            data = b""
        except ssl.SSLError:
            self._close(client, "tls-error")
            return
        except OSError as exc:
            self._close(client, errno.errorcode.get(exc.errno or 0, "error"))
            return
        if not data:
            self._close(client, "eof")
            return
        if client.ws is not None:
            lines = client.ws.feed(data)
            if lines is None:
                self._close(client, "refused")
                return
            data = lines
            if not data:
                return
        if ancillary:
            # When the kernel queued the data, on the wall clock, moved to the monotonic one.
            sec, nsec = struct.unpack("qq", ancillary[0][2])
            now = sec * 1_000_000_000 + nsec + self.clock_offset
        else:
            now = time.monotonic_ns()
        if self.unconfirmed and client in self.unconfirmed and client.welcomed:
            self._confirm(client)
        if not client.welcomed:
            data = self._welcome(client, data)
            if not data:
                return
        self.acct.feed(client.rcv, data, now)

    @staticmethod
    def _tls_rest(client: Client, data: bytes, buffer: memoryview) -> bytes:
        """TLS: what the session holds beyond one record (epoll cannot see it)."""
        sock = client.sock
        if not isinstance(sock, ssl.SSLSocket):
            return data
        parts = [data]
        for _ in range(1024):  # bounded: each round takes a whole record
            if not data or not sock.pending():
                break
            try:
                size = sock.recv_into(buffer)
            except (ssl.SSLWantReadError, ssl.SSLWantWriteError):
                break
            data = bytes(buffer[:size])
            parts.append(data)
        return b"".join(parts)

    def _flush(self, client: Client) -> None:
        """Write what is queued; watch for room while something is left."""
        if client.out:
            try:
                sent = client.sock.send(client.out)
            except (BlockingIOError, InterruptedError, ssl.SSLWantReadError, ssl.SSLWantWriteError):
                sent = 0
            except OSError as exc:
                self._close(client, errno.errorcode.get(exc.errno or 0, "error"))
                return
            del client.out[:sent]
        flooding = self.cfg.load.mode == "flood" and client.sender and self.sending
        want = bool(client.out) or flooding
        if want != client.writing:
            client.writing = want
            self.ep.modify(client.fd, EPOLL_IN | EPOLL_OUT if want else EPOLL_IN)

    def _close(self, client: Client, how: str) -> None:
        """The relay closed this client (or the connection broke)."""
        if client.closed:
            return
        client.closed = True
        self.closed[how] = self.closed.get(how, 0) + 1
        self.ep.unregister(client.fd)
        del self.by_fd[client.fd]
        client.sock.close()
        self.acct.drop_receiver(client.rcv.own)
        if self.acct.advanced:
            self._publish_done()

    def close_all(self) -> None:
        """Close every connection (the run is over)."""
        for client in self.clients:
            if not client.closed:
                client.closed = True
                client.sock.close()
        self.ep.close()

    # ---- probing --------------------------------------------------------------------------------

    def _probe(self) -> None:
        """Client 0 says a probe line; every client that reads one is a member of the room."""
        self.probe_round += 1
        self.next_probe = time.monotonic() + PROBE_INTERVAL
        first = self.clients[0] if self.clients else None
        if first is not None and first.index == 0 and not first.closed:
            first.out += frame(probe_text(self.probe_round), self.cfg.kind)
            self._flush(first)

    def local_ready(self) -> bool:
        """Every local client but the prober has read a probe (or is gone)."""
        return all(c.closed or c.index == 0 or c.rcv.saw_probe for c in self.clients)

    # ---- sending --------------------------------------------------------------------------------

    def prepare(self) -> None:
        """Before the load: count, per sender, the local receivers that should get its lines."""
        live = {c.index for c in self.clients if not c.closed}
        self.receivers_of = [len(live) - (s in live) for s in range(self.cfg.load.senders)]
        if self.cfg.load.mode == "window":
            for sender, receivers in enumerate(self.receivers_of):
                self.acct.track(sender_id(sender), receivers)

    def start_sending(self, t0: float) -> None:
        """Begin the load at monotonic time ``t0``."""
        self.sending = True
        local = len(self.senders)
        if self.cfg.load.mode == "window":
            self.dirty = {c for c in self.senders if not c.closed}
        elif self.cfg.load.mode == "rate" and local:
            period = 1e9 / self.cfg.load.rate
            phases = self.cfg.phases
            if phases is None:  # evenly spaced, the workers' turns spread between each other's
                interval = period / local
                offset = interval * self.cfg.index / self.cfg.load.procs
                plan = [(offset + i * interval, c) for i, c in enumerate(self.senders)]
            else:  # each sender at its own phase
                plan = sorted(((phases[c.index] * period, c) for c in self.senders), key=_first)
            self.rate_plan = [(int(at), c) for at, c in plan]
            self.rate_t0 = int(t0 * 1e9)
            self.rate_turn = 0
            self.rate_due = self.rate_t0 + self.rate_plan[0][0]
        elif self.cfg.load.mode == "flood":
            for client in self.senders:
                if not client.closed:
                    self._flush(client)

    def stop_sending(self) -> None:
        """Send no more; publish the final counts."""
        self.sending = False
        for client in self.senders:
            self.shared.set_sent(client.index, client.seq)
            if client.writing and not client.closed:
                self._flush(client)
        self.shared.set_stopped(self.cfg.index)

    def _send_wait(self) -> float:
        """How long the loop may sleep without missing a send."""
        if self.cfg.load.mode == "flood":
            return 0.0 if any(not c.out and not c.closed for c in self.senders) else TICK
        if self.cfg.load.mode == "rate" and self.senders:
            return max((self.rate_due - time.monotonic_ns()) / 1e9, 0.0)
        return 0.0 if self.dirty else TICK

    def _send_lines(self, client: Client, count: int) -> None:
        """Queue ``count`` new lines from ``client`` and write them in one go."""
        if client.closed or count <= 0:
            return
        count = min(count, self.cfg.load.max_lines - client.seq)
        if count <= 0:
            return
        now = time.monotonic_ns()
        enc = self.fmt.encode
        kind = self.cfg.kind
        sid = client.index
        first = client.seq
        client.out += b"".join(frame(enc(sid, q, now), kind) for q in range(first, first + count))
        client.seq = first + count
        self.shared.set_sent(sid, client.seq)
        self._flush(client)

    def _send(self) -> None:
        """Send what the mode allows now."""
        mode = self.cfg.load.mode
        if mode == "window":
            dirty, self.dirty = self.dirty, set()
            for client in dirty:
                allowed = self.shared.done(client.index) + self.cfg.load.window - client.seq
                self._send_lines(client, allowed)
        elif mode == "rate":
            self._send_rate()
        else:
            for client in self.senders:
                if not client.out:
                    self._send_lines(client, FLOOD_BATCH)

    def _send_rate(self) -> None:
        """Send every line that is due, in the order of the plan, period after period."""
        plan = self.rate_plan
        if not plan:
            return
        period = 1e9 / self.cfg.load.rate
        now = time.monotonic_ns()
        for _ in range(MAX_SENDS_PER_TURN):
            if now < self.rate_due:
                return
            self.rate_lag_ns = max(self.rate_lag_ns, now - self.rate_due)
            self._send_lines(plan[self.rate_turn % len(plan)][1], 1)
            self.rate_turn += 1
            cycle, turn = divmod(self.rate_turn, len(plan))
            self.rate_due = self.rate_t0 + int(cycle * period) + plan[turn][0]

    def _publish_done(self) -> None:
        """Window mode: share the local done marks that moved and wake the senders' workers."""
        wake: set[int] = set()
        for sid in self.acct.advanced:
            sender = int(sid, 16)
            self.shared.set_done(self.cfg.index, sender, self.acct.windows[sid].done)
            owner = self.cfg.load.owner(sender)
            local = self.sender_by_id.get(sid)
            if local is not None:
                self.dirty.add(local)
            elif owner != self.cfg.index:
                wake.add(owner)
        self.acct.advanced.clear()
        for owner in wake:
            with contextlib.suppress(BlockingIOError):  # full: a wake-up is already pending
                os.write(self.wake_writes[owner], b"!")

    def _drain_wake(self) -> None:
        """Another worker moved a done mark: every local sender may send again."""
        with contextlib.suppress(BlockingIOError):
            os.read(self.wake_read, 4096)
        if self.sending:
            self.dirty.update(c for c in self.senders if not c.closed)

    def expected_local(self) -> int:
        """Deliveries the local receivers should see, given the senders' counts so far."""
        sent = self.shared.sent
        return sum(n * sent(s) for s, n in enumerate(self.receivers_of))


def _first(pair: tuple[float, Client]) -> float:
    return pair[0]


def _clock_offset() -> int:
    """Monotonic minus wall-clock time in ns, from the tightest of a few paired readings."""
    readings = []
    for _ in range(5):
        a = time.monotonic_ns()
        wall = time.time_ns()
        b = time.monotonic_ns()
        readings.append((b - a, (a + b) // 2 - wall))
    return min(readings)[1]
