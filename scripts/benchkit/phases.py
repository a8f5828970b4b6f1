"""The script a generator process follows: connect, probe, then load or hold, report, close.
The coordinator (``runner``) sends the cue for each step through a pipe."""

from __future__ import annotations

import contextlib
import resource
import select
import signal
import time
from multiprocessing.connection import Connection
from typing import Any

from .shared import Shared
from .worker import Worker, WorkerConfig

FD_MARGIN = 64  # descriptors beyond the sockets (pipes, epoll, stdio)


def raise_fd_limit(needed: int) -> str | None:
    """Raise this process's descriptor limit to ``needed``; a sentence if that is impossible."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft >= needed:
        return None
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (needed, max(hard, needed)))
    except (ValueError, OSError):
        return f"needs {needed} open files but the limit is {soft} (hard {hard})"
    return None


def _cpu_seconds() -> float:
    """CPU time (user + system) this process has used."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def run_worker(
    cfg: WorkerConfig, conn: Connection, shared: Shared, wake_fds: list[tuple[int, int]]
) -> None:
    """The body of a worker process: follow the coordinator's phases, then report."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the coordinator's to handle
    signal.signal(signal.SIGTERM, signal.SIG_DFL)  # the coordinator's handler is not ours
    worker = Worker(cfg, conn, shared, wake_fds)
    try:
        _phases(worker, cfg, conn)
    except SystemExit:
        raise
    except Exception as exc:  # report any failure in words; the coordinator prints it once
        with contextlib.suppress(OSError):
            conn.send(("error", f"worker {cfg.index}: {type(exc).__name__}: {exc}"))
        raise SystemExit(1) from None
    finally:
        worker.close_all()


def _phases(worker: Worker, cfg: WorkerConfig, conn: Connection) -> None:
    """Connect, probe, then run or hold, report, and wait to be told to close."""
    problem = raise_fd_limit(len(cfg.load.clients_of(cfg.index)) + FD_MARGIN)
    worker.ep.register(conn.fileno(), select.EPOLLIN)
    worker.ep.register(worker.wake_read, select.EPOLLIN)
    conn.send(("up", {"problem": problem, "cpu": _cpu_seconds()}))
    if problem:
        return
    worker.await_command("connect", 60)
    worker.connect_all()
    conn.send(
        (
            "connected",
            {
                "connected": sum(1 for c in worker.clients if c.connected and not c.closed),
                "failed": dict(worker.failed),
                "closed": dict(worker.closed),
                "refusals": list(worker.refusals),
                "silent": worker.silent,
                "at": time.monotonic(),
            },
        )
    )
    worker.await_command("probe", cfg.load.setup_timeout + 60)
    worker.probing = cfg.index == 0
    deadline = time.monotonic() + cfg.load.setup_timeout
    ready = worker.loop(worker.local_ready, deadline)
    conn.send(
        (
            "ready",
            {
                "ready": ready,
                "at": time.monotonic(),
                "cpu": _cpu_seconds(),
                "clients": sum(1 for c in worker.clients if c.rcv.saw_probe or c.index == 0),
            },
        )
    )
    worker.loop(lambda: worker.command("go"), deadline + 60)
    worker.probing = False
    _, plan = worker.take("go")
    result = _hold(worker, plan["hold"]) if plan["hold"] is not None else _load(worker, plan)
    result.update(
        connected=sum(1 for c in worker.clients if c.connected),
        failed=dict(worker.failed),
        closed=dict(worker.closed),
        still_open=sum(1 for c in worker.clients if not c.closed),
    )
    conn.send(("result", result))
    worker.await_command("close", 120)


def _hold(worker: Worker, until: float) -> dict[str, Any]:
    """Connect-only: keep every connection open, reading, until ``until``."""
    worker.loop(lambda: False, until)
    return {}


def _load(worker: Worker, plan: dict[str, Any]) -> dict[str, Any]:
    """Send from ``t0``, measure from ``m0`` to ``m1``, then drain until ``drain_until``."""
    t0, m0, m1, drain_until = plan["t0"], plan["m0"], plan["m1"], plan["drain_until"]
    acct = worker.acct
    worker.prepare()
    worker.loop(lambda: False, t0)
    worker.start_sending(t0)
    worker.loop(lambda: False, m0, timer=m0)
    acct.measuring = True
    cpu0 = _cpu_seconds()
    lines0 = sum(c.seq for c in worker.senders)
    worker.loop(lambda: False, m1, timer=m1)
    acct.measuring = False
    cpu1 = _cpu_seconds()
    lines1 = sum(c.seq for c in worker.senders)
    worker.stop_sending()
    drained = worker.loop(
        lambda: worker.shared.all_stopped() and acct.seen >= worker.expected_local(),
        drain_until,
    )
    sent = {c.index: c.seq for c in worker.senders}
    return {
        "sent": sent,
        "expected": worker.expected_local(),
        "seen": acct.seen,
        "delivered": acct.delivered,
        "measured": acct.measured,
        "measured_lines": lines1 - lines0,
        "corrupted": acct.corrupted,
        "corrupted_attributed": acct.corrupted_attributed,
        "duplicates": acct.duplicates,
        "reordered": acct.reordered,
        "echoes": acct.echoes,
        "garbage_bytes": acct.garbage_bytes,
        "latency_us": acct.latency_us,
        "max_latency_ns": acct.max_latency_ns,
        "cpu_s": cpu1 - cpu0,
        "drained": drained,
        "capped": sum(1 for c in worker.senders if c.seq >= worker.cfg.load.max_lines),
        "rate_lag_ms": worker.rate_lag_ns / 1e6,
    }
