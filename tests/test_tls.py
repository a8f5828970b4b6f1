"""lanchat/tls/: the relay's key and certificate, the fingerprint, TlsSocket under two threads,
and a relay with TLS on its port (in this process, on 127.0.0.1). The command line's TLS (serve
--tls, join pinning) is tests/test_tls_cli.py."""

from __future__ import annotations

import hashlib
import logging
import os
import select
import socket
import stat
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from test_hostile_clients import Collector, wait_for

from conftest import WAIT, LineClient, assert_dropped_at_a_line_end
from lanchat.client import query_relay
from lanchat.relay import Relay
from lanchat.tls.fingerprint import colon_hex, format_fingerprint, parse_fingerprint
from lanchat.tls.identity import (
    CERTIFICATE_FILE,
    KEY_FILE,
    ServerIdentity,
    certificate_names,
    load_identity,
    server_tls,
)
from lanchat.tls.transport import SEND_FLAGS, TlsSocket, connect_tls

# What TlsSocket may keep of ciphertext the kernel did not take: one step (SEND_CHUNK, 64 KiB)
# and its records' overhead. A number here, not the constant: the test checks the constant too.
MOST_UNSENT = 64 * 1024 + 1024


@pytest.fixture
def identity(tmp_path: Path) -> ServerIdentity:
    return load_identity(certificate_names("testhost", ["10.1.2.3"]), tmp_path / "tls")


# --- the key and its certificate --------------------------------------------------------------


def test_the_key_is_made_once_then_kept_owner_only(tmp_path: Path) -> None:
    folder = tmp_path / "config" / "tls"
    names = certificate_names("testhost", ["10.1.2.3"])
    first = load_identity(names, folder)
    assert first.created and first.reissued
    assert stat.S_IMODE(os.stat(folder / KEY_FILE).st_mode) == 0o600
    assert stat.S_IMODE(os.stat(folder).st_mode) == 0o700
    key_before = (folder / KEY_FILE).read_bytes()
    again = load_identity(names, folder)
    assert not again.created and not again.reissued  # same names: nothing is made
    assert again.fingerprint == first.fingerprint
    assert again.certificate == first.certificate
    assert (folder / KEY_FILE).read_bytes() == key_before


def test_new_addresses_reissue_the_certificate_with_the_same_key(tmp_path: Path) -> None:
    folder = tmp_path / "tls"
    first = load_identity(certificate_names("testhost", ["10.1.2.3"]), folder)
    moved = load_identity(certificate_names("testhost", ["10.1.2.3", "fd00::7%eth0"]), folder)
    assert moved.reissued and not moved.created
    assert moved.certificate != first.certificate
    assert moved.fingerprint == first.fingerprint  # the key's, not the certificate's
    certificate = x509.load_der_x509_certificate(moved.certificate)
    san = certificate.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert {str(n) for n in san.get_values_for_type(x509.IPAddress)} == {
        "127.0.0.1",
        "::1",
        "10.1.2.3",
        "fd00::7",
    }
    assert set(san.get_values_for_type(x509.DNSName)) == {
        "localhost",
        "testhost",
        "testhost.local",
    }
    on_disk = x509.load_pem_x509_certificate((folder / CERTIFICATE_FILE).read_bytes())
    assert on_disk.public_bytes(serialization.Encoding.DER) == moved.certificate


def test_an_unreadable_key_is_an_error_in_words(tmp_path: Path) -> None:
    from lanchat.errors import LanchatError

    folder = tmp_path / "tls"
    folder.mkdir()
    (folder / KEY_FILE).write_text("not a key\n")
    with pytest.raises(LanchatError) as raised:
        load_identity(["localhost"], folder)
    assert "cannot be used" in raised.value.message and "known_servers" in (raised.value.hint or "")


def test_the_fingerprint_is_the_sha256_of_the_public_key_info(identity: ServerIdentity) -> None:
    certificate = x509.load_der_x509_certificate(identity.certificate)
    spki = certificate.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    assert identity.fingerprint == hashlib.sha256(spki).digest()
    assert identity.spki_sha256 == ":".join(f"{b:02X}" for b in hashlib.sha256(spki).digest())


def test_fingerprints_are_shown_grouped_and_read_back_however_typed() -> None:
    digest = hashlib.sha256(b"a key").digest()
    shown = format_fingerprint(digest)
    groups = shown.split("-")
    assert len(groups) == 13 and all(len(g) == 4 for g in groups)
    assert shown == shown.upper() and "=" not in shown
    for typed in (
        shown,
        shown.lower(),
        shown.replace("-", ""),
        shown.replace("-", " "),
        " ".join(shown.replace("-", "")[i : i + 8] for i in range(0, 52, 8)),
        colon_hex(digest),  # as a browser shows it
        colon_hex(digest).replace(":", " ").lower(),  # Chrome's spaces
    ):
        assert parse_fingerprint(typed) == digest, typed
    for wrong in ("", "ABCD", shown[:-1], shown + "A", colon_hex(digest)[:-3], "0" * 51 + "1"):
        assert parse_fingerprint(wrong) is None, wrong


# --- TlsSocket -------------------------------------------------------------------------------


def tls_pair(identity: ServerIdentity, buffers: int = 0) -> tuple[TlsSocket, TlsSocket]:
    """(server side, client side) of a TLS session over a socketpair."""
    ours, theirs = socket.socketpair()
    if buffers:
        for sock in (ours, theirs):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, buffers)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, buffers)
    accepted: list[TlsSocket] = []
    server = threading.Thread(target=lambda: accepted.append(server_tls(identity).accept(ours)))
    server.start()
    client = connect_tls(theirs, WAIT)
    server.join(WAIT)
    assert accepted, "the server's handshake did not complete"
    return accepted[0], client


def frames(side: str, count: int) -> list[bytes]:
    return [f"{side} {i:06d} {'x' * (i % 200)}\n".encode() for i in range(count)]


def send_like_the_fanout(sock: TlsSocket, lines: list[bytes], batch: int) -> None:
    """Send as fanout.py does: one non-blocking send of what is owed (the rest of the last
    send, then new frames), and when the socket takes less, wait until it is writable."""
    pending = b""
    for start in range(0, len(lines), batch):
        data = pending + b"".join(lines[start : start + batch])
        try:
            sent = sock.send(data, SEND_FLAGS)
        except BlockingIOError:
            sent = 0
        pending = data[sent:]
        assert sock.unsent_bytes <= MOST_UNSENT  # one step's ciphertext at most
        while pending:
            assert select.select([], [sock], [], WAIT)[1], "never writable again"
            try:
                sent = sock.send(pending, SEND_FLAGS)
            except BlockingIOError:
                sent = 0
            pending = pending[sent:]


def read_lines(sock: TlsSocket, count: int, into: list[bytes]) -> None:
    buffer = b""
    sock.settimeout(WAIT)
    while len(into) < count:
        data = sock.recv(16384)
        if not data:
            return
        buffer += data
        *whole, buffer = buffer.split(b"\n")
        into.extend(line + b"\n" for line in whole)


def test_a_reader_and_a_writer_thread_on_each_side_move_many_frames_intact(
    identity: ServerIdentity,
) -> None:
    """Each side reads in one thread while another sends, as a relay's reader and its fan-out
    do; small socket buffers make the kernel refuse part of many sends (the held byte)."""
    server, client = tls_pair(identity, buffers=8192)
    count = 6000  # about 0.7 MB each way
    to_client, to_server = frames("down", count), frames("up", count)
    got_by_client: list[bytes] = []
    got_by_server: list[bytes] = []
    threads = [
        threading.Thread(target=send_like_the_fanout, args=(server, to_client, 7)),
        threading.Thread(target=lambda: [client.sendall(line) for line in to_server]),
        threading.Thread(target=read_lines, args=(client, count, got_by_client)),
        threading.Thread(target=read_lines, args=(server, count, got_by_server)),
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(4 * WAIT)
    assert not any(t.is_alive() for t in threads)
    # Everything arrived without another send to push the last ciphertext out, in order.
    assert got_by_client == to_client
    assert got_by_server == to_server
    assert client.channel_binding() == server.channel_binding()
    assert server.channel_binding() == hashlib.sha256(identity.certificate).digest()
    assert client.fingerprint == server.fingerprint == identity.fingerprint
    server.shutdown(socket.SHUT_WR)  # close_notify: the client reads the end of the stream
    client.settimeout(WAIT)
    assert client.recv(100) == b""
    server.close()
    client.close()


def test_a_send_the_kernel_takes_in_part_holds_one_byte_until_offered_again(
    identity: ServerIdentity,
) -> None:
    server, client = tls_pair(identity, buffers=4096)
    data = b"y" * 300_000 + b"\n"
    sent = server.send(data, SEND_FLAGS)
    assert 0 <= sent < len(data)  # the rest is the caller's to offer again, after it is writable
    assert 0 < server.unsent_bytes <= MOST_UNSENT  # one step's ciphertext, no more
    with pytest.raises(BlockingIOError):
        server.send(data[sent:], SEND_FLAGS)  # nothing went: nothing is taken
    received: list[bytes] = []
    reader = threading.Thread(target=read_lines, args=(client, 1, received))
    reader.start()
    send_like_the_fanout(server, [data[sent:]], 1)
    reader.join(WAIT)
    assert received == [data]
    server.close()
    client.close()


# --- a relay with TLS -------------------------------------------------------------------------


@pytest.fixture
def tls_relay(identity: ServerIdentity, request: Any) -> Iterator[Relay]:
    allow_plain = getattr(request, "param", False)
    relay = Relay("127.0.0.1", 0, tls=server_tls(identity, allow_plain=allow_plain))
    relay.start()
    yield relay
    relay.stop()
    assert relay.readers == 0


def tls_client(port: int) -> LineClient:
    """A LineClient whose connection is TLS (what `ncat --ssl` is, in code)."""
    client = LineClient(port)
    client.sock = connect_tls(client.sock, WAIT)  # type: ignore[assignment]
    return client


@pytest.mark.parametrize("tls_relay", [True], indirect=True)
def test_tls_and_plain_clients_chat_on_one_port_with_allow_plain(tls_relay: Relay) -> None:
    port = tls_relay.address[1]
    secure, plain, raw = tls_client(port), LineClient(port), tls_client(port)
    assert secure.hello("ana")["type"] == "welcome"
    assert plain.hello("ben")["type"] == "welcome"
    raw.wait_line("Welcome")  # a silent TLS client is greeted as raw, as a plain one is
    secure.send_json({"type": "message", "text": "over tls"})
    plain.wait_json(lambda f: f.get("text") == "over tls")
    raw.wait_line("ana> over tls")
    raw.send("from ncat --ssl\n")
    secure.wait_json(lambda f: f.get("text") == "from ncat --ssl")
    status = query_relay("127.0.0.1", port)
    assert status["server"]["tls"] is True and status["server"]["allow_plain"] is True
    tls_of = {c["name"]: c["tls"] for c in status["connections"]}
    assert tls_of["ana"] is True and tls_of["ben"] is False and tls_of["guest-1"] is True
    for client in (secure, plain, raw):
        client.close()


def test_plain_clients_are_told_to_use_tls_and_counted(tls_relay: Relay) -> None:
    port = tls_relay.address[1]
    hello = LineClient(port)
    error = hello.hello("ana")
    assert error["type"] == "error" and error["code"] == "tls-required"
    assert hello.wait_json(lambda f: f["type"] == "bye")["reason"] == "refused"
    silent = LineClient(port)  # ncat without --ssl says nothing first
    line = silent.read_line()
    assert line == (
        f"! This relay takes TLS connections only. Connect with: ncat --ssl 127.0.0.1 {port}, "
        f"or lanchat join 127.0.0.1:{port}"
    )
    assert silent.read_line() is None  # and then it is closed
    browser = LineClient(port)
    browser.send(f"GET /index.html?x=1 HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\r\n")
    answer = browser.read_all()
    assert answer[0].startswith("HTTP/1.1 308 ")
    assert f"Location: https://127.0.0.1:{port}/index.html?x=1\r" in answer
    assert "Cache-Control: no-store\r" in answer
    refused = {(r.reason, r.count) for r in tls_relay.refusals.take()}
    assert refused == {("tls-required", 3)}
    # The status question from this computer is answered in plain all the same.
    assert query_relay("127.0.0.1", port)["server"]["fingerprint"] == format_fingerprint(
        tls_relay.tls.fingerprint  # type: ignore[union-attr]
    )
    for client in (hello, silent, browser):
        client.close()


def test_the_page_and_its_websocket_over_https(tls_relay: Relay) -> None:
    port = tls_relay.address[1]
    page = tls_client(port)
    page.send(f"GET / HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\r\n")
    answer = page.read_all()
    assert answer[0] == "HTTP/1.1 200 OK\r" and any("<html" in line for line in answer)
    page.close()


def test_a_failed_handshake_costs_its_connection_and_one_log_line(
    tls_relay: Relay, caplog: pytest.LogCaptureFixture
) -> None:
    port = tls_relay.address[1]
    with caplog.at_level(logging.INFO, logger="lanchat.connection"):
        bad = socket.create_connection(("127.0.0.1", port), timeout=WAIT)
        bad.sendall(b"\x16\x03\x01\x00\x05hello")  # a record header, then no ClientHello
        assert bad.recv(100) == b"" or True  # an alert, or just the close
        bad.close()
        assert tls_relay.wait_readers(0, WAIT)
    failed = [r for r in caplog.records if "TLS handshake" in r.getMessage()]
    assert len(failed) == 1
    good = tls_client(port)  # the relay goes on
    assert good.hello("after")["type"] == "welcome"
    good.close()


def test_a_tls_reader_that_stops_reading_is_dropped_with_bounded_memory(
    identity: ServerIdentity,
) -> None:
    """The fan-out's backlog limit holds for a TLS client: what the kernel did not take is one
    step's ciphertext at most (TlsSocket.unsent_bytes, counted), the rest is the fan-out's.
    Dropped, it still finds whole lines and its last notice, after a close_notify."""
    relay = Relay(
        "127.0.0.1",
        0,
        max_rate=0,
        max_backlog_bytes=256 * 1024,
        tls=server_tls(identity),
    )
    relay.start()
    try:
        port = relay.address[1]
        raw = socket.socket()
        raw.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # and it stops reading
        raw.connect(("127.0.0.1", port))
        slow = connect_tls(raw, WAIT)
        slow.sendall(b"I will stop reading now\n")
        watcher = tls_client(port)
        watcher.hello("watcher")
        watching = Collector(watcher)
        talker = tls_client(port)  # raw: it does not get its own lines back
        text = "x" * 3000

        def dropped() -> bool:
            return any('"reason":"too-slow"' in line for line in watching.lines)

        most_unsent = 0
        for burst in range(100):  # 30 MB at most; the relay gives up on it well before
            talker.send("".join(f"{burst:03d}-{i:02d} {text}\n" for i in range(100)))
            held = [c.sock for c in relay.hub.fanout.clients if c.name == "guest-1"]
            most_unsent = max([most_unsent, *(getattr(s, "unsent_bytes", 0) for s in held)])
            if dropped():
                break
        assert wait_for(dropped), "the slow reader was never dropped"
        assert most_unsent <= MOST_UNSENT
        assert relay.wait_readers(2, 4 * WAIT)
        assert_dropped_at_a_line_end(slow, text)
        slow.close()
        talker.close()
        watching.close()
    finally:
        relay.stop()


# --- known_servers ----------------------------------------------------------------------------


def test_known_servers_pins_finds_and_replaces_keeping_the_rest_of_the_file(
    tmp_path: Path,
) -> None:
    from lanchat.tls.pins import KnownServers

    path = tmp_path / "known_servers"
    first, second = hashlib.sha256(b"1").digest(), hashlib.sha256(b"2").digest()
    known = KnownServers(path)
    assert known.lookup("10.0.0.5:7420") is None  # no file yet
    pin = known.pin("10.0.0.5:7420", first)
    assert pin.line == 3 and path.read_text().startswith("# lanchat's pinned servers")
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    with path.open("a") as f:  # what people add by hand: kept, or skipped when unreadable
        f.write("# the lab's server\n[fe80::1%eth0]:7420 not-a-fingerprint\n")
        f.write(f"[FD00::7]:7421 {colon_hex(second)}  # pasted from a browser\n")
    found = known.lookup("[fd00::7]:7421")
    assert found is not None and found.fingerprint == second and found.line == 6
    assert known.lookup("[fe80::1%eth0]:7420") is None
    replaced = known.replace("10.0.0.5:7420", second)
    assert replaced.line == 3 and known.lookup("10.0.0.5:7420").fingerprint == second  # type: ignore[union-attr]
    text = path.read_text()
    assert "# the lab's server" in text and "not-a-fingerprint" in text
    assert text.count("10.0.0.5:7420") == 1


def test_the_key_expected_first_the_given_fingerprint_then_the_pin_then_the_session(
    tmp_path: Path,
) -> None:
    from lanchat.errors import ExitCode, ServerKeyError
    from lanchat.tls.pins import KnownServers
    from lanchat.tls.trust import Expectation, check_server_key

    ours, theirs = hashlib.sha256(b"ours").digest(), hashlib.sha256(b"theirs").digest()
    known = KnownServers(tmp_path / "known_servers")
    where = "10.0.0.5:7420"

    def refused(key: bytes, expect: Expectation) -> str:
        with pytest.raises(ServerKeyError) as raised:
            check_server_key(where, key, expect, known)
        assert raised.value.exit_code == ExitCode.SERVER_KEY
        return f"{raised.value.message} {raised.value.hint}"

    # An announcement that names another key is refused before anything is pinned.
    assert "announcement on the LAN" in refused(ours, Expectation(announced=theirs))
    assert known.lookup(where) is None
    # First use: pinned, and said so.
    note = check_server_key(where, ours, Expectation(announced=ours), known)
    assert note == f"pinned {format_fingerprint(ours)} for {where}"
    assert check_server_key(where, ours, Expectation(), known) is None  # the pin holds
    said = refused(theirs, Expectation())
    assert f"pinned {format_fingerprint(ours)}, presented {format_fingerprint(theirs)}" in said
    assert f"line 3 of {tmp_path / 'known_servers'}" in said
    assert "given with --fingerprint" in refused(ours, Expectation(fingerprint=theirs))
    # A fingerprint given on purpose replaces the pin.
    note = check_server_key(where, theirs, Expectation(fingerprint=theirs), known)
    assert note == f"re-pinned {format_fingerprint(theirs)} for {where}"
    # A reconnect of a session whose key could not be pinned still wants the same key.
    elsewhere = KnownServers(tmp_path / "other")
    with pytest.raises(ServerKeyError, match="when this session started"):
        check_server_key(where, ours, Expectation(session=theirs), elsewhere)


def test_a_discovered_tls_server_is_joined_with_tls_and_its_announced_key() -> None:
    from lanchat.client import TlsOptions
    from lanchat.discovery import Server
    from lanchat.join import announced_tls

    digest = hashlib.sha256(b"k").digest()
    plain = Server("lobby on h1", "lobby", "h1", ("10.0.0.5",), 7420, 1, "", False)
    secure = Server(
        "lobby on h1",
        "lobby",
        "h1",
        ("10.0.0.5",),
        7420,
        1,
        "",
        False,
        tls=True,
        fingerprint=format_fingerprint(digest),
    )
    options = TlsOptions()
    assert announced_tls(options, plain) == options
    chosen = announced_tls(options, secure)
    assert chosen.wanted and chosen.expect.announced == digest
    assert chosen.again(digest).expect.session == digest


@pytest.mark.parametrize("tls_relay", [True], indirect=True)
def test_a_clienthello_a_little_late_is_served_and_one_after_the_greeting_never_relayed(
    tls_relay: Relay,
) -> None:
    port = tls_relay.address[1]
    watcher = LineClient(port)
    watcher.hello("watcher")
    # Later than the plain detection (0.25 s) but within the TLS relay's wait: still TLS.
    # (The pause is the behaviour under test, a slow client, not a synchronisation.)
    late = socket.create_connection(("127.0.0.1", port), timeout=WAIT)
    time.sleep(0.35)
    secure = connect_tls(late, WAIT)
    secure.sendall(b'{"type":"hello","version":1,"name":"late"}\n')
    watcher.wait_json(lambda f: f["type"] == "join" and f["name"] == "late")
    # After the plain greeting a ClientHello is too late: the connection ends, and its bytes
    # never reach the room as a line.
    too_late = LineClient(port)
    too_late.wait_line("Welcome")
    too_late.send(b"\x16\x03\x01\x00\x10 not a chat line\n")
    too_late.read_all()  # the relay closes the connection (no TimeoutError)
    watcher.send_json({"type": "message", "text": "still here"})
    frame = watcher.wait_json(lambda f: f["type"] == "message")
    assert frame["text"] == "still here"  # nothing came before it
    for client in (watcher, too_late):
        client.close()
    secure.close()


def test_a_refusal_at_accept_is_a_refusal_over_tls_too_not_a_downgrade(
    identity: ServerIdentity, tmp_path: Path
) -> None:
    """The relay refuses one connection too many as it accepts it, with one plain line, before
    it knows the client speaks TLS: a pinned client reports that refusal (exit 5), and does not
    take the plain line for a downgrade (exit 8)."""
    from lanchat.client import Connection, TlsOptions
    from lanchat.errors import RejectedError
    from lanchat.tls.pins import KnownServers

    relay = Relay("127.0.0.1", 0, max_per_address=1, limit_loopback=True, tls=server_tls(identity))
    relay.start()
    try:
        port = relay.address[1]
        known = KnownServers(tmp_path / "known_servers")
        known.pin(f"127.0.0.1:{port}", identity.fingerprint)
        first = tls_client(port)
        first.wait_line("Welcome")  # the one connection this address may have
        with pytest.raises(RejectedError, match="Too many connections"):
            Connection.open(
                "127.0.0.1", port, name="ana", timeout=WAIT, tls=TlsOptions(known=known)
            )
        first.close()
    finally:
        relay.stop()
