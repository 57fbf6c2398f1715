"""The WebSocket our handlers get: Quart's, with a direct send, a read straight from the
ASGI server, and a way to stop that read.

Quart 0.22's `Websocket.send` yields to the loop (`asyncio.sleep(0)`), rebuilds headers
through `accept()` and fires the `websocket_sent` signal on every send; `receive` calls
`accept()` every time too. A live connection sends a frame per delivery, so
`DirectWebsocket` (installed with Quart's public hook `app.websocket_class`) accepts once
and then hands frames straight to the ASGI server's `send`. Nothing here listens to
`websocket_sent` or `websocket_received`.

Quart's `ASGIWebsocketConnection` runs each socket as two more tasks (one copying the
server's events into a queue of its own, one running the handler). `DirectConnection`
(installed with `app.asgi_websocket_class`) runs the handler in the server's own task,
which reads the server's events itself: two tasks and a queue less per socket, and the
server's bounded queue holds back a client that sends faster than it is read.

`interrupt()` makes the handler's pending (or next) `receive()` raise `Interrupted`: the
writer or the hub can stop a connection's read, and only its read (the pending `receive`
is cancelled and the cancellation taken back, so a shutdown's cancellation still goes
through).

Once accepted, the socket goes below hypercorn where it can (`chat.raw_socket`): frames
in are read there, and `write_frame()` puts a frame built once for the room straight
onto the transport (False where it cannot: the caller then sends the usual way).

What Quart builds is checked at start (`check_quart`): `SocketHookError` if it changed;
`chat.raw_socket` checks hypercorn the same way.
"""

from __future__ import annotations

import asyncio
from functools import partial
from typing import Any

from quart import Quart
from quart.asgi import ASGIWebsocketConnection
from quart.wrappers.websocket import Websocket

from chat.raw_socket import check_hypercorn, raw_socket


class SocketHookError(RuntimeError):
    """Quart no longer builds its Websocket the way `DirectWebsocket` relies on."""


class Interrupted(Exception):
    """`receive()` was interrupted: the connection is being stopped."""


class Disconnected(ConnectionError):
    """The client went away while the handler was reading."""


class Inbox:
    """The handler's side of the server's events: frames in, a disconnect raised, and a
    read that `interrupt()` stops."""

    __slots__ = ("_gone", "_reader", "_receive", "_stopped")

    def __init__(self) -> None:
        self._receive: Any = None
        self._reader: asyncio.Task | None = None
        self._stopped = False
        self._gone: Disconnected | None = None

    def attach(self, receive: Any) -> None:
        self._receive = receive

    async def get(self) -> str | bytes | None:
        while True:
            if self._stopped:
                raise Interrupted
            if self._gone is not None:
                raise self._gone
            reader = self._reader = asyncio.current_task()
            try:
                event = await self._receive()
            except asyncio.CancelledError:
                if self._stopped and reader.uncancel() == 0:  # ours, not a shutdown's
                    raise Interrupted from None
                raise
            finally:
                self._reader = None
            kind = event["type"]
            if kind == "websocket.receive":
                return event.get("bytes") or event.get("text")
            if kind == "websocket.disconnect":
                self._gone = Disconnected(event.get("code"))

    def interrupt(self) -> None:
        if not self._stopped:
            self._stopped = True
            if self._reader is not None:
                self._reader.cancel()


def _asgi_send(send: Any) -> Any | None:
    if (isinstance(send, partial) and len(send.args) == 1 and not send.keywords
            and getattr(send.func, "__name__", "") == "send_data"):
        return send.args[0]
    return None


def _inbox(receive: Any) -> Inbox | None:
    inbox = getattr(receive, "__self__", None)
    return inbox if isinstance(inbox, Inbox) else None


class DirectConnection(ASGIWebsocketConnection):
    """Quart's ASGI WebSocket connection, run in the server's task (see the module)."""

    def __init__(self, app: Quart, scope: Any) -> None:  # Quart's, minus its queue
        self.app = app
        self.scope = scope
        self._accepted = False
        self._closed = False
        self.queue = Inbox()  # Quart gives the Websocket `self.queue.get` as its receive

    async def __call__(self, receive: Any, send: Any) -> None:
        self.queue.attach(receive)
        websocket = self._create_websocket_from_scope(send)
        await self.handle_websocket(websocket, send)


class DirectWebsocket(Websocket):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._accepted = False
        self._direct_send = _asgi_send(self._send)
        self._inbox = _inbox(self._receive)

    async def accept(self, headers: Any = None, subprotocol: str | None = None) -> None:
        await super().accept(headers, subprotocol)
        self._accepted = True
        raw = raw_socket(self._direct_send)
        if raw is not None:
            self.write_frame = raw.write  # type: ignore[method-assign]  # one call less

    def write_frame(self, frame: bytes) -> bool:
        """Write a frame made by `chat.frames` onto the transport now; False when it must
        be sent the usual way instead (see the module). Replaced by the raw socket's own
        `write` once accepted where it can go below hypercorn."""
        return False

    async def send(self, data: str | bytes) -> None:
        if not self._accepted or self._direct_send is None:
            await super().send(data)
        elif isinstance(data, str):
            await self._direct_send({"type": "websocket.send", "bytes": None, "text": data})
        else:
            await self._direct_send({"type": "websocket.send", "bytes": data, "text": None})

    async def receive(self) -> str | bytes | None:
        if not self._accepted:
            await self.accept()
        return await self._receive()

    def interrupt(self) -> None:
        """Make the pending or next `receive()` raise `Interrupted`."""
        if self._inbox is not None:
            self._inbox.interrupt()


def check_quart(app: Quart) -> None:
    """Build a Websocket the way Quart does and check what `DirectWebsocket` relies on."""

    async def asgi_send(message: object) -> None:
        return None

    scope = {"type": "websocket", "path": "/", "query_string": b"", "scheme": "ws",
             "headers": [], "root_path": "", "http_version": "1.1", "subprotocols": []}
    if app.asgi_websocket_class is not DirectConnection:
        raise SocketHookError("app.asgi_websocket_class is not DirectConnection")
    probe = DirectConnection(app, scope)
    socket = probe._create_websocket_from_scope(asgi_send)
    if not isinstance(socket, DirectWebsocket):
        raise SocketHookError("app.websocket_class is not DirectWebsocket")
    if socket._direct_send is not asgi_send:
        raise SocketHookError("Quart's Websocket no longer sends through "
                              "partial(send_data, send): check chat/direct_socket.py")
    if socket._inbox is not probe.queue:
        raise SocketHookError("Quart's Websocket no longer receives from the connection's "
                              "queue: check chat/direct_socket.py")


def install(app: Quart) -> None:
    app.websocket_class = DirectWebsocket
    app.asgi_websocket_class = DirectConnection
    check_quart(app)
    check_hypercorn()
