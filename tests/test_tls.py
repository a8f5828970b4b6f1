"""lanchat/tls/: the relay's key and certificate, the fingerprint, TlsSocket under two threads,
and a relay with TLS on its port (in this process, on 127.0.0.1). The command line's TLS (serve
--tls, join pinning) is tests/test_tls_cli.py."""

from __future__ import annotations

import hashlib
import os
import select
import socket
import stat
import threading
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from conftest import WAIT
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
