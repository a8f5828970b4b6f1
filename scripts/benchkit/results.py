"""The figures of a run and of a series of runs, as data (rendering lives in ``report``)."""

from __future__ import annotations

import math
import statistics
from dataclasses import asdict, dataclass, field
from typing import Any

from . import procfs

RATE_LAG_NOTE_MS = 10  # rate mode: falling further behind the schedule than this is noted
DISTURBED = 0.1  # cores used by other processes during a run above which it is noted

# The figures summarised over runs and compared between servers (lanchat / ncat), in table order:
# key, label. Load runs and connect-only runs have their own.
LOAD_FIGURES: tuple[tuple[str, str], ...] = (
    ("deliveries_per_s", "deliveries/s"),
    ("server_us_per_delivery", "server CPU µs/delivery"),
    ("total_us_per_delivery", "server+generator µs/deliv"),
    ("server_cpu_util", "server CPU (cores)"),
    ("latency_p50_ms", "latency p50 ms"),
    ("latency_p95_ms", "latency p95 ms"),
    ("latency_p99_ms", "latency p99 ms"),
    ("latency_max_ms", "latency max ms"),
    ("server_peak_rss_mb", "server peak RSS MB"),
    ("server_threads", "server threads"),
    ("server_fds", "server fds"),
    ("lost", "lost"),
    ("duplicates", "duplicates"),
    ("reordered", "reordered"),
    ("corrupted", "corrupted"),
    ("disconnected", "disconnected"),
    ("generator_cpu_util", "generator CPU (cores)"),
    ("generator_max_proc_util", "busiest generator process"),
    ("machine_busy", "machine busy (share)"),
    ("other_cpu_util", "other processes (cores)"),
)
CONNECT_FIGURES: tuple[tuple[str, str], ...] = (
    ("connect_s", "connect s"),
    ("ready_s", "ready s"),
    ("connected", "connected"),
    ("ready_clients", "served a probe"),
    ("still_open", "still open after hold"),
    ("disconnected", "disconnected"),
    ("server_peak_rss_mb", "server peak RSS MB"),
    ("server_max_rss_mb", "server RSS MB (sampled max)"),
    ("server_threads", "server threads"),
    ("server_fds", "server fds"),
    ("server_max_fds", "server fds (sampled max)"),
    ("server_us_per_connect", "server CPU µs/connection"),
    ("server_cpu_util", "server CPU (cores) connecting"),
    ("generator_cpu_util", "generator CPU (cores) connecting"),
    ("generator_max_proc_util", "busiest generator process"),
)


def figures_for(mode: str) -> tuple[tuple[str, str], ...]:
    """The figures that mean something for runs of ``mode``."""
    return CONNECT_FIGURES if mode == "connect" else LOAD_FIGURES


@dataclass(frozen=True)
class RunResult:
    """One run against one server. Counts cover the whole run, rates the measured interval."""

    server: str
    run: int
    ok: bool
    error: str | None
    kind: str
    mode: str
    clients: int
    senders: int
    window: int
    rate: float
    line_bytes: int
    shape: str  # how the clients are spread over generator processes (Load.shape)
    procs: int
    connect_window: int  # connections opened before the server served them; 0: all at once
    latency_clock: str  # kernel: arrival = the kernel's receive stamp; read: when read
    tls: bool  # the clients connected over TLS
    warmup_s: float
    duration_s: float | None  # the measured interval
    connect_s: float | None  # until every client was connected (lanchat: welcomed)
    ready_s: float | None  # until a probe line from client 0 had reached every other client
    connected: int
    ready_clients: int
    still_open: int  # connections open at the end
    sent: int  # lines sent by all senders
    expected: int  # deliveries expected: each line to every other client open at the start
    delivered: int  # distinct intact deliveries
    lost: int
    duplicates: int
    reordered: int
    corrupted: int
    corrupted_attributed: int
    disconnected: int  # connections the server closed or broke
    measured_deliveries: int
    deliveries_per_s: float | None
    lines_per_s: float | None
    latency_p50_ms: float | None
    latency_p95_ms: float | None
    latency_p99_ms: float | None
    latency_max_ms: float | None
    server_cpu_s: float | None
    server_us_per_delivery: float | None
    # ... and the generator's CPU with it: a relay whose sends wait for the receivers' ACKs
    # (Nagle, as ncat's) has the kernel finish them in the receivers' processes, on their bill
    total_us_per_delivery: float | None
    server_us_per_connect: float | None  # connect runs: server CPU per client made ready
    server_cpu_util: float | None
    server_peak_rss_mb: float | None
    server_max_rss_mb: float | None
    server_threads: int | None
    server_fds: int | None  # open descriptors at the end, clients still connected
    server_max_fds: int | None  # the most seen while sampling (also when the server died)
    server_fd_limit: int | None
    generator_cpu_util: float | None
    generator_max_proc_util: float | None
    machine_busy: float | None
    other_cpu_util: float | None  # other processes on the machine meanwhile, in cores
    limit: str | None  # server | generator | cpu | pace: what held the figures back
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """The result as JSON-ready data."""
        return asdict(self)


def percentile_ms(hist: dict[int, int], fraction: float) -> float | None:
    """The ``fraction`` percentile of a µs histogram, in ms (nearest rank)."""
    total = sum(hist.values())
    if total == 0:
        return None
    rank = min(max(1, math.ceil(fraction * total)), total)
    seen = 0
    for key in sorted(hist):
        seen += hist[key]
        if seen >= rank:
            return key / 1000
    return max(hist) / 1000


def merge_histograms(hists: list[dict[int, int]]) -> dict[int, int]:
    """One histogram out of several."""
    merged: dict[int, int] = {}
    for hist in hists:
        for key, count in hist.items():
            merged[key] = merged.get(key, 0) + count
    return merged


@dataclass(frozen=True)
class Spread:
    """Median and range of one figure over several runs."""

    median: float
    low: float
    high: float
    runs: int

    def to_dict(self) -> dict[str, Any]:
        """As JSON-ready data."""
        return {"median": self.median, "min": self.low, "max": self.high, "runs": self.runs}


def summarise(results: list[RunResult]) -> dict[str, Spread]:
    """Median and min-max of every figure over the successful runs."""
    summary: dict[str, Spread] = {}
    good = [r for r in results if r.ok]
    for key, _ in figures_for(good[0].mode if good else ""):
        values = [float(v) for r in good if (v := getattr(r, key)) is not None]
        if values:
            summary[key] = Spread(statistics.median(values), min(values), max(values), len(values))
    return summary


def pair_ratios(ours: list[RunResult], theirs: list[RunResult]) -> dict[str, Spread]:
    """Per figure, lanchat's run k divided by the other server's run k (runs that completed
    on both sides): their median and range. A ratio whose range crosses a target is not
    settled, whatever its median says."""
    mine = {r.run: r for r in ours if r.ok}
    pairs = [(mine[r.run], r) for r in theirs if r.ok and r.run in mine]
    out: dict[str, Spread] = {}
    for key, _ in figures_for(pairs[0][0].mode if pairs else ""):
        values = [
            float(a) / float(b)
            for x, y in pairs
            if (a := getattr(x, key)) is not None and (b := getattr(y, key))
        ]
        if values:
            out[key] = Spread(statistics.median(values), min(values), max(values), len(values))
    return out


def ratios(ours: dict[str, Spread], theirs: dict[str, Spread]) -> dict[str, float | None]:
    """lanchat's median divided by ncat's, per figure both have (None where ncat's is 0)."""
    out: dict[str, float | None] = {}
    for key, spread in ours.items():
        if key in theirs:
            base = theirs[key].median
            out[key] = spread.median / base if base else None
    return out


# Generator shapes: how the N clients are spread over generator processes, and when senders send.
SHAPES = ("split", "per-core", "pooled")


@dataclass(frozen=True)
class Load:
    """The load of a run, identical for every server it is run against."""

    kind: str
    clients: int
    senders: int
    mode: str
    window: int
    rate: float
    max_lines: int
    line_bytes: int
    warmup: float
    duration: float
    drain: float
    connect_only: bool
    hold: float
    procs: int
    setup_timeout: float
    connect_window: int | None  # None: the server's default (see connect_window_for)
    kernel_time: bool
    # split / per-core: client i in process i % procs, each process's senders evenly spaced;
    # pooled: the senders in process 0, every other client in process 1, senders at random phases
    shape: str = "split"
    tls: bool = False  # clients connect over TLS (lanchat serve --tls; ncat --ssl)

    def clients_of(self, worker: int) -> range:
        """The client numbers generator process ``worker`` holds."""
        if self.shape == "pooled":
            return range(0, self.senders) if worker == 0 else range(self.senders, self.clients)
        return range(worker, self.clients, self.procs)

    def owner(self, client: int) -> int:
        """The generator process that holds client number ``client``."""
        if self.shape == "pooled":
            return 0 if client < self.senders else 1
        return client % self.procs


def why(facts: dict[str, Any]) -> str:
    """' (ECONNREFUSED x3, ...)' from the connect failures and refusals, or ''."""
    parts = [f"{name} x{count}" for name, count in sorted(facts.get("failed", {}).items())]
    parts += facts.get("refusals", [])[:2]
    return f" ({', '.join(parts)})" if parts else ""


def _notes(load: Load, facts: dict[str, Any], closed: dict[str, int]) -> list[str]:
    """Sentences about anything unusual in the run."""
    results: list[dict[str, Any]] = facts.get("results", [])
    notes = []
    if closed:
        notes.append("closed by the server: " + ", ".join(f"{k} x{v}" for k, v in closed.items()))
    if facts.get("silent"):
        notes.append(f"{facts['silent']} clients heard nothing from the server on connecting")
    if facts.get("failed"):
        notes.append("connect failures" + why({"failed": facts["failed"]}))
    if results and not all(r.get("drained", True) for r in results):
        notes.append(f"not every line had arrived {load.drain:g} s after the load stopped")
    span: procfs.Interval | None = facts.get("interval")
    if span is not None and span.others is not None and span.others > DISTURBED:
        notes.append(
            f"other processes used {span.others:.2f} cores meanwhile: the figures are disturbed"
        )
    capped = sum(r.get("capped", 0) for r in results)
    if capped:
        notes.append(f"{capped} senders stopped at --max-lines {load.max_lines} before the end")
    garbage = sum(r.get("garbage_bytes", 0) for r in results)
    if garbage:
        notes.append(f"{garbage} bytes without a line end were dropped")
    lag = max((r.get("rate_lag_ms", 0.0) for r in results), default=0.0)
    if lag > RATE_LAG_NOTE_MS:
        notes.append(f"the generator fell up to {lag:.0f} ms behind the rate")
    return notes


def make_result(
    *,
    server: str,
    load: Load,
    kind: str,
    run: int,
    connect_window: int,
    facts: dict[str, Any],
    rss_peak_kb: int,
    fds_peak: int,
    error: str | None,
) -> RunResult:
    """Put the workers' reports and the server samples together."""
    results: list[dict[str, Any]] = facts.get("results", [])

    def total(key: str) -> int:
        return int(sum(r.get(key, 0) for r in results))

    closed: dict[str, int] = {}
    for r in results:
        for how, count in r.get("closed", {}).items():
            closed[how] = closed.get(how, 0) + count
    hist = merge_histograms([r.get("latency_us", {}) for r in results])
    max_ns = max((r.get("max_latency_ns", 0) for r in results), default=0)
    measured = total("measured")
    span: procfs.Interval | None = facts.get("interval")
    wall = span.wall if span is not None else 0.0
    server_cpu = span.server_cpu if span is not None else None
    loaded = not load.connect_only and span is not None
    end: procfs.ProcSample | None = facts.get("server_end")
    expected = total("expected")
    return RunResult(
        server=server,
        run=run,
        ok=error is None,
        error=error,
        kind=kind,
        mode="connect" if load.connect_only else load.mode,
        clients=load.clients,
        senders=load.senders,
        window=load.window,
        rate=load.rate,
        line_bytes=load.line_bytes,
        shape=load.shape,
        procs=load.procs,
        connect_window=connect_window,
        latency_clock="kernel" if load.kernel_time else "read",
        tls=load.tls,
        warmup_s=load.warmup,
        duration_s=_round(wall) if loaded else None,
        connect_s=_round(facts.get("connect_s")),
        ready_s=_round(facts.get("ready_s")),
        connected=facts.get("connected", 0),
        ready_clients=facts.get("ready_clients", 0),
        still_open=total("still_open"),
        sent=sum(sum(r.get("sent", {}).values()) for r in results),
        expected=expected,
        delivered=total("delivered"),
        lost=max(expected - total("seen"), 0),
        duplicates=total("duplicates"),
        reordered=total("reordered"),
        corrupted=total("corrupted"),
        corrupted_attributed=total("corrupted_attributed"),
        disconnected=sum(closed.values()),
        measured_deliveries=measured,
        deliveries_per_s=_round(measured / wall) if loaded else None,
        lines_per_s=_round(total("measured_lines") / wall) if loaded else None,
        latency_p50_ms=percentile_ms(hist, 0.50),
        latency_p95_ms=percentile_ms(hist, 0.95),
        latency_p99_ms=percentile_ms(hist, 0.99),
        latency_max_ms=_round(max_ns / 1e6) if hist else None,
        server_cpu_s=_round(server_cpu),
        server_us_per_delivery=(
            _round(server_cpu / measured * 1e6) if loaded and server_cpu and measured else None
        ),
        total_us_per_delivery=(
            _round((server_cpu + span.generator_cpu * wall) / measured * 1e6)
            if loaded and span is not None and server_cpu and measured
            else None
        ),
        server_us_per_connect=(
            _round(server_cpu / connected * 1e6)
            if load.connect_only
            and server_cpu is not None
            and (connected := facts.get("connected", 0))
            else None
        ),
        server_cpu_util=_round(server_cpu / wall) if server_cpu is not None and wall else None,
        server_peak_rss_mb=_round(end.hwm_kb / 1024) if end is not None else None,
        server_max_rss_mb=_round(rss_peak_kb / 1024) if rss_peak_kb else None,
        server_threads=end.threads if end is not None else None,
        server_fds=end.fds if end is not None else None,
        server_max_fds=fds_peak or None,
        server_fd_limit=facts.get("server_fd_limit"),
        generator_cpu_util=_round(span.generator_cpu) if span is not None else None,
        generator_max_proc_util=_round(span.busiest) if span is not None else None,
        machine_busy=_round(span.machine_busy) if span is not None else None,
        other_cpu_util=_round(span.others) if span is not None else None,
        limit=span.limit() if span is not None else None,
        notes=_notes(load, facts, closed),
    )


def _round(value: float | None, digits: int = 4) -> float | None:
    """``value`` rounded for reading, None kept."""
    return None if value is None else round(value, digits)
