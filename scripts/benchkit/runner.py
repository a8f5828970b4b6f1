"""One measured run: start the generator processes, take them through connect, probe and load (or
hold), sample the server from /proc meanwhile, and turn what they report into a RunResult."""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import resource
import time
from collections.abc import Callable
from dataclasses import dataclass
from multiprocessing.connection import Connection, wait
from multiprocessing.process import BaseProcess
from typing import Any

from . import procfs
from .results import RunResult, merge_histograms, percentile_ms
from .servers import BenchError, Server
from .worker import Shared, WorkerConfig, run_worker

SAMPLE_EVERY = 0.1  # seconds between RSS samples of the server
START_MARGIN = 0.1  # seconds between "go" and the first line, so every worker is waiting
JOIN_TIMEOUT = 5.0  # seconds for a generator process to exit once told to
NCAT_CONNECT_WINDOW = 8  # below ncat's listen backlog of 10
SATURATED = 0.9  # a share of a core (or of the machine) above which we call it the limit
RATE_LAG_NOTE_MS = 10  # rate mode: falling further behind the schedule than this is noted


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


class RunFailed(Exception):
    """The run could not be completed; the message says why (it becomes the result's error)."""


class _Generator:
    """The generator processes of one run and the pipes that drive them."""

    def __init__(self, server: Server, load: Load, kind: str, connect_window: int) -> None:
        """Fork ``load.procs`` workers aimed at ``server``, speaking ``kind``."""
        self.server = server
        self.shared = Shared(load.senders, load.procs)
        if load.mode == "window":
            self.shared.start_windows(load.clients)
        self.wake = [os.pipe() for _ in range(load.procs)]
        for pair in self.wake:
            for fd in pair:
                os.set_blocking(fd, False)
        ctx = multiprocessing.get_context("fork")  # the workers share the mapping and pipes
        self.conns: list[Connection] = []
        self.procs: list[BaseProcess] = []
        self.rss_peak_kb = 0
        self.fds_peak = 0
        for index in range(load.procs):
            cfg = WorkerConfig(
                index=index,
                procs=load.procs,
                host=server.host,
                port=server.port,
                kind=kind,
                clients=load.clients,
                senders=load.senders,
                mode=load.mode,
                window=load.window,
                rate=load.rate,
                max_lines=load.max_lines,
                line_bytes=load.line_bytes,
                setup_timeout=load.setup_timeout,
                connect_window=connect_window,
                kernel_time=load.kernel_time,
            )
            ours, theirs = ctx.Pipe()
            proc = ctx.Process(
                target=run_worker, args=(cfg, theirs, self.shared, self.wake), daemon=True
            )
            proc.start()
            theirs.close()
            self.conns.append(ours)
            self.procs.append(proc)

    def tell(self, *message: Any) -> None:
        """Send ``message`` to every worker."""
        for conn in self.conns:
            conn.send(message)

    def gather(
        self,
        name: str,
        deadline: float,
        tick: Callable[[], None] | None = None,
        edges: tuple[float, ...] = (),
    ) -> list[Any]:
        """Each worker's next ``name`` message, serving the server's pipes; ``tick`` is called
        on every wake-up, and the waits end at each of ``edges`` too."""
        got: dict[int, Any] = {}
        for _ in range(10_000_000):  # bounded by the deadline; the count is a backstop
            if len(got) == len(self.conns):
                break
            now = time.monotonic()
            if now >= deadline:
                missing = len(self.conns) - len(got)
                raise RunFailed(f"{missing} generator process(es) did not report '{name}' in time")
            waiting = [c for i, c in enumerate(self.conns) if i not in got]
            outs = self.server.outputs()
            timeout = min([deadline - now, SAMPLE_EVERY, *(e - now for e in edges if e > now)])
            ready = wait([*waiting, *outs], timeout=timeout)
            self.server.drain()
            self._sample_rss()
            if tick is not None:
                tick()
            for conn in waiting:
                if conn not in ready:
                    continue
                index = self.conns.index(conn)
                try:
                    message = conn.recv()
                except EOFError:
                    raise RunFailed(f"generator process {index} died") from None
                if message[0] == "error":
                    raise RunFailed(message[1])
                if message[0] != name:
                    raise RunFailed(f"generator process {index} said {message[0]!r}, not {name!r}")
                got[index] = message[1]
            gone = self.server.gone()
            if gone:
                raise RunFailed(gone)
        return [got[i] for i in range(len(self.conns))]

    def _sample_rss(self) -> None:
        """Keep the highest resident size and descriptor count seen."""
        if self.server.pid is not None:
            sample = procfs.sample_process(self.server.pid)
            if sample is not None:
                self.rss_peak_kb = max(self.rss_peak_kb, sample.rss_kb)
                self.fds_peak = max(self.fds_peak, sample.fds)

    def close(self) -> None:
        """Tell the workers to close, then make sure they have exited (by pid)."""
        for conn in self.conns:
            with contextlib.suppress(OSError):
                conn.send(("close",))
        deadline = time.monotonic() + JOIN_TIMEOUT
        for proc in self.procs:
            proc.join(max(deadline - time.monotonic(), 0.1))
            if proc.is_alive():
                proc.terminate()
                proc.join(JOIN_TIMEOUT)
            if proc.is_alive():
                proc.kill()
                proc.join(JOIN_TIMEOUT)
        for conn in self.conns:
            conn.close()
        for pair in self.wake:
            for fd in pair:
                os.close(fd)


def connect_window_for(server: str, load: Load) -> int:
    """Connections opened before the server shows it serves them; 0: all at once.

    ncat listens with a backlog of 10: a burst of silent raw clients beyond that gets SYN cookies
    and is never served until it sends something, so connects to ncat are paced by default.
    """
    if load.connect_window is not None:
        return load.connect_window
    return NCAT_CONNECT_WINDOW if server == "ncat" else 0


def run_once(server: Server, load: Load, kind: str, run: int) -> RunResult:
    """One run of ``load`` against ``server`` with ``kind`` clients; failures become results."""
    window = connect_window_for(server.name, load)
    gen = _Generator(server, load, kind, window)
    facts: dict[str, Any] = {}
    try:
        _drive(gen, load, facts)
        error = None
    except RunFailed as exc:
        error = str(exc)
    finally:
        gen.close()
    return _result(
        server=server,
        load=load,
        kind=kind,
        run=run,
        connect_window=window,
        facts=facts,
        rss_peak_kb=gen.rss_peak_kb,
        fds_peak=gen.fds_peak,
        error=error,
    )


@dataclass(frozen=True)
class Mark:
    """The server, the machine and the coordinator at one moment."""

    at: float
    server: procfs.ProcSample | None
    machine: tuple[float, float]  # busy, total CPU seconds of the machine
    own_cpu: float

    @classmethod
    def take(cls, server: Server) -> Mark:
        """Look now."""
        usage = resource.getrusage(resource.RUSAGE_SELF)
        return cls(
            at=time.monotonic(),
            server=procfs.sample_process(server.pid) if server.pid else None,
            machine=procfs.machine_cpu(),
            own_cpu=usage.ru_utime + usage.ru_stime,
        )


@dataclass(frozen=True)
class Interval:
    """Who used the CPU between two marks: what limited the figures measured in between."""

    wall: float
    server_cpu: float | None
    machine_busy: float | None  # share of all cores
    generator_cpu: float  # every generator process and the coordinator, in cores
    busiest: float  # the busiest generator process, in cores

    @classmethod
    def between(cls, m0: Mark, m1: Mark, worker_cpu: list[float]) -> Interval:
        """The interval from ``m0`` to ``m1``; ``worker_cpu`` is each worker's CPU in it."""
        wall = max(m1.at - m0.at, 1e-9)
        server_cpu = None
        if m0.server is not None and m1.server is not None:
            server_cpu = m1.server.cpu_s - m0.server.cpu_s
        whole = m1.machine[1] - m0.machine[1]
        busy = (m1.machine[0] - m0.machine[0]) / whole if whole > 0 else None
        gen = (sum(worker_cpu) + m1.own_cpu - m0.own_cpu) / wall
        return cls(wall, server_cpu, busy, gen, max(worker_cpu, default=0.0) / wall)

    def limit(self) -> str | None:
        """server, generator, cpu (the two together fill the machine) or pace (neither)."""
        if self.server_cpu is None:
            return None
        if self.server_cpu / self.wall >= SATURATED:
            return "server"
        if self.busiest >= SATURATED:
            return "generator"
        if self.machine_busy is not None and self.machine_busy >= SATURATED:
            return "cpu"
        return "pace"


def _drive(gen: _Generator, load: Load, facts: dict[str, Any]) -> None:
    """Take the workers through the phases, recording what is known in ``facts``."""
    setup = load.setup_timeout
    ups = gen.gather("up", time.monotonic() + 30)
    problems = [u["problem"] for u in ups if u["problem"]]
    if problems:
        raise BenchError(f"the generator {problems[0]}; raise the hard limit (ulimit -Hn)")
    before = Mark.take(gen.server)
    gen.tell("connect")
    connected = gen.gather("connected", before.at + setup + 30)
    facts["connected"] = sum(c["connected"] for c in connected)
    facts["connect_s"] = max(c["at"] for c in connected) - before.at
    failed: dict[str, int] = {}
    for c in connected:
        for name, count in c["failed"].items():
            failed[name] = failed.get(name, 0) + count
    facts["failed"] = failed
    facts["refusals"] = [r for c in connected for r in c["refusals"]]
    facts["silent"] = sum(c["silent"] for c in connected)
    gen.tell("probe")
    ready = gen.gather("ready", time.monotonic() + setup + 30)
    after = Mark.take(gen.server)
    facts["ready_clients"] = sum(r["clients"] for r in ready)
    if all(r["ready"] for r in ready):
        facts["ready_s"] = max(r["at"] for r in ready) - before.at
    if load.connect_only:
        worker_cpu = [r["cpu"] - u["cpu"] for r, u in zip(ready, ups, strict=True)]
        facts["interval"] = Interval.between(before, after, worker_cpu)
        until = time.monotonic() + load.hold
        gen.tell("go", {"hold": until})
        facts["results"] = gen.gather("result", until + 30)
        _server_after(gen, facts)
        return
    if facts["connected"] < load.clients:
        raise RunFailed(
            f"only {facts['connected']} of {load.clients} clients connected{_why(facts)}"
        )
    if "ready_s" not in facts:
        raise RunFailed(
            f"only {facts['ready_clients']} of {load.clients} clients were served a probe line "
            f"within {setup:g} s"
        )
    _load(gen, load, facts)


def _why(facts: dict[str, Any]) -> str:
    """' (ECONNREFUSED x3, ...)' from the connect failures and refusals, or ''."""
    parts = [f"{name} x{count}" for name, count in sorted(facts.get("failed", {}).items())]
    parts += facts.get("refusals", [])[:2]
    return f" ({', '.join(parts)})" if parts else ""


def _load(gen: _Generator, load: Load, facts: dict[str, Any]) -> None:
    """Run the load; mark the server and the machine at the edges of the measured interval."""
    t0 = time.monotonic() + START_MARGIN
    m0 = t0 + load.warmup
    m1 = m0 + load.duration
    plan = {"hold": None, "t0": t0, "m0": m0, "m1": m1, "drain_until": m1 + load.drain}
    gen.tell("go", plan)
    marks: list[Mark] = []

    def tick() -> None:
        if len(marks) < 2 and time.monotonic() >= (m0, m1)[len(marks)]:
            marks.append(Mark.take(gen.server))

    results = gen.gather("result", m1 + load.drain + 30, tick, (m0, m1))
    facts["results"] = results
    if len(marks) == 2:
        facts["interval"] = Interval.between(marks[0], marks[1], [r["cpu_s"] for r in results])
    _server_after(gen, facts)


def _server_after(gen: _Generator, facts: dict[str, Any]) -> None:
    """The server's figures at the end of the run, its clients still connected."""
    pid = gen.server.pid
    if pid is not None:
        facts["server_end"] = procfs.sample_process(pid)
        facts["server_fd_limit"] = procfs.fd_limit(pid)


def _notes(load: Load, facts: dict[str, Any], closed: dict[str, int]) -> list[str]:
    """Sentences about anything unusual in the run."""
    results: list[dict[str, Any]] = facts.get("results", [])
    notes = []
    if closed:
        notes.append("closed by the server: " + ", ".join(f"{k} x{v}" for k, v in closed.items()))
    if facts.get("silent"):
        notes.append(f"{facts['silent']} clients heard nothing from the server on connecting")
    if facts.get("failed"):
        notes.append("connect failures" + _why({"failed": facts["failed"]}))
    if results and not all(r.get("drained", True) for r in results):
        notes.append(f"not every line had arrived {load.drain:g} s after the load stopped")
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


def _result(
    *,
    server: Server,
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
    span: Interval | None = facts.get("interval")
    wall = span.wall if span is not None else 0.0
    server_cpu = span.server_cpu if span is not None else None
    loaded = not load.connect_only and span is not None
    end: procfs.ProcSample | None = facts.get("server_end")
    expected = total("expected")
    return RunResult(
        server=server.name,
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
        procs=load.procs,
        connect_window=connect_window,
        latency_clock="kernel" if load.kernel_time else "read",
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
        limit=span.limit() if span is not None else None,
        notes=_notes(load, facts, closed),
    )


def _round(value: float | None, digits: int = 4) -> float | None:
    """``value`` rounded for reading, None kept."""
    return None if value is None else round(value, digits)
