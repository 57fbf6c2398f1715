"""One live socket's outgoing side: what the room sends it, in order, without ever
holding up the room.

While the socket keeps up, a room's event goes straight onto its transport as the frame
built once for the room (`chat.raw_socket`). Otherwise fragments queue in a bounded list
and a short task sends them as one frame, waiting for the client; once the list is
empty, direct writes start again. A connection that lets its list overflow is stopped
with 1013 (htmx reconnects and catches up).
"""

from __future__ import annotations

import asyncio

from chat.broker import RoomEvent
from chat.close_codes import CATCH_UP
from chat.direct_socket import DirectWebsocket
from chat.frames import text_frame
from chat.hub import Hub
from chat.metrics import Counts


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
