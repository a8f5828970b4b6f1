"""What /proc says about a server process (CPU, memory, threads, descriptors) and the machine."""

from __future__ import annotations

import os
from dataclasses import dataclass

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


@dataclass(frozen=True)
class ProcSample:
    """One look at a process."""

    cpu_s: float  # user + system time of all its threads so far
    rss_kb: int  # VmRSS
    hwm_kb: int  # VmHWM: the peak resident size so far
    threads: int
    fds: int


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


def machine_cpu() -> tuple[float, float]:
    """Busy and total CPU time of the whole machine so far, in seconds (from /proc/stat)."""
    with open("/proc/stat") as f:
        values = [int(v) for v in f.readline().split()[1:]]
    idle = values[3] + (values[4] if len(values) > 4 else 0)  # idle + iowait
    total = sum(values[:8])  # guest time is already counted in user time
    return (total - idle) / CLOCK_TICKS, total / CLOCK_TICKS


def cpu_count() -> int:
    """Cores this process may run on."""
    return len(os.sched_getaffinity(0))
