"""The relay with real sockets on 127.0.0.1: chat between kinds, order, names, limits, escapes,
slow readers, churn without leaks, shutdown."""

from __future__ import annotations

import json
import socket
import struct
import subprocess
import threading
import time
from typing import Any

import psutil
import pytest

from conftest import WAIT, LineClient, ncat_path
from lanchat.relay import Relay
from netlab import LineReader


def chat_lines(client: LineClient, count: int) -> list[str]:
    """The next `count` chat lines (`[HH:MM] <name> text`) a raw client reads, notices skipped."""
    out: list[str] = []
    while len(out) < count:
        line = client.wait_line(lambda text: text.startswith("["))
        out.append(line.split("] ", 1)[1])
    return out


def chat_frames(client: LineClient, count: int) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    while len(out) < count:
        out.append(client.wait_json(lambda f: f["type"] in ("message", "action")))
    return out


def test_lanchat_and_raw_clients_chat_and_everyone_sees_one_order(connect: Any) -> None:
    alice, bob, raw = connect(), connect(), connect()
    assert alice.hello("alice")["name"] == "alice"
    assert bob.hello("bob")["name"] == "bob"
    raw.send("hi from the terminal\n")  # a raw client's first line is a message
    raw.wait_line("* Welcome")
    rounds = 30

    def talk(client: LineClient, name: str, raw_client: bool) -> None:
        for i in range(rounds):
            if raw_client:
                client.send(f"{name} {i}\n")
            else:
                client.send_json({"type": "message", "text": f"{name} {i}"})

    talkers = [
        threading.Thread(target=talk, args=args)
        for args in ((alice, "alice", False), (bob, "bob", False), (raw, "raw", True))
    ]
    for t in talkers:
        t.start()
    for t in talkers:
        t.join(WAIT)
    total = 1 + 3 * rounds
    seen_by_alice = chat_frames(alice, total)
    seen_by_bob = chat_frames(bob, total)
    assert [(f["from"], f["text"]) for f in seen_by_alice] == [
        (f["from"], f["text"]) for f in seen_by_bob
    ]
    seqs = [f["seq"] for f in seen_by_alice]
    assert seqs == sorted(seqs) and len(set(seqs)) == total
    guest = seen_by_alice[0]["from"]
    assert seen_by_alice[0]["text"] == "hi from the terminal" and guest.startswith("guest-")
    # The raw client reads everyone else's lines, named, in the same order, but not its own.
    expected_raw = [f"<{f['from']}> {f['text']}" for f in seen_by_alice if f["from"] != guest]
    assert chat_lines(raw, len(expected_raw)) == expected_raw
    # Each sender's own lines keep the order they were sent in.
    for name in ("alice", "bob"):
        mine = [f["text"] for f in seen_by_alice if f["from"] == name]
        assert mine == [f"{name} {i}" for i in range(rounds)]


def test_silent_raw_client_is_greeted_and_sees_history_marked(relay: Relay, connect: Any) -> None:
    talker = connect()
    talker.hello("talker")
    for i in range(7):
        talker.send_json({"type": "message", "text": f"old {i}"})
    chat_frames(talker, 7)
    lurker = connect()  # sends nothing at all
    assert "Welcome to lobby" in lurker.wait_line("* Welcome")
    assert lurker.wait_line("here:") == "* 1 here: talker."  # it has not said a word yet
    assert lurker.read_line() == "* Last 5 messages:"  # the relay keeps history=5
    assert [lurker.read_line().split("> ")[1] for _ in range(5)] == [
        f"old {i}" for i in range(2, 7)
    ]
    assert lurker.read_line() == "* End of history."


def test_lanchat_client_gets_welcome_who_and_history(connect: Any) -> None:
    first = connect()
    first.hello("first")
    first.send_json({"type": "action", "text": "arrives"})
    chat_frames(first, 1)
    second = connect()
    second.send_json({"type": "hello", "version": 1, "name": "second"})
    welcome = second.wait_json(lambda f: True)
    assert welcome["type"] == "welcome" and welcome["history"] == 1 and welcome["room"] == "lobby"
    who = second.wait_json(lambda f: True)
    assert who == {**who, "type": "who", "names": ["first", "second"]}
    replay = second.wait_json(lambda f: True)
    assert replay["type"] == "action" and replay["history"] is True and replay["from"] == "first"
    joined = second.wait_json(lambda f: True)
    assert joined["type"] == "join" and joined["name"] == "second" and joined["count"] == 2
    assert joined["seq"] > replay["seq"]


def test_names_are_unique_case_insensitively(connect: Any) -> None:
    connect().hello("Alice")
    taken = connect()
    refusal = taken.hello("alice", exact=True)
    assert refusal["type"] == "error" and refusal["code"] == "name-taken"
    assert json.loads(taken.read_line())["type"] == "bye"
    assert taken.read_line() is None  # then the server hangs up
    assert connect().hello("ALICE", exact=False)["name"] == "ALICE-2"
    raw = connect()
    raw.send("/nick alice\n")
    assert "That name is taken: Alice" in raw.wait_line("!")
    raw.send("/nick server\n")
    assert "reserved" in raw.wait_line("!")
    raw.send("/nick has space\n")
    assert "not a valid name" in raw.wait_line("!")
    raw.send("/nick carol\n")
    assert raw.wait_line("known as").endswith("is now known as carol")


def test_a_look_alike_name_is_refused_and_a_hello_after_a_bom_is_lanchat(connect: Any) -> None:
    connect().hello("ana")
    windows = connect()
    windows.send(b'\xef\xbb\xbf{"type":"hello","version":1,"name":"win"}\r\n')  # PowerShell
    welcome = windows.wait_json(lambda f: f["type"] in ("welcome", "error"))
    assert welcome == {**welcome, "type": "welcome", "name": "win"}
    raw = connect()
    raw.send("/nick \u0430na\n")  # Cyrillic a
    assert "looks like 'ana', who is here" in raw.wait_line("!")
    raw.send("/nick \uff53erver\n")  # fullwidth s
    assert "looks like 'server'" in raw.wait_line("!")
    raw.send("one\u2028two\u200f \x1b]0;shown\n")
    frame = windows.wait_json(lambda f: f["type"] == "message")
    assert frame["text"] == "one two shown"


@pytest.mark.parametrize(
    ("hello", "code"),
    [
        ({"name": "root"}, "name-reserved"),
        ({"name": "bad\x1bname"}, "bad-name"),
        ({"name": "x" * 30}, "bad-name"),
        ({"version": 0}, "unsupported-version"),
        ({"version": 2}, "unsupported-version"),  # a newer client: refused, not welcomed
        ({"version": 10**4000}, "unsupported-version"),
        ({"version": "one"}, "bad-frame"),
    ],
)
def test_bad_hello_is_refused_with_the_reason(
    connect: Any, hello: dict[str, Any], code: str
) -> None:
    client = connect()
    client.send_json({"type": "hello", "version": 1, **hello})
    error = client.wait_json(lambda f: True)
    assert error["type"] == "error" and error["code"] == code and error["message"]
    assert json.loads(client.read_line())["reason"] == "refused"
    assert client.read_line() is None


def test_too_long_line_is_refused_and_the_connection_goes_on(connect: Any) -> None:
    observer, raw, fancy = connect(), connect(), connect()
    observer.hello("observer")
    fancy.hello("fancy")
    raw.send("x" * 5000 + "\nshort one\n")
    assert "Line too long" in raw.wait_line("!")
    assert chat_frames(observer, 1)[0]["text"] == "short one"
    fancy.send_json({"type": "message", "text": "y" * 5000})
    error = fancy.wait_json(lambda f: f["type"] == "error")
    assert error["code"] == "line-too-long"
    fancy.send_json({"type": "message", "text": "still here"})
    assert chat_frames(observer, 1)[0]["text"] == "still here"  # the long one was not relayed


def test_escape_sequences_and_bad_bytes_never_reach_other_terminals(connect: Any) -> None:
    observer, raw = connect(), connect()
    observer.hello("observer")
    raw.send(b"\x1b[2J\x1b[31mred\x07 \x1b]0;title\x07alert\x08!\n")
    raw.send(b"caf\xe9 ok\n")
    raw.send(b"\x1b[31m\x07\n")  # nothing left after cleaning
    assert [f["text"] for f in chat_frames(observer, 2)] == ["red alert!", "caf\ufffd ok"]
    fancy = connect()
    fancy.hello("fancy")
    fancy.send_json({"type": "message", "text": "\u001b[5mblink\u202eevil"})
    assert chat_frames(observer, 1)[0]["text"] == "blinkevil"
    assert "Nothing left to send" in raw.wait_line("!")
    listener = connect()
    listener.send("\n")  # a blank first line: raw, and nothing is sent
    listener.wait_line("* End of history.")
    fancy.send_json({"type": "message", "text": "plain \x1b[31mred"})
    assert chat_lines(listener, 1) == ["<fancy> plain red"]


def test_raw_commands(connect: Any) -> None:
    raw, peer = connect(), connect()
    peer.hello("peer")
    raw.send("/help\n")
    assert "/nick NAME" in raw.wait_line("Commands:")
    raw.send("/who\n")
    assert raw.wait_line("here:").endswith("peer, guest-1.")
    raw.send("/me waves\n//slash is literal\n/bogus\n")
    assert "Unknown command /bogus" in raw.wait_line("!")
    assert [f"{f['type']}:{f['text']}" for f in chat_frames(peer, 2)] == [
        "action:waves",
        "message:/slash is literal",
    ]
    raw.send("/quit\n")
    assert raw.wait_line("Goodbye") == "* Goodbye."
    assert raw.read_line() is None
    left = peer.wait_json(lambda f: f["type"] == "leave")
    assert left["reason"] == "quit" and left["count"] == 1


def test_lanchat_requests(connect: Any) -> None:
    client = connect()
    client.hello("ana")
    client.send_json({"type": "ping", "token": "abc"})
    assert client.wait_json(lambda f: f["type"] == "pong")["token"] == "abc"
    client.send_json({"type": "who"})
    assert client.wait_json(lambda f: f["type"] == "who")["names"] == ["ana"]
    client.send_json({"type": "nick", "name": "anna"})
    nick = client.wait_json(lambda f: f["type"] == "nick")
    assert (nick["old"], nick["new"]) == ("ana", "anna")
    client.send("not json\n" + "[" * 4000 + "\n")  # deep nesting must not crash a reader thread
    assert client.wait_json(lambda f: f["type"] == "error")["code"] == "bad-frame"
    assert client.wait_json(lambda f: f["type"] == "error")["code"] == "bad-frame"
    client.send_json({"type": "hello", "version": 1})
    assert "only the first line" in client.wait_json(lambda f: f["type"] == "error")["message"]
    client.send_json({"type": "message", "text": "still fine"})
    assert chat_frames(client, 1)[0]["text"] == "still fine"
    client.send_json({"type": "bye"})
    assert client.wait_json(lambda f: f["type"] == "bye")["reason"] == "quit"
    assert client.read_line() is None


def test_late_hello_still_makes_a_lanchat_client(connect: Any) -> None:
    slow = connect()
    slow.wait_line("* Welcome")  # detection timed out: greeted as raw
    slow.send_json({"type": "hello", "version": 1, "name": "late"})
    welcome = slow.wait_json(lambda f: f.get("type") == "welcome", timeout=WAIT)
    assert welcome["name"] == "late"
    slow.send_json({"type": "message", "text": "json now"})
    assert chat_frames(slow, 1)[0]["text"] == "json now"


def test_room_full_is_refused_in_each_kind() -> None:
    relay = Relay("127.0.0.1", 0, max_clients=2)
    relay.start()
    try:
        port = relay.address[1]
        first, second = LineClient(port), LineClient(port)
        first.hello("one")
        second.send("I am raw\n")
        second.wait_line("* Welcome")
        raw = LineClient(port)
        raw.send("let me in\n")
        assert raw.read_all() == ["! The server is full (2 people). Try again later."]
        fancy = LineClient(port)
        error = fancy.hello("three")
        assert error["code"] == "server-full"
        assert json.loads(fancy.read_line())["reason"] == "refused"
        for client in (first, second, raw, fancy):
            client.close()
    finally:
        relay.stop()


def test_a_reader_that_never_reads_does_not_delay_the_others() -> None:
    relay = Relay("127.0.0.1", 0, max_backlog=1000, max_rate=0)  # the fan-out alone
    relay.start()
    try:
        port = relay.address[1]
        stuck = socket.socket()
        stuck.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        stuck.settimeout(WAIT)
        stuck.connect(("127.0.0.1", port))
        stuck.sendall(b'{"type":"hello","version":1,"name":"stuck"}\n')
        observer, sender = LineClient(port), LineClient(port)
        observer.hello("observer")
        sender.send("ready\n")  # a raw sender: it gets no echo of its own lines to read
        observer.wait_json(lambda f: f["type"] == "message" and f["text"] == "ready")
        text = "z" * 3000
        count = 4000  # 12 MB: far more than the stuck client's socket buffers hold

        def send_all() -> None:
            for i in range(count):
                sender.send(f"{i} {text}\n")

        sending = threading.Thread(target=send_all)
        sending.start()  # the observer reads meanwhile, as a real client does
        got = 0
        left = None
        while got < count:
            frame = observer.wait_json(lambda f: f["type"] in ("message", "leave"))
            if frame["type"] == "leave":
                left = frame
            else:
                assert frame["text"].startswith(f"{got} ")
                got += 1
        sending.join(WAIT)
        if left is None:
            left = observer.wait_json(lambda f: f["type"] == "leave")
        assert left["name"] == "stuck" and left["reason"] == "too-slow"
        stuck.close()
        observer.close()
        sender.close()
    finally:
        relay.stop()


def _fd_count() -> int:
    return int(psutil.Process().num_fds())


def _os_threads() -> int:
    """Threads of this process as the OS counts them (reader threads are bare _thread ones)."""
    return int(psutil.Process().num_threads())


def _settled(measure: Any, expected: int) -> int:
    """`measure()` once it equals `expected`, or at the deadline: a thread whose last Python
    line has run still needs a moment before the kernel has reaped it."""
    deadline = time.monotonic() + WAIT
    pause = threading.Event()
    while (value := measure()) != expected and time.monotonic() < deadline:
        pause.wait(0.01)
    return int(value)


def test_churn_leaves_no_thread_and_no_socket_behind(relay: Relay) -> None:
    port = relay.address[1]
    keeper = LineClient(port)  # a long-lived member that sees every join and leave
    keeper.hello("keeper")
    threads_before, fds_before = _os_threads(), _fd_count()
    readers_before = relay.readers
    cycles = 1000
    for i in range(cycles):
        sock = socket.create_connection(("127.0.0.1", port), timeout=WAIT)
        kind = i % 4
        if kind == 0:
            sock.sendall(b"hi and bye\n")  # raw: one line, then close
        elif kind == 1:
            sock.sendall(b'{"type":"hello","version":1,"exact":false,"name":"c"}\n{"type":"bye"}\n')
        elif kind == 2:  # vanish abruptly: RST instead of FIN
            sock.sendall(b"boom\n")
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        sock.close()  # kind 3: connect and close without a word
    # Connections are accepted in order: once a last client has been welcomed, every churn
    # connection has its reader thread. Then wait on those threads, each with a deadline.
    marker = LineClient(port)
    marker.hello("marker")
    marker.send_json({"type": "bye"})
    marker.read_all()
    marker.close()
    deadline = time.monotonic() + 2 * WAIT
    assert relay.wait_readers(readers_before, max(0.0, deadline - time.monotonic()))
    assert [c.name for c in relay.room.members] == ["keeper"]
    keeper.send_json(
        {"type": "ping", "token": "sync"}
    )  # the writer has caught up once this returns
    keeper.wait_json(lambda f: f["type"] == "pong", timeout=2 * WAIT)
    assert len(relay.hub.fanout.clients) == 1
    assert _settled(_os_threads, threads_before) == threads_before
    assert _settled(_fd_count, fds_before) == fds_before
    keeper.close()


def test_stop_tells_everyone_and_ends_every_thread(relay: Relay, connect: Any) -> None:
    raw, fancy = connect(), connect()
    raw.send("hello\n")
    raw.wait_line("* Welcome")
    fancy.hello("fancy")
    relay.stop()  # within its timeout or so; how fast is the benchmark's business
    assert "* Server shutting down. Goodbye." in raw.read_all()
    bye = [json.loads(line) for line in fancy.read_all() if '"bye"' in line]
    assert bye and bye[-1]["reason"] == "shutdown"
    assert relay.readers == 0


def test_all_interfaces_means_ipv4_and_ipv6() -> None:
    relay = Relay("", 0)  # the default: every interface, one dual-stack socket where possible
    relay.start()
    try:
        port = relay.address[1]
        hosts = ["127.0.0.1"] + (["::1"] if socket.has_dualstack_ipv6() else [])
        clients = [LineClient(port, host) for host in hosts]
        for i, client in enumerate(clients):
            assert client.hello(f"c{i}")["type"] == "welcome"
        for client in clients:
            client.close()
    finally:
        relay.stop()


def test_a_probe_answers_without_joining_the_room(connect: Any) -> None:
    member = connect()
    member.hello("member")
    prober = connect()
    prober.send_json({"type": "probe", "version": 1})
    answer = prober.wait_json(lambda f: True)
    assert (answer["type"], answer["room"], answer["version"]) == ("probe", "lobby", 1)
    assert answer["server"].startswith("lanchat ")
    prober.close()  # the asker hangs up first
    member.send_json({"type": "who"})
    who = member.wait_json(lambda f: f["type"] in ("who", "join"))
    assert who["type"] == "who" and who["names"] == ["member"]  # nobody saw the probe


def test_the_address_is_known_after_stop() -> None:
    relay = Relay("127.0.0.1", 0)
    relay.start()
    address = relay.address
    relay.stop()
    assert relay.address == address  # a status query racing stop() still has an answer


def test_a_silent_client_is_announced_when_it_first_speaks(relay: Relay, connect: Any) -> None:
    watcher = connect()
    watcher.hello("watcher")
    lurker = connect()  # says nothing: greeted, but the room is not told
    lurker.wait_line("here:")
    watcher.send_json({"type": "who"})
    assert watcher.wait_json(lambda f: f["type"] == "who")["names"] == ["watcher"]
    lurker.send("hello at last\n")
    joined = watcher.wait_json(
        lambda f: f["type"] == "message" or (f["type"] == "join" and f["name"] != "watcher")
    )
    assert joined["type"] == "join" and joined["name"].startswith("guest-") and joined["count"] == 2
    message = watcher.wait_json(lambda f: f["type"] == "message")
    assert message["text"] == "hello at last" and message["from"] == joined["name"]
    lurker.send("/quit\n")
    assert watcher.wait_json(lambda f: f["type"] == "leave")["name"] == joined["name"]


def resume_hello(client: LineClient, name: str, epoch: str, seq: int) -> dict[str, Any]:
    hello = {"type": "hello", "version": 1, "name": name, "resume": {"epoch": epoch, "seq": seq}}
    client.send_json(hello)
    return client.wait_json(lambda f: f["type"] == "welcome")


def say_and_wait(client: LineClient, text: str) -> dict[str, Any]:
    client.send_json({"type": "message", "text": text})
    return client.wait_json(lambda f: f["type"] == "message" and f["text"] == text)


def test_a_reconnecting_client_gets_exactly_the_frames_it_missed(connect: Any) -> None:
    alice, bob = connect(), connect()
    epoch = alice.hello("alice")["epoch"]
    bob.hello("bob")
    last_seen = say_and_wait(alice, "before")["seq"]
    alice.close()
    for text in ("m1", "m2", "m3"):
        say_and_wait(bob, text)
    again = connect()
    welcome = resume_hello(again, "alice", epoch, last_seen)
    assert welcome["epoch"] == epoch and welcome["history"] == 3
    say_and_wait(bob, "live")
    frames = []
    while not frames or frames[-1]["text"] != "live":
        frame = again.wait_json(lambda f: f["type"] in ("message", "gap"))
        frames.append(frame)
    assert [(f["text"], f.get("history", False)) for f in frames] == [
        ("m1", True),
        ("m2", True),
        ("m3", True),
        ("live", False),
    ]


def test_an_unknown_epoch_gets_a_gap_notice(connect: Any) -> None:
    alice = connect()
    alice.hello("alice")
    say_and_wait(alice, "kept")
    again = connect()
    welcome = resume_hello(again, "bob", "an-epoch-from-before-a-restart", 12)
    gap = again.wait_json(lambda f: f["type"] in ("gap", "message"))
    assert gap["type"] == "gap" and gap["reason"] == "history-lost"
    assert "lost its history" in gap["message"]
    assert welcome["history"] == 1 and chat_frames(again, 1)[0]["text"] == "kept"


def test_a_resume_beyond_the_history_names_the_missing_seqs(connect: Any) -> None:
    alice, bob = connect(), connect()
    epoch = alice.hello("alice")["epoch"]
    bob.hello("bob")
    last_seen = say_and_wait(alice, "seen")["seq"]
    alice.close()
    sent = [say_and_wait(bob, f"m{i}")["seq"] for i in range(8)]  # the relay keeps 5
    again = connect()
    resume_hello(again, "alice", epoch, last_seen)
    gap = again.wait_json(lambda f: f["type"] in ("gap", "message"))
    assert gap["type"] == "gap" and gap["reason"] == "history-trimmed"
    assert (gap["from"], gap["to"]) == (last_seen + 1, sent[2])
    assert [f["text"] for f in chat_frames(again, 5)] == [f"m{i}" for i in range(3, 8)]


def tcp_states(port: int) -> dict[tuple[int, int], str]:
    """Every TCP socket on this machine with `port` at one end: (local, remote port) -> state."""
    states = {}
    for conn in psutil.net_connections("tcp"):
        if conn.raddr and port in (conn.laddr.port, conn.raddr.port):
            states[conn.laddr.port, conn.raddr.port] = conn.status
    return states


def wait_until(condition: Any, timeout: float = 4 * WAIT) -> bool:
    """Poll a condition the kernel makes true (a socket's state), with a deadline."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)  # nothing to wait on: the kernel's socket table only looks
    return True


def test_quit_frees_both_ends_even_if_the_client_never_closes(relay: Relay) -> None:
    """After /quit the relay sent its goodbye and FIN, and a client that waits for its own
    input before closing (ncat, nc) sat in CLOSE-WAIT for ever, the relay's end in FIN-WAIT-2.
    Once the client has acknowledged everything and the linger is over, both ends are freed."""
    port = relay.address[1]
    client = LineClient(port)
    mine = client.sock.getsockname()[1]
    client.send("hello\n/quit\n")
    assert client.read_all()[-1] == "* Goodbye."  # then the end of the stream: a FIN
    assert tcp_states(port)[mine, port] == "CLOSE_WAIT"  # and we do not close
    assert relay.wait_readers(0, 4 * WAIT)
    assert wait_until(lambda: not tcp_states(port)), f"still there: {tcp_states(port)}"
    client.close()


@pytest.mark.ncat
@pytest.mark.skipif(ncat_path() is None, reason="ncat is not installed")
def test_quit_from_ncat_leaves_no_socket_in_close_wait(relay: Relay) -> None:
    port = relay.address[1]
    ncat = subprocess.Popen(
        [str(ncat_path()), "127.0.0.1", str(port)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
    )
    try:
        assert ncat.stdin is not None and ncat.stdout is not None
        ncat.stdin.write(b"hello\n/quit\n")
        ncat.stdin.flush()  # and its stdin stays open, as a terminal's would
        reader = LineReader(ncat.stdout)
        while reader.readline(WAIT) != "* Goodbye.":
            pass
        assert relay.wait_readers(0, 4 * WAIT)
        assert wait_until(lambda: not tcp_states(port)), f"still there: {tcp_states(port)}"
        assert psutil.Process(ncat.pid).net_connections("tcp") == []
    finally:
        ncat.kill()
        ncat.wait(WAIT)
