"""Issue 13's "done when", as one classroom: a `lanchat serve --tls --password-file` relay with an
operator password and a denied address; a student joins with `lanchat join` in a terminal
(the key pinned, the password asked), another with `ncat --ssl` and `/login`; a teacher logs in
with the operator password from another account and mutes one and kicks the other; a wrong
password, a denied address and a changed key each get a clear refusal. The parts one by one
are tests/test_login.py, tests/test_login_tls.py, tests/test_tls.py, tests/test_admission.py and
tests/test_relay_moderation.py; the page over HTTPS in a real Chromium,
tests/test_web_browser.py."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

from test_admission import connect_from
from test_login import OPERATOR_PW, ROOM_PW, WRONG_PW

from conftest import (
    LanchatProcess,
    Ncat,
    Terminal,
    free_port,
    lanchat_env,
    run_lanchat,
)
from lanchat.errors import ExitCode


def account(config: Path, **extra: str) -> dict[str, str]:
    """The environment of a user with lanchat files of their own (pins, keys, tokens)."""
    env = lanchat_env()
    env.pop("LANCHAT_PASSWORD", None)
    env.pop("LANCHAT_OPERATOR_PASSWORD", None)
    return {**env, "LANCHAT_CONFIG_DIR": str(config), **extra}


def start_relay(
    lanchat_process: Any, tmp_path: Path, port: int, server_files: str
) -> tuple[LanchatProcess, str]:
    """The relay on `port` with the lanchat files of `server_files`: its key and fingerprint."""
    (tmp_path / "room.pw").write_text(ROOM_PW + "\n", encoding="utf-8")
    (tmp_path / "operator.pw").write_text(OPERATOR_PW + "\n", encoding="utf-8")
    relay = lanchat_process(
        "serve", "--host", "127.0.0.1", "--port", str(port), "--json", "--no-mdns", "--tls",
        "--password-file", str(tmp_path / "room.pw"),
        "--operator-password-file", str(tmp_path / "operator.pw"),
        "--deny", "127.0.0.3",
        env=account(tmp_path / server_files),
    )  # fmt: skip
    listening = relay.wait_json(lambda e: e.get("event") == "listening", timeout=10)
    assert listening["password"] is True and listening["deny"] == ["127.0.0.3"]
    return relay, str(listening["tls"]["fingerprint"])


def ncat_lines_until(ncat: Ncat, marker: str, limit: int = 50) -> list[str]:
    """ncat's lines up to and including the first that holds `marker` (each with a deadline)."""
    lines: list[str] = []
    for _ in range(limit):
        lines.append(ncat.wait_line(""))
        if marker in lines[-1]:
            return lines
    raise AssertionError(f"{marker!r} not among ncat's next {limit} lines: {lines}")


def test_a_tls_room_with_a_password_a_teacher_and_three_refusals(
    lanchat_process: Any, tmp_path: Path
) -> None:
    port = free_port()
    relay, fingerprint = start_relay(lanchat_process, tmp_path, port, "server")
    address = f"127.0.0.1:{port}"
    student = account(tmp_path / "student")

    # A student in a terminal: the key is pinned on first use, the password asked, not echoed.
    ana = Terminal("join", "--tls", address, "--name", "ana", env=student)
    try:
        ana.wait_for(b"Password for 127.0.0.1:")
        ana.type(ROOM_PW.encode() + b"\r")
        ana.wait_for(b"Welcome to lobby, ana")
        assert ROOM_PW.encode() not in ana.screen
        assert f"pinned {fingerprint}".encode() in ana.screen
        pins = (tmp_path / "student" / "known_servers").read_text(encoding="utf-8")
        assert f"{address} {fingerprint}" in pins

        # Another with ncat --ssl: a /login line, over TLS only.
        ncat = Ncat(port, tls=True)
        try:
            ncat.wait_line("* This room needs a password: type /login PASSWORD")
            ncat.send(f"/login {ROOM_PW}")
            ncat.wait_line("* Password accepted.")
            guest = ncat.wait_line("* Welcome to lobby, ").split(", ", 1)[1].rstrip(".")
            ncat.send("hello from ncat")
            ana.wait_for(f"{guest}> hello from ncat".encode())

            # The teacher, from another account (no token file there): the operator password.
            teacher = lanchat_process(
                "join", "--tls", "--operator", address, "--name", "teach",
                stdin=subprocess.PIPE,
                env=account(tmp_path / "teacher", LANCHAT_OPERATOR_PASSWORD=OPERATOR_PW),
            )  # fmt: skip
            teacher.wait_line("* teach is now an operator")
            teacher.say("/mute ana 5")
            ana.wait_for(b"ana is muted for 5 minutes by teach")
            ana.type(b"can anyone hear me\r")
            ana.wait_for(b"You are muted by teach")
            teacher.say("the muted line went nowhere")
            seen = ncat_lines_until(ncat, "teach> the muted line went nowhere")
            assert not any("can anyone hear me" in line for line in seen), seen
            assert any("ana is muted for 5 minutes by teach" in line for line in seen), seen
            teacher.say(f"/kick {guest} shouting")
            ncat.wait_line("You were removed from the room by teach")
            # (ncat itself stays until its stdin ends, as it does after any server's close)
            ana.wait_for(f"{guest} was removed by teach".encode())
            moderation = relay.wait_json(lambda e: e.get("event") == "leave" and e["name"] == guest)
            assert moderation["reason"] == "kicked"
        finally:
            ncat.close()
    finally:
        ana.close()

    # A wrong password: a clear error and the exit code for it, after the relay's delay.
    wrong = run_lanchat(
        "join", "--tls", address, "--name", "eve", input="hi\n",
        env={**student, "LANCHAT_PASSWORD": WRONG_PW},
    )  # fmt: skip
    assert wrong.returncode == ExitCode.LOGIN_FAILED, wrong.stderr
    assert "password" in wrong.stderr.lower() and "Traceback" not in wrong.stderr

    bad = relay.wait_json(lambda e: e.get("event") == "refused")
    assert (bad["address"], bad["reason"]) == ("127.0.0.1", "bad-password")

    # A denied address: one line of reason, and the relay counts it.
    denied = connect_from("127.0.0.3", port)
    assert denied.read_all() == [
        "! This server does not accept connections from your address (127.0.0.3)."
    ]
    denied.close()
    refused = relay.wait_json(lambda e: e.get("event") == "refused")
    assert (refused["address"], refused["reason"]) == ("127.0.0.3", "denied")

    # The server's key changes (its lanchat files were reset): the student's join refuses,
    # showing both fingerprints, before sending anything.
    relay.terminate()
    relay, new_fingerprint = start_relay(lanchat_process, tmp_path, port, "server-reset")
    assert new_fingerprint != fingerprint
    changed = run_lanchat(
        "join", "--tls", address, "--name", "ana", input="hi\n",
        env={**student, "LANCHAT_PASSWORD": ROOM_PW},
    )  # fmt: skip
    assert changed.returncode == ExitCode.SERVER_KEY, changed.stderr
    assert fingerprint in changed.stderr and new_fingerprint in changed.stderr
    assert "Traceback" not in changed.stderr
