"""Live connections: the `/rooms/<code>/ws` WebSocket that htmx's `hx-ws` talks to.

Each connection reads frames and posts them through the hub, and has one writer task
draining a bounded queue of frames made by `chat.fragments`; a client that lets its
queue overflow is closed with 1013 (htmx reconnects and catches up) so it never holds up
the room. Close codes are in `chat.close_codes`, close reasons in `chat.texts`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque

from pydantic import ValidationError
from quart import Blueprint, session, websocket

from chat import current, rooms, security, texts
from chat.broker import RoomEvent
from chat.close_codes import (
    CATCH_UP,
    INTERNAL_ERROR,
    INVALID_PAYLOAD,
    POLICY_VIOLATION,
    TOO_BIG,
    UNSUPPORTED_DATA,
)
from chat.direct_socket import DirectWebsocket, Interrupted
from chat.forms import MessageFrame
from chat.hub import Hub, TooManyLookups
from chat.metrics import Counts
from chat.store import RoomGone

log = logging.getLogger("chat")
blueprint = Blueprint("live", __name__)

CLOSE_TIMEOUT = 2.0


class Refused(Exception):
    def __init__(self, code: int, reason: str) -> None:
        super().__init__(reason)
        self.code = code
        self.reason = reason


class Connection:
    """One socket's outgoing side: a bounded queue drained by one writer.

    The queue is a deque and one wake-up future rather than an asyncio.Queue: with one
    producer side that never waits and one consumer, that is all it needs, and an idle
    connection holds a third of the memory. The writer sends whatever is queued when it
    wakes as one frame (pages accept frames holding many out-of-band fragments).
    """

    __slots__ = ("_counts", "_limit", "_pending", "_socket", "_wakeup", "close_code", "user_id")

    def __init__(
        self, queue_size: int, socket: DirectWebsocket, counts: Counts, user_id: str
    ) -> None:
        self.user_id = user_id
        self._limit = queue_size
        self._counts = counts
        self._pending: deque[tuple[int | None, str]] = deque()
        self._wakeup: asyncio.Future[None] | None = None
        self._socket = socket
        # Set when the socket must close with this code; the reader is interrupted.
        self.close_code: int | None = None

    def __call__(self, event: RoomEvent) -> None:
        if event.skip_user != self.user_id:
            self.push(event.html, event.message_id)

    def push(self, html: str, message_id: int | None = None) -> None:
        if len(self._pending) >= self._limit:
            if self.close_code is None:
                self._counts.slow_client_closes += 1
            self.stop(CATCH_UP)  # fell behind: it reconnects and catches up
            return
        self._pending.append((message_id, html))
        wakeup = self._wakeup
        if wakeup is not None and not wakeup.done():
            wakeup.set_result(None)

    def stop(self, close_code: int) -> None:
        if self.close_code is None:
            self.close_code = close_code
            self._socket.interrupt()

    def interrupt_reader(self, _writer: object = None) -> None:
        """The writer ended (the client went, or a fault): stop reading too."""
        self._socket.interrupt()

    async def write(self, hub: Hub, code: str, after_id: int, since: int | None) -> None:
        """Send the member list and what the page missed, then everything queued.

        The subscription started before the catch-up was read, so a message can be in
        both; it is skipped the second time. Ids are compared one by one, not against a
        high-water mark: with several processes a message may arrive after a newer one.
        """
        send, counts = self._socket.send, self._counts
        await send(await hub.members_frame(code))
        counts.frames_delivered += 1
        caught_up: set[int] = set()
        catching_up = False
        async for message_ids, frame in hub.catch_up_frames(code, after_id, since):
            if not catching_up:
                catching_up = True
                counts.catch_ups += 1  # counted as it starts: the page may show it at once
            caught_up.update(message_ids)
            await send(frame)
            counts.frames_delivered += 1
        pending = self._pending
        loop = asyncio.get_running_loop()
        while True:
            while not pending:
                self._wakeup = loop.create_future()
                await self._wakeup
            parts: list[str] = []
            while pending:
                message_id, html = pending.popleft()
                if caught_up and message_id in caught_up:
                    caught_up.discard(message_id)
                    continue
                parts.append(html)
            if parts:
                await send("".join(parts))
                counts.frames_delivered += 1


def _number_arg(name: str) -> int | None:
    raw = websocket.args.get(name, "")
    return int(raw) if raw.isdecimal() and len(raw) < 19 else None


async def _admit(hub: Hub, code: str) -> tuple[str, str]:
    user_id, name = session.get("user_id"), session.get("name")
    if not user_id or not name:
        raise Refused(POLICY_VIOLATION, texts.NO_SESSION)
    if not security.is_same_origin(
        websocket.headers.get("Origin"), websocket.host, websocket.scheme
    ):
        raise Refused(POLICY_VIOLATION, texts.FOREIGN_ORIGIN)
    try:
        found = await hub.find_room(code, websocket.remote_addr or "unknown")
    except TooManyLookups:
        raise Refused(POLICY_VIOLATION, texts.TOO_MANY_UNKNOWN_ROOMS) from None
    if not found:
        raise Refused(POLICY_VIOLATION, texts.ROOM_MISSING)
    if await hub.is_full_for(code, user_id):
        raise Refused(POLICY_VIOLATION, texts.ROOM_FULL)
    return user_id, name


@blueprint.websocket("/rooms/<code>/ws")
async def room_socket(code: str) -> None:
    hub = current.hub()
    code = rooms.normalize_code(code)
    # Accept before refusing: a refused handshake looks like a network error to htmx,
    # which would retry it forever.
    await websocket.accept()
    try:
        user_id, name = await _admit(hub, code)
    except Refused as refusal:
        await websocket.close(refusal.code, refusal.reason)
        return
    sockets = current.sockets()
    claim = await sockets.claim(user_id, websocket.remote_addr or "unknown")
    if claim is None:
        log.info("socket refused, too many connections: user=%s address=%s",
                 user_id, websocket.remote_addr)
        await websocket.close(POLICY_VIOLATION, texts.TOO_MANY_CONNECTIONS)
        return
    counts = current.metrics().counts
    socket = websocket._get_current_object()
    connection = Connection(current.settings().send_queue, socket, counts, user_id)
    counts.open_connections += 1
    try:
        await hub.enter(code, user_id, name, connection)
        try:
            close_code = await _serve(hub, code, user_id, name, connection)
        finally:
            await hub.exit(code, user_id, connection)
    finally:
        counts.open_connections -= 1
        # Free before the close frame goes out: a page that reconnects at once, here
        # or to another process, finds its place.
        await sockets.release(claim)
    if close_code is not None:
        with contextlib.suppress(Exception):
            await asyncio.wait_for(websocket.close(close_code), CLOSE_TIMEOUT)


async def _serve(
    hub: Hub, code: str, user_id: str, name: str, connection: Connection
) -> int | None:
    """Read in this task while one writer task sends, until either ends or the
    connection is stopped; the close code to send, if any."""
    # `after`: the page's newest message; `since`: the room's revision it was rendered at.
    after, since = _number_arg("after") or 0, _number_arg("since")
    writer = asyncio.create_task(connection.write(hub, code, after, since))
    writer.add_done_callback(connection.interrupt_reader)
    read_code: int | None = None
    read_error: Exception | None = None
    try:
        read_code = await _read(hub, code, user_id, name, connection)
    except Interrupted:
        pass  # stopped, or the writer ended: decided below
    except Exception as error:  # a fault while posting: the writer must still stop
        read_error = error
    finally:
        writer.cancel()
        await asyncio.gather(writer, return_exceptions=True)
    if connection.close_code is not None:
        if connection.close_code == CATCH_UP:
            log.info("connection asked to catch up: room=%s user=%s", code, user_id)
        return connection.close_code
    write_error = None if writer.cancelled() else writer.exception()
    for error in (read_error, write_error):
        if error is None:
            continue
        if isinstance(error, ConnectionError):
            return None  # the client is gone
        log.error("live connection failed: room=%s", code, exc_info=error)
        return INTERNAL_ERROR
    return read_code


async def _read(hub: Hub, code: str, user_id: str, name: str, connection: Connection) -> int:
    """Post each frame's message (or pass on that its user is typing); returns a close
    code when a frame is unacceptable."""
    frame_max = current.settings().ws_frame_max
    while True:
        data = await websocket.receive()
        if not isinstance(data, str):  # binary (an empty binary frame arrives as None)
            return UNSUPPORTED_DATA
        if len(data) > frame_max:
            return TOO_BIG
        try:
            frame = MessageFrame.model_validate_json(data)
        except ValidationError:
            return INVALID_PAYLOAD
        if frame.message is None:  # only "I am typing"
            await hub.typing(code, user_id, name)
            continue
        try:
            reply = await hub.post_from_socket(code, user_id, name, frame.message, frame.nonce)
        except RoomGone:
            return POLICY_VIOLATION
        if reply is not None:  # for this page alone: its form back, or its message again
            connection.push(reply)
