"""Several relays, one room, across two subnets of the lab (tests/netlab.py, subnets=2): Redis in
one building, a relay in each, `lanchat join` clients in both (one of them across the router to
the other building's relay). One order everywhere; then Redis is killed and started again, and
one relay is killed and started again, mid-conversation: every client has every message exactly
once, in one order (docs/reliability.md, "Several relays", says what an outage may reorder)."""

from __future__ import annotations

import json
import subprocess
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from redis_kit import RedisServer, redis_path

from conftest import LanchatProcess, run_lanchat
from netlab import Lab, LineReader, find_tool, missing_tools

pytestmark = pytest.mark.lab
MakeLab = Callable[..., Lab]
START = 10.0  # a lanchat process in a lab host starts in well under this


def test_two_subnets_one_room_through_redis_survives_redis_and_a_relay_restarting(
    lab_factory: MakeLab, lanchat_process: Any, tmp_path: Path
) -> None:
    redis_path()  # skips, saying why, where redis-server is missing
    lab = lab_factory(6, subnets=2)  # h1 h2 h3 on 10.213.0.0/24, h4 h5 h6 on 10.213.1.0/24
    h1, h2, h3, h4, h5, h6 = (lab.host(i) for i in range(1, 7))
    redis = RedisServer(tmp_path, persist=True, host=h1).start()
    relay_args = {
        "a": ("serve", "--json", "--no-mdns", "--backplane", redis.url, "--relay-name", "a"),
        "b": ("serve", "--json", "--no-mdns", "--backplane", redis.url, "--relay-name", "b"),
    }
    relay_hosts = {"a": h2, "b": h5}
    relays = {}
    for name, args in relay_args.items():
        relays[name] = lanchat_process(*args, host=relay_hosts[name])
        relays[name].wait_json(lambda e: e.get("event") == "listening", timeout=START)
    # Clients in both buildings; c4 (building 2) uses relay a (building 1) across the router.
    where = {"c3": (h3, h2), "c4": (h4, h2), "c6": (h6, h5), "c5": (h5, h5)}
    people: dict[str, LanchatProcess] = {}
    for name, (host, relay) in where.items():
        people[name] = lanchat_process(
            "join", f"{relay.ip}:7420", "-n", name, "--json", "--reconnect", "60",
            "--keepalive", "4", stdin=subprocess.PIPE, host=host,
        )  # fmt: skip
        people[name].wait_json(lambda f: f["type"] == "welcome", timeout=START)
    on_a, on_b = ("c3", "c4"), ("c5", "c6")
    sent: list[str] = []

    def round_of(label: str, who: tuple[str, ...] = (*on_a, *on_b), count: int = 3) -> None:
        for i in range(count):
            for name in who:
                text = f"{name} {label} {i}"
                people[name].say(text)
                sent.append(text)

    def wait_for_all(names: tuple[str, ...] = tuple(people)) -> None:
        for name in names:
            person = people[name]
            while not set(sent) <= set(person.chat_texts()):  # each wait has its deadline
                person.wait_json(lambda f: f["type"] == "message", timeout=3 * START)

    round_of("before")
    wait_for_all()
    orders = {name: p.chat_texts() for name, p in people.items()}
    assert all(order == orders["c3"] for order in orders.values()), "one order everywhere"

    # Redis goes away (SIGKILL: no save) and comes back from its AOF; everyone chats on.
    redis.kill()
    for person in people.values():
        person.wait_json(lambda f: f["type"] == "notice", timeout=3 * START)  # told
    outage = len(sent)
    round_of("during redis outage")
    redis.start()
    for person in people.values():
        person.wait_json(lambda f: f.get("code") == "backplane-back", timeout=3 * START)
    wait_for_all()
    outage_lines = set(sent[outage:])

    # Relay b is killed mid-conversation and started again; its clients' joins reconnect and
    # resume from the stream, and send what was typed meanwhile.
    round_of("before b dies", count=2)
    relays["b"].proc.kill()
    assert relays["b"].proc.wait(START) == -9
    round_of("while b is down")
    relays["b"] = lanchat_process(*relay_args["b"], host=h5)
    relays["b"].wait_json(lambda e: e.get("event") == "listening", timeout=START)
    for name in on_b:  # each one's resumed greeting
        people[name].wait_json(lambda f: f["type"] == "welcome", timeout=3 * START)
    round_of("after")
    wait_for_all()

    for person in people.values():
        assert person.proc.stdin is not None
        person.proc.stdin.close()
        assert person.proc.wait(3 * START) == 0, person.stderr()
        person.rest()
    every = set(sent)
    orders = {}
    for name, person in people.items():
        texts = [t for t in person.chat_texts() if t in every]
        counts = Counter(texts)
        assert set(counts) == every, f"{name} missed {every - set(counts)}"
        assert not {t: n for t, n in counts.items() if n > 1}, f"{name} saw some twice"
        orders[name] = texts
    # One order, everywhere: the same for every client, except that while Redis was away
    # each relay's people saw their own relay's lines first (they were shown at once).
    calm = {name: [t for t in order if t not in outage_lines] for name, order in orders.items()}
    assert all(order == calm["c3"] for order in calm.values())
    for name, order in orders.items():
        during = [t for t in order if t in outage_lines]
        mine = on_a if name in on_a else on_b
        own = [t for t in during if t.split()[0] in mine]
        assert during[: len(own)] == own, f"{name}: its relay's outage lines come first"
    assert orders["c3"] == orders["c4"] and orders["c5"] == orders["c6"]
    # A newcomer reads the stream's order: each message once, the outage's lines included.
    newcomer = lanchat_process(
        "join", f"{h5.ip}:7420", "-n", "late", "--json", stdin=subprocess.DEVNULL, host=h6
    )
    newcomer.rest(timeout=3 * START)
    history = [t for t in newcomer.chat_texts() if t in every]
    assert len(history) == len(set(history))
    redis.kill()


REFLECTOR = """\
[server]
use-ipv4=yes
use-ipv6=no
allow-interfaces=eth0,eth1
enable-dbus=no

[publish]
disable-publishing=yes

[reflector]
enable-reflector=yes
reflect-filters=_lanchat._tcp.local
"""


def test_discover_shows_the_relays_of_one_room_as_one_room_across_a_reflector(
    lab_factory: MakeLab, lanchat_process: Any, tmp_path: Path
) -> None:
    """One relay per building, one backplane; avahi reflects _lanchat._tcp (only) between the
    buildings (docs/discovery.md, "Across routers"): discover in each building shows one room
    of two relays, its own building's first, and join without an address goes to that one."""
    redis_path()
    reason = missing_tools("avahi-daemon")
    if reason is not None:
        pytest.skip(reason)
    lab = lab_factory(4, subnets=2)  # h1 h2 | h3 h4
    h1, h2, h3, h4 = (lab.host(i) for i in range(1, 5))
    redis = RedisServer(tmp_path, host=h1).start()
    conf = tmp_path / "avahi-daemon.conf"
    conf.write_text(REFLECTOR)
    avahi = lab.router_popen(
        [find_tool("avahi-daemon"), "-f", str(conf), "--no-drop-root", "--no-chroot",
         "--no-rlimits"],
        private_run=True, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
    )  # fmt: skip
    assert avahi.stdout is not None
    reader = LineReader(avahi.stdout)
    while "Server startup complete" not in reader.readline(START):
        pass
    for relay, host in (("a", h2), ("b", h3)):
        serve = lanchat_process(
            "serve", "--json", "--backplane", redis.url, "--relay-name", relay, host=host
        )
        listening = serve.wait_json(lambda e: e.get("event") == "listening", timeout=START)
        assert listening["mdns"]["advertised"], listening
    for here, nearest, other in ((h4, h3, h2), (h1, h2, h3)):
        servers: list[dict[str, Any]] = []
        for _ in range(3):  # a reflected answer comes ~0.4 s after the local one, and now and
            # then after discover has settled: asked again, as a person would
            found = run_lanchat("discover", "--json", "--timeout", "5", host=here, timeout=30)
            assert found.returncode == 0, found.stderr
            servers = json.loads(found.stdout)
            if len(servers) == 2:
                break
        # (the relay on this link also answers with its IPv6 link-local address)
        assert [s["addresses"][0] for s in servers] == [nearest.ip, other.ip], servers
        assert servers[0]["group"] == servers[1]["group"] is not None
        assert [s["nearest"] for s in servers] == [True, False]
    joined = run_lanchat("join", "--name", "eve", "--json", host=h4, timeout=30)
    assert joined.returncode == 0, joined.stderr
    assert f"connected via {h3.ip}:7420" in joined.stderr  # building 2's own relay
    avahi.terminate()
    avahi.wait(START)
    redis.kill()
