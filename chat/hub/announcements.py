"""Announcements: who entered, left or was renamed, gathered per room for a short tick
and published as one frame with the member count as it is then.

A join storm in a room of N members would otherwise send every arrival to every member
(N² frames); gathered, it costs one frame per room per tick, whatever the arrivals.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

from chat.broker import RoomEvent

log = logging.getLogger("chat")

TICK = 0.1  # seconds a change waits for others of its room

Publish = Callable[[RoomEvent], None]
Count = Callable[[str], Awaitable[int]]
Render = Callable[[list[str], int], str]  # (changes, count) -> the frame


class Announcements:
    def __init__(self, publish: Publish, count: Count, render: Render, tick: float = TICK):
        self._publish = publish
        self._count = count
        self._render = render
        self._tick = tick
        self._waiting: dict[str, list[str]] = {}
        self._flushes: set[asyncio.Task] = set()

    def add(self, room: str, change: str) -> None:
        """Queue `change` (a notice and member-list fragments) for the room's next frame."""
        waiting = self._waiting.get(room)
        if waiting is not None:
            waiting.append(change)
            return
        self._waiting[room] = [change]
        task = asyncio.get_running_loop().create_task(self._flush_after_tick(room))
        self._flushes.add(task)
        task.add_done_callback(self._flushes.discard)

    async def _flush_after_tick(self, room: str) -> None:
        await asyncio.sleep(self._tick)
        changes = self._waiting.pop(room, [])
        try:
            count = await self._count(room)
        except Exception:
            log.exception("announcing member changes failed: room=%s", room)
            return
        self._publish(RoomEvent(room, self._render(changes, count)))

    async def stop(self) -> None:
        for task in tuple(self._flushes):
            task.cancel()
        await asyncio.gather(*self._flushes, return_exceptions=True)
