"""Multi-host test lab: network namespaces as PCs on a bridge that lives in its own namespace;
with `subnets=2`, two such links joined by a router namespace (PCs in two buildings).

Stdlib only, because scripts/netlab imports this file by path; the pytest fixture at the end is
defined only when pytest has been imported (the test suite). docs/netlab.md explains the topology
and, under "Pitfalls", what shaped it.
"""

from __future__ import annotations

import contextlib
import functools
import itertools
import os
import re
import select
import shlex
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from typing import IO, Any

SUBNET = "10.213.0.0/24"
IFNAME = "eth0"
MAX_HOSTS = 250
MAX_SUBNETS = 8  # 10.213.0.0/24 ... 10.213.7.0/24
ROUTER_HOST = 254  # the router's address on every subnet: 10.213.S.254
COMMAND_TIMEOUT = 10.0  # one setup/teardown command; they take milliseconds
KILL_GRACE = 2.0  # how long a process gets after SIGTERM (and the pids after SIGKILL)
FIREWALL_ACTIONS = ("drop", "reject")
FIREWALL_BACKENDS = ("iptables", "nft")
FIREWALL_PROTOS = ("tcp", "udp")

_NET = "10.213."
_NS_ROOT = "/run/netns"
# Unprivileged users often lack /usr/sbin in PATH, where ip and sysctl live.
_SYSTEM_PATH = ("/usr/local/sbin", "/usr/local/bin", "/usr/sbin", "/usr/bin", "/sbin", "/bin")
_TOOLS = ("ip", "unshare", "nsenter", "sysctl", "hostname", "mount", "sleep", "sh")
_PREFIX_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,39}")
_counter = itertools.count(1)


class LabError(Exception):
    """A lab operation failed; the message says which command and why."""


class LabUnavailable(LabError):
    """No lab can be made on this machine; the message says why."""


def find_tool(name: str) -> str:
    """Absolute path of a system tool, or LabUnavailable naming the missing one."""
    found = _which(name)
    if found is None:
        raise LabUnavailable(f"the {name!r} command is not installed")
    return found


def missing_tools(*names: str) -> str | None:
    """Why a test that needs these system tools cannot run here (None: all are installed)."""
    missing = [name for name in names if _which(name) is None]
    if not missing:
        return None
    listed = ", ".join(repr(name) for name in missing)
    return f"needs {listed} (not installed; scripts/install-system-packages installs the tools)"


def _which(name: str) -> str | None:
    return shutil.which(name, path=os.pathsep.join([os.environ.get("PATH", ""), *_SYSTEM_PATH]))


@functools.cache
def _tools() -> dict[str, str]:
    """Paths of the tools every lab needs (resolved once)."""
    return {name: find_tool(name) for name in _TOOLS}


def _userns_hint() -> str:
    """Why unprivileged user namespaces may be off, from the kernel's knobs."""
    knobs = {
        "/proc/sys/kernel/unprivileged_userns_clone": "0",
        "/proc/sys/kernel/apparmor_restrict_unprivileged_userns": "1",
        "/proc/sys/user/max_user_namespaces": "0",
    }
    for path, bad in knobs.items():
        try:
            with open(path) as f:
                if f.read().strip() == bad:
                    return f" ({path.removeprefix('/proc/sys/').replace('/', '.')} = {bad})"
        except OSError:
            continue
    return ""


def is_real_root() -> bool:
    """Root of the initial user namespace: the only one that may run `ip netns` in the real /run."""
    if os.geteuid() != 0:
        return False
    try:
        with open("/proc/self/uid_map") as f:
            return f.read().split()[:3] == ["0", "0", "4294967295"]
    except OSError:
        return False


def check_prefix(prefix: str) -> str:
    """prefix if it is a safe namespace/file name prefix, else ValueError."""
    if not isinstance(prefix, str) or not _PREFIX_RE.fullmatch(prefix):
        raise ValueError(f"a lab name must be 1-40 of [A-Za-z0-9_.-], not {prefix!r}")
    return prefix


@functools.cache
def lab_support() -> str | None:
    """None if a lab can be made here, else the reason (probed once in a throwaway namespace)."""
    if sys.platform != "linux":
        return "network namespaces need Linux"
    try:
        t = _tools()
    except LabUnavailable as exc:
        return str(exc)
    probe = "link add nlprobe0 type bridge\nlink add nlprobe1 type veth peer name nlprobe2\n"
    if is_real_root():
        # A nameless namespace: it vanishes with the probe, the root namespace is never touched.
        cmd = [t["unshare"], "--net", "--", t["ip"], "-batch", "-"]
    else:
        script = f"{t['mount']} -n -t tmpfs tmpfs /run && exec {t['ip']} -batch -"
        cmd = [*_userns_cmd(), t["sh"], "-c", script]
    try:
        proc = subprocess.run(
            cmd, input=probe, capture_output=True, text=True, timeout=5, check=False
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"cannot probe for network namespaces: {exc}"
    if proc.returncode == 0:
        return None
    detail = (proc.stderr or proc.stdout).strip().splitlines()
    why = detail[0] if detail else f"exit {proc.returncode}"
    if is_real_root():
        return f"cannot create a bridge and veth pair in a network namespace: {why}"
    return f"not root, and an unprivileged user namespace is not allowed{_userns_hint()}: {why}"


def _userns_cmd() -> list[str]:
    """The unshare prefix that gives a non-root user its own root, network and mounts."""
    return [_tools()["unshare"], "--user", "--map-root-user", "--net", "--mount", "--"]


def _run(
    cmd: list[str], what: str, *, input: str | None = None, timeout: float = COMMAND_TIMEOUT
) -> str:
    """Run a lab command; its stdout, or LabError with its stderr."""
    try:
        proc = subprocess.run(
            cmd, input=input, capture_output=True, text=True, timeout=timeout, check=False
        )
    except subprocess.TimeoutExpired:
        raise LabError(f"{what}: timed out after {timeout} s: {shlex.join(cmd)}") from None
    except OSError as exc:
        raise LabError(f"{what}: {exc}") from None
    if proc.returncode != 0:
        out = (proc.stderr or proc.stdout).strip()
        raise LabError(
            f"{what} failed (exit {proc.returncode}): {out}\n  command: {shlex.join(cmd)}"
        )
    return proc.stdout


def _run_all(jobs: list[tuple[list[str], str]], what: str) -> None:
    """Run independent commands (argv, stdin text) in parallel; LabError if any fails."""
    deadline = time.monotonic() + COMMAND_TIMEOUT
    procs = []
    for cmd, text in jobs:
        pipe = subprocess.PIPE
        proc = subprocess.Popen(cmd, stdin=pipe, stdout=pipe, stderr=subprocess.STDOUT, text=True)
        procs.append((cmd, text, proc))
    failures = []
    for cmd, text, proc in procs:
        try:
            out, _ = proc.communicate(text, timeout=max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            proc.kill()
            out, _ = proc.communicate()
            failures.append(f"timed out: {shlex.join(cmd)}")
            continue
        if proc.returncode != 0:
            failures.append(f"{out.strip()}\n  command: {shlex.join(cmd)}")
    if failures:
        raise LabError(f"{what} failed: " + "\n".join(failures))


def _start_time(pid: int) -> str | None:
    """The kernel's start time of a process (tells a live keeper from a reused pid), or None."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rpartition(")")[2].split()[19]
    except (OSError, IndexError):
        return None


def _signal_and_wait(pids: list[int], sig: int, timeout: float) -> list[int]:
    """Send sig to pids and wait (pidfd, no polling) until they exit; the pids still alive."""
    fds: dict[int, int] = {}
    refused = []
    for pid in pids:
        try:
            fd = os.pidfd_open(pid)
        except ProcessLookupError:
            continue
        try:
            signal.pidfd_send_signal(fd, sig)
        except (ProcessLookupError, PermissionError) as exc:
            os.close(fd)
            if isinstance(exc, PermissionError):
                refused.append(pid)
            continue
        fds[fd] = pid
    deadline = time.monotonic() + timeout
    try:
        while fds and (remaining := deadline - time.monotonic()) > 0:
            ready, _, _ = select.select(list(fds), [], [], remaining)
            for fd in ready:
                os.close(fd)
                del fds[fd]
        return refused + list(fds.values())
    finally:
        for fd in fds:
            os.close(fd)


class LineReader:
    """Reads lines from a pipe with a deadline (select + os.read, so nothing hides in a buffer)."""

    def __init__(self, stream: IO[Any]) -> None:
        self._fd = stream.fileno()
        self._buf = b""

    def readline(self, timeout: float) -> str:
        """The next line without its newline; TimeoutError or EOFError with what was read."""
        deadline = time.monotonic() + timeout
        while b"\n" not in self._buf:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError(f"no line within {timeout} s (partial: {self._buf!r})")
            if select.select([self._fd], [], [], remaining)[0]:
                chunk = os.read(self._fd, 4096)
                if not chunk:
                    raise EOFError(f"stream closed (partial: {self._buf!r})")
                self._buf += chunk
        line, _, self._buf = self._buf.partition(b"\n")
        return line.decode(errors="replace")


def _start_keeper() -> subprocess.Popen[str]:
    """A process owning a user+net+mount namespace with its own /run, for labs without root."""
    t = _tools()
    # mount -n: libmount would otherwise write /run/mount/utab into the real /run.
    script = (
        f"{t['mount']} -n -t tmpfs -o mode=0755 tmpfs /run"
        f" && echo ready && exec {t['sleep']} infinity"
    )
    keeper = subprocess.Popen(
        [*_userns_cmd(), t["sh"], "-c", script],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,  # a Ctrl-C aimed at the caller must not take the lab down
    )
    assert keeper.stdout is not None
    try:
        line = LineReader(keeper.stdout).readline(5.0)
    except (TimeoutError, EOFError) as exc:
        keeper.kill()
        keeper.wait(KILL_GRACE)
        raise LabUnavailable(f"the user-namespace keeper did not start: {exc}") from None
    finally:
        keeper.stdout.close()
    if line != "ready":
        keeper.kill()
        keeper.wait(KILL_GRACE)
        raise LabUnavailable(f"the user-namespace keeper did not start: {line}")
    return keeper


def subnet_of(index: int, hosts: int, subnets: int) -> int:
    """Which subnet host `index` (1-based) is on: the hosts are split in order, the first
    subnets taking one more when they do not divide evenly (4 hosts, 2 subnets: h1 h2 | h3 h4)."""
    per, extra = divmod(hosts, subnets)
    bounds, end = [], 0
    for s in range(subnets):
        end += per + (1 if s < extra else 0)
        bounds.append(end)
    return next(s for s, bound in enumerate(bounds) if index <= bound)


class Lab:
    """A running lab: a switch namespace with br0 and hosts h1..hN on 10.213.0.0/24; with
    several subnets, one switch per subnet (10.213.S.0/24) and a router namespace that joins
    them (10.213.S.254 on each; every host routes the others' subnets through it)."""

    subnet = SUBNET

    def __init__(
        self,
        prefix: str,
        hosts: int,
        *,
        default_route: bool,
        subnets: int = 1,
        keeper: subprocess.Popen[str] | None = None,
        keeper_pid: int | None = None,
    ) -> None:
        self.prefix = prefix
        self.default_route = default_route
        self.subnets = subnets
        self.switch_netns = f"{prefix}-sw"
        self.router_netns = f"{prefix}-rt" if subnets > 1 else None
        self.keeper_pid = keeper.pid if keeper is not None else keeper_pid
        self.setup_seconds = 0.0
        self.hosts = [Host(self, i, subnet_of(i, hosts, subnets)) for i in range(1, hosts + 1)]
        self._keeper = keeper
        self._procs: list[subprocess.Popen[Any]] = []
        self._closed = False

    @property
    def mode(self) -> str:
        """'root' (ip netns in the real /run) or 'userns' (inside the keeper's namespaces)."""
        return "root" if self.keeper_pid is None else "userns"

    def switch_of(self, subnet: int) -> str:
        """The switch namespace of one subnet (`<P>-sw` for the first, `<P>-sw1` ...)."""
        return self.switch_netns if subnet == 0 else f"{self.switch_netns}{subnet}"

    def subnet_text(self, subnet: int) -> str:
        return f"{_NET}{subnet}.0/24"

    @classmethod
    def create(
        cls,
        hosts: int,
        *,
        default_route: bool = False,
        prefix: str | None = None,
        subnets: int = 1,
    ) -> Lab:
        """Build a lab of `hosts` PCs (on `subnets` links joined by a router); LabUnavailable
        if this machine cannot."""
        if isinstance(hosts, bool) or not isinstance(hosts, int) or not 1 <= hosts <= MAX_HOSTS:
            raise ValueError(f"hosts must be an integer from 1 to {MAX_HOSTS}, not {hosts!r}")
        if isinstance(subnets, bool) or not isinstance(subnets, int):
            raise ValueError(f"subnets must be an integer, not {subnets!r}")
        if not 1 <= subnets <= min(MAX_SUBNETS, hosts):
            raise ValueError(f"subnets must be from 1 to {min(MAX_SUBNETS, hosts)}, not {subnets}")
        prefix = f"nl{os.getpid()}-{next(_counter)}" if prefix is None else check_prefix(prefix)
        reason = lab_support()
        if reason is not None:
            raise LabUnavailable(reason)
        keeper = None
        if is_real_root():
            names = _names(prefix, hosts, subnets)
            taken = [n for n in names if os.path.exists(f"{_NS_ROOT}/{n}")]
            if taken:
                raise LabError(f"namespace {taken[0]} already exists: a lab named {prefix} is up")
        else:
            keeper = _start_keeper()
        lab = cls(prefix, hosts, default_route=default_route, subnets=subnets, keeper=keeper)
        started = time.monotonic()
        try:
            lab._build()
        except BaseException:
            with contextlib.suppress(LabError):  # the build error is the one worth reporting
                lab.close()
            raise
        lab.setup_seconds = time.monotonic() - started
        return lab

    def _enter(self) -> list[str]:
        """Prefix that runs a command where the lab's namespace names exist."""
        if self.keeper_pid is None:
            return []
        # -n too: from the root netns, setns into a userns-owned netns is refused (EPERM).
        pid = str(self.keeper_pid)
        return [_tools()["nsenter"], "-t", pid, "-U", "-m", "-n", "--preserve-credentials", "--"]

    def _netns_exec(self, netns: str, args: list[str]) -> list[str]:
        """argv running args inside a lab namespace."""
        return [*self._enter(), _tools()["ip"], "netns", "exec", netns, *args]

    def _ip(self, args: list[str]) -> list[str]:
        """argv of an `ip` command run where the lab's namespace names exist."""
        return [*self._enter(), _tools()["ip"], *args]

    def _build(self) -> None:
        """Create namespaces, bridge and veths, then configure every host (batched, parallel)."""
        t = _tools()
        switches = [self.switch_of(n) for n in range(self.subnets)]
        router = [self.router_netns] if self.router_netns else []
        names = [*switches, *router, *(h.netns for h in self.hosts)]
        _run(
            self._ip(["-batch", "-"]),
            "creating namespaces",
            input="".join(f"netns add {n}\n" for n in names),
        )
        # Before any interface exists (docs/netlab.md, "br_netfilter", "IPv4 sysctls are
        # inherited", "IPv6 duplicate address detection"): no IPv6 and no bridge netfilter on the
        # switch; hosts skip DAD so link-local works at once, no rp_filter.
        switch = ["net.ipv6.conf.all.disable_ipv6=1", "net.ipv6.conf.default.disable_ipv6=1"]
        switch += [f"net.bridge.bridge-nf-call-{x}tables=0" for x in ("ip", "ip6", "arp")]
        host = [f"net.ipv6.conf.{c}.accept_dad=0" for c in ("all", "default")]
        host += [f"net.ipv4.conf.{c}.rp_filter=0" for c in ("all", "default")]
        sysctl = [t["sysctl"], "-q", "-e", "-w"]  # -e: bridge-nf-* exist only with br_netfilter
        # The router forwards IPv4 between the lab's subnets, and nothing else exists to
        # forward to: it has no uplink (docs/netlab.md, "Two subnets and a router").
        routing = ["net.ipv4.ip_forward=1", *host]
        _run_all(
            [(self._netns_exec(sw, [*sysctl, *switch]), "") for sw in switches]
            + [(self._netns_exec(rt, [*sysctl, *routing]), "") for rt in router]
            + [(self._netns_exec(h.netns, [*sysctl, *host]), "") for h in self.hosts],
            "setting sysctls",
        )
        jobs = []
        for subnet, sw in enumerate(switches):
            bridge = [
                "link add br0 type bridge stp_state 0 forward_delay 0 mcast_snooping 0",
                "link set br0 up",
            ]
            for h in self.hosts:
                if h.subnet != subnet:
                    continue
                # The peer goes straight into the host: no interface ever exists in the root
                # netns.
                bridge.append(
                    f"link add sw-{h.name} type veth peer name {IFNAME} address {h.mac} "
                    f"netns {h.netns}"
                )
                bridge.append(f"link set sw-{h.name} master br0 up")
            if self.router_netns:
                bridge.append(
                    f"link add sw-rt type veth peer name eth{subnet} netns {self.router_netns}"
                )
                bridge.append("link set sw-rt master br0 up")
            jobs.append((self._ip(["-n", sw, "-batch", "-"]), "\n".join(bridge) + "\n"))
        _run_all(jobs, "building the switches")
        jobs = []
        if self.router_netns:
            lines = ["link set lo up"]
            for subnet in range(self.subnets):
                lines.append(f"addr add {_NET}{subnet}.{ROUTER_HOST}/24 dev eth{subnet}")
                lines.append(f"link set eth{subnet} up")
            jobs.append(
                (self._ip(["-n", self.router_netns, "-batch", "-"]), "\n".join(lines) + "\n")
            )
        for h in self.hosts:
            lines = [
                "link set lo up",
                f"addr add {h.ip}/24 brd + dev {IFNAME}",
                f"link set {IFNAME} multicast on up",
                f"route add 224.0.0.0/4 dev {IFNAME}",  # zeroconf's Default interface needs it
            ]
            for other in range(self.subnets):  # the other buildings, through the router
                if other != h.subnet:
                    lines.append(f"route add {self.subnet_text(other)} via {h.router}")
            if self.default_route:
                lines.append(f"route add default dev {IFNAME} scope link")
            jobs.append((self._ip(["-n", h.netns, "-batch", "-"]), "\n".join(lines) + "\n"))
        _run_all(jobs, "configuring hosts")

    def host(self, i: int) -> Host:
        """Host i, 1-based: host(1) is h1."""
        if isinstance(i, bool) or not isinstance(i, int) or not 1 <= i <= len(self.hosts):
            raise LabError(f"unknown host {i!r}: the lab has h1..h{len(self.hosts)}")
        return self.hosts[i - 1]

    def by_name(self, name: str) -> Host:
        """Host by name ('h2'); LabError naming the valid ones otherwise."""
        for h in self.hosts:
            if h.name == name:
                return h
        raise LabError(f"unknown host {name!r}: the lab has h1..h{len(self.hosts)}")

    def _check_open(self) -> None:
        if self._closed:
            raise LabError(f"lab {self.prefix} is closed")

    def _track(self, proc: subprocess.Popen[Any]) -> None:
        self._procs.append(proc)

    def router_popen(
        self, args: list[str], *, private_run: bool = False, **popen_kwargs: Any
    ) -> subprocess.Popen[str]:
        """Start args in the router namespace (a lab with subnets), hostname `router`; with
        `private_run` in a mount namespace of its own with an empty /run (a daemon's pid file
        and socket stay out of the machine's /run). Killed at close()."""
        self._check_open()
        if self.router_netns is None:
            raise LabError("this lab has one subnet: no router (Lab.create(..., subnets=2))")
        t = _tools()
        mount = f"{shlex.quote(t['mount'])} -n -t tmpfs tmpfs /run && " if private_run else ""
        script = f'{mount}{shlex.quote(t["hostname"])} router && exec "$@"'
        # unshare --mount makes the new mount namespace's propagation private (unshare(1)).
        flags = ["--uts", "--mount"] if private_run else ["--uts"]
        wrapped = [t["unshare"], *flags, "--", t["sh"], "-c", script, "router", *args]
        popen_kwargs.setdefault("text", True)
        popen_kwargs.setdefault("stdin", subprocess.DEVNULL)
        proc: subprocess.Popen[str] = subprocess.Popen(
            self._netns_exec(self.router_netns, wrapped), **popen_kwargs
        )
        self._track(proc)
        return proc

    def netns_pids(self) -> dict[str, list[int]]:
        """Processes inside each lab namespace, by namespace name."""
        return _netns_pids(self._enter(), self._names())

    def _names(self) -> list[str]:
        switches = [self.switch_of(n) for n in range(self.subnets)]
        router = [self.router_netns] if self.router_netns else []
        return [*(h.netns for h in self.hosts), *router, *switches]

    def state(self) -> dict[str, Any]:
        """What scripts/netlab stores to find this lab again (see attach)."""
        start = _start_time(self.keeper_pid) if self.keeper_pid is not None else None
        return {
            "prefix": self.prefix,
            "hosts": len(self.hosts),
            "subnets": self.subnets,
            "default_route": self.default_route,
            "keeper_pid": self.keeper_pid,
            "keeper_start": start,
        }

    @classmethod
    def attach(cls, state: dict[str, Any]) -> Lab:
        """The lab described by state(), if it is still running; LabError otherwise."""
        try:
            prefix, hosts = str(state["prefix"]), int(state["hosts"])
            keeper_pid = state["keeper_pid"]
            lab = cls(
                prefix,
                hosts,
                default_route=bool(state["default_route"]),
                subnets=int(state.get("subnets", 1)),
                keeper_pid=None if keeper_pid is None else int(keeper_pid),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise LabError(f"unreadable lab state: {exc!r}") from None
        if lab.keeper_pid is None:
            alive = os.path.exists(f"{_NS_ROOT}/{lab.switch_netns}")
        else:
            alive = _start_time(lab.keeper_pid) == state.get("keeper_start")
        if not alive:
            raise LabError(f"lab {prefix} is not running any more")
        return lab

    def close(self) -> None:
        """Stop popen'd processes (closing their pipes), kill the rest, delete all; idempotent."""
        if self._closed:
            return
        self._closed = True
        errors = []
        for proc in self._procs:
            if proc.poll() is None:
                proc.terminate()
        deadline = time.monotonic() + KILL_GRACE
        for proc in self._procs:
            errors += _reap(proc, deadline)
        try:
            _remove(self._enter(), self._names(), must_vanish=self.keeper_pid is None)
        except LabError as exc:
            errors.append(str(exc))
        # Last: the keeper's death takes an unprivileged lab's namespaces with it.
        if self._keeper is not None:
            self._keeper.terminate()
            errors += _reap(self._keeper, time.monotonic() + KILL_GRACE)
        elif self.keeper_pid is not None:  # attached: not our child; attach() checked its identity
            left = _signal_and_wait([self.keeper_pid], signal.SIGTERM, KILL_GRACE)
            _signal_and_wait(left, signal.SIGKILL, KILL_GRACE)
        if errors:
            raise LabError("; ".join(errors))

    def __enter__(self) -> Lab:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _reap(proc: subprocess.Popen[Any], deadline: float) -> list[str]:
    """Wait for proc until deadline, then SIGKILL it; close its pipes. Problems, as messages."""
    try:
        proc.wait(max(0.0, deadline - time.monotonic()))
    except subprocess.TimeoutExpired:
        proc.kill()
        try:
            proc.wait(KILL_GRACE)
        except subprocess.TimeoutExpired:
            return [f"process {proc.pid} did not die"]
    finally:
        for stream in (proc.stdin, proc.stdout, proc.stderr):
            if stream is not None:
                stream.close()
    return []


def _names(prefix: str, hosts: int, subnets: int = 1) -> list[str]:
    switches = [f"{prefix}-sw", *(f"{prefix}-sw{n}" for n in range(1, subnets))]
    router = [f"{prefix}-rt"] if subnets > 1 else []
    return [*switches, *router, *(f"{prefix}-h{i}" for i in range(1, hosts + 1))]


def _netns_pids(enter: list[str], names: list[str]) -> dict[str, list[int]]:
    """`ip netns pids` for each existing namespace of names."""
    result: dict[str, list[int]] = {}
    for name in names:
        proc = subprocess.run(
            [*enter, _tools()["ip"], "netns", "pids", name],
            capture_output=True,
            text=True,
            timeout=COMMAND_TIMEOUT,
            check=False,
        )
        if proc.returncode == 0:
            result[name] = [int(p) for p in proc.stdout.split()]
    return result


def _remove(enter: list[str], names: list[str], *, must_vanish: bool) -> None:
    """Kill every process in the namespaces (else `netns del` only unlinks them), delete them."""
    for _ in range(5):  # processes may fork while dying; a few rounds settle it
        pids = sorted({p for ps in _netns_pids(enter, names).values() for p in ps})
        if not pids:
            break
        left = _signal_and_wait(pids, signal.SIGKILL, KILL_GRACE)
        if left:
            raise LabError(f"processes {left} in the lab did not die")
    else:
        raise LabError("processes in the lab kept reappearing")
    ip = _tools()["ip"]
    if must_vanish:
        names = [n for n in names if os.path.exists(f"{_NS_ROOT}/{n}")]
    if names:
        # -force: a half-built lab may lack some names; the rest must still go.
        proc = subprocess.run(
            [*enter, ip, "-force", "-batch", "-"],
            capture_output=True,
            text=True,
            timeout=COMMAND_TIMEOUT,
            check=False,
            input="".join(f"netns del {n}\n" for n in names),
        )
        if must_vanish and proc.returncode != 0:
            raise LabError(f"deleting namespaces failed: {proc.stderr.strip()}")
    if must_vanish and (left_ns := [n for n in names if os.path.exists(f"{_NS_ROOT}/{n}")]):
        raise LabError(f"namespaces still exist: {left_ns}")


def remove_stale(prefix: str) -> list[str]:
    """Delete root-mode namespaces named <prefix>-sw / <prefix>-hN (a lab left behind)."""
    check_prefix(prefix)
    try:
        entries = os.listdir(_NS_ROOT)
    except FileNotFoundError:
        return []
    pattern = re.compile(re.escape(prefix) + r"-(sw[0-9]*|rt|h[0-9]+)")
    names = sorted(n for n in entries if pattern.fullmatch(n))
    if names:
        _remove([], names, must_vanish=True)
    return names


@functools.cache
def _iptables_is_nft() -> bool:
    """Whether iptables uses the nf_tables backend (unblock's `nft flush ruleset` clears it)."""
    out = _run([find_tool("iptables"), "-V"], "iptables -V")
    return "nf_tables" in out


class Host:
    """One PC of the lab: its own netns, eth0 on the lab bridge, a private 127.0.0.1."""

    def __init__(self, lab: Lab, index: int, subnet: int = 0) -> None:
        self.index = index
        self.subnet = subnet  # which of the lab's links (10.213.S.0/24)
        self.name = f"h{index}"
        self.ip = f"{_NET}{subnet}.{index}"
        self.router = f"{_NET}{subnet}.{ROUTER_HOST}"  # its way to the other subnets
        self.ifname = IFNAME
        self.netns = f"{lab.prefix}-h{index}"
        self.mac = f"02:00:0a:d5:{subnet:02x}:{index:02x}"
        self.ip6_link_local = f"fe80::aff:fed5:{subnet * 256 + index:x}"  # EUI-64 of the MAC
        self._lab = lab

    def __repr__(self) -> str:
        return f"<Host {self.name} {self.ip} netns={self.netns}>"

    def command(self, args: list[str]) -> list[str]:
        """argv running args in this host, in its own UTS namespace with hostname = name."""
        if not args or not all(isinstance(a, str) for a in args):
            raise ValueError(f"args must be a non-empty list of strings, not {args!r}")
        t = _tools()
        # Shared hostnames make mDNS names collide; exec keeps the Popen pid = the command's.
        script = f'{shlex.quote(t["hostname"])} "$0" && exec "$@"'
        uts = [t["unshare"], "--uts", "--", t["sh"], "-c", script, self.name]
        return self._lab._netns_exec(self.netns, [*uts, *args])

    def environ(self, env: dict[str, str] | None = None) -> dict[str, str]:
        """The environment for a process in this host: os.environ, NETLAB_HOST, then env.

        mDNS is allowed here (the host's only link is the lab's bridge), so lanchat's kill
        switch, set for root-namespace processes, is turned off unless env sets it.
        """
        return {**os.environ, "NETLAB_HOST": self.name, "LANCHAT_NO_MDNS": "0", **(env or {})}

    def run(
        self,
        args: list[str],
        *,
        timeout: float,
        input: str | None = None,
        env: dict[str, str] | None = None,
        check: bool = False,
    ) -> subprocess.CompletedProcess[str]:
        """Run args in this host, capturing text output; env adds to os.environ."""
        self._lab._check_open()
        stdin = subprocess.DEVNULL if input is None else None
        return subprocess.run(
            self.command(args),
            input=input,
            stdin=stdin,
            capture_output=True,
            text=True,
            timeout=timeout,
            env=self.environ(env),
            check=check,
        )

    def popen(
        self, args: list[str], *, env: dict[str, str] | None = None, **popen_kwargs: Any
    ) -> subprocess.Popen[str]:
        """Start args in this host (text mode, stdin /dev/null unless given); killed at close()."""
        self._lab._check_open()
        popen_kwargs.setdefault("text", True)
        popen_kwargs.setdefault("stdin", subprocess.DEVNULL)
        proc: subprocess.Popen[str] = subprocess.Popen(
            self.command(args), env=self.environ(env), **popen_kwargs
        )
        self._lab._track(proc)
        return proc

    def _admin(self, args: list[str], what: str, input: str | None = None) -> str:
        """Run a firewall tool in this host's netns; LabError with its message on failure."""
        self._lab._check_open()
        return _run(self._lab._netns_exec(self.netns, args), f"{self.name}: {what}", input=input)

    def block(
        self,
        proto: str,
        port: int,
        action: str = "drop",
        *,
        backend: str = "iptables",
        all_ifaces: bool = False,
    ) -> None:
        """Block inbound proto/port on eth0 (or every interface, lo too) for IPv4 and IPv6."""
        if proto not in FIREWALL_PROTOS:
            raise ValueError(f"proto must be one of {FIREWALL_PROTOS}, not {proto!r}")
        if isinstance(port, bool) or not isinstance(port, int) or not 1 <= port <= 65535:
            raise ValueError(f"port must be an integer from 1 to 65535, not {port!r}")
        if action not in FIREWALL_ACTIONS:
            raise ValueError(f"action must be one of {FIREWALL_ACTIONS}, not {action!r}")
        if backend not in FIREWALL_BACKENDS:
            raise ValueError(f"backend must be one of {FIREWALL_BACKENDS}, not {backend!r}")
        if backend == "nft":
            iface = "" if all_ifaces else f'iifname "{self.ifname}" '
            verdict = "drop"
            if action == "reject":
                verdict = "reject with tcp reset" if proto == "tcp" else "reject"
            rules = (
                "table inet netlab {\n"
                "  chain input { type filter hook input priority 0; policy accept; }\n"
                "}\n"
                f"insert rule inet netlab input {iface}{proto} dport {port} {verdict}\n"
            )
            self._admin([find_tool("nft"), "-f", "-"], "nft block", rules)
            return
        self._require_iptables_nft()
        iface = "" if all_ifaces else f"-i {self.ifname} "
        for tool, unreachable in (("iptables", "icmp"), ("ip6tables", "icmp6")):
            target = "DROP"
            if action == "reject":
                target = "REJECT --reject-with " + (
                    "tcp-reset" if proto == "tcp" else f"{unreachable}-port-unreachable"
                )
            rule = f"-I INPUT {iface}-p {proto} -m {proto} --dport {port} -j {target}"
            self._admin(
                [find_tool(f"{tool}-restore"), "--noflush"],
                f"{tool} block",
                f"*filter\n{rule}\nCOMMIT\n",
            )

    def apply_firewall(
        self, *, nft: str | None = None, iptables: str | None = None, ip6tables: str | None = None
    ) -> None:
        """Load an nft script (`nft -f -`) and/or iptables-restore text (replaces named tables)."""
        if nft is None and iptables is None and ip6tables is None:
            raise ValueError("give at least one of nft=, iptables=, ip6tables=")
        if nft is not None:
            self._admin([find_tool("nft"), "-f", "-"], "nft -f", nft)
        if iptables is not None or ip6tables is not None:
            self._require_iptables_nft()
        if iptables is not None:
            self._admin([find_tool("iptables-restore")], "iptables-restore", iptables)
        if ip6tables is not None:
            self._admin([find_tool("ip6tables-restore")], "ip6tables-restore", ip6tables)

    def unblock(self) -> None:
        """Remove every rule block() and apply_firewall() added (all nf_tables tables)."""
        self._admin([find_tool("nft"), "flush", "ruleset"], "nft flush ruleset")

    def _require_iptables_nft(self) -> None:
        if not _iptables_is_nft():
            raise LabError("iptables uses the legacy backend; netlab supports iptables-nft only")


if "pytest" in sys.modules:  # loaded by the test suite; scripts/netlab never pays for pytest
    import pytest

    @pytest.fixture
    def lab_factory() -> Iterator[Callable[..., Lab]]:
        """make(hosts=3, default_route=False, subnets=1) -> Lab; skips where no lab can be
        made."""
        labs: list[Lab] = []

        def make(hosts: int = 3, default_route: bool = False, subnets: int = 1) -> Lab:
            reason = lab_support()
            if reason is not None:
                pytest.skip(f"no network-namespace lab here: {reason}")
            lab = Lab.create(hosts, default_route=default_route, subnets=subnets)
            labs.append(lab)
            return lab

        yield make
        errors = []
        for lab in reversed(labs):
            try:
                lab.close()
            except LabError as exc:
                errors.append(str(exc))
        if errors:
            raise LabError("; ".join(errors))
