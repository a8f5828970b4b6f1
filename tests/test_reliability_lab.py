"""Reliability across PCs (the multi-host lab, tests/netlab.py): a client whose cable is pulled
is let go within the keepalive, and a `serve --store` killed with SIGKILL and restarted gives
every reconnecting `lanchat join` every message exactly once (docs/reliability.md)."""

from __future__ import annotations

import subprocess
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psutil
import pytest

from conftest import WAIT, LanchatProcess
from netlab import Host, Lab, find_tool

pytestmark = pytest.mark.lab
MakeLab = Callable[..., Lab]
START = 10.0  # a lanchat process in a lab host starts in well under this
KEEPALIVE = 3.0  # serve --keepalive: short, so that the test is
# A cable pulled, as a firewall (the link itself stays up, so that connect() waits in SYN_SENT
# as it would across a LAN, instead of failing at once for want of a route).
CABLE_OUT = """
table inet cable {{
  chain input {{ type filter hook input priority 0; ip saddr {relay} drop; }}
  chain output {{ type filter hook output priority 0; ip daddr {relay} drop; }}
}}
"""


def test_a_client_whose_link_is_cut_is_let_go_within_the_keepalive(
    lab_factory: MakeLab, lanchat_process: Any
) -> None:
    """A PC switched off sends no FIN and no reset: only the keepalive tells the relay. Its
    reader must end, its slot be freed and the room told `lost`."""
    lab = lab_factory(3)
    h1, h2, h3 = lab.host(1), lab.host(2), lab.host(3)
    serve = lanchat_process(
        "serve", "--json", "--no-mdns", "--keepalive", f"{KEEPALIVE:g}", host=h1
    )
    serve.wait_json(lambda e: e.get("event") == "listening", timeout=START)
    relay = psutil.Process(serve.proc.pid)
    assert "lanchat" in " ".join(relay.cmdline())
    threads_before = relay.num_threads()
    address = f"{h1.ip}:7420"
    stays = lanchat_process(
        "join", address, "-n", "stays", "--json", stdin=subprocess.PIPE, host=h3
    )
    cut = lanchat_process(
        "join", address, "-n", "cut", "--keepalive", "0", stdin=subprocess.PIPE, host=h2
    )
    joined: set[str] = set()
    while joined != {"stays", "cut"}:  # in either order
        joined.add(serve.wait_json(lambda e: e.get("event") == "join", timeout=START)["name"])
    h2.run([find_tool("ip"), "link", "set", h2.ifname, "down"], timeout=WAIT, check=True)
    # The documented bound is about --keepalive; the deadline leaves room for a loaded machine.
    left = stays.wait_json(lambda f: f["type"] == "leave", timeout=4 * KEEPALIVE)
    assert (left["name"], left["reason"]) == ("cut", "lost")
    logged = serve.wait_json(lambda e: e.get("event") == "leave", timeout=WAIT)
    assert (logged["name"], logged["reason"]) == ("cut", "lost")
    stays.proc.stdin.close()
    assert stays.proc.wait(WAIT) == 0
    serve.wait_json(lambda e: e.get("event") == "leave" and e["name"] == "stays", timeout=WAIT)
    assert wait_threads(relay, threads_before), "a reader thread outlived its client"
    cut.close()


def wait_threads(process: psutil.Process, count: int, timeout: float = 2 * WAIT) -> bool:
    """Wait until `process` runs at most `count` threads (the relay ends them on its own)."""
    deadline = time.monotonic() + timeout
    while process.num_threads() > count:
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)  # another process's threads: nothing to wait on but their count
    return True


def wait_until(condition: Callable[[], bool], timeout: float = 3 * START) -> bool:
    """Poll a condition of another process (its sockets), with a deadline."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)  # another process's sockets: nothing to wait on but their state
    return True


def connecting(host: Host, to: str) -> bool:
    """Whether a program in `host` is trying to open a TCP connection to `to` (ss, in its
    netns: psutil reads the socket table of the netns the test runs in)."""
    ss = host.run([find_tool("ss"), "-Htn", "state", "syn-sent"], timeout=WAIT, check=True)
    return to in ss.stdout


def test_sigkill_of_serve_store_in_one_pc_loses_and_repeats_nothing_for_joins_in_others(
    lab_factory: MakeLab, lanchat_process: Any, tmp_path: Path
) -> None:
    """ana (h2) chats on; ben's cable (h3) is out while she does, so the relay's frames to him
    never arrive; then the relay (h1) is killed with SIGKILL and started again. Both joins
    resume: ben gets what he missed from the store, nobody sees anything twice, and the lines
    typed while the relay was down are sent once."""
    lab = lab_factory(3)
    h1, h2, h3 = lab.host(1), lab.host(2), lab.host(3)
    store = str(tmp_path / "history.db")
    serve_args = ("serve", "--json", "--no-mdns", "--store", store)
    serve = lanchat_process(*serve_args, host=h1)
    serve.wait_json(lambda e: e.get("event") == "listening", timeout=START)
    address = f"{h1.ip}:7420"
    people: dict[str, LanchatProcess] = {}
    for name, host in (("ana", h2), ("ben", h3)):
        people[name] = lanchat_process(
            "join", address, "-n", name, "--json", "--reconnect", "60", "--keepalive", "2",
            stdin=subprocess.PIPE, host=host,
        )  # fmt: skip
    ana, ben = people["ana"], people["ben"]
    for person in people.values():
        person.wait_json(lambda f: f["type"] == "welcome", timeout=START)
    sent: list[str] = []

    def says(person: LanchatProcess, label: str, count: int) -> None:
        for i in range(count):
            text = f"{label} {i}"
            person.say(text)
            sent.append(text)

    def has_everything(person: LanchatProcess) -> None:
        while not set(sent) <= set(person.chat_texts()):  # each wait has its deadline
            person.wait_json(lambda f: f["type"] == "message", timeout=3 * START)

    says(ana, "ana before", 10)
    says(ben, "ben before", 10)
    for person in people.values():
        has_everything(person)
    # ben's cable is out: nothing between h3 and the relay's PC gets through either way
    h3.apply_firewall(nft=CABLE_OUT.format(relay=h1.ip))
    says(ana, "ana while ben is away", 5)
    has_everything(ana)  # relayed (and so committed to the store), never reached ben
    serve.proc.kill()  # SIGKILL, by its pid: nothing is flushed, nobody is told
    assert serve.proc.wait(WAIT) == -9
    says(ana, "ana while the relay is down", 3)  # kept by her join, sent once it is back
    serve = lanchat_process(*serve_args, host=h1)
    serve.wait_json(lambda e: e.get("event") == "listening", timeout=START)
    # The old relay's kernel still retransmits what ben missed: his cable stays out until his
    # join has given up on that connection (its keepalive) and is trying a new one, so what he
    # missed can only come from the store.
    assert wait_until(lambda: connecting(h3, address)), "ben's join never tried to reconnect"
    h3.unblock()
    for person in people.values():  # each one's resumed greeting
        person.wait_json(lambda f: f["type"] == "welcome", timeout=3 * START)
    says(ana, "ana after", 5)
    says(ben, "ben after", 5)
    for name, person in people.items():
        has_everything(person)
        assert person.proc.stdin is not None
        person.proc.stdin.close()
        assert person.proc.wait(3 * START) == 0, person.stderr()
        person.rest()
        counts = Counter(t for t in person.chat_texts() if t in set(sent))
        assert set(counts) == set(sent), f"{name} missed {set(sent) - set(counts)}"
        twice = {t: n for t, n in counts.items() if n > 1}
        assert not twice, f"{name} saw these more than once: {twice}"
