"""TLS through the real entry point: `lanchat serve --tls --no-mdns` processes, each with a config
directory of its own (its key), ncat --ssl where present, and `lanchat join` pinning the key
in a config directory of the client's own (known_servers)."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

from conftest import WAIT, LanchatProcess, Ncat, lanchat_env, run_lanchat


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
