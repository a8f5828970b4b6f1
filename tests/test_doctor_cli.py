"""`lanchat doctor` through the real entry point, on loopback only (the lab tests cover the LAN):
exit codes, JSON, the text report, bad input, and the handshake probe seen by a real relay."""

from __future__ import annotations

import json
import socket
from typing import Any

from conftest import free_port, run_lanchat
from lanchat.errors import ExitCode
from lanchat.relay import Relay


def by_id(document: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {c["id"]: c for c in document["checks"]}


def test_a_loopback_server_fails_server_bind_with_exit_code_3(relay: Relay) -> None:
    port = relay.address[1]
    result = run_lanchat("doctor", "--no-mdns", "--port", str(port), "--json")
    assert result.returncode == ExitCode.CHECK_FAILED, result.stderr
    document = json.loads(result.stdout)
    assert document["mode"] == "server" and document["failed"] is True
    bind = by_id(document)["server.bind"]
    assert bind["status"] == "fail" and bind["facts"]["scope"] == "loopback"
    assert bind["fixes"][0]["commands"] == [f"lanchat serve --port {port}"]
    assert document["answer"]["verdict"].startswith("Not yet: server.bind")
    assert isinstance(document["seconds"], float)  # how long it took, for people; not a bound


def test_client_mode_against_a_relay_passes_and_the_room_does_not_see_the_probe(
    relay: Relay, connect: Any
) -> None:
    watcher = connect()
    watcher.hello("watcher")
    port = relay.address[1]
    result = run_lanchat("doctor", "--no-mdns", f"127.0.0.1:{port}", "--json")
    assert result.returncode == ExitCode.OK, result.stdout
    found = by_id(json.loads(result.stdout))
    assert found["peer.tcp"]["status"] == "pass"
    assert found["peer.lanchat"]["status"] == "pass"
    assert found["peer.lanchat"]["facts"]["room"] == "lobby"
    assert found["peer.network"]["status"] == "warn"  # this PC itself: loopback proves little
    watcher.send_json({"type": "who"})  # anything the probe caused would come before this
    assert watcher.wait_json(lambda f: f["type"] == "who")["names"] == ["watcher"]
    assert not [line for line in watcher.lines if '"join"' in line and "watcher" not in line]


def test_client_mode_on_this_pc_does_not_advise_the_command_just_run(relay: Relay) -> None:
    port = relay.address[1]
    result = run_lanchat("doctor", "--no-mdns", f"127.0.0.1:{port}")
    assert result.returncode == ExitCode.OK, result.stdout
    assert f"lanchat doctor 127.0.0.1:{port}" not in result.stdout
    assert f"lanchat doctor --port {port}" in result.stdout  # the server-mode doctor, here


def test_peer_option_and_refused_port() -> None:
    port = free_port()
    result = run_lanchat("doctor", "--no-mdns", "--peer", f"127.0.0.1:{port}", "--json")
    assert result.returncode == ExitCode.CHECK_FAILED
    document = json.loads(result.stdout)
    assert document["mode"] == "client" and document["target"] == f"127.0.0.1:{port}"
    tcp = by_id(document)["peer.tcp"]
    assert tcp["facts"]["outcome"] == "refused"
    assert tcp["fixes"][0]["run_on"] == "the server PC"


def test_something_else_on_the_port_is_not_lanchat() -> None:
    other = socket.create_server(("127.0.0.1", 0))
    port = other.getsockname()[1]
    try:
        result = run_lanchat(
            "doctor", "--no-mdns", f"127.0.0.1:{port}", "--timeout", "0.5", "--json"
        )
    finally:
        other.close()
    hello = by_id(json.loads(result.stdout))["peer.lanchat"]
    assert result.returncode == ExitCode.CHECK_FAILED
    assert hello["status"] == "fail" and hello["facts"]["outcome"] in ("silent", "dropped")


def test_the_text_report_for_people() -> None:
    port = free_port()
    result = run_lanchat("doctor", "--no-mdns", f"127.0.0.1:{port}")
    assert result.returncode == ExitCode.CHECK_FAILED
    text = result.stdout
    assert text.startswith(f"lanchat doctor - can this PC reach 127.0.0.1:{port}?")
    assert "peer.tcp" in text and "refused" in text
    assert "Fix (run on the server PC):" in text
    assert "\nAnswer: Can this PC reach the lanchat server" in text
    assert "\x1b[" not in text  # NO_COLOR and a pipe: plain text


def test_bad_input_is_a_usage_error_without_a_traceback() -> None:
    both = run_lanchat("doctor", "--no-mdns", "127.0.0.1:1", "--peer", "127.0.0.1:2")
    assert both.returncode == ExitCode.USAGE
    assert "error: Give the server once" in both.stderr
    bad = run_lanchat("doctor", "--no-mdns", "127.0.0.1:notaport")
    assert bad.returncode == ExitCode.USAGE and "is not an address" in bad.stderr
    zero = run_lanchat("doctor", "--no-mdns", "--port", "0")
    assert zero.returncode == ExitCode.USAGE
    for result in (both, bad, zero):
        assert "Traceback" not in result.stderr


def test_help_has_examples() -> None:
    result = run_lanchat("doctor", "--help")
    assert result.returncode == 0
    assert "lanchat doctor 192.168.1.23:7420" in result.stdout
    assert "Exit code 3" in result.stdout
