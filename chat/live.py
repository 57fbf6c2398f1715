"""Live connections: the `/rooms/<code>/ws` WebSocket that htmx's `hx-ws` talks to.

Each connection sends what the page missed, then reads frames and posts them through the
hub in the server's own task. A room's events go straight onto the socket's transport,
framed once for the room, while it keeps up; otherwise a short task sends the bounded
queue of fragments made by `chat.fragments` whenever it holds any, waiting for the
client. A client that lets its queue overflow is closed with 1013 (htmx reconnects and
catches up) so it never holds up the room.
Close codes are in `chat.close_codes`, close reasons in `chat.texts`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

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
from chat.frames import text_frame
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
    """One socket's outgoing side: events written straight to the transport while
    nothing waits before them, else a bounded list of fragments, sent by a short task
    that runs while anything is queued.

    An idle connection holds no task of its own. Whatever is queued when the task runs
    leaves as one frame (pages accept frames holding many out-of-band fragments), and
    direct writes start again once the queue is empty, so the order holds. Nothing is
    sent before the catch-up, which the handler sends first.
    """

    __slots__ = ("_caught_up", "_counts", "_limit", "_pending", "_sender", "_socket",
                 "_write_frame", "close_code", "user_id", "write_error")

    def __init__(
        self, queue_size: int, socket: DirectWebsocket, counts: Counts, user_id: str
    ) -> None:
        self.user_id = user_id
        self._limit = queue_size
        self._counts = counts
        self._pending: list[tuple[int | None, str]] = []
        self._socket = socket
        self._write_frame = socket.write_frame  # the accepted socket's: below hypercorn
        self._sender: asyncio.Task | None = None
        # Message ids the catch-up sent (skipped when they come live); None before it.
        self._caught_up: set[int] | None = None
        # Set when the socket must close with this code; the reader is interrupted.
        self.close_code: int | None = None
        self.write_error: Exception | None = None

    def __call__(self, event: RoomEvent) -> None:
        if event.skip_user == self.user_id:
            return
        # `_writes_directly()`, spelt out: this runs for every member of every event.
        if (self._caught_up is not None and not self._pending and self._sender is None
                and self.close_code is None):
            caught_up = self._caught_up
            if caught_up and event.message_id in caught_up:
                caught_up.discard(event.message_id)  # the catch-up sent it already
                return
            if self._write_frame(event.frame):  # framed once for the whole room
                self._counts.frames_delivered += 1
                return
        self.push(event.html, event.message_id)  # queued behind the rest, or waits for room

    def reply(self, html: str) -> None:
        """Send what is for this page alone (its form back, or its message again)."""
        if self._writes_directly() and self._write_frame(text_frame(html)):
            self._counts.frames_delivered += 1
            return
        self.push(html)

    def _writes_directly(self) -> bool:
        """True once caught up, while nothing waits to be sent before what comes next."""
        return (self._caught_up is not None and not self._pending and self._sender is None
                and self.close_code is None)

    def push(self, html: str, message_id: int | None = None) -> None:
        if len(self._pending) >= self._limit:
            if self.close_code is None:
                self._counts.slow_client_closes += 1
            self.stop(CATCH_UP)  # fell behind: it reconnects and catches up
            return
        self._pending.append((message_id, html))
        if self._sender is None and self._caught_up is not None:
            self._sender = asyncio.get_running_loop().create_task(self._send_pending())

    def stop(self, close_code: int) -> None:
        if self.close_code is None:
            self.close_code = close_code
            self._socket.interrupt()

    async def catch_up(self, hub: Hub, code: str, after_id: int, since: int | None) -> None:
        """Send the member list and what the page missed, then what queued meanwhile.

        The subscription started before the catch-up was read, so a message can be in
        both; it is skipped the second time. Ids are compared one by one, not against a
        high-water mark: with several processes a message may arrive after a newer one.
        """
        send, counts = self._socket.send, self._counts
        if self.close_code is not None:  # stopped as it came (the server shutting down)
            return
        await send(await hub.members_frame(code))
        counts.frames_delivered += 1
        caught_up: set[int] = set()
        frames = 0
        async for message_ids, frame in hub.catch_up_frames(code, after_id, since):
            if self.close_code is not None:
                return
            if not frames:
                counts.catch_ups += 1  # counted as it starts: the page may show it at once
            frames += 1
            caught_up.update(message_ids)
            await send(frame)
            counts.frames_delivered += 1
        self._caught_up = caught_up
        if self._pending and self._sender is None:
            self._sender = asyncio.get_running_loop().create_task(self._send_pending())

    async def _send_pending(self) -> None:
        caught_up, counts = self._caught_up, self._counts
        try:
            while self._pending:
                pending, self._pending = self._pending, []
                if caught_up:
                    pending = _not_yet_sent(pending, caught_up)
                if pending:
                    await self._socket.send("".join(html for _, html in pending))
                    counts.frames_delivered += 1
        except Exception as error:  # the client went, or a fault: stop reading too
            self.write_error = error
            self._socket.interrupt()
        finally:
            self._sender = None

    async def finish(self) -> None:
        """Stop sending: the connection is over (what is pushed from now on stays)."""
        self._caught_up = None
        sender = self._sender
        if sender is not None:
            sender.cancel()
            await asyncio.gather(sender, return_exceptions=True)


def _not_yet_sent(
    pending: list[tuple[int | None, str]], caught_up: set[int]
) -> list[tuple[int | None, str]]:
    fresh = []
    for message_id, html in pending:
        if message_id in caught_up:
            caught_up.discard(message_id)
        else:
            fresh.append((message_id, html))
    return fresh


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
    """Send the catch-up, then read in this task while sends run beside it, until the
    client goes or the connection is stopped; the close code to send, if any."""
    # `after`: the page's newest message; `since`: the room's revision it was rendered at.
    after, since = _number_arg("after") or 0, _number_arg("since")
    read_code: int | None = None
    read_error: Exception | None = None
    try:
        await connection.catch_up(hub, code, after, since)
        read_code = await _read(hub, code, user_id, name, connection)
    except Interrupted:
        pass  # stopped, or a send failed: decided below
    except Exception as error:  # the client went, or a fault while posting
        read_error = error
    finally:
        await connection.finish()
    if connection.close_code is not None:
        if connection.close_code == CATCH_UP:
            log.info("connection asked to catch up: room=%s user=%s", code, user_id)
        return connection.close_code
    for error in (read_error, connection.write_error):
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
    receive = websocket._get_current_object().receive  # the proxy's lookup, once
    while True:
        data = await receive()
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
            connection.reply(reply)
