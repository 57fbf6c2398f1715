"""Live sockets below hypercorn (chat.raw_socket): what a browser sends is read in one
pass where it is plain text frames and by wsproto from the first byte that is not, so
frames that arrive together, pings among them, a message in fragments and a frame cut
in two all reach the room in order; and the start is refused if hypercorn changed."""

from __future__ import annotations

import asyncio

import pytest
from hypercorn.protocol.ws_stream import WSStream

from chat import raw_socket
from tests.kit import (
    LiveServer,
    Member,
    RawWebSocket,
    parse_server_frames,
    server_log_text,
    wait_until,
)
from tests.kit.forms import message_frame
from tests.kit.wire import ws_frame

pytestmark = pytest.mark.e2e


def _text(message: str) -> bytes:
    return ws_frame(0x1, message_frame(message).encode())


async def test_frames_arriving_together_are_all_read_in_order(live_server: LiveServer) -> None:
    async with Member(live_server, "Ann") as ann, Member(live_server, "Bob") as bob:
        code = await ann.create_room()
        await bob.join_room(code)
        watcher = await bob.open(code)
        raw = await asyncio.to_thread(RawWebSocket, live_server, f"/rooms/{code}/ws",
                                      cookie=ann.cookie_header())
        try:
            in_parts = message_frame("two, in parts").encode()
            cut = _text("four, cut in two")
            burst = b"".join([
                _text("one"),
                ws_frame(0x9, b"are you there?"),  # a ping among the messages
                ws_frame(0x1, in_parts[:9], fin=False),  # a message in two fragments
                ws_frame(0x0, in_parts[9:]),
                _text("three"),
                cut[:7],  # a frame whose end comes in the next packet
            ])
            await asyncio.to_thread(raw.sock.sendall, burst)
            await asyncio.sleep(0.2)
            await asyncio.to_thread(raw.sock.sendall, cut[7:])
            await asyncio.to_thread(raw.sock.sendall, _text("five"))

            expected = ["one", "two, in parts", "three", "four, cut in two", "five"]
            await wait_until(lambda: watcher.texts() == expected, what="every message, in order")
            received, _ = await asyncio.to_thread(raw.drain, 1)
            assert (0xA, b"are you there?") in parse_server_frames(received)
        finally:
            raw.close()
    log = server_log_text(live_server)
    assert "Traceback" not in log and "ERROR" not in log, log


def test_the_start_is_refused_when_hypercorn_reads_websockets_another_way(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    async def hands_messages_elsewhere(self: WSStream) -> None:
        return None

    monkeypatch.setattr(WSStream, "_handle_events", hands_messages_elsewhere)
    with pytest.raises(raw_socket.RawSocketError, match="app_put"):
        raw_socket.check_hypercorn()
