"""Live connections: the `/rooms/<code>/ws` WebSocket that htmx's `hx-ws` talks to.

Each connection is admitted, sends what the page missed, then reads frames and posts
them through the hub in the server's own task; what the room sends it goes out through
its `chat.outgoing.Connection`. Close codes are in `chat.close_codes`, close reasons in
`chat.texts`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from pydantic import ValidationError
from quart import Blueprint, session, websocket

from chat import current, rooms, security, texts
from chat.close_codes import (
    CATCH_UP,
    INTERNAL_ERROR,
    INVALID_PAYLOAD,
    POLICY_VIOLATION,
    TOO_BIG,
    UNSUPPORTED_DATA,
)
from chat.direct_socket import Interrupted
from chat.forms import MessageFrame
from chat.hub import Hub, TooManyLookups
from chat.outgoing import Connection
from chat.store import RoomGone

log = logging.getLogger("chat")
blueprint = Blueprint("live", __name__)

CLOSE_TIMEOUT = 2.0


class Refused(Exception):
    def __init__(self, code: int, reason: str) -> None:
        super().__init__(reason)
        self.code = code
        self.reason = reason


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
