"""Logging in over TLS, end to end: `lanchat serve --tls` with a room password, `lanchat join`
over TLS (SCRAM-SHA-256-PLUS), ncat --ssl, a recording forwarder that sees only ciphertext, and
a relay in the middle with a certificate of its own, which the channel binding defeats. The
plain half is tests/test_login.py."""

from __future__ import annotations

import base64
import select
import socket
import ssl
import time
from pathlib import Path
from typing import Any

import pytest
from test_login import ROOM_PW, Forwarder, Recorder, refusals

from conftest import WAIT, LanchatProcess, LineClient, Ncat, lanchat_env, run_lanchat
from lanchat.errors import ExitCode

trustme = pytest.importorskip("trustme", reason="trustme is not installed")


def env_for(config: Path, **extra: str) -> dict[str, str]:
    env = lanchat_env()
    env.pop("LANCHAT_PASSWORD", None)
    return {**env, "LANCHAT_CONFIG_DIR": str(config), **extra}


def serve_tls(lanchat_process: Any, tmp_path: Path, *extra: str) -> tuple[LanchatProcess, int]:
    (tmp_path / "room.pw").write_text(ROOM_PW + "\n", encoding="utf-8")
    process = lanchat_process(
        "serve",
        "--host",
        "127.0.0.1",
        "--port",
        "0",
        "--json",
        "--no-mdns",
        "--tls",
        "--password-file",
        str(tmp_path / "room.pw"),
        *extra,
        env=env_for(tmp_path / "server"),
    )
    listening = process.wait_json(lambda e: e.get("event") == "listening", timeout=10)
    return process, int(listening["port"])


def test_over_tls_nothing_of_the_login_is_on_the_wire(lanchat_process: Any, tmp_path: Path) -> None:
    process, port = serve_tls(lanchat_process, tmp_path)
    recorder = Recorder(port)
    try:
        done = run_lanchat(
            "join",
            "--tls",
            f"127.0.0.1:{recorder.port}",
            "--name",
            "ana",
            input="hello\n",
            env=env_for(tmp_path / "client", LANCHAT_PASSWORD=ROOM_PW),
        )
        assert done.returncode == 0, done.stderr
    finally:
        recorder.close()
    process.wait_json(lambda e: e.get("event") == "message" and e["text"] == "hello")
    sent = bytes(recorder.sent)
    assert sent[:1] == b"\x16"  # a TLS handshake record: all of it is TLS
    secret = ROOM_PW.encode()
    # No SCRAM text at all (tests/test_login.py finds it in a plain recording), so nothing to
    # guess at offline without breaking TLS; and no form of the password.
    for text in (
        b"n=room",
        b"SCRAM",
        b"login",
        b'"data"',
        b"hello",
        secret,
        base64.b64encode(secret),
    ):
        assert text not in sent


def test_ncat_ssl_logs_in_with_login_and_plain_ncat_is_told_to_use_it(
    lanchat_process: Any, tmp_path: Path
) -> None:
    process, port = serve_tls(lanchat_process, tmp_path, "--allow-plain")
    ncat = Ncat(port, tls=True)
    try:
        ncat.wait_line("* This room needs a password: type /login PASSWORD")
        ncat.send(f"/login {ROOM_PW}")
        ncat.wait_line("* Password accepted.")
        ncat.wait_line("* Welcome to lobby")
    finally:
        ncat.close()
    plain = LineClient(port)  # --allow-plain: in, but it takes no password on plain TCP
    first = plain.wait_line("This room needs a password")
    assert f"`ncat --ssl 127.0.0.1 {port}`" in first
    plain.send(f"/login {ROOM_PW}\n")
    assert plain.read_all()[0].startswith("! The password was not checked")
    refusals(process, "plain-login", 1)
    plain.close()


class Middle(Forwarder):
    """A relay in the middle: it ends the client's TLS with a certificate of its own (a CA the
    client never heard of), opens its own TLS to the relay, and passes the plain text along."""

    def __init__(self, target: int, tmp_path: Path) -> None:
        ca = trustme.CA()
        self.server = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ca.issue_cert("127.0.0.1").configure_cert(self.server)
        self.client = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        self.client.check_hostname = False
        self.client.verify_mode = ssl.CERT_NONE
        super().__init__(target)

    def _connected(self, raw: socket.socket) -> None:
        try:
            near = self.server.wrap_socket(raw, server_side=True)
            far = self.client.wrap_socket(
                socket.create_connection(("127.0.0.1", self.target), timeout=WAIT)
            )
        except (OSError, ssl.SSLError):
            raw.close()
            return
        for sock in (near, far):
            sock.settimeout(WAIT)
        self._start(self._relay, near, far)

    def _relay(self, near: ssl.SSLSocket, far: ssl.SSLSocket) -> None:
        """Both directions in one thread: an SSL socket read by one thread while another
        writes to it (a pump per direction, as before) failed now and then, and the client
        saw the connection closed before any greeting."""
        peers = {near: far, far: near}
        deadline = time.monotonic() + 30
        while not self._stop.is_set() and time.monotonic() < deadline:
            # Bytes the TLS layer holds already are not seen by select().
            ready = [sock for sock in peers if sock.pending()]
            ready = ready or select.select(list(peers), [], [], 0.05)[0]
            try:
                chunks = [(source, source.recv(65536)) for source in ready]
                for source, data in chunks:
                    if not data:
                        raise ConnectionResetError("closed")
                    peers[source].sendall(data)
            except OSError:
                break
        for sock in peers:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass


def test_a_relay_in_the_middle_with_its_own_certificate_fails_the_login(
    lanchat_process: Any, tmp_path: Path
) -> None:
    """The client trusts the middle's key (a first use: it pins it), yet the login fails: its
    proof covers the certificate it saw, and the relay's is another (channel binding)."""
    process, port = serve_tls(lanchat_process, tmp_path)
    middle = Middle(port, tmp_path)
    try:
        done = run_lanchat(
            "join",
            "--tls",
            f"127.0.0.1:{middle.port}",
            "--name",
            "ana",
            input="hello\n",
            env=env_for(tmp_path / "client", LANCHAT_PASSWORD=ROOM_PW),
        )
    finally:
        middle.close()
    assert done.returncode == ExitCode.LOGIN_FAILED, done.stderr
    assert "channel binding does not match" in done.stderr
    refusals(process, "bad-login", 1)
