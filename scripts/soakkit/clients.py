"""The soak's clients, each a non-blocking socket the event loop (run.py) drives: Good (a
lanchat client that chats, reconnects with resume and keeps the books on what it got) and the
hostile ones (Churn, Flood, Garbage, Slow), whose only job is to be a nuisance."""

from __future__ import annotations

import json
import os
import random
import socket
import time
from dataclasses import dataclass, field

RECV_BYTES = 65536
RECV_ROUNDS = 4  # reads per peer per loop round: one busy peer cannot starve the others
SEND_BYTES = 65536  # most a hostile peer queues per round
CONNECT_TIMEOUT = 2.0
PREFIX = "soak"  # a well-behaved message: "soak SENDER N SENT_NS"


class Peer:
    """A connection: bytes queued out, complete lines handed to line()."""

    def __init__(self, address: tuple[str, int], rcvbuf: int | None = None) -> None:
        self.sock = socket.socket(socket.AF_INET6 if ":" in address[0] else socket.AF_INET)
        if rcvbuf is not None:
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        self.sock.settimeout(CONNECT_TIMEOUT)
        self.sock.connect(address)
        self.sock.setblocking(False)
        self.out = bytearray()
        self.inbuf = bytearray()
        self.closed = False
        self.reads = True  # False: never reads (a slow reader)

    def fileno(self) -> int:
        return self.sock.fileno()

    def send(self, data: bytes) -> None:
        self.out += data
        self.flush()

    def flush(self) -> None:
        while self.out and not self.closed:
            try:
                sent = self.sock.send(self.out)
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                self.ended()
                return
            del self.out[:sent]

    def readable(self) -> None:
        for _ in range(RECV_ROUNDS):
            try:
                data = self.sock.recv(RECV_BYTES)
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                data = b""
            if not data:
                self.ended()
                return
            self.inbuf += data
            if b"\n" in data:
                *lines, rest = self.inbuf.split(b"\n")
                self.inbuf = bytearray(rest)
                for line in lines:
                    self.line(bytes(line))
            if len(data) < RECV_BYTES:
                return

    def line(self, data: bytes) -> None:
        """One line from the relay (hostile peers ignore them)."""

    def ended(self) -> None:
        """The relay closed the connection (or it broke)."""
        self.close()

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            self.sock.close()


@dataclass
class Ledger:
    """What the well-behaved clients sent and got, shared by all of them."""

    echoed: dict[tuple[int, int], int] = field(default_factory=dict)  # (sender, n) -> seq
    sent: int = 0
    deliveries: int = 0  # well-behaved messages received live, this interval
    latencies_ns: list[int] = field(default_factory=list)  # this interval
    reconnects: int = 0
    dropped: int = 0  # well-behaved clients the relay let go (they resume)
    gaps: int = 0


class Good(Peer):
    """A lanchat client that chats at `rate`, reconnects (resuming) now and then, and records
    every well-behaved message it gets, by seq, to be checked at the end."""

    def __init__(
        self, index: int, address: tuple[str, int], ledger: Ledger, rate: float, rng: random.Random
    ) -> None:
        self.index = index
        self.address = address
        self.ledger = ledger
        self.rate = rate
        self.rng = rng
        self.name = f"soak-{index}"
        self.join_seq: int | None = None  # the first welcome's seq: what came before is history
        self.epoch: str | None = None
        self.last_seq = 0
        self.seen = bytearray()  # per seq: how many times a well-behaved message came
        self.n = 0  # messages sent
        self.echoed = 0
        self.welcomed = False
        self.next_send = time.monotonic() + rng.random() / max(rate, 1e-9)
        self.pong: str | None = None  # the last pong's token
        super().__init__(address)
        self._hello()

    def _hello(self) -> None:
        hello: dict[str, object] = {"type": "hello", "version": 1, "name": self.name}
        if self.epoch is not None:
            hello["resume"] = {"epoch": self.epoch, "seq": self.last_seq}
        self.send(json.dumps(hello).encode() + b"\n")

    @property
    def outstanding(self) -> int:
        return self.n - self.echoed

    def tick(self, now: float, sending: bool) -> None:
        if self.closed or not self.welcomed or not sending or now < self.next_send:
            return
        self.next_send = now + self.rng.expovariate(self.rate)
        text = f"{PREFIX} {self.index} {self.n} {time.monotonic_ns()}"
        self.n += 1
        self.ledger.sent += 1
        self.send(json.dumps({"type": "message", "text": text}).encode() + b"\n")

    def reconnect(self) -> None:
        """Close and come back, resuming from the last seq read."""
        self.close()
        self.closed = False
        self.welcomed = False
        self.inbuf = bytearray()
        self.out = bytearray()
        Peer.__init__(self, self.address)
        self.ledger.reconnects += 1
        self._hello()

    def line(self, data: bytes) -> None:
        if b'"message"' in data and b'"soak ' not in data:
            self._note_seq(data)  # someone else's chat (a flood): only its seq matters
            return
        try:
            frame = json.loads(data)
        except ValueError:
            return
        kind = frame.get("type")
        seq = frame.get("seq", 0)
        if isinstance(seq, int) and seq > self.last_seq:
            self.last_seq = seq
        if kind == "message":
            self._message(frame, seq)
        elif kind == "welcome":
            self.welcomed = True
            self.epoch = frame.get("epoch")
            if self.join_seq is None:
                self.join_seq = seq
        elif kind == "gap":
            self.ledger.gaps += 1
        elif kind == "pong":
            self.pong = frame.get("token")
        elif kind == "bye":
            self.ledger.dropped += 1

    def _note_seq(self, data: bytes) -> None:
        at = data.find(b'"seq":')
        if at >= 0:
            end = data.find(b",", at)
            try:
                seq = int(data[at + 6 : end])
            except ValueError:
                return
            self.last_seq = max(self.last_seq, seq)

    def _message(self, frame: dict[str, object], seq: int) -> None:
        text = frame.get("text")
        if not isinstance(text, str) or not text.startswith(PREFIX + " "):
            return
        try:
            _, sender, n, sent_ns = text.split(" ")
        except ValueError:
            return
        if int(sender) == self.index:  # ours (by the text: a reconnect may rename us)
            if (self.index, int(n)) not in self.ledger.echoed:
                self.echoed += 1
            self.ledger.echoed[self.index, int(n)] = seq
        if self.join_seq is None or seq <= self.join_seq:
            return  # history from before we came: not ours to check
        if len(self.seen) <= seq:
            self.seen.extend(bytes(seq + 4096 - len(self.seen)))
        self.seen[seq] = min(255, self.seen[seq] + 1)
        if not frame.get("history"):
            self.ledger.deliveries += 1
            self.ledger.latencies_ns.append(time.monotonic_ns() - int(sent_ns))

    def ended(self) -> None:
        """Dropped or cut off: come back at once, resuming (as `lanchat join` does)."""
        self.close()
        try:
            self.reconnect()
        except OSError:
            self.closed = True  # the relay is gone: the verdict will say what was lost


GARBAGE = (
    lambda rng: bytes(rng.getrandbits(8) for _ in range(rng.randrange(1, 512))) + b"\n",
    lambda rng: b'{"type":"hello","version":1}\n{"type":"message","text":\n{not json\n',
    lambda rng: b'{"type":"hello","version":1,"name":"g"}\n{"type":"message","text":"x\\ud800y"}\n',
    lambda rng: b"x" * rng.randrange(5000, 200_000) + b"\n",  # longer than a line may be
    lambda rng: b"\xff\xfe\x00\x1b]0;title\x07\xed\xa0\x80 surrogate bytes\r\n/nick \xc0\n",
    lambda rng: os.urandom(rng.randrange(1, 64)),  # and then it just closes
)


class Hostile(Peer):
    """A nuisance with a lifetime: reads and throws away (unless it never reads), sends what its
    kind sends, and is closed by the loop at `until`."""

    def __init__(
        self, kind: str, address: tuple[str, int], until: float, rng: random.Random
    ) -> None:
        super().__init__(address, rcvbuf=4096 if kind == "slow" else None)
        self.kind = kind
        self.until = until
        self.rng = rng
        self.reads = kind != "slow"
        if kind == "churn":
            self.send(rng.choice((b"churning in\n/quit\n", b"hi\n", b"/who\n/quit\n", b"")))
        elif kind == "garbage":
            self.send(rng.choice(GARBAGE)(rng))
        elif kind == "slow":
            self.send(b"I read nothing from now on\n")
        elif kind == "flood":
            self.send(b"flood starts\n")

    def tick(self, now: float) -> None:
        if self.kind == "flood" and len(self.out) < SEND_BYTES:
            self.send(b"flood flood flood flood flood flood flood flood\n" * 1024)
        elif self.kind == "churn" and self.rng.random() < 0.01:
            self.close()  # without a word
