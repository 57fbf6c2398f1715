"""The send path of a live connection: one frame for what queued up, a stoppable read,
and the start refused if Quart no longer builds its WebSocket the way we rely on."""

from __future__ import annotations

import asyncio

import pytest
from quart import Quart
from quart.wrappers.websocket import Websocket

from chat import direct_socket
from chat.broker import RoomEvent
from chat.metrics import Counts
from chat.outgoing import Connection


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

    def write_frame(self, frame: bytes) -> bool:
        return False  # no transport of its own: everything goes through send


class QuietHub:
    """A room with no members to list and nothing to catch up."""

    async def members_frame(self, code: str) -> str:
        return "<members/>"

    async def catch_up_frames(self, code: str, after_id: int, since: int | None = None):
        for _ in ():
            yield [], ""


async def _frames_after(connection: Connection, socket: RecordingSocket, count: int) -> list[str]:
    await connection.catch_up(QuietHub(), "ROOM", 0, None)  # type: ignore[arg-type]
    try:
        while len(socket.frames) < count:
            socket.sent.clear()
            await asyncio.wait_for(socket.sent.wait(), 2)
    finally:
        await connection.finish()
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


async def test_a_connection_stopped_as_it_came_sends_no_catch_up() -> None:
    # A page that connects while the server shuts down is closed at once (1012), and is
    # not sent the member list and history first.
    socket = RecordingSocket()
    connection = Connection(256, socket, Counts(), "user-1")  # type: ignore[arg-type]
    connection.stop(1012)
    await connection.catch_up(QuietHub(), "ROOM", 0, None)  # type: ignore[arg-type]
    connection(RoomEvent("ROOM", "<a id=1/>", 1))
    await asyncio.sleep(0.05)
    await connection.finish()
    assert socket.frames == []


async def test_a_connection_that_falls_behind_is_stopped_and_its_read_interrupted() -> None:
    socket = RecordingSocket()
    connection = Connection(2, socket, Counts(), "user-1")  # type: ignore[arg-type]
    for n in range(3):
        connection(RoomEvent("ROOM", f"<a id={n}/>", n))
    assert connection.close_code == 1013
    assert socket.interruptions == 1
    connection.stop(1012)  # the first reason stands
    assert connection.close_code == 1013


def _socket_with_inbox(app: Quart) -> tuple[direct_socket.DirectWebsocket, asyncio.Queue]:
    """A socket as Quart builds it for a connection, reading from a queue of server events."""
    connection = direct_socket.DirectConnection(app, {
        "type": "websocket", "path": "/", "query_string": b"", "scheme": "ws", "headers": [],
        "root_path": "", "http_version": "1.1", "subprotocols": []})
    events: asyncio.Queue = asyncio.Queue()

    async def asgi_send(message: object) -> None:
        return None

    connection.queue.attach(events.get)
    socket = connection._create_websocket_from_scope(asgi_send)
    socket._accepted = True
    return socket, events


async def test_a_read_gets_frames_and_stops_when_interrupted_or_the_client_goes() -> None:
    app = Quart(__name__)
    direct_socket.install(app)
    socket, events = _socket_with_inbox(app)
    await events.put({"type": "websocket.connect"})
    await events.put({"type": "websocket.receive", "text": "hello"})
    assert await socket.receive() == "hello"
    reading = asyncio.create_task(socket.receive())
    await asyncio.sleep(0)
    socket.interrupt()  # the pending read stops ...
    with pytest.raises(direct_socket.Interrupted):
        await asyncio.wait_for(reading, 2)
    with pytest.raises(direct_socket.Interrupted):  # ... and so does the next
        await socket.receive()

    gone, events = _socket_with_inbox(app)
    await events.put({"type": "websocket.disconnect", "code": 1001})
    for _ in range(2):  # every read after the client went says so
        with pytest.raises(direct_socket.Disconnected):
            await gone.receive()


async def test_an_interrupt_does_not_swallow_a_shutdown_cancelling_the_reader() -> None:
    app = Quart(__name__)
    direct_socket.install(app)
    socket, _ = _socket_with_inbox(app)
    reading = asyncio.create_task(socket.receive())
    await asyncio.sleep(0)
    reading.cancel()  # the server shutting down
    socket.interrupt()
    with pytest.raises(asyncio.CancelledError):
        await reading


def test_the_start_is_refused_when_quart_builds_another_websocket() -> None:
    class Changed(Websocket):
        def __init__(self, *args, **kwargs) -> None:
            super().__init__(*args, **kwargs)
            self._send = lambda data: None  # no longer partial(send_data, send)

    class Subclass(direct_socket.DirectWebsocket, Changed):
        pass

    app = Quart(__name__)
    app.websocket_class = Subclass
    app.asgi_websocket_class = direct_socket.DirectConnection
    with pytest.raises(direct_socket.SocketHookError, match="send_data"):
        direct_socket.check_quart(app)
