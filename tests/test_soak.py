"""scripts/soak: a few seconds with a few clients, against a fresh relay it starts itself (the
long run, 200 clients for 10 minutes, is run by hand: docs/reliability.md, "The soak")."""

from __future__ import annotations

import subprocess
import sys

from conftest import ROOT, lanchat_env

SOAK = ROOT / "scripts" / "soak"
# 14 clients (10 well-behaved) for 4 s, chatting and resuming faster than the defaults.
SHORT = ("--clients", "14", "--seconds", "4", "--report-every", "1", "--rate", "5")
SHORT += ("--reconnect-every", "1")


def test_a_short_soak_loses_nothing_and_says_so_last() -> None:
    result = subprocess.run(
        [sys.executable, str(SOAK), *SHORT],
        capture_output=True,
        text=True,
        timeout=60,
        env=lanchat_env(),
        cwd=ROOT,
    )
    lines = result.stdout.splitlines()
    assert result.returncode == 0, result.stdout + result.stderr
    assert lines[0].startswith("soak: 14 clients (")
    reports = [line for line in lines[1:-1] if "delivered" in line]
    assert len(reports) >= 3 and all("threads" in line and "fds" in line for line in reports)
    last = lines[-1]
    assert last.startswith("soak: OK: nothing lost, nothing duplicated;"), last
    assert "reconnects 0," not in last  # the well-behaved clients did resume meanwhile
    assert "Traceback" not in result.stderr


def test_soak_refuses_too_few_clients_in_words() -> None:
    result = subprocess.run(
        [sys.executable, str(SOAK), "--clients", "3", "--seconds", "1"],
        capture_output=True,
        text=True,
        timeout=60,
        env=lanchat_env(),
        cwd=ROOT,
    )
    assert result.returncode == 2
    assert "fewer than 2 well-behaved" in result.stderr and "Traceback" not in result.stderr
