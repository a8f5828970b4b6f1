"""The command line: parse, run the series of runs against fresh servers, render, exit."""

from __future__ import annotations

import argparse
import json
import signal
import sys
import tempfile
from collections.abc import Callable
from dataclasses import asdict
from enum import IntEnum
from functools import partial
from pathlib import Path
from typing import Any

from . import procfs
from .payload import KINDS, MAX_LINE_BYTES, MAX_SENDERS, MAX_SEQ, MIN_LINE_BYTES
from .report import render_runs, render_summary
from .results import SHAPES, Load, RunResult, Spread, pair_ratios, ratios, summarise
from .runner import run_once
from .servers import (
    NCATS,
    PROJECT_ROOT,
    BenchError,
    Server,
    build_nodelay_shim,
    external_server,
    find_ncat,
    make_certificate,
    start_lanchat,
    start_ncat,
    start_relays,
)

# --vs: the servers lanchat (as the README starts it) is compared with in one invocation.
# ncat-nodelay: ncat with TCP_NODELAY on its connections (nodelay.c), the same C relay sending
# each line when it has it, as lanchat does (docs/performance.md, "What ncat does...").
VERSUS = {
    "ncat": ["ncat"],
    "ncat-nodelay": ["ncat-nodelay"],
    "quiet": ["lanchat-quiet"],
    "ncat+quiet": ["ncat", "lanchat-quiet"],
    "ncat+ncat-nodelay+quiet": ["ncat", "ncat-nodelay", "lanchat-quiet"],
}
MAX_CLIENTS = 60_000  # sender ids have 4 hex digits, and ports run out near 64k anyway
AUTO_PROCS_FROM = 50  # clients from which (with K > 1) the default is a process per core
MAX_AUTO_PROCS = 4  # ... up to this many: the server needs cores too

EPILOG = """\
examples:
  scripts/bench --vs ncat --clients 100 --senders 10 --window 8
  scripts/bench --vs ncat --clients 1000 --senders 1 --window 1 --runs 5
  scripts/bench --server ncat --mode rate --rate 50 --clients 200 --json
  scripts/bench --server lanchat --kind lanchat --mode flood --duration 3
  scripts/bench --server lanchat --connect-only --clients 5000 --hold 5
  scripts/bench --address 127.0.0.1:7420 --pid 1234 --clients 50
  scripts/bench --server lanchat --backplane --relays 4 --clients 100 --senders 10
  scripts/bench --vs ncat --tls --connect-only --clients 1000   # TLS handshakes
  scripts/bench --vs ncat-nodelay --mode rate --rate 100 --clients 100 --senders 10

"window" mode: a sender keeps at most W lines outstanding; a line is outstanding until every
other client (whichever generator process holds it) has received it, intact or damaged.

generator shapes (--shape), the same load made differently:
  split     client i in process i mod P (--procs; default one per core, at most 4, from 50
            clients with several senders, else 1); in rate mode each process's senders take
            turns, evenly spaced, and the processes' turns interleave
  per-core  as split, with exactly one process per core
  pooled    the K senders in one process and every other client in a second one; in rate mode
            each sender starts at a random phase of its period (--seed; run k of each server
            gets the same phases)
"""


class Exit(IntEnum):
    """Exit codes."""

    OK = 0
    ERROR = 1  # the benchmark could not run (server would not start, ncat missing, ...)
    USAGE = 2
    RUN_FAILED = 3  # at least one run could not be completed; the table says why
    INTERRUPTED = 130


def _positive(kind: Callable[[str], Any]) -> Callable[[str], Any]:
    """An argparse type for values of ``kind`` above zero."""

    def parse(text: str) -> Any:
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
        if value <= 0:
            raise argparse.ArgumentTypeError(f"must be above 0: {text!r}")
        return value

    return parse


def build_parser() -> argparse.ArgumentParser:
    """The argument parser."""
    p = argparse.ArgumentParser(
        prog="scripts/bench",
        description="Fan-out load generator and benchmark for chat relays: lanchat vs ncat --chat.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    target = p.add_mutually_exclusive_group()
    target.add_argument(
        "--server", choices=("lanchat", *NCATS), help="run against one fresh server"
    )
    target.add_argument(
        "--vs",
        choices=tuple(VERSUS),
        help="alternate fresh lanchat runs with ncat's, with ncat's with TCP_NODELAY set "
        "(ncat-nodelay: a C compiler builds its shim), with lanchat --quiet's (its log off), "
        "or with several",
    )
    target.add_argument("--address", metavar="HOST:PORT", help="an already running relay")
    p.add_argument("--pid", type=int, help="with --address: its process, for /proc figures")
    p.add_argument("--kind", choices=KINDS, default="raw", help="client kind (default raw)")
    p.add_argument("--clients", "-n", type=_positive(int), default=100, help="N (default 100)")
    p.add_argument("--senders", "-k", type=_positive(int), help="K (default N/10, at least 1)")
    p.add_argument("--mode", choices=("window", "rate", "flood"), default="window")
    p.add_argument("--window", "-w", type=_positive(int), default=8, help="W (default 8)")
    p.add_argument("--rate", type=_positive(float), default=10.0, help="lines/s per sender")
    p.add_argument("--max-lines", type=_positive(int), default=1_000_000, help="per sender cap")
    p.add_argument("--duration", type=_positive(float), default=5.0, help="measured seconds")
    p.add_argument("--warmup", type=float, default=1.0, help="seconds of load before measuring")
    p.add_argument(
        "--drain", type=_positive(float), default=5.0, help="seconds to wait for stragglers"
    )
    p.add_argument("--line-bytes", type=int, default=64, help="bytes per line, newline included")
    p.add_argument("--connect-only", action="store_true", help="measure connect and hold only")
    p.add_argument("--hold", type=_positive(float), default=3.0, help="connect-only: seconds held")
    p.add_argument(
        "--runs", type=_positive(int), help="runs per server (default 3 with --vs, else 1)"
    )
    p.add_argument(
        "--procs",
        type=_positive(int),
        help="generator processes of the split shape (default: 1 per core if K > 1)",
    )
    p.add_argument(
        "--shape",
        choices=SHAPES,
        default="split",
        help="how the clients are spread over generator processes (below; default split)",
    )
    p.add_argument(
        "--seed", type=int, default=0, help="pooled shape: the seed of the senders' phases"
    )
    p.add_argument(
        "--connect-window",
        type=int,
        help="connections opened but not yet served at once (0: all at once; default 0, ncat 8)",
    )
    p.add_argument(
        "--latency-clock",
        choices=("kernel", "read"),
        default="kernel",
        help="arrival time: when the kernel queued the data (default), or when it was read",
    )
    p.add_argument("--setup-timeout", type=_positive(float), default=30.0, help="connect/probe s")
    p.add_argument(
        "--wait-quiet",
        type=float,
        default=0.0,
        metavar="S",
        help="before each run wait up to S s for the machine to be idle (shared machines)",
    )
    p.add_argument("--ncat", default="ncat", help="the ncat program (default: ncat on PATH)")
    p.add_argument(
        "--lanchat-option",
        action="append",
        default=[],
        metavar="OPT",
        help="one more option for `lanchat serve` (repeatable), e.g. --lanchat-option=--all-cores",
    )
    p.add_argument(
        "--backplane",
        action="store_true",
        help="lanchat on a backplane: a fresh redis-server and --relays relays of one room",
    )
    p.add_argument(
        "--relays",
        type=_positive(int),
        default=1,
        help="with --backplane: relays of the room, clients spread over them (default 1)",
    )
    p.add_argument(
        "--lanchat-tree",
        type=Path,
        default=PROJECT_ROOT,
        metavar="DIR",
        help="run the lanchat of this checkout (a before/after with the same generator)",
    )
    p.add_argument(
        "--tls",
        action="store_true",
        help="clients connect over TLS: lanchat serve --tls, ncat --chat --ssl with a "
        "certificate from lanchat's generator (arrival times are then read times)",
    )
    p.add_argument("--json", action="store_true", help="print JSON only on stdout")
    return p


def make_load(args: argparse.Namespace, parser: argparse.ArgumentParser) -> Load:
    """Check the arguments together and build the load."""
    n = args.clients
    k = args.senders if args.senders is not None else max(1, n // 10)
    if not 2 <= n <= MAX_CLIENTS:
        parser.error(f"--clients must be 2..{MAX_CLIENTS}")
    if k > min(n, MAX_SENDERS):
        parser.error("--senders cannot exceed --clients")
    if not MIN_LINE_BYTES <= args.line_bytes <= MAX_LINE_BYTES:
        parser.error(f"--line-bytes must be {MIN_LINE_BYTES}..{MAX_LINE_BYTES}")
    if args.max_lines > MAX_SEQ + 1:
        parser.error(f"--max-lines cannot exceed {MAX_SEQ + 1}")
    if args.connect_window is not None and args.connect_window < 0:
        parser.error("--connect-window cannot be negative")
    if not (args.lanchat_tree / "lanchat" / "__main__.py").is_file():
        parser.error(f"--lanchat-tree {args.lanchat_tree}: no lanchat checkout there")
    if args.wait_quiet < 0:
        parser.error("--wait-quiet cannot be negative")
    if args.warmup < 0:
        parser.error("--warmup cannot be negative")
    if args.pid is not None and args.address is None:
        parser.error("--pid goes with --address")
    if args.kind != "raw" and args.server in NCATS:
        parser.error(f"ncat speaks raw lines only: use --kind raw with --server {args.server}")
    if args.relays > 1 and not args.backplane:
        parser.error("--relays goes with --backplane")
    if args.backplane and (args.server in NCATS or args.address):
        parser.error("--backplane starts lanchat relays: not with an ncat --server or --address")
    if args.procs is not None and args.shape != "split":
        parser.error(f"--procs goes with --shape split (--shape {args.shape} decides it)")
    if args.shape == "pooled" and k >= n:
        parser.error("--shape pooled needs clients that do not send (--senders below --clients)")
    if args.shape == "per-core":
        procs = procfs.cpu_count()
    elif args.shape == "pooled":
        procs = 2  # the senders, and everyone else
    else:
        # One line in flight (K = 1) gains nothing from more processes, which would only take
        # cores from the server; many senders need them (docs/benchmarking.md).
        spread = n >= AUTO_PROCS_FROM and k > 1
        procs = args.procs or (min(MAX_AUTO_PROCS, procfs.cpu_count()) if spread else 1)
    return Load(
        kind=args.kind,
        clients=n,
        senders=k,
        mode=args.mode,
        window=args.window,
        rate=args.rate,
        max_lines=args.max_lines,
        line_bytes=args.line_bytes,
        warmup=args.warmup,
        duration=args.duration,
        drain=args.drain,
        connect_only=args.connect_only,
        hold=args.hold,
        procs=min(procs, n),
        setup_timeout=args.setup_timeout,
        connect_window=args.connect_window,
        # A TLS socket has no recvmsg(): the kernel's stamp would be the ciphertext's anyway.
        kernel_time=args.latency_clock == "kernel" and not args.tls,
        shape=args.shape,
        tls=args.tls,
    )


def plan_runs(args: argparse.Namespace) -> list[str]:
    """The order of the runs: with --vs, the servers alternate as ABBA... (ABCCBA... with
    three) to cancel drift."""
    if args.vs:
        runs = args.runs or 3
        servers = ["lanchat", *VERSUS[args.vs]]
        order: list[str] = []
        for i in range(runs):
            order += servers if i % 2 == 0 else servers[::-1]
        return order
    name = "external" if args.address else (args.server or "lanchat")
    return [name] * (args.runs or 1)


def _start(name: str, args: argparse.Namespace, tls: Path | None, shim: Path | None) -> Server:
    """A fresh server called ``name`` (or the external one); with ``tls`` (a directory for
    the keys), one that takes TLS; ``shim``: ncat-nodelay's (build_nodelay_shim)."""
    if name in NCATS:
        preload = shim if name == "ncat-nodelay" else None
        return start_ncat(args.ncat, make_certificate(tls / name) if tls else None, preload)
    if name in ("lanchat", "lanchat-quiet"):
        options = [*args.lanchat_option, *(["--quiet"] if name == "lanchat-quiet" else [])]
        config = tls / "lanchat" if tls else None
        start = partial(start_relays, args.relays) if args.backplane else start_lanchat
        server = start(options, args.lanchat_tree, config=config, tls=bool(tls))
        server.name = name
        return server
    return external_server(args.address, args.pid)


def progress(text: str) -> None:
    """A progress line on stderr (stdout is for the results)."""
    print(text, file=sys.stderr, flush=True)


def execute(args: argparse.Namespace, load: Load) -> list[RunResult]:
    """Every planned run, each against a fresh server that is stopped afterwards."""
    results: list[RunResult] = []
    order = plan_runs(args)
    counts: dict[str, int] = {}
    # --tls: the servers' keys live here for the series, never in the user's config directory;
    # so does ncat-nodelay's shim.
    with tempfile.TemporaryDirectory(prefix="bench-") as scratch:
        # Before anything starts: a missing ncat or compiler is a one-line error.
        if any(name in NCATS for name in order):
            find_ncat(args.ncat)
        shim = build_nodelay_shim(Path(scratch)) if "ncat-nodelay" in order else None
        keys = Path(scratch) / "tls"
        for step, name in enumerate(order, 1):
            counts[name] = counts.get(name, 0) + 1
            kind = "raw" if name in NCATS else load.kind
            progress(f"[{step}/{len(order)}] {name} #{counts[name]}: {describe(load, kind)}")
            if args.wait_quiet > 0 and procfs.wait_quiet(args.wait_quiet) is None:
                progress(
                    f"    the machine was not idle within {args.wait_quiet:g} s; running anyway"
                )
            server = _start(name, args, keys if load.tls else None, shim)
            try:
                result = run_once(server, load, kind, counts[name], args.seed)
            finally:
                server.stop()
            if server.name.startswith("lanchat") and server.exit_code not in (0, None):
                result.notes.append(f"lanchat exited with code {server.exit_code} on SIGTERM")
            if server.log_skipped:
                result.notes.append(f"lanchat's log skipped {server.log_skipped} lines (behind)")
            results.append(result)
            if not result.ok:
                progress(f"    failed: {result.error}")
    return results


def describe(load: Load, kind: str) -> str:
    """The load in one line."""
    kind = f"{kind} TLS" if load.tls else kind
    if load.connect_only:
        return f"{load.clients} {kind} clients, connect and hold {load.hold:g} s"
    pace = {"window": f"window {load.window}", "rate": f"{load.rate:g} lines/s each"}
    return (
        f"{load.clients} {kind} clients, {load.senders} senders, "
        f"{pace.get(load.mode, 'flood')}, {load.line_bytes}-byte lines, "
        f"{load.warmup:g}+{load.duration:g} s, {load.procs} generator process(es) ({load.shape})"
    )


Summaries = dict[str, dict[str, Spread]]  # per server, per figure


def compare(
    results: list[RunResult],
) -> tuple[Summaries, dict[str, float | None] | None, Summaries, list[str]]:
    """Per server the summary of its runs; with ncat, lanchat's medians divided by ncat's; per
    server compared with lanchat, the spread of the run-by-run ratios; and why some are not."""
    servers = dict.fromkeys(r.server for r in results)  # in order of appearance
    summaries = {s: summarise([r for r in results if r.server == s]) for s in servers}
    ours = [r for r in results if r.server == "lanchat"]
    pairs = {
        s: pair_ratios(ours, [r for r in results if r.server == s])
        for s in servers
        if s != "lanchat" and ours
    }
    # Different connect procedures (ncat's connects are paced): those times are not divided.
    windows = {r.server: r.connect_window for r in results}
    notes: list[str] = []
    for other, spreads in pairs.items():
        if windows[other] != windows["lanchat"]:
            for key in ("connect_s", "ready_s"):
                spreads.pop(key, None)
            notes.append(
                f"connect and ready times are not compared: {_pacing(windows['lanchat'])} for "
                f"lanchat, {_pacing(windows[other])} for {other} (--connect-window)"
            )
    if "lanchat" not in summaries or "ncat" not in summaries:
        return summaries, None, pairs, notes
    compared = ratios(summaries["lanchat"], summaries["ncat"])
    if windows["lanchat"] != windows["ncat"]:
        for key in ("connect_s", "ready_s"):
            if key in compared:
                compared[key] = None
    return summaries, compared, pairs, notes


def _pacing(window: int) -> str:
    """How clients were connected, in words."""
    return "all at once" if window == 0 else f"{window} at a time"


def _interrupt(signum: int, frame: object) -> None:
    """Turn SIGTERM into the KeyboardInterrupt that stops every process we started."""
    raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark; the exit code says whether every run completed."""
    parser = build_parser()
    args = parser.parse_args(argv)
    load = make_load(args, parser)
    signal.signal(signal.SIGTERM, _interrupt)  # stopped from outside: clean up as on Ctrl-C
    try:
        results = execute(args, load)
    except BenchError as exc:
        print(f"bench: error: {exc}", file=sys.stderr)
        return Exit.ERROR
    except KeyboardInterrupt:
        print("bench: interrupted", file=sys.stderr)
        return Exit.INTERRUPTED
    summaries, compared, pairs, footnotes = compare(results)
    if args.json:
        out = {
            "config": {**vars(args), "load": asdict(load)},
            "runs": [r.to_dict() for r in results],
            "summary": {s: {k: v.to_dict() for k, v in f.items()} for s, f in summaries.items()},
            "ratios": compared,
            "pair_ratios": {s: {k: v.to_dict() for k, v in f.items()} for s, f in pairs.items()},
        }
        print(json.dumps(out, indent=2, default=str))  # (a Path: its text)
    else:
        print(render_runs(results))
        print()
        print(render_summary(summaries, pairs, "connect" if load.connect_only else load.mode))
        for note in footnotes:
            print(f"* {note}")
    return Exit.OK if all(r.ok for r in results) else Exit.RUN_FAILED
