"""What /proc says about a server process (CPU, memory, threads, descriptors) and the machine,
and who used the CPU between two moments."""

from __future__ import annotations

import os
import resource
import time
from dataclasses import dataclass

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
SATURATED = 0.9  # a share of a core (or of the machine) above which we call it the limit
QUIET_WINDOW = 2.0  # seconds the machine must be quiet before a run (--wait-quiet)
QUIET_CORES = 0.05  # ... using less CPU than this, in cores


@dataclass(frozen=True)
class ProcSample:
    """One look at a process."""

    cpu_s: float  # user + system time of all its threads so far
    rss_kb: int  # VmRSS
    hwm_kb: int  # VmHWM: the peak resident size so far
    threads: int
    fds: int


def sample_processes(pids: tuple[int, ...]) -> ProcSample | None:
    """The figures of several processes added up (a room of several relays and its Redis);
    None if one of them is gone or unreadable."""
    samples = [sample_process(pid) for pid in pids]
    if not samples or any(s is None for s in samples):
        return None
    present = [s for s in samples if s is not None]
    return ProcSample(
        cpu_s=sum(s.cpu_s for s in present),
        rss_kb=sum(s.rss_kb for s in present),
        hwm_kb=sum(s.hwm_kb for s in present),
        threads=sum(s.threads for s in present),
        fds=sum(s.fds for s in present),
    )


def sample_process(pid: int) -> ProcSample | None:
    """Read ``pid``'s figures from /proc; None if it is gone or unreadable."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            stat = f.read()
        with open(f"/proc/{pid}/status", "rb") as f:
            status = f.read()
        fds = len(os.listdir(f"/proc/{pid}/fd"))
    except OSError:
        return None
    # The command name may hold spaces and parentheses: fields start after the last ')'.
    fields = stat[stat.rfind(b")") + 2 :].split()
    utime, stime = int(fields[11]), int(fields[12])  # fields 14 and 15 of proc(5)
    values: dict[bytes, int] = {}
    for line in status.splitlines():
        key, _, rest = line.partition(b":")
        if key in (b"VmRSS", b"VmHWM", b"Threads"):
            values[key] = int(rest.split()[0])
    return ProcSample(
        cpu_s=(utime + stime) / CLOCK_TICKS,
        rss_kb=values.get(b"VmRSS", 0),
        hwm_kb=values.get(b"VmHWM", 0),
        threads=values.get(b"Threads", 0),
        fds=fds,
    )


def fd_limit(pid: int) -> int | None:
    """The soft limit on open files of ``pid``, or None if unknown or unlimited."""
    try:
        with open(f"/proc/{pid}/limits") as f:
            for line in f:
                if line.startswith("Max open files"):
                    soft = line.split()[3]
                    return int(soft) if soft.isdigit() else None
    except OSError:
        return None
    return None


@dataclass(frozen=True)
class MachineCPU:
    """CPU time of the whole machine so far, in seconds (from /proc/stat)."""

    processes: float  # user + nice + system: time charged to processes
    busy: float  # everything but idle and iowait (interrupts, steal too)
    total: float


def machine_cpu() -> MachineCPU:
    """The machine's CPU time so far."""
    with open("/proc/stat") as f:
        values = [int(v) for v in f.readline().split()[1:]] + [0] * 8
    idle = values[3] + values[4]  # idle + iowait
    total = sum(values[:8])  # guest time is already counted in user time
    processes = values[0] + values[1] + values[2]
    return MachineCPU(processes / CLOCK_TICKS, (total - idle) / CLOCK_TICKS, total / CLOCK_TICKS)


def wait_quiet(limit: float, window: float = QUIET_WINDOW) -> float | None:
    """Wait up to ``limit`` s for ``window`` s in which processes use < QUIET_CORES; return how
    long it took, or None if the machine never was that quiet."""
    start = time.monotonic()
    for _ in range(int(limit / window) + 1):  # each round takes one window
        before = machine_cpu().processes
        time.sleep(window)  # sampling the machine over an interval, not waiting for an event
        if (machine_cpu().processes - before) / window < QUIET_CORES:
            return time.monotonic() - start
        if time.monotonic() - start >= limit:
            break
    return None


def cpu_count() -> int:
    """Cores this process may run on."""
    return len(os.sched_getaffinity(0))


@dataclass(frozen=True)
class Mark:
    """The server, the machine and the coordinator at one moment."""

    at: float
    server: ProcSample | None
    machine: MachineCPU
    own_cpu: float

    @classmethod
    def take(cls, pids: tuple[int, ...]) -> Mark:
        """Look now at the server's processes (if known), the machine and this process."""
        usage = resource.getrusage(resource.RUSAGE_SELF)
        return cls(
            at=time.monotonic(),
            server=sample_processes(pids) if pids else None,
            machine=machine_cpu(),
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
    others: float | None  # every other process on the machine, in cores (needs the server's)

    @classmethod
    def between(cls, m0: Mark, m1: Mark, worker_cpu: list[float]) -> Interval:
        """The interval from ``m0`` to ``m1``; ``worker_cpu`` is each worker's CPU in it."""
        wall = max(m1.at - m0.at, 1e-9)
        server_cpu = None
        if m0.server is not None and m1.server is not None:
            server_cpu = m1.server.cpu_s - m0.server.cpu_s
        whole = m1.machine.total - m0.machine.total
        busy = (m1.machine.busy - m0.machine.busy) / whole if whole > 0 else None
        gen = (sum(worker_cpu) + m1.own_cpu - m0.own_cpu) / wall
        others = None
        if server_cpu is not None:
            # Ticks are coarse (10 ms): a small negative remainder means nobody else.
            charged = m1.machine.processes - m0.machine.processes
            others = max((charged - server_cpu) / wall - gen, 0.0)
        return cls(wall, server_cpu, busy, gen, max(worker_cpu, default=0.0) / wall, others)

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


def listening(pid: int, port: int) -> bool:
    """Whether process ``pid`` holds a TCP socket listening on ``port`` (from /proc, without
    connecting: ncat --chat can quit over a probe that connected and went, see servers.py)."""
    try:
        links = [os.readlink(f"/proc/{pid}/fd/{fd}") for fd in os.listdir(f"/proc/{pid}/fd")]
    except OSError:
        return False  # gone, or a descriptor closed while we looked: ask again
    inodes = {link[len("socket:[") : -1] for link in links if link.startswith("socket:[")}
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            with open(table) as f:
                rows = f.read().splitlines()[1:]
        except OSError:
            continue
        for row in rows:
            fields = row.split()  # sl, local address, remote address, state, ..., inode
            local, state, inode = fields[1], fields[3], fields[9]
            if state == "0A" and int(local.rsplit(":", 1)[1], 16) == port and inode in inodes:
                return True
    return False
