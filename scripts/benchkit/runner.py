"""One measured run: start the generator processes, take them through connect, probe and load (or
hold), sample the server from /proc meanwhile, and turn what they report into a RunResult."""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import random
import time
from collections.abc import Callable
from multiprocessing.connection import Connection, wait
from multiprocessing.process import BaseProcess
from typing import Any

from . import procfs
from .phases import run_worker
from .procfs import Interval, Mark
from .results import Load, RunResult, make_result, why
from .servers import NCATS, BenchError, Server
from .shared import Shared
from .worker import WorkerConfig

SAMPLE_EVERY = 0.1  # seconds between RSS samples of the server
START_MARGIN = 0.1  # seconds between "go" and the first line, so every worker is waiting
JOIN_TIMEOUT = 5.0  # seconds for a generator process to exit once told to
NCAT_CONNECT_WINDOW = 8  # below ncat's listen backlog of 10


class RunFailed(Exception):
    """The run could not be completed; the message says why (it becomes the result's error)."""


class _Generator:
    """The generator processes of one run and the pipes that drive them."""

    def __init__(
        self,
        server: Server,
        load: Load,
        kind: str,
        connect_window: int,
        phases: tuple[float, ...] | None,
    ) -> None:
        """Fork ``load.procs`` workers aimed at ``server``, speaking ``kind``; ``phases``: each
        sender's first line, as a share of the rate's period (None: evenly spaced)."""
        self.server = server
        self.shared = Shared(load.senders, load.procs)
        if load.mode == "window":
            self.shared.start_windows([load.clients_of(w) for w in range(load.procs)])
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
                host=server.host,
                port=server.port,
                ports=server.ports(),
                kind=kind,
                connect_window=connect_window,
                load=load,
                phases=phases,
                tls=load.tls,
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
            sample = procfs.sample_processes(self.server.pids())
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
    return NCAT_CONNECT_WINDOW if server in NCATS else 0


def sender_phases(load: Load, seed: int, run: int) -> tuple[float, ...] | None:
    """Pooled shape: each sender's phase in the rate's period, at random, the same for run
    ``run`` of every server (so that the runs compared had the same load); else None."""
    if load.shape != "pooled":
        return None
    pick = random.Random(f"{seed}:{run}")
    return tuple(pick.random() for _ in range(load.senders))


def run_once(server: Server, load: Load, kind: str, run: int, seed: int = 0) -> RunResult:
    """One run of ``load`` against ``server`` with ``kind`` clients; failures become results."""
    window = connect_window_for(server.name, load)
    gen = _Generator(server, load, kind, window, sender_phases(load, seed, run))
    facts: dict[str, Any] = {}
    try:
        _drive(gen, load, facts)
        error = None
    except RunFailed as exc:
        error = str(exc)
    finally:
        gen.close()
    return make_result(
        server=server.name,
        load=load,
        kind=kind,
        run=run,
        connect_window=window,
        facts=facts,
        rss_peak_kb=gen.rss_peak_kb,
        fds_peak=gen.fds_peak,
        error=error,
    )


def _drive(gen: _Generator, load: Load, facts: dict[str, Any]) -> None:
    """Take the workers through the phases, recording what is known in ``facts``."""
    setup = load.setup_timeout
    ups = gen.gather("up", time.monotonic() + 30)
    problems = [u["problem"] for u in ups if u["problem"]]
    if problems:
        raise BenchError(f"the generator {problems[0]}; raise the hard limit (ulimit -Hn)")
    before = Mark.take(gen.server.pids())
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
    after = Mark.take(gen.server.pids())
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
            f"only {facts['connected']} of {load.clients} clients connected{why(facts)}"
        )
    if "ready_s" not in facts:
        raise RunFailed(
            f"only {facts['ready_clients']} of {load.clients} clients were served a probe line "
            f"within {setup:g} s"
        )
    _load(gen, load, facts)


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
            marks.append(Mark.take(gen.server.pids()))

    results = gen.gather("result", m1 + load.drain + 30, tick, (m0, m1))
    facts["results"] = results
    if len(marks) == 2:
        facts["interval"] = Interval.between(marks[0], marks[1], [r["cpu_s"] for r in results])
    _server_after(gen, facts)


def _server_after(gen: _Generator, facts: dict[str, Any]) -> None:
    """The server's figures at the end of the run, its clients still connected."""
    pid = gen.server.pid
    if pid is not None:
        facts["server_end"] = procfs.sample_processes(gen.server.pids())
        facts["server_fd_limit"] = procfs.fd_limit(pid)
