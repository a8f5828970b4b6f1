"""TLS through the real entry point: `lanchat serve --tls --no-mdns` processes, each with a config
directory of its own (its key), ncat --ssl where present, and `lanchat join` pinning the key
in a config directory of the client's own (known_servers)."""

from __future__ import annotations

import json
import socket
import subprocess
import threading
from pathlib import Path
from typing import Any

from test_login import Forwarder

from conftest import WAIT, LanchatProcess, Ncat, free_port, lanchat_env, run_lanchat
from lanchat.errors import ExitCode


def env_for(config: Path, **extra: str) -> dict[str, str]:
    """A lanchat process's environment with its own config directory."""
    return {**lanchat_env(), "LANCHAT_CONFIG_DIR": str(config), **extra}


def serve_tls(
    lanchat_process: Any, config: Path, *extra: str, tls: bool = True
) -> tuple[LanchatProcess, int, dict[str, Any]]:
    """`lanchat serve --tls` on 127.0.0.1 and a free port: (process, port, its listening line)."""
    args = ["serve", "--host", "127.0.0.1", "--port", "0", "--json", "--no-mdns", *extra]
    process = lanchat_process(*args, *(["--tls"] if tls else []), env=env_for(config))
    listening = process.wait_json(lambda e: e.get("event") == "listening", timeout=10)
    return process, int(listening["port"]), listening


def test_serve_tls_makes_its_key_once_and_shows_the_same_fingerprint_after_a_restart(
    lanchat_process: Any, tmp_path: Path
) -> None:
    first, _, listening = serve_tls(lanchat_process, tmp_path / "server")
    tls = listening["tls"]
    assert tls["new_key"] is True and tls["allow_plain"] is False
    assert len(tls["fingerprint"].split("-")) == 13
    assert listening["web"] is None or all(u.startswith("https://") for u in listening["web"])
    assert first.terminate() == 0
    # LANCHAT_TLS=1 is --tls too.
    args = ["serve", "--host", "127.0.0.1", "--port", "0", "--json", "--no-mdns"]
    again = lanchat_process(*args, env=env_for(tmp_path / "server", LANCHAT_TLS="1"))
    listening = again.wait_json(lambda e: e.get("event") == "listening", timeout=10)
    assert listening["tls"]["fingerprint"] == tls["fingerprint"]
    assert listening["tls"]["new_key"] is False


def test_allow_plain_needs_tls() -> None:
    result = run_lanchat("serve", "--no-mdns", "--allow-plain")
    assert result.returncode == 2
    assert "--allow-plain only means something with --tls" in result.stderr


def test_ncat_ssl_chats_with_a_plain_lanchat_client_on_one_port(
    lanchat_process: Any, tmp_path: Path
) -> None:
    serve, port, _ = serve_tls(lanchat_process, tmp_path / "server", "--allow-plain")
    ben = lanchat_process(
        "join",
        f"127.0.0.1:{port}",
        "--name",
        "ben",
        "--json",
        stdin=subprocess.PIPE,
        env=env_for(tmp_path / "ben"),
    )
    serve.wait_json(lambda e: e.get("event") == "join" and e["name"] == "ben")
    ncat = Ncat(port, tls=True)
    try:
        ncat.wait_line("Welcome")
        ncat.send("hello over tls")
        ben.wait_json(lambda f: f.get("text") == "hello over tls")
        ben.proc.stdin.write("hi ncat\n")
        ben.proc.stdin.flush()
        ncat.wait_line("<ben> hi ncat")
        status = run_lanchat("status", "--port", str(port), "--json")
        document = json.loads(status.stdout)
        assert document["server"]["tls"] is True and document["server"]["allow_plain"] is True
        rows = {r["name"]: r["tls"] for r in document["connections"] if r["name"]}
        assert rows["ben"] is False and any(v for n, v in rows.items() if n != "ben")
        table = run_lanchat("status", "--port", str(port)).stdout
        assert "TLS: on (plain clients too)" in table and "raw+TLS" in table
    finally:
        ncat.close()
    ben.proc.stdin.close()
    assert ben.proc.wait(WAIT) == 0


def test_plain_ncat_is_told_how_to_connect_without_allow_plain(
    lanchat_process: Any, tmp_path: Path
) -> None:
    serve, port, _ = serve_tls(lanchat_process, tmp_path / "server")
    ncat = Ncat(port)
    try:
        line = ncat.wait_line("TLS")
        assert f"ncat --ssl 127.0.0.1 {port}" in line
    finally:
        ncat.close()
    refused = serve.wait_json(lambda e: e.get("event") == "refused")
    assert refused["reason"] == "tls-required"


# --- lanchat join: pinning -------------------------------------------------------------------


def join(
    port: int, config: Path, *extra: str, text: str = "hi\n"
) -> subprocess.CompletedProcess[str]:
    """A scripted `lanchat join` with its own config directory (its known_servers)."""
    return run_lanchat(
        "join", f"127.0.0.1:{port}", "--name", "ana", *extra, input=text, env=env_for(config)
    )


def known_servers(config: Path) -> list[str]:
    lines = (config / "known_servers").read_text().splitlines()
    return [line for line in lines if line and not line.startswith("#")]


def test_join_pins_the_key_on_first_use_reuses_it_and_refuses_a_new_key(
    lanchat_process: Any, tmp_path: Path
) -> None:
    port = free_port()
    client = tmp_path / "client"
    first, _, listening = serve_tls(lanchat_process, tmp_path / "server", "--port", str(port))
    fingerprint = listening["tls"]["fingerprint"]
    # Without --tls: the relay answers the plain attempt with tls-required, and TLS follows.
    result = join(port, client)
    assert result.returncode == 0, result.stderr
    assert f"pinned {fingerprint} for 127.0.0.1:{port}" in result.stderr
    assert known_servers(client) == [f"127.0.0.1:{port} {fingerprint}"]
    again = join(port, client, "--tls")
    assert again.returncode == 0, again.stderr
    assert "pinned" not in again.stderr  # the pin held
    assert first.terminate() == 0

    # Another relay on that port, with a key of its own: refused, loudly, and nothing joined.
    other, _, listening = serve_tls(lanchat_process, tmp_path / "other", "--port", str(port))
    new = listening["tls"]["fingerprint"]
    refused = join(port, client)
    assert refused.returncode == ExitCode.SERVER_KEY, refused.stderr
    assert f"pinned {fingerprint}, presented {new}" in refused.stderr
    assert f"line 3 of {client / 'known_servers'}" in refused.stderr
    assert f"--fingerprint {new}" in refused.stderr  # what to do if the change is expected
    assert "Traceback" not in refused.stderr
    assert known_servers(client) == [f"127.0.0.1:{port} {fingerprint}"]  # unchanged
    # The user checked the new key on the server's screen: --fingerprint re-pins it.
    accepted = join(port, client, "--fingerprint", new.lower().replace("-", " "))
    assert accepted.returncode == 0, accepted.stderr
    assert f"re-pinned {new} for 127.0.0.1:{port}" in accepted.stderr
    assert known_servers(client) == [f"127.0.0.1:{port} {new}"]
    assert other.terminate() == 0

    # The same port in plain now: a pinned server is never joined without TLS (a downgrade).
    plain = lanchat_process(
        "serve",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--json",
        "--no-mdns",
        env=env_for(tmp_path / "plain"),
    )
    plain.wait_json(lambda e: e.get("event") == "listening", timeout=10)
    downgrade = join(port, client)
    assert downgrade.returncode == ExitCode.SERVER_KEY, downgrade.stderr
    assert "answered without TLS, but it is pinned" in downgrade.stderr
    assert "a downgrade" in downgrade.stderr


def test_join_with_a_fingerprint_checks_it_before_joining(
    lanchat_process: Any, tmp_path: Path
) -> None:
    _, port, listening = serve_tls(lanchat_process, tmp_path / "server")
    fingerprint = listening["tls"]["fingerprint"]
    wrong = ("B" if fingerprint[0] == "A" else "A") + fingerprint[1:]
    refused = join(port, tmp_path / "c1", "--fingerprint", wrong)
    assert refused.returncode == ExitCode.SERVER_KEY, refused.stderr
    assert "not the one given with --fingerprint" in refused.stderr
    assert not (tmp_path / "c1" / "known_servers").exists()
    right = join(port, tmp_path / "c2", "--fingerprint", fingerprint)
    assert right.returncode == 0, right.stderr
    assert f"pinned {fingerprint}" in right.stderr
    garbage = join(port, tmp_path / "c3", "--fingerprint", "not-a-fingerprint")
    assert garbage.returncode == ExitCode.USAGE
    assert "is not a key fingerprint" in garbage.stderr


def test_a_scripted_join_reconnects_over_tls_and_stops_at_a_new_key(
    lanchat_process: Any, tmp_path: Path
) -> None:
    port = free_port()
    server_config = tmp_path / "server"
    first, _, _ = serve_tls(lanchat_process, server_config, "--port", str(port))
    ana = lanchat_process(
        "join",
        f"127.0.0.1:{port}",
        "--name",
        "ana",
        "--json",
        "--reconnect",
        "20",
        stdin=subprocess.PIPE,
        env=env_for(tmp_path / "client"),
    )
    first.wait_json(lambda e: e.get("event") == "join" and e["name"] == "ana")
    assert first.terminate() == 0
    # The same relay (same key) back on the port: ana resumes, over TLS.
    second, _, _ = serve_tls(lanchat_process, server_config, "--port", str(port))
    second.wait_json(lambda e: e.get("event") == "join" and e["name"] == "ana", timeout=20)
    document = json.loads(run_lanchat("status", "--port", str(port), "--json").stdout)
    assert [r["tls"] for r in document["connections"] if r["name"] == "ana"] == [True]
    assert second.terminate() == 0
    # Another key on the port: the reconnect is refused, and the session ends with code 8.
    serve_tls(lanchat_process, tmp_path / "impostor", "--port", str(port))
    assert ana.proc.wait(20) == ExitCode.SERVER_KEY
    assert "presented a different key than the one pinned" in ana.stderr()


class Cutter(Forwarder):
    """Between clients and the relay: forwards both ways until `cut` is set, then half of the
    relay's next chunk and nothing more, the connections left open (a PC switched off in the
    middle of a burst: no FIN, no reset, the rest of a TLS record never comes)."""

    def __init__(self, target: int) -> None:
        self.cut, self.done = threading.Event(), threading.Event()
        super().__init__(target)

    def _forward(
        self, data: bytes, client: socket.socket, server: socket.socket, *, from_client: bool
    ) -> None:
        if self.done.is_set():
            return  # gone quiet: what either side says goes nowhere
        if not from_client and self.cut.is_set():
            client.sendall(data[: len(data) // 2])
            self.done.set()
            return
        super()._forward(data, client, server, from_client=from_client)


def test_a_tls_join_notices_a_server_gone_in_the_middle_of_a_record(
    lanchat_process: Any, tmp_path: Path
) -> None:
    """Over TLS, join read with a blocking recv() after select(): when the half of a record had
    come and the rest never would, it waited for ever, its keepalive never ran, and the chat
    looked connected while it was dead. Now it gives up after --keepalive, as over plain TCP
    (tests/test_cli.py, test_scripted_join_notices_a_dead_server_and_exits_4)."""
    _, port, listening = serve_tls(lanchat_process, tmp_path / "server")
    cutter = Cutter(port)
    try:
        join = lanchat_process(
            "join", f"127.0.0.1:{cutter.port}", "--name", "kim",
            "--fingerprint", listening["tls"]["fingerprint"],
            "--keepalive", "2", "--reconnect", "0",
            stdin=subprocess.PIPE, env=env_for(tmp_path / "kim"),
        )  # fmt: skip
        join.wait_line("* Welcome")
        cutter.cut.set()
        join.proc.stdin.write("x" * 2000 + "\n")  # comes back as one record of ~2 KB
        join.proc.stdin.flush()
        assert cutter.done.wait(WAIT)
        assert join.proc.wait(4 * WAIT) == ExitCode.UNREACHABLE  # its input still open
        stderr = join.stderr()
        assert "the connection was lost before we were done" in stderr
        assert "Traceback" not in stderr
    finally:
        cutter.close()
