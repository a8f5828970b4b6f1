"""The figures of a run and of a series of runs, as data (rendering lives in ``report``)."""

from __future__ import annotations

import math
import statistics
from dataclasses import asdict, dataclass, field
from typing import Any

# The figures summarised over runs and compared between servers (lanchat / ncat), in table order:
# key, label. Load runs and connect-only runs have their own.
LOAD_FIGURES: tuple[tuple[str, str], ...] = (
    ("deliveries_per_s", "deliveries/s"),
    ("server_us_per_delivery", "server CPU µs/delivery"),
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
    procs: int
    connect_window: int  # connections opened before the server served them; 0: all at once
    latency_clock: str  # kernel: arrival = the kernel's receive stamp; read: when read
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


def ratios(ours: dict[str, Spread], theirs: dict[str, Spread]) -> dict[str, float | None]:
    """lanchat's median divided by ncat's, per figure both have (None where ncat's is 0)."""
    out: dict[str, float | None] = {}
    for key, spread in ours.items():
        if key in theirs:
            base = theirs[key].median
            out[key] = spread.median / base if base else None
    return out
