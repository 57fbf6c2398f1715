"""Live connections: the `/rooms/<code>/ws` WebSocket that htmx's `hx-ws` talks to.

Each connection reads frames and posts them through the hub, and has one writer task
draining a bounded queue of fragments; a client that lets its queue overflow is closed
with 1013 (htmx reconnects and catches up) so it never holds up the room.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from asyncio import FIRST_COMPLETED
from collections import deque

from pydantic import ValidationError
from quart import Blueprint, current_app, session, websocket

from chat import rooms, security
from chat.broker import RoomEvent
from chat.forms import MessageFrame
from chat.hub import CATCH_UP, Hub, TooManyLookups
from chat.store import RoomGone

log = logging.getLogger("chat")
blueprint = Blueprint("live", __name__)

POLICY_VIOLATION = 1008  # no session, foreign origin, unknown or full room
UNSUPPORTED_DATA = 1003  # binary frame
INVALID_PAYLOAD = 1007  # not the JSON hx-ws sends
TOO_BIG = 1009
INTERNAL_ERROR = 1011  # our fault: htmx reconnects and catches up
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
    connection holds a third of the memory.
    """

    __slots__ = ("_limit", "_pending", "_wakeup", "stopped")

    def __init__(self, queue_size: int) -> None:
        self._limit = queue_size
        self._pending: deque[tuple[int | None, str]] = deque()
        self._wakeup: asyncio.Future[None] | None = None
        # Resolves to the close code when the socket must close: no task waits on it.
        self.stopped: asyncio.Future[int] = asyncio.get_running_loop().create_future()

    def __call__(self, event: RoomEvent) -> None:
        self.push(event.html, event.message_id)

    def push(self, html: str, message_id: int | None = None) -> None:
        if len(self._pending) >= self._limit:
            self.stop(CATCH_UP)  # fell behind: it reconnects and catches up
            return
        self._pending.append((message_id, html))
        if self._wakeup is not None and not self._wakeup.done():
            self._wakeup.set_result(None)

    async def _next(self) -> tuple[int | None, str]:
        while not self._pending:
            self._wakeup = asyncio.get_running_loop().create_future()
            await self._wakeup
        return self._pending.popleft()

    def stop(self, close_code: int) -> None:
        if not self.stopped.done():
            self.stopped.set_result(close_code)

    async def write(self, hub: Hub, code: str, after_id: int) -> None:
        """Send the member list and what the page missed, then everything queued.

        The subscription started before the catch-up was read, so a message can be in
        both; it is skipped the second time. Ids are compared one by one, not against a
        high-water mark: with several processes a message may arrive after a newer one.
        """
        await websocket.send(await hub.members_frame(code))
        caught_up: set[int] = set()
        async for message_ids, frame in hub.catch_up_frames(code, after_id):
            await websocket.send(frame)
            caught_up.update(message_ids)
        while True:
            message_id, html = await self._next()
            if message_id in caught_up:
                caught_up.discard(message_id)
                continue
            await websocket.send(html)


def _hub() -> Hub:
    return current_app.extensions["chat.hub"]


def _after_id() -> int:
    raw = websocket.args.get("after", "0")
    return int(raw) if raw.isdecimal() and len(raw) < 19 else 0


async def _admit(hub: Hub, code: str) -> tuple[str, str]:
    user_id, name = session.get("user_id"), session.get("name")
    if not user_id or not name:
        raise Refused(POLICY_VIOLATION, "no session")
    if not security.is_same_origin(websocket.headers.get("Origin"), websocket.host):
        raise Refused(POLICY_VIOLATION, "foreign origin")
    try:
        found = await hub.find_room(code, websocket.remote_addr or "unknown")
    except TooManyLookups:
        raise Refused(POLICY_VIOLATION, "too many unknown rooms") from None
    if not found:
        raise Refused(POLICY_VIOLATION, rooms.ROOM_MISSING)
    if await hub.is_full_for(code, user_id):
        raise Refused(POLICY_VIOLATION, rooms.ROOM_FULL)
    return user_id, name


@blueprint.websocket("/rooms/<code>/ws")
async def room_socket(code: str) -> None:
    hub = _hub()
    code = rooms.normalize_code(code)
    # Accept before refusing: a refused handshake looks like a network error to htmx,
    # which would retry it forever.
    await websocket.accept()
    try:
        user_id, name = await _admit(hub, code)
    except Refused as refusal:
        await websocket.close(refusal.code, refusal.reason)
        return
    connection = Connection(hub.settings.send_queue)
    await hub.enter(code, user_id, name, connection)
    try:
        close_code = await _serve(hub, code, user_id, name, connection)
    finally:
        await hub.exit(code, user_id, connection)
    if close_code is not None:
        with contextlib.suppress(Exception):
            await asyncio.wait_for(websocket.close(close_code), CLOSE_TIMEOUT)


async def _serve(
    hub: Hub, code: str, user_id: str, name: str, connection: Connection
) -> int | None:
    """Run reader and writer until one ends or the connection is stopped; the close
    code to send, if any."""
    writer = asyncio.create_task(connection.write(hub, code, _after_id()))
    reader = asyncio.create_task(_read(hub, code, user_id, name, connection))
    try:
        await asyncio.wait((writer, reader, connection.stopped), return_when=FIRST_COMPLETED)
    finally:
        for task in (writer, reader):
            task.cancel()
        await asyncio.gather(writer, reader, return_exceptions=True)
    if connection.stopped.done():
        close_code = connection.stopped.result()
        if close_code == CATCH_UP:
            log.info("connection asked to catch up: room=%s user=%s", code, user_id)
        return close_code
    for task in (reader, writer):
        if task.done() and not task.cancelled() and task.exception() is not None:
            error = task.exception()
            if isinstance(error, ConnectionError):
                return None  # the client is gone
            log.error("live connection failed: room=%s", code, exc_info=error)
            return INTERNAL_ERROR
    if reader.done() and not reader.cancelled():
        return reader.result()
    return None


async def _read(hub: Hub, code: str, user_id: str, name: str, connection: Connection) -> int:
    """Post each frame's message; returns a close code when a frame is unacceptable."""
    frame_max = hub.settings.ws_frame_max
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
        try:
            posted = await hub.post_message(code, user_id, name, frame.message, frame.nonce)
        except rooms.RuleBroken as broken:
            # The page cleared its input when the message left: give the text back
            # with the reason, under the same nonce, so sending it again is safe.
            form = hub.fragments.message_form_frame(
                code, frame.message, str(broken), frame.nonce or None
            )
            connection.push(form)
        except RoomGone:
            return POLICY_VIOLATION
        else:
            if not posted.new:
                # Sent again (queued while the socket was down): the room already has
                # it, and this page shows it once it gets it (pages upsert by id).
                connection.push(hub.fragments.messages_frame((posted.message,)))
