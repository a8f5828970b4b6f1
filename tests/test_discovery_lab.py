"""Discovery across PCs, in the multi-host lab (tests/netlab.py): real `lanchat` processes in
network namespaces; mDNS never leaves the lab's bridge. Issue 3, item 5, and the advertisement
following address changes and failing politely."""

from __future__ import annotations

import json
import os
import re
import select
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from conftest import ROOT, WAIT, LanchatProcess, lanchat_env, run_lanchat
from lanchat import __version__
from lanchat.discovery import DISCOVER_TIMEOUT
from lanchat.errors import ExitCode
from netlab import Host, Lab, LineReader, find_tool

pytestmark = pytest.mark.lab
pty = pytest.importorskip("pty", reason="pseudo-terminals are POSIX-only")

MakeLab = Callable[..., Lab]
START = 10.0  # serve registers in ~1.7 s (probing, then announcing); Python starts in ~0.3 s


def serve(
    start: Callable[..., LanchatProcess], host: Host, *args: str
) -> tuple[LanchatProcess, dict[str, Any]]:
    """`lanchat serve --json` in host, with its listening event (sent once announced)."""
    process = start("serve", "--json", *args, host=host)
    listening = process.wait_json(lambda e: e.get("event") == "listening", timeout=START)
    return process, listening


def discover_json(host: Host, *args: str) -> tuple[int, list[dict[str, Any]], str]:
    """`lanchat discover --json` in host: exit code, servers, stderr. It must end by itself: the
    deadline is its longest --timeout, with WAIT to start and stop."""
    result = run_lanchat("discover", "--json", *args, host=host, timeout=DISCOVER_TIMEOUT + WAIT)
    servers: list[dict[str, Any]] = json.loads(result.stdout) if result.stdout else []
    return result.returncode, servers, result.stderr


# Records other devices might send under our service type: all must be ignored, quietly.
FOREIGN = r"""
import select, socket, sys
from zeroconf import IPVersion, ServiceInfo, Zeroconf
T = "_lanchat._tcp.local."
zc = Zeroconf(interfaces=[sys.argv[1]], ip_version=IPVersion.V4Only)
records = [
    ("bad protocol", 7420, {"protocol": "abc", "room": "junk"}),
    ("no room", 7420, {"protocol": "1"}),
    ("binary", 7420, {b"protocol": b"1", b"room": b"\xff\xfe"}),
    ("escapes", 7420, {"protocol": "1", "room": "evil\x1b[2J"}),
]
for name, port, txt in records:
    info = ServiceInfo(T, f"{name}.{T}", port=port, properties=txt, server="junk.local.",
                       addresses=[socket.inet_aton(sys.argv[1])])
    zc.register_service(info, cooperating_responders=True)  # no probing: announce at once
print("registered", flush=True)
select.select([sys.stdin], [], [], 30)  # until the test closes stdin, 30 s at most
zc.close()
"""

# Every name announced under the service type, by a plain zeroconf browser (no lanchat parsing).
BROWSE_NAMES = r"""
import json, sys, threading
from zeroconf import ServiceBrowser, ServiceStateChange, Zeroconf
names = set()
enough = threading.Event()
def on_change(zeroconf, service_type, name, state_change):
    names.add(name)
    if len(names) >= int(sys.argv[2]):
        enough.set()
zc = Zeroconf()
browser = ServiceBrowser(zc, "_lanchat._tcp.local.", handlers=[on_change])
enough.wait(float(sys.argv[1]))  # until the expected names were seen, or the deadline
print(json.dumps(sorted(names)))
browser.cancel()
zc.close()
"""


def test_discover_on_h2_finds_the_server_on_h1_and_ignores_foreign_records(
    lab_factory: MakeLab, lanchat_process: Any
) -> None:
    lab = lab_factory(3)
    h1, h2, h3 = lab.host(1), lab.host(2), lab.host(3)
    junk = h3.popen(
        [sys.executable, "-c", FOREIGN, h3.ip], stdin=subprocess.PIPE, stdout=subprocess.PIPE
    )
    _, listening = serve(lanchat_process, h1, "--port", "7420")
    assert listening["mdns"]["advertised"] is True
    assert listening["mdns"]["name"] == "lobby on h1"
    assert listening["mdns"]["addresses"] == ["10.213.0.1", "fe80::aff:fed5:1"]  # no 127.0.0.1
    assert junk.stdout is not None and LineReader(junk.stdout).readline(10.0) == "registered"
    # The foreign records really are on the network (else ignoring them would prove nothing).
    names = h2.run([sys.executable, "-c", BROWSE_NAMES, "5", "5"], timeout=15)
    assert len(json.loads(names.stdout)) == 5, names.stderr

    code, servers, stderr = discover_json(h2)
    assert code == 0, stderr
    assert servers == [
        {
            "name": "lobby on h1",
            "room": "lobby",
            "host": "h1",
            "addresses": ["10.213.0.1", "fe80::aff:fed5:1%eth0"],
            "port": 7420,
            "protocol": 1,
            "version": __version__,
            "password": False,
            "web": "/",  # the chat page's path, from the TXT record
            "group": None,  # no backplane: a room of its own
            "nearest": True,  # the first (here: only) relay of its room
            "tls": False,
            "fingerprint": None,
        }
    ]
    assert "Traceback" not in stderr
    assert junk.stdin is not None
    junk.stdin.close()


def test_a_tls_server_is_found_with_its_fingerprint_and_joined_over_tls(
    lab_factory: MakeLab, lanchat_process: Any, tmp_path: Path
) -> None:
    """The TXT record carries tls=1 and the key's fingerprint; join without an address then
    connects with TLS and pins the key (after checking it against the announcement)."""
    lab = lab_factory(2)
    h1, h2 = lab.host(1), lab.host(2)
    server, listening = serve(lanchat_process, h1, "--tls")
    fingerprint = listening["tls"]["fingerprint"]
    code, servers, stderr = discover_json(h2)
    assert code == 0, stderr
    assert [(s["tls"], s["fingerprint"]) for s in servers] == [(True, fingerprint)]
    joined = run_lanchat(
        "join",
        "--name",
        "ana",
        input="hello over tls\n",
        timeout=30,
        host=h2,
        env={**lanchat_env(lab=True), "LANCHAT_CONFIG_DIR": str(tmp_path / "h2")},
    )
    assert joined.returncode == 0, joined.stderr
    assert f"pinned {fingerprint} for 10.213.0.1:7420" in joined.stderr
    said = server.wait_json(lambda e: e.get("event") == "message", timeout=START)
    assert said["text"] == "hello over tls"


def test_join_without_an_address_on_h2_and_h3_and_both_chat(
    lab_factory: MakeLab, lanchat_process: Any
) -> None:
    lab = lab_factory(3)
    h1, h2, h3 = lab.host(1), lab.host(2), lab.host(3)
    server, _ = serve(lanchat_process, h1)
    ana = lanchat_process("join", "--name", "ana", stdin=subprocess.PIPE, host=h2)
    ben = lanchat_process("join", "--name", "ben", "--json", stdin=subprocess.PIPE, host=h3)
    joined: dict[str, str] = {}
    while len(joined) < 2:  # in either order
        event = server.wait_json(lambda e: e.get("event") == "join", timeout=START)
        joined[event["name"]] = event["address"].rsplit(":", 1)[0]
    assert joined == {"ana": "10.213.0.2", "ben": "10.213.0.3"}  # from the other PCs, over IPv4
    ana.proc.stdin.write("hello from h2\n")
    ana.proc.stdin.flush()
    frame = ben.wait_json(lambda f: f.get("type") == "message" and f["from"] == "ana")
    assert frame["text"] == "hello from h2"
    ben.proc.stdin.write("hello from h3\n")
    ben.proc.stdin.flush()
    assert "<ben> hello from h3" in ana.wait_line("hello from h3")
    for person in (ana, ben):
        person.proc.stdin.close()
        assert person.proc.wait(10) == 0
        assert "connected via 10.213.0.1:7420" in person.stderr()


def test_a_room_with_a_password_is_announced_as_one_and_join_logs_in(
    lab_factory: MakeLab, lanchat_process: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    lab = lab_factory(2)
    h1, h2 = lab.host(1), lab.host(2)
    monkeypatch.setenv("LANCHAT_PASSWORD", "lab password")  # serve's, and join's for scripts
    server, listening = serve(lanchat_process, h1)
    assert listening["password"] is True
    code, servers, stderr = discover_json(h2)
    assert code == 0 and [s["password"] for s in servers] == [True], stderr
    joined = run_lanchat("join", "--name", "ana", input="hi from h2\n", host=h2)
    assert joined.returncode == 0, joined.stderr
    server.wait_json(lambda e: e.get("event") == "message" and e["text"] == "hi from h2")
    monkeypatch.delenv("LANCHAT_PASSWORD")
    asked = run_lanchat("join", "--name", "bo", input="hi\n", host=h2)  # no terminal to ask
    assert asked.returncode == ExitCode.LOGIN_FAILED
    assert "needs a password, and there is no terminal to ask for it" in asked.stderr


def test_join_without_an_address_asks_which_server_at_a_terminal(
    lab_factory: MakeLab, lanchat_process: Any
) -> None:
    lab = lab_factory(3)
    h1, h2, h3 = lab.host(1), lab.host(2), lab.host(3)
    lobby = lanchat_process("serve", "--json", host=h1)
    physics = lanchat_process("serve", "--json", "--room", "physics", host=h3)
    for server in (lobby, physics):
        server.wait_json(lambda e: e.get("event") == "listening", timeout=START)
    master, slave = pty.openpty()
    try:
        h2.popen(
            [sys.executable, "-m", "lanchat", "join", "--name", "ana"],
            env={**lanchat_env(lab=True), "TERM": "xterm"},
            cwd=ROOT,
            stdin=slave,
            stdout=slave,
            stderr=slave,
        )
        os.close(slave)
        screen = re.sub(rb"\x1b\[[0-9;?]*[A-Za-z]", b"", read_until(master, b"[1-2]: "))
        assert b"1. lobby on h1" in screen and b"2. physics on h3" in screen
        assert b"Join which one? [1-2]: " in screen
        os.write(master, b"2\r")
        read_until(master, b"/quit")  # the chat's help line: joined
        joined = physics.wait_json(lambda e: e.get("event") == "join")
        assert (joined["name"], joined["address"].rsplit(":", 1)[0]) == ("ana", "10.213.0.2")
        os.write(master, b"/quit\r")
        physics.wait_json(lambda e: e.get("event") == "leave" and e["name"] == "ana")
    finally:
        os.close(master)


def read_until(fd: int, wanted: bytes, timeout: float = START) -> bytes:
    """What a terminal shows until `wanted` appears (select with a deadline)."""
    deadline = time.monotonic() + timeout
    screen = b""
    while wanted not in screen:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise TimeoutError(f"{wanted!r} not on screen; last output {screen[-300:]!r}")
        if select.select([fd], [], [], remaining)[0]:
            screen += os.read(fd, 65536)
    return screen


def test_a_stopped_server_is_gone_from_discover_watch_within_3_s(
    lab_factory: MakeLab, lanchat_process: Any
) -> None:
    lab = lab_factory(2)
    h1, h2 = lab.host(1), lab.host(2)
    watch = lanchat_process("discover", "--watch", "--json", "--timeout", "30", host=h2)
    server, _ = serve(lanchat_process, h1)
    added = watch.wait_json(lambda e: e["event"] == "added", timeout=START)
    assert added["server"]["name"] == "lobby on h1"
    server.proc.terminate()  # SIGTERM, as a service manager stops it
    removed = watch.wait_json(lambda e: e["event"] == "removed", timeout=3.0)  # the promise
    assert removed["server"]["name"] == "lobby on h1"
    assert server.proc.wait(WAIT) == 0
    assert json.loads(server.rest()[-1])["event"] == "shutdown"
    watch.proc.terminate()
    assert watch.proc.wait(5) == 0  # SIGTERM ends a watch normally


def test_two_servers_with_the_same_room_are_listed_distinctly(
    lab_factory: MakeLab, lanchat_process: Any
) -> None:
    lab = lab_factory(3)
    h1, h2, h3 = lab.host(1), lab.host(2), lab.host(3)
    _, first = serve(lanchat_process, h1, "--port", "7420")
    assert first["mdns"]["name"] == "lobby on h1"
    # h3 is a clone named h1 too (classroom PCs): its name clashes, zeroconf renames it.
    rename = ["sh", "-c", 'hostname h1 && exec "$@"', "sh"]
    clone = h3.popen(
        [*rename, sys.executable, "-m", "lanchat", "serve", "--json", "--port", "7420"],
        env=lanchat_env(lab=True),
        cwd=ROOT,
        stdout=subprocess.PIPE,
    )
    # Meanwhile a second server of the room on the same PC: it differs by its port.
    other_port = lanchat_process("serve", "--json", "--port", "7421", host=h1)
    assert clone.stdout is not None
    listening = json.loads(LineReader(clone.stdout).readline(START))
    assert listening["mdns"]["name"] == "lobby on h1-2"
    listening = other_port.wait_json(lambda e: e.get("event") == "listening", timeout=START)
    assert listening["mdns"]["name"] == "lobby on h1:7421"

    code, servers, stderr = discover_json(h2)
    assert code == 0, stderr
    found = {
        (s["name"], s["host"], tuple(a for a in s["addresses"] if "." in a), s["port"])
        for s in servers
    }
    assert found == {
        ("lobby on h1", "h1", ("10.213.0.1",), 7420),
        ("lobby on h1-2", "h1", ("10.213.0.3",), 7420),  # not h1's address: own host record
        ("lobby on h1:7421", "h1", ("10.213.0.1",), 7421),
    }
    assert {s["room"] for s in servers} == {"lobby"}
    # join cannot choose by itself, and says how to
    result = run_lanchat("join", "--room", "lobby", "--name", "ana", host=h2, timeout=20)
    assert result.returncode == ExitCode.USAGE
    assert "3 lanchat servers answered" in result.stderr
    assert "lanchat join 10.213.0." in result.stderr


def test_blocking_udp_5353_on_h1_makes_discovery_fail_but_join_with_the_address_works(
    lab_factory: MakeLab, lanchat_process: Any
) -> None:
    lab = lab_factory(2)
    h1, h2 = lab.host(1), lab.host(2)
    serve(lanchat_process, h1)  # returns once registered and announced
    code, servers, _ = discover_json(h2)
    assert (code, len(servers)) == (0, 1)  # the control: the same check can succeed
    # Blocked after h1's announcements, before the next browser starts: an inbound block does
    # not stop h1's own announcements reaching browsers already listening (docs/discovery.md,
    # "An inbound block does not silence a server").
    h1.block("udp", 5353, "drop")
    code, servers, stderr = discover_json(h2, "--timeout", "2")
    assert (code, servers) == (ExitCode.UNREACHABLE, [])
    assert "No lanchat server answered on this network within 2 s" in stderr
    assert "lanchat doctor" in stderr and "lanchat join 192.168.1.23" in stderr
    lost = run_lanchat("join", "--timeout", "2", host=h2, timeout=20)
    assert lost.returncode == ExitCode.UNREACHABLE and "hint: Type the address" in lost.stderr
    chat = run_lanchat("join", h1.ip, "--name", "ana", input="typed the address\n", host=h2)
    assert chat.returncode == 0, chat.stderr
    assert "<ana> typed the address" in chat.stdout


def test_the_advertisement_follows_address_changes(
    lab_factory: MakeLab, lanchat_process: Any
) -> None:
    ip = find_tool("ip")
    lab = lab_factory(2)
    h1, h2 = lab.host(1), lab.host(2)
    watch = lanchat_process("discover", "--watch", "--json", "--timeout", "40", host=h2)
    server, _ = serve(lanchat_process, h1)
    watch.wait_json(lambda e: e["event"] == "added", timeout=START)

    def has(address: str) -> Callable[[dict[str, Any]], bool]:
        return lambda e: e["event"] in ("added", "updated") and address in e["server"]["addresses"]

    # A new address (an IPv6 prefix arrives): announced by update_service within seconds.
    h1.run([ip, "addr", "add", "fd00:213::1/64", "dev", "eth0", "nodad"], timeout=5, check=True)
    assert watch.wait_json(has("fd00:213::1"), timeout=8)["event"] == "updated"
    mdns = server.wait_json(lambda e: e.get("event") == "mdns", timeout=8)
    assert "fd00:213::1" in mdns["addresses"] and mdns["advertised"] is True
    # An address goes away: re-registered without it, so no client keeps trying it.
    h1.run([ip, "addr", "del", "fd00:213::1/64", "dev", "eth0"], timeout=5, check=True)
    back = watch.wait_json(
        lambda e: e["event"] == "added" and "fd00:213::1" not in e["server"]["addresses"],
        timeout=10,
    )
    assert back["server"]["addresses"][0] == "10.213.0.1"
    # No address at all (the cable is pulled): withdrawn, not left behind as a ghost.
    h1.run([ip, "addr", "flush", "dev", "eth0", "scope", "global"], timeout=5, check=True)
    h1.run([ip, "link", "set", "eth0", "down"], timeout=5, check=True)
    gone = server.wait_json(lambda e: e.get("event") == "mdns" and not e["advertised"], timeout=8)
    assert gone["state"] == "not-advertised" and "no LAN address" in gone["message"]


HOLD_5353 = r"""
import select, socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)  # no SO_REUSEADDR: nobody may share it
s.bind(("0.0.0.0", 5353))
print("bound", flush=True)
select.select([sys.stdin], [], [], 30)
"""


def test_an_mdns_failure_is_a_warning_and_the_relay_keeps_serving(
    lab_factory: MakeLab, lanchat_process: Any
) -> None:
    lab = lab_factory(2)
    h1, h2 = lab.host(1), lab.host(2)
    holder = h1.popen(
        [sys.executable, "-c", HOLD_5353], stdin=subprocess.PIPE, stdout=subprocess.PIPE
    )
    assert holder.stdout is not None and LineReader(holder.stdout).readline(5.0) == "bound"
    server, listening = serve(lanchat_process, h1)
    assert listening["mdns"]["state"] == "failed"
    assert "UDP port 5353" in listening["mdns"]["message"]
    chat = run_lanchat("join", h1.ip, "--name", "ana", input="still here\n", host=h2)
    assert chat.returncode == 0 and "<ana> still here" in chat.stdout
    assert server.proc.poll() is None
    text = lanchat_process("serve", "--port", "7421", host=h1)
    assert "Not announced on the LAN: mDNS does not work here" in text.wait_line(
        "Not announced", timeout=START
    )
    assert holder.stdin is not None
    holder.stdin.close()


def test_serve_no_mdns_is_not_found(lab_factory: MakeLab, lanchat_process: Any) -> None:
    lab = lab_factory(2)
    h1, h2 = lab.host(1), lab.host(2)
    _, listening = serve(lanchat_process, h1, "--no-mdns")
    assert listening["mdns"]["advertised"] is False
    code, servers, _ = discover_json(h2, "--timeout", "1.5")
    assert (code, servers) == (ExitCode.UNREACHABLE, [])
