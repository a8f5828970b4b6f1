"""lanchat/paths.py: the config directory is the user's own and secrets are written owner-only."""

from __future__ import annotations

import os
import stat
import sys

import pytest

from lanchat.paths import CONFIG_DIR_ENV, config_dir, write_private


def test_config_dir_follows_the_environment(tmp_path, monkeypatch):
    monkeypatch.setenv(CONFIG_DIR_ENV, str(tmp_path / "conf"))
    path = config_dir()
    assert path == tmp_path / "conf"
    assert path.is_dir()


def test_config_dir_is_not_made_when_only_asked(tmp_path, monkeypatch):
    monkeypatch.setenv(CONFIG_DIR_ENV, str(tmp_path / "absent"))
    assert not config_dir(create=False).exists()


@pytest.mark.skipif(sys.platform == "win32", reason="file modes are POSIX")
def test_secrets_are_written_owner_only(tmp_path, monkeypatch):
    monkeypatch.setenv(CONFIG_DIR_ENV, str(tmp_path / "conf"))
    target = config_dir() / "secret"
    write_private(target, b"one")
    write_private(target, b"two")  # replaced whole
    assert target.read_bytes() == b"two"
    assert stat.S_IMODE(os.stat(target).st_mode) == 0o600
    assert stat.S_IMODE(os.stat(config_dir()).st_mode) == 0o700
    assert not list(config_dir().glob("*.tmp"))
