"""Starting the server: it refuses, saying why, rather than running half-configured."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from chat import __main__ as launcher
from chat import assets


def test_missing_htmx_assets_stop_the_server_and_name_the_install_command(
    tmp_path, monkeypatch, capsys
):
    monkeypatch.setattr(assets, "HTMX_DIST", tmp_path / "not-installed")
    monkeypatch.setenv("CHAT_DATABASE_URL", f"sqlite:///{tmp_path / 'chat.db'}")

    assert launcher.main(["--bind", "127.0.0.1:0"]) != 0

    error = capsys.readouterr().err
    assert "htmx assets are missing" in error
    assert "npm ci" in error


@pytest.mark.parametrize(
    ("variable", "value"),
    [("CHAT_CODE_LENGTH", "four"), ("CHAT_EMPTY_ROOM_TTL", "-5"), ("CHAT_MESSAGE_RATE", "lots")],
)
def test_a_bad_setting_stops_the_real_server_naming_the_variable(tmp_path, variable, value):
    env = {**os.environ, "CHAT_DATABASE_URL": f"sqlite:///{tmp_path / 'chat.db'}", variable: value}
    result = subprocess.run(
        [sys.executable, "-m", "chat", "--bind", "127.0.0.1:0"],
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode != 0
    assert variable in result.stderr
    assert not (tmp_path / "chat.db").exists()  # refused before touching anything
