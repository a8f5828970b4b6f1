"""The soak's event loop, its reports per interval, the verdict and the command line.

One thread drives every client through poll(): no loop runs unbounded (each round reads at most
RECV_ROUNDS times per peer, queues at most SEND_BYTES per hostile peer, and the whole run and
its final drain each have a deadline).
"""

from __future__ import annotations

import argparse
import random
import select
import sys
import time
from collections.abc import Iterable

from benchkit.procfs import sample_process
from benchkit.servers import BenchError, Server, external_server, start_lanchat

from soakkit.clients import Good, Hostile, Ledger, Peer

ROUND_MS = 10  # poll() wait per round
DRAIN_SECONDS = 30.0  # after the run: time for every well-behaved client to catch up
# The relay the soak starts: flow control as shipped (bench turns it off), and a history long
# enough that a client resuming after a short absence gets everything, not a gap.
SERVE_OPTIONS = ("--max-rate", "200", "--history", "1000")
# The nuisances, and how often each kind's slot opens a new connection (seconds).
HOSTILE_EVERY = {"churn": 0.5, "garbage": 0.5, "flood": 1.0, "slow": 1.0}
HOSTILE_LIFE = {"churn": 2.0, "garbage": 2.0, "flood": 30.0, "slow": 20.0}


def hostile_slots(clients: int) -> dict[str, int]:
    """How many of `clients` are nuisances of each kind; the rest are well-behaved."""
    return {
        "flood": max(1, clients // 100),
        "slow": max(1, clients // 25),
        "churn": max(1, clients // 14),
        "garbage": max(1, clients // 14),
    }


class Soak:
    """One run: the clients, the poll set and the figures."""

    def __init__(self, args: argparse.Namespace, address: tuple[str, int]) -> None:
        self.args = args
        self.address = address
        self.rng = random.Random(args.seed)
        self.ledger = Ledger()
        self.poll = select.poll()
        self.fds: dict[int, Peer] = {}
        slots = hostile_slots(args.clients)
        good = args.clients - sum(slots.values())
        if good < 2:
            raise BenchError(f"--clients {args.clients} leaves fewer than 2 well-behaved ones")
        self.goods: list[Good] = []
        for i in range(good):
            self.goods.append(Good(i, address, self.ledger, args.rate, self.rng))
            self._track(self.goods[-1])
        self.reconnect_at = {g: self._next_reconnect() for g in self.goods}
        self.slots: list[tuple[str, list[Hostile | None], list[float]]] = [
            (kind, [None] * count, [0.0] * count) for kind, count in slots.items()
        ]
        self.hostile_opened = 0

    # --- the poll set --------------------------------------------------------------------

    def _track(self, peer: Peer) -> None:
        if not peer.closed and peer.reads:
            fd = peer.fileno()
            self.fds[fd] = peer
            self.poll.register(fd, select.POLLIN)

    def _sync(self, peer: Peer, fd: int) -> None:
        """After a callback: the peer may have closed, or reconnected on a new socket."""
        if peer.closed or peer.fileno() != fd:
            if self.fds.get(fd) is peer:
                del self.fds[fd]
                self.poll.unregister(fd)
            self._track(peer)

    # --- one round -----------------------------------------------------------------------

    def round(self, now: float, sending: bool) -> None:
        for fd, _ in self.poll.poll(ROUND_MS):
            peer = self.fds.get(fd)
            if peer is None:
                continue
            peer.readable()
            self._sync(peer, fd)
        for good in self.goods:
            fd = good.fileno() if not good.closed else -1
            good.tick(now, sending)
            if sending and now >= self.reconnect_at[good] and good.outstanding == 0:
                self.reconnect_at[good] = self._next_reconnect()
                try:
                    good.reconnect()
                except OSError:
                    good.closed = True
            good.flush()
            self._sync(good, fd)
        if sending:
            self._nuisances(now)

    def _nuisances(self, now: float) -> None:
        for kind, peers, next_open in self.slots:
            for i, peer in enumerate(peers):
                if peer is not None:
                    fd = peer.fileno() if not peer.closed else -1
                    if not peer.closed and now >= peer.until:
                        peer.close()
                    elif not peer.closed:
                        peer.tick(now)
                        peer.flush()
                    self._sync(peer, fd)
                    if not peer.closed:
                        continue
                    peers[i] = None
                    next_open[i] = now + self.rng.random() * HOSTILE_EVERY[kind]
                if now >= next_open[i]:
                    try:
                        fresh = Hostile(kind, self.address, now + HOSTILE_LIFE[kind], self.rng)
                    except OSError:
                        next_open[i] = now + HOSTILE_EVERY[kind]
                        continue
                    peers[i] = fresh
                    self.hostile_opened += 1
                    self._track(fresh)

    def _next_reconnect(self) -> float:
        every = self.args.reconnect_every
        return time.monotonic() + self.rng.uniform(0.5, 1.5) * every if every > 0 else 1e18

    # --- the end ---------------------------------------------------------------------------

    def close_nuisances(self) -> None:
        for _, peers, _ in self.slots:
            for i, peer in enumerate(peers):
                if peer is not None:
                    fd = peer.fileno() if not peer.closed else -1
                    peer.close()
                    self._sync(peer, fd)
                    peers[i] = None

    def drain(self, deadline: float) -> bool:
        """Ask every well-behaved client for a pong (it comes after everything sent before
        it), and wait for all of them and for every echo; False if the deadline came first."""
        token = f"drain-{time.monotonic_ns()}"
        for good in self.goods:
            self._ask(good, token)
        while time.monotonic() < deadline:
            waiting = [g for g in self.goods if not g.closed and (g.pong != token or g.outstanding)]
            if not waiting:
                return True
            for good in waiting:
                if good.welcomed and good.pong != token and not good.out:
                    self._ask(good, token)  # again: it may have reconnected meanwhile
            self.round(time.monotonic(), sending=False)
        return False

    def _ask(self, good: Good, token: str) -> None:
        if not good.closed:
            fd = good.fileno()
            good.send(f'{{"type":"ping","token":"{token}"}}\n'.encode())
            self._sync(good, fd)

    def verdict(self) -> tuple[int, int, int]:
        """(lost, duplicated, never confirmed) among the well-behaved clients."""
        seqs = sorted(set(self.ledger.echoed.values()))
        lost = duplicated = 0
        for good in self.goods:
            first = good.join_seq if good.join_seq is not None else 0
            seen = good.seen
            for seq in seqs:
                if seq <= first:
                    continue
                count = seen[seq] if seq < len(seen) else 0
                if count == 0:
                    lost += 1
                elif count > 1:
                    duplicated += count - 1
        unconfirmed = sum(g.outstanding for g in self.goods)
        return lost, duplicated, unconfirmed


def p99_ms(samples_ns: list[int]) -> str:
    if not samples_ns:
        return "-"
    ordered = sorted(samples_ns)
    return f"{ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))] / 1e6:.1f} ms"


def report(elapsed: float, interval: float, soak: Soak, server: Server) -> str:
    ledger = soak.ledger
    line = (
        f"{int(elapsed // 60):3d}:{int(elapsed % 60):02d}  delivered {ledger.deliveries:,} "
        f"({ledger.deliveries / max(interval, 1e-9):,.0f}/s)  p99 {p99_ms(ledger.latencies_ns)}"
    )
    sample = sample_process(server.pid) if server.pid is not None else None
    if sample is not None:
        line += (
            f"  relay: {sample.threads} threads, {sample.fds} fds, {sample.rss_kb / 1024:.1f} MB"
        )
    line += (
        f"  (reconnects {ledger.reconnects}, dropped {ledger.dropped}, "
        f"nuisance connections {soak.hostile_opened})"
    )
    ledger.deliveries = 0
    ledger.latencies_ns = []
    return line


def parse_args(argv: Iterable[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="scripts/soak",
        description="Many clients for a long time against one lanchat relay: well-behaved "
        "lanchat clients (chatting, reconnecting with resume) among churn, floods, garbage "
        "and slow readers. Prints per interval the deliveries, the well-behaved clients' p99 "
        "latency and the relay's threads, fds and memory; the last line says whether any "
        "well-behaved client lost or saw twice any message (exit 1 if so).",
    )
    parser.add_argument("--clients", type=int, default=200, help="connections (default 200)")
    parser.add_argument("--minutes", type=float, default=10.0, help="how long (default 10)")
    parser.add_argument("--seconds", type=float, help="how long, in seconds (overrides)")
    parser.add_argument(
        "--report-every", type=float, default=60.0, help="seconds between lines (default 60)"
    )
    parser.add_argument(
        "--rate", type=float, default=0.2, help="messages/s per well-behaved client (0.2)"
    )
    parser.add_argument(
        "--reconnect-every",
        type=float,
        default=30.0,
        help="seconds between a well-behaved client's resumes, about (default 30; 0: never)",
    )
    parser.add_argument(
        "--address", help="HOST:PORT of a running relay (default: start a fresh one)"
    )
    parser.add_argument("--pid", type=int, help="with --address: its pid, for the figures")
    parser.add_argument("--seed", type=int, default=11, help="random seed (default 11)")
    args = parser.parse_args(None if argv is None else list(argv))
    if args.clients < 1 or args.rate <= 0 or args.report_every <= 0:
        parser.error("--clients, --rate and --report-every must be positive")
    return args


def main(argv: Iterable[str] | None = None) -> int:
    args = parse_args(argv)
    duration = args.seconds if args.seconds is not None else args.minutes * 60
    try:
        if args.address:
            server = external_server(args.address, args.pid)
        else:
            server = start_lanchat(SERVE_OPTIONS)
    except BenchError as e:
        print(f"soak: {e}", file=sys.stderr)
        return 2
    try:
        return run(args, server, duration)
    except BenchError as e:
        print(f"soak: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("soak: interrupted", file=sys.stderr)
        return 130
    finally:
        server.stop()


def run(args: argparse.Namespace, server: Server, duration: float) -> int:
    started = time.monotonic()
    soak = Soak(args, (server.host, server.port))
    print(
        f"soak: {args.clients} clients ({len(soak.goods)} well-behaved) for {duration:g} s "
        f"against {server.host}:{server.port}",
        flush=True,
    )
    last = started
    next_report = started + args.report_every
    deadline = started + duration
    while (now := time.monotonic()) < deadline:
        soak.round(now, sending=True)
        server.drain()
        if (gone := server.gone()) is not None:
            raise BenchError(gone)
        if now >= next_report:
            print(report(now - started, now - last, soak, server), flush=True)
            last, next_report = now, now + args.report_every
    soak.close_nuisances()
    drained = soak.drain(time.monotonic() + DRAIN_SECONDS)
    now = time.monotonic()
    print(report(now - started, now - last, soak, server), flush=True)
    lost, duplicated, unconfirmed = soak.verdict()
    ledger = soak.ledger
    counts = (
        f"{len(soak.goods)} well-behaved clients, {ledger.sent:,} messages "
        f"(reconnects {ledger.reconnects}, dropped {ledger.dropped}, gaps {ledger.gaps})"
    )
    if lost or duplicated or unconfirmed or not drained:
        problems = [f"{lost} lost", f"{duplicated} duplicated", f"{unconfirmed} never confirmed"]
        if not drained:
            problems.append(f"not caught up within {DRAIN_SECONDS:g} s")
        print(f"soak: FAILED: {', '.join(problems)}; {counts}", flush=True)
        return 1
    print(f"soak: OK: nothing lost, nothing duplicated; {counts}", flush=True)
    return 0
