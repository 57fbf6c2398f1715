"""The send path of a live connection: one frame for what queued up, a stoppable read,
and the start refused if Quart no longer builds its WebSocket the way we rely on."""

from __future__ import annotations

import asyncio

import pytest
from quart import Quart
from quart.wrappers.websocket import Websocket

from chat import direct_socket
from chat.broker import RoomEvent
from chat.live import Connection
from chat.metrics import Counts


class RecordingSocket:
    """What the writer sees of the socket: frames sent, and interruptions."""

    def __init__(self) -> None:
        self.frames: list[str] = []
        self.interruptions = 0
        self.sent = asyncio.Event()

    async def send(self, data: str) -> None:
        self.frames.append(data)
        self.sent.set()

    def interrupt(self) -> None:
        self.interruptions += 1


class QuietHub:
    """A room with no members to list and nothing to catch up."""

    async def members_frame(self, code: str) -> str:
        return "<members/>"

    async def catch_up_frames(self, code: str, after_id: int, since: int | None = None):
        for _ in ():
            yield [], ""


async def _frames_after(connection: Connection, socket: RecordingSocket, count: int) -> list[str]:
    writer = asyncio.create_task(connection.write(QuietHub(), "ROOM", 0, None))
    try:
        while len(socket.frames) < count:
            socket.sent.clear()
            await asyncio.wait_for(socket.sent.wait(), 2)
    finally:
        writer.cancel()
        await asyncio.gather(writer, return_exceptions=True)
    return socket.frames


async def test_fragments_queued_together_leave_as_one_frame() -> None:
    socket = RecordingSocket()
    connection = Connection(256, socket, Counts(), "user-1")  # type: ignore[arg-type]
    connection(RoomEvent("ROOM", "<a id=1/>", 1))
    connection(RoomEvent("ROOM", "<a id=2/>", 2))
    connection(RoomEvent("ROOM", "<typing/>", None, skip_user="user-1"))  # not for its typist
    connection(RoomEvent("ROOM", "<notice/>", None))
    frames = await _frames_after(connection, socket, 2)
    assert frames == ["<members/>", "<a id=1/><a id=2/><notice/>"]


async def test_a_connection_that_falls_behind_is_stopped_and_its_read_interrupted() -> None:
    socket = RecordingSocket()
    connection = Connection(2, socket, Counts(), "user-1")  # type: ignore[arg-type]
    for n in range(3):
        connection(RoomEvent("ROOM", f"<a id={n}/>", n))
    assert connection.close_code == 1013
    assert socket.interruptions == 1
    connection.stop(1012)  # the first reason stands
    assert connection.close_code == 1013


async def test_an_interrupted_read_raises_and_messages_before_it_still_arrive() -> None:
    app = Quart(__name__)
    direct_socket.install(app)
    connection = direct_socket.ASGIWebsocketConnection(app, {
        "type": "websocket", "path": "/", "query_string": b"", "scheme": "ws", "headers": [],
        "root_path": "", "http_version": "1.1", "subprotocols": []})

    async def asgi_send(message: object) -> None:
        return None

    socket = connection._create_websocket_from_scope(asgi_send)
    socket._accepted = True
    await connection.queue.put("hello")
    socket.interrupt()
    assert await socket.receive() == "hello"
    with pytest.raises(direct_socket.Interrupted):
        await socket.receive()


def test_the_start_is_refused_when_quart_builds_another_websocket() -> None:
    class Changed(Websocket):
        def __init__(self, *args, **kwargs) -> None:
            super().__init__(*args, **kwargs)
            self._send = lambda data: None  # no longer partial(send_data, send)

    class Subclass(direct_socket.DirectWebsocket, Changed):
        pass

    app = Quart(__name__)
    app.websocket_class = Subclass
    with pytest.raises(direct_socket.SocketHookError, match="send_data"):
        direct_socket.check_quart(app)
