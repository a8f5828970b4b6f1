"""`lanchat status`: the relay's sockets with the people behind them, from the relay and the OS;
the status query is refused to other computers (checked across hosts in the lab)."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from dataclasses import fields
from typing import Any

import psutil
import pytest

from conftest import ROOT, WAIT, Terminal, run_lanchat
from lanchat.errors import ExitCode
from lanchat.protocol.status import (
    RelayBan,
    RelayConnection,
    RelayModeration,
    RelayMute,
    RelayServer,
    RelayStatus,
)
from lanchat.relay import Relay, same_machine
from lanchat.status import ServerSummary, SocketRow, StatusReport
from netlab import LineReader


def status_json(port: int) -> tuple[int, dict[str, Any]]:
    result = run_lanchat("status", "--port", str(port), "--json")
    return result.returncode, json.loads(result.stdout)


def established(document: dict[str, Any]) -> list[tuple[str, str]]:
    rows = [r for r in document["connections"] if r["state"] == "ESTABLISHED"]
    return sorted((r["name"], r["kind"]) for r in rows)


def test_status_lists_the_listener_and_each_person(relay: Relay, connect: Any) -> None:
    port = relay.address[1]
    ana, ben, raw = connect(), connect(), connect()
    ana.hello("ana")
    ben.hello("ben")
    raw.send("hello from ncat\n")
    ana.wait_json(lambda f: f["type"] == "message")
    code, document = status_json(port)
    assert code == 0
    assert [r["state"] for r in document["listening"]] == ["LISTEN"]
    assert document["listening"][0]["local"] == f"127.0.0.1:{port}"
    assert document["listening"][0]["pid"] is not None
    assert established(document) == [("ana", "lanchat"), ("ben", "lanchat"), ("guest-1", "raw")]
    guest = next(r for r in document["connections"] if r["name"] == "guest-1")
    assert guest["lines_in"] == 1 and guest["bytes_in"] == len("hello from ncat\n")
    assert guest["remote"] == f"127.0.0.1:{raw.sock.getsockname()[1]}"
    assert guest["frames_out"] > 0 and guest["queue"] == 0
    server = document["server"]
    assert (server["clients"], server["messages"], server["port"]) == (3, 1, port)
    assert document["running"] is True and document["version"] == 1
    ben.send_json({"type": "bye"})
    ana.wait_json(lambda f: f["type"] == "leave" and f["name"] == "ben")
    _, document = status_json(port)
    assert established(document) == [("ana", "lanchat"), ("guest-1", "raw")]


def test_status_table_for_people(relay: Relay, connect: Any) -> None:
    client = connect()
    client.hello("zoe")
    result = run_lanchat("status", "--port", str(relay.address[1]))
    assert result.returncode == 0
    assert "LISTEN" in result.stdout and "ESTABLISHED" in result.stdout
    assert "zoe" in result.stdout and "1 people" in result.stdout.replace("1 of", "1")


def test_no_server_says_so_and_exits_unreachable() -> None:
    holder = Relay("127.0.0.1", 0)  # take a port, then give it back: nothing listens there
    holder.start()
    port = holder.address[1]
    holder.stop()
    result = run_lanchat("status", "--port", str(port))
    assert result.returncode == ExitCode.UNREACHABLE
    assert f"No lanchat server is running on port {port}" in result.stdout
    code, document = status_json(port)
    assert code == ExitCode.UNREACHABLE and document["running"] is False
    assert document["server"] is None and document["listening"] == []


def test_something_else_on_the_port_is_named() -> None:
    import socket

    other = socket.create_server(("127.0.0.1", 0))
    port = other.getsockname()[1]
    try:
        result = run_lanchat("status", "--port", str(port), "--json")
    finally:
        other.close()
    document = json.loads(result.stdout)
    assert result.returncode == ExitCode.UNREACHABLE
    assert "Something other than a lanchat server" in document["problem"]
    holder = document["listening"][0]
    assert (holder["program"], holder["pid"]) == (psutil.Process().name(), os.getpid())


@pytest.mark.parametrize(
    ("peer", "local", "same"),
    [
        (("127.0.0.1", 5), ("127.0.0.1", 7420), True),
        (("::1", 5, 0, 0), ("::1", 7420, 0, 0), True),
        (("::ffff:127.0.0.1", 5, 0, 0), ("::ffff:127.0.0.1", 7420, 0, 0), True),
        (("10.0.0.5", 5), ("10.0.0.5", 7420), True),  # our own LAN address
        (("10.0.0.6", 5), ("10.0.0.5", 7420), False),  # another PC
        (("::ffff:10.0.0.6", 5, 0, 0), ("::ffff:10.0.0.5", 7420, 0, 0), False),
    ],
)
def test_same_machine(peer: Any, local: Any, same: bool) -> None:
    assert same_machine(peer, local) is same


LAB_ENV = {"PYTHONPATH": str(ROOT)}
ASK_STATUS = (
    "import socket,sys; s=socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=5);"
    's.sendall(b\'{"type":"status","version":1}\\n\'); print(s.recv(65536).decode().strip())'
)


def _serve(host: Any, *extra: str) -> tuple[subprocess.Popen[str], LineReader, int]:
    proc = host.popen(
        [sys.executable, "-m", "lanchat", "serve", "--port", "0", "--json", "--no-mdns", *extra],
        env=LAB_ENV,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    reader = LineReader(proc.stdout)
    listening = json.loads(reader.readline(10))
    return proc, reader, int(listening["port"])


def _next_event(events: LineReader, kind: str, timeout: float) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        event: dict[str, Any] = json.loads(events.readline(max(0.0, deadline - time.monotonic())))
        if event["event"] == kind:
            return event


@pytest.mark.lab
def test_status_query_is_refused_to_another_pc(lab_factory: Any) -> None:
    lab = lab_factory(2)
    h1, h2 = lab.host(1), lab.host(2)
    _, _, port = _serve(h1, "--host", h1.ip)  # bound to the LAN address, not loopback
    from_other_pc = h2.run([sys.executable, "-c", ASK_STATUS, h1.ip, str(port)], timeout=WAIT)
    answer = json.loads(from_other_pc.stdout)
    assert answer["type"] == "error" and answer["code"] == "status-refused"
    here = h1.run(
        [sys.executable, "-m", "lanchat", "status", "--port", str(port), "--json"],
        timeout=WAIT,
        env=LAB_ENV,
    )
    assert here.returncode == 0, here.stderr  # asked over the LAN address from the server PC
    assert json.loads(here.stdout)["server"]["port"] == port


@pytest.mark.lab
def test_a_vanished_client_shows_until_the_relay_notices(lab_factory: Any) -> None:
    lab = lab_factory(2)
    h1, h2 = lab.host(1), lab.host(2)
    _, events, port = _serve(h1, "--keepalive", "3")
    hold = (
        "import socket,sys; s=socket.create_connection((sys.argv[1], int(sys.argv[2])));"
        "s.sendall(b'here\\n'); print('joined', flush=True); sys.stdin.read()"
    )
    client = h2.popen(
        [sys.executable, "-c", hold, h1.ip, str(port)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
    )
    assert LineReader(client.stdout).readline(WAIT) == "joined"
    assert json.loads(events.readline(WAIT))["event"] == "join"
    h2.apply_firewall(iptables="*filter\n:INPUT DROP [0:0]\n:OUTPUT DROP [0:0]\nCOMMIT\n")
    # h2 is gone from the network without a word: the relay cannot know yet.
    status = [sys.executable, "-m", "lanchat", "status", "--port", str(port), "--json"]
    rows = json.loads(h1.run(status, timeout=WAIT, env=LAB_ENV).stdout)["connections"]
    assert [(r["name"], r["state"]) for r in rows] == [("guest-1", "ESTABLISHED")]
    leave = _next_event(events, "leave", 3 * WAIT)  # keepalive probes go unanswered
    assert (leave["event"], leave["name"], leave["reason"]) == ("leave", "guest-1", "lost")
    rows = json.loads(h1.run(status, timeout=WAIT, env=LAB_ENV).stdout)["connections"]
    assert not [r for r in rows if r["state"] == "ESTABLISHED"]


def test_watch_follows_people_coming_and_going(
    relay: Relay, connect: Any, lanchat_process: Any
) -> None:
    port = relay.address[1]
    watch = lanchat_process("status", "--port", str(port), "--watch", "--json")
    first = watch.wait_json(lambda d: d["running"], timeout=10)
    assert established(first) == []
    newcomer = connect()
    newcomer.hello("newcomer")
    watch.wait_json(lambda d: established(d) == [("newcomer", "lanchat")])
    newcomer.send_json({"type": "bye"})
    newcomer.read_all()
    watch.wait_json(lambda d: established(d) == [])
    watch.proc.send_signal(__import__("signal").SIGINT)  # Ctrl-C leaves cleanly
    assert watch.proc.wait(WAIT) == 0


@pytest.mark.skipif(sys.platform == "win32", reason="pseudo-terminals are POSIX-only")
def test_watch_table_on_a_terminal(relay: Relay, connect: Any) -> None:
    client = connect()
    client.hello("onscreen")
    term = Terminal("status", "--port", str(relay.address[1]), "--watch")
    try:
        term.wait_for(b"onscreen", timeout=10)
        term.wait_for(b"ESTABLISHED")
        term.proc.send_signal(__import__("signal").SIGINT)
        assert term.proc.wait(WAIT) == 0
    finally:
        term.close()


def _doc_tables() -> dict[str, set[str]]:
    """docs/status.md's field tables: the line that introduces each, and the fields it lists."""
    tables: dict[str, set[str]] = {}
    intro = ""
    for line in (ROOT / "docs" / "status.md").read_text().splitlines():
        if line.startswith("| `"):
            first_cell = line.split("|")[1]
            tables.setdefault(intro, set()).update(re.findall(r"`([a-z_]+)`", first_cell))
        elif line.startswith("#") or line.endswith(":"):  # a heading, or "Each ROW:"
            intro = line.strip()
    return tables


def test_the_doc_lists_exactly_the_fields_of_each_document() -> None:
    tables = _doc_tables()
    empty = StatusReport(7420, None, (), ())
    assert tables["## The JSON document (version 1)"] == set(empty.to_dict())
    assert tables["SERVER:"] == {f.name for f in fields(ServerSummary)}
    assert tables["Each ROW:"] == {f.name for f in fields(SocketRow)}
    assert tables["`server`:"] == {f.name for f in fields(RelayServer)}
    assert tables["MODERATION:"] == {f.name for f in fields(RelayModeration)}
    assert tables["Each MUTE:"] == {f.name for f in fields(RelayMute)}
    assert tables["Each BAN:"] == {f.name for f in fields(RelayBan)}
    assert tables["Each of `connections`, one per connection the relay still holds:"] == {
        f.name for f in fields(RelayConnection)
    }


def test_the_relay_answer_reads_back_as_it_was_built(relay: Relay, connect: Any) -> None:
    ana = connect()
    ana.hello("ana")
    document = relay.status()
    answer = RelayStatus.from_dict(json.loads(json.dumps(document)))
    assert answer.to_dict() == document
    assert [c.name for c in answer.connections] == ["ana"]
    assert answer.server.port == relay.address[1]
    with pytest.raises(ValueError, match="has no 'pid'"):
        RelayStatus.from_dict({**document, "server": {"room": "lobby"}})
    with pytest.raises(ValueError, match="not a status document"):
        RelayStatus.from_dict({"type": "error"})
