"""What the receivers of one generator process saw: deliveries, losses, duplicates, reordering,
corruption, latency, and (window mode) which lines every local receiver has got. No sockets here.

Per receiver and sender, lines are expected in sequence order from 0. A line with the expected
number is in order; a higher number opens a gap (the skipped numbers are *missing*); a number
below the expected one is *reordered* if it was missing (a late arrival) and a *duplicate* if it
was not. Whatever is still missing, or never sent on, at the end is *lost*.
"""

from __future__ import annotations

from .payload import MARK, PROBE_MARK, PayloadFormat, Verdict

# Bounds that keep a misbehaving relay from costing the generator unbounded memory.
MAX_PARTIAL_LINE = 1 << 20  # bytes held without a newline before they are dropped as garbage
MAX_CACHE = 200_000  # validated payloads remembered (each line reaches N-1 receivers)
MAX_GAP = 1_000_000  # a corrupted line may only be attributed this far ahead
TILDE = b"~"  # the first byte of MARK and of PROBE_MARK


class Receiver:
    """The per-connection state the accounting needs."""

    __slots__ = ("buf", "missing", "nxt", "own", "saw_probe")

    def __init__(self, own: bytes | None) -> None:
        """A receiver; ``own`` is its sender id if it sends too (its echo is not a delivery)."""
        self.own = own
        self.buf = b""  # an incomplete last line
        self.nxt: dict[bytes, int] = {}  # sender -> next sequence number expected
        self.missing: dict[bytes, list[list[int]]] = {}  # sender -> [start, end) ranges
        self.saw_probe = False


class Window:
    """Per sender: how many local receivers must get a line, and how far all of them have."""

    __slots__ = ("counts", "done", "receivers", "width")

    def __init__(self, receivers: int, width: int) -> None:
        """``receivers`` local receivers must get each line; at most ``width`` are in flight."""
        self.receivers = receivers
        self.done = 0  # lines 0..done-1 reached every local receiver
        self.width = width
        self.counts = [0] * width  # receivers that got line q, at q % width


class Accounting:
    """Counters for every receiver of one generator process."""

    def __init__(self, fmt: PayloadFormat, kind: str, window: int = 0) -> None:
        """Count lines of format ``fmt`` arriving at ``kind`` clients; ``window`` > 0 tracks it."""
        self.fmt = fmt
        self.raw = kind == "raw"
        self.kind = kind
        self.window = window
        self.windows: dict[bytes, Window] = {}
        self.advanced: set[bytes] = set()  # senders whose ``done`` moved since last asked
        self.cache: dict[bytes, tuple[bytes, int, int]] = {}
        self.seen = 0  # distinct (receiver, sender, seq) arrived, intact or attributed
        self.delivered = 0  # distinct intact deliveries (echoes excluded)
        self.corrupted = 0  # payloads found damaged (marker present, payload not intact)
        self.corrupted_attributed = 0
        self.duplicates = 0
        self.reordered = 0
        self.echoes = 0
        self.garbage_bytes = 0  # bytes dropped because a "line" never ended
        self.measuring = False
        self.measured = 0  # intact deliveries while measuring
        self.latency_us: dict[int, int] = {}  # while measuring: latency in µs -> count
        self.max_latency_ns = 0

    def track(self, sender: bytes, receivers: int) -> None:
        """Window mode: ``receivers`` local receivers must get each line of ``sender``."""
        self.windows[sender] = Window(receivers, max(self.window, 1))

    def feed(self, rcv: Receiver, data: bytes, now: int) -> None:
        """Account for ``data`` read by ``rcv`` at monotonic time ``now`` (ns)."""
        if rcv.buf:
            data = rcv.buf + data
        end = data.rfind(b"\n")
        if end < 0:
            if len(data) > MAX_PARTIAL_LINE:
                self.garbage_bytes += len(data)
                data = b""
            rcv.buf = data
            return
        rcv.buf = data[end + 1 :]
        # One memchr-fast scan for the markers' first byte skips announcements, notices and
        # join frames (ncat sends gigabytes of them while 1000 clients join).
        first = data.find(TILDE, 0, end)
        if first < 0:
            return
        if not rcv.saw_probe and data.find(PROBE_MARK, first, end) >= 0:
            rcv.saw_probe = True
        if data.find(MARK, first, end) < 0:
            return
        cache = self.cache
        length = self.fmt.length
        raw = self.raw
        own = rcv.own
        nxt = rcv.nxt
        measuring = self.measuring
        hist = self.latency_us
        windows = self.windows
        for line in data[:end].split(b"\n"):
            at = line.find(MARK)
            if at < 0:
                continue
            if raw:
                fields = cache.get(line[at:])
            else:
                stop = at + length
                framed = line[at - 1] == 34 and line[stop : stop + 1] == b'"'  # 34: '"'
                fields = cache.get(line[at:stop]) if framed else None
            if fields is None:
                self._slow(rcv, line, now)
                continue
            sender, seq, sent = fields
            if sender == own:
                self.echoes += 1
                continue
            expected = nxt.get(sender, 0)
            if seq != expected:
                self._irregular(rcv, sender, seq, sent, now, intact=True)
                continue
            nxt[sender] = seq + 1
            self.seen += 1
            self.delivered += 1
            if measuring:
                self.measured += 1
                lat = now - sent
                key = lat // 1000
                hist[key] = hist.get(key, 0) + 1
                if lat > self.max_latency_ns:  # noqa: PLR1730 - faster than max() per delivery
                    self.max_latency_ns = lat
            if windows:  # inline _count_window: this runs once per delivery
                win = windows.get(sender)
                if win is not None:
                    slot = seq % win.width
                    count = win.counts[slot] + 1
                    win.counts[slot] = count
                    if count >= win.receivers:
                        self._advance(sender, win)

    def _slow(self, rcv: Receiver, line: bytes, now: int) -> None:
        """A line the fast path did not recognise: judge every payload in it."""
        for judged in self.fmt.judge(line, self.kind):
            fields = judged.fields
            if judged.verdict is Verdict.INTACT and fields is not None:
                if len(self.cache) >= MAX_CACHE:
                    self.cache.clear()
                if judged.payload is not None:
                    self.cache[judged.payload] = fields
                sender, seq, sent = fields
                if sender == rcv.own:
                    self.echoes += 1
                elif seq == rcv.nxt.get(sender, 0):
                    rcv.nxt[sender] = seq + 1
                    self.seen += 1
                    self._delivered(sent, now)
                    if self.windows:
                        self._count_window(sender, seq)
                else:
                    self._irregular(rcv, sender, seq, sent, now, intact=True)
                continue
            self.corrupted += 1
            if judged.sender is None or judged.seq is None or judged.sender == rcv.own:
                continue
            if judged.seq >= rcv.nxt.get(judged.sender, 0) + MAX_GAP:
                continue  # an implausible number: not attributed
            self.corrupted_attributed += 1
            self._irregular(rcv, judged.sender, judged.seq, 0, now, intact=False)

    def _delivered(self, sent: int, now: int) -> None:
        """Count one intact delivery and, while measuring, its latency."""
        self.delivered += 1
        if self.measuring:
            self.measured += 1
            lat = now - sent
            key = lat // 1000
            self.latency_us[key] = self.latency_us.get(key, 0) + 1
            self.max_latency_ns = max(self.max_latency_ns, lat)

    def _irregular(
        self, rcv: Receiver, sender: bytes, seq: int, sent: int, now: int, *, intact: bool
    ) -> None:
        """A line out of order, a duplicate, or a damaged one whose number could be read."""
        expected = rcv.nxt.get(sender, 0)
        if seq >= expected:
            if seq > expected:
                rcv.missing.setdefault(sender, []).append([expected, seq])
            rcv.nxt[sender] = seq + 1
            self.seen += 1
            if intact:
                self._delivered(sent, now)
            if self.windows:
                self._count_window(sender, seq)
            return
        for gap in rcv.missing.get(sender, ()):
            if gap[0] <= seq < gap[1]:
                self._fill(rcv.missing[sender], gap, seq)
                self.seen += 1
                if intact:
                    self.reordered += 1
                    self._delivered(sent, now)
                if self.windows:
                    self._count_window(sender, seq)
                return
        if intact:
            self.duplicates += 1

    @staticmethod
    def _fill(gaps: list[list[int]], gap: list[int], seq: int) -> None:
        """Remove ``seq`` from the missing range ``gap``."""
        start, end = gap
        gaps.remove(gap)
        if start < seq:
            gaps.append([start, seq])
        if seq + 1 < end:
            gaps.append([seq + 1, end])

    def _count_window(self, sender: bytes, seq: int) -> None:
        """One more local receiver has line ``seq`` of ``sender``; advance its ``done`` mark."""
        win = self.windows.get(sender)
        if win is None or win.receivers <= 0:
            return
        win.counts[seq % win.width] += 1
        self._advance(sender, win)

    def _advance(self, sender: bytes, win: Window) -> None:
        """Move ``done`` past every line that all local receivers have (at most W steps)."""
        counts = win.counts
        width = win.width
        moved = False
        for _ in range(width):
            slot = win.done % width
            if counts[slot] < win.receivers:
                break
            counts[slot] = 0  # free for line done + W, which is only sent after this one is done
            win.done += 1
            moved = True
        if moved:
            self.advanced.add(sender)

    def drop_receiver(self, own: bytes | None) -> None:
        """A local receiver is gone: stop waiting for it in every window it was part of."""
        for sender, win in self.windows.items():
            if sender != own and win.receivers > 0:
                win.receivers -= 1
                self._advance(sender, win)
