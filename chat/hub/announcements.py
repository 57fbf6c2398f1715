"""Announcements: who entered, left or was renamed, gathered per room for a short tick
and published as one frame with the member count as it is then.

A join storm in a room of N members would otherwise send every arrival to every member
in a frame of its own. Gathered, a room costs one frame per tick whatever the arrivals,
and the tick grows with the room, so a storm in a big room costs about as many frames
per second as one in a small room.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from chat.broker import RoomEvent

log = logging.getLogger("chat")

TICK = 0.1  # seconds a change waits for others of its room
MEMBERS_PER_TICK = 200  # a room bigger than this waits proportionally longer ...
LONGEST_TICK = 1.0  # ... up to this


@dataclass
class Gathered:
    """A room's changes since its last frame: notices in order, and each member's
    latest state (a name, or None when they left), their old item removed first where
    it moved or went."""

    notices: list[str] = field(default_factory=list)
    removed_first: dict[str, None] = field(default_factory=dict)  # an ordered set
    listed: dict[str, str | None] = field(default_factory=dict)


Publish = Callable[[RoomEvent], None]
Count = Callable[[str], Awaitable[int]]
Render = Callable[[Gathered, int], str]  # (changes, count) -> the frame


class Announcements:
    def __init__(self, publish: Publish, count: Count, render: Render, tick: float = TICK):
        self._publish = publish
        self._count = count
        self._render = render
        self._tick = tick
        self._waiting: dict[str, Gathered] = {}
        self._sizes: dict[str, int] = {}  # room -> its count at its last frame
        self._flushes: set[asyncio.Task] = set()

    def add(
        self, room: str, notice: str | None, user_id: str, name: str | None, moved: bool = False
    ) -> None:
        """Queue a member's change for the room's next frame: listed under `name` (None:
        gone), `moved` when their item must leave its place first (a rename)."""
        gathered = self._waiting.get(room)
        if gathered is None:
            gathered = self._waiting[room] = Gathered()
            self._flush_later(room)
        if notice is not None:
            gathered.notices.append(notice)
        if name is None or moved:
            gathered.removed_first[user_id] = None
        gathered.listed[user_id] = name

    def _flush_later(self, room: str) -> None:
        size = self._sizes.get(room, 0)
        tick = min(LONGEST_TICK, self._tick * max(1.0, size / MEMBERS_PER_TICK))
        task = asyncio.get_running_loop().create_task(self._flush_after(room, tick))
        self._flushes.add(task)
        task.add_done_callback(self._flushes.discard)

    async def _flush_after(self, room: str, tick: float) -> None:
        await asyncio.sleep(tick)
        gathered = self._waiting.pop(room)
        try:
            count = await self._count(room)
        except Exception:
            log.exception("announcing member changes failed: room=%s", room)
            return
        if count:
            self._sizes[room] = count
        else:
            self._sizes.pop(room, None)
        self._publish(RoomEvent(room, self._render(gathered, count)))

    async def stop(self) -> None:
        for task in tuple(self._flushes):
            task.cancel()
        await asyncio.gather(*self._flushes, return_exceptions=True)
