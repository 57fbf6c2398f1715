"""permessage-deflate as a browser meets it: a real `python -m chat` server, a client that
offers the extension exactly as Chromium does, and what the handshake agrees for each
`CHAT_WS_COMPRESSION`; and the start refused when hypercorn is not what the hook expects.
"""

from __future__ import annotations

import subprocess
import sys
import types

import pytest
from websockets.asyncio.client import connect

from chat import compression
from tests.kit import Member
from tests.kit.forms import message_frame
from tests.kit.server import PROJECT_ROOT, MakeServer

pytestmark = pytest.mark.e2e

CHROMIUM_OFFER = "permessage-deflate; client_max_window_bits"


@pytest.mark.parametrize(
    ("mode", "answer"),
    [
        ("off", None),
        ("small", "permessage-deflate; server_max_window_bits=10; client_max_window_bits=10"),
        ("default", "permessage-deflate; client_max_window_bits=15"),
    ],
)
async def test_the_handshake_answers_a_browser_offer_as_configured(
    make_live_server: MakeServer, mode: str, answer: str | None
) -> None:
    server = make_live_server(env={"CHAT_WS_COMPRESSION": mode, "CHAT_MESSAGE_RATE": "off"})
    async with Member(server, "Ada") as ada:
        code = await ada.create_room()
        cookie = ada.cookie_header()
    async with connect(
        f"{server.ws_url}/rooms/{code}/ws", origin=server.url,
        additional_headers={"Cookie": cookie}, compression="deflate",
    ) as ws:
        assert ws.request.headers["Sec-WebSocket-Extensions"] == CHROMIUM_OFFER
        assert ws.response.headers.get("Sec-WebSocket-Extensions") == answer
        # Messages still flow both ways: the client compresses what it sends when the
        # extension was agreed, and reads the server's (compressed) frames.
        await ws.send(message_frame("squeeze me " * 20))
        frames = []
        while not any("squeeze me" in frame for frame in frames):
            frames.append(await ws.recv())


def test_the_hook_refuses_a_hypercorn_without_the_name() -> None:
    changed = types.ModuleType("hypercorn.protocol.ws_stream")
    with pytest.raises(compression.CompressionHookError, match="PerMessageDeflate"):
        compression.install("off", changed)


def test_the_hook_refuses_a_handshake_that_no_longer_builds_the_extension() -> None:
    class Handshake:
        def accept(self) -> list:
            return []

    changed = types.ModuleType("hypercorn.protocol.ws_stream")
    changed.PerMessageDeflate = compression.PerMessageDeflate
    changed.Handshake = Handshake
    with pytest.raises(compression.CompressionHookError, match="no longer builds"):
        compression.install("off", changed)


def test_the_server_refuses_to_start_when_hypercorn_changed(tmp_path) -> None:
    """What an operator sees after an upgrade that moved the name: a one-line reason and
    a non-zero exit, not a server compressing again."""
    script = (
        "import sys, hypercorn.protocol.ws_stream as m; del m.PerMessageDeflate; "
        "from chat.__main__ import main; sys.exit(main())"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], cwd=PROJECT_ROOT, capture_output=True, text=True,
        timeout=30, check=False,
        env={"PATH": "/usr/bin:/bin", "CHAT_DATABASE_URL": f"sqlite:///{tmp_path}/chat.db"},
    )
    assert done.returncode != 0
    assert "chat: cannot start" in done.stderr and "PerMessageDeflate" in done.stderr
