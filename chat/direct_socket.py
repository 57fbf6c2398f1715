"""The WebSocket object our handlers get: Quart's, with a direct send and a stoppable read.

Quart 0.22's `Websocket.send` yields to the loop (`asyncio.sleep(0)`), rebuilds headers
through `accept()` and fires the `websocket_sent` signal on every send; `receive` calls
`accept()` every time too. A live connection sends a frame per delivery, so
`DirectWebsocket` (installed with Quart's public hook `app.websocket_class`) accepts once
and then hands frames straight to the ASGI server's `send`. Nothing here listens to
`websocket_sent`.

`interrupt()` makes the handler's pending (or next) `receive()` raise `Interrupted`, by
putting a marker into the queue Quart's receiver fills: the handler can read in its own
task and still be stopped by the writer or the hub, without cancelling a task Quart also
cancels when the client goes.

Both rely on how Quart builds the object (`send` is `partial(send_data, asgi_send)`,
`receive` is the `get` of an `asyncio.Queue`); `check_quart()` verifies that at start and
raises `SocketHookError` if Quart changed.
"""

from __future__ import annotations

import asyncio
from functools import partial
from typing import Any

from quart import Quart
from quart.asgi import ASGIWebsocketConnection
from quart.wrappers.websocket import Websocket


class SocketHookError(RuntimeError):
    """Quart no longer builds its Websocket the way `DirectWebsocket` relies on."""


class Interrupted(Exception):
    """`receive()` was interrupted: the connection is being stopped."""


_INTERRUPT = object()


def _asgi_send(send: Any) -> Any | None:
    if (isinstance(send, partial) and len(send.args) == 1 and not send.keywords
            and getattr(send.func, "__name__", "") == "send_data"):
        return send.args[0]
    return None


def _queue(receive: Any) -> asyncio.Queue | None:
    queue = getattr(receive, "__self__", None)
    return queue if isinstance(queue, asyncio.Queue) else None


class DirectWebsocket(Websocket):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._accepted = False
        self._direct_send = _asgi_send(self._send)
        self._inbox = _queue(self._receive)

    async def accept(self, headers: Any = None, subprotocol: str | None = None) -> None:
        await super().accept(headers, subprotocol)
        self._accepted = True

    async def send(self, data: str | bytes) -> None:
        if not self._accepted or self._direct_send is None:
            await super().send(data)
        elif isinstance(data, str):
            await self._direct_send({"type": "websocket.send", "bytes": None, "text": data})
        else:
            await self._direct_send({"type": "websocket.send", "bytes": data, "text": None})

    async def receive(self) -> str | bytes:
        if not self._accepted:
            await self.accept()
        data = await self._receive()
        if data is _INTERRUPT:
            raise Interrupted
        return data

    def interrupt(self) -> None:
        """Make the pending or next `receive()` raise `Interrupted` (idempotent enough:
        a second marker is never read)."""
        if self._inbox is not None:
            self._inbox.put_nowait(_INTERRUPT)


def check_quart(app: Quart) -> None:
    """Build a Websocket the way Quart does and check what `DirectWebsocket` relies on."""

    async def asgi_send(message: object) -> None:
        return None

    scope = {"type": "websocket", "path": "/", "query_string": b"", "scheme": "ws",
             "headers": [], "root_path": "", "http_version": "1.1", "subprotocols": []}
    probe = ASGIWebsocketConnection(app, scope)  # type: ignore[arg-type]
    socket = probe._create_websocket_from_scope(asgi_send)
    if not isinstance(socket, DirectWebsocket):
        raise SocketHookError("app.websocket_class is not DirectWebsocket")
    if socket._direct_send is not asgi_send:
        raise SocketHookError("Quart's Websocket no longer sends through "
                              "partial(send_data, send): check chat/direct_socket.py")
    if socket._inbox is not probe.queue:
        raise SocketHookError("Quart's Websocket no longer receives from an asyncio.Queue: "
                              "check chat/direct_socket.py")


def install(app: Quart) -> None:
    app.websocket_class = DirectWebsocket
    check_quart(app)
